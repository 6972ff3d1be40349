"""Serial ports against a real pseudo-terminal: the server opens the pty's slave like a
device, and the test plays the device on the master side.

Covers the vocabulary (`GET`/`POST /?serial/NAME` with `wait`, `until`, `count`),
ordering of writes, overflow reporting, unplug and replug, and that a serial wait
never holds up other clients.
"""

from __future__ import annotations

import os
import select
import time
import tty

import pytest

from tests.client import Client
from tests.conftest import wait_for
from tests.test_manager import call, check_error, encode


class Device:
    """The far end of a serial line: the master side of a fresh pseudo-terminal."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # bytes pass unchanged, as on a real line
        self.path = os.ttyname(self.slave)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, size: int, timeout: float = 5.0) -> bytes:
        """Read exactly `size` bytes that the server wrote to the port."""
        data = b""
        deadline = time.monotonic() + timeout
        while len(data) < size:
            left = deadline - time.monotonic()
            assert left > 0 and select.select([self.master], [], [], left)[0], data
            data += os.read(self.master, size - len(data))
        return data

    def unplug(self) -> None:
        for fd in (self.master, self.slave):
            os.close(fd)


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
