"""The pin domain: the declared pins, what they do, and the one source of their changes.

No URL is known here: the `/?gpio` room (manager/gpio.py) and the app API both come here.

Rules of this file:
- One `Pin` per declared pin holds what the server knows and does with it: its last
  announced level, its activity (a pulse, or a PWM wave), its watchers (the long-polls
  of watches.py) and its safe value. `gpio.Pin` is only its declaration.
- Every level the server sets (a write, a pulse's start and end, a safe value, the app,
  a simulated wire's `drive`), every new setting of a PWM wave and every change the
  sampler finds goes through one method, `Pins.changed`, the change source: listeners
  subscribe there (long-polls, event streams; MQTT later), and hear every change in
  the order it was made, as a `Change` that says what made it and when.
- A PWM wave's edges are not changes: its setting is (frequency, duty, running).
- Setting a level ends the pin's pulse or wave first: one activity per pin.
- Every change of what an output does is audited, one line on `httap.audit` ("who set
  this pin"); a repeat (the same level or wave again) writes none.
- Errors are `HTTPError`s with the status a request would get (404 unknown pin, 403 an
  undeclared GPIO, 409 the wrong mode, 400 a bad value; docs/protocol.md), so that the
  app API's mistakes become the fitting reply inside an action; `GpioError` is the
  board's refusal.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple, Optional

import gpio
from gpio.pwm import SYSFS_PWM, HardwareBoard, SoftPwm, hardware_channels
from httap.config import GPIO_NUMBER, PWM_DUTY, PWM_FREQUENCY, PinConfig, Range
from httap.http import HTTPError

log = logging.getLogger("httap.pins")
audit = logging.getLogger("httap.audit")

PULSE_TIME = Range(0, 60, "a number of seconds", above=True)
PWM_WIDTH = Range(0, 100, "a pulse width in seconds")  # at most the period, 1 / frequency
BAD_PWM = 'pwm takes {"frequency": HZ, "duty": 0..1} or {"frequency": HZ, "width": SECONDS}'
# What made a change, as an event's "cause" names it (docs/protocol.md, "Push"): a
# request's write, a pulse's edge, a safe value, an input's wire (the sampler, or a
# simulated wire's `drive`), the app.
WRITE, PULSE, SAFE, INPUT, APP = "write", "pulse", "safe", "input", "app"


class Cause(NamedTuple):
    """Who changed a pin, as the audit names them: the session's id, the client ("addr"
    or "addr user=NAME") and the request ("POST /?gpio/led"). None stands for the
    server's own doing (a safe value, a timer of the app)."""

    session: Any
    client: str
    request: str


Ended = Callable[[bool, Optional[gpio.GpioError]], Any]  # ended(interrupted, error)


class Pulse(NamedTuple):
    """A pulse running on a pin: its timer, the level it restores, `end` (what the timer
    runs: restore, then tell the owner) and the owner's `ended`."""

    timer: Any
    level: int
    end: Callable[[], None]
    ended: Ended


class Pin:
    """One declared pin in service. `spec` is its declaration (a `gpio.Pin`); `level` is
    the last level the change source announced, or that a watch read as it started
    (None before either); `pulse` and `wave` are its activity (a `Pulse`, a `SoftPwm`
    for mode "pwm"); `watchers` are the long-polls waiting on it (watches.py)."""

    __slots__ = (
        "gpio",
        "is_output",
        "level",
        "mode",
        "name",
        "pulse",
        "safe",
        "spec",
        "watchers",
        "wave",
    )

    def __init__(self, spec: gpio.Pin, wave: Optional[SoftPwm]) -> None:
        self.spec = spec
        self.name = spec.name
        self.gpio = spec.gpio
        self.mode = spec.mode
        self.safe = spec.safe
        self.is_output = spec.is_output
        self.level: Optional[int] = None
        self.wave = wave
        self.pulse: Optional[Pulse] = None
        self.watchers: list[Any] = []

    def __repr__(self) -> str:
        return f"<Pin {self.name} GPIO {self.gpio} {self.mode}>"


class Change(NamedTuple):
    """One announcement of the change source: `pin`; `level`, its level now (0 or 1),
    or None when its PWM wave got a new setting (read it from `pin.wave`); `kind`, what
    made it (WRITE, PULSE, SAFE, INPUT, APP); `time`, when, in seconds since the epoch
    (the board's own timestamp where it keeps one, else when the server learnt it);
    `repeat`, True when nothing changed (a write of the level the pin had): long-polls
    hear it, events leave it out."""

    pin: Pin
    level: Optional[int]
    kind: str
    time: float
    repeat: bool = False


Listener = Callable[[Change], Any]  # listener(change), on every change, in order


class Pins:
    """The declared pins on a board (`backend`), timed by `loop` (call_soon, call_later,
    call_at and clock); "pwm" pins on the SoC's PWM where their `pwm` key asks and the
    chip is under `sysfs_pwm` (gpio/pwm.py), and on the loop's timers otherwise. Raises
    GpioError when the board refuses a pin's set-up."""

    def __init__(
        self,
        declared: Mapping[str, PinConfig],
        backend: gpio.Backend,
        loop: Any,
        sysfs_pwm: str = SYSFS_PWM,
    ) -> None:
        wanted = {
            name: (spec.gpio, spec.pwm, spec.frequency)
            for name, spec in declared.items()
            if spec.mode == "pwm" and spec.pwm != "soft"
        }
        self.hardware = hardware_channels(wanted, sysfs_pwm, backend.name) if wanted else {}
        if self.hardware:
            backend = HardwareBoard(backend, self.hardware)  # type: ignore[assignment]
        self.backend = backend
        self.loop = loop
        self.by_name: dict[str, Pin] = {}
        self.by_number: dict[int, Pin] = {}
        self._listeners: list[Listener] = []
        # Who the app's writes are audited as: the request whose action is running (set
        # by the actions room around the call), else None: the server's own doing.
        self.cause: Optional[Cause] = None
        for name, spec in declared.items():
            self._set_up(
                gpio.Pin(
                    name,
                    spec.gpio,
                    spec.mode,
                    spec.pull,
                    spec.initial,
                    spec.safe,
                    spec.frequency,
                    spec.duty,
                    debounce=spec.debounce,
                )
            )

    def _set_up(self, spec: gpio.Pin) -> None:
        self.backend.setup(spec)
        wave: Any = None
        if spec.mode == "pwm":
            wave = self.hardware.get(spec.gpio) or SoftPwm(
                self.backend, spec.gpio, self.loop.call_at, self.loop.clock
            )
        pin = Pin(spec, wave)
        self.by_name[pin.name] = pin
        self.by_number[pin.gpio] = pin
        if wave is not None:
            wave.start(spec.frequency, spec.duty)

    # -- the change source ---------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(change)` on every change of a pin (a `Change`), in order."""
        self._listeners.append(listener)

    def changed(
        self,
        pin: Pin,
        level: Optional[int],
        kind: str = INPUT,
        repeat: bool = False,
        when: Optional[float] = None,
    ) -> None:
        """The one place a change is known, whatever made it (`kind`): `level` (0 or 1)
        becomes the pin's, or None for a new setting of its wave; `repeat` when the pin
        was so already. Every listener hears it, with the time it happened: `when` (in
        seconds since the epoch: a kernel edge's own time), else the board's stamp."""
        if level is not None:
            pin.level = level
            if when is None:
                when = self.backend.stamp(pin.gpio)
        change = Change(pin, level, kind, time.time() if when is None else when, repeat)
        for listener in self._listeners:
            listener(change)

    # -- finding and reading -------------------------------------------------------

    def find(self, name: str) -> Pin:
        """A declared pin by name or GPIO number (every lookup comes here: one pin, a
        batch, a long-poll, the app API). A name no pin has, or a number no GPIO has, is
        404 `unknown-pin` listing the declared names; a GPIO that exists but is not
        declared is 403 `not-declared` (docs/protocol.md)."""
        pin = self.by_name.get(name)
        if pin is not None:
            return pin
        number = None
        if name.isascii() and name.isdigit() and len(name) <= 9:  # "0017" is 17
            number = int(name)
        if GPIO_NUMBER.holds(number):
            pin = self.by_number.get(number)
            if pin is None:
                raise HTTPError(
                    403,
                    "not-declared",
                    f"pin {name!r} (GPIO {number}) is not declared; declare it in web.json5,"
                    f' e.g. gpio: {{pins: {{led: {{gpio: {number}, mode: "out"}}}}}}',
                )
            return pin
        names = ", ".join(sorted(self.by_name)) or "none"
        raise HTTPError(
            404,
            "unknown-pin",
            f"no pin is named {shown(name)}; the declared pins are: {names} (gpio.pins in"
            f" web.json5), each also reached by its GPIO number ({GPIO_NUMBER.low}"
            f" to {GPIO_NUMBER.high})",
        )

    def state(self, pin: Pin) -> dict:
        """What `GET /?gpio/NAME` answers: {"gpio", "mode", "value"} and, for a "pwm"
        pin, "pwm": {"frequency", "duty", "running", "kind"} ("hardware" or "soft"). The
        level is read from the board."""
        state = {"gpio": pin.gpio, "mode": pin.mode, "value": self.backend.read(pin.gpio)}
        wave = pin.wave
        if wave is not None:
            state["pwm"] = {
                "frequency": wave.frequency,
                "duty": wave.duty,
                "running": wave.running,
                "kind": wave.kind,
            }
        return state

    def output(self, pin: Pin) -> Any:
        """What a pin does now, as the audit shows it: its wave while PWM runs
        ("pwm 0.5 at 440 Hz"), else its level (0 or 1)."""
        wave = pin.wave
        if wave is not None and wave.running:
            return f"pwm {wave.duty:g} at {wave.frequency:g} Hz"
        return self.backend.read(pin.gpio)

    # -- checks of what is asked ----------------------------------------------------

    def writable(self, pin: Pin) -> None:
        """409 `mode-conflict` for an input: only outputs are written."""
        if not pin.is_output:
            sim = ' (on the simulated board, {"drive": 0} sets its wire)'
            raise HTTPError(
                409,
                "mode-conflict",
                f"pin {pin.name} is an input and cannot be written; declare it with"
                f' mode "out" to drive it{sim if self.backend.simulated else ""}',
            )

    @staticmethod
    def level_of(value: Any, pin: Pin) -> int:
        """A level as a request or the app gives it (0, 1, true, false); 400 otherwise."""
        if value in (0, 1) and not isinstance(value, float):
            return int(value)
        raise HTTPError(
            400,
            "bad-value",
            f"pin {pin.name}: a value is 0, 1, true or false, not {shown(value)}",
        )

    # -- changes --------------------------------------------------------------------

    def set(
        self, pin: Pin, level: int, cause: Optional[Cause], note: str = "", kind: str = WRITE
    ) -> None:
        """Drive an output to `level` (or set an input's wire on the simulated board):
        ends any pulse or PWM on it, announces the level as made by `kind`, and is
        audited with `cause` and `note` ("pulse end", "app"). GpioError if the board
        refuses."""
        old = self.output(pin)
        self.stop_activity(pin)
        if pin.is_output:
            self.backend.write(pin.gpio, level)
        else:
            self.backend.drive(pin.gpio, level)
        self.changed(pin, level, kind, old == level)
        _audit(pin, old, level, cause, note)

    def pulse(
        self,
        pin: Pin,
        seconds: Any,
        cause: Optional[Cause],
        ended: Ended,
    ) -> None:
        """Invert an "out" pin for `seconds` (PULSE_TIME), then restore its level. `ended(
        interrupted, error)` is called once: at the end (after the restore; `error` if the
        board refused it), or, with interrupted True, in the loop's next step after a
        change that cut the pulse short. A pulse over a pulse restores the first one's
        level. 409 for another mode, 400 for a duration out of range."""
        if pin.mode != "out":
            raise HTTPError(
                409, "mode-conflict", f'pin {pin.name} is {pin.mode}: pulses need mode "out"'
            )
        check(seconds, PULSE_TIME, "a pulse")
        active = pin.pulse
        level = active.level if active is not None else self.backend.read(pin.gpio)
        self.set(pin, 1 - level, cause, f"pulse {seconds:g} s", PULSE)

        def end() -> None:
            pin.pulse = None
            try:
                self.set(pin, level, cause, "pulse end", PULSE)
            except gpio.GpioError as err:
                ended(False, err)
                return
            ended(False, None)

        pin.pulse = Pulse(self.loop.call_later(seconds, end), level, end, ended)

    def stop_activity(self, pin: Pin) -> None:
        """End the pin's pulse (its owner hears it was cut short, in the next step) and
        its wave, leaving the level as it is."""
        pulse = pin.pulse
        if pulse is not None:
            pin.pulse = None
            pulse.timer.cancel()
            self.loop.call_soon(lambda: pulse.ended(True, None))
        if pin.wave is not None:
            pin.wave.stop()

    def set_pwm(
        self,
        pin: Pin,
        setting: Any,
        cause: Optional[Cause],
        note: str = "",
        kind: str = WRITE,
    ) -> None:
        """Start or change the wave of a "pwm" pin: `setting` is {"frequency": HZ,
        "duty": 0..1} or, for a servo, {"frequency": HZ, "width": SECONDS}, the high
        time of each period (PWM_WIDTH, at most the period); either one kept when absent
        (PWM_FREQUENCY, PWM_DUTY: a new frequency keeps the duty); announced as made by
        `kind`. 409 for another mode, 400 for another shape or a number out of range."""
        wave = pin.wave
        if wave is None:
            raise HTTPError(
                409, "mode-conflict", f'pin {pin.name} is {pin.mode}: PWM needs mode "pwm"'
            )
        keys = set(setting) if isinstance(setting, dict) else {"-"}
        if keys - {"frequency", "duty", "width"} or {"duty", "width"} <= keys:
            raise HTTPError(400, "bad-value", BAD_PWM)
        frequency = setting.get("frequency", wave.frequency or pin.spec.frequency)
        check(frequency, PWM_FREQUENCY, "pwm frequency")
        if "width" in setting:
            width = setting["width"]
            check(width, PWM_WIDTH, "pwm width")
            if width * frequency > 1 + 1e-9:  # rounding: 0.02 s at 50 Hz is a whole period
                raise HTTPError(
                    400,
                    "bad-value",
                    f"pwm width is at most the period, 1 / frequency: {1 / frequency:g} s"
                    f" at {frequency:g} Hz, not {width:g} s",
                )
            duty = min(1.0, width * frequency)
        else:
            duty = setting.get("duty", wave.duty)
        check(duty, PWM_DUTY, "pwm duty")
        old = self.output(pin)
        was = (wave.frequency, wave.duty, wave.running)
        self.stop_activity(pin)
        wave.start(float(frequency), float(duty))
        new = self.output(pin)
        self.changed(
            pin, None, kind, old == new and was == (wave.frequency, wave.duty, wave.running)
        )
        _audit(pin, old, new, cause, note)

    def apply_safe_values(self) -> None:
        """The driver went away: every output with a `safe` value goes to it."""
        for pin in self.by_name.values():  # one pin failing must not leave the others running
            if pin.safe is None:
                continue
            try:
                self.set(pin, pin.safe, None, "safe value", SAFE)
            except gpio.GpioError as err:
                log.error("cannot set %s to its safe value %d: %s", pin.name, pin.safe, err)

    def end_pulses(self) -> None:
        """End every pulse now (the server stops): levels restored, owners told."""
        for pin in list(self.by_name.values()):
            pulse = pin.pulse
            if pulse is not None:
                pulse.timer.cancel()
                pulse.end()

    def close(self) -> None:
        """The server stops: outputs go to their safe values, the board is released.

        Safe values first: each one ends its pin's pulse or wave, and is audited against
        what the pin was doing; then the pulses and waves of pins without one stop."""
        self.apply_safe_values()
        for pin in self.by_name.values():
            self.stop_activity(pin)
        self.backend.close()

    # -- the app API -------------------------------------------------------------------
    # The same checks and effects as the requests; an app's change is audited as the
    # request whose action makes it (`cause`), else as the server's, with the note "app".

    def declared(self, name: Any) -> gpio.Pin:
        """A declared pin's declaration, by name or GPIO number."""
        return self.find(str(name)).spec

    def state_of(self, name: Any) -> dict:
        """What `GET /?gpio/NAME` answers: gpio, mode, value (and pwm)."""
        return self.state(self.find(str(name)))

    def write(self, name: Any, value: Any) -> None:
        """Drive an output to 0 or 1 (true and false too)."""
        pin = self.find(str(name))
        self.writable(pin)
        self.set(pin, self.level_of(value, pin), self.cause, "app", APP)

    def pwm(
        self,
        name: Any,
        frequency: Optional[float] = None,
        duty: Optional[float] = None,
        width: Optional[float] = None,
    ) -> None:
        """Start (or change) the wave of a "pwm" pin; None keeps a setting; `width` (in
        seconds) instead of `duty` for a servo."""
        given = (("frequency", frequency), ("duty", duty), ("width", width))
        setting = {key: value for key, value in given if value is not None}
        self.set_pwm(self.find(str(name)), setting, self.cause, "app", APP)


def _audit(pin: Pin, old: Any, new: Any, cause: Optional[Cause], note: str) -> None:
    """One line per hardware change, always: it answers "who set this pin". A write
    that leaves the output as it was (`old == new`) is a repeat, not a change: no line.
    Nothing is built when `httap.audit` is filtered out (a log level above info)."""
    if old == new or not audit.isEnabledFor(logging.INFO):
        return
    if cause is None:
        session = client = "-"
        why = note
    else:
        session, client = cause.session, cause.client
        why = cause.request + (f", {note}" if note else "")
    audit.info("s=%s %s %s %s -> %s (%s)", session, client, pin.name, old, new, why)


def shown(value: Any) -> str:
    """A value from a request as a message quotes it: as JSON, cut short if long."""
    try:
        text = json.dumps(value)
    except ValueError:  # a whole number past Python's 4,300 digits
        text = "a huge number"
    return text if len(text) <= 40 else text[:37] + "..."


def check(value: Any, span: Range, what: str) -> None:
    """A number from a request body or the app API: 400 giving the range when outside."""
    if not span.holds(value):
        raise HTTPError(400, "bad-value", f"{what} is {span}")
