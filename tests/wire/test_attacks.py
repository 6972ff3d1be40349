"""Hostile clients and faults over real sockets (issue 7): request smuggling, slowloris,
connection and descriptor floods, client resets, handler faults, encoded traversal.

Every case checks four things: the status or the close; that a well-behaved client is
served meanwhile; that the server is still alive; that no descriptor leaked."""

from __future__ import annotations

import os
import resource
import socket
import time

import pytest

from tests.helpers import HELLO, open_fds, wait_for
from tests.helpers.client import Client
from tests.helpers.slowloris import slowloris

LED, BUTTON = 17, 22
PINS = {
    "led": {"gpio": LED, "mode": "out", "initial": 0, "safe": 0},
    "button": {"gpio": BUTTON, "mode": "in", "pull": "up"},
}
APP = """
from httap import Pending

LOG = []


def setup(server):
    @server.action("boom", methods=("GET", "POST"))
    def boom(request):
        raise RuntimeError("the handler broke")

    @server.action("forever")
    def forever(request):
        pending = Pending()  # never resolved
        pending.on_cancel(lambda: LOG.append(request.session.id))
        return pending

    @server.action("cancelled")
    def cancelled(request):
        return list(LOG)
"""
SECRET = b"top secret: the file outside the documents\n"
RESET = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # SO_LINGER on, 0 s: close() sends an RST
# What a smuggler hides after (or inside) its first request: a write to a pin.
SMUGGLED = b"POST /?gpio/led HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n1"


@pytest.fixture
def start_with_fds(make_server, tmp_path):
    """make_server over a docs dir (hello.txt, an 8 MiB file), the sim board and an app;
    returns (server, descriptors open once it listens). The secret lies beside the docs."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "hello.txt").write_bytes(HELLO)
    (docs / "big.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    (tmp_path / "secret.txt").write_bytes(SECRET)
    app = tmp_path / "app.py"
    app.write_text(APP)

    def run(**overrides):
        srv = make_server(
            documents=str(docs), app=str(app), gpio__backend="sim", gpio__pins=PINS, **overrides
        )
        return srv, open_fds()

    return run


# -- the four checks ---------------------------------------------------------------------


def served(srv) -> None:
    """A well-behaved client, on its own connection: a file and a `/?` request."""
    client = Client(srv.connect())
    try:
        reply = client.get("/hello.txt")
        assert reply.status == 200 and reply.body == HELLO
        assert client.get("/?ping").status == 200
    finally:
        client.close()


def pin(srv, gpio: int = LED) -> int:
    return srv.call(lambda: srv.server.gpio.read(gpio))


def healthy(srv, base: int) -> None:
    """After an attack: alive, serving, and back to the descriptors it had at the start."""
    assert srv.thread.is_alive(), "the server thread died"
    served(srv)
    assert wait_for(lambda: open_fds() == base), f"{open_fds()} descriptors open, {base} before"
    assert srv.call(lambda: len(srv.server.connections)) == 0


def reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
    sock.close()


def drain(client: Client, timeout: float = 3.0) -> bytes:
    """Everything the server sends until it closes (or `timeout` passes quietly)."""
    client.closed(timeout)
    data, client.buf = client.buf, b""
    return data


# -- request smuggling -------------------------------------------------------------------

POST = b"POST /hello.txt HTTP/1.1\r\nHost: t\r\n"
CHUNKED_SMUGGLE = b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)

# Refused: the answer is the status, then the connection closes, and the smuggled
# request behind it is never read.
REFUSED = [
    ("CL.TE", POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (
        "TE.CL",
        POST + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" + CHUNKED_SMUGGLE,
        400,
    ),
    ("TE-tab.CL", POST + b"Content-Length: 5\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n", 400),
    ("TE-xchunked", POST + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501),
    (
        "TE-chunked-x",
        POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n",
        501,
    ),
    (
        "TE-x-chunked",
        POST + b"Transfer-Encoding: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    ("TE-chunked-twice", POST + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 501),
    ("TE-identity", POST + b"Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello", 400),
    ("TE-space-colon", POST + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE-vtab", POST + b"Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n", 400),
    ("TE-nul", POST + b"Transfer-Encoding: chunked\x00\r\n\r\n0\r\n\r\n", 400),
    ("TE-quoted", POST + b'Transfer-Encoding: "chunked"\r\n\r\n0\r\n\r\n', 501),
    ("TE-obs-fold", POST + b"Transfer-Encoding: x\r\n chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE-leading-space", POST + b" Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (
        "TE-in-http10",
        b"POST /hello.txt HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    ("CL-duplicate", POST + b"Content-Length: 0\r\nContent-Length: 60\r\n\r\n", 400),
    ("CL-list", POST + b"Content-Length: 0, 60\r\n\r\n", 400),
    ("CL-space-colon", POST + b"Content-Length : 0\r\n\r\n", 400),
    ("CL-hex", POST + b"Content-Length: 0x0\r\n\r\n", 400),
    ("CL-negative", POST + b"Content-Length: -1\r\n\r\n", 400),
    ("CL-obs-fold", POST + b"Content-Length: 0\r\n 60\r\n\r\n", 400),
    (
        "chunk-overflow",
        POST + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
        (400, 413),
    ),
    ("chunk-overflow-9", POST + b"Transfer-Encoding: chunked\r\n\r\n100000000\r\n", (400, 413)),
    ("chunk-negative", POST + b"Transfer-Encoding: chunked\r\n\r\n-1\r\n", 400),
    ("chunk-0x", POST + b"Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk-bare-lf", POST + b"Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 400),
    ("chunk-data-overrun", POST + b"Transfer-Encoding: chunked\r\n\r\n1\r\nabc\r\n0\r\n\r\n", 400),
    ("bare-cr-in-head", POST + b"X-A: b\rContent-Length: 0\r\n\r\n", 400),
    ("bare-lf-in-head", POST + b"X-A: b\nContent-Length: 0\r\n\r\n", 400),
    ("bare-lf-ends-head", POST + b"Content-Length: 0\n\n", 400),
    ("bare-cr-request-line", b"GET /hello.txt HTTP/1.1\rHost: t\r\n\r\n", 400),
    (
        "chunk-ext-crlf-in-quotes",
        POST + b'Transfer-Encoding: chunked\r\n\r\n3;a="x\r\n"\r\nabc\r\n0\r\n\r\n',
        400,
    ),
    ("space-in-name", POST + b"Content Length: 0\r\n\r\n", 400),
]

# Accepted, and framed one way only: the smuggled bytes are body, never a request.
FRAMED = [
    ("TE-tab", POST + b"Transfer-Encoding:\tchunked\r\n\r\n" + CHUNKED_SMUGGLE),
    ("TE-upper", POST + b"Transfer-Encoding: CHUNKED \r\n\r\n" + CHUNKED_SMUGGLE),
    (
        "CL-same-twice",
        POST
        + b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n%s"
        % (len(SMUGGLED), len(SMUGGLED), SMUGGLED),
    ),
    ("CL-leading-zeros", POST + b"Content-Length: 000%d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED)),
    (
        "chunk-leading-zeros",
        POST + b"Transfer-Encoding: chunked\r\n\r\n0000000000" + CHUNKED_SMUGGLE,
    ),
    (
        "chunk-ext",
        POST
        + b'Transfer-Encoding: chunked\r\n\r\n%x ; a="0;b=\\"" ;c=d\r\n%s\r\n0\r\n\r\n'
        % (len(SMUGGLED), SMUGGLED),
    ),
]


@pytest.mark.parametrize(("data", "status"), [pytest.param(d, s, id=n) for n, d, s in REFUSED])
def test_smuggling_is_refused_and_closed(start_with_fds, data, status):
    srv, base = start_with_fds()
    client = Client(srv.connect())
    client.send(data + SMUGGLED)
    served(srv)  # meanwhile
    reply = client.read()
    allowed = status if isinstance(status, tuple) else (status,)
    assert reply.status in allowed, (reply.raw_head, reply.body)
    assert reply.headers["connection"] == "close"
    assert client.closed()
    assert client.buf == b""  # no second reply: the smuggled request was never read
    client.close()
    assert pin(srv) == 0
    healthy(srv, base)


@pytest.mark.parametrize("data", [pytest.param(d, id=n) for n, d in FRAMED])
def test_smuggling_is_framed_as_one_body(start_with_fds, data):
    srv, base = start_with_fds()
    client = Client(srv.connect())
    client.send(data + b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
    served(srv)
    assert client.read().status == 405  # the POST to a file, its body read and dropped
    reply = client.read()  # the very next reply is the next real request's
    assert reply.status == 200 and reply.body == HELLO
    client.sock.shutdown(socket.SHUT_WR)
    assert b"HTTP/1.1" not in drain(client)
    client.close()
    assert pin(srv) == 0
    healthy(srv, base)


# -- slowloris ---------------------------------------------------------------------------


def test_slowloris(start_with_fds):
    parse = 2
    srv, base = start_with_fds(timeouts__parse=parse)
    head = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"z" * 64
    # Meanwhile another client: a file and a `/?`.
    seen = slowloris(srv.connect, head, 200, parse + 4, lambda: served(srv))
    assert len(seen.lasted) == 200, f"{200 - len(seen.lasted)} still open after {parse + 4} s"
    for data in seen.answers:
        assert data == b"" or data.startswith(b"HTTP/1.1 408 "), data[:40]
    assert min(seen.lasted) >= parse - 0.3, min(seen.lasted)
    assert max(seen.lasted) <= parse + 2.5, max(seen.lasted)
    assert len(seen.latencies) > 10 and max(seen.latencies) < 1.0, max(seen.latencies)
    healthy(srv, base)


# -- connection and descriptor floods ----------------------------------------------------


def test_connection_flood_beyond_the_limit(start_with_fds):
    srv, base = start_with_fds(limits__connections=20)
    good = Client(srv.connect())  # in before the flood, kept alive
    assert good.get("/hello.txt").status == 200
    flood = [srv.connect() for _ in range(60)]
    refused = 0
    for sock in flood[19:]:  # beyond the 20th: 503, or closed
        client = Client(sock)
        try:
            reply = client.read()
            assert reply.status == 503, reply.raw_head
        except (ConnectionError, OSError):
            pass
        refused += 1
        sock.close()
    assert refused == 41
    flood = flood[:19]
    for _ in range(3):  # the one in good standing is served throughout
        assert good.get("/hello.txt").body == HELLO
        assert good.get("/?ping").status == 200
    time.sleep(0.2)
    cpu = time.process_time()  # the server is a thread of ours: our CPU is its CPU
    time.sleep(1.0)
    used = time.process_time() - cpu
    assert used < 0.2, f"{used:.3f} s of CPU in 1 s with an idle flood: a busy loop"
    for sock in flood:
        reset(sock)
    good.close()
    assert wait_for(lambda: srv.call(lambda: len(srv.server.connections)) == 0)
    healthy(srv, base)  # service is back


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15)


def _served_by(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            client = Client(sock)
            return client.get("/hello.txt").body == HELLO and client.get("/?ping").status == 200
    except (OSError, ConnectionError, IndexError, ValueError):
        return False


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs Linux prlimit")
def test_descriptor_exhaustion_in_a_child(spawn, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "hello.txt").write_bytes(HELLO)
    process = spawn(
        "serve", "--listen", "http://127.0.0.1:0", "--documents", str(docs), "--gpio", "sim"
    )
    pid = process.proc.pid
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (64, 64))
    host, port = process.host, process.port
    good = Client(socket.create_connection((host, port), timeout=5))
    assert good.get("/hello.txt").status == 200
    before = process.fds()
    flood = []
    for _ in range(120):  # far more than 64 descriptors
        sock = socket.socket()
        sock.settimeout(0.5)
        try:
            sock.connect((host, port))
        except OSError:
            sock.close()
            continue
        flood.append(sock)
    time.sleep(0.5)
    assert process.proc.poll() is None, "the server died"
    assert 60 <= process.fds() <= 64  # out of descriptors: accept() fails with EMFILE
    assert good.get("/?ping").status == 200  # a connection it has keeps being served
    hz = os.sysconf("SC_CLK_TCK")
    ticks = _cpu_ticks(pid)
    time.sleep(1.0)
    used = (_cpu_ticks(pid) - ticks) / hz
    assert used < 0.3, f"{used:.2f} s of CPU in 1 s out of descriptors: a busy loop"
    for sock in flood:
        reset(sock)
    assert wait_for(lambda: _served_by(host, port), timeout=5), "service did not come back"
    good.close()
    assert process.proc.poll() is None
    assert wait_for(lambda: process.fds() == before - 1, timeout=5), (process.fds(), before)


# -- client faults -----------------------------------------------------------------------


def test_resets_in_the_middle_of_sendfile(start_with_fds):
    srv, base = start_with_fds()
    for _ in range(10):
        sock = srv.connect()
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        got = 0
        while got < 256 * 1024:
            got += len(sock.recv(65536))
        reset(sock)  # most of the 8 MiB unsent
        served(srv)
    healthy(srv, base)


def test_resets_in_the_middle_of_pipelined_responses(start_with_fds):
    srv, base = start_with_fds()
    requests = (
        b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"
        + b"GET /?gpio HTTP/1.1\r\nHost: t\r\n\r\n"
        + b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    for _ in range(10):
        sock = srv.connect()
        sock.sendall(requests * 20)
        sock.recv(4096)
        reset(sock)
        served(srv)
    healthy(srv, base)


@pytest.mark.parametrize("how", ["reset", "close"])
def test_going_away_during_a_long_poll_releases_the_lease(start_with_fds, how):
    srv, base = start_with_fds()
    holder = Client(srv.connect())
    holder.send(b"POST /?gpio/led HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n1")
    assert holder.read().status == 200
    assert pin(srv) == 1
    holder.send(b"GET /?gpio/button&wait=30&value=1 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert wait_for(lambda: srv.call(lambda: bool(srv.server.manager.watches.watched)))
    other = Client(srv.connect(source="127.0.0.2"))  # another client: locked out, served
    other.send(b"POST /?gpio/led HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n0")
    assert other.read().status == 503
    assert other.get("/?gpio/led").json()["value"] == 1
    if how == "reset":
        reset(holder.sock)
    else:
        holder.close()
    assert wait_for(lambda: pin(srv) == 0, timeout=3), "the safe value was not applied"
    assert wait_for(lambda: srv.call(lambda: not srv.server.manager.watches.watched))
    other.send(b"POST /?gpio/led HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n1")
    assert other.read().status == 200  # the lease was released
    other.close()
    healthy(srv, base)


# -- handler faults ----------------------------------------------------------------------


def test_an_action_that_raises(start_with_fds):
    srv, base = start_with_fds()
    client = Client(srv.connect())
    for _ in range(5):
        reply = client.get("/?boom")
        assert reply.status == 500, reply.body
        assert reply.json()["error"]
        served(srv)
    assert client.get("/hello.txt").body == HELLO  # the same connection goes on
    client.close()
    healthy(srv, base)


@pytest.mark.parametrize("how", ["reset", "close"])
def test_a_pending_reply_never_resolved_while_the_client_goes_away(start_with_fds, how):
    srv, base = start_with_fds()
    for _ in range(5):
        client = Client(srv.connect())
        client.send(b"GET /?forever HTTP/1.1\r\nHost: t\r\n\r\n" * 2)  # one waits behind
        time.sleep(0.05)
        served(srv)  # the loop is not held by the pending reply
        if how == "reset":
            reset(client.sock)
        else:
            client.close()
    assert wait_for(lambda: srv.call(lambda: len(srv.server.connections)) == 0)
    probe = Client(srv.connect())
    assert len(probe.get("/?cancelled").json()) == 5  # each pending reply was cancelled
    probe.close()
    healthy(srv, base)


# -- path traversal: encodings test_protocol.py does not try -------------------------------

TRAVERSALS = [
    "/..%c0%afsecret.txt",
    "/%c0%ae%c0%ae%c0%afsecret.txt",
    "/..%e0%80%afsecret.txt",
    "/..%c1%9csecret.txt",
    "/%c0%2e%c0%2e/secret.txt",
    "/%e0%80%ae%e0%80%ae%e0%80%afsecret.txt",
    "/%f0%80%80%ae%f0%80%80%ae/secret.txt",
    "/..%252fsecret.txt",
    "/%252e%252e%252fsecret.txt",
    "/%25252e%25252e/secret.txt",
    "/%25c0%25ae%25c0%25ae/secret.txt",
    "/%%32%65%%32%65/secret.txt",
    "/%2e%2e%5csecret.txt",
    "/..%255csecret.txt",
    "/%u002e%u002e/secret.txt",
    "/.%00./secret.txt",
    "/..;/secret.txt",
]


def test_encoded_traversal_never_leaks_the_file(start_with_fds):
    srv, base = start_with_fds()
    client = Client(srv.connect())
    seen = b""
    for target in TRAVERSALS:
        for method in ("GET", "HEAD"):
            client.send(f"{method} {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            try:
                reply = client.read(head_only=method == "HEAD")
            except ConnectionError:
                reply = None
            if reply is None or reply.headers.get("connection") == "close":
                seen += drain(client)
                client.close()
                client = Client(srv.connect())
                if reply is None:
                    continue
            seen += reply.raw_head + reply.body
            assert reply.status in (400, 403, 404), (target, reply.raw_head)
    client.close()
    assert SECRET not in seen and b"top secret" not in seen
    healthy(srv, base)
