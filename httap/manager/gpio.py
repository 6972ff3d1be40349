"""What `/?gpio` and `/?gpio/NAME` mean: the bodies, the batch, the long-poll's parameters.

The pins themselves (levels, pulses, PWM, safe values, the audit) are pins.py's; this
room reads requests and says what the replies hold (docs/protocol.md, "GPIO"):
- `GET /?gpio`: every declared pin's state; `POST /?gpio {"led": 1, "motor": 0}`: a
  batch, checked whole, then applied in order in this tick.
- `GET /?gpio/NAME`: the pin's state, {"gpio", "mode", "value"} (and "pwm");
  `&wait=S[&value=V]` waits up to S seconds (WAIT) for the level to leave V (by default
  the level now), then answers with "timeout".
- `POST` or `PUT /?gpio/NAME` with a body of 0, 1, true, false, {"value": V},
  {"pulse": S}, {"pwm": {"frequency": HZ, "duty": D}}, or, on the simulated board and
  for an input, {"drive": V}. A write's reply is the pin's state, plus, for a pin with a
  `safe` value, that value and how long the written one holds.
- A reply that comes later (a long-poll's, a pulse's) is 200 with the state read when
  it ends, or 500 `gpio-error` if the board fails then: no reply is left hanging.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from gpio import GpioError
from httap import http
from httap.config import WAIT
from httap.manager.room import READS, Change, Encoded, cause_of, no_such, param
from httap.pins import INPUT, Pin, Pins
from httap.reply import Pending
from httap.watches import Watches

# How long a written value holds on a pin with a `safe` value, by session.exclusive: the
# lease's release applies the safe values (session.py), and a write's reply says when.
HOLDS = {
    "client": "until this client's last connection closes",
    "connection": "until this connection closes",
    "off": "until the server stops",
}
COMMANDS = ("value", "pulse", "pwm", "drive")  # the keys of a pin's JSON body
BAD_BODY = (
    "the body must be 0, 1, true, false, or a JSON object such as"
    ' {"value": 1}, {"pulse": 0.2} or {"pwm": {"frequency": 440, "duty": 0.5}}'
)
BAD_BATCH = 'a batch is a JSON object of pin names and values, e.g. {"led": 1, "motor": 0}'
MAX_ENCODED = 256  # pin states whose JSON is kept; cleared when full
# The bodies nearly every write sends, by their exact bytes, and the level they give: the
# JSON decoder's reading of them, without its cost. Any other body is decoded.
LEVELS = {b"0": 0, b"1": 1, b"true": 1, b"false": 0}


class Gpio:
    """The `/?gpio` room over `pins` and their `watches`; `lease_mode` is
    session.exclusive (what a write's reply says about how long it holds)."""

    def __init__(self, pins: Pins, watches: Watches, loop: Any, lease_mode: str) -> None:
        self.pins = pins
        self.watches = watches
        self.loop = loop
        self.holds = HOLDS[lease_mode]
        self._encoded: dict[tuple, Encoded] = {}  # a flat state's items -> its JSON

    def find(self, name: str) -> Pin:
        """The pin `/?gpio/NAME` names (404 or 403 from pins.py; 404 for a deeper path)."""
        if "/" in name:
            raise no_such(f"gpio/{name}", "pins are /?gpio/NAME")
        return self.pins.find(name)

    def all(self, request: http.Request, _: None) -> Any:
        """`GET /?gpio` and the batch."""
        if request.method != "POST":
            pins = self.pins
            return {"pins": {name: pins.state(pin) for name, pin in pins.by_name.items()}}
        return self._batch(request)

    def pin(self, request: http.Request, pin: Pin) -> Any:
        """`/?gpio/NAME`: a read, a long-poll, or a write (as a Change)."""
        if request.method in READS:
            if "wait" in request.params:
                return self._long_poll(request, pin)
            return self._encode(self.pins.state(pin))
        kind, argument = command(request.body)
        if kind == "drive":
            self._drivable(pin)
            refused = f"driving pin {pin.name} is refused; reading pins stays open"
        else:
            self.pins.writable(pin)
            refused = f"writing pin {pin.name} is refused; reading pins stays open"
        return Change(refused, lambda: self._write(request, pin, kind, argument))

    def _encode(self, state: dict) -> Any:
        """A reply, `state` (read from the board just now), as an `Encoded` kept per
        distinct state: a pin has as many as it has levels, so its JSON is encoded once
        (the key is the state's items: a level is the int 0 or 1, gpio.Backend.read). A
        state that holds a dict (a PWM pin's setting) is answered as it is."""
        try:
            key = tuple(state.items())
            encoded = self._encoded.get(key)
        except TypeError:  # unhashable: the state holds a dict
            return state
        if encoded is None:
            encoded = Encoded(state)
            if len(self._encoded) >= MAX_ENCODED:
                self._encoded.clear()
            self._encoded[key] = encoded
        return encoded

    def _drivable(self, pin: Pin) -> None:
        """`{"drive": V}` sets the wire of an input, as a button would: on the simulated
        board only, whose wires are in memory; a real board's inputs follow real wires."""
        backend = self.pins.backend
        if not backend.simulated:
            raise http.HTTPError(
                409,
                "sim-only",
                f'{{"drive": V}} is only for the simulated board (gpio.backend "sim"); this'
                f" board is {backend.name}, where pin {pin.name} follows its real wire",
            )
        if pin.is_output:
            raise http.HTTPError(
                409,
                "mode-conflict",
                f"pin {pin.name} is an output: its level is what the server drives, so"
                ' there is no wire to set; write it with 0, 1 or {"value": 1}',
            )

    def _write(self, request: http.Request, pin: Pin, kind: str, argument: Any) -> Any:
        pins = self.pins
        if kind == "pulse":
            pending = Pending()
            pins.pulse(
                pin,
                argument,
                cause_of(request),
                lambda interrupted, error: self._later(
                    pending, lambda: self._written(pin, interrupted), error
                ),
            )
            return pending
        if kind == "pwm":
            pins.set_pwm(pin, argument, cause_of(request))
        else:
            level = pins.level_of(argument, pin)
            if kind == "drive":
                pins.set(pin, level, cause_of(request), "drive", INPUT)
            else:
                pins.set(pin, level, cause_of(request))
        return self._encode(self._written(pin))

    def _written(self, pin: Pin, interrupted: bool = False) -> dict:
        """The reply to a write: the pin's state, plus, for a pin with a `safe` value,
        that value and how long the written one holds (HOLDS); "interrupted" for a
        pulse cut short."""
        state = self.pins.state(pin)
        if pin.safe is not None:
            state["safe"] = pin.safe
            state["holds"] = self.holds
        if interrupted:
            state["interrupted"] = True
        return state

    def _batch(self, request: http.Request) -> Change:
        """`POST /?gpio {"a": 1, "b": 0}`: checked whole, then applied in order in this tick."""
        writes = _json(request.body)
        if not isinstance(writes, dict) or not writes:
            raise http.HTTPError(400, "bad-value", BAD_BATCH)
        pins = self.pins
        plan = []
        for name, value in writes.items():
            pin = pins.find(name)
            pins.writable(pin)
            if isinstance(value, dict) and set(value) == {"value"}:
                value = value["value"]
            plan.append((pin, pins.level_of(value, pin)))

        def apply() -> dict:
            cause = cause_of(request)
            for pin, level in plan:
                pins.set(pin, level, cause)
            return {"pins": {pin.name: self._written(pin) for pin, _ in plan}}

        names = ", ".join(pin.name for pin, _ in plan)
        return Change(f"writing pins {names} is refused; reading pins stays open", apply)

    def _long_poll(self, request: http.Request, pin: Pin) -> Any:
        wait = param(request, "wait", WAIT)
        value = request.params.get("value")
        if value not in (None, "0", "1"):
            raise http.HTTPError(
                400, "bad-value", "value is 0 or 1: the value the pin is expected to leave"
            )
        pins = self.pins
        current = pins.backend.read(pin.gpio)
        value = current if value is None else int(value)
        if current != value or wait == 0:
            return {**pins.state(pin), "timeout": current == value}
        pending = Pending()
        watch = self.watches.watch(
            pin,
            value,
            current,
            wait,
            lambda timed_out, error: self._later(
                pending, lambda: {**pins.state(pin), "timeout": timed_out}, error
            ),
        )
        pending.on_cancel(lambda: self.watches.drop(watch))
        return pending

    def _later(
        self, pending: Pending, state: Callable[[], dict], error: Optional[GpioError]
    ) -> None:
        """Answer a reply that waited (a long-poll, a pulse's end, a pulse cut short):
        with `state()` read now, or with the board's error (`error` given, or raised by
        `state()`), which the dispatch makes a 500 `gpio-error`. It is sent in the
        loop's next step: resolving runs the requests queued behind it, which must not
        run in the middle of the request or timer that ended it (a batch whose write
        woke a long-poll)."""
        outcome: Any = error
        if error is None:
            try:
                outcome = state()
            except GpioError as err:
                outcome = err
        self.loop.call_soon(lambda: pending.resolve(outcome))


def command(body: bytes) -> tuple[str, Any]:
    """A pin's body as (kind, argument): 0, 1, true or false is ("value", 0 or 1); a
    JSON object with one key of COMMANDS is that key and its value, checked later by
    the command. 400 `bad-value` for anything else."""
    level = LEVELS.get(body)
    if level is not None:
        return "value", level
    value = _json(body)
    if isinstance(value, dict) and len(value) == 1:
        ((kind, argument),) = value.items()
        if kind in COMMANDS:
            return kind, argument
    if value in (0, 1) and not isinstance(value, float):
        return "value", int(value)
    raise http.HTTPError(400, "bad-value", BAD_BODY)


def _json(body: bytes) -> Any:
    """A body's JSON value, or None when it is not JSON: the caller says what it wants."""
    try:
        return http.parse_json(body)
    except ValueError:
        return None
