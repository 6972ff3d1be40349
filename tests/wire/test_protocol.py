"""HTTP/1.1 over real sockets: keep-alive, pipelining, framing, errors and the file domain.

Every test talks to a real Server (running in a thread) through a raw socket, sending
exact bytes: nothing is normalised on the way, so what the server sees is what we wrote.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import time
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tests.helpers.client import Client, Reply

HELLO = b"hello, world\n"
RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset
SECRET = b"S3CR3T-7f3a9c-the-server-must-never-send-these-bytes"


def connect(server, timeout: float = 5.0) -> Client:
    return Client(server.connect(timeout=timeout))


def docs_of(server) -> Path:
    return Path(server.config.documents)


def request(target: str, method: str = "GET", headers: str = "", version: str = "HTTP/1.1"):
    host = "Host: test\r\n" if version == "HTTP/1.1" else ""
    return f"{method} {target} {version}\r\n{host}{headers}\r\n".encode()


def check_file_reply(reply: Reply, body: bytes) -> None:
    assert reply.status == 200, reply.raw_head
    assert reply.headers["content-length"] == str(len(body))
    assert reply.body == body


def exchange(server, data: bytes) -> Client:
    """A new connection that has sent `data` (and is ready to read)."""
    client = connect(server)
    client.send(data)
    return client


# -- keep-alive and pipelining ---------------------------------------------------------


def test_keep_alive_many_requests_on_one_connection(server):
    index = (docs_of(server) / "index.html").read_bytes()
    client = connect(server)
    for i in range(200):
        if i % 3 == 0:
            reply = client.get("/hello.txt")
            check_file_reply(reply, HELLO)
        elif i % 3 == 1:
            reply = client.get(f"/index.html?n={i}")
            check_file_reply(reply, index)
        else:
            reply = client.get(f"/missing-{i}")
            assert reply.status == 404
            assert f"/missing-{i}".encode() in reply.body
        assert "connection" not in reply.headers  # HTTP/1.1 default: stays open
    assert not client.buf
    client.close()


def test_pipelined_requests_are_answered_in_order(server):
    index = (docs_of(server) / "index.html").read_bytes()
    expected = []
    data = b""
    for i in range(50):
        kind = i % 5
        if kind == 0:
            data += request("/hello.txt")
            expected.append(("GET", 200, HELLO))
        elif kind == 1:
            data += request("/index.html")
            expected.append(("GET", 200, index))
        elif kind == 2:
            data += request(f"/nothing-here-{i}")
            expected.append(("GET", 404, f"not found: /nothing-here-{i}\n".encode()))
        elif kind == 3:
            data += request("/hello.txt", "HEAD")
            expected.append(("HEAD", 200, b""))
        else:
            data += request("/hello.txt", headers=f"Range: bytes={i % 7}-{i % 7 + 2}\r\n")
            expected.append(("GET", 206, HELLO[i % 7 : i % 7 + 3]))
    client = exchange(server, data)
    for i, (method, status, body) in enumerate(expected):
        reply = client.read(head_only=method == "HEAD")
        assert (i, reply.status, reply.body) == (i, status, body)
        if method == "HEAD":
            assert reply.headers["content-length"] == str(len(HELLO))
    # nothing more: one response per request
    client.send(request("/hello.txt"))
    check_file_reply(client.read(), HELLO)
    assert not client.buf
    client.close()


def test_pipelining_beyond_the_output_high_water_mark(server):
    """Enough pipelined responses to exceed the bytes the server queues before it stops
    running requests: each one still arrives, whole and in order."""
    index = (docs_of(server) / "index.html").read_bytes()
    count = 400  # 400 x ~1.3 KiB > 256 KiB
    data = b"".join(request(f"/index.html?i={i}") for i in range(count))
    data += request("/nothing-at-the-end")
    client = exchange(server, data)
    for _ in range(count):
        check_file_reply(client.read(), index)
    assert client.read().status == 404
    client.close()


def test_pipelined_file_from_disk_then_small_file(server):
    """A sendfile body is followed by the next response, not interleaved with it."""
    big = (docs_of(server) / "big.bin").read_bytes()
    data = request("/big.bin") + request("/hello.txt") + request("/big.bin", "HEAD")
    data += request("/big.bin", headers="Range: bytes=10-19\r\n") + request("/hello.txt")
    client = exchange(server, data)
    check_file_reply(client.read(), big)
    check_file_reply(client.read(), HELLO)
    head = client.read(head_only=True)
    assert head.status == 200 and head.headers["content-length"] == str(len(big))
    ranged = client.read()
    assert ranged.status == 206 and ranged.body == big[10:20]
    check_file_reply(client.read(), HELLO)
    client.close()


def test_request_sent_one_byte_at_a_time(server):
    sock = server.connect()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = Client(sock)
    data = request("/hello.txt", headers="X-Slow: yes\r\n") + request("/nothing", "HEAD")
    for byte in data:
        client.send(bytes([byte]))
        time.sleep(0.0005)
    check_file_reply(client.read(), HELLO)
    assert client.read(head_only=True).status == 404
    client.send(request("/hello.txt"))
    check_file_reply(client.read(), HELLO)
    client.close()


def test_head_split_across_the_blank_line(server):
    sock = server.connect()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = Client(sock)
    data = request("/hello.txt")
    for part in (data[:-3], data[-3:-1], data[-1:]):
        client.send(part)
        time.sleep(0.02)
    check_file_reply(client.read(), HELLO)
    client.close()


# -- connection persistence --------------------------------------------------------------


def test_http10_without_keep_alive_is_answered_then_closed(server):
    client = exchange(server, request("/hello.txt", version="HTTP/1.0"))
    reply = client.read()
    check_file_reply(reply, HELLO)
    assert reply.headers["connection"].lower() == "close"
    assert client.closed()
    assert not client.buf  # nothing after the response
    client.close()


def test_http10_keep_alive_stays_open(server):
    client = connect(server)
    client.send(request("/hello.txt", headers="Connection: keep-alive\r\n", version="HTTP/1.0"))
    reply = client.read()
    check_file_reply(reply, HELLO)
    assert reply.headers["connection"].lower() == "keep-alive"
    client.send(request("/index.html", headers="Connection: Keep-Alive\r\n", version="HTTP/1.0"))
    reply = client.read()
    assert reply.status == 200 and reply.headers["connection"].lower() == "keep-alive"
    client.send(request("/hello.txt", version="HTTP/1.0"))  # this one does not ask
    reply = client.read()
    check_file_reply(reply, HELLO)
    assert reply.headers["connection"].lower() == "close"
    assert client.closed()
    client.close()


def test_http11_connection_close(server):
    client = exchange(server, request("/hello.txt", headers="Connection: close\r\n"))
    reply = client.read()
    check_file_reply(reply, HELLO)
    assert reply.headers["connection"].lower() == "close"
    assert client.closed()
    assert not client.buf
    client.close()


def test_connection_close_among_pipelined_requests_ends_the_stream(server):
    data = request("/hello.txt") + request("/hello.txt", headers="Connection: close\r\n")
    data += request("/index.html")  # after the close: never answered
    client = exchange(server, data)
    assert client.read().status == 200
    last = client.read()
    assert last.status == 200 and last.headers["connection"].lower() == "close"
    assert client.closed()
    assert not client.buf
    client.close()


def test_request_limit_per_connection(make_server, tmp_path):
    (tmp_path / "hello.txt").write_bytes(HELLO)
    server = make_server(documents=str(tmp_path), limits__requests=3)
    client = exchange(server, request("/hello.txt") * 5)
    for _ in range(2):
        reply = client.read()
        check_file_reply(reply, HELLO)
        assert "connection" not in reply.headers
    reply = client.read()
    check_file_reply(reply, HELLO)
    assert reply.headers["connection"].lower() == "close"
    assert client.closed()
    assert not client.buf
    client.close()


def test_half_close_still_gets_the_response(server):
    client = connect(server)
    client.send(request("/hello.txt"))
    client.sock.shutdown(socket.SHUT_WR)
    check_file_reply(client.read(), HELLO)
    assert client.closed()
    assert not client.buf
    client.close()


def test_half_close_after_pipelined_requests_answers_them_all(server):
    big = (docs_of(server) / "big.bin").read_bytes()
    client = connect(server)
    client.send(request("/hello.txt") + request("/big.bin") + request("/hello.txt"))
    client.sock.shutdown(socket.SHUT_WR)
    check_file_reply(client.read(), HELLO)
    check_file_reply(client.read(), big)
    check_file_reply(client.read(), HELLO)
    assert client.closed()
    assert not client.buf
    client.close()


def test_half_close_with_incomplete_request_closes(server):
    client = connect(server)
    client.send(b"GET /hello.txt HTTP/1.1\r\nHost: te")
    client.sock.shutdown(socket.SHUT_WR)
    assert client.closed()
    assert not client.buf or client.buf.startswith(b"HTTP/1.1 4")
    client.close()


# -- the file domain over the wire ---------------------------------------------------------


def test_head_has_the_get_headers_and_no_body(server):
    client = connect(server)
    for target, body in (("/hello.txt", HELLO), ("/big.bin", None), ("/nothing", None)):
        got = client.get(target)
        head = client.get(target, method="HEAD")
        assert head.status == got.status
        strip = {k: v for k, v in got.headers.items() if k != "date"}
        assert {k: v for k, v in head.headers.items() if k != "date"} == strip
        assert head.headers["content-length"] == str(len(got.body))
        if body is not None:
            assert got.body == body
        # a HEAD body would be read as the start of this reply and break it
        check_file_reply(client.get("/hello.txt"), HELLO)
    client.close()


def test_not_modified_on_if_none_match(server):
    client = connect(server)
    first = client.get("/hello.txt")
    etag = first.headers["etag"]
    reply = client.get("/hello.txt", f"If-None-Match: {etag}\r\n")
    assert reply.status == 304
    assert reply.headers["etag"] == etag
    assert "content-length" not in reply.headers
    assert client.get("/hello.txt", 'If-None-Match: "other"\r\n').status == 200
    # the 304 had no body: the next reply reads cleanly
    check_file_reply(client.get("/hello.txt"), HELLO)
    client.close()


def test_not_modified_on_if_modified_since(server):
    client = connect(server)
    first = client.get("/index.html")
    modified = first.headers["last-modified"]
    reply = client.get("/index.html", f"If-Modified-Since: {modified}\r\n")
    assert reply.status == 304
    old = "If-Modified-Since: Thu, 01 Jan 1998 00:00:00 GMT\r\n"
    assert client.get("/index.html", old).status == 200
    check_file_reply(client.get("/hello.txt"), HELLO)
    client.close()


def test_range_and_unsatisfiable_range(server):
    client = connect(server)
    reply = client.get("/hello.txt", "Range: bytes=7-11\r\n")
    assert reply.status == 206
    assert reply.headers["content-range"] == f"bytes 7-11/{len(HELLO)}"
    assert reply.headers["content-length"] == "5"
    assert reply.body == b"world"
    reply = client.get("/hello.txt", "Range: bytes=-6\r\n")
    assert reply.status == 206 and reply.body == HELLO[-6:]
    reply = client.get("/hello.txt", "Range: bytes=100-\r\n")
    assert reply.status == 416
    assert reply.headers["content-range"] == f"bytes */{len(HELLO)}"
    check_file_reply(client.get("/hello.txt"), HELLO)
    client.close()


def test_not_found_and_cache_busting_query(server):
    client = connect(server)
    reply = client.get("/no/such/file.js")
    assert reply.status == 404
    assert reply.headers["content-type"].startswith("text/plain")
    check_file_reply(client.get("/hello.txt?v=3"), HELLO)
    check_file_reply(client.get("/hello.txt?v=4&x=%2e%2e"), HELLO)
    check_file_reply(client.get("/hello.txt?"), HELLO)
    index = (docs_of(server) / "index.html").read_bytes()
    check_file_reply(client.get("/index.html?cache=1"), index)
    check_file_reply(client.get("/"), index)
    client.close()


def test_big_file_by_sendfile(server):
    big = (docs_of(server) / "big.bin").read_bytes()
    client = connect(server)
    check_file_reply(client.get("/big.bin"), big)
    first, last = 1_234_567, 2_345_678
    reply = client.get("/big.bin", f"Range: bytes={first}-{last}\r\n")
    assert reply.status == 206
    assert reply.headers["content-range"] == f"bytes {first}-{last}/{len(big)}"
    assert reply.body == big[first : last + 1]
    reply = client.get("/big.bin", "Range: bytes=-100\r\n")
    assert reply.body == big[-100:]
    check_file_reply(client.get("/hello.txt"), HELLO)
    client.close()


def test_big_file_to_a_slow_reader(make_server, tmp_path):
    """The file outgrows the socket buffers: the server waits for room, then goes on."""
    data = os.urandom(3 * 1024 * 1024)
    (tmp_path / "big.bin").write_bytes(data)
    server = make_server(documents=str(tmp_path))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect((server.host, server.port))
    client = Client(sock)
    client.send(request("/big.bin") + request("/big.bin", headers="Range: bytes=5-9\r\n"))
    time.sleep(0.2)  # let the server fill the buffers and wait
    check_file_reply(client.read(), data)
    assert client.read().body == data[5:10]
    client.close()


def test_client_going_away_mid_file_does_not_hurt_others(server):
    for _ in range(3):
        quitter = connect(server)
        quitter.send(request("/big.bin"))
        quitter.sock.recv(1000)
        quitter.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
        quitter.close()  # a reset with most of the file unsent
    other = connect(server)
    check_file_reply(other.get("/hello.txt"), HELLO)
    other.close()


@pytest.fixture
def secret_site(server, tmp_path):
    """The secret lies next to the docs dir, with links to it from inside."""
    docs = docs_of(server)
    assert docs.parent == tmp_path
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "x").write_bytes(SECRET)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (outside / "index.html").write_bytes(SECRET)
    (docs / "link.txt").symlink_to(tmp_path / "secret.txt")
    (docs / "dir-link").symlink_to(outside)
    (docs / "rel-link.txt").symlink_to("../secret.txt")
    return server


TRAVERSALS = [
    "/../x",
    "/../secret.txt",
    "/%2e%2e/x",
    "/%2E%2E/secret.txt",
    "/.%2e/secret.txt",
    "/%252e%252e/x",
    "/%252e%252e/secret.txt",
    "/..%2fx",
    "/..%2Fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/%c0%ae%c0%ae/x",
    "/%c0%ae%c0%ae/secret.txt",
    "/%e0%80%ae%e0%80%ae/secret.txt",
    "/x%00.html",
    "/link.txt%00.html",
    "/..\\x",
    "/..\\secret.txt",
    "/..%5csecret.txt",
    "/./../secret.txt",
    "//../secret.txt",
    "/hello.txt/../../secret.txt",
    "/dir-link/../../secret.txt",
    "/link.txt",
    "/rel-link.txt",
    "/dir-link/secret.txt",
    "/dir-link/",
    "/dir-link",
    "http://test/../secret.txt",
    "http://test/link.txt",
    "/link.txt?x=1",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_never_leaves_the_documents(secret_site, target):
    client = connect(secret_site)
    for method in ("GET", "HEAD"):
        client.send(f"{method} {target} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        reply = client.read(head_only=method == "HEAD")
        assert reply.status in (400, 403, 404), (target, reply.raw_head)
        assert SECRET not in reply.raw_head + reply.body
    # the connection is fine afterwards and nothing stray is buffered
    check_file_reply(client.get("/hello.txt"), HELLO)
    client.sock.shutdown(socket.SHUT_WR)
    assert client.closed()
    assert SECRET not in client.buf
    client.close()


def test_traversal_with_range_and_conditionals(secret_site):
    client = connect(secret_site)
    for target in ("/link.txt", "/../secret.txt", "/dir-link/secret.txt"):
        for extra in ("Range: bytes=0-\r\n", "If-None-Match: *\r\n", "Accept-Encoding: gzip\r\n"):
            reply = client.get(target, extra)
            assert reply.status in (400, 403, 404)
            assert SECRET not in reply.raw_head + reply.body
    client.close()


# -- request bodies and their framing ---------------------------------------------------


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: test\r\n\r\n"  # must be read as body bytes


def test_chunked_body_to_a_file_is_framed_and_consumed(server):
    chunks = [SMUGGLED[:10], SMUGGLED[10:]]
    body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in chunks)
    data = (
        b"POST /hello.txt HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
        + body
        + b"0\r\nX-Trailer: yes\r\n\r\n"
        + request("/hello.txt")
    )
    client = exchange(server, data)
    reply = client.read()
    assert reply.status == 405
    assert reply.headers["allow"] == "GET, HEAD"
    assert "connection" not in reply.headers
    check_file_reply(client.read(), HELLO)
    client.send(request("/index.html", "HEAD"))
    assert client.read(head_only=True).status == 200
    assert not client.buf  # no answer to /smuggled
    client.close()


def test_chunked_body_in_pieces(server):
    sock = server.connect()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = Client(sock)
    client.send(b"PUT /hello.txt HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n")
    for piece in (b"5\r", b"\nhel", b"lo\r\n", b"0\r\n", b"\r\n"):
        time.sleep(0.01)
        client.send(piece)
    assert client.read().status == 405
    check_file_reply(client.get("/hello.txt"), HELLO)
    client.close()


def test_content_length_body_to_a_file_is_framed_and_consumed(server):
    data = (
        b"POST /index.html HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED)
        + SMUGGLED
        + b"DELETE /hello.txt HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nabc"
        + request("/hello.txt")
    )
    client = exchange(server, data)
    assert client.read().status == 405
    assert client.read().status == 405
    check_file_reply(client.read(), HELLO)
    client.send(request("/hello.txt", "HEAD"))
    assert client.read(head_only=True).status == 200
    assert not client.buf
    client.close()


def test_expect_100_continue(server):
    client = connect(server)
    client.send(
        b"POST /hello.txt HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\n"
        b"Content-Length: 5\r\n\r\n"
    )
    interim = client.read()
    assert interim.status == 100
    assert interim.raw_head.startswith(b"HTTP/1.1 100 Continue")
    assert not client.buf
    client.send(b"hello")
    final = client.read()
    assert final.status == 405
    check_file_reply(client.get("/hello.txt"), HELLO)
    # chunked, and a second time on the same connection
    client.send(
        b"POST /hello.txt HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    assert client.read().status == 100
    client.send(b"3\r\nabc\r\n0\r\n\r\n")
    assert client.read().status == 405
    check_file_reply(client.get("/hello.txt"), HELLO)
    client.close()


def test_expect_100_continue_with_the_body_already_sent(server):
    data = (
        b"POST /hello.txt HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\n"
        b"Content-Length: 5\r\n\r\nhello" + request("/hello.txt")
    )
    client = exchange(server, data)
    reply = client.read()
    if reply.status == 100:  # allowed, though not needed any more
        reply = client.read()
    assert reply.status == 405
    check_file_reply(client.read(), HELLO)
    client.close()


def test_expect_100_continue_over_the_body_limit(make_server, tmp_path):
    (tmp_path / "hello.txt").write_bytes(HELLO)
    server = make_server(documents=str(tmp_path), limits__body=100)
    client = connect(server)
    client.send(
        b"POST /hello.txt HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    reply = client.read()  # without the body: the server must not wait for it
    assert reply.status == 413
    assert reply.headers["connection"].lower() == "close"
    assert b"limits.body" in reply.body
    assert client.closed()
    assert not client.buf
    client.close()
    # a body within the limit is fine; one over it without Expect is refused too
    client = exchange(server, b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n")
    client.send(b"x" * 100)
    assert client.read().status == 405
    client.send(b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n")
    assert client.read().status == 413
    assert client.closed()
    client.close()
    chunked = b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    client = exchange(server, chunked + b"65\r\n" + b"y" * 101 + b"\r\n0\r\n\r\n")
    assert client.read().status == 413
    assert client.closed()
    client.close()


def test_unknown_expectation(server):
    client = exchange(
        server,
        b"POST /hello.txt HTTP/1.1\r\nHost: test\r\nExpect: teapot\r\nContent-Length: 2\r\n\r\nhi",
    )
    reply = client.read()
    assert reply.status == 417
    assert client.closed()
    client.close()


# -- protocol errors -----------------------------------------------------------------------


PROTOCOL_ERRORS = [
    ("not http", b"GARBAGE\r\n\r\n", 400),
    ("two parts", b"GET /hello.txt\r\nHost: test\r\n\r\n", 400),
    ("four parts", b"GET /hello.txt HTTP/1.1 extra\r\nHost: test\r\n\r\n", 400),
    ("bad version", b"GET /hello.txt HTTX/1.1\r\nHost: test\r\n\r\n", 400),
    ("no host", b"GET /hello.txt HTTP/1.1\r\nAccept: */*\r\n\r\n", 400),
    ("no headers no host", b"GET /hello.txt HTTP/1.1\r\n\r\n", 400),
    ("two hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (
        "CL and TE",
        b"POST /hello.txt HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "conflicting CLs",
        b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        400,
    ),
    ("signed CL", b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: +1\r\n\r\na", 400),
    ("space before colon", b"GET / HTTP/1.1\r\nHost : test\r\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: test\r\nX: a\r\n b\r\n\r\n", 400),
    ("bare LF", b"GET / HTTP/1.1\nHost: test\n\n", 400),
    ("target not origin-form", b"GET hello.txt HTTP/1.1\r\nHost: test\r\n\r\n", 400),
    ("unknown method", b"BREW /pot HTTP/1.1\r\nHost: test\r\n\r\n", 501),
    ("lower-case method", b"get / HTTP/1.1\r\nHost: test\r\n\r\n", 501),
    (
        "unknown coding",
        b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\n",
        501,
    ),
    (
        "gzip then chunked",
        b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    (
        "bad chunk size",
        b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        400,
    ),
    ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: test\r\n\r\n", 505),
    ("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: test\r\n\r\n", 505),
    ("HTTP/0.9", b"GET / HTTP/0.9\r\nHost: test\r\n\r\n", 505),
]


@pytest.mark.parametrize(
    ("data", "status"),
    [pytest.param(data, status, id=name) for name, data, status in PROTOCOL_ERRORS],
)
def test_protocol_error_is_answered_then_closed(server, data, status):
    other = connect(server)  # a client in good standing, before and after
    check_file_reply(other.get("/hello.txt"), HELLO)
    client = exchange(server, data + request("/index.html"))  # the second is never answered
    reply = client.read()
    assert reply.status == status, reply.body
    assert reply.headers["connection"].lower() == "close"
    assert reply.headers["content-type"].startswith("text/plain")
    assert int(reply.headers["content-length"]) == len(reply.body) > 1
    assert reply.headers["server"].startswith("httap/")
    assert "date" in reply.headers
    assert client.closed()
    assert not client.buf
    client.close()
    check_file_reply(other.get("/hello.txt"), HELLO)
    other.close()


NOT_HOST = "is not host[:port] (RFC 9112 3.2)"
NOT_TARGET = "is not host[:port] (RFC 9112 3.2.2)"
BAD_AUTHORITIES = [
    # (the request's head after its method, its 400's message after "bad request: ")
    (b"/ HTTP/1.1\r\nHost: bad host", f"Host 'bad host' {NOT_HOST}"),
    (b"/ HTTP/1.1\r\nHost: 127.0.0.1/evil", f"Host '127.0.0.1/evil' {NOT_HOST}"),
    (b"/ HTTP/1.1\r\nHost: user@127.0.0.1", f"Host 'user@127.0.0.1' {NOT_HOST}"),
    (b"/ HTTP/1.1\r\nHost: 127.0.0.1:80x", f"Host '127.0.0.1:80x' {NOT_HOST}"),
    (b"/ HTTP/1.1\r\nHost: [::1", f"Host '[::1' {NOT_HOST}"),
    (b"/ HTTP/1.1\r\nHost: [::g]:80", f"Host '[::g]:80' {NOT_HOST}"),
    (b"/ HTTP/1.1\r\nHost: ::1", f"Host '::1' {NOT_HOST}"),
    (b"/ HTTP/1.1\r\nHost: a:1:2", f"Host 'a:1:2' {NOT_HOST}"),
    (b"/ HTTP/1.1\r\nHost: caf\xe9", f"Host 'caf\xe9' {NOT_HOST}"),
    (b"/ HTTP/1.0\r\nHost: a b", f"Host 'a b' {NOT_HOST}"),
    (
        b"http://user@test/hello.txt HTTP/1.1\r\nHost: test",
        f"the target's authority 'user@test' {NOT_TARGET}",
    ),
    (b"http:///hello.txt HTTP/1.1\r\nHost: test", f"the target's authority '' {NOT_TARGET}"),
    (b"http://:80/hello.txt HTTP/1.1\r\nHost: test", f"the target's authority ':80' {NOT_TARGET}"),
    (b"http://test:80x/ HTTP/1.1\r\nHost: test", f"the target's authority 'test:80x' {NOT_TARGET}"),
    (b"http://test/ HTTP/1.1\r\nHost: bad host", f"Host 'bad host' {NOT_HOST}"),
]


@pytest.mark.parametrize(("head", "message"), BAD_AUTHORITIES)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_bad_authority_is_400_with_a_message(server, head, message, method):
    """RFC 9112 3.2: a Host that is not `uri-host [":" port]` gets 400, and so does an
    absolute-form target whose authority is not one (or names a user); the server goes on."""
    client = exchange(server, method.encode() + b" " + head + b"\r\n\r\n")
    reply = client.read()
    assert reply.status == 400, reply.body
    assert reply.body.decode() == f"bad request: {message}\n"
    assert reply.headers["connection"] == "close"
    assert client.closed()
    client.close()
    check_file_reply(connect(server).get("/hello.txt"), HELLO)


@pytest.mark.parametrize(
    "host",
    [
        "test",
        "127.0.0.1",
        "127.0.0.1:8080",
        "[::1]:8080",
        "[::1]",
        "[::ffff:192.0.2.1]:80",
        "[v1.fe80::a+en1]",  # IPvFuture (RFC 3986 3.2.2)
        "pi.local.",  # a fully qualified name
        "pi.local.:8080",
        "test:",  # an empty port means the default one (RFC 3986 3.2.3)
        "xn--bcher-kva.example",
        "a%2Db.example",
        "",  # RFC 9110 7.2 allows it: no authority named
    ],
)
def test_good_authorities_are_served(server, host):
    client = connect(server)
    client.send(f"GET /hello.txt HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    check_file_reply(client.read(), HELLO)
    client.send(f"GET http://{host or 'test'}/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    check_file_reply(client.read(), HELLO)
    client.close()


def test_protocol_error_after_good_requests(server):
    data = request("/hello.txt") + request("/index.html", "HEAD") + b"BREW / HTTP/1.1\r\n\r\n"
    client = exchange(server, data)
    check_file_reply(client.read(), HELLO)
    assert client.read(head_only=True).status == 200
    assert client.read().status in (400, 501)
    assert client.closed()
    assert not client.buf
    client.close()


def test_uri_and_header_limits(make_server, tmp_path):
    (tmp_path / "hello.txt").write_bytes(HELLO)
    server = make_server(documents=str(tmp_path), limits__uri=64, limits__header=256)
    client = exchange(server, request("/" + "a" * 100))
    assert client.read().status == 414
    assert client.closed()
    client.close()
    client = exchange(server, request("/hello.txt", headers=f"X-Big: {'b' * 300}\r\n"))
    assert client.read().status == 431
    assert client.closed()
    client.close()
    # an endless request line is refused before it ends
    client = exchange(server, b"GET /" + b"c" * 200)
    assert client.read().status == 414
    assert client.closed()
    client.close()
    client = connect(server)
    check_file_reply(client.get("/hello.txt"), HELLO)
    client.close()


def test_timeouts_for_a_slow_head_and_a_slow_body(make_server, tmp_path):
    (tmp_path / "hello.txt").write_bytes(HELLO)
    server = make_server(documents=str(tmp_path), timeouts__parse=0.2, timeouts__request=0.2)
    client = exchange(server, b"GET /hello.txt HTTP/1.1\r\nHo")
    reply = client.read()
    assert reply.status == 408 and b"timeouts.parse" in reply.body
    assert client.closed()
    client.close()
    client = exchange(server, b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\nab")
    reply = client.read()
    assert reply.status == 408 and b"timeouts.request" in reply.body
    assert client.closed()
    client.close()


# -- the /? domain before the HTTaP manager is complete --------------------------------------


def test_dynamic_domain_answers_json_with_no_cache_headers(server):
    client = connect(server)
    sessions = set()
    for target in ("/?no-such-resource-xyz", "/?no-such-resource-xyz/deeper&x=1"):
        reply = client.get(target)
        assert 400 <= reply.status < 500, reply.raw_head
        assert reply.headers["content-type"].startswith("application/json")
        assert reply.headers["cache-control"] == "no-cache, no-store, must-revalidate"
        assert reply.headers["expires"] == "Thu, 01 Jan 1970 00:00:00 GMT"
        assert re.fullmatch(r"[0-9]+", reply.headers["httap-session"])
        sessions.add(reply.headers["httap-session"])
        assert int(reply.headers["content-length"]) == len(reply.body)
        value = json.loads(reply.body)
        assert isinstance(value["error"], str) and isinstance(value["message"], str)
        assert "connection" not in reply.headers  # an application error keeps it open
    assert len(sessions) == 1  # one connection, one session
    check_file_reply(client.get("/hello.txt"), HELLO)
    other = connect(server)
    reply = other.get("/?no-such-resource-xyz")
    assert reply.headers["httap-session"] not in sessions  # a new connection, a new session
    other.close()
    client.close()


# -- headers every response carries ------------------------------------------------------


def test_date_and_server_on_every_response(server):
    client = connect(server)
    etag = client.get("/hello.txt").headers["etag"]
    replies = [
        client.get("/hello.txt"),
        client.get("/hello.txt", method="HEAD"),
        client.get("/nope"),
        client.get("/hello.txt", f"If-None-Match: {etag}\r\n"),
        client.get("/hello.txt", "Range: bytes=0-0\r\n"),
        client.get("/hello.txt", "Range: bytes=99-\r\n"),
        client.get("/?whatever-is-not-there"),
        client.get("/hello.txt", method="DELETE"),
    ]
    client.send(b"GET / HTTP/1.1\r\n\r\n")
    replies.append(client.read())
    statuses = [r.status for r in replies]
    assert statuses == [200, 200, 404, 304, 206, 416, statuses[6], 405, 400]
    assert 400 <= statuses[6] < 500
    for reply in replies:
        assert re.fullmatch(r"httap/\S+", reply.headers["server"]), reply.raw_head
        moment = parsedate_to_datetime(reply.headers["date"])
        assert abs(moment.timestamp() - time.time()) < 60
        assert reply.headers["date"].endswith(" GMT")
        assert reply.raw_head.startswith(b"HTTP/1.1 ")
        names = [line.split(b":")[0].lower() for line in reply.raw_head.split(b"\r\n")[1:]]
        assert len(names) == len(set(names)), reply.raw_head  # no header twice
    client.close()


# -- more framing corners ------------------------------------------------------------------


def test_expect_100_continue_behind_a_file_being_sent(server):
    """The interim 100 goes out after the earlier response's last file byte, not inside it."""
    big = (docs_of(server) / "big.bin").read_bytes()
    client = exchange(
        server,
        request("/big.bin") + b"POST /hello.txt HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\n"
        b"Content-Length: 4\r\n\r\n",
    )
    check_file_reply(client.read(), big)
    assert client.read().status == 100
    client.send(b"body" + request("/hello.txt"))
    assert client.read().status == 405
    check_file_reply(client.read(), HELLO)
    client.close()


def test_expect_100_continue_without_a_body_or_from_http10(server):
    client = exchange(
        server,
        b"POST /hello.txt HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\n"
        b"Content-Length: 0\r\n\r\n" + request("/hello.txt"),
    )
    assert client.read().status == 405  # nothing to continue: the final answer at once
    check_file_reply(client.read(), HELLO)
    client.close()
    client = exchange(
        server,
        b"POST /hello.txt HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    )
    client.send(b"hi")
    assert client.read().status == 405  # HTTP/1.0 clients do not know 100
    assert client.closed()
    client.close()


def test_body_on_a_get_is_consumed(server):
    data = b"GET /hello.txt HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED)
    client = exchange(server, data + SMUGGLED + request("/index.html", "HEAD"))
    check_file_reply(client.read(), HELLO)
    assert client.read(head_only=True).status == 200
    client.send(request("/hello.txt"))
    check_file_reply(client.read(), HELLO)
    assert not client.buf
    client.close()


def test_large_chunked_body_in_many_chunks(server):
    body = b"".join(b"400\r\n" + bytes([65 + i % 26]) * 1024 + b"\r\n" for i in range(500))
    head = b"POST /hello.txt HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
    client = exchange(server, head + body + b"0\r\n\r\n" + request("/hello.txt"))
    assert client.read().status == 405
    check_file_reply(client.read(), HELLO)
    client.close()


def test_absolute_form_and_transfer_encoding_in_http10(server):
    client = connect(server)
    check_file_reply(client.get("http://test/hello.txt"), HELLO)
    client.close()
    client = exchange(
        server, b"POST /hello.txt HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    assert client.read().status == 400
    assert client.closed()
    client.close()


def test_one_slow_client_does_not_hold_up_the_others(server):
    slow = connect(server)
    slow.send(b"GET /hello.txt HTTP/1.1\r\nHost: te")  # and then nothing for a while
    stuck = connect(server)
    stuck.send(b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
    clients = [connect(server) for _ in range(20)]
    for i, client in enumerate(clients):
        client.send(b"".join(request(f"/hello.txt?{i}-{n}") for n in range(30)))
    for client in clients:
        for _ in range(30):
            check_file_reply(client.read(), HELLO)
        client.close()
    slow.send(b"st\r\n\r\n")
    check_file_reply(slow.read(), HELLO)
    stuck.send(b"defghij")
    assert stuck.read().status == 405
    slow.close()
    stuck.close()


def test_client_reset_with_requests_in_flight(server):
    for _ in range(5):
        sock = server.connect()
        sock.sendall(request("/index.html") * 50 + b"GET /hel")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
        sock.close()
    client = connect(server)
    check_file_reply(client.get("/hello.txt"), HELLO)
    client.close()


def test_error_answer_survives_unread_input(server):
    """Input the server never reads must not turn its last answer into a reset."""
    client = connect(server)
    client.send(b"BREW / HTTP/1.1\r\nHost: test\r\n\r\n" + b"j" * 300_000)
    reply = client.read()
    assert reply.status == 501
    assert client.closed()
    client.close()
    client = exchange(server, request("/hello.txt", headers="Connection: close\r\n"))
    client.send(b"k" * 300_000)
    check_file_reply(client.read(), HELLO)
    assert client.closed()
    client.close()


def test_file_deleted_or_truncated_after_it_was_cached(server):
    docs = docs_of(server)
    (docs / "gone.bin").write_bytes(b"g" * 400_000)  # over the in-memory size: from disk
    (docs / "short.bin").write_bytes(b"s" * 400_000)
    client = connect(server)
    assert len(client.get("/gone.bin").body) == 400_000
    assert len(client.get("/short.bin").body) == 400_000
    (docs / "gone.bin").unlink()
    reply = client.get("/gone.bin")
    assert reply.status == 404
    check_file_reply(client.get("/hello.txt"), HELLO)
    with open(docs / "short.bin", "r+b") as file:
        file.truncate(1000)
    client.send(request("/short.bin"))
    try:
        reply = client.read()
    except ConnectionError as err:  # the promised length cannot be met: the server hangs up
        assert "of 400000 body bytes" in str(err)
        assert client.closed()
    else:  # or it noticed the change first and sent the new, shorter file
        assert reply.status == 200 and reply.body == b"s" * 1000
    client.close()
    other = connect(server)
    check_file_reply(other.get("/hello.txt"), HELLO)
    other.close()


# -- the client library is everywhere ------------------------------------------------------


def test_every_documents_directory_serves_the_client_library(server):
    """Pages of any documents directory (an example's, yours) can `import "/httap.js"`:
    when the directory has no httap.js, the server's own is served."""
    library = ROOT / "static" / "httap.js"
    if not library.exists():
        pytest.fail("static/httap.js is missing")
    client = connect(server)
    reply = client.get("/httap.js?v=2")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/javascript")
    assert reply.body == library.read_bytes()
    assert client.get("/other.js").status == 404  # only that one file
    client.close()
