"""Serial ports against a real pseudo-terminal: the server opens the pty's slave like a
device, and the test plays the device on the master side.

Covers the vocabulary (`GET`/`POST /?serial/NAME` with `wait`, `until`, `count`),
ordering of writes, overflow reporting, unplug and replug, and that a serial wait
never holds up other clients.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time

import pytest

from httap import config
from httap.serialport import CONNECT_TIMEOUT
from httap.server import Server, StartupError
from tests.helpers import free_port, wait_for
from tests.helpers.client import Client
from tests.helpers.dynamic import call, check_error, encode
from tests.helpers.serialline import Device


@pytest.fixture
def devices():
    made: list[Device] = []

    def make() -> Device:
        made.append(Device())
        return made[-1]

    yield make
    for device in made:
        try:
            device.unplug()
        except OSError:
            pass  # unplugged by the test


@pytest.fixture
def clients():
    opened: list[Client] = []

    def connect(running, source: str | None = None) -> Client:
        opened.append(Client(running.connect(source=source)))
        return opened[-1]

    yield connect
    for client in opened:
        client.close()


def start(make_server, port: str, **settings):
    return make_server(
        serial={"dev": {"port": port, "baudrate": 115200, **settings}}, gpio__backend="sim"
    )


def check_bytes(reply, body: bytes, timeout: str = "0", dropped: str = "0") -> None:
    assert reply.status == 200, (reply.raw_head, reply.body)
    assert reply.headers["content-type"] == "application/octet-stream"
    assert reply.headers["httap-session"].isdigit()
    assert reply.headers["cache-control"].startswith("no-cache")
    assert reply.body == body
    assert reply.headers["httap-serial-timeout"] == timeout
    assert reply.headers["httap-serial-dropped"] == dropped


def test_get_takes_what_is_there_and_consumes_it(make_server, devices, clients):
    device = devices()
    client = clients(start(make_server, device.path))
    check_bytes(call(client, "GET", "/?serial/dev"), b"", timeout="1")
    device.send(b"abc")
    check_bytes(call(client, "GET", "/?serial/dev&count=3&wait=5"), b"abc")
    check_bytes(call(client, "GET", "/?serial/dev"), b"", timeout="1")
    device.send(b"x")
    # With wait alone, the reply comes with the first bytes.
    check_bytes(call(client, "GET", "/?serial/dev&wait=5"), b"x")


def test_until_and_count(make_server, devices, clients):
    device = devices()
    client = clients(start(make_server, device.path))
    device.send(b"one\r\ntwo\r\nthr\xff")
    check_bytes(call(client, "GET", "/?serial/dev&until=%0D%0A&wait=5"), b"one\r\n")
    check_bytes(call(client, "GET", "/?serial/dev&count=2&wait=5"), b"tw")
    check_bytes(call(client, "GET", "/?serial/dev&until=%0A&count=100&wait=5"), b"o\r\n")
    check_bytes(
        call(client, "GET", "/?serial/dev&until=%FF&wait=5"), b"thr\xff"
    )  # bytes, not UTF-8
    device.send(b"abcdef")
    # Whichever comes first: the terminator or the count.
    check_bytes(call(client, "GET", "/?serial/dev&until=c&count=2&wait=5"), b"ab")
    check_bytes(call(client, "GET", "/?serial/dev&until=d&count=5&wait=5"), b"cd")


def test_wait_times_out_with_what_is_there(make_server, devices, clients):
    device = devices()
    client = clients(start(make_server, device.path))
    device.send(b"partial")
    time.sleep(0.1)
    began = time.monotonic()
    reply = call(client, "GET", "/?serial/dev&until=%0A&wait=0.3")
    assert 0.25 < time.monotonic() - began < 2
    check_bytes(reply, b"partial", timeout="1")
    began = time.monotonic()
    check_bytes(call(client, "GET", "/?serial/dev&count=4&wait=0.2"), b"", timeout="1")
    assert time.monotonic() - began >= 0.15
    assert call(client, "GET", "/?ping").status == 200  # the connection goes on


def test_the_port_timeout_is_the_default_wait(make_server, devices, clients):
    device = devices()
    client = clients(start(make_server, device.path, timeout=0.2))
    began = time.monotonic()
    check_bytes(call(client, "GET", "/?serial/dev&until=%0A"), b"", timeout="1")
    assert time.monotonic() - began >= 0.15


def test_pipelined_and_interleaved_writes_reach_the_device_in_order(make_server, devices, clients):
    device = devices()
    running = start(make_server, device.path)
    first, second = clients(running), clients(running)
    first.send(b"".join(encode("POST", "/?serial/dev", f"a{i:02d};") for i in range(30)))
    for _ in range(30):
        reply = first.read()
        assert reply.status == 200 and reply.json() == {"written": 4}
    assert call(second, "POST", "/?serial/dev", b"b00;").json() == {"written": 4}
    expected = "".join(f"a{i:02d};" for i in range(30)) + "b00;"
    assert device.expect(len(expected)) == expected.encode()


def test_a_write_the_device_cannot_take_yet_is_queued_in_order(make_server, devices, clients):
    device = devices()
    running = start(make_server, device.path)
    first, second = clients(running), clients(running)
    big = os.urandom(200_000)  # far more than the pty holds: it goes out as the device reads
    port = running.server.serial["dev"]
    first.send(encode("POST", "/?serial/dev", big))
    assert wait_for(lambda: running.call(lambda: len(port.writing)) == 1)
    second.send(encode("POST", "/?serial/dev", b"after"))
    assert wait_for(lambda: running.call(lambda: len(port.writing)) == 2)
    time.sleep(0.1)
    assert select.select([first.sock, second.sock], [], [], 0)[0] == []  # both still pending
    assert device.expect(len(big) + 5) == big + b"after"
    assert first.read().json() == {"written": len(big)}
    assert second.read().json() == {"written": 5}


def test_post_with_until_is_a_transaction(make_server, devices, clients):
    device = devices()
    client = clients(start(make_server, device.path))
    client.send(encode("POST", "/?serial/dev&until=%0A&wait=5", b"*IDN?\n"))
    assert device.expect(6) == b"*IDN?\n"
    device.send(b"ACME,1\nnext")
    check_bytes(client.read(), b"ACME,1\n")
    check_bytes(call(client, "GET", "/?serial/dev"), b"next")


def test_overflow_keeps_the_newest_bytes_and_reports_the_dropped(make_server, devices, clients):
    device = devices()
    running = start(make_server, device.path, buffer=16)
    client = clients(running)
    port = running.server.serial["dev"]
    device.send(bytes(range(40)))
    assert wait_for(lambda: running.call(lambda: port.dropped) == 24)
    check_bytes(call(client, "GET", "/?serial/dev"), bytes(range(24, 40)), dropped="24")
    device.send(b"ok")
    check_bytes(call(client, "GET", "/?serial/dev&count=2&wait=5"), b"ok")  # reported once
    check_error(call(client, "GET", "/?serial/dev&count=17"), 400, "bad-value", "buffer")


def test_a_serial_wait_does_not_hold_up_other_clients(make_server, devices, clients):
    device = devices()
    running = start(make_server, device.path)
    waiting, other = clients(running), clients(running)
    waiting.send(encode("GET", "/?serial/dev&until=%0A&wait=10"))
    began = time.monotonic()
    assert call(other, "GET", "/?ping").status == 200
    assert call(other, "POST", "/?serial/dev", b"cmd").json() == {"written": 3}
    assert time.monotonic() - began < 1
    device.send(b"line\n")
    check_bytes(waiting.read(), b"line\n")


def test_a_client_that_leaves_gives_up_its_place_in_the_read_queue(make_server, devices, clients):
    device = devices()
    running = start(make_server, device.path)
    leaving, staying = clients(running), clients(running)
    leaving.send(encode("GET", "/?serial/dev&count=1&wait=10"))
    staying.send(encode("GET", "/?serial/dev&count=1&wait=10"))
    port = running.server.serial["dev"]
    assert wait_for(lambda: running.call(lambda: len(port.reading)) == 2)
    leaving.close()
    assert wait_for(lambda: running.call(lambda: len(port.reading)) == 1)
    device.send(b"z")
    check_bytes(staying.read(), b"z")


def test_errors(make_server, devices, clients):
    device = devices()
    client = clients(start(make_server, device.path))
    check_error(call(client, "GET", "/?serial/nope"), 404, "not-found", "dev")
    check_error(call(client, "GET", "/?serial/dev&unitl=%0A"), 400, "bad-param", "unitl")
    check_error(call(client, "GET", "/?serial/dev&count=0"), 400, "bad-value")
    check_error(call(client, "GET", "/?serial/dev&wait=soon"), 400, "bad-value")
    check_error(call(client, "GET", "/?serial/dev&wait=nan"), 400, "bad-value")
    check_error(call(client, "GET", "/?serial/dev&until="), 400, "bad-value")
    reply = call(client, "DELETE", "/?serial/dev")
    check_error(reply, 405, "method-not-allowed")
    assert reply.headers["allow"] == "GET, POST"


def test_writes_need_the_lease(make_server, devices, clients):
    device = devices()
    running = start(make_server, device.path)
    assert call(clients(running), "POST", "/?serial/dev", b"x").status == 200
    other = clients(running, source="127.0.0.2")
    check_error(call(other, "POST", "/?serial/dev", b"y"), 503, "busy")
    assert device.expect(1) == b"x"


def test_only_the_holder_reads_while_it_holds_the_hardware(make_server, devices, clients):
    """A read takes the bytes off the port: another client must not take the holder's
    reply. With nobody holding, anyone reads (without taking the hardware)."""
    device = devices()
    running = start(make_server, device.path)
    other = clients(running, source="127.0.0.2")
    check_bytes(call(other, "GET", "/?serial/dev"), b"", timeout="1")  # nobody holds it
    holder = clients(running)
    assert call(holder, "POST", "/?serial/dev", b"*IDN?\n").status == 200
    device.send(b"reply\n")
    check_error(call(other, "GET", "/?serial/dev&wait=1"), 503, "busy")
    check_bytes(call(holder, "GET", "/?serial/dev&until=%0A&wait=5"), b"reply\n")
    assert call(other, "GET", "/?gpio").status == 200  # other reads stay open


@pytest.mark.parametrize(
    ("params", "words"),
    [
        (
            "count=" + "9" * 5000,
            "count is a whole number of bytes from 1 to 16 (serial.dev.buffer)",
        ),
        ("count=17", "from 1 to 16"),
        ("count=1.5", "from 1 to 16"),
        ("count=-1", "from 1 to 16"),
        ("count=%2B3", "from 1 to 16"),  # "+3": int() would take it
        ("count=%D9%A3", "from 1 to 16"),  # an Arabic-Indic three: int() would take it too
        ("count=1e1", "from 1 to 16"),
        ("wait=inf", "wait is a number of seconds from 0 to 3600"),
        ("wait=1e400", "from 0 to 3600"),
        ("wait=" + "9" * 5000, "from 0 to 3600"),
        ("wait=-1", "from 0 to 3600"),
        ("wait=3600.01", "from 0 to 3600"),
        ("until=" + "%41" * 17, "until is from 1 to 16 bytes"),  # could never be matched
        ("until=", "until is from 1 to 16 bytes"),
    ],
)
def test_numbers_and_sizes_outside_their_range(make_server, devices, clients, params, words):
    device = devices()
    running = make_server(
        serial={"dev": {"port": device.path, "buffer": 16}},
        gpio__backend="sim",
        limits__uri=16384,
    )
    client = clients(running)
    for method in ("GET", "POST"):
        began = time.monotonic()
        reply = call(client, method, f"/?serial/dev&{params}", b"x" if method == "POST" else b"")
        check_error(reply, 400, "bad-value", words)
        assert time.monotonic() - began < 0.9  # refused at once
    assert call(client, "POST", "/?serial/dev", b"z").json() == {"written": 1}
    assert device.expect(1) == b"z"  # the refused writes wrote nothing
    device.send(b"ok")
    check_bytes(call(clients(running), "GET", "/?serial/dev&count=2&wait=5"), b"ok")


def test_busy_messages_say_what_was_refused_on_the_port(make_server, devices, clients):
    """A read from another client was refused with "reads stay open": not for a port."""
    device = devices()
    running = start(make_server, device.path)
    holder = clients(running)
    assert call(holder, "POST", "/?serial/dev", b"x").status == 200
    other = clients(running, source="127.0.0.2")
    read = check_error(
        call(other, "GET", "/?serial/dev"),
        503,
        "busy",
        "reading serial port dev is refused",
        "the holder's reply",
    )
    write = check_error(
        call(other, "POST", "/?serial/dev", b"y"), 503, "busy", "writing to serial port dev"
    )
    for refused in (read, write):
        assert "stay open" not in refused["message"], refused
    assert device.expect(1) == b"x"
    assert call(other, "GET", "/?gpio").status == 200


def test_unplug_and_replug(make_server, devices, clients, tmp_path):
    link = tmp_path / "ttyUSB0"  # a device path that appears and disappears
    running = start(make_server, str(link))  # absent at start: not fatal
    client = clients(running)
    value = check_error(call(client, "GET", "/?serial/dev"), 503, "port-unavailable", "ttyUSB0")
    assert "keeps trying" in value["message"]
    assert call(client, "GET", "/?ping").status == 200  # everything else is served

    def plug() -> Device:
        device = devices()
        fresh = tmp_path / "new-link"
        fresh.symlink_to(device.path)
        os.replace(fresh, link)
        return device

    def replugged():
        reply = call(client, "GET", "/?serial/dev")
        return reply if reply.status == 200 else None

    device = plug()
    check_bytes(wait_for(replugged), b"", timeout="1")
    device.send(b"hello\n")
    check_bytes(call(client, "GET", "/?serial/dev&until=%0A&wait=5"), b"hello\n")

    # Unplugged while a read waits: the read gets 503 at once, and so do new requests.
    client.send(encode("GET", "/?serial/dev&count=10&wait=30"))
    time.sleep(0.1)
    device.send(b"lost")
    time.sleep(0.1)
    device.unplug()
    check_error(client.read(), 503, "port-unavailable")
    check_error(call(client, "POST", "/?serial/dev", b"x"), 503, "port-unavailable")

    device = plug()
    # The bytes buffered when the port was lost are reported, not delivered stale.
    check_bytes(wait_for(replugged), b"", timeout="1", dropped="4")
    device.send(b"back")
    check_bytes(call(client, "GET", "/?serial/dev&count=4&wait=5"), b"back")
    assert call(client, "POST", "/?serial/dev", b"ok").json() == {"written": 2}
    assert device.expect(2) == b"ok"


# -- socket:// ports, and opening that never holds up the loop ---------------------------


@pytest.fixture
def black_hole():
    """A TCP port on 127.0.0.1 that never answers a connect, as behind a firewall that
    drops packets: a listener with a backlog of 0 whose queue is full and never
    accepted, so the kernel drops the SYNs that follow. Yields the port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(address)
        fillers.append(filler)
    probe = socket.socket()
    probe.setblocking(False)
    probe.connect_ex(address)
    assert select.select([], [probe], [], 0.3)[1] == [], "the queue did not fill up"
    yield address[1]
    for sock in (listener, probe, *fillers):
        sock.close()


def opened(client: Client):
    """The reply to a read of the port once it is open, else None."""
    reply = call(client, "GET", "/?serial/dev")
    return reply if reply.status == 200 else None


def listen_on(port: int) -> socket.socket:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1)
    listener.settimeout(15)
    return listener


def test_a_black_holed_socket_port_never_holds_up_the_loop(
    make_server, black_hole, clients, caplog
):
    """pyserial connects with a blocking 5 s timeout: every attempt on a port that
    drops connects held the loop (and every ping) for 5 s. Now pings are answered
    while an attempt is under way, and no tick of a task is late by a connect."""
    caplog.set_level(logging.DEBUG, logger="httap.serial")
    url = f"socket://127.0.0.1:{black_hole}"
    running = start(make_server, url)
    running.call(lambda: running.server.every(0.01, lambda: None, name="tick"))
    client = clients(running)

    def lines(words: str) -> list[float]:
        return [r.created for r in caplog.records if words in r.getMessage()]

    answered: list[float] = []
    deadline = time.monotonic() + 20
    while not lines("no answer from") and time.monotonic() < deadline:
        assert call(client, "GET", "/?ping").status == 200
        answered.append(time.time())
    (began, *_), (ended, *_) = lines(f"connecting to {url}"), lines("no answer from")
    during = [when for when in answered if began < when < ended]
    assert len(during) >= 20, (len(during), len(answered))  # a blocking connect answers none
    stats = call(client, "GET", "/?stats").json()
    (tick,) = [task for task in stats["tasks"] if task["name"] == "tick"]
    assert tick["runs"] > 0 and tick["lateness_us"]["max"] < CONNECT_TIMEOUT * 1e6
    check_error(
        call(client, "GET", "/?serial/dev"),
        503,
        "port-unavailable",
        f"no answer from 127.0.0.1:{black_hole} within 5 s",
    )


def test_a_socket_port_that_refuses_then_answers_then_leaves(make_server, clients):
    port = free_port()
    running = start(make_server, f"socket://127.0.0.1:{port}")
    client = clients(running)

    def refused():
        reply = call(client, "GET", "/?serial/dev")
        return reply if "refused" in reply.body.decode() else None

    check_error(wait_for(refused), 503, "port-unavailable", "Connection refused")
    assert call(client, "GET", "/?ping").status == 200
    with listen_on(port) as listener:
        for _ in range(2):  # the device answers, leaves, and is reached again
            check_bytes(wait_for(lambda: opened(client), timeout=15), b"", timeout="1")
            device, _ = listener.accept()
            client.send(encode("POST", "/?serial/dev&until=%0A&wait=5", b"*IDN?\n"))
            assert device.recv(100) == b"*IDN?\n"
            device.sendall(b"ACME,1\n")
            check_bytes(client.read(), b"ACME,1\n")
            device.close()
            lost = wait_for(lambda: call(client, "GET", "/?serial/dev").status == 503)
            assert lost


def test_a_host_name_is_looked_up_off_the_loop(make_server, clients, monkeypatch):
    """A name lookup can take seconds (a resolver that does not answer); it happens in
    a thread, and the loop serves meanwhile. Here the lookup waits for the test."""
    release = threading.Event()
    asked: list[str] = []
    lookup = socket.getaddrinfo

    def slow(host, port, *args, **kwargs):
        if not kwargs.get("flags", 0) & socket.AI_NUMERICHOST:  # a lookup, not an address
            asked.append(host)
            release.wait(30)
        return lookup(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    port = free_port()
    with listen_on(port) as listener:
        running = start(make_server, f"socket://localhost:{port}")
        client = clients(running)
        for _ in range(50):
            assert call(client, "GET", "/?ping").status == 200
        check_error(call(client, "GET", "/?serial/dev"), 503, "port-unavailable")
        assert asked == ["localhost"] and not release.is_set()  # all while it looked up
        release.set()
        check_bytes(wait_for(lambda: opened(client)), b"", timeout="1")
        device, _ = listener.accept()
        device.sendall(b"hi")
        check_bytes(call(client, "GET", "/?serial/dev&count=2&wait=5"), b"hi")
        device.close()


@pytest.mark.parametrize(
    "url, words",
    [
        ("rfc2217://127.0.0.1:2217", "rfc2217:// blocks or needs a thread"),
        ("loop://", "use a device path or socket://HOST:PORT"),
        ("socket://127.0.0.1", "is not socket://HOST:PORT"),
        ("socket://127.0.0.1:99999", "a TCP port from 1 to 65535"),
        ("socket://:7000", "a host name or address"),
        ("socket://127.0.0.1:7000?logging=debug", "with no path or options"),
    ],
)
def test_a_port_the_loop_cannot_serve_is_refused_at_start(url, words):
    settings = config.load(
        None, env={}, overrides={"serial": {"dev": {"port": url}}, "gpio.backend": "sim"}
    )
    with pytest.raises(StartupError) as caught:
        Server(settings)
    assert str(caught.value).startswith(f"serial.dev.port: {url!r}")
    assert words in str(caught.value)


def test_a_bridge_that_hangs_up_at_once_is_retried_with_back_off(make_server, clients):
    """A bridge that accepts and closes at once (ser2net with its line busy does) was
    reopened every 0.5 s, a warning and an info line each time: the back-off now goes
    on while a port is lost soon after it opened."""
    port = free_port()
    with listen_on(port) as listener:
        running = start(make_server, f"socket://127.0.0.1:{port}")
        client = clients(running)
        for delay in ("1", "2", "4"):
            device, _ = listener.accept()
            device.close()

            def backed_off(delay=delay):
                reply = call(client, "GET", "/?serial/dev")
                return reply if reply.headers.get("retry-after") == delay else None

            check_error(wait_for(backed_off), 503, "port-unavailable", "end of file")
        assert call(client, "GET", "/?ping").status == 200
