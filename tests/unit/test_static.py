"""The file domain, request by request: real files in tmp_path, Requests in, Responses out."""

from __future__ import annotations

import os
import time
from email.utils import formatdate
from pathlib import Path

import pytest

from httap import static
from httap.http import FileBody, Request, Response
from httap.static import SMALL_FILE, StaticFiles

SECRET = b"TOP-SECRET-BYTES"
APP_JS = b"console.log('hello from app.js');\n" * 4
BIG = bytes(range(256)) * (SMALL_FILE // 256 + 8)  # just over the in-memory limit


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """www/ is the root; outside/ holds a secret that no request may reach."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (tmp_path / "secret.txt").write_bytes(SECRET)
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_bytes(b"<h1>home</h1>\n")
    (www / "app.js").write_bytes(APP_JS)
    (www / "app.js.gz").write_bytes(b"GZIP-OF-APP-JS")
    (www / "app.js.br").write_bytes(b"BROTLI-OF-APP-JS")
    (www / "style.css").write_bytes(b"body { color: red }\n")
    (www / "style.css.gz").write_bytes(b"GZIP-OF-STYLE")
    (www / "digits.txt").write_bytes(b"0123456789")
    (www / "empty.txt").write_bytes(b"")
    (www / "big.bin").write_bytes(BIG)
    (www / "sub").mkdir()
    (www / "sub" / "index.html").write_bytes(b"<h1>sub</h1>\n")
    (www / "sub" / "page.txt").write_bytes(b"a page\n")
    (www / "empty").mkdir()
    (www / "escape").mkdir()
    (www / "escape" / "index.html").symlink_to(outside / "secret.txt")
    (www / "link-out.txt").symlink_to(outside / "secret.txt")
    (www / "dir-out").symlink_to(outside)
    (www / "link-in.txt").symlink_to(www / "sub" / "page.txt")
    (www / "dir-in").symlink_to(www / "sub")
    (www / "leaky.css").write_bytes(b"p { margin: 0 }\n")
    (www / "leaky.css.gz").symlink_to(outside / "secret.txt")
    os.mkfifo(www / "fifo")  # not a regular file: never opened
    return www


@pytest.fixture
def files(site: Path) -> StaticFiles:
    return StaticFiles(str(site), headers={"X-Extra": "yes"}, cache={"/*": 60})


def request(target: str, method: str = "GET", **headers: str) -> Request:
    """A Request as the parser makes it: lower-case header names (underscores -> hyphens)."""
    fields = {"host": "x", **{k.replace("_", "-"): v for k, v in headers.items()}}
    return Request(method, target, "HTTP/1.1", fields, True)


def fetch(files: StaticFiles, target: str, method: str = "GET", **headers: str) -> Response:
    response = files.handle(request(target, method, **headers))
    response.head_bytes()  # every response must encode
    return response


def content(response: Response) -> bytes:
    """The bytes the connection would send, whether in memory or a file slice."""
    if response.file is None:
        return response.body
    with open(response.file.path, "rb") as file:
        file.seek(response.file.offset)
        return file.read(response.file.length)


def vars_of(file_body: FileBody) -> tuple[str, int, int]:
    return file_body.path, file_body.offset, file_body.length


# -- paths, index and directories -----------------------------------------------------


def test_root_serves_the_index(files: StaticFiles) -> None:
    response = fetch(files, "/")
    assert response.status == 200
    assert response.body == b"<h1>home</h1>\n"
    assert response.header("Content-Type") == "text/html; charset=utf-8"
    assert fetch(files, "/") is fetch(files, "/index.html")  # one entry per file


def test_a_directory_is_served_through_its_index(files: StaticFiles) -> None:
    assert fetch(files, "/sub/").body == b"<h1>sub</h1>\n"


def test_a_directory_without_its_slash_is_redirected_with_its_query(files: StaticFiles) -> None:
    response = fetch(files, "/sub?x=1")
    assert response.status == 301
    assert response.header("Location") == "/sub/?x=1"
    assert response.body == b"moved permanently: /sub/?x=1\n"
    assert fetch(files, "/dir-in").header("Location") == "/dir-in/"
    assert fetch(files, "/sub?").header("Location") == "/sub/?"  # as sent
    assert fetch(files, "/sub?q=%2F%20&&r#frag").header("Location") == "/sub/?q=%2F%20&&r"


def test_a_redirect_cannot_name_another_host(files: StaticFiles) -> None:
    assert fetch(files, "//sub").header("Location") == "/sub/"
    assert fetch(files, "//sub?//evil.example").header("Location") == "/sub/?//evil.example"
    assert fetch(files, "/./sub").header("Location") == "/sub/"
    assert fetch(files, "/%2e").header("Location") == "/"


def test_a_directory_without_an_index_is_not_found(files: StaticFiles) -> None:
    response = fetch(files, "/empty/")
    assert response.status == 404
    assert response.body == b"not found: /empty/\n"


@pytest.mark.parametrize(
    "target", ["/nope.txt", "/sub/nope/", "/digits.txt/", "/digits.txt/x", "/fifo"]
)
def test_missing_files_are_404(files: StaticFiles, target: str) -> None:
    response = fetch(files, target)
    assert response.status == 404
    assert response.body == f"not found: {target}\n".encode()
    assert response.header("Content-Type") == "text/plain; charset=utf-8"


def test_percent_encoded_names_are_decoded(site: Path, files: StaticFiles) -> None:
    (site / "a file é.txt").write_bytes(b"spaced")
    assert fetch(files, "/a%20file%20%C3%A9.txt").body == b"spaced"


def test_links_that_stay_inside_the_root_are_followed(files: StaticFiles) -> None:
    assert fetch(files, "/link-in.txt").body == b"a page\n"
    assert fetch(files, "/dir-in/page.txt").body == b"a page\n"
    assert fetch(files, "/dir-in/").body == b"<h1>sub</h1>\n"


def test_the_query_and_fragment_are_ignored(files: StaticFiles) -> None:
    plain = fetch(files, "/digits.txt")
    assert fetch(files, "/digits.txt?v=3") is plain
    assert fetch(files, "/digits.txt?v=4#top") is plain
    assert fetch(files, "/digits.txt#frag?x") is plain


# -- nothing outside the root ------------------------------------------------------------

TRAVERSALS = [
    "/../secret.txt",
    "/../outside/secret.txt",
    "/sub/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/outside/secret.txt",
    "/sub/%2e%2e/%2e%2e/secret.txt",
    "/%2e%2e%2fsecret.txt",
    "/%2F..%2F..%2Fsecret.txt",
    "/%252e%252e/secret.txt",
    "/%252e%252e%252fsecret.txt",
    "/secret.txt%00.html",
    "/..%00/secret.txt",
    "/sub/page.txt\x00/../../secret.txt",
    "/%c0%ae%c0%ae/secret.txt",
    "/%c0%ae%c0%ae%c0%afsecret.txt",
    "/%e0%80%ae%e0%80%ae/secret.txt",
    "/..\\secret.txt",
    "/..%5c..%5csecret.txt",
    "/%5c..%5csecret.txt",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/link-out.txt",
    "/dir-out/secret.txt",
    "/dir-out/",
    "/escape/",
    "/escape/index.html",
    "/link-out.txt?x=/../",
]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("target", TRAVERSALS)
def test_no_target_escapes_the_root(files: StaticFiles, target: str, method: str) -> None:
    response = fetch(files, target, method)
    assert response.status in (400, 403, 404)
    assert response.file is None
    assert SECRET not in response.body
    assert response.body.count(b"\n") == 1  # a one-line message


def test_refusals_say_why(files: StaticFiles) -> None:
    assert fetch(files, "/%2e%2e/x").body == b"bad request: '..' in the path\n"
    assert fetch(files, "/a%00b").body == b"bad request: a NUL byte in the path\n"
    assert fetch(files, "/%c0%ae").body == b"bad request: the path is not valid UTF-8\n"
    assert fetch(files, "/link-out.txt").body == b"forbidden: /link-out.txt\n"
    assert fetch(files, "/link-out.txt").status == 403


def test_a_sibling_that_leaves_the_root_is_not_used(files: StaticFiles) -> None:
    response = fetch(files, "/leaky.css", accept_encoding="gzip")
    assert response.body == b"p { margin: 0 }\n"
    assert response.header("Content-Encoding") is None
    assert response.header("Vary") is None


def test_a_root_given_through_a_link_works(site: Path, tmp_path: Path) -> None:
    (tmp_path / "www-link").symlink_to(site)
    files = StaticFiles(str(tmp_path / "www-link"))
    assert fetch(files, "/digits.txt").body == b"0123456789"
    assert fetch(files, "/link-out.txt").status == 403


# -- methods --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"])
def test_other_methods_are_405(files: StaticFiles, method: str) -> None:
    response = fetch(files, "/digits.txt", method)
    assert response.status == 405
    assert response.header("Allow") == "GET, HEAD"


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/digits.txt", {}),
        ("/app.js", {"accept_encoding": "br"}),
        ("/big.bin", {}),
        ("/digits.txt", {"range": "bytes=2-4"}),
        ("/digits.txt", {"if_none_match": "*"}),
        ("/nope", {}),
    ],
)
def test_head_gets_what_get_gets(files: StaticFiles, target: str, headers: dict) -> None:
    got = fetch(files, target, "GET", **headers)
    head = fetch(files, target, "HEAD", **headers)
    assert head.head_bytes() == got.head_bytes()
    assert content(head) == content(got)


# -- content types -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.html", "text/html; charset=utf-8"),
        ("a.css", "text/css; charset=utf-8"),
        ("a.txt", "text/plain; charset=utf-8"),
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.mjs", "text/javascript; charset=utf-8"),
        ("a.json", "application/json; charset=utf-8"),
        ("a.json5", "application/json5"),
        ("a.wasm", "application/wasm"),
        ("a.svg", "image/svg+xml"),
        ("a.png", "image/png"),
        ("A.JS", "text/javascript; charset=utf-8"),
        ("a.unknownext", "application/octet-stream"),
        ("noext", "application/octet-stream"),
        ("a.js.gz", "application/gzip"),
        ("a.js.br", "application/octet-stream"),
    ],
)
def test_content_types(site: Path, files: StaticFiles, name: str, expected: str) -> None:
    (site / "types").mkdir(exist_ok=True)
    (site / "types" / name).write_bytes(b"x")
    response = fetch(files, f"/types/{name}")
    assert response.header("Content-Type") == expected
    assert response.header("Content-Encoding") is None


def test_mime_overrides(site: Path) -> None:
    (site / "data.xyz").write_bytes(b"x")
    (site / "page.html").write_bytes(b"x")
    (site / "old.js").write_bytes(b"x")
    files = StaticFiles(
        str(site),
        mime={".xyz": "text/x-custom", "html": "text/html; charset=latin-1",
              ".JS": "application/javascript"},
    )  # fmt: skip
    assert fetch(files, "/data.xyz").header("Content-Type") == "text/x-custom; charset=utf-8"
    assert fetch(files, "/page.html").header("Content-Type") == "text/html; charset=latin-1"
    assert fetch(files, "/old.js").header("Content-Type") == "application/javascript; charset=utf-8"


def test_a_compressed_file_asked_for_by_name_is_a_plain_file(files: StaticFiles) -> None:
    response = fetch(files, "/app.js.gz", accept_encoding="gzip, br")
    assert response.body == b"GZIP-OF-APP-JS"
    assert response.header("Content-Type") == "application/gzip"
    assert response.header("Content-Encoding") is None


# -- the 200 and its validators ---------------------------------------------------------------


def test_a_200_carries_validators_and_extra_headers(site: Path, files: StaticFiles) -> None:
    info = os.stat(site / "digits.txt")
    response = fetch(files, "/digits.txt")
    assert response.status == 200
    assert response.body == b"0123456789"
    assert response.header("ETag") == f'"{info.st_mtime_ns:x}-a"'
    assert response.header("Last-Modified") == formatdate(info.st_mtime, usegmt=True)
    assert response.header("Accept-Ranges") == "bytes"
    assert response.header("Cache-Control") == "max-age=60"
    assert response.header("X-Extra") == "yes"
    assert response.header("Vary") is None
    head = response.head_bytes()
    assert b"Content-Length: 10\r\n" in head
    for name in (b"\r\nDate:", b"\r\nConnection:"):
        assert name not in head


def test_an_empty_file(files: StaticFiles) -> None:
    response = fetch(files, "/empty.txt")
    assert (response.status, response.body) == (200, b"")
    assert fetch(files, "/empty.txt", range="bytes=0-").status == 416
    assert fetch(files, "/empty.txt", range="bytes=-1").status == 416


def etag_of(files: StaticFiles, target: str, **headers: str) -> str:
    return fetch(files, target, **headers).header("ETag")


@pytest.mark.parametrize(
    "template",
    ["{tag}", "W/{tag}", '"other", {tag}', '"a",W/{tag} ,"b"', "*", " {tag} "],
)
def test_if_none_match_gives_304(files: StaticFiles, template: str) -> None:
    tag = etag_of(files, "/digits.txt")
    response = fetch(files, "/digits.txt", if_none_match=template.format(tag=tag))
    assert response.status == 304
    assert response.body == b""
    assert response.header("ETag") == tag
    assert response.header("Last-Modified") is not None
    assert response.header("Cache-Control") == "max-age=60"
    assert response.header("X-Extra") is None
    assert b"Content-Length" not in response.head_bytes()
    assert fetch(files, "/digits.txt", if_none_match=tag) is response  # prepared once


@pytest.mark.parametrize("value", ['"nope"', 'W/"nope"', '"nope", W/"other"', ""])
def test_if_none_match_that_differs_gives_200(files: StaticFiles, value: str) -> None:
    response = fetch(files, "/digits.txt", if_none_match=value)
    assert (response.status, response.body) == (200, b"0123456789")


def test_if_modified_since(site: Path, files: StaticFiles) -> None:
    mtime = int(os.stat(site / "digits.txt").st_mtime)

    def status(since: str, **more: str) -> int:
        return fetch(files, "/digits.txt", if_modified_since=since, **more).status

    assert status(formatdate(mtime, usegmt=True)) == 304
    assert status(formatdate(mtime + 3600, usegmt=True)) == 304
    # A numeric zone is not an HTTP-date: RFC 9110 13.1.3 says to ignore the field then.
    assert status(formatdate(mtime, localtime=True).rsplit(" ", 1)[0] + " +0000") == 200
    assert status(formatdate(mtime - 1, usegmt=True)) == 200
    assert status("not a date") == 200
    assert status("") == 200
    assert status("Sun, 99 Foo 2024 99:99:99 GMT") == 200
    # If-None-Match decides alone when present.
    assert status(formatdate(mtime, usegmt=True), if_none_match='"other"') == 200
    not_modified = fetch(files, "/digits.txt", if_modified_since=formatdate(mtime, usegmt=True))
    assert not_modified.header("ETag") == etag_of(files, "/digits.txt")


# -- ranges -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "content_range", "body"),
    [
        ("bytes=0-3", "bytes 0-3/10", b"0123"),
        ("bytes=4-", "bytes 4-9/10", b"456789"),
        ("bytes=-3", "bytes 7-9/10", b"789"),
        ("bytes=-30", "bytes 0-9/10", b"0123456789"),
        ("bytes=8-1000", "bytes 8-9/10", b"89"),
        ("bytes=5-5", "bytes 5-5/10", b"5"),
        ("BYTES= 2-3 ", "bytes 2-3/10", b"23"),
    ],
)
def test_a_single_range_gives_206(files: StaticFiles, spec: str, content_range: str, body: bytes):
    response = fetch(files, "/digits.txt", range=spec)
    assert response.status == 206
    assert response.header("Content-Range") == content_range
    assert response.body == body
    assert response.header("ETag") == etag_of(files, "/digits.txt")
    assert f"Content-Length: {len(body)}\r\n".encode() in response.head_bytes()


@pytest.mark.parametrize("spec", ["bytes=10-", "bytes=10-20", "bytes=99999-", "bytes=-0"])
def test_an_unsatisfiable_range_gives_416(files: StaticFiles, spec: str) -> None:
    response = fetch(files, "/digits.txt", range=spec)
    assert response.status == 416
    assert response.header("Content-Range") == "bytes */10"
    assert response.body.startswith(b"range not satisfiable")


@pytest.mark.parametrize(
    "spec",
    ["bytes=0-1,4-5", "bytes=0-1, 4-5", "bytes=5-2", "bytes=-", "bytes=a-b", "bytes 0-1",
     "items=0-1", "bytes=0-1,", "bytes=--1", "bytes=1-2-3", "", "bytes=" + "9" * 40 + "-"],
)  # fmt: skip
def test_a_range_we_do_not_serve_gives_the_whole_file(files: StaticFiles, spec: str) -> None:
    response = fetch(files, "/digits.txt", range=spec)
    assert (response.status, response.body) == (200, b"0123456789")
    assert response is fetch(files, "/digits.txt")


def test_if_range(site: Path, files: StaticFiles) -> None:
    tag = etag_of(files, "/digits.txt")
    date = formatdate(os.stat(site / "digits.txt").st_mtime, usegmt=True)

    def status(if_range: str) -> int:
        return fetch(files, "/digits.txt", range="bytes=0-1", if_range=if_range).status

    assert status(tag) == 206
    assert status(date) == 206
    assert status('"other"') == 200
    assert status("W/" + tag) == 200  # If-Range needs a strong match
    assert status(formatdate(os.stat(site / "digits.txt").st_mtime - 10, usegmt=True)) == 200
    assert status("garbage") == 200


def test_if_none_match_wins_over_range(files: StaticFiles) -> None:
    tag = etag_of(files, "/digits.txt")
    assert fetch(files, "/digits.txt", range="bytes=0-1", if_none_match=tag).status == 304


# -- large files come from disk ---------------------------------------------------------


def test_a_large_file_is_sent_from_disk(site: Path, files: StaticFiles) -> None:
    response = fetch(files, "/big.bin")
    assert response.status == 200
    assert response.body == b""
    assert vars_of(response.file) == (str(site / "big.bin"), 0, len(BIG))
    assert f"Content-Length: {len(BIG)}\r\n".encode() in response.head_bytes()
    assert content(response) == BIG
    assert fetch(files, "/big.bin") is response


def test_a_range_of_a_large_file_is_a_file_slice(site: Path, files: StaticFiles) -> None:
    response = fetch(files, "/big.bin", range="bytes=1000-1999")
    assert response.status == 206
    assert vars_of(response.file) == (str(site / "big.bin"), 1000, 1000)
    assert response.header("Content-Range") == f"bytes 1000-1999/{len(BIG)}"
    assert content(response) == BIG[1000:2000]
    tail = fetch(files, "/big.bin", range="bytes=-10")
    assert vars_of(tail.file) == (str(site / "big.bin"), len(BIG) - 10, 10)


def test_files_beyond_the_memory_budget_are_sent_from_disk(site: Path) -> None:
    files = StaticFiles(str(site), cache_bytes=15)
    assert fetch(files, "/digits.txt").body == b"0123456789"  # 10 bytes fit
    beyond = fetch(files, "/sub/page.txt")  # 7 more do not
    assert beyond.file is not None
    assert content(beyond) == b"a page\n"


def test_a_file_exactly_at_the_limit_is_kept_in_memory(site: Path, files: StaticFiles) -> None:
    (site / "edge.bin").write_bytes(b"e" * SMALL_FILE)
    response = fetch(files, "/edge.bin")
    assert response.file is None
    assert len(response.body) == SMALL_FILE


# -- pre-compressed siblings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "encoding", "body"),
    [
        ("gzip, deflate, br", "br", b"BROTLI-OF-APP-JS"),
        ("gzip, br", "br", b"BROTLI-OF-APP-JS"),
        ("gzip", "gzip", b"GZIP-OF-APP-JS"),
        ("x-gzip", "gzip", b"GZIP-OF-APP-JS"),
        ("br;q=0, gzip", "gzip", b"GZIP-OF-APP-JS"),
        ("gzip;q=1.0, br;q=0.5", "gzip", b"GZIP-OF-APP-JS"),
        ("GZIP;Q=0.5, BR;Q=0.5", "br", b"BROTLI-OF-APP-JS"),
        ("*", "br", b"BROTLI-OF-APP-JS"),
        ("*;q=0.5, br;q=0", "gzip", b"GZIP-OF-APP-JS"),
        ("deflate", None, APP_JS),
        ("identity", None, APP_JS),
        ("br;q=0, gzip;q=0", None, APP_JS),
        ("gzip;q=2", None, APP_JS),
        ("br;q=nan", None, APP_JS),
        ("", None, APP_JS),
    ],
)
def test_accept_encoding_picks_a_sibling(
    files: StaticFiles, accept: str, encoding: str | None, body: bytes
) -> None:
    response = fetch(files, "/app.js", accept_encoding=accept)
    assert response.status == 200
    assert response.header("Content-Encoding") == encoding
    assert response.body == body
    assert response.header("Content-Type") == "text/javascript; charset=utf-8"
    assert response.header("Vary") == "Accept-Encoding"
    assert response.header("Cache-Control") == "max-age=60"


def test_no_accept_encoding_gets_the_identity_file(files: StaticFiles) -> None:
    response = fetch(files, "/app.js")
    assert response.body == APP_JS
    assert response.header("Content-Encoding") is None
    assert response.header("Vary") == "Accept-Encoding"
    assert response.header("Accept-Ranges") == "bytes"


def test_each_representation_has_its_own_etag(site: Path, files: StaticFiles) -> None:
    tags = {etag_of(files, "/app.js", accept_encoding=a) for a in ("br", "gzip", "identity")}
    assert len(tags) == 3
    info = os.stat(site / "app.js.gz")
    assert etag_of(files, "/app.js", accept_encoding="gzip") == (
        f'"{info.st_mtime_ns:x}-{info.st_size:x}-gzip"'
    )


def test_a_sibling_only_for_gzip(files: StaticFiles) -> None:
    response = fetch(files, "/style.css", accept_encoding="br, gzip")
    assert response.header("Content-Encoding") == "gzip"
    assert response.header("Content-Type") == "text/css; charset=utf-8"
    assert fetch(files, "/style.css", accept_encoding="br").header("Content-Encoding") is None


def test_304_for_a_compressed_representation(files: StaticFiles) -> None:
    tag = etag_of(files, "/app.js", accept_encoding="br")
    response = fetch(files, "/app.js", accept_encoding="br", if_none_match=tag)
    assert response.status == 304
    assert response.header("ETag") == tag
    assert response.header("Vary") == "Accept-Encoding"
    assert fetch(files, "/app.js", accept_encoding="gzip", if_none_match=tag).status == 200


def test_a_range_is_served_from_the_identity_file(files: StaticFiles) -> None:
    response = fetch(files, "/app.js", accept_encoding="br, gzip", range="bytes=0-6")
    assert response.status == 206
    assert response.body == APP_JS[:7]
    assert response.header("Content-Encoding") is None
    assert response.header("Vary") == "Accept-Encoding"
    missed = fetch(files, "/app.js", accept_encoding="br", range="bytes=9999-")
    assert missed.status == 416
    assert missed.header("Vary") == "Accept-Encoding"


# -- the hot path and freshness -------------------------------------------------------------


def test_the_same_response_object_is_returned_every_time(files: StaticFiles) -> None:
    first = fetch(files, "/app.js?v=3")
    assert fetch(files, "/app.js?v=3") is first
    assert fetch(files, "/app.js?v=4") is first
    assert fetch(files, "/app.js", "HEAD") is first
    assert fetch(files, "/app.js", accept_encoding="br") is fetch(
        files, "/app.js?v=3", accept_encoding="br"
    )
    assert first.head_bytes() is first.head_bytes()  # the encoded head is kept


def test_remembered_targets_are_bounded(files: StaticFiles, monkeypatch) -> None:
    monkeypatch.setattr(static, "MAX_TARGETS", 8)
    first = fetch(files, "/digits.txt")
    for n in range(50):
        assert fetch(files, f"/digits.txt?n={n}") is first
        assert len(files._targets) <= 8


def test_cache_entries_are_bounded(site: Path, files: StaticFiles, monkeypatch) -> None:
    monkeypatch.setattr(static, "MAX_FILES", 4)
    for n in range(20):
        (site / f"f{n}.txt").write_bytes(b"x" * 100)
        assert fetch(files, f"/f{n}.txt").body == b"x" * 100
        assert len(files._files) <= 4
        assert files._cached <= 4 * 100


def change(path: Path, data: bytes) -> None:
    """Rewrite a file and move its mtime on, as an editor saving it later would."""
    before = os.stat(path).st_mtime_ns
    path.write_bytes(data)
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))


def test_a_changed_file_is_served_fresh_after_the_recheck_interval(site: Path) -> None:
    files = StaticFiles(str(site), recheck=0.05)
    old = fetch(files, "/digits.txt?v=1")
    change(site / "digits.txt", b"new content")
    assert fetch(files, "/digits.txt?v=1") is old  # trusted within the interval
    time.sleep(0.1)
    new = fetch(files, "/digits.txt?v=1")
    assert new.body == b"new content"
    assert new.header("ETag") != old.header("ETag")
    assert fetch(files, "/digits.txt") is new
    assert fetch(files, "/digits.txt", if_none_match=old.header("ETag")).status == 200


def test_a_changed_file_is_noticed_within_a_second_by_default(site: Path, files: StaticFiles):
    fetch(files, "/sub/page.txt")
    change(site / "sub" / "page.txt", b"edited")
    time.sleep(1.05)
    assert fetch(files, "/sub/page.txt").body == b"edited"


def test_a_deleted_file_is_gone_after_the_recheck_interval(site: Path) -> None:
    files = StaticFiles(str(site), recheck=0.05)
    assert fetch(files, "/digits.txt").status == 200
    (site / "digits.txt").unlink()
    time.sleep(0.1)
    assert fetch(files, "/digits.txt").status == 404


def test_a_new_sibling_is_picked_up(site: Path) -> None:
    files = StaticFiles(str(site), recheck=0.05)
    assert fetch(files, "/sub/page.txt", accept_encoding="gzip").header("Vary") is None
    (site / "sub" / "page.txt.gz").write_bytes(b"GZ")
    time.sleep(0.1)
    response = fetch(files, "/sub/page.txt", accept_encoding="gzip")
    assert (response.body, response.header("Content-Encoding")) == (b"GZ", "gzip")


def test_a_retargeted_link_is_followed_after_the_recheck_interval(site: Path, tmp_path: Path):
    files = StaticFiles(str(site), recheck=0.05)
    (site / "current").symlink_to(site / "sub")
    assert fetch(files, "/current/page.txt").body == b"a page\n"
    (site / "current").unlink()
    (site / "current").symlink_to(tmp_path / "outside")
    time.sleep(0.1)
    response = fetch(files, "/current/secret.txt")
    assert response.status in (403, 404)
    assert fetch(files, "/current/page.txt").status in (403, 404)
