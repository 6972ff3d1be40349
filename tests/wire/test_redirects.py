"""`redirect` in web.json5: the replies, over real sockets. The config errors are in
tests/unit/test_redirect_rules.py."""

from __future__ import annotations

import socket
import ssl

import pytest

from tests.helpers import HELLO
from tests.helpers.client import Client

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
