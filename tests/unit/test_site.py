"""The documents' versions (httap/site.py) on real folders in tmp_path, with archives
built by each test: what is installed, what is refused (and that a refusal changes
nothing), rollback, a restart, and the validators the files get after a switch."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import stat
import tarfile
from pathlib import Path

import pytest

from httap.http import Request
from httap.site import Refused, Site, Version
from httap.static import StaticFiles
from tests.helpers.archives import file_member, special, tar_gz, tar_of, zip_of

LIMIT = 64 * 1024
INDEX_A = b"<h1>version A</h1>\n"
INDEX_B = b"<h1>version B</h1>\n"


# -- fixtures ----------------------------------------------------------------------


@pytest.fixture
def documents(tmp_path: Path) -> Path:
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_bytes(b"<h1>documents</h1>\n")
    return www


@pytest.fixture
def site(documents: Path) -> Site:
    return Site(str(documents), LIMIT, members=20)


def install(site: Site, archive: bytes, tmp_path: Path, name: str = "upload") -> Version:
    """Unpack, check and switch to `archive` in one go (the server does a step per loop
    turn); the new current version."""
    path = tmp_path / name
    path.write_bytes(archive)
    for _ in site.unpack(str(path)):
        pass
    return site.current


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def served(site: Site, name: str = "index.html") -> bytes:
    return (Path(site.root) / name).read_bytes()


# -- installing --------------------------------------------------------------------


def test_a_tar_gz_is_switched_to_and_told_by_its_digest(site, tmp_path, documents):
    archive = tar_of({"index.html": INDEX_A, "js/app.js": b"go()"})
    version = install(site, archive, tmp_path)
    assert served(site) == INDEX_A
    assert served(site, "js/app.js") == b"go()"
    assert site.shown()["digest"] == hashlib.sha256(archive).hexdigest()
    assert site.shown()["size"] == len(archive)
    assert site.shown()["previous"] is None  # the configured documents
    assert Path(site.root).parent == Path(str(documents) + ".versions")
    assert (documents / "index.html").read_bytes() == b"<h1>documents</h1>\n"  # untouched
    assert site.tag == version.name


def test_a_zip_is_switched_to(site, tmp_path):
    install(site, zip_of({"index.html": INDEX_A, "css/": b"", "css/a.css": b"p{}"}), tmp_path)
    assert served(site) == INDEX_A
    assert served(site, "css/a.css") == b"p{}"


def test_an_archive_of_one_top_folder_is_served_from_that_folder(site, tmp_path):
    install(site, tar_of({"site/index.html": INDEX_A, "./site/a.txt": b"a"}), tmp_path)
    assert served(site) == INDEX_A
    assert served(site, "a.txt") == b"a"


def test_modes_of_the_archive_are_not_kept(site, tmp_path):
    info, body = file_member("index.html", INDEX_A)
    info.mode = 0o4777  # setuid, world-writable
    install(site, tar_gz(info, data={"index.html": body}), tmp_path)
    mode = os.stat(Path(site.root) / "index.html").st_mode
    assert not mode & (stat.S_ISUID | stat.S_IWOTH)


def test_unpack_goes_in_slices(site, tmp_path):
    body = os.urandom(3 * 64 * 1024 // 2)  # incompressible: several slices to write
    path = tmp_path / "upload"
    path.write_bytes(tar_of({"index.html": INDEX_A, "big.bin": body[: LIMIT - 100]}))
    steps = site.unpack(str(path))
    next(steps)
    assert site.current is None  # not switched while unpacking
    assert sum(1 for _ in steps) >= 2
    assert served(site) == INDEX_A


# -- refused archives: each changes nothing ------------------------------------------

TRAVERSAL = "the member \"../x\" has '..' in its path: it would leave its folder"
REFUSALS = {
    "traversal": (tar_of({"index.html": INDEX_A, "../x": b"x"}), TRAVERSAL),
    "deep traversal": (
        tar_of({"index.html": INDEX_A, "a/../../x": b"x"}),
        "the member \"a/../../x\" has '..' in its path",
    ),
    "absolute": (
        tar_of({"index.html": INDEX_A, "/etc/x": b"x"}),
        'the member "/etc/x" has an absolute path: it would leave its folder',
    ),
    "symlink": (
        tar_of({"index.html": INDEX_A}, special("link", tarfile.SYMTYPE, "index.html")),
        'the member "link" is a symbolic link: only files and folders may be unpacked',
    ),
    "symlink out": (
        tar_of({"index.html": INDEX_A}, special("etc", tarfile.SYMTYPE, "/etc")),
        'the member "etc" is a symbolic link',
    ),
    "hardlink": (
        tar_of({"index.html": INDEX_A}, special("hard", tarfile.LNKTYPE, "index.html")),
        'the member "hard" is a hard link',
    ),
    "device": (
        tar_of({"index.html": INDEX_A}, special("null", tarfile.CHRTYPE)),
        'the member "null" is a device',
    ),
    "block device": (
        tar_of({"index.html": INDEX_A}, special("sda", tarfile.BLKTYPE)),
        'the member "sda" is a device',
    ),
    "fifo": (
        tar_of({"index.html": INDEX_A}, special("pipe", tarfile.FIFOTYPE)),
        'the member "pipe" is a fifo',
    ),
    "zip traversal": (zip_of({"index.html": INDEX_A, "../x": b"x"}), TRAVERSAL),
    "zip absolute": (
        zip_of({"index.html": INDEX_A, "/tmp/x": b"x"}),
        'the member "/tmp/x" has an absolute path',
    ),
    "zip symlink": (
        zip_of({"index.html": INDEX_A, "l": b"/etc/passwd"}, {"l": stat.S_IFLNK | 0o777}),
        'the member "l" is a symbolic link',
    ),
    "zip fifo": (
        zip_of({"index.html": INDEX_A, "p": b""}, {"p": stat.S_IFIFO | 0o644}),
        'the member "p" is a fifo',
    ),
    "declared too large": (
        tar_of({"index.html": INDEX_A, "zeros": bytes(LIMIT)}),
        f"the archive unpacks to more than {LIMIT} bytes (uploads.limit)",
    ),
    "zip declared too large": (
        zip_of({"index.html": INDEX_A, "zeros": bytes(LIMIT)}),
        f"the archive unpacks to more than {LIMIT} bytes (uploads.limit)",
    ),
    "too many members": (
        tar_of({"index.html": INDEX_A, **{f"f{n}": b"" for n in range(20)}}),
        "the archive has more than 20 members",
    ),
    "zip too many members": (
        zip_of({"index.html": INDEX_A, **{f"f{n}": b"" for n in range(20)}}),
        "the archive has more than 20 members",
    ),
    "junk": (b"hello, world", "the body is not a .tar.gz or .zip archive (by its first bytes)"),
    "nothing": (b"", "the body is not a .tar.gz or .zip archive (by its first bytes)"),
    "junk after the gzip magic": (b"\x1f\x8b" + b"junk" * 10, "the archive is damaged: "),
    "a gzip of no tar": (gzip.compress(b"not a tar" * 100), "the archive is damaged: "),
    "junk after the zip magic": (b"PK\x03\x04" + b"junk" * 10, "the archive is damaged"),
    "missing index": (
        tar_of({"home.html": INDEX_A}),
        "the archive has no index.html (`index`) at its top or in its one top folder",
    ),
    "index in a second folder": (
        tar_of({"a/index.html": INDEX_A, "b/x": b""}),
        "the archive has no index.html (`index`)",
    ),
    "empty tar.gz": (tar_of({}), "the archive is empty"),
    "empty zip": (zip_of({}), "the archive is empty"),
    "collision": (
        tar_of({"index.html": INDEX_A, "a": b"file", "a/b": b"under a file"}),
        'the member "a/b" collides with another member',
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_archive_says_why_and_changes_nothing(site, tmp_path, documents, case):
    install(site, tar_of({"index.html": INDEX_B}), tmp_path, "good")
    versions = Path(str(documents) + ".versions")
    before = listing(versions), (versions / "state.json").read_bytes(), site.root
    archive, reason = REFUSALS[case]
    with pytest.raises(Refused) as refused:
        install(site, archive, tmp_path)
    assert str(refused.value).startswith(reason)
    assert (listing(versions), (versions / "state.json").read_bytes(), site.root) == before
    assert served(site) == INDEX_B
    assert not (tmp_path / "x").exists()


def test_a_pax_header_bomb_is_refused_by_the_bytes_really_read(site, tmp_path):
    """A member's declared size is small, but its pax record is 1 MiB (read into memory
    by tarfile): the decompressed stream is counted, not only the sizes."""
    info, body = file_member("index.html", INDEX_A)
    info.pax_headers = {"comment": "x" * (1 << 20)}
    archive = tar_gz(info, data={"index.html": body})
    assert len(archive) < 10_000
    with pytest.raises(Refused, match="a member's headers take more than 1536 bytes"):
        install(site, archive, tmp_path)
    assert site.current is None


def test_a_zip_whose_headers_lie_about_sizes_is_refused(site, tmp_path):
    """Declared 10 bytes, really LIMIT: zipfile stops at the declared size and its CRC
    check fails; nothing is kept."""
    real = bytes(LIMIT)
    archive = bytearray(zip_of({"index.html": INDEX_A, "zeros": real}))
    size = len(real).to_bytes(4, "little")
    for at in [i for i in range(len(archive)) if archive[i : i + 4] == size]:
        archive[at : at + 4] = (10).to_bytes(4, "little")  # local header and directory
    with pytest.raises(Refused, match="the archive is damaged"):
        install(site, bytes(archive), tmp_path)
    assert site.current is None
    assert listing(Path(site.folder)) == []


def test_a_real_size_past_the_limit_is_refused_while_writing(documents, tmp_path):
    """The bytes written are counted: a member larger than the declared sizes let
    through is cut off at the limit (declared sizes pass with a larger limit, then
    the limit is lowered, as a lying header would make it)."""
    site = Site(str(documents), LIMIT)
    path = tmp_path / "upload"
    path.write_bytes(tar_of({"index.html": INDEX_A, "zeros": bytes(LIMIT // 2)}))
    steps = site.unpack(str(path))
    next(steps)  # the digest is read, the limit not yet used
    site.limit = LIMIT // 4
    with pytest.raises(Refused, match="unpacks to more than"):
        for _ in steps:
            pass
    assert site.current is None


# -- rollback and restart ------------------------------------------------------------


def test_rollback_switches_back_and_again(site, tmp_path):
    first = install(site, tar_of({"index.html": INDEX_A}), tmp_path)
    second = install(site, tar_of({"index.html": INDEX_B}), tmp_path)
    assert served(site) == INDEX_B
    assert site.shown()["previous"]["digest"] == first.digest
    site.rollback()
    assert served(site) == INDEX_A
    assert site.shown()["previous"]["digest"] == second.digest
    site.rollback()
    assert served(site) == INDEX_B


def test_rollback_of_the_first_version_serves_the_documents(site, tmp_path, documents):
    install(site, tar_of({"index.html": INDEX_A}), tmp_path)
    site.rollback()
    assert site.root == str(documents)
    assert site.shown()["digest"] is None


def test_rollback_with_nothing_to_go_back_to_is_refused(site):
    with pytest.raises(Refused, match="there is no previous version to go back to"):
        site.rollback()


def test_only_the_current_and_previous_versions_are_kept(site, tmp_path):
    for body in (b"1", b"2", b"3", INDEX_B):
        install(site, tar_of({"index.html": body}), tmp_path)
    names = sorted(entry.name for entry in os.scandir(site.folder) if entry.is_dir())
    assert names == sorted([site.current.name, site.previous.name])


def test_a_restart_serves_the_switched_version(documents, site, tmp_path):
    install(site, tar_of({"index.html": INDEX_A}), tmp_path)
    install(site, tar_of({"index.html": INDEX_B}), tmp_path)
    site.rollback()
    again = Site(str(documents), LIMIT)
    assert (again.root, again.tag, again.since) == (site.root, site.tag, site.since)
    assert served(again) == INDEX_A
    again.rollback()
    assert served(again) == INDEX_B


def test_a_restart_after_a_rollback_to_the_documents_keeps_them(documents, site, tmp_path):
    install(site, tar_of({"index.html": INDEX_A}), tmp_path)
    site.rollback()
    again = Site(str(documents), LIMIT)
    assert again.root == str(documents)
    assert again.since == site.since > 0


def test_a_state_written_halfway_is_never_seen(documents, site, tmp_path):
    """The state is replaced by a rename: the old or the new one, never a part."""
    install(site, tar_of({"index.html": INDEX_A}), tmp_path)
    state = Path(site.folder) / "state.json"
    assert json.loads(state.read_text())["current"]["name"] == site.current.name
    assert [p.name for p in Path(site.folder).iterdir() if p.name.startswith(".state-")] == []


def test_an_unreadable_state_serves_the_documents(documents, site, tmp_path, caplog):
    install(site, tar_of({"index.html": INDEX_A}), tmp_path)
    (Path(site.folder) / "state.json").write_text("{not json")
    again = Site(str(documents), LIMIT)
    assert again.root == str(documents)
    assert "cannot read" in caplog.text


def test_a_version_whose_folder_is_gone_serves_the_documents(documents, site, tmp_path, caplog):
    install(site, tar_of({"index.html": INDEX_A}), tmp_path)
    shutil.rmtree(Path(site.root))
    again = Site(str(documents), LIMIT)
    assert again.root == str(documents)
    assert f"the version {site.current.name} is gone" in caplog.text


def test_the_versions_of_documents_at_the_root_are_in_slash_versions():
    assert Site("/", LIMIT).folder == "/.versions"


def test_leftover_staging_of_a_crash_is_removed(documents, site, tmp_path):
    install(site, tar_of({"index.html": INDEX_A}), tmp_path)
    left = Path(site.folder) / ".new-crashed"
    left.mkdir()
    os.utime(left, (0, 0))
    Site(str(documents), LIMIT)
    assert not left.exists()


# -- validators after a switch (static.py) -----------------------------------------


def files_of(site: Site) -> StaticFiles:
    return StaticFiles(site.root, version=site.tag, since=site.since)


def get(files: StaticFiles, **headers: str):
    return files.handle(Request("GET", "/index.html", "HTTP/1.1", headers, False))


def test_same_name_size_and_time_in_two_versions_is_no_304(site, tmp_path):
    """Both versions' index.html have the same size and mtime (the archive's)."""
    install(site, tar_of({"index.html": INDEX_A}), tmp_path)
    os.utime(Path(site.root) / "index.html", (1_700_000_000, 1_700_000_000))
    old = get(files_of(site))
    etag, modified = dict(old.headers)["ETag"], dict(old.headers)["Last-Modified"]
    install(site, tar_of({"index.html": INDEX_B}), tmp_path)
    os.utime(Path(site.root) / "index.html", (1_700_000_000, 1_700_000_000))
    files = files_of(site)
    assert get(files, **{"if-none-match": etag}).status == 200
    assert get(files, **{"if-modified-since": modified}).status == 200
    fresh = get(files)
    assert fresh.body == INDEX_B
    assert get(files, **{"if-none-match": dict(fresh.headers)["ETag"]}).status == 304
    site.rollback()  # back to A: what was kept of B is not A either
    back = files_of(site)
    assert get(back, **{"if-modified-since": dict(fresh.headers)["Last-Modified"]}).status == 200
    assert get(back, **{"if-none-match": dict(fresh.headers)["ETag"]}).status == 200
    assert get(back).body == INDEX_A


TAR_CASES = [case for case in REFUSALS if not case.startswith("zip")]


@pytest.mark.parametrize("case", TAR_CASES)
def test_without_tarfiles_data_filter_the_same_archives_are_refused_alike(
    site, tmp_path, monkeypatch, case
):
    """Python before 3.8.17/3.9.17 has no `data` filter (PEP 706): our own checks,
    which run first everywhere, refuse the same members for the same reasons."""
    monkeypatch.delattr(tarfile, "data_filter")
    archive, reason = REFUSALS[case]
    with pytest.raises(Refused) as refused:
        install(site, archive, tmp_path)
    assert str(refused.value).startswith(reason)
    assert site.current is None


def test_without_tarfiles_data_filter_a_good_archive_is_installed(site, tmp_path, monkeypatch):
    monkeypatch.delattr(tarfile, "data_filter")
    install(site, tar_of({"index.html": INDEX_A, "a/b.txt": b"b"}), tmp_path)
    assert served(site, "a/b.txt") == b"b"


def patched(archive: bytes, signature: bytes, offset: int, value: bytes) -> bytes:
    """`archive` with `value` written `offset` bytes after each `signature`."""
    data = bytearray(archive)
    at = data.find(signature)
    while at >= 0:
        data[at + offset : at + offset + len(value)] = value
        at = data.find(signature, at + 1)
    return bytes(data)


def test_a_zip_whose_directory_points_outside_the_file_is_damaged(site, tmp_path):
    """The end record says the directory starts later than it does: the members'
    offsets come out negative, and zipfile's seek fails (EINVAL), not the server."""
    good = zip_of({"index.html": INDEX_A})
    start = int.from_bytes(good[good.rfind(b"PK\x05\x06") + 16 :][:4], "little")
    archive = patched(good, b"PK\x05\x06", 16, (start + 1000).to_bytes(4, "little"))
    with pytest.raises(Refused, match="the archive is damaged"):
        install(site, archive, tmp_path)
    assert site.current is None


def test_an_encrypted_zip_member_is_refused(site, tmp_path):
    archive = patched(zip_of({"index.html": INDEX_A}), b"PK\x01\x02", 8, b"\x01\x00")
    with pytest.raises(Refused, match=re.escape('the member "index.html" is an encrypted file')):
        install(site, archive, tmp_path)


def test_a_pax_record_of_an_impossible_length_is_damaged(site, tmp_path):
    """tarfile raises OverflowError for it (found by mutating archives)."""
    info, body = file_member("index.html", INDEX_A)
    info.pax_headers = {"comment": "x"}
    plain = gzip.decompress(tar_gz(info, data={"index.html": body}))
    record = plain.find(b" comment=x\n")
    start = plain.rfind(b"\0", 0, record) + 1
    broken = plain[:start] + b"9" * 20 + plain[record:]
    broken = broken[:start] + broken[start:].replace(b"\0" * (20 - (record - start)), b"", 1)
    assert len(broken) == len(plain)
    with pytest.raises(Refused, match="the archive is damaged"):
        install(site, gzip.compress(broken), tmp_path)


def test_a_version_no_longer_kept_is_removed_in_slices_after_the_switch(site, tmp_path):
    """The switch comes first; the oldest version's large file then shrinks a slice a
    step (an unlink of a file just written would hold the loop)."""
    big = os.urandom(LIMIT - 1000)
    oldest = install(site, tar_of({"index.html": INDEX_A, "big.bin": big}), tmp_path)
    install(site, tar_of({"index.html": INDEX_B}), tmp_path)
    path = tmp_path / "upload"
    path.write_bytes(tar_of({"index.html": b"third"}))
    steps = site.unpack(str(path))
    while site.current.digest != hashlib.sha256(path.read_bytes()).hexdigest():
        next(steps)
    leftover = Path(site.folder) / oldest.name / "big.bin"
    assert leftover.stat().st_size == len(big)  # switched, not yet removed
    sizes = []
    for _ in steps:
        sizes.append(leftover.stat().st_size if leftover.exists() else None)
    assert sizes[-1] is None and not (Path(site.folder) / oldest.name).exists()
    shrinking = [size for size in sizes if size is not None]
    assert len(shrinking) >= LIMIT // (64 * 1024) - 1 and shrinking == sorted(
        shrinking, reverse=True
    )
