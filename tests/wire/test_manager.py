"""The HTTaP domain over real sockets: every row of docs/protocol.md's vocabulary, the reply
headers, sessions, the hardware lease, safe values, errors, CORS and ordering.

The board is the simulated one (`gpio.sim.SimBackend`): every pin keeps its history, so
the tests check what the hardware really saw, in which order and when. The sim lives
in the loop's thread: the tests touch it only through `running.call(...)`.
"""

from __future__ import annotations

import itertools
import json
import logging
import socket
import struct
import time

import pytest

from tests.helpers import wait_for
from tests.helpers.client import Client
from tests.helpers.dynamic import call, check_dynamic, check_error, encode
from tests.helpers.servers import BUTTON, BUZZER, LED, PINS, history, read_pin, values

RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset

APP = """
def setup(server):
    @server.action("car/forward", methods=("POST",))
    def forward(request):
        return {"moving": True}

    @server.action("explode")
    def explode(request):
        raise RuntimeError("boom")
"""


# -- helpers ---------------------------------------------------------------------------


def drive(running, number: int, value: int) -> None:
    running.call(lambda: running.server.gpio.drive(number, value))


def count_history(running) -> None:
    """Stamp the sim's history with a counter instead of the clock: strict order across pins."""
    counter = itertools.count()
    running.call(lambda: setattr(running.server.gpio, "clock", lambda: next(counter)))


def make_app(tmp_path, source: str = APP) -> str:
    path = tmp_path / "app.py"
    path.write_text(source)
    return str(path)


@pytest.fixture
def start(make_server):
    """A server on the simulated board with PINS declared."""

    def start_gpio(**overrides):
        settings = {"gpio__backend": "sim", "gpio__pins": PINS, **overrides}
        return make_server(**settings)

    return start_gpio


# -- discovery, ping, stats ------------------------------------------------------------


def test_discovery_lists_the_services_and_the_session(start, connect, tmp_path):
    running = start(app=make_app(tmp_path), id="bench-7")
    client = connect(running)
    reply = call(client, "GET", "/?")
    assert reply.status == 200
    check_dynamic(reply)
    info = reply.json()
    assert info["HTTaP_version"] == "1.0"
    assert info["ID"] == "bench-7"
    assert {"gpio", "car/forward", "explode"} <= set(info["Services"])
    assert "files" not in info["Services"]  # no `uploads` (tests/wire/test_files.py has one)
    assert "serial" not in info["Services"]  # none configured
    assert info["Serial"] == []
    assert info["Timeout"] == 15
    assert info["Session"] == int(reply.headers["httap-session"])
    head = call(client, "HEAD", "/?")
    assert head.status == 200 and head.body == b""
    assert int(head.headers["content-length"]) == len(reply.body)


@pytest.mark.parametrize("target", ["/?ping", "/?ping42", "/?ping/anything&x=1"])
def test_ping_gives_remain_and_timeout(start, connect, target):
    running = start(timeouts__inactivity=20)
    client = connect(running)
    reply = call(client, "GET", target)
    assert reply.status == 200
    check_dynamic(reply)
    value = reply.json()
    assert value["Timeout"] == 20
    assert 19 <= value["Remain"] <= 20


def test_ping_remain_counts_down_from_the_last_request(start, connect):
    running = start(timeouts__inactivity=20)
    client = connect(running)
    call(client, "GET", "/?ping")
    time.sleep(0.5)
    remain = call(client, "GET", "/?ping").json()["Remain"]
    assert 18.5 <= remain <= 19.6
    remain = call(client, "GET", "/?ping").json()["Remain"]  # the ping reset the timer
    assert remain >= 19.8


@pytest.mark.parametrize("activity", ["a file", "a long-poll's end", "a slow download's end"])
def test_remain_counts_from_the_last_request_or_reply_of_any_kind(start, tmp_path, activity):
    """Remain says when the inactivity timeout would close this connection: every
    request (a file too) and the end of every reply restart it, so after a pause and
    then any of those, a ping finds (nearly) the whole timeout left."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.html").write_bytes(b"<h1>home</h1>\n")
    big = b"x" * (8 << 20)  # more than the kernel buffers: its end waits for the reader
    (docs / "big.bin").write_bytes(big)
    running = start(timeouts__inactivity=20, documents=str(docs))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(10)
    sock.connect((running.host, running.port))
    client = Client(sock)
    try:
        assert call(client, "GET", "/?ping").json()["Remain"] >= 19.5
        if activity == "a file":
            time.sleep(2)
            assert client.get("/index.html").status == 200
        elif activity == "a long-poll's end":
            assert call(client, "GET", "/?gpio/button&wait=2").json()["timeout"] is True
        else:
            client.send(encode("GET", "/big.bin"))
            time.sleep(2)  # the server cannot finish sending meanwhile
            assert client.read().body == big
        assert call(client, "GET", "/?ping").json()["Remain"] >= 19  # 2 s ago, it was 18
    finally:
        client.close()


def test_stats_give_the_loop_figures(start, connect):
    running = start()
    client = connect(running)
    assert call(connect(running), "GET", "/?ping").status == 200  # accepted by now
    first = call(client, "GET", "/?stats")
    assert first.status == 200
    check_dynamic(first)
    stats = first.json()
    assert isinstance(stats["iterations"], int) and stats["iterations"] > 0
    assert stats["requests"] >= 2
    assert stats["connections"]["open"] >= 2
    assert stats["connections"]["accepted"] >= 2
    call(client, "GET", "/?gpio")
    again = call(client, "GET", "/?stats").json()
    assert again["requests"] == stats["requests"] + 2
    assert again["iterations"] > stats["iterations"]


# -- reading pins ----------------------------------------------------------------------


def test_gpio_lists_every_configured_pin(start, connect):
    running = start()
    reply = call(connect(running), "GET", "/?gpio")
    assert reply.status == 200
    check_dynamic(reply)
    pins = reply.json()["pins"]
    assert set(pins) == {"led", "button", "buzzer"}
    assert pins["led"] == {"gpio": LED, "mode": "out", "value": 0}
    assert pins["button"] == {"gpio": BUTTON, "mode": "in", "value": 1}  # pulled up
    assert pins["buzzer"]["gpio"] == BUZZER and pins["buzzer"]["mode"] == "pwm"


def test_one_pin_by_name_or_by_number(start, connect):
    running = start()
    client = connect(running)
    by_name = call(client, "GET", "/?gpio/led")
    by_number = call(client, "GET", "/?gpio/17")
    by_escape = call(client, "GET", "/?gpio/%6Ced")
    for reply in (by_name, by_number, by_escape):
        assert reply.status == 200
        check_dynamic(reply)
        assert reply.json() == {"gpio": LED, "mode": "out", "value": 0}
    assert call(client, "GET", "/?gpio/4").json()["value"] == 1
    drive(running, BUTTON, 0)
    assert call(client, "GET", "/?gpio/button").json()["value"] == 0


# -- writing pins ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("1", 1),
        ("0", 0),
        ("true", 1),
        ("false", 0),
        ('{"value": 1}', 1),
        ('{"value": 0}', 0),
        ('{"value": true}', 1),
        (" 1\n", 1),
    ],
)
def test_write_bodies(start, connect, method, body, expected):
    running = start()
    client = connect(running)
    reply = call(client, method, "/?gpio/led", body)
    assert reply.status == 200, reply.body
    check_dynamic(reply)
    holds = "until this client's last connection closes"  # led has a safe value
    assert reply.json() == {
        "gpio": LED,
        "mode": "out",
        "value": expected,
        "safe": 0,
        "holds": holds,
    }
    assert values(running, LED) == [0, expected]  # the initial level, then the write
    assert read_pin(running, LED) == expected


def test_write_by_number(start, connect):
    running = start()
    reply = call(connect(running), "PUT", "/?gpio/17", "1")
    assert reply.status == 200
    assert values(running, LED) == [0, 1]


def test_pulse_replies_after_the_pulse(start, connect):
    running = start()
    client = connect(running)
    began = time.monotonic()
    reply = call(client, "POST", "/?gpio/led", {"pulse": 0.2})
    elapsed = time.monotonic() - began
    assert reply.status == 200, reply.body
    check_dynamic(reply)
    assert reply.json()["value"] == 0  # restored
    assert 0.18 <= elapsed <= 1.5
    steps = history(running, LED)
    assert [value for _, value in steps] == [0, 1, 0]
    (_, _), (up, _), (down, _) = steps
    assert 0.18 <= down - up <= 0.6
    # From 1, a pulse goes to 0 and back.
    call(client, "POST", "/?gpio/led", "1")
    reply = call(client, "POST", "/?gpio/led", {"pulse": 0.05})
    assert reply.json()["value"] == 1
    assert values(running, LED)[-3:] == [1, 0, 1]


def test_pulse_interrupted_by_a_write_still_answers(start, connect):
    running = start()
    pulsing = connect(running)
    other = connect(running)  # same client address: it shares the lease
    pulsing.send(encode("POST", "/?gpio/led", {"pulse": 3}))
    assert wait_for(lambda: read_pin(running, LED) == 1)
    began = time.monotonic()
    assert call(other, "POST", "/?gpio/led", "0").status == 200
    pulsing.sock.settimeout(2)
    reply = pulsing.read()  # the pulse was cut short: its request is answered now
    assert time.monotonic() - began < 1.5
    assert reply.status == 200
    check_dynamic(reply)
    assert reply.json()["value"] == 0
    assert reply.json()["interrupted"] is True
    time.sleep(0.2)
    assert values(running, LED) == [0, 1, 0]  # the cancelled pulse does not restore later
    assert call(pulsing, "GET", "/?gpio/led").json()["value"] == 0  # still serving


def test_pulse_during_a_pulse_keeps_the_original_level(start, connect):
    running = start()
    first, second = connect(running), connect(running)
    first.send(encode("POST", "/?gpio/led", {"pulse": 2}))
    assert wait_for(lambda: read_pin(running, LED) == 1)
    reply = call(second, "POST", "/?gpio/led", {"pulse": 0.1})
    assert reply.status == 200
    assert reply.json()["value"] == 0  # back to the level before both pulses
    first.sock.settimeout(2)
    interrupted = first.read()
    assert interrupted.status == 200 and interrupted.json()["interrupted"] is True
    assert read_pin(running, LED) == 0


@pytest.mark.parametrize("seconds", [0, -1, 61, "0.2", True, None])
def test_bad_pulse(start, connect, seconds):
    running = start()
    client = connect(running)
    check_error(call(client, "POST", "/?gpio/led", {"pulse": seconds}), 400, "bad-value")
    assert values(running, LED) == [0]


def test_pwm_on_a_pwm_pin(start, connect):
    running = start()
    client = connect(running)
    reply = call(client, "POST", "/?gpio/buzzer", {"pwm": {"frequency": 100, "duty": 0.5}})
    assert reply.status == 200, reply.body
    check_dynamic(reply)
    assert reply.json()["pwm"] == {"frequency": 100, "duty": 0.5, "running": True, "kind": "soft"}
    time.sleep(0.3)
    edges = history(running, BUZZER)
    rises = [t for t, value in edges if value == 1]
    assert 20 <= len(rises) <= 40  # about 30 periods of 10 ms
    assert call(client, "GET", "/?gpio/buzzer").json()["pwm"]["frequency"] == 100
    # A plain value stops the wave, and the state says so.
    stopped = call(client, "POST", "/?gpio/buzzer", "0")
    assert stopped.status == 200
    assert stopped.json()["pwm"]["running"] is False
    count = len(history(running, BUZZER))
    time.sleep(0.1)
    assert len(history(running, BUZZER)) == count
    assert read_pin(running, BUZZER) == 0


@pytest.mark.parametrize(
    "setting",
    [{"frequency": 0, "duty": 0.5}, {"frequency": 100, "duty": 1.5}, {"hz": 100}, 5],
)
def test_bad_pwm(start, connect, setting):
    running = start()
    check_error(call(connect(running), "POST", "/?gpio/buzzer", {"pwm": setting}), 400, "bad-value")


def test_pwm_on_an_out_pin_and_pulse_on_a_pwm_pin_conflict(start, connect):
    running = start()
    client = connect(running)
    reply = call(client, "POST", "/?gpio/led", {"pwm": {"frequency": 100, "duty": 0.5}})
    check_error(reply, 409, "mode-conflict", "pwm")
    check_error(call(client, "POST", "/?gpio/buzzer", {"pulse": 0.1}), 409, "mode-conflict")
    assert values(running, LED) == [0]
    assert call(client, "GET", "/?gpio/led").status == 200  # still serving


# -- batches ---------------------------------------------------------------------------


def test_batch_applies_in_order_with_one_reply(start, connect):
    running = start()
    count_history(running)
    client = connect(running)
    reply = call(client, "POST", "/?gpio", '{"buzzer": 1, "led": {"value": 1}}')
    assert reply.status == 200, reply.body
    check_dynamic(reply)
    pins = reply.json()["pins"]
    assert pins["led"]["value"] == 1 and pins["buzzer"]["value"] == 1
    (buzzer_at, _) = history(running, BUZZER)[-1]
    (led_at, _) = history(running, LED)[-1]
    assert buzzer_at < led_at  # the order of the object
    reply = call(client, "POST", "/?gpio", '{"led": 0, "buzzer": false}')
    (buzzer_at, _) = history(running, BUZZER)[-1]
    (led_at, _) = history(running, LED)[-1]
    assert led_at < buzzer_at
    assert not client.buf


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ('{"led": 1, "buzzer": 7}', 400, "bad-value"),
        ('{"led": 1, "buzzer": {"pulse": 1}}', 400, "bad-value"),
        ('{"led": 1, "nope": 1}', 404, "unknown-pin"),
        ('{"led": 1, "22": 1}', 403, "not-declared"),
        ('{"led": 1, "button": 1}', 409, "mode-conflict"),
        ('[["led", 1]]', 400, "bad-value"),
        ("{}", 400, "bad-value"),
        ("led=1", 400, "bad-value"),
    ],
)
def test_a_bad_batch_applies_nothing(start, connect, body, status, code):
    running = start()
    client = connect(running)
    buzzer = values(running, BUZZER)
    check_error(call(client, "POST", "/?gpio", body), status, code)
    assert values(running, LED) == [0]
    assert values(running, BUZZER) == buzzer
    assert call(client, "GET", "/?gpio").status == 200


# -- long-polls ------------------------------------------------------------------------


def test_long_poll_is_woken_by_a_change(start, connect):
    running = start()
    client = connect(running)
    client.send(encode("GET", "/?gpio/button&wait=5&value=1"))
    time.sleep(0.2)
    began = time.monotonic()
    drive(running, BUTTON, 0)
    reply = client.read()
    assert time.monotonic() - began < 1.0
    assert reply.status == 200
    check_dynamic(reply)
    assert reply.json() == {"gpio": BUTTON, "mode": "in", "value": 0, "timeout": False}


def test_long_poll_times_out(start, connect):
    running = start()
    client = connect(running)
    began = time.monotonic()
    reply = call(client, "GET", "/?gpio/button&wait=0.5&value=1")
    elapsed = time.monotonic() - began
    assert 0.45 <= elapsed <= 2.0
    assert reply.status == 200
    check_dynamic(reply)
    assert reply.json()["timeout"] is True
    assert reply.json()["value"] == 1


def test_long_poll_answers_at_once_when_the_value_already_differs(start, connect):
    running = start()
    client = connect(running)
    began = time.monotonic()
    reply = call(client, "GET", "/?gpio/button&wait=5&value=0")
    assert time.monotonic() - began < 0.5
    assert reply.json()["timeout"] is False and reply.json()["value"] == 1
    # Without value: waits for any change from the current level.
    client.send(encode("GET", "/?gpio/button&wait=5"))
    time.sleep(0.1)
    drive(running, BUTTON, 0)
    assert client.read().json()["value"] == 0


def test_long_poll_on_an_output_is_woken_by_a_write(start, connect):
    running = start()
    watcher, writer = connect(running), connect(running)
    watcher.send(encode("GET", "/?gpio/led&wait=5&value=0"))
    time.sleep(0.1)
    assert call(writer, "POST", "/?gpio/led", "1").status == 200
    watcher.sock.settimeout(1)
    reply = watcher.read()
    assert reply.json()["value"] == 1 and reply.json()["timeout"] is False


@pytest.mark.parametrize(
    "params", ["wait=x", "wait=-1", "wait=nan", "wait=1&value=2", "wait=1&value=one"]
)
def test_bad_long_poll(start, connect, params):
    running = start()
    check_error(call(connect(running), "GET", f"/?gpio/button&{params}"), 400, "bad-value")


def test_a_long_poll_holds_back_only_its_own_connection(start, connect):
    running = start()
    waiting, other = connect(running), connect(running)
    # A long-poll and, pipelined behind it, a ping: one write.
    waiting.send(encode("GET", "/?gpio/button&wait=5&value=1") + encode("GET", "/?ping"))
    time.sleep(0.1)
    for _ in range(5):  # meanwhile another connection is served at once
        began = time.monotonic()
        assert call(other, "GET", "/?gpio").status == 200
        assert call(other, "POST", "/?gpio/led", "1").status == 200
        assert time.monotonic() - began < 0.5
    waiting.sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        waiting.read()  # nothing yet: the ping waits behind the long-poll
    waiting.sock.settimeout(5)
    drive(running, BUTTON, 0)
    first = waiting.read()
    second = waiting.read()
    assert first.json()["timeout"] is False and first.json()["gpio"] == BUTTON
    assert "Remain" in second.json()


def test_closing_a_long_poll_stops_its_watch(start, connect):
    running = start()
    client = connect(running)
    client.send(encode("GET", "/?gpio/button&wait=5&value=1"))
    assert wait_for(lambda: running.call(lambda: bool(running.server.manager.watches.watched)))
    client.close()
    assert wait_for(lambda: running.call(lambda: not running.server.manager.watches.watched))
    assert running.call(lambda: running.server.manager.watches.sampler is None)


def test_a_write_woken_long_poll_runs_its_next_request_after_the_batch(start, connect):
    """A long-poll woken by a write must not run the requests behind it in the middle of
    the waking request: every write of a batch is applied before the next request."""
    running = start()
    count_history(running)
    watcher, writer = connect(running), connect(running)
    watcher.send(encode("GET", "/?gpio/led&wait=5&value=0") + encode("POST", "/?gpio/led", "0"))
    time.sleep(0.1)
    reply = call(writer, "POST", "/?gpio", '{"led": 1, "buzzer": 1}')
    assert reply.status == 200
    assert reply.json()["pins"]["led"]["value"] == 1  # nothing ran inside the batch
    watcher.sock.settimeout(2)
    assert watcher.read().json()["value"] == 1
    assert watcher.read().json()["value"] == 0
    (buzzer_at, _) = history(running, BUZZER)[-1]
    (led_at, last) = history(running, LED)[-1]
    assert last == 0 and buzzer_at < led_at


# -- dynamic reply headers and sessions ------------------------------------------------


def test_every_dynamic_reply_has_the_protocol_headers(start, connect, tmp_path):
    running = start(app=make_app(tmp_path))
    client = connect(running)
    session = int(call(client, "GET", "/?").headers["httap-session"])
    for method, target, body in [
        ("GET", "/?", b""),
        ("GET", "/?ping", b""),
        ("GET", "/?gpio", b""),
        ("GET", "/?gpio/led", b""),
        ("POST", "/?gpio/led", b"1"),
        ("PUT", "/?gpio/led", b"0"),
        ("POST", "/?gpio", b'{"led": 1}'),
        ("GET", "/?gpio/led&wait=0", b""),
        ("GET", "/?stats", b""),
        ("POST", "/?car/forward", b""),
        ("GET", "/?nothing", b""),
        ("DELETE", "/?gpio/led", b""),
        ("POST", "/?gpio/led", b"7"),
        ("GET", "/?gpio/nope", b""),
        ("POST", "/?gpio/button", b"1"),
        ("GET", "/?explode", b""),
    ]:
        reply = call(client, method, target, body)
        check_dynamic(reply, session)
        assert not client.buf


def test_session_is_stable_on_a_connection_and_never_repeats(start, connect):
    running = start()
    seen = set()
    for _ in range(20):
        client = connect(running)
        ids = {
            call(client, "GET", target).headers["httap-session"]
            for target in ("/?", "/?ping", "/?gpio", "/?nope")
        }
        assert len(ids) == 1
        (session,) = ids
        assert session not in seen
        seen.add(session)
        client.close()


def test_pipelined_writes_reach_the_pin_in_order(start, connect):
    running = start()
    client = connect(running)
    levels = [i % 2 for i in range(1, 101)]  # 1, 0, 1, 0, ...
    client.send(b"".join(encode("POST", "/?gpio/led", str(level)) for level in levels))
    replies = [client.read() for _ in levels]
    assert [reply.status for reply in replies] == [200] * 100
    assert [reply.json()["value"] for reply in replies] == levels
    assert values(running, LED)[1:] == levels
    assert not client.buf


# -- the lease -------------------------------------------------------------------------


def test_client_lease(start, connect):
    running = start(session__exclusive="client")
    holder = connect(running, "127.0.0.1")
    other = connect(running, "127.0.0.2")
    assert call(holder, "POST", "/?gpio/led", "1").status == 200
    time.sleep(0.2)
    busy = call(other, "POST", "/?gpio/led", "0")
    value = check_error(busy, 503, "busy", "127.0.0.1")
    assert int(busy.headers["retry-after"]) >= 1
    assert "127.0.0.1" in value["holder"]
    assert 0.2 <= value["held_for"] < 5
    check_error(call(other, "POST", "/?gpio", '{"led": 0}'), 503, "busy")
    assert values(running, LED) == [0, 1]
    # Reads stay open to all; the refused connection still serves.
    assert call(other, "GET", "/?gpio/led").json()["value"] == 1
    assert call(other, "GET", "/?gpio/button&wait=0").status == 200
    # Another connection of the holding client may write.
    second = connect(running, "127.0.0.1")
    assert call(second, "POST", "/?gpio/led", "0").status == 200
    holder.close()
    time.sleep(0.2)
    check_error(call(other, "POST", "/?gpio/led", "1"), 503, "busy")  # `second` still holds
    second.close()
    assert wait_for(lambda: call(other, "POST", "/?gpio/led", "1").status == 200)
    assert read_pin(running, LED) == 1
    # Now 127.0.0.2 holds it.
    check_error(call(connect(running, "127.0.0.1"), "PUT", "/?gpio/led", "0"), 503, "busy")


def test_retry_after_counts_down_the_holders_idle_time(start, connect):
    running = start(timeouts__inactivity=10)
    holder, other = connect(running, "127.0.0.1"), connect(running, "127.0.0.2")
    call(holder, "POST", "/?gpio/led", "1")
    assert int(call(other, "POST", "/?gpio/led", "0").headers["retry-after"]) == 10
    time.sleep(1.2)
    assert int(call(other, "POST", "/?gpio/led", "0").headers["retry-after"]) <= 9


def test_the_holders_files_and_replies_count_as_its_activity(start, connect):
    running = start(timeouts__inactivity=10)
    holder, other = connect(running, "127.0.0.1"), connect(running, "127.0.0.2")
    call(holder, "POST", "/?gpio/led", "1")
    assert call(holder, "GET", "/?gpio/button&wait=1.5").status == 200  # ends 1.5 s later
    assert int(call(other, "POST", "/?gpio/led", "0").headers["retry-after"]) == 10
    time.sleep(1.2)
    assert holder.get("/").status == 200  # the app's page: a file
    assert int(call(other, "POST", "/?gpio/led", "0").headers["retry-after"]) == 10


def test_connection_lease(start, connect):
    running = start(session__exclusive="connection")
    first, second = connect(running), connect(running)
    assert call(first, "POST", "/?gpio/led", "1").status == 200
    check_error(call(second, "POST", "/?gpio/led", "0"), 503, "busy")
    assert call(second, "GET", "/?gpio/led").json()["value"] == 1
    first.close()
    assert wait_for(lambda: call(second, "POST", "/?gpio/led", "1").status == 200)


def test_no_lease(start, connect):
    running = start(session__exclusive="off")
    first = connect(running, "127.0.0.1")
    second = connect(running, "127.0.0.2")
    assert call(first, "POST", "/?gpio/led", "1").status == 200
    assert call(second, "POST", "/?gpio/led", "0").status == 200
    assert call(first, "POST", "/?gpio", '{"led": 1}').status == 200
    assert values(running, LED) == [0, 1, 0, 1]


# -- safe values -----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["reset", "close"])
def test_safe_values_when_the_holder_goes_away(start, connect, how):
    running = start()
    holder = connect(running)
    assert call(holder, "POST", "/?gpio/led", "1").status == 200
    assert call(holder, "POST", "/?gpio/buzzer", "1").status == 200
    if how == "reset":
        holder.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
    holder.close()
    assert wait_for(lambda: read_pin(running, LED) == 0, timeout=3)
    assert values(running, LED) == [0, 1, 0]
    assert read_pin(running, BUZZER) == 1  # no safe value: left as it was


def test_safe_values_after_inactivity(start, connect):
    running = start(timeouts__inactivity=3)
    holder = connect(running)
    assert call(holder, "POST", "/?gpio/led", "1").status == 200
    for _ in range(2):  # pings keep the session, and with it the lease, alive past 3 s
        time.sleep(1.6)
        assert call(holder, "GET", "/?ping").json()["Remain"] >= 1.2
    last = time.monotonic()
    assert read_pin(running, LED) == 1
    assert wait_for(lambda: read_pin(running, LED) == 0, timeout=6, interval=0.05)
    assert 2.5 <= time.monotonic() - last <= 5
    assert holder.closed(timeout=1)  # silently: no reply to no request
    assert holder.buf == b""


def test_safe_values_when_the_server_stops(start, connect):
    running = start()
    client = connect(running)
    assert call(client, "POST", "/?gpio/led", "1").status == 200
    client.close()
    backend = running.server.gpio
    assert wait_for(lambda: read_pin(running, LED) == 0, timeout=3)
    other = connect(running)
    assert call(other, "POST", "/?gpio/led", "1").status == 200
    running.stop()  # with the client still connected
    assert backend.read(LED) == 0  # the loop has ended: the sim is ours to read


def test_no_safe_values_while_the_holder_keeps_a_connection(start, connect):
    running = start()
    holder, reader = connect(running), connect(running)
    call(holder, "POST", "/?gpio/led", "1")
    call(reader, "GET", "/?gpio")  # another connection of the same client
    holder.close()
    time.sleep(0.3)
    assert read_pin(running, LED) == 1
    reader.close()
    assert wait_for(lambda: read_pin(running, LED) == 0, timeout=3)


def test_safe_values_end_a_pulse_of_the_departed_holder(start, connect):
    running = start()
    holder = connect(running)
    holder.send(encode("POST", "/?gpio/led", {"pulse": 1}))
    assert wait_for(lambda: read_pin(running, LED) == 1)
    holder.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
    holder.close()
    assert wait_for(lambda: read_pin(running, LED) == 0, timeout=3)
    time.sleep(1.1)
    assert values(running, LED) == [0, 1, 0]  # the pulse's end does not write again


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["7", '{"value": 2}', '"abc"', "abc", "", "1.0", "null"])
def test_400_bad_value(start, connect, body):
    running = start()
    client = connect(running)
    check_error(call(client, "POST", "/?gpio/led", body), 400, "bad-value", "0, 1, true")
    assert values(running, LED) == [0]
    assert call(client, "POST", "/?gpio/led", "1").status == 200  # the same connection


def test_403_undeclared_pin_says_how_to_declare_it(start, connect):
    running = start()
    client = connect(running)
    for method, body in (("GET", ""), ("POST", "1")):
        reply = call(client, method, "/?gpio/22", body)
        check_error(reply, 403, "not-declared", "'22'", "declare", "gpio:", "pins")
    assert call(client, "GET", "/?gpio/led").status == 200


def test_404_unknown_resource(start, connect):
    running = start()
    client = connect(running)
    check_error(call(client, "GET", "/?nothing/here"), 404, "not-found", "/?nothing/here", "GET /?")
    check_error(call(client, "GET", "/?gpiox"), 404, "not-found")
    assert call(client, "GET", "/?").status == 200


@pytest.mark.parametrize(
    ("method", "target", "allow"),
    [
        ("DELETE", "/?gpio/led", "GET, HEAD, POST, PUT"),
        ("PATCH", "/?gpio/led", "GET, HEAD, POST, PUT"),
        ("PUT", "/?gpio", "GET, HEAD, POST"),
        ("POST", "/?", "GET, HEAD"),
        ("POST", "/?ping", "GET, HEAD"),
        ("POST", "/?stats", "GET, HEAD"),
    ],
)
def test_405_with_allow(start, connect, method, target, allow):
    running = start()
    client = connect(running)
    reply = call(client, method, target, "1" if method != "DELETE" else "")
    check_error(reply, 405, "method-not-allowed", method, allow)
    assert reply.headers["allow"] == allow
    assert values(running, LED) == [0]
    assert call(client, "GET", "/?ping").status == 200


def test_409_write_to_an_input(start, connect):
    running = start()
    client = connect(running)
    for method, target in (("POST", "/?gpio/button"), ("PUT", "/?gpio/4")):
        check_error(call(client, method, target, "0"), 409, "mode-conflict", "input", '"out"')
    assert read_pin(running, BUTTON) == 1
    assert call(client, "GET", "/?gpio/button").status == 200


def test_413_oversized_body_answers_then_closes(start, connect):
    running = start(limits__body=64)
    client = connect(running)
    assert call(client, "POST", "/?gpio/led", "1").status == 200
    reply = call(client, "POST", "/?gpio/led", '{"value": 1}' + " " * 100)
    assert reply.status == 413
    assert reply.headers.get("connection") == "close"
    assert client.closed(timeout=3)  # a protocol error: the connection ends
    other = connect(running)
    assert call(other, "GET", "/?gpio/led").status == 200


def test_500_action_failure_keeps_serving(start, connect, tmp_path):
    running = start(app=make_app(tmp_path))
    client = connect(running)
    check_error(call(client, "GET", "/?explode"), 500, "handler-failed", "server log")
    assert call(client, "GET", "/?ping").status == 200
    assert call(connect(running), "GET", "/?gpio").status == 200
    check_error(call(client, "GET", "/?explode"), 500, "handler-failed")


# -- CORS ------------------------------------------------------------------------------


def test_cors_allowed_origin(start, connect):
    running = start(cors__origins=["http://app.example"])
    client = connect(running)
    origin = "Origin: http://app.example\r\n"
    for method, target, body in (
        ("GET", "/?", ""),
        ("POST", "/?gpio/led", "1"),
        ("GET", "/?nothing", ""),  # errors too, or the page cannot read them
        ("GET", "/?gpio/button&wait=0.1&value=1", ""),  # a long-poll's late reply too
        ("POST", "/?gpio/led", '{"pulse": 0.05}'),  # and a pulse's
    ):
        reply = call(client, method, target, body, origin)
        assert reply.headers["access-control-allow-origin"] == "http://app.example"
        exposed = reply.headers["access-control-expose-headers"]
        assert "HTTaP-Session" in [name.strip() for name in exposed.split(",")]
        assert "Origin" in reply.headers.get("vary", "")
    preflight = call(
        client,
        "OPTIONS",
        "/?gpio/led",
        headers=origin
        + "Access-Control-Request-Method: POST\r\n"
        + "Access-Control-Request-Headers: content-type\r\n",
    )
    assert preflight.status == 204
    assert preflight.headers["access-control-allow-origin"] == "http://app.example"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "content-type" in preflight.headers["access-control-allow-headers"].lower()
    assert call(client, "GET", "/?ping").status == 200


def test_options_without_origin_and_any_origin(start, connect):
    running = start(cors__origins=["*"])
    client = connect(running)
    plain = call(client, "OPTIONS", "/?gpio/led")
    assert plain.status == 204
    assert "POST" in plain.headers["allow"]
    assert "access-control-allow-origin" not in plain.headers
    reply = call(client, "GET", "/?", headers="Origin: http://anywhere.example:8080\r\n")
    assert reply.headers["access-control-allow-origin"] == "http://anywhere.example:8080"


def test_cors_unlisted_origin(start, connect):
    running = start(cors__origins=["http://app.example"])
    client = connect(running)
    origin = "Origin: http://evil.example\r\n"
    reply = call(client, "GET", "/?", headers=origin)
    assert reply.status == 200
    assert "access-control-allow-origin" not in reply.headers
    preflight = call(
        client, "OPTIONS", "/?gpio/led", headers=origin + "Access-Control-Request-Method: POST\r\n"
    )
    check_error(preflight, 403, "origin-not-allowed", "cors.origins")
    assert "access-control-allow-origin" not in preflight.headers
    # Without cors.origins, no origin is allowed.
    plain = start()
    reply = call(connect(plain), "GET", "/?", headers="Origin: http://app.example\r\n")
    assert "access-control-allow-origin" not in reply.headers


@pytest.mark.parametrize("body", ["1", '{"value": 1}'])
def test_a_page_from_elsewhere_cannot_drive_a_pin(start, connect, body):
    """A "simple" cross-site POST (text/plain, no preflight) still carries Origin: a page
    from another site must not drive the device, and the connection stays usable."""
    running = start(cors__origins=["http://app.example"])
    client = connect(running)
    reply = call(client, "POST", "/?gpio/led", body, headers="Origin: http://evil.example\r\n")
    check_error(reply, 403, "origin-not-allowed", "evil.example", "cors.origins")
    batch = call(client, "POST", "/?gpio", '{"led": 1}', headers="Origin: null\r\n")
    check_error(batch, 403, "origin-not-allowed")
    assert values(running, LED) == [0]
    assert call(client, "GET", "/?gpio/led").json()["value"] == 0


@pytest.mark.parametrize(
    "origin", ["", "Origin: http://app.example\r\n", "Origin: http://test\r\n"]
)
def test_writes_from_no_browser_an_allowed_origin_or_this_server_pass(start, connect, origin):
    running = start(cors__origins=["http://app.example"])
    reply = call(connect(running), "POST", "/?gpio/led", "1", headers=origin)  # Host: test
    assert reply.status == 200, reply.body
    assert read_pin(running, LED) == 1


# -- GET never changes hardware state --------------------------------------------------


@pytest.mark.parametrize(
    ("target", "body"),
    [
        ("/?gpio/led", "1"),
        ("/?gpio/led", '{"value": 1}'),
        ("/?gpio/led&value=1", ""),
        ("/?gpio/led&set=1&on=true", ""),
        ("/?gpio/led&pulse=0.2", ""),
        ("/?gpio&led=1", ""),
        ("/?gpio", '{"led": 1}'),
    ],
)
def test_get_never_writes(start, connect, target, body):
    running = start()
    client = connect(running)
    for method in ("GET", "HEAD"):
        reply = call(client, method, target, body)
        assert reply.status == 200
    assert values(running, LED) == [0]
    # And a GET does not take the lease.
    assert call(connect(running, "127.0.0.2"), "POST", "/?gpio/led", "1").status == 200


# -- numbers from a request are range-checked where they enter (issue 11, item 1) --------

HUGE = "1" + "0" * 4000  # a whole number past every range, short of Python's 4,300 digits


def still_serves(running, connect) -> None:
    """Another client is served: the bad input hurt neither the loop nor anyone else."""
    assert call(connect(running), "GET", "/?gpio/button").status == 200


def test_a_pwm_frequency_below_the_range_is_refused_and_the_loop_lives(start, connect):
    """1e-11 Hz was answered 200; its next edge, a century ahead, then overflowed the
    loop's select() timeout and the process exited."""
    running = start()
    client = connect(running)
    reply = call(client, "POST", "/?gpio/buzzer", '{"pwm": {"frequency": 1e-11, "duty": 0.5}}')
    check_error(reply, 400, "bad-value", "pwm frequency", "from 0.01 to 10000")
    assert call(client, "GET", "/?gpio/buzzer").json()["pwm"]["running"] is False
    time.sleep(0.2)
    assert running.thread.is_alive()
    still_serves(running, connect)


@pytest.mark.parametrize("frequency", [1e-11, 0.005, 10_000.5, 1e6, 10**30])
def test_pwm_frequency_has_one_range_for_web_json5_and_requests(
    start, connect, tmp_path, frequency
):
    """web.json5 and a request refuse the same frequencies, in the same words."""
    from httap import config

    pins = {"buzzer": {"gpio": BUZZER, "mode": "pwm", "frequency": frequency}}
    with pytest.raises(config.ConfigError) as refused:
        config.load(None, env={}, overrides={"gpio.pins": pins})
    assert str(config.PWM_FREQUENCY) in str(refused.value)
    running = start()
    body = json.dumps({"pwm": {"frequency": frequency, "duty": 0.5}})
    check_error(
        call(connect(running), "POST", "/?gpio/buzzer", body),
        400,
        "bad-value",
        str(config.PWM_FREQUENCY),
    )
    for edge in (config.PWM_FREQUENCY.low, config.PWM_FREQUENCY.high):  # both take the ends
        pins["buzzer"]["frequency"] = edge
        config.load(None, env={}, overrides={"gpio.pins": pins})
        body = json.dumps({"pwm": {"frequency": edge, "duty": 0.5}})
        assert call(connect(running), "POST", "/?gpio/buzzer", body).status == 200


@pytest.mark.parametrize(
    ("target", "body", "words"),
    [
        ("/?gpio/led", f'{{"pulse": {HUGE}}}', "a pulse is a number of seconds more than 0"),
        ("/?gpio/led", '{"pulse": 1e400}', "at most 60"),
        ("/?gpio/led", '{"pulse": -0.5}', "at most 60"),
        ("/?gpio/led", '{"pulse": 60.001}', "at most 60"),
        ("/?gpio/led", '{"pulse": false}', "at most 60"),
        ("/?gpio/buzzer", f'{{"pwm": {{"frequency": {HUGE}}}}}', "from 0.01 to 10000"),
        ("/?gpio/buzzer", '{"pwm": {"frequency": -1e400}}', "from 0.01 to 10000"),
        ("/?gpio/buzzer", '{"pwm": {"frequency": "440"}}', "from 0.01 to 10000"),
        ("/?gpio/buzzer", '{"pwm": {"frequency": true}}', "from 0.01 to 10000"),
        ("/?gpio/buzzer", f'{{"pwm": {{"duty": {HUGE}}}}}', "pwm duty is a duty cycle from 0 to 1"),
        ("/?gpio/buzzer", '{"pwm": {"duty": -1e-9}}', "from 0 to 1"),
        ("/?gpio/buzzer", '{"pwm": {"duty": [0.5]}}', "from 0 to 1"),
        ("/?gpio/led", f'{{"value": {HUGE}}}', "0, 1, true or false"),
    ],
)
def test_numbers_in_bodies_outside_their_range(start, connect, target, body, words):
    running = start()
    client = connect(running)
    check_error(call(client, "POST", target, body), 400, "bad-value", words)
    assert values(running, LED) == [0]
    assert call(client, "GET", target).json()["value"] == 0  # the same connection goes on
    still_serves(running, connect)


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ("wait=1_0", "wait is a number of seconds from 0 to 3600"),
        ("wait=inf", "from 0 to 3600"),
        ("wait=1e400", "from 0 to 3600"),
        ("wait=" + "9" * 5000, "from 0 to 3600"),
        ("wait=-0.5", "from 0 to 3600"),
        ("wait=3600.5", "from 0 to 3600"),
        ("wait=0x10", "from 0 to 3600"),
        ("wait=", "from 0 to 3600"),
        ("wait=%D9%A1", "from 0 to 3600"),  # an Arabic-Indic one: float() would take it
        ("wait=1&value=%2B1", "value is 0 or 1"),  # "+1": int() would take it
        ("wait=1&value=%201", "value is 0 or 1"),
        ("wait=1&value=%D9%A1", "value is 0 or 1"),
        ("wait=1&value=" + "1" * 5000, "value is 0 or 1"),
    ],
)
def test_long_poll_numbers_outside_their_range(start, connect, params, words):
    running = start(limits__uri=16384)
    client = connect(running)
    began = time.monotonic()
    check_error(call(client, "GET", f"/?gpio/button&{params}"), 400, "bad-value", words)
    assert time.monotonic() - began < 0.9  # refused at once, not waited out
    still_serves(running, connect)


# -- every parser of untrusted bytes answers 400 (issue 11, item 7) ----------------------

DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize(
    ("target", "body", "code"),
    [
        ("/?gpio/led", DEEP, "bad-value"),
        ("/?gpio", DEEP, "bad-value"),
        ("/?gpio/led", '{"value": ' + DEEP + "}", "bad-value"),
        ("/?gpio", '{"led": ' + DEEP + "}", "bad-value"),
        ("/?gpio/buzzer", '{"pwm": ' + DEEP + "}", "bad-value"),
        ("/?gpio/led", "{" * 5000, "bad-value"),
        ("/?loop", DEEP, "bad-json"),
    ],
)
def test_deeply_nested_json_is_a_400(start, connect, target, body, code):
    running = start()
    client = connect(running)
    reply = check_error(call(client, "POST", target, body), 400, code)
    assert "Traceback" not in reply["message"]
    assert values(running, LED) == [0]
    assert call(client, "GET", "/?gpio/led").status == 200
    still_serves(running, connect)


@pytest.mark.parametrize(
    "body",
    [
        "NaN",
        '{"pulse": NaN}',
        '{"pulse": Infinity}',
        '{"pwm": {"frequency": -Infinity}}',
        "1" * 5000,
        b"\xff\xfe1",
        b"\xef\xbb\xbf1",  # a BOM: RFC 8259 section 8.1 says a sender must not add one
        "1 2",
        '{"value": 1',
        "\x00",
        " " * 100_000,
    ],
)
def test_bodies_that_are_not_json_are_a_400(start, connect, body):
    running = start()
    client = connect(running)
    for target in ("/?gpio/led", "/?gpio", "/?gpio/buzzer"):
        check_error(call(client, "POST", target, body), 400, "bad-value")
    check_error(call(client, "POST", "/?loop", body), 400, "bad-json", "not valid JSON")
    assert values(running, LED) == [0]
    still_serves(running, connect)


def test_a_parameter_given_twice_is_a_400(start, connect):
    running = start()
    client = connect(running)
    began = time.monotonic()
    reply = call(client, "GET", "/?gpio/button&wait=0&wait=5&value=1")
    check_error(reply, 400, "bad-param", '"wait"', "twice")
    assert time.monotonic() - began < 0.9
    assert call(client, "GET", "/?gpio/button&wait=0").status == 200
    still_serves(running, connect)


@pytest.mark.parametrize(
    ("target", "status", "code"),
    [
        ("/?gpio/%FF", 400, "bad-path"),
        ("/?gpio/%C3%28", 400, "bad-path"),
        ("/?gpio/%", 404, "unknown-pin"),
        ("/?gpio/%%41", 404, "unknown-pin"),
        ("/?gpio/led%00", 404, "unknown-pin"),
        ("/?gpio/button&wait=%FF", 400, "bad-value"),
        ("/?gpio/button&%FF=1&wait=0", 200, None),  # bytes that are not UTF-8 become U+FFFD
        ("/?gpio/button&wait=0&&&=&", 200, None),
    ],
)
def test_odd_percent_encoding_in_dynamic_targets(start, connect, target, status, code):
    running = start()
    client = connect(running)
    reply = call(client, "GET", target)
    if code is None:
        assert reply.status == status, reply.body
    else:
        check_error(reply, status, code)
    still_serves(running, connect)


# -- a name no pin has is 404, a GPIO not declared 403 (issue 11, item 9) ---------------


def test_a_name_no_pin_has_is_404_listing_the_declared_pins(start, connect):
    running = start(limits__uri=8192)
    client = connect(running)
    for method, target, body in (
        ("GET", "/?gpio/nope", ""),
        ("HEAD", "/?gpio/nope", ""),
        ("POST", "/?gpio/nope", "1"),
        ("PUT", "/?gpio/nope", '{"pulse": 0.1}'),
        ("GET", "/?gpio/nope&wait=5&value=0", ""),  # a long-poll
        ("POST", "/?gpio", '{"led": 1, "nope": 1}'),  # a batch
        ("GET", "/?gpio/99", ""),  # no GPIO has that number
        ("GET", "/?gpio/" + "9" * 5000, ""),
        ("GET", "/?gpio/17.0", ""),
    ):
        reply = call(client, method, target, body)
        assert reply.status == 404, (target, reply.body)
        if method != "HEAD":
            check_error(reply, 404, "unknown-pin", "button, buzzer, led", "gpio.pins")
    assert values(running, LED) == [0]
    still_serves(running, connect)


def test_without_declared_pins_the_404_says_so(make_server, connect):
    running = make_server(gpio__backend="sim")
    check_error(call(connect(running), "GET", "/?gpio/led"), 404, "unknown-pin", "are: none")


def test_a_gpio_that_exists_but_is_not_declared_is_403(start, connect):
    running = start()
    client = connect(running)
    for target in ("/?gpio/0", "/?gpio/53", "/?gpio/022", "/?gpio/22&wait=5"):
        check_error(call(client, "GET", target), 403, "not-declared", "declare it in web.json5")
    assert call(client, "GET", "/?gpio/017").json()["gpio"] == LED  # a number, zeros or not


# -- a deferred reply is answered even when the board fails (issue 11, item 10) ----------


def unplug(running, number: int) -> None:
    """The board loses a pin: from now on every read or write of it raises GpioError."""
    running.call(lambda: running.server.gpio.pins.pop(number))


def test_a_pulse_cut_short_while_the_board_fails_answers_500(start, connect):
    running = start()
    pulsing = connect(running)
    pulsing.send(encode("POST", "/?gpio/led", {"pulse": 3}))
    assert wait_for(lambda: read_pin(running, LED) == 1)

    def write_then_fail() -> None:
        running.server.write("led", 0)  # ends the pulse, as a request would
        running.server.gpio.pins.pop(LED)  # and the board fails at that moment

    running.call(write_then_fail)
    pulsing.sock.settimeout(2)
    check_error(pulsing.read(), 500, "gpio-error", "GPIO 17")
    assert call(pulsing, "GET", "/?gpio/button").status == 200
    still_serves(running, connect)


def test_a_pulse_whose_board_fails_at_its_end_answers_500(start, connect):
    running = start()
    client = connect(running)
    client.send(encode("POST", "/?gpio/led", {"pulse": 0.3}))
    assert wait_for(lambda: read_pin(running, LED) == 1)
    unplug(running, LED)
    client.sock.settimeout(3)
    check_error(client.read(), 500, "gpio-error", "GPIO 17")
    assert call(client, "GET", "/?gpio/button").status == 200


def test_a_long_poll_whose_board_fails_answers_500(start, connect):
    running = start()
    client = connect(running)
    client.send(encode("GET", "/?gpio/button&wait=5&value=1"))
    time.sleep(0.1)
    unplug(running, BUTTON)
    client.sock.settimeout(2)
    check_error(client.read(), 500, "gpio-error", "GPIO 4")
    assert call(client, "GET", "/?gpio/led").status == 200


def test_a_pwm_wave_whose_board_fails_is_logged_and_stops(start, connect, caplog):
    running = start()
    client = connect(running)
    assert (
        call(client, "POST", "/?gpio/buzzer", {"pwm": {"frequency": 50, "duty": 0.5}}).status == 200
    )
    with caplog.at_level(logging.ERROR):
        unplug(running, BUZZER)
        assert wait_for(
            lambda: any("GPIO 18" in r.getMessage() + str(r.exc_info) for r in caplog.records)
        )
    check_error(call(client, "GET", "/?gpio/buzzer"), 500, "gpio-error", "GPIO 18")
    assert running.call(lambda: running.server.pins.by_number[BUZZER].wave.running) is False
    assert call(client, "GET", "/?gpio/led").status == 200


def test_safe_values_on_a_failing_board_are_logged(start, connect, caplog):
    running = start()
    holder = connect(running)
    assert call(holder, "POST", "/?gpio/led", "1").status == 200
    unplug(running, LED)
    with caplog.at_level(logging.ERROR, logger="httap.manager"):
        holder.close()
        assert wait_for(lambda: "safe value" in caplog.text)
    assert "cannot set led to its safe value 0" in caplog.text
    other = connect(running, "127.0.0.2")
    assert call(other, "POST", "/?gpio/buzzer", "1").status == 200  # the lease was let go


# -- every busy message tells the truth for its resource (issue 11, item 14) -------------


def test_each_busy_message_names_what_was_refused(start, connect, tmp_path):
    running = start(app=make_app(tmp_path))
    holder, other = connect(running, "127.0.0.1"), connect(running, "127.0.0.2")
    assert call(holder, "POST", "/?gpio/led", "1").status == 200
    for method, target, body, words in (
        ("POST", "/?gpio/led", "0", ["writing pin led is refused; reading pins stays open"]),
        ("PUT", "/?gpio/buzzer", '{"pwm": {"duty": 0.5}}', ["writing pin buzzer is refused"]),
        ("POST", "/?gpio", '{"led": 0, "buzzer": 1}', ["writing pins led, buzzer is refused"]),
        ("POST", "/?loop", '{"mode": "spin"}', ["setting the loop's mode", "GET /?loop"]),
        ("POST", "/?car/forward", "", ["POST /?car/forward", "refused"]),
    ):
        value = check_error(call(other, method, target, body), 503, "busy", "127.0.0.1", *words)
        assert "reads stay open" not in value["message"]
        assert value["held_for"] >= 0
    assert values(running, LED) == [0, 1]
    assert call(other, "GET", "/?loop").json()["mode"] == "sleep"
