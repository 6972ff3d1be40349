"""What `/?events` means: server-sent event streams of every change, as it happens
(docs/protocol.md, "Push: GET /?events"; the format is the WHATWG HTML standard's,
section 9.2, "Server-sent events").

- `GET /?events[&types=gpio,serial,app][&pins=NAME,NAME]` answers 200
  `text/event-stream` with a body that never ends: first `event: state` ({"pins": ...}
  as `GET /?gpio` answers, for the pins asked for), or, after a `Last-Event-ID` whose
  following events are all still held, those events; then each event as it happens.
  An unknown parameter, type or pin is 400 before the stream starts; past
  `limits.subscribers` open streams, 503 with Retry-After.
- The sources: the pins' change source (`gpio`: a change of level, or of a PWM pin's
  setting; a repeat is no change, nor is a wave's edge), the serial ports (`serial`:
  bytes arrived and wait to be read), the app (`app`: `publish`) and the hardware lease
  (`lease`: who holds it, each time that changes; docs/protocol.md, "Choices"). Lease
  events go only to a stream that asks for them (`types=...,lease`), whose `state`
  also says who holds the lease, and the stream's own client address; they have no id
  and are not held: a resumed stream is told the holder after its replay.
- Each event is formatted once, as it happens: the same bytes go to every stream that
  wants them and into the history (the last HISTORY events), which replays them.
- Ids are server-wide, one more for each event, counted from the server's start time
  in microseconds: an id from an earlier run of the server is not one of this run's. A
  `state` carries the id of the last event before it.
- A stream whose client leaves more than `limits.event_buffer` bytes unread, past its
  first part (the state or the replay), ends (the connection's `Streamed`): the server
  never waits for a subscriber. A comment every
  `events.keepalive` seconds keeps quiet streams open through proxies and NATs.
- Subscribing takes no lease. While a stream wants `gpio` events, the sampler reads
  every input (`Watches.follow`).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Mapping
from itertools import islice
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from httap import http
from httap.pins import INPUT, Change, Pins, shown
from httap.reply import Stream
from httap.watches import Watches

if TYPE_CHECKING:
    from httap.config import Limits
    from httap.serialport import SerialPort
    from httap.session import Lease, Session

log = logging.getLogger("httap.events")

HISTORY = 1000  # events held for replay (docs/protocol.md: at least the last 1,000)
TYPES = ("gpio", "serial", "app", "lease")
DEFAULT_TYPES = frozenset(("gpio", "serial", "app"))  # the contract's; `lease` is asked for
PARAMS = frozenset(("types", "pins"))
KEEP_ALIVE = b": keep-alive\n\n"  # a comment line: EventSource ignores it
EVENT_STREAM = ("Content-Type", "text/event-stream")
APP_DATA = 4096  # bytes of JSON an app's event may carry: a notification, not a transfer
_to_json = http.json_encoder(allow_nan=False)


class Subscriber(NamedTuple):
    """One open stream and what it wants: `types` (a set of TYPES) and `pins` (pin
    names, or None for every pin)."""

    stream: Stream
    types: frozenset
    pins: Optional[frozenset]

    def wants(self, kind: str, pin: Optional[str]) -> bool:
        return _wants(self.types, self.pins, kind, pin)


class Held:
    """An event in the history: its id, type, pin name (gpio only) and data, and its
    bytes as a stream carries them (`frame()`), encoded when first asked for: a change
    that no stream hears costs no JSON until a stream resumes past it."""

    __slots__ = ("_frame", "data", "id", "kind", "pin")

    def __init__(self, event_id: int, kind: str, pin: Optional[str], data: Any) -> None:
        self.id = event_id
        self.kind = kind
        self.pin = pin
        self.data = data  # until it is encoded: nobody changes it
        self._frame: Optional[bytes] = None

    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = _frame(self.id, self.kind, self.data)
            self.data = None
        return self._frame


class Events:
    """The `/?events` room over `pins` (and their `watches`), the serial `ports` and
    the hardware `lease`, timed by `loop` (every), within `limits` (subscribers,
    event_buffer); a comment every `keepalive` seconds on every stream."""

    def __init__(
        self,
        pins: Pins,
        watches: Watches,
        ports: Mapping[str, SerialPort],
        lease: Lease,
        loop: Any,
        limits: Limits,
        keepalive: float,
    ) -> None:
        self.pins = pins
        self.watches = watches
        self.lease = lease
        self.loop = loop
        self.most = limits.subscribers
        self.buffer = limits.event_buffer
        self.keepalive = keepalive
        self.subscribers: list[Subscriber] = []
        self.history: deque[Held] = deque(maxlen=HISTORY)
        self.last_id = int(time.time() * 1_000_000)  # the next event's is one more
        self.keeper: Any = None  # the loop's periodic keep-alive, while a stream is open
        self.stopped = False
        pins.subscribe(self._pin_changed)
        for port in ports.values():
            port.on_arrival(self._arrived)
        lease.on_change(self._lease_changed)

    # -- subscribing -----------------------------------------------------------------

    def stream(self, request: http.Request, _: None) -> Stream:
        """`GET /?events`: a new stream. 400 for a parameter, type or pin it does not
        know, 503 past `limits.subscribers` (or while the server stops)."""
        unknown = sorted(set(request.params) - PARAMS)
        if unknown:
            raise http.HTTPError(
                400,
                "bad-param",
                f"/?events takes types and pins, not {shown(unknown[0])}",
            )
        types = self._types(request.params.get("types"))
        pins = self._pins(request.params.get("pins"))
        if self.stopped:
            raise http.HTTPError(503, "stopping", "the server is stopping; try again shortly")
        if len(self.subscribers) >= self.most:
            raise http.HTTPError(
                503,
                "too-many-streams",
                f"{self.most} event streams are open, the most limits.subscribers allows;"
                " close one, or try again later",
                (("Retry-After", str(math.ceil(self.keepalive))),),
            )
        first = self._replay(request.headers.get("last-event-id"), types, pins)
        if first is None:
            first = self._state(pins, request.session if "lease" in types else None)
        elif "lease" in types:
            first += self._lease_frame()  # resumed: who holds the hardware now
        stream = Stream(http.Response(200, [EVENT_STREAM], first), self.buffer)
        subscriber = Subscriber(stream, types, pins)
        self.subscribers.append(subscriber)
        stream.on_close(lambda: self._left(subscriber))
        if "gpio" in types:
            self.watches.follow()
        if self.keeper is None:
            self.keeper = self.loop.every(
                self.keepalive, self._keep_alive, name="event keep-alive", internal=True
            )
        return stream

    @staticmethod
    def _types(text: Optional[str]) -> frozenset:
        """`types=gpio,serial`: a set of TYPES (DEFAULT_TYPES when absent); 400 otherwise."""
        if text is None:
            return DEFAULT_TYPES
        names = text.split(",")
        wrong = [name for name in names if name not in TYPES]
        if wrong:
            raise http.HTTPError(
                400,
                "bad-param",
                f"types lists event types separated by commas, of gpio, serial, app and"
                f" lease;"
                f" {shown(wrong[0])} is none of them",
            )
        return frozenset(names)

    def _pins(self, text: Optional[str]) -> Optional[frozenset]:
        """`pins=led,button`: a set of pin names, each found by name or GPIO number as
        everywhere (None when absent: every pin); 400 with the lookup's own message for
        one that is not declared."""
        if text is None:
            return None
        names = set()
        for name in text.split(","):
            try:
                names.add(self.pins.find(name).name)
            except http.HTTPError as err:
                raise http.HTTPError(400, err.code, err.message) from None
        return frozenset(names)

    def _state(self, wanted: Optional[frozenset], session: Optional[Session]) -> bytes:
        """`event: state`: the pins asked for, as `GET /?gpio` gives them, with the id of
        the last event so far; for a stream that wants `lease` (its `session` given),
        who holds the lease and `client`, the stream's address as the lease compares
        them."""
        pins = self.pins
        states = {
            name: pins.state(pin)
            for name, pin in pins.by_name.items()
            if wanted is None or name in wanted
        }
        data: dict[str, Any] = {"pins": states}
        if session is not None:
            data.update(lease=self._lease(), client=session.address)
        return _frame(self.last_id, "state", data)

    def _lease(self) -> dict:
        """{"exclusive": session.exclusive, "holder": {"address", "session"} or None}."""
        holder = self.lease.holder
        if holder is not None:
            return {
                "exclusive": self.lease.mode,
                "holder": {"address": holder.address, "session": holder.id},
            }
        return {"exclusive": self.lease.mode, "holder": None}

    def _replay(
        self, last: Optional[str], types: frozenset, pins: Optional[frozenset]
    ) -> Optional[bytes]:
        """The held events after id `last` that the stream wants, joined; None when it
        must start from `state` instead: no id or not one of ours, or an id whose next
        event is no longer held."""
        if last is None or not last.isdigit() or len(last) > 20:
            return None
        seen = int(last)
        history = self.history
        oldest = history[0].id if history else self.last_id + 1
        if not oldest - 1 <= seen <= self.last_id:
            return None
        return b"".join(
            held.frame()
            for held in islice(history, seen - oldest + 1, None)
            if _wants(types, pins, held.kind, held.pin)
        )

    def _left(self, subscriber: Subscriber) -> None:
        """A stream is over (its client went, fell behind, or the server ended it)."""
        self.subscribers.remove(subscriber)
        if "gpio" in subscriber.types:
            self.watches.unfollow()
        if not self.subscribers and self.keeper is not None:
            self.keeper.cancel()
            self.keeper = None

    def _keep_alive(self) -> None:
        for subscriber in tuple(self.subscribers):
            subscriber.stream.write(KEEP_ALIVE)

    # -- the sources -------------------------------------------------------------------

    def emit(self, kind: str, data: dict, pin: Optional[str] = None) -> Held:
        """A new event of type `kind` (TYPES) carrying `data` (for `gpio`, about `pin`):
        the next id, held, and queued on every stream that wants it, in this order.
        `data` is encoded when a stream first needs it: nobody may change it after."""
        self.last_id += 1
        held = Held(self.last_id, kind, pin, data)
        self.history.append(held)
        for subscriber in tuple(self.subscribers):  # one may end as it is written to
            if subscriber.wants(kind, pin):
                subscriber.stream.write(held.frame())
        return held

    def _pin_changed(self, change: Change) -> None:
        """The change source's listener: `gpio` events, one per change of a level or of
        a PWM pin's setting; repeats, and a wave's edges the sampler saw, are none."""
        if change.repeat:
            return
        pin = change.pin
        wave = pin.wave
        data: dict[str, Any] = {"pin": pin.name, "gpio": pin.gpio}
        if change.level is None:
            data["pwm"] = {
                "frequency": wave.frequency,
                "duty": wave.duty,
                "running": wave.running,
                "kind": wave.kind,
            }
        elif change.kind == INPUT and wave is not None:
            return
        else:
            data["value"] = change.level
        data["time"] = round(change.time, 6)
        data["cause"] = change.kind
        self.emit("gpio", data, pin.name)

    def _lease_changed(self, holder: Optional[Session]) -> None:
        """The lease's listener: an `event: lease` to every stream that wants it, one per
        change of holder. It has no id and is not held for replay: it tells what is
        true now, which a resumed stream is told again after its replay."""
        frame = self._lease_frame()
        for subscriber in tuple(self.subscribers):  # one may end as it is written to
            if "lease" in subscriber.types:
                subscriber.stream.write(frame)

    def _lease_frame(self) -> bytes:
        return b"event: lease\ndata: %s\n\n" % _to_json(self._lease()).encode()

    def _arrived(self, port: SerialPort) -> None:
        """Bytes arrived on `port` and wait for `GET /?serial/NAME`: how many there are."""
        self.emit("serial", {"port": port.name, "available": len(port.received)})

    def publish(self, name: str, data: Any) -> None:
        """The app's own event: `event: app` with {"name": name, "data": data}. TypeError
        for a name that is not a non-empty string, or data that is not JSON (NaN and
        infinities included); ValueError for data whose JSON is over APP_DATA bytes."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"publish(name, data): name is a non-empty string, not {name!r}")
        try:
            encoded = _to_json(data)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"publish({name!r}, data): data must be JSON (dict, list, str, number, bool or"
                f" None; numbers finite): {err}"
            ) from None
        if len(encoded) > APP_DATA:
            raise ValueError(
                f"publish({name!r}, data): data is {len(encoded)} bytes of JSON, over"
                f" {APP_DATA}; an event is a notification: serve large data from an action"
            )
        self.emit("app", {"name": name, "data": data}).frame()  # now: the app may change `data`

    # -- stopping ----------------------------------------------------------------------

    def stop(self) -> None:
        """The server stops: every stream ends now (its body is finished), and no new
        one starts."""
        self.stopped = True
        for subscriber in tuple(self.subscribers):
            subscriber.stream.end()


def _wants(types: frozenset, pins: Optional[frozenset], kind: str, pin: Optional[str]) -> bool:
    """Whether a stream that wants `types` and `pins` (None: all) takes an event of
    type `kind` about `pin` (None for serial and app events)."""
    return kind in types and (pin is None or pins is None or pin in pins)


def _frame(event_id: int, kind: str, data: Any) -> bytes:
    """One event as the stream carries it: its id, its type and one line of JSON."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event_id, kind.encode(), _to_json(data).encode())
