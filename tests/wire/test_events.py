"""Push: `GET /?events` (docs/protocol.md, "Push: GET /?events (server-sent events)").

Over real sockets to a real server on the simulated board, each line of the contract:
the stream's head and its `state`; gpio events from every source (writes, pulses, safe
values on link loss, the app, the sampler, a drive, PWM settings) with the board's
timestamps; serial events from a pseudo-terminal; app events; ids, order across pins
and connections; replay after Last-Event-ID and history overflow; filters; the limits
(subscribers, a subscriber that does not read); keep-alives and a stream kept past
timeouts.inactivity; HTTP/1.0; the end of every stream when the server stops; and curl.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import ssl
import subprocess
import time
import tty

import pytest

from tests.helpers import wait_for
from tests.helpers.client import Client
from tests.helpers.dynamic import call, check_error, encode
from tests.helpers.processes import needs_curl
from tests.helpers.readme import readme_command
from tests.helpers.servers import BUTTON, BUZZER, LED, PINS, history, values
from tests.helpers.sse import Ended, Sse

APP = """
def setup(server):
    @server.action("score", methods=("POST",))
    def score(request):
        server.write("led", 1)
        server.publish("score", {"points": 3})
        return {"ok": True}
"""


@pytest.fixture
def start(make_server):
    def start_gpio(**overrides):
        return make_server(**{"gpio__backend": "sim", "gpio__pins": PINS, **overrides})

    return start_gpio


@pytest.fixture
def subscribe():
    """Open event streams (from a source address if given); all closed at the end."""
    opened: list[Sse] = []

    def open_stream(running, target="/?events", headers="", source=None, version="HTTP/1.1"):
        sock = running.connect(source=source)
        opened.append(Sse(sock, target, headers, version))
        return opened[-1]

    yield open_stream
    for stream in opened:
        stream.close()


def gpio(event) -> tuple:
    """What a gpio event says of its pin, without its time."""
    data = event.data
    return (event.event, data["pin"], data["gpio"], data.get("value"), data["cause"])


def subscribers(running) -> int:
    return running.call(lambda: len(running.server.manager.events.subscribers))


def write(client: Client, name: str, body) -> None:
    reply = call(client, "POST", f"/?gpio/{name}", body)
    assert reply.status == 200, reply.body


# -- the stream ------------------------------------------------------------------------------


def test_a_stream_is_an_endless_event_stream_that_starts_with_the_state(start, connect, subscribe):
    running = start()
    client = connect(running)
    pins = call(client, "GET", "/?gpio").json()
    stream = subscribe(running)
    assert stream.status == 200
    headers = stream.headers
    assert headers["content-type"] == "text/event-stream"
    assert "no-cache" in headers["cache-control"].split(", ")
    assert headers["httap-session"].isdigit()
    assert headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers and "connection" not in headers
    state = stream.next()
    assert (state.event, state.data) == ("state", pins)
    assert stream.quiet(0.2) == []  # then nothing until something changes


def test_every_change_is_one_gpio_event_with_the_next_id(start, connect, subscribe):
    running = start()
    client = connect(running)
    stream = subscribe(running)
    state = stream.next()
    before = time.time()
    write(client, "led", "1")
    after = time.time()
    changed = stream.next()
    assert gpio(changed) == ("gpio", "led", LED, 1, "write")
    assert set(changed.data) == {"pin", "gpio", "value", "time", "cause"}
    assert changed.id == state.id + 1
    assert before <= changed.data["time"] <= after  # seconds since the epoch
    write(client, "led", "1")  # a repeat is no change of level
    write(client, "led", '{"value": 0}')
    assert [(gpio(event), event.id) for event in stream.quiet(0.3)] == [
        (("gpio", "led", LED, 0, "write"), changed.id + 1)
    ]


def test_a_pulse_is_two_events_timed_by_the_board(start, connect, subscribe):
    running = start()
    client = connect(running)
    stream = subscribe(running)
    stream.next()
    write(client, "led", '{"pulse": 0.1}')
    rise, fall = stream.take(2)
    assert [gpio(rise), gpio(fall)] == [
        ("gpio", "led", LED, 1, "pulse"),
        ("gpio", "led", LED, 0, "pulse"),
    ]
    (up, _), (down, _) = history(running, LED)[-2:]
    assert fall.data["time"] - rise.data["time"] == pytest.approx(down - up, abs=1e-6)


def test_an_input_changed_by_its_wire_is_found_by_the_sampler(start, subscribe):
    running = start()
    stream = subscribe(running)
    stream.next()
    running.call(lambda: running.server.gpio.drive(BUTTON, 0))  # the wire, not a request
    event = stream.next()
    assert gpio(event) == ("gpio", "button", BUTTON, 0, "input")
    board = running.server.gpio
    when = history(running, BUTTON)[-1][0] + board.epoch  # the board's own stamp
    assert event.data["time"] == pytest.approx(when, abs=1e-6)


def test_a_drive_on_the_sim_is_an_input_event(start, connect, subscribe):
    running = start()
    stream = subscribe(running)
    stream.next()
    write(connect(running), "button", '{"drive": 0}')
    assert gpio(stream.next()) == ("gpio", "button", BUTTON, 0, "input")
    assert stream.quiet(0.2) == []  # the sampler finds nothing more to say


def test_a_pwm_pin_reports_its_setting_not_its_edges(start, connect, subscribe):
    running = start()
    client = connect(running)
    stream = subscribe(running)
    stream.next()
    write(client, "buzzer", '{"pwm": {"frequency": 100, "duty": 0.5}}')
    event = stream.next()
    assert event.data["pwm"] == {"frequency": 100, "duty": 0.5, "running": True, "kind": "soft"}
    assert (event.data["pin"], event.data["cause"], "value" in event.data) == (
        "buzzer",
        "write",
        False,
    )
    edges = len(values(running, BUZZER))
    assert stream.quiet(0.3) == []
    assert len(values(running, BUZZER)) >= edges + 20  # the wave ran meanwhile
    write(client, "buzzer", "0")  # a level ends the wave: a change of level
    assert gpio(stream.next()) == ("gpio", "buzzer", BUZZER, 0, "write")


def test_a_safe_value_on_link_loss_is_an_event(start, connect, subscribe):
    running = start()
    stream = subscribe(running, source="127.0.0.2")  # another client: it holds no lease
    stream.next()
    driver = connect(running)
    write(driver, "led", "1")
    assert gpio(stream.next()) == ("gpio", "led", LED, 1, "write")
    driver.close()  # the driver's link drops: the led goes to its safe value
    assert gpio(stream.next()) == ("gpio", "led", LED, 0, "safe")


def test_the_apps_writes_and_its_own_events(start, connect, subscribe, tmp_path):
    app = tmp_path / "app.py"
    app.write_text(APP)
    running = start(app=str(app))
    stream = subscribe(running)
    stream.next()
    assert call(connect(running), "POST", "/?score").json() == {"ok": True}
    wrote, published = stream.take(2)
    assert gpio(wrote) == ("gpio", "led", LED, 1, "app")
    assert (published.event, published.data) == ("app", {"name": "score", "data": {"points": 3}})
    assert published.id == wrote.id + 1
    running.call(lambda: running.server.publish("reading", [1.5, None, "ok"]))
    assert stream.next().data == {"name": "reading", "data": [1.5, None, "ok"]}


@pytest.mark.parametrize(
    ("name", "data", "error", "words"),
    [
        ("x", {1, 2}, TypeError, "data must be JSON"),
        ("x", float("nan"), TypeError, "numbers finite"),
        ("", 1, TypeError, "name is a non-empty string"),
        ("x", "a" * 5000, ValueError, "5002 bytes of JSON, over 4096"),
    ],
)
def test_publish_refuses_what_is_no_event_at_the_call(start, connect, name, data, error, words):
    running = start()

    def publish():
        try:
            running.server.publish(name, data)
        except Exception as err:
            return err

    refused = running.call(publish)
    assert isinstance(refused, error) and words in str(refused), refused
    assert running.call(lambda: len(running.server.manager.events.history)) == 0
    assert call(connect(running), "GET", "/?gpio").status == 200  # still serving


def test_bytes_arriving_on_a_serial_port_are_announced_and_stay(start, connect, subscribe):
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        running = start(serial={"meter": {"port": os.ttyname(slave)}})
        stream = subscribe(running, "/?events&types=serial")
        assert stream.next().event == "state"
        os.write(master, b"17.5 V\n")
        event = stream.next()
        while event.data["available"] < 7:  # the bytes may come in more than one read
            event = stream.next()
        assert (event.event, event.data) == ("serial", {"port": "meter", "available": 7})
        assert call(connect(running), "GET", "/?serial/meter").body == b"17.5 V\n"
    finally:
        os.close(master)
        os.close(slave)


# -- ids, order, replay ----------------------------------------------------------------------


def test_events_leave_in_the_order_of_the_changes_across_pins_and_connections(
    start, connect, subscribe
):
    """Writes from two connections on two pins; each write's event is already at both
    subscribers when its reply arrives (queued on every stream before the reply)."""
    running = start()
    streams = [subscribe(running), subscribe(running, source="127.0.0.2")]
    for stream in streams:
        stream.next()
    writers = [connect(running), connect(running)]
    levels = {"led": 0, "buzzer": 0}
    ids = []
    for step in range(40):
        name = ("led", "buzzer")[step % 3 == 0]
        levels[name] = 1 - levels[name]
        write(writers[step % 2], name, str(levels[name]))
        got = [stream.next(timeout=0) for stream in streams]  # arrived already
        assert [(event.data["pin"], event.data["value"]) for event in got] == [
            (name, levels[name])
        ] * 2
        assert got[0].id == got[1].id
        ids.append(got[0].id)
    assert ids == list(range(ids[0], ids[0] + 40))


def test_a_reconnect_with_last_event_id_gets_what_it_missed_then_live(start, connect, subscribe):
    running = start()
    client = connect(running)
    first = subscribe(running)
    first.next()
    for level in (1, 0, 1):
        write(client, "led", str(level))
    seen, missed_1, missed_2 = first.take(3)
    first.close()
    again = subscribe(running, headers=f"Last-Event-ID: {seen.id}\r\n")
    assert [(event.id, event.data) for event in again.take(2)] == [
        (missed_1.id, missed_1.data),
        (missed_2.id, missed_2.data),
    ]
    write(client, "led", "0")
    assert (again.next().id, again.quiet(0.2)) == (missed_2.id + 1, [])
    latest = subscribe(running, headers=f"Last-Event-ID: {missed_2.id + 1}\r\n")
    assert latest.quiet(0.2) == []  # nothing missed: no state either
    write(client, "led", "1")
    assert latest.next().id == missed_2.id + 2


@pytest.mark.parametrize("last", ["banana", "", "-3", "1", "99999999999999999"])
def test_an_id_the_server_does_not_hold_gets_the_state_again(start, connect, subscribe, last):
    running = start()
    write(connect(running), "led", "1")
    stream = subscribe(running, headers=f"Last-Event-ID: {last}\r\n")
    state = stream.next()
    assert state.event == "state" and state.data["pins"]["led"]["value"] == 1


def test_history_holds_the_last_1000_events(start, subscribe):
    running = start()
    probe = subscribe(running)
    newest_before = probe.next().id
    probe.close()
    server = running.server
    running.call(lambda: [server.write("led", step % 2) for step in range(1, 1101)])
    # 1,100 events after newest_before: the first 100 are no longer held
    too_old = subscribe(running, headers=f"Last-Event-ID: {newest_before + 99}\r\n")
    assert too_old.next().event == "state"
    oldest = subscribe(running, headers=f"Last-Event-ID: {newest_before + 100}\r\n")
    replayed = oldest.take(1000)
    assert [event.id for event in replayed] == list(
        range(newest_before + 101, newest_before + 1101)
    )
    assert replayed[-1].data["value"] == 0 and oldest.quiet(0.2) == []


# -- filters and refusals ------------------------------------------------------------------


def test_filters_by_type_and_pin(start, connect, subscribe):
    running = start()
    client = connect(running)
    only_led = subscribe(running, "/?events&pins=led,18")
    only_app = subscribe(running, "/?events&types=app")
    assert set(only_led.next().data["pins"]) == {"led", "buzzer"}  # 18 is the buzzer
    assert only_app.next().event == "state"
    write(client, "button", '{"drive": 0}')
    write(client, "led", "1")
    running.call(lambda: running.server.publish("tick", 1))
    led, tick = only_led.quiet(0.3)  # pins filter the gpio events only
    assert (gpio(led), tick.data) == (("gpio", "led", LED, 1, "write"), {"name": "tick", "data": 1})
    assert [event.data for event in only_app.quiet(0.3)] == [{"name": "tick", "data": 1}]


@pytest.mark.parametrize(
    ("target", "status", "code", "words"),
    [
        ("/?events&types=gpio,sms", 400, "bad-param", '"sms" is none of them'),
        ("/?events&types=", 400, "bad-param", "types lists event types separated by commas"),
        ("/?events&pins=led,nope", 400, "unknown-pin", "the declared pins are: button,"),
        ("/?events&pins=22", 400, "not-declared", "declare it in web.json5"),
        ("/?events&type=gpio", 400, "bad-param", 'takes types and pins, not "type"'),
        ("/?events/gpio", 404, "not-found", "the event stream is /?events"),
    ],
)
def test_a_bad_request_is_refused_before_the_stream_starts(
    start, connect, target, status, code, words
):
    running = start()
    client = connect(running)
    check_error(call(client, "GET", target), status, code, words)
    assert call(client, "GET", "/?gpio").status == 200  # the same connection goes on
    assert call(connect(running), "GET", "/?gpio").status == 200  # and so do others
    assert subscribers(running) == 0


def test_a_stream_is_read_only(start, connect):
    running = start()
    refused = call(connect(running), "POST", "/?events", "1")
    check_error(refused, 405, "method-not-allowed", "use GET")
    assert refused.headers["allow"] == "GET"


def test_at_most_limits_subscribers_streams(start, connect, subscribe):
    running = start(limits__subscribers=2, events__keepalive=7)
    first = subscribe(running)
    subscribe(running)
    refused = Client(running.connect())
    reply = call(refused, "GET", "/?events")
    check_error(reply, 503, "too-many-streams", "2 event streams are open", "limits.subscribers")
    assert reply.headers["retry-after"] == "7"
    assert call(connect(running), "GET", "/?gpio").status == 200
    first.close()
    assert wait_for(lambda: subscribers(running) == 1)
    assert subscribe(running).status == 200
    refused.close()


def test_subscribing_takes_no_lease(start, connect, subscribe):
    running = start()
    assert subscribe(running).next().event == "state"  # 127.0.0.1 subscribes first
    driver = connect(running, source="127.0.0.2")
    write(driver, "led", "1")  # and holds nothing back: 127.0.0.2 takes the hardware
    stream = subscribe(running)  # while it holds it, 127.0.0.1 may still subscribe
    assert stream.status == 200 and stream.next().data["pins"]["led"]["value"] == 1


def test_discovery_lists_events(start, connect):
    assert "events" in call(connect(start()), "GET", "/?").json()["Services"]


# -- a subscriber that does not read, keep-alives, timeouts ---------------------------------


def test_a_subscriber_that_does_not_read_loses_its_stream_and_nobody_waits(
    start, connect, subscribe, caplog
):
    caplog.set_level(logging.INFO, logger="httap.connection")
    running = start(limits__event_buffer=16384)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect((running.host, running.port))
    sleeper = Sse(sock)  # reads the head, then nothing
    reader = subscribe(running, source="127.0.0.2")
    reader.next()
    writer = connect(running)
    for batch in range(20):  # 2,000 writes, pipelined by hundreds
        levels = [(batch * 100 + step + 1) % 2 for step in range(100)]
        writer.send(b"".join(encode("POST", "/?gpio/led", str(level)) for level in levels))
        assert all(writer.read().status == 200 for _ in levels)
        events = reader.take(100)
        assert [event.data["value"] for event in events] == levels
    assert wait_for(lambda: subscribers(running) == 1)
    line = next(r.getMessage() for r in caplog.records if "event stream to" in r.getMessage())
    unread = int(re.search(r"(\d+) bytes unread, over 16384", line).group(1))
    assert 16384 < unread < 16384 + 200  # never more than the bound and one event
    got = 0
    with pytest.raises(Ended) as ended:
        while True:
            sleeper.next()
            got += 1
    assert not ended.value.clean and got < 2000
    sleeper.close()


def test_a_comment_every_keepalive_seconds(start, subscribe):
    stream = subscribe(start(events__keepalive=0.2))
    assert stream.next().event == "state"
    for _ in range(2):
        assert stream.next(comments=True).comment == "keep-alive"


def test_a_stream_is_kept_past_the_inactivity_timeout(start, connect, subscribe):
    running = start(timeouts__inactivity=3, events__keepalive=3600)
    stream = subscribe(running)
    stream.next()
    time.sleep(3.5)  # longer than timeouts.inactivity, with nothing sent
    write(connect(running), "led", "1")
    assert gpio(stream.next()) == ("gpio", "led", LED, 1, "write")


def test_an_open_stream_keeps_its_session_alive(start, connect, subscribe):
    """Each event or keep-alive sent on a stream is activity of its session, like a
    reply's end: its client's hold of the hardware stays as fresh as the stream, and a
    503's Retry-After says so."""
    running = start(timeouts__inactivity=3, events__keepalive=0.5)
    stream = subscribe(running)
    stream.next()
    driver = connect(running)  # the same client as the stream
    write(driver, "led", "1")
    assert driver.closed(timeout=5)  # idle past timeouts.inactivity: it is closed
    time.sleep(1)
    refused = call(connect(running, source="127.0.0.2"), "POST", "/?gpio/led", "0")
    check_error(refused, 503, "busy", "127.0.0.1")
    assert refused.headers["retry-after"] == "3"  # idle for less than a keep-alive


def test_http_1_0_gets_a_body_delimited_by_the_close(start, connect, subscribe):
    running = start()
    stream = subscribe(running, version="HTTP/1.0")
    assert stream.headers["connection"] == "close"
    assert "transfer-encoding" not in stream.headers and "content-length" not in stream.headers
    assert stream.next().event == "state"
    write(connect(running), "led", "1")
    assert gpio(stream.next()) == ("gpio", "led", LED, 1, "write")
    running.stop()
    with pytest.raises(Ended) as ended:
        stream.next()
    assert ended.value.clean


def test_a_stream_over_tls(start, tls_pair):
    certificate, key = tls_pair
    running = start(listen=["https://127.0.0.1:0"], tls__certificate=certificate, tls__key=key)
    context = ssl.create_default_context(cafile=certificate)
    stream = Sse(context.wrap_socket(running.connect(), server_hostname="localhost"))
    writer = Client(context.wrap_socket(running.connect(), server_hostname="localhost"))
    try:
        assert stream.next().event == "state"
        write(writer, "led", "1")
        assert gpio(stream.next()) == ("gpio", "led", LED, 1, "write")
        running.stop()
        with pytest.raises(Ended) as ended:
            stream.next()
        assert ended.value.clean
    finally:
        stream.close()
        writer.close()


def test_stopping_the_server_ends_every_stream(start, subscribe):
    running = start()
    streams = [subscribe(running), subscribe(running, "/?events&types=app")]
    for stream in streams:
        stream.next()
    running.stop()
    for stream in streams:
        with pytest.raises(Ended) as ended:
            stream.next()
        assert ended.value.clean  # the last chunk came: the body was finished


@needs_curl
def test_curl_shows_the_events(start, connect):
    running = start()
    command = readme_command("Push", "curl -N", "?events'")
    url = command.split("'")[1].replace("http://pi:8080", f"http://127.0.0.1:{running.port}")
    watching = subprocess.Popen(["curl", "-sN", "-m", "3", url], stdout=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: subscribers(running) == 1)
        write(connect(running), "led", "1")
        output, _ = watching.communicate(timeout=10)
    finally:
        watching.kill()
    assert output.startswith("id: ") and "event: state\ndata: {" in output
    assert 'event: gpio\ndata: {"pin":"led","gpio":17,"value":1,' in output
