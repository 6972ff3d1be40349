"""The event stream says who holds the hardware, to a stream that asks (docs/protocol.md,
"Choices"): with `types=...,lease`, the `state` event's `lease` and `client`, and an
`event: lease` (no id, not replayed: a resumed stream is told the holder after its
replay) each time the holder changes, so that a page can show "another client is
driving" and stop showing it. Over real sockets, read with tests/helpers/sse.py."""

from __future__ import annotations

import pytest

from tests.helpers.dynamic import call, check_error
from tests.helpers.servers import LED, PINS, read_pin
from tests.helpers.sse import Sse


@pytest.fixture
def subscribe():
    """Open event streams; all closed at the end."""
    opened: list[Sse] = []

    def open_stream(running, target: str) -> Sse:
        opened.append(Sse(running.connect(), target))
        assert opened[-1].status == 200
        return opened[-1]

    yield open_stream
    for stream in opened:
        stream.close()


def start(make_server, exclusive: str):
    return make_server(gpio__backend="sim", gpio__pins=PINS, session__exclusive=exclusive)


def lease(exclusive: str, session=None) -> dict:
    """A `lease` object: held by 127.0.0.1's `session`, or by nobody."""
    holder = None if session is None else {"address": "127.0.0.1", "session": session}
    return {"exclusive": exclusive, "holder": holder}


def test_the_state_says_who_holds_the_hardware_and_the_streams_own_address(
    make_server, connect, subscribe
):
    running = start(make_server, "client")
    state = subscribe(running, "/?events&types=gpio,lease").next()
    assert state.event == "state"
    assert (state.data["lease"], state.data["client"]) == (lease("client"), "127.0.0.1")
    writer = connect(running)
    reply = call(writer, "POST", "/?gpio/led", "1")
    state = subscribe(running, "/?events&types=lease").next()
    assert state.data["lease"] == lease("client", int(reply.headers["httap-session"]))


def test_a_lease_event_each_time_the_holder_changes_before_the_safe_values(
    make_server, connect, subscribe
):
    """Taken: `lease` before the write's `gpio` event; further writes, none; released
    when the holder's connection closes: `lease` with no holder, then the safe value."""
    running = start(make_server, "connection")
    stream = subscribe(running, "/?events&types=gpio,lease")
    assert stream.next().event == "state"
    writer = connect(running)
    session = int(call(writer, "POST", "/?gpio/led", "1").headers["httap-session"])
    taken, write = stream.take(2)
    assert (taken.event, taken.data) == ("lease", lease("connection", session))
    assert taken.id is None  # not one of the held events: ids stay the contract's
    assert (write.event, write.data["value"], write.data["cause"]) == ("gpio", 1, "write")
    assert call(writer, "POST", "/?gpio/led", "0").status == 200
    assert call(writer, "POST", "/?gpio/led", "1").status == 200
    assert [event.event for event in stream.take(2)] == ["gpio", "gpio"]
    writer.close()
    released, safe = stream.take(2)
    assert (released.event, released.data) == ("lease", lease("connection"))
    assert (safe.event, safe.data["value"], safe.data["cause"]) == ("gpio", 0, "safe")
    assert read_pin(running, LED) == 0


def test_lease_events_go_only_to_a_stream_that_asks(make_server, connect, subscribe):
    """The default stream is the contract's (gpio, serial, app): no lease in its state,
    no lease event. `types=lease` alone has no gpio event. A bad type's 400 names lease,
    and the server serves the next request."""
    running = start(make_server, "client")
    default = subscribe(running, "/?events")
    assert list(default.next().data) == ["pins"]
    only = subscribe(running, "/?events&types=lease")
    assert only.next().event == "state"
    client = connect(running)
    reply = call(client, "GET", "/?events&types=lease,leases")
    check_error(reply, 400, "bad-param", "of gpio, serial, app and lease", '"leases"')
    assert call(client, "POST", "/?gpio/led", "1").status == 200
    event = only.next()
    assert (event.event, event.data) == (
        "lease",
        lease("client", int(reply.headers["httap-session"])),
    )
    assert default.next().event == "gpio"
    assert only.quiet(0.2) == [] and default.quiet(0.2) == []


def test_with_exclusive_off_there_is_no_lease_event(make_server, connect, subscribe):
    running = start(make_server, "off")
    stream = subscribe(running, "/?events&types=gpio,lease")
    assert stream.next().data["lease"] == lease("off")
    writer = connect(running)
    assert call(writer, "POST", "/?gpio/led", "1").status == 200
    event = stream.next()
    assert (event.event, event.data["pin"]) == ("gpio", "led")


def test_a_resumed_stream_gets_its_replay_then_the_holder_now(make_server, connect, subscribe):
    """The lease changed while the stream was away: after `Last-Event-ID` it gets the
    gpio events it missed, then one `lease` event with the holder now."""
    running = start(make_server, "client")
    first = subscribe(running, "/?events&types=gpio,lease")
    last = first.next().id
    first.close()
    writer = connect(running)
    session = int(call(writer, "POST", "/?gpio/led", "1").headers["httap-session"])
    assert call(writer, "POST", "/?gpio/led", "0").status == 200
    resumed = Sse(running.connect(), "/?events&types=gpio,lease", f"Last-Event-ID: {last}\r\n")
    try:
        events = resumed.take(3)
        assert [(event.event, event.id) for event in events] == [
            ("gpio", last + 1),
            ("gpio", last + 2),
            ("lease", None),
        ]
        assert events[2].data == lease("client", session)
        assert resumed.quiet(0.2) == []
    finally:
        resumed.close()
