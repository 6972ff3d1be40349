"""The event stream says who holds the hardware (docs/protocol.md, "Choices"): the
`state` event's `lease` and `client`, and an `event: lease` each time the holder
changes, so that a page can show "another client is driving" and stop showing it.
Over real sockets, the stream read with http.client (which undoes the chunking)."""

from __future__ import annotations

import http.client
import json

from tests.helpers.dynamic import call, check_error
from tests.helpers.servers import LED, PINS, read_pin


def subscribe(running, query: str = "") -> http.client.HTTPResponse:
    """An open `GET /?events` stream, its head read."""
    connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=5)
    connection.request("GET", f"/?events{query}")
    reply = connection.getresponse()
    assert reply.status == 200
    assert reply.getheader("Content-Type") == "text/event-stream"
    return reply


def next_event(stream: http.client.HTTPResponse) -> tuple[str, dict]:
    """The stream's next event, as (type, data); comments are skipped."""
    fields: dict[str, str] = {}
    while True:
        line = stream.readline()
        assert line, "the stream ended"
        line = line.decode().rstrip("\n")
        if not line:
            if fields:
                return fields["event"], json.loads(fields["data"])
            continue
        if not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


def console_server(make_server, exclusive: str):
    return make_server(gpio__backend="sim", gpio__pins=PINS, session__exclusive=exclusive)


def test_the_state_says_who_holds_the_hardware_and_the_streams_own_address(make_server, connect):
    running = console_server(make_server, "client")
    kind, state = next_event(subscribe(running))
    assert kind == "state"
    assert state["lease"] == {"exclusive": "client", "holder": None}
    assert state["client"] == "127.0.0.1"
    writer = connect(running)
    assert call(writer, "POST", "/?gpio/led", "1").status == 200
    session = int(call(writer, "GET", "/?ping").headers["httap-session"])
    kind, state = next_event(subscribe(running))
    assert state["lease"] == {
        "exclusive": "client",
        "holder": {"address": "127.0.0.1", "session": session},
    }


def test_a_lease_event_each_time_the_holder_changes_before_the_safe_values(make_server, connect):
    """Taken: `lease` before the write's `gpio` event; a second write, none; released
    when the holder's connection closes: `lease` with no holder, then the safe value."""
    running = console_server(make_server, "connection")
    stream = subscribe(running, "&types=gpio,lease")
    assert next_event(stream)[0] == "state"
    writer = connect(running)
    reply = call(writer, "POST", "/?gpio/led", "1")
    session = int(reply.headers["httap-session"])
    holder = {"address": "127.0.0.1", "session": session}
    assert next_event(stream) == ("lease", {"exclusive": "connection", "holder": holder})
    kind, change = next_event(stream)
    assert (kind, change["pin"], change["value"], change["cause"]) == ("gpio", "led", 1, "write")
    assert call(writer, "POST", "/?gpio/led", "0").status == 200  # still its own: no lease
    kind, change = next_event(stream)
    assert (kind, change["value"]) == ("gpio", 0)
    assert call(writer, "POST", "/?gpio/led", "1").status == 200
    assert next_event(stream)[0] == "gpio"
    writer.close()
    assert next_event(stream) == ("lease", {"exclusive": "connection", "holder": None})
    kind, change = next_event(stream)
    assert (kind, change["pin"], change["value"], change["cause"]) == ("gpio", "led", 0, "safe")
    assert read_pin(running, LED) == 0


def test_types_lease_alone_and_a_bad_type_names_it(make_server, connect):
    running = console_server(make_server, "client")
    stream = subscribe(running, "&types=lease")
    assert next_event(stream)[0] == "state"
    client = connect(running)
    reply = call(client, "GET", "/?events&types=lease,leases")
    check_error(reply, 400, "bad-param", "of gpio, serial, app and lease", '"leases"')
    assert call(client, "POST", "/?gpio/led", "1").status == 200  # still served
    assert next_event(stream) == (
        "lease",
        {
            "exclusive": "client",
            "holder": {"address": "127.0.0.1", "session": int(reply.headers["httap-session"])},
        },
    )


def test_with_exclusive_off_there_is_no_lease_event(make_server, connect):
    running = console_server(make_server, "off")
    stream = subscribe(running, "&types=gpio,lease")
    kind, state = next_event(stream)
    assert state["lease"] == {"exclusive": "off", "holder": None}
    writer = connect(running)
    assert call(writer, "POST", "/?gpio/led", "1").status == 200
    kind, change = next_event(stream)
    assert (kind, change["pin"]) == ("gpio", "led")
