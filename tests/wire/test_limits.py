"""Every limit and timeout over real sockets: its status and message, the others served
meanwhile, and no descriptor left behind."""

from __future__ import annotations

import gc
import itertools
import os
import resource
import select
import socket
import time
import tty
import weakref

import pytest

from httap import connection
from httap.loop import Epoll, Loop, Select
from tests.helpers import HELLO, open_fds, wait_for
from tests.helpers.client import Client

POST = b"POST / HTTP/1.1\r\nHost: t\r\n"


@pytest.fixture
def start_with_fds(make_server, docs):
    """make_server over `docs`; returns (server, descriptors open once it listens)."""

    def run(**overrides):
        srv = make_server(documents=str(docs), **overrides)
        return srv, open_fds()

    return run


def served(srv) -> None:
    """Another client, on its own connection, gets a normal answer."""
    client = Client(srv.connect())
    try:
        reply = client.get("/hello.txt")
        assert reply.status == 200
        assert reply.body == HELLO
    finally:
        client.close()


def no_leak(base: int) -> None:
    """The server closes asynchronously: wait for the descriptor count to come back."""
    assert wait_for(lambda: open_fds() == base), f"{open_fds()} descriptors open, {base} before"


def connection_count(srv) -> int:
    return srv.call(lambda: len(srv.server.connections))


def assert_error(reply, status: int, name: str) -> None:
    assert reply.status == status, reply.raw_head
    assert reply.headers["connection"] == "close"
    assert reply.headers["content-type"].startswith("text/plain")
    text = reply.body.decode()
    assert text.endswith("\n") and "\n" not in text[:-1], text
    assert name in text, text


def refused(srv, base: int, parts: list[bytes], status: int, name: str) -> None:
    """Send `parts` but the last (under the limit), check others are served, send the last:
    the reply is `status` naming `name`, others are still served, then the connection closes."""
    client = Client(srv.connect())
    for part in parts[:-1]:
        client.send(part)
    served(srv)
    client.send(parts[-1])
    assert_error(client.read(), status, name)
    served(srv)
    assert client.closed()
    client.close()
    served(srv)
    no_leak(base)


# -- limits ---------------------------------------------------------------------------


@pytest.mark.parametrize("complete", [True, False], ids=["whole-head", "head-never-ends"])
def test_header_limit(start_with_fds, complete):
    srv, base = start_with_fds(limits__header=1024)
    first = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nX-A: " + b"a" * 500 + b"\r\n"
    rest = b"".join(b"X-%d: %s\r\n" % (i, b"b" * 100) for i in range(10))
    refused(srv, base, [first, rest + (b"\r\n" if complete else b"")], 431, "limits.header")


def test_header_just_under_the_limit_is_served(start_with_fds):
    srv, base = start_with_fds(limits__header=1024)
    client = Client(srv.connect())
    filler = b"X-Fill: " + b"f" * (1024 - len(b"Host: t\r\nX-Fill: \r\n")) + b"\r\n"
    client.send(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n" + filler + b"\r\n")
    reply = client.read()
    assert reply.status == 200 and reply.body == HELLO
    client.close()
    no_leak(base)


@pytest.mark.parametrize("complete", [True, False], ids=["whole-line", "line-never-ends"])
def test_uri_limit(start_with_fds, complete):
    srv, base = start_with_fds(limits__uri=256)
    first = b"GET /" + b"u" * 100
    rest = b"u" * 1000 + (b" HTTP/1.1\r\nHost: t\r\n\r\n" if complete else b"")
    refused(srv, base, [first, rest], 414, "limits.uri")


def test_body_limit_by_content_length(start_with_fds):
    srv, base = start_with_fds(limits__body=1024)
    head = b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n"
    refused(srv, base, [head, b"\r\n"], 413, "limits.body")


def test_body_limit_by_chunked_total(start_with_fds):
    srv, base = start_with_fds(limits__body=1024)
    head = b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"190\r\n" + b"c" * 400 + b"\r\n"  # 400 bytes: the third one goes over 1024
    refused(srv, base, [head, chunk, chunk, chunk], 413, "limits.body")


def test_body_limit_with_expect_continue_sends_no_100(start_with_fds):
    srv, base = start_with_fds(limits__body=1024)
    client = Client(srv.connect())
    client.send(
        b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    assert_error(client.read(), 413, "limits.body")  # not a 100 first
    assert client.closed()
    client.close()
    no_leak(base)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_at_the_limit_is_read(start_with_fds, chunked):
    srv, base = start_with_fds(limits__body=1024)
    client = Client(srv.connect())
    if chunked:
        framing, body = b"Transfer-Encoding: chunked", b"400\r\n" + b"x" * 1024 + b"\r\n0\r\n\r\n"
    else:
        framing, body = b"Content-Length: 1024", b"x" * 1024
    client.send(b"POST /hello.txt HTTP/1.1\r\nHost: t\r\n" + framing + b"\r\n\r\n" + body)
    reply = client.read()
    assert reply.status == 405  # read whole, then refused by the file domain, not by the limit
    assert "connection" not in reply.headers
    assert client.get("/hello.txt").status == 200
    client.close()
    no_leak(base)


def test_connection_limit(start_with_fds):
    srv, base = start_with_fds(limits__connections=3)
    clients = [Client(srv.connect()) for _ in range(3)]
    for client in clients:
        assert client.get("/hello.txt").status == 200  # all three are in and kept alive

    fourth = Client(srv.connect())
    assert_error(fourth.read(), 503, "limits.connections")
    assert fourth.closed()
    fourth.close()

    for client in clients:  # the three keep being served meanwhile
        reply = client.get("/hello.txt")
        assert reply.status == 200 and reply.body == HELLO

    clients.pop().close()
    assert wait_for(lambda: connection_count(srv) == 2)
    clients.append(Client(srv.connect()))
    reply = clients[-1].get("/hello.txt")
    assert reply.status == 200 and reply.body == HELLO

    for client in clients:
        client.close()
    no_leak(base)


def test_requests_per_connection_limit(start_with_fds):
    srv, base = start_with_fds(limits__requests=3)
    client = Client(srv.connect())
    for _ in range(2):
        reply = client.get("/hello.txt")
        assert reply.status == 200 and reply.body == HELLO
        assert "connection" not in reply.headers  # kept alive
    served(srv)
    reply = client.get("/hello.txt")
    assert reply.status == 200 and reply.body == HELLO
    assert reply.headers["connection"] == "close"
    assert client.closed()
    client.close()
    served(srv)
    no_leak(base)


def test_requests_limit_with_pipelining_answers_only_up_to_the_limit(start_with_fds):
    srv, base = start_with_fds(limits__requests=2)
    client = Client(srv.connect())
    client.send(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n" * 4)
    assert "connection" not in client.read().headers
    assert client.read().headers["connection"] == "close"
    assert client.closed()
    assert client.buf == b""  # nothing for the third and fourth requests
    client.close()
    no_leak(base)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\nHost: t\n\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
        (b"BREW / HTTP/1.1\r\nHost: t\r\n\r\n", 501),
        (POST + b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: tea\r\n\r\nab", 417),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ],
    ids=["bare-lf", "no-host", "http2", "brew", "te-and-cl", "gzip", "expect", "chunk-size"],
)
def test_protocol_error_answers_then_closes(start_with_fds, data, status):
    srv, base = start_with_fds()
    client = Client(srv.connect())
    pipelined = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"
    client.send(data + pipelined)  # whatever follows a protocol error is never answered
    reply = client.read()
    assert reply.status == status, reply.body
    assert reply.headers["connection"] == "close"
    assert reply.body.count(b"\n") == 1
    assert client.closed()
    assert client.buf == b""
    served(srv)
    client.close()
    no_leak(base)


def test_client_reset_mid_request_leaks_nothing(start_with_fds):
    srv, base = start_with_fds()
    for partial in (
        b"GET /hello.txt HTTP/1.1\r\nHo",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\nab",
    ):
        sock = srv.connect()
        sock.sendall(partial)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # an RST
    served(srv)
    no_leak(base)


# -- timeouts -------------------------------------------------------------------------


def wait_reply(client: Client, timeout: float) -> float:
    """Seconds until the server sends something (or closes)."""
    start = time.monotonic()
    ready, _, _ = select.select([client.sock], [], [], timeout)
    assert ready, f"nothing from the server within {timeout} s"
    return time.monotonic() - start


def test_parse_timeout(start_with_fds):
    srv, base = start_with_fds(timeouts__parse=1)
    client = Client(srv.connect())
    client.send(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n")  # no blank line: a stalled head
    sent = time.monotonic()
    served(srv)
    wait_reply(client, 1 + 3)
    elapsed = time.monotonic() - sent
    assert 1 - 0.3 <= elapsed <= 1 + 3, elapsed
    reply = client.read()
    assert_error(reply, 408, "timeouts.parse")
    assert client.closed()
    client.close()
    served(srv)
    no_leak(base)


def test_parse_timeout_cuts_a_slowloris(start_with_fds):
    srv, base = start_with_fds(timeouts__parse=1)
    client = Client(srv.connect())
    client.send(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nX-Slow: ")
    first = time.monotonic()
    while True:  # one more header byte every 0.3 s: progress does not reset the clock
        ready, _, _ = select.select([client.sock], [], [], 0.3)
        if ready:
            break
        assert time.monotonic() - first < 1 + 3, "the slow head was never cut"
        client.send(b"z")
        served(srv)
    elapsed = time.monotonic() - first
    assert 1 - 0.3 <= elapsed <= 1 + 3, elapsed
    assert_error(client.read(), 408, "timeouts.parse")
    assert client.closed()
    client.close()
    no_leak(base)


def test_parse_timeout_on_a_kept_alive_connection(start_with_fds):
    srv, base = start_with_fds(timeouts__parse=1)
    client = Client(srv.connect())
    assert client.get("/hello.txt").status == 200
    client.send(b"GET /hello.txt HT")
    elapsed = wait_reply(client, 1 + 3)
    assert elapsed >= 1 - 0.3, elapsed
    assert_error(client.read(), 408, "timeouts.parse")
    assert client.closed()
    client.close()
    no_leak(base)


def test_inactivity_timeout_closes_silently(start_with_fds):
    srv, base = start_with_fds(timeouts__inactivity=3)
    kept = Client(srv.connect())
    assert kept.get("/hello.txt").status == 200
    answered = time.monotonic()
    silent = Client(srv.connect())  # connected, never says anything
    connected = time.monotonic()
    time.sleep(1)
    served(srv)
    for client, since in ((kept, answered), (silent, connected)):
        client.sock.settimeout(3 + 3)
        assert client.sock.recv(100) == b""  # EOF, no bytes: no 408 for an idle connection
        elapsed = time.monotonic() - since
        assert 3 - 0.5 <= elapsed <= 3 + 3, elapsed
        client.close()
    served(srv)
    no_leak(base)


def test_a_request_resets_the_inactivity_timeout(start_with_fds):
    srv, base = start_with_fds(timeouts__inactivity=3)
    client = Client(srv.connect())
    began = time.monotonic()
    for _ in range(3):
        time.sleep(1.2)
        assert client.get("/hello.txt").status == 200  # 3.6 s alive: each request resets it
    assert time.monotonic() - began > 3
    client.close()
    no_leak(base)


@pytest.mark.parametrize("trickle", [False, True], ids=["stalled", "trickling"])
def test_request_timeout(start_with_fds, trickle):
    srv, base = start_with_fds(timeouts__request=1, timeouts__parse=10)
    client = Client(srv.connect())
    client.send(b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + b"b" * 10)
    sent = time.monotonic()
    served(srv)
    while True:
        ready, _, _ = select.select([client.sock], [], [], 0.3)
        if ready:
            break
        assert time.monotonic() - sent < 1 + 3, "the slow body was never cut"
        if trickle:
            client.send(b"b")
    elapsed = time.monotonic() - sent
    assert 1 - 0.3 <= elapsed <= 1 + 3, elapsed
    assert_error(client.read(), 408, "timeouts.request")
    assert client.closed()
    client.close()
    served(srv)
    no_leak(base)


def test_a_reader_that_stops_is_dropped_one_that_moves_is_not(start_with_fds, docs):
    big = os.urandom(12 * 1024 * 1024)
    (docs / "big.bin").write_bytes(big)
    srv, base = start_with_fds(timeouts__inactivity=3)
    clients = []
    for _ in range(2):
        sock = srv.connect()
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        clients.append(sock)
    stalled, moving = clients
    port = stalled.getsockname()[1]

    def stalled_open() -> bool:
        return srv.call(lambda: any(c.client[1] == port for c in srv.server.connections))

    asked = time.monotonic()
    dropped = None
    data, total = b"", None  # total: head and body, once the head is in
    while total is None or len(data) < total:  # 256 KiB every 0.1 s: slow, but moving
        step = len(data) + 256 * 1024
        while len(data) < step and (total is None or len(data) < total):
            chunk = moving.recv(step - len(data))
            assert chunk, "the moving reader was cut"
            data += chunk
            if total is None and b"\r\n\r\n" in data:
                total = data.index(b"\r\n\r\n") + 4 + len(big)
        time.sleep(0.1)
        if dropped is None and not stalled_open():
            dropped = time.monotonic() - asked
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 ") and body == big
    moving_took = time.monotonic() - asked
    if dropped is None:
        assert wait_for(lambda: not stalled_open(), timeout=3 + 3), "the stalled reader stayed"
        dropped = time.monotonic() - asked
    assert 3 - 0.5 <= dropped <= 3 + 3, dropped
    assert moving_took > 3 or dropped > moving_took, "the test did not outlast the timeout"
    got = 0
    try:
        while True:
            data = stalled.recv(1 << 20)
            if not data:
                break
            got += len(data)
    except ConnectionResetError:
        pass
    assert got < len(big) + 200  # cut short
    for sock in clients:
        sock.close()
    no_leak(base)


# -- no reply is lost to a timeout ----------------------------------------------------

SLOW_APP = """
import time

from httap import Pending


def setup(server):
    @server.action("slow")
    def slow(request):
        # Answers `after` s later; the loop is busy from just before until just after
        # (a password check, a slow board), so that several timers fall due at once.
        pending = Pending()
        after = float(request.params["after"])
        server.call_later(after - 0.05, lambda: time.sleep(0.1))
        server.call_later(after, lambda: pending.resolve({"late": True}))
        return pending
"""


def test_replies_slower_than_the_inactivity_timeout_all_arrive(start_with_fds, tmp_path):
    """Eight long-polls, a slow action and a serial wait, each about 1 s longer than
    timeouts.inactivity (httap.js's watch() waits 20 s against the default 15 s): every
    one gets its reply, and its connection then serves another request. Before, the
    inactivity check could fire between a reply's queuing and its sending: the slow
    action, whose reply falls due in the same turn as that check, lost its reply."""
    app = tmp_path / "app.py"
    app.write_text(SLOW_APP)
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        srv, base = start_with_fds(
            timeouts__inactivity=3,
            gpio__backend="sim",
            gpio__pins={"button": {"gpio": 4, "mode": "in", "pull": "up"}},
            app=str(app),
            serial={"dev": {"port": os.ttyname(slave)}},
        )
        targets = [
            *["/?gpio/button&wait=4"] * 8,
            "/?slow&after=3.99",
            "/?serial/dev&count=1&wait=4",
        ]
        clients = [Client(srv.connect(timeout=3 + 10)) for _ in targets]
        for client, target in zip(clients, targets):
            client.send(f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        lost = []
        for client, target in zip(clients, targets):
            try:
                reply = client.read()
            except ConnectionError:
                lost.append(target)
                continue
            assert reply.status == 200, (target, reply.raw_head)
            assert client.get("/hello.txt").body == HELLO  # and the connection goes on
        assert lost == [], f"{len(lost)} replies lost: {lost}"
        for client in clients:
            client.close()
        served(srv)
        no_leak(base)
    finally:
        os.close(master)
        os.close(slave)


def test_a_queued_reply_is_timed_from_its_queuing():
    """The rule as a property of the states (connection.py's table): a pending reply has
    no deadline; queued output has the inactivity deadline, counted from its queuing."""
    facts = ("closing", "writing", "scheduled", "pending", "partial", "buffered")
    for values in itertools.product((False, True), repeat=len(facts)):
        fact = dict(zip(facts, values))
        state = connection.state_of(**fact)
        if fact["pending"] and not (fact["writing"] or fact["scheduled"] or fact["closing"]):
            assert state == connection.WAITING
            assert connection.STATES[state].deadline is None  # the reply's own timer ends it
        if fact["writing"] and not fact["closing"]:
            assert state == connection.BUSY
    for queued in (connection.BUSY, connection.CLOSING):
        row = connection.STATES[queued]
        assert (row.deadline, row.on_timeout) == ("inactivity", connection.CLOSE)
    assert connection.state_of(False, False, False, False, False, False) == connection.IDLE
    assert connection.state_of(False, False, False, False, True, True) == connection.BODY
    assert connection.state_of(False, False, False, False, False, True) == connection.HEAD


# -- idleness -------------------------------------------------------------------------


def test_idle_server_uses_no_cpu(start_with_fds):
    srv, base = start_with_fds(timeouts__inactivity=60, timeouts__parse=60, timeouts__request=60)
    clients = [Client(srv.connect()) for _ in range(4)]
    for client in clients:
        assert client.get("/hello.txt").status == 200
    partial = Client(srv.connect())
    partial.send(b"GET /hello.txt HTTP/1.1\r\n")  # a head in progress
    body = Client(srv.connect())
    body.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab")  # a body
    lingering = Client(srv.connect())
    lingering.send(b"BREW / HTTP/1.1\r\n\r\n")  # answered, waiting for our close
    assert lingering.read().status == 501
    time.sleep(0.2)

    iterations = srv.call(lambda: srv.server.loop.iterations)
    cpu = time.process_time()
    time.sleep(1.0)
    used = time.process_time() - cpu
    turns = srv.call(lambda: srv.server.loop.iterations) - iterations
    assert used < 0.2, f"{used:.3f} s of CPU in 1 s of idleness: a busy loop"
    assert turns < 50, f"{turns} loop iterations in 1 s of idleness: a busy loop"

    for client in [*clients, partial, body, lingering]:
        client.close()
    no_leak(base)


# -- descriptors beyond select() ------------------------------------------------------------


@pytest.mark.parametrize("poller", [Epoll, Select])
def test_a_socket_beyond_select_is_served_by_epoll_refused_by_select(make_server, docs, poller):
    """select() cannot watch descriptor 1024 or above: where the loop waits in select()
    (no epoll) such a connection is refused with 503 (or closed), and the loop keeps
    serving; it must never stop on it. epoll has no such limit: it serves it."""
    server = make_server(documents=str(docs), loop=Loop(poller()))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1200:
        pytest.skip(f"the hard descriptor limit ({hard}) is below what this test needs")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    fillers = []
    try:
        while len(os.listdir("/proc/self/fd")) < 1030:
            fillers.append(os.open(os.devnull, os.O_RDONLY))
        client = Client(server.connect())
        client.send(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        try:
            reply = client.read()
        except (ConnectionError, OSError):
            reply = None
        if poller is Epoll:
            assert reply is not None and reply.status == 200
        else:
            assert reply is None or reply.status == 503
        client.close()
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    other = Client(server.connect())
    assert other.get("/hello.txt").status == 200
    other.close()
    assert server.thread.is_alive()


def test_the_loop_waits_in_epoll_where_there_is_one(make_server, docs):
    """Linux has epoll: the loop uses it, with no limit on descriptor numbers."""
    loop = make_server(documents=str(docs), limits__connections=2000).server.loop
    assert isinstance(loop.poller, Epoll) and loop.fd_limit is None


def test_a_closed_connection_is_freed_at_once(server):
    """Its timer stays in the loop's heap until the old deadline; it must not keep the
    connection (and its buffers) alive until then."""
    client = Client(server.connect())
    client.send(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n" * 3 + b"GET /hel")  # a partial head
    client.read()
    refs = server.call(lambda: [weakref.ref(each) for each in server.server.connections])
    assert refs
    client.close()
    assert wait_for(lambda: not server.call(lambda: len(server.server.connections)))
    assert wait_for(
        lambda: server.call(lambda: (gc.collect(), [r() for r in refs])[1]) == [None] * len(refs)
    )
