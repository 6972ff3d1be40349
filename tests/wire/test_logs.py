"""The access log, the trace of heads and the audit of hardware changes."""

from __future__ import annotations

import logging
import re
import socket

import pytest

from tests.helpers import wait_for
from tests.helpers.client import Client
from tests.helpers.dynamic import call, encode
from tests.helpers.servers import PINS

# 127.0.0.1 - - [21/Nov/2026:21:55:02 +0000] "GET /index.html HTTP/1.1" 200 1024 s=12 0.000183
ACCESS = re.compile(
    r'127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\] "(?P<request>[^"]*)"'
    r" (?P<status>\d{3}) (?P<bytes>\d+|-) s=(?P<session>\d+) (?P<duration>\d+\.\d{6}|-)"
)


def lines(caplog, logger: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == logger]


def session_of(reply) -> str:
    return reply.headers["httap-session"]


def test_access_lines_for_a_static_and_a_dynamic_request(make_server, docs, caplog):
    running = make_server(documents=str(docs), log__access=True, gpio__backend="sim")
    client = Client(running.connect())
    with caplog.at_level(logging.INFO, logger="httap.access"):
        client.get("/hello.txt")
        dynamic = client.get("/?ping")
        client.get("/hello.txt", method="HEAD")
        static, ping, head = (ACCESS.fullmatch(line) for line in lines(caplog, "httap.access"))
    client.close()
    assert static["request"] == "GET /hello.txt HTTP/1.1"
    assert (static["status"], static["bytes"]) == ("200", "13")
    assert ping["request"] == "GET /?ping HTTP/1.1"
    assert (ping["status"], ping["bytes"]) == ("200", str(len(dynamic.body)))
    assert head["bytes"] == "-"  # no body is sent for HEAD
    assert static["session"] == ping["session"] == session_of(dynamic)
    assert all(0 <= float(match["duration"]) < 1 for match in (static, ping, head))


def test_access_log_off_emits_nothing(make_server, docs, caplog):
    running = make_server(documents=str(docs))
    client = Client(running.connect())
    with caplog.at_level(logging.DEBUG):
        client.get("/hello.txt")
    client.close()
    assert running.server.logs is None
    assert not lines(caplog, "httap.access") and not lines(caplog, "httap.trace")


def test_access_log_to_a_file_names_a_protocol_error_too(make_server, docs, tmp_path):
    path = tmp_path / "access.log"
    path.write_text("kept\n")
    running = make_server(documents=str(docs), log__access=str(path))
    client = Client(running.connect())
    client.get("/nowhere")
    client.send(b"BAD\r\n\r\n")
    assert client.read().status == 400
    client.close()
    assert wait_for(lambda: len(path.read_text().splitlines()) == 3)
    kept, missing, bad = path.read_text().splitlines()
    assert kept == "kept"  # appended to, not replaced
    assert ACCESS.fullmatch(missing)["status"] == "404"
    assert ACCESS.fullmatch(bad).group("request", "status", "duration") == ("-", "400", "-")


def test_trace_shows_both_heads(spawn, docs):
    process = spawn("serve", "--listen", "http://127.0.0.1:0", "--documents", str(docs), "--trace")
    with socket.create_connection((process.host, process.port), timeout=5) as sock:
        client = Client(sock)
        reply = client.get("/hello.txt", headers="X-Probe: 42\r\n")
    process.signal()
    assert process.wait() == 0
    stderr = process.proc.stderr.read()
    session = re.search(r"s=(\d+) > GET /hello\.txt HTTP/1\.1", stderr)
    assert session, stderr
    prefix = f"s={session[1]}"
    assert f"{prefix} > x-probe: 42" in stderr
    assert f"{prefix} < HTTP/1.1 200 OK" in stderr
    assert f"{prefix} < Content-Length: 13" in stderr
    assert reply.status == 200


@pytest.fixture
def audited(make_server, caplog):
    caplog.set_level(logging.INFO, logger="httap.audit")
    return make_server(gpio__backend="sim", gpio__pins=PINS)


def test_audit_of_a_write_and_a_batch(audited, caplog):
    client = Client(audited.connect())
    session = session_of(call(client, "POST", "/?gpio/led", b"1"))
    call(client, "POST", "/?gpio", {"led": 0, "buzzer": 1})
    assert lines(caplog, "httap.audit") == [
        f"s={session} 127.0.0.1 led 0 -> 1 (POST /?gpio/led)",
        f"s={session} 127.0.0.1 led 1 -> 0 (POST /?gpio)",
        f"s={session} 127.0.0.1 buzzer 0 -> 1 (POST /?gpio)",
    ]
    client.close()  # only now: it applies the safe values, audited too


def test_audit_of_a_pulse_and_a_pwm(audited, caplog):
    client = Client(audited.connect())
    session = session_of(call(client, "POST", "/?gpio/led", {"pulse": 0.05}))
    call(client, "PUT", "/?gpio/buzzer", {"pwm": {"frequency": 440, "duty": 0.5}})
    assert lines(caplog, "httap.audit") == [
        f"s={session} 127.0.0.1 led 0 -> 1 (POST /?gpio/led, pulse 0.05 s)",
        f"s={session} 127.0.0.1 led 1 -> 0 (POST /?gpio/led, pulse end)",
        f"s={session} 127.0.0.1 buzzer 0 -> pwm 0.5 at 440 Hz (PUT /?gpio/buzzer)",
    ]
    client.close()  # only now: it applies the safe values, audited too


def test_audit_of_a_safe_value_on_disconnect(audited, caplog):
    client = Client(audited.connect())
    session = session_of(call(client, "POST", "/?gpio/led", b"1"))
    client.close()
    safe = "s=- - led 1 -> 0 (safe value)"
    assert wait_for(lambda: safe in lines(caplog, "httap.audit"))
    assert lines(caplog, "httap.audit")[0] == f"s={session} 127.0.0.1 led 0 -> 1 (POST /?gpio/led)"


def test_audit_of_an_app_write_outside_a_request(audited, caplog):
    audited.call(lambda: audited.server.write("led", 1))
    assert lines(caplog, "httap.audit") == ["s=- - led 0 -> 1 (app)"]


REPEATS = {
    "led": {"gpio": 17, "mode": "out", "safe": 0},
    "button": {"gpio": 4, "mode": "in", "pull": "up"},
    "motor": {"gpio": 18, "mode": "pwm", "frequency": 100, "safe": 0},
}


def test_audit_records_changes_not_repeats(make_server, caplog):
    caplog.set_level(logging.INFO, logger="httap.audit")
    running = make_server(gpio__backend="sim", gpio__pins=REPEATS)
    client = Client(running.connect())
    session = session_of(call(client, "POST", "/?gpio/led", b"1"))
    for _ in range(3):  # writes, a batch, a pulse's start, an app's write: all repeats
        call(client, "POST", "/?gpio/led", b"1")
        call(client, "PUT", "/?gpio/led", {"value": 1})
        call(client, "POST", "/?gpio", {"led": 1})
        running.call(lambda: running.server.write("led", 1))
    for _ in range(3):
        call(client, "PUT", "/?gpio/motor", {"pwm": {"frequency": 440, "duty": 0.5}})
        call(client, "PUT", "/?gpio/motor", {"pwm": {"duty": 0.5}})
        running.call(lambda: running.server.pwm("motor", duty=0.5))
    for _ in range(3):  # the simulated wire of an input
        call(client, "POST", "/?gpio/button", {"drive": 0})
    call(client, "POST", "/?gpio/led", b"0")
    client.close()  # the lease ends: led is at its safe value already, motor is not
    safe = "s=- - motor pwm 0.5 at 440 Hz -> 0 (safe value)"
    assert wait_for(lambda: safe in lines(caplog, "httap.audit"))
    assert lines(caplog, "httap.audit") == [
        f"s={session} 127.0.0.1 led 0 -> 1 (POST /?gpio/led)",
        f"s={session} 127.0.0.1 motor 0 -> pwm 0.5 at 440 Hz (PUT /?gpio/motor)",
        f"s={session} 127.0.0.1 button 1 -> 0 (POST /?gpio/button, drive)",
        f"s={session} 127.0.0.1 led 1 -> 0 (POST /?gpio/led)",
        safe,
    ]


def test_a_pulse_over_a_pulse_logs_no_repeat(make_server, caplog):
    caplog.set_level(logging.INFO, logger="httap.audit")
    running = make_server(gpio__backend="sim", gpio__pins=REPEATS, session__exclusive="off")
    first, second = Client(running.connect()), Client(running.connect())
    first.send(encode("POST", "/?gpio/led", {"pulse": 0.5}))
    assert wait_for(lambda: len(lines(caplog, "httap.audit")) == 1)
    assert call(second, "POST", "/?gpio/led", {"pulse": 0.05}).json()["value"] == 0
    assert first.read().json()["interrupted"] is True
    assert [line.split(" ", 2)[2] for line in lines(caplog, "httap.audit")] == [
        "led 0 -> 1 (POST /?gpio/led, pulse 0.5 s)",
        "led 1 -> 0 (POST /?gpio/led, pulse end)",  # the second pulse's end; its start repeated
    ]
    first.close()
    second.close()
