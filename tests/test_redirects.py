"""`redirect` in web.json5: real sockets for the replies, real files for the config errors."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest

from httap import config
from httap.config import ConfigError
from tests.client import Client
from tests.conftest import HELLO

RULES = [
    {"from": "/old", "to": "/hello.txt", "status": 301},
    {"from": "/docs/*", "to": "/manual/*"},
    {"from": "/away/*", "to": "https://example.org"},
    {"from": "/root/*", "to": "/"},
]


@pytest.fixture
def client(make_server, docs):
    running = make_server(documents=str(docs), redirect=RULES)
    with running.connect() as sock:
        yield Client(sock)


@pytest.mark.parametrize(
    ("target", "status", "location"),
    [
        ("/old", 301, "/hello.txt"),
        ("/old?v=2&x", 301, "/hello.txt?v=2&x"),
        ("/docs/a/b.html", 302, "/manual/a/b.html"),
        ("/docs/", 302, "/manual/"),
        ("/docs/page?q=1", 302, "/manual/page?q=1"),
        ("/away/x/y?z", 302, "https://example.org/x/y?z"),
        ("/root//evil.example", 302, "/evil.example"),  # never "//evil.example"
    ],
)
def test_a_matching_path_is_redirected(client, target, status, location):
    reply = client.get(target)
    assert (reply.status, reply.headers["location"]) == (status, location)
    assert reply.headers["content-type"].startswith("text/plain")
    assert reply.body == f"redirect to {location}\n".encode()


def test_other_paths_and_the_dynamic_domain_are_not_redirected(client):
    assert client.get("/old/more").status == 404  # exact, not a prefix
    assert client.get("/docs").status == 404  # the prefix is "/docs/"
    assert client.get("/hello.txt").body == HELLO


def test_everything_but_the_dynamic_domain_to_https(make_server, docs):
    running = make_server(documents=str(docs), redirect=[{"from": "/*", "to": "https://pi/*"}])
    with running.connect() as sock:
        client = Client(sock)
        reply = client.get("/hello.txt")
        assert (reply.status, reply.headers["location"]) == (302, "https://pi/hello.txt")
        assert client.get("/").headers["location"] == "https://pi/"
        assert client.get("/?gpio").status == 200  # `/?` targets are never redirected


def test_a_scheme_limits_a_rule_to_plain_http(make_server, docs, tls_pair):
    """Plain HTTP is sent to https; requests that came over https are served."""
    running = make_server(
        documents=str(docs),
        listen=["http://127.0.0.1:0", "https://127.0.0.1:0"],
        tls__certificate=tls_pair[0],
        tls__key=tls_pair[1],
        redirect=[
            {"from": "/*", "to": "https://localhost:8443/*", "scheme": "http", "status": 301}
        ],
    )
    with running.connect() as sock:
        reply = Client(sock).get("/hello.txt?x=1")
    assert (reply.status, reply.headers["location"]) == (
        301,
        "https://localhost:8443/hello.txt?x=1",
    )
    port = running.server.listeners[1].sock.getsockname()[1]
    ctx = ssl.create_default_context(cafile=tls_pair[0])
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
        reply = Client(sock).get("/hello.txt?x=1")
    assert (reply.status, reply.body) == (200, HELLO)


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/guide?lang=fr&v=2", "/guide/?lang=fr&v=2"),  # the directory's own 301
        ("/guide", "/guide/"),
        ("/guide?q=%C3%A9t%C3%A9+x", "/guide/?q=%C3%A9t%C3%A9+x"),  # the query as sent
        ("/old?lang=fr&v=2", "/hello.txt?lang=fr&v=2"),  # a configured rule
        ("/away/x?lang=fr", "https://example.org/x?lang=fr"),
    ],
)
def test_every_redirect_keeps_the_query(make_server, docs, target, location):
    (docs / "guide").mkdir()
    (docs / "guide" / "index.html").write_bytes(b"<h1>guide</h1>\n")
    running = make_server(documents=str(docs), redirect=RULES)
    with running.connect() as sock:
        client = Client(sock)
        reply = client.get(target)
        assert reply.status in (301, 302)
        assert reply.headers["location"] == location
        if location.startswith("/"):  # followed on this server, it is served
            assert client.get(location).status == 200
        assert client.get("/hello.txt").body == HELLO  # the connection goes on


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_each_status(make_server, docs, status):
    running = make_server(
        documents=str(docs), redirect=[{"from": "/a", "to": "/b", "status": status}]
    )
    with running.connect() as sock:
        reply = Client(sock).get("/a")
    assert (reply.status, reply.headers["location"]) == (status, "/b")


def test_no_redirects_by_default():
    assert config.load(None, env={}, overrides={"documents": "."}).redirect == ()


def test_to_dict_gives_the_keys_back(tmp_path: Path):
    path = tmp_path / "web.json5"
    path.write_text('{redirect: [{from: "/*", to: "https://host"}]}')
    loaded = config.load(str(path), env={})
    assert config.to_dict(loaded)["redirect"] == [
        {"from": "/*", "to": "https://host/", "status": 302}
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("5", "redirect[0]: found 5 (a number), expected an object like"),
        ('{from: "/a"}', 'redirect[0]: missing key "to"'),
        ('{from: "/a", to: "/b", code: 301}', "redirect[0].code: unknown key; allowed keys"),
        ('{from: "a", to: "/b"}', 'redirect[0].from: found "a", expected a path like "/old"'),
        ('{from: "/a?b", to: "/b"}', 'redirect[0].from: found "/a?b", expected a path'),
        ('{from: "/a*b", to: "/b"}', 'redirect[0].from: found "/a*b", expected a path'),
        ('{from: "/a", to: "ftp://h/"}', 'redirect[0].to: found "ftp://h/", expected a path'),
        ('{from: "/a", to: ""}', 'redirect[0].to: found "", expected a path'),
        ('{from: "/a", to: "/b c"}', 'redirect[0].to: found "/b c", expected a path'),
        (
            '{from: "/a", to: "/b?lang=fr"}',
            'redirect[0].to: found "/b?lang=fr", expected a path like "/new" or a URL like'
            ' "https://host/new", with no query: the request\'s is kept',
        ),
        ('{from: "/a", to: "/b/*"}', 'redirect[0].to: ends with "*", but "from" is not a prefix'),
        (
            '{from: "/a", to: "/b", status: 304}',
            "redirect[0].status: found 304, expected one of 301",
        ),
        ('{from: "/a", to: "/b", status: "301"}', 'redirect[0].status: found "301" (a string)'),
        (
            '{from: "/a", to: "/b", scheme: "ftp"}',
            'redirect[0].scheme: found "ftp", expected "http" or "https"',
        ),
    ],
)
def test_config_errors_are_one_line(tmp_path: Path, entry, message):
    path = tmp_path / "web.json5"
    path.write_text(f"{{redirect: [{entry}]}}")
    with pytest.raises(ConfigError) as info:
        config.load(str(path), env={})
    assert str(info.value).startswith(f"{path}: {message}")
    assert "\n" not in str(info.value)
