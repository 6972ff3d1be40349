"""Every reply states its caching (issue 11, item 15), and REDbot finds no problem.

Files revalidate by default (`no-cache`, answered with a cheap 304) and `cache` gives
paths a lifetime; dynamic replies keep the contract's no-cache headers with an `Expires`
that is a real HTTP-date; refusals, redirects and protocol errors say `no-store`.
REDbot ("lint for HTTP", PyPI `redbot`) is run over a live server on 127.0.0.1.
"""

from __future__ import annotations

import configparser
import socket
from pathlib import Path

import pytest

from httap import config
from httap.config import ConfigError
from httap.http import Request, Response, parse_http_date
from httap.static import StaticFiles
from tests.helpers.client import Client, Reply

PAST = "Thu, 01 Jan 1970 00:00:00 GMT"
DYNAMIC = "no-cache, no-store, must-revalidate"
PINS = {"led": {"gpio": 17, "mode": "out"}}


# -- the file domain: the rule of each path -----------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Path:
    www = tmp_path / "www"
    (www / "assets" / "fonts").mkdir(parents=True)
    for name in (
        "index.html",
        "app.js",
        "other.txt",
        "assets/logo.svg",
        "assets/app.css",
        "assets/app.css.gz",
        "assets/fonts/a.woff2",
        "assets/fonts/b.woff2",
    ):
        (www / name).write_bytes(b"0123456789" * 3)
    return www


def get(files: StaticFiles, target: str, **headers: str) -> Response:
    fields = {"host": "x", **{k.replace("_", "-"): v for k, v in headers.items()}}
    response = files.handle(Request("GET", target, "HTTP/1.1", fields, True))
    response.head_bytes()
    return response


def test_a_file_no_rule_names_is_revalidated_by_every_reply(site: Path) -> None:
    files = StaticFiles(str(site))
    ok = get(files, "/app.js")
    replies = {
        200: ok,
        206: get(files, "/app.js", range="bytes=0-3"),
        304: get(files, "/app.js", if_none_match=ok.header("ETag")),
        -200: get(files, "/assets/app.css", accept_encoding="gzip"),  # the .gz sibling
    }
    for status, reply in replies.items():
        assert reply.status == abs(status)
        assert reply.header("Cache-Control") == "no-cache", status
        assert reply.header("Expires") is None
    assert replies[-200].header("Content-Encoding") == "gzip"


RULES = {
    "/index.html": 60,
    "/app.js": 0,
    "/assets/*": 3600,
    "/assets/fonts/*": 31_536_000,
    "/assets/fonts/b.woff2": 7,
    "/*": 5,
}


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/", "max-age=60"),  # the index, by the name of its file
        ("/index.html", "max-age=60"),
        ("/app.js", "no-cache"),  # 0: revalidate, though "/*" matches too
        ("/other.txt", "max-age=5"),  # only "/*" matches
        ("/assets/logo.svg", "max-age=3600"),
        ("/assets/fonts/a.woff2", "max-age=31536000"),  # the longest prefix wins
        ("/assets/fonts/b.woff2", "max-age=7"),  # the exact path wins over any prefix
    ],
)
def test_the_exact_path_then_the_longest_prefix_gives_the_lifetime(
    site: Path, target: str, expected: str
) -> None:
    files = StaticFiles(str(site), cache=RULES)
    ok = get(files, target)
    assert ok.header("Cache-Control") == expected
    assert get(files, target, if_none_match=ok.header("ETag")).header("Cache-Control") == expected
    assert get(files, target, range="bytes=1-2").header("Cache-Control") == expected


def test_a_sibling_follows_the_rule_of_its_file(site: Path) -> None:
    files = StaticFiles(str(site), cache={"/assets/app.css": 600})
    assert get(files, "/assets/app.css", accept_encoding="gzip").header("Content-Encoding")
    assert get(files, "/assets/app.css", accept_encoding="gzip").header("Cache-Control") == (
        "max-age=600"
    )


# -- the `cache` key -----------------------------------------------------------------------


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "web.json5"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_the_cache_key_is_read_and_shown_back(tmp_path: Path) -> None:
    path = write_config(tmp_path, "{cache: {'/index.html': 0, '/assets/*': 86400}}")
    settings = config.load(path, env={})
    assert dict(settings.cache) == {"/index.html": 0, "/assets/*": 86400}
    assert config.to_dict(settings)["cache"] == {"/index.html": 0, "/assets/*": 86400}
    assert dict(config.load(None, env={}, overrides={}).cache) == {}


PATH_NOUN = 'expected file paths like "/index.html" or prefixes like "/assets/*"'
SECONDS = "expected a whole number of seconds from 0 to 31536000"
HEADER_NOUN = (
    "expected header names (HTTP tokens; not Connection, Content-Length or Transfer-Encoding,"
    " which the server sets, nor Cache-Control or Expires: set lifetimes with `cache`)"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{cache: {'assets/*': 60}}", f'cache: found the key "assets/*", {PATH_NOUN}'),
        ("{cache: {'/assets/': 60}}", f'cache: found the key "/assets/", {PATH_NOUN}'),
        ("{cache: {'/a*b': 60}}", f'cache: found the key "/a*b", {PATH_NOUN}'),
        ("{cache: {'': 60}}", f'cache: found the key "", {PATH_NOUN}'),
        ("{cache: {'/app.js': -1}}", f'cache."/app.js": found -1, {SECONDS}'),
        ("{cache: {'/app.js': 1.5}}", f'cache."/app.js": found 1.5, {SECONDS}'),
        ("{cache: {'/app.js': 31536001}}", f'cache."/app.js": found 31536001, {SECONDS}'),
        ("{cache: {'/app.js': '60'}}", f'cache."/app.js": found "60" (a string), {SECONDS}'),
        ("{cache: {'/app.js': true}}", f'cache."/app.js": found true (a boolean), {SECONDS}'),
        ("{cache: ['/app.js']}", "cache: found a list, expected an object"),
        (
            "{headers: {'cache-control': 'max-age=9'}}",
            f'headers: found the key "cache-control", {HEADER_NOUN}',
        ),
        ("{headers: {'Expires': '0'}}", f'headers: found the key "Expires", {HEADER_NOUN}'),
    ],
)  # fmt: skip
def test_a_bad_cache_setting_is_one_line_that_names_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        config.load(path, env={})
    assert str(info.value) == f"{path}: {message}"


# -- every reply of a live server ------------------------------------------------------------

APP = """
from httap import http

def setup(server):
    @server.action("raw")
    def raw(request):
        return b"raw bytes"

    @server.action("nothing", methods=("POST",))
    def nothing(request):
        return None
"""


@pytest.fixture
def live(make_server, tmp_path: Path):
    www = tmp_path / "www"
    (www / "sub").mkdir(parents=True)
    (www / "index.html").write_bytes(b"<!doctype html><title>t</title>\n")
    (www / "hello.txt").write_bytes(b"hello, world\n")
    (www / "sub" / "index.html").write_bytes(b"sub\n")
    app = tmp_path / "app.py"
    app.write_text(APP)
    return make_server(
        documents=str(www),
        app=str(app),
        gpio__backend="sim",
        gpio__pins=PINS,
        hosts=["pi.local"],
        redirect=[{"from": "/old", "to": "/hello.txt"}],
        cache={"/hello.txt": 120},
        timeouts__parse=0.3,
        limits__uri=256,
        limits__header=512,
        limits__body=64,
    )


def ask(running, data: bytes) -> Reply:
    client = Client(running.connect())
    try:
        client.send(data)
        return client.read(head_only=data.startswith(b"HEAD "))
    finally:
        client.close()


def head(method: str, target: str, extra: str = "", host: str = "pi.local") -> bytes:
    return f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


def test_every_kind_of_reply_states_its_caching(live) -> None:
    """Files, their 304 and 206, every refusal, redirects, protocol errors, gates, the
    vocabulary and actions: each reply says how it may be cached."""
    etag = ask(live, head("GET", "/hello.txt")).headers["etag"]
    file_kinds = [
        ("GET", "/", "", 200, "no-cache"),
        ("HEAD", "/", "", 200, "no-cache"),
        ("GET", "/hello.txt", "", 200, "max-age=120"),
        ("GET", "/hello.txt", f"If-None-Match: {etag}\r\n", 304, "max-age=120"),
        ("GET", "/hello.txt", "Range: bytes=0-4\r\n", 206, "max-age=120"),
        ("GET", "/hello.txt", "Range: bytes=99-\r\n", 416, "no-store"),
        ("GET", "/nope", "", 404, "no-store"),
        ("GET", "/sub", "", 301, "no-store"),
        ("GET", "/a/%2e%2e/b", "", 400, "no-store"),
        ("DELETE", "/hello.txt", "", 405, "no-store"),
        ("GET", "/old", "", 302, "no-store"),
    ]
    dynamic_kinds = [
        ("GET", "/?", "", 200),
        ("GET", "/?gpio/led", "", 200),
        ("GET", "/?raw", "", 200),
        ("POST", "/?nothing", "", 204),
        ("OPTIONS", "/?gpio", "", 204),
        ("GET", "/?no-such-thing", "", 404),
        ("DELETE", "/?gpio/led", "", 405),
        ("POST", "/?gpio/led", "Content-Length: 3\r\n\r\nbad", 400),
    ]
    wrong = []
    for method, target, extra, status, expected in file_kinds:
        reply = ask(live, head(method, target, extra))
        if (reply.status, reply.headers.get("cache-control")) != (status, expected):
            wrong.append((method, target, reply.raw_head))
        if "expires" in reply.headers:
            wrong.append((method, target, reply.raw_head))
    for method, target, extra, status in dynamic_kinds:
        reply = ask(live, head(method, target, extra))
        found = (reply.status, reply.headers.get("cache-control"), reply.headers.get("expires"))
        if found != (status, DYNAMIC, PAST):
            wrong.append((method, target, reply.raw_head))
    # The gates: a Host that `hosts` does not list, in each domain's format.
    for target, expected in (("/", "no-store"), ("/?gpio", DYNAMIC)):
        reply = ask(live, head("GET", target, host="evil.example"))
        if (reply.status, reply.headers.get("cache-control")) != (421, expected):
            wrong.append(("GET", target, reply.raw_head))
    assert not wrong, wrong
    assert parse_http_date(PAST) == 0


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET / HTTP/2.0\r\nHost: pi.local\r\n\r\n", 505),
        (b"BREW / HTTP/1.1\r\nHost: pi.local\r\n\r\n", 501),
        (b"GET /" + b"u" * 300 + b" HTTP/1.1\r\nHost: pi.local\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: pi.local\r\nX-Big: " + b"b" * 600 + b"\r\n\r\n", 431),
        (b"POST /?gpio/led HTTP/1.1\r\nHost: pi.local\r\nContent-Length: 65\r\n\r\n", 413),
        (b"GET / HTTP/1.1\r\nHost: pi.lo", 408),  # timeouts.parse: 0.3 s
    ],
)
def test_protocol_errors_say_no_store(live, data: bytes, status: int) -> None:
    reply = ask(live, data)
    assert reply.status == status, reply.raw_head
    assert reply.headers["cache-control"] == "no-store"
    assert b"Connection: close" in reply.raw_head


def test_the_503_over_the_connection_limit_says_no_store(make_server, docs) -> None:
    running = make_server(documents=str(docs), limits__connections=1)
    held = Client(running.connect())
    assert held.get("/").status == 200
    reply = Client(running.connect()).read()
    assert reply.status == 503
    assert reply.headers["cache-control"] == "no-store"
    assert held.get("/hello.txt").status == 200  # the one inside is still served


# -- REDbot over a live server ------------------------------------------------------------------

# Warnings that are choices, each with its reason; any other warning or bad note fails.
ACCEPTED_WARNINGS = {
    # The HTTaP contract's header on every `/?` reply (docs/protocol.md): no-store alone
    # would do, and old caches that ignore it still obey no-cache and must-revalidate.
    "CC_CONFLICTING": lambda uri: "/?" in uri,
}


def lint(port: int, requests: list[tuple[str, list[tuple[str, str]], bool]], monkeypatch):
    """Run REDbot on each (path, request headers, descend into assets) at once, with its
    connections and name lookups confined to 127.0.0.1. Returns the checked resources."""
    redbot = pytest.importorskip("redbot.resource", reason="REDbot needs Python 3.11 or later")
    import thor
    import thor.dns
    from redbot.resource.fetch import RedFetcher

    lookup = thor.dns._lookup

    def local_only(host: bytes, port: int, kind: int):
        if host != b"127.0.0.1":
            return socket.gaierror(1, f"the test contacts 127.0.0.1 only, not {host!r}")
        return lookup(host, port, kind)

    monkeypatch.setattr(thor.dns, "_lookup", local_only)
    monkeypatch.setattr(RedFetcher.client, "check_ip", lambda address: address == "127.0.0.1")
    parser = configparser.ConfigParser()
    parser.read_dict({"redbot": {"enable_local_access": "True"}})
    resources = []
    for path, headers, descend in requests:
        resource = redbot.HttpResource(parser["redbot"], descend=descend)
        resource.set_request(f"http://127.0.0.1:{port}{path}", headers=headers)
        resources.append(resource)
    left = set(resources)

    def finished(resource) -> None:
        left.discard(resource)
        if not left:
            thor.stop()

    for resource in resources:
        resource.on("check_done", lambda resource=resource: finished(resource))
    timer = thor.schedule(60, thor.stop)
    for resource in resources:
        resource.check()
    thor.run()
    timer.delete()
    assert not left, f"REDbot did not finish within 60 s: {left}"
    return resources


def checked(resource):
    """The resource, its active checks (conditional, range, conneg) and its assets."""
    yield resource
    for sub in resource.subreqs.values():
        if sub.fetch_started:
            yield sub
    for linked, _tag in resource.linked:
        yield from checked(linked)


def problems(resource) -> list[str]:
    found = []
    for each in checked(resource):
        uri = each.request.uri
        if not uri.startswith("http://127.0.0.1:"):
            found.append(f"{uri}: not on 127.0.0.1")
        if each.fetch_error is not None:
            found.append(f"{uri}: {each.fetch_error.desc} {each.fetch_error.detail}")
        for note in each.response.notes:
            for one in (note, *note.subnotes):
                level, name = one.level.value, type(one).__name__
                accepted = ACCEPTED_WARNINGS.get(name, lambda uri: False)
                if level == "bad" or (level == "warning" and not accepted(uri)):
                    found.append(f"{uri} ({each.check_name}, {each.response.status_code}):"
                                 f" {level} {name}: {one.summary}")  # fmt: skip
    return found


def test_redbot_finds_no_problem(make_server, monkeypatch) -> None:
    """The browser app and its assets, a `/?` read, a 404, a 304 and a range; REDbot also
    makes its own conditional, range and negotiation requests on each."""
    running = make_server(
        gpio__backend="sim", gpio__pins=PINS, cache={"/console.js": 600}
    )  # the shipped app: static/
    etag = Client(running.connect()).get("/httap.js").headers["etag"]
    requests = [
        ("/", [], True),
        ("/httap.js", [], False),
        ("/?gpio/led", [], False),
        ("/?ping", [], False),
        ("/?gpio/nope", [], False),
        ("/nope.html", [], False),
        ("/httap.js", [("If-None-Match", etag)], False),
        ("/httap.js", [("Range", "bytes=0-99")], False),
    ]
    resources = lint(running.port, requests, monkeypatch)
    base = f"http://127.0.0.1:{running.port}"
    assert [resource.request.uri for resource in resources] == [
        base + path for path, _, _ in requests
    ]  # as asked: REDbot would turn "/?" into "/"
    statuses = [resource.response.status_code for resource in resources]
    assert statuses[:4] + statuses[5:] == [200, 200, 200, 200, 404, 304, 206]
    assert 400 <= statuses[4] < 500  # an unknown pin
    assets = [linked.request.uri for linked, _ in resources[0].linked]
    assert assets == [base + "/console.js"]  # the page's script
    found = [problem for resource in resources for problem in problems(resource)]
    assert not found, "\n".join(found)
