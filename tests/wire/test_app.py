"""The web app's own update over real sockets (docs/protocol.md, "Files"): `PUT /?app`
with a .tar.gz or .zip switches the documents for the next request, `GET /?app` tells
the version, `POST /?app/rollback` switches back; a refused archive is 400 with its
reason and changes nothing; files get fresh validators after a switch; the switch
survives a restart."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tarfile
import time

import pytest

from tests.helpers.archives import special, tar_of, zip_of
from tests.helpers.client import Asking, Client, Reply

LIMIT = 256 * 1024
OLD = b"<h1>documents</h1>\n"
NEW = b"<h1>new version</h1>\n"
NEWER = b"<h1>newer version</h1>\n"


@pytest.fixture
def documents(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_bytes(OLD)
    (tmp_path / "uploads").mkdir()
    return www


def settings(documents) -> dict:
    uploads = str(documents.parent / "uploads")
    return {"documents": str(documents), "uploads__dir": uploads, "uploads__limit": LIMIT}


@pytest.fixture
def running(make_server, documents):
    return make_server(**settings(documents))


def put(client: Client, target: str, body: bytes) -> Reply:
    head = f"PUT {target} HTTP/1.1\r\nHost: test\r\nContent-Length: {len(body)}\r\n\r\n"
    client.send(head.encode() + body)
    return client.read()


def post(client: Client, target: str) -> Reply:
    client.send(f"POST {target} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n".encode())
    return client.read()


def served(running, connect, target: str = "/") -> Reply:
    """What another client gets: the server goes on serving everyone."""
    return connect(running).get(target)


def test_put_app_switches_for_the_next_request(running, connect):
    archive = tar_of({"index.html": NEW, "js/app.js": b"go()"})
    client = connect(running)
    reply = put(client, "/?app", archive)
    assert reply.status == 200, reply.body
    shown = reply.json()
    assert shown["digest"] == hashlib.sha256(archive).hexdigest()
    assert shown["size"] == len(archive)
    assert shown["previous"] is None
    assert client.get("/").body == NEW  # the same connection's next request
    assert served(running, connect, "/js/app.js").body == b"go()"
    assert served(running, connect, "/?app").json() == shown


def test_a_zip_switches_too(running, connect):
    reply = put(connect(running), "/?app", zip_of({"index.html": NEW}))
    assert reply.status == 200, reply.body
    assert served(running, connect).body == NEW


def test_curl_upload_of_a_named_archive_switches(running, connect, tmp_path):
    """`curl -T site.tar.gz 'http://pi:8080/?app'` sends `PUT /site.tar.gz?app`: taken
    as `PUT /?app` (docs/protocol.md, Choices), as the README shows it."""
    local = tmp_path / "site.tar.gz"
    local.write_bytes(tar_of({"index.html": NEW}))
    url = f"http://127.0.0.1:{running.port}/?app"
    done = subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "-T",
            str(local),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.stdout == "200", done.stderr
    assert served(running, connect).body == NEW


def test_get_app_before_any_update_names_the_documents(running, connect):
    reply = served(running, connect, "/?app")
    assert reply.status == 200
    assert reply.json() == {"digest": None, "size": None, "time": None, "previous": None}


REFUSED = {
    "traversal": (
        tar_of({"index.html": NEW, "../evil": b"x"}),
        "the member \"../evil\" has '..' in its path: it would leave its folder",
    ),
    "absolute": (
        tar_of({"index.html": NEW, "/tmp/evil": b"x"}),
        'the member "/tmp/evil" has an absolute path',
    ),
    "symlink": (
        tar_of({"index.html": NEW}, special("passwd", tarfile.SYMTYPE, "/etc/passwd")),
        'the member "passwd" is a symbolic link',
    ),
    "hardlink": (
        tar_of({"index.html": NEW}, special("hard", tarfile.LNKTYPE, "index.html")),
        'the member "hard" is a hard link',
    ),
    "device": (
        tar_of({"index.html": NEW}, special("null", tarfile.CHRTYPE)),
        'the member "null" is a device',
    ),
    "fifo": (
        tar_of({"index.html": NEW}, special("p", tarfile.FIFOTYPE)),
        'the member "p" is a fifo',
    ),
    "bomb": (
        tar_of({"index.html": NEW, "zeros": bytes(4 * LIMIT)}),  # 4 KiB compressed
        f"the archive unpacks to more than {LIMIT} bytes (uploads.limit)",
    ),
    "zip bomb": (
        zip_of({"index.html": NEW, "zeros": bytes(4 * LIMIT)}),
        f"the archive unpacks to more than {LIMIT} bytes (uploads.limit)",
    ),
    "too many members": (
        tar_of({"index.html": NEW, **{f"f{n}": b"" for n in range(10_001)}}),
        "the archive has more than 10000 members",
    ),
    "junk": (os.urandom(1000).replace(b"\x1f", b"x").replace(b"P", b"x"), "the body is not"),
    "damaged": (b"\x1f\x8b" + os.urandom(1000), "the archive is damaged"),
    "missing index": (tar_of({"home.html": NEW}), "the archive has no index.html (`index`)"),
    "empty": (tar_of({}), "the archive is empty"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_refused_archive_is_400_and_changes_nothing(running, connect, documents, case):
    archive, reason = REFUSED[case]
    assert len(archive) <= LIMIT
    reply = put(connect(running), "/?app", archive)
    assert reply.status == 400, reply.body
    assert reply.json()["error"] == "bad-archive"
    assert reply.json()["message"].startswith(reason)
    assert served(running, connect).body == OLD  # another client, served as before
    assert served(running, connect, "/?app").json()["digest"] is None
    versions = documents.parent / "www.versions"
    assert not versions.exists() or [p.name for p in versions.iterdir()] == []
    assert os.listdir(documents.parent / "uploads") == []  # the archive is not kept
    assert not (documents.parent / "evil").exists()


def test_rollback_switches_back_and_says_so(running, connect):
    client = connect(running)
    first = put(client, "/?app", tar_of({"index.html": NEW})).json()
    second = put(client, "/?app", tar_of({"index.html": NEWER})).json()
    assert second["previous"] == {k: first[k] for k in ("digest", "size", "time")}
    assert served(running, connect).body == NEWER
    reply = post(client, "/?app/rollback")
    assert reply.status == 200
    assert reply.json()["digest"] == first["digest"]
    assert served(running, connect).body == NEW
    post(client, "/?app/rollback")  # a second rollback undoes the first
    assert served(running, connect).body == NEWER


def test_rollback_of_the_first_update_serves_the_documents(running, connect):
    client = connect(running)
    put(client, "/?app", tar_of({"index.html": NEW}))
    assert post(client, "/?app/rollback").json()["digest"] is None
    assert served(running, connect).body == OLD


def test_after_two_updates_the_documents_are_served_again_on_request(running, connect):
    """Two updates leave no rollback to the documents (two versions are kept):
    `POST /?app/documents` serves them, and a rollback brings the update back."""
    client = connect(running)
    put(client, "/?app", tar_of({"index.html": NEW}))
    newer = put(client, "/?app", tar_of({"index.html": NEWER})).json()
    reply = post(client, "/?app/documents")
    assert reply.status == 200
    assert reply.json()["digest"] is None
    assert reply.json()["previous"] == {k: newer[k] for k in ("digest", "size", "time")}
    assert served(running, connect).body == OLD
    assert post(client, "/?app/documents").json()["digest"] is None  # already: no change
    assert post(client, "/?app/rollback").json()["digest"] == newer["digest"]
    assert served(running, connect).body == NEWER


def test_rollback_with_nothing_to_go_back_to_is_409(running, connect):
    reply = post(connect(running), "/?app/rollback")
    assert reply.status == 409
    assert reply.json() == {
        "error": "no-previous",
        "message": "there is no previous version to go back to",
    }
    assert served(running, connect).body == OLD


def test_validators_are_fresh_after_a_switch(running, connect, documents):
    """Same name, size and time in both versions (archives keep times; this sets it):
    what a browser kept of one version is never confirmed (304) by the other."""
    same_time = os.stat(documents / "index.html").st_mtime_ns
    os.utime(documents / "index.html", ns=(same_time, same_time))
    client = connect(running)
    before = client.get("/")
    etag, modified = before.headers["etag"], before.headers["last-modified"]
    assert client.get("/", f"If-None-Match: {etag}\r\n").status == 304
    twin = b"<h1>DOCUMENTS</h1>\n"  # the same size as OLD
    assert len(twin) == len(OLD)
    put(client, "/?app", tar_of({"index.html": twin}))
    copy = os.path.join(running.call(lambda: running.server.site.root), "index.html")
    os.utime(copy, ns=(same_time, same_time))  # the same time to the nanosecond
    assert client.get("/", f"If-None-Match: {etag}\r\n").status == 200
    assert client.get("/", f"If-Modified-Since: {modified}\r\n").status == 200
    fresh = client.get("/")
    assert fresh.body == twin
    assert fresh.headers["etag"] != etag
    assert fresh.headers["cache-control"] == "no-cache"
    assert client.get("/", f"If-None-Match: {fresh.headers['etag']}\r\n").status == 304
    post(client, "/?app/rollback")
    back = client.get("/", f"If-None-Match: {fresh.headers['etag']}\r\n")
    assert (back.status, back.body) == (200, OLD)
    again = client.get("/", f"If-Modified-Since: {fresh.headers['last-modified']}\r\n")
    assert again.status == 200


def test_a_restart_serves_the_switched_version(make_server, documents, connect):
    first = make_server(**settings(documents))
    put(connect(first), "/?app", tar_of({"index.html": NEW}))
    digest = served(first, connect, "/?app").json()["digest"]
    first.stop()
    second = make_server(**settings(documents))
    assert served(second, connect).body == NEW
    assert served(second, connect, "/?app").json()["digest"] == digest
    assert post(connect(second), "/?app/rollback").status == 200
    assert served(second, connect).body == OLD


def test_with_uploads_turned_off_the_switched_version_is_still_served(
    make_server, documents, connect
):
    """Turning uploads off stops updates; it does not undo the last one (docs/protocol.md,
    Choices): the switched version is served, and `/?app` is gone (404), so no client
    can switch or roll back."""
    first = make_server(**settings(documents))
    put(connect(first), "/?app", tar_of({"index.html": NEW}))
    first.stop()
    second = make_server(documents=str(documents), uploads__limit=LIMIT)
    assert served(second, connect).body == NEW
    assert served(second, connect, "/?app").status == 404
    assert post(connect(second), "/?app/rollback").status == 404
    assert served(second, connect).body == NEW


def test_without_uploads_or_versions_the_site_is_not_built(make_server, documents, connect):
    running = make_server(documents=str(documents), uploads__limit=LIMIT)
    assert running.call(lambda: running.server.site) is None
    assert served(running, connect).body == OLD
    assert not (documents.parent / "www.versions").exists()


def test_a_chunked_archive_is_installed(running, connect):
    archive = tar_of({"index.html": NEW})
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(archive[i : i + 1000]), archive[i : i + 1000])
        for i in range(0, len(archive), 1000)
    )
    client = connect(running)
    client.send(
        b"PUT /?app HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunks
        + b"0\r\n\r\n"
    )
    assert client.read().status == 200
    assert served(running, connect).body == NEW


def test_under_chroot_there_is_no_app_update(make_server, documents, connect):
    """The versions beside the documents would be out of reach once chrooted into them
    (cli.py chroots after the server is built: it is not needed here); `uploads.dir` with
    chroot is a config error (test_files), so here the uploads are off."""
    running = make_server(documents=str(documents), uploads__limit=LIMIT, chroot=True)
    client = connect(running)
    assert put(client, "/?app", tar_of({"index.html": NEW})).status == 404
    assert served(running, connect).body == OLD
    assert not (documents.parent / "www.versions").exists()


def test_a_large_archive_unpacks_while_others_are_served_and_a_1khz_task_runs(
    make_server, documents, connect
):
    """40 MiB of incompressible files: the upload, the digest, the unpacking and the
    removal of the version no longer kept go a slice per loop turn."""
    files = {"index.html": NEWER, **{f"media/{n}.bin": os.urandom(1 << 20) for n in range(40)}}
    archive = tar_of(files)
    size = 64 << 20
    running = make_server(
        **{**settings(documents), "uploads__limit": size, "uploads__space": 2 * size}
    )
    for body in (NEW, NEW + b"!"):  # two versions kept: the third update removes one
        put(connect(running), "/?app", tar_of({"index.html": body, **files}))
    ticks: list[float] = []
    task = running.call(lambda: running.server.every(0.001, lambda: ticks.append(time.monotonic())))
    with Asking(connect(running), "/?app") as other:
        first = len(ticks)
        started = time.monotonic()
        reply = put(connect(running, timeout=60), "/?app", archive)
        seconds = time.monotonic() - started
    running.call(task.cancel)
    assert reply.status == 200, reply.body
    assert served(running, connect).body == NEWER
    assert other.answered > 0
    assert len(os.listdir(documents.parent / "www.versions")) == 3  # two versions, the state
    gaps = [b - a for a, b in zip(ticks[first:], ticks[first + 1 :])]
    print(
        f"\nPUT /?app of {len(archive) >> 20} MiB (.tar.gz, {len(files)} files): {seconds:.2f} s"
        f" upload to switch; 1 kHz task: {len(gaps)} runs, longest gap"
        f" {max(gaps) * 1000:.2f} ms (p99 {sorted(gaps)[int(len(gaps) * 0.99)] * 1000:.2f} ms);"
        f" {other.answered} replies to another client meanwhile"
    )
