"""The HTTaP domain: `/?` dispatch, the standard vocabulary and user actions.

A dynamic target is `/?PATH[&PARAMS]`: PATH is percent-decoded and split on `/`,
PARAMS is form-encoded. The first segment picks the handler: "" (discovery), `ping…`,
`gpio`, `serial`, `stats`, `loop`, or a registered user action. Every reply is JSON
(unless it is raw bytes) with the headers docs/protocol.md requires; errors are
`{"error", "message"}`.

A handler that must wait (long-poll, pulse, a user's pending reply) returns a `Pending`;
its connection holds back its later requests until the reply is resolved, and other
connections go on.
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import TYPE_CHECKING, Any, Callable, Optional, Union
from urllib.parse import parse_qsl, unquote

import gpio
from gpio.pwm import SoftPwm
from httap import __version__, http
from httap.config import GPIO_NUMBER, PWM_DUTY, PWM_FREQUENCY, WAIT, Range
from httap.connection import Pending
from httap.loop import MODES
from httap.serialport import Job, SerialPort
from httap.session import Busy, Lease, Session

if TYPE_CHECKING:
    from httap.connection import Connection
    from httap.server import Server

log = logging.getLogger("httap.manager")
audit = logging.getLogger("httap.audit")

HTTAP_VERSION = "1.0"
# Expires is a date in the past: the original's "0" is no HTTP-date (RFC 9111 section 5.3).
NO_CACHE = [
    ("Cache-Control", "no-cache, no-store, must-revalidate"),
    ("Expires", http.http_date(0)),
]
STANDARD = ("gpio", "loop", "serial", "stats")
PIN_METHODS = "GET, HEAD, POST, PUT"
ACTION_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH")
READ_METHODS = "GET, HEAD"
SERIAL_PARAMS = {"wait", "until", "count"}
EXPOSED = "HTTaP-Session, Retry-After, HTTaP-Serial-Timeout, HTTaP-Serial-Dropped"
VARY_ORIGIN = b"Vary: Origin\r\n"
MAX_ORIGINS = 64  # origins whose CORS lines are remembered; cleared when full
# How long a written value holds on a pin with a `safe` value, by session.exclusive: the
# lease's release applies the safe values (session.py), and a write's reply says when.
HOLDS = {
    "client": "until this client's last connection closes",
    "connection": "until this connection closes",
    "off": "until the server stops",
}
PULSE = Range(0, 60, "a number of seconds", above=True)
# A number in a query parameter: plain decimal digits, no sign or exponent.
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")

Reply = Union[http.Response, Pending]
_to_json = json.JSONEncoder(separators=(",", ":")).encode


def json_response(
    status: int, value: Any, session: Optional[Session], headers: tuple = ()
) -> http.Response:
    """A dynamic reply: the JSON body and the headers every dynamic reply carries."""
    body = _to_json(value).encode()
    return http.Response(
        status, [("Content-Type", "application/json"), *_dynamic(session), *headers], body
    )


def _dynamic(session: Optional[Session]) -> list[tuple[str, str]]:
    return [*NO_CACHE, ("HTTaP-Session", str(session.id if session else 0))]


def fail(status: int, code: str, message: str, headers: tuple = ()) -> http.HTTPError:
    return http.HTTPError(status, code, message, headers)


class Action:
    __slots__ = ("function", "methods", "name")

    def __init__(self, name: str, function: Callable, methods: tuple[str, ...]) -> None:
        self.name = name
        self.function = function
        self.methods = methods


class Watch:
    """A long-poll on one pin: answers when the value differs from `value`, or at timeout."""

    __slots__ = ("pending", "pin", "request", "timer", "value")

    def __init__(self, pin: gpio.Pin, value: int, pending: Pending, request: http.Request) -> None:
        self.pin = pin
        self.value = value
        self.pending = pending
        self.request = request
        self.timer: Any = None


class Manager:
    """Answers `/?` requests; owns the GPIO backend, the sessions and the lease."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.loop = server.loop
        self.config = server.config
        self.actions: dict[str, Action] = {}
        self.requests = 0
        self.accepted = 0
        self._origins = self.config.cors.origins
        self._cors_lines: dict[str, bytes] = {}  # origin -> its CORS header lines
        self.lease = Lease(self.config.session.exclusive, self._apply_safe_values)
        self.backend = gpio.open_backend(self.config.gpio.backend)
        self.pins: dict[str, gpio.Pin] = {}
        self.by_number: dict[int, gpio.Pin] = {}
        self.pwm: dict[int, SoftPwm] = {}
        # gpio -> (timer ending the pulse, its Pending, its request, the level to restore)
        self.pulses: dict[int, tuple[Any, Pending, http.Request, int]] = {}
        self.watches: dict[int, list[Watch]] = {}
        self.sampled: dict[int, int] = {}  # last value seen by the sampler
        self.sampler: Any = None
        # The request being handled: an app's write made during it is audited as its own.
        self.current: Optional[http.Request] = None
        for name, spec in self.config.gpio.pins.items():
            self._setup_pin(
                gpio.Pin(
                    name,
                    spec.gpio,
                    spec.mode,
                    spec.pull,
                    spec.initial,
                    spec.safe,
                    spec.frequency,
                    spec.duty,
                )
            )

    def _setup_pin(self, pin: gpio.Pin) -> None:
        self.backend.setup(pin)
        self.pins[pin.name] = pin
        self.by_number[pin.gpio] = pin
        if pin.mode == "pwm":
            driver = SoftPwm(self.backend, pin.gpio, self.loop.call_at, self.loop.clock)
            self.pwm[pin.gpio] = driver
            driver.start(pin.frequency, pin.duty)

    # -- sessions ----------------------------------------------------------------

    def connection_opened(self, connection: Connection) -> None:
        self.accepted += 1
        session = Session(connection.client, self.loop.now)
        connection.session = session
        self.lease.opened(session)

    def connection_closed(self, connection: Connection) -> None:
        session = connection.session
        if session is not None:
            session.close()
            self.lease.closed(session)

    def _apply_safe_values(self) -> None:
        """The driver went away: every output with a `safe` value goes to it."""
        safe = [pin for pin in self.pins.values() if pin.safe is not None]
        for pin in safe:  # one pin failing must not leave the others running
            try:
                self._set(pin, pin.safe, None, "safe value")
            except gpio.GpioError as err:
                log.error("cannot set %s to its safe value %d: %s", pin.name, pin.safe, err)

    # -- dispatch ----------------------------------------------------------------

    def handle(self, request: http.Request) -> Reply:
        self.requests += 1
        session: Session = request.session
        now = self.loop.now
        idle = now - session.last_active  # the connection stamps this request once routed
        self.current = request
        try:
            path, _, query = request.target[2:].partition("&")
            try:
                request.path = unquote(path, errors="strict") if "%" in path else path
            except UnicodeDecodeError:
                raise fail(400, "bad-path", "the path is not valid UTF-8 once decoded") from None
            request.params = _params(query) if query else {}
            if request.method == "OPTIONS":
                return self._preflight(request)
            if request.method not in ("GET", "HEAD"):
                self._check_origin(request)
            reply = self._dispatch(request, idle)
        except http.HTTPError as err:
            reply = json_response(
                err.status, {"error": err.code, "message": err.message}, session, err.headers
            )
        except Busy as busy:
            reply = self._busy(busy, session, now)
        except gpio.GpioError as err:
            reply = self._gpio_failure(request, err)
        except Exception:
            log.exception("handler failed for %s %s", request.method, request.target)
            reply = json_response(
                500,
                {
                    "error": "handler-failed",
                    "message": "the handler raised an exception; see the server log",
                },
                session,
            )
        finally:
            self.current = None
        return reply

    def _dispatch(self, request: http.Request, idle: float) -> Reply:
        path = request.path
        first = path.split("/", 1)[0]
        if path == "":
            self._allow(request, READ_METHODS)
            return self._ok(request, self._discovery(request.session))
        if first.startswith("ping"):
            self._allow(request, READ_METHODS)
            timeout = self.config.timeouts.inactivity
            remain = round(max(0.0, timeout - idle), 3)
            return self._ok(request, {"Remain": remain, "Timeout": timeout})
        if first == "gpio":
            return self._gpio(request, path[5:])
        if first == "serial":
            return self._serial(request, path[7:])
        if first == "stats":
            self._allow(request, READ_METHODS)
            return self._ok(request, self._stats())
        if first == "loop":
            if path != "loop":
                raise fail(404, "not-found", f"no such resource: /?{path}; the loop is /?loop")
            return self._ok(request, {"mode": self._loop_mode(request)})
        action = self.actions.get(path)
        if action is not None:
            return self._action(request, action)
        raise fail(404, "not-found", f"no such resource: /?{path}; GET /? lists the services")

    @staticmethod
    def _gpio_failure(request: http.Request, err: gpio.GpioError) -> http.Response:
        log.error("GPIO failure for %s %s: %s", request.method, request.target, err)
        return json_response(500, {"error": "gpio-error", "message": str(err)}, request.session)

    @staticmethod
    def _allow(request: http.Request, allowed: str) -> None:
        if request.method not in allowed.split(", "):
            raise fail(
                405,
                "method-not-allowed",
                f"{request.method} is not allowed here; use {allowed}",
                (("Allow", allowed),),
            )

    @staticmethod
    def _ok(request: http.Request, value: Any) -> http.Response:
        return json_response(200, value, request.session)

    def _discovery(self, session: Session) -> dict:
        services = ["files", "gpio"]
        if self.config.serial:
            services.append("serial")
        services.extend(sorted(self.actions))
        return {
            "HTTaP_version": HTTAP_VERSION,
            "ID": self.config.id,
            "Server": f"httap/{__version__}",
            "Services": services,
            "Serial": sorted(self.config.serial),
            "Simulated": self.backend.simulated,
            "Timeout": self.config.timeouts.inactivity,
            "Session": session.id,
        }

    def _stats(self) -> dict:
        stats = {
            **self.loop.stats(),
            "requests": self.requests,
            "connections": {"open": len(self.server.connections), "accepted": self.accepted},
            "uptime": round(self.loop.clock() - self.loop.started, 3),
        }
        auth = self.server.auth
        if auth is not None:  # how many passwords were checked, how many requests refused
            stats["auth"] = {"checks": auth.checks, "refused": auth.refused}
        return stats

    def _loop_mode(self, request: http.Request) -> str:
        """GET reads the loop's mode; POST `{"mode": "spin"}` sets it.

        Setting it needs the lease, like a pin write: spinning changes how the hardware
        is timed (and what the device's CPU does).
        """
        self._allow(request, "GET, HEAD, POST")
        if request.method == "POST":
            body = request.json()
            mode = body.get("mode") if isinstance(body, dict) else None
            if mode not in MODES:
                raise fail(
                    400, "bad-value", 'the body must be {"mode": "sleep"} or {"mode": "spin"}'
                )
            self.lease.acquire(
                request.session,
                self.loop.now,
                "setting the loop's mode is refused (it changes how the hardware is timed);"
                " GET /?loop stays open",
            )
            self.loop.mode = mode
        return self.loop.mode

    def _busy(self, busy: Busy, session: Session, now: float) -> http.Response:
        timeout = self.config.timeouts.inactivity
        retry = max(1, math.ceil(timeout - self.lease.holder_idle(now)))
        return json_response(
            503,
            {
                "error": "busy",
                "message": f"another client drives the hardware: {busy.holder}, for"
                f" {busy.held_for:.1f} s, until it lets go (at most {timeout:g} s after its"
                f" last request); {busy.what}",
                "holder": busy.holder,
                "held_for": round(busy.held_for, 3),
            },
            session,
            (("Retry-After", str(retry)),),
        )

    # -- CORS --------------------------------------------------------------------

    def _origin_allowed(self, origin: Optional[str]) -> bool:
        origins = self._origins
        return origin is not None and ("*" in origins or origin in origins)

    def _check_origin(self, request: http.Request) -> None:
        """A browser names the page behind every write (`Origin`). A page from elsewhere
        may not drive the device, not even with a "simple" request that skips the CORS
        preflight; clients without a browser send no Origin and are not concerned."""
        origin = request.headers.get("origin")
        if origin is None or self._origin_allowed(origin):
            return
        if origin.partition("://")[2] == request.authority:
            return  # the page this server served
        raise fail(
            403,
            "origin-not-allowed",
            f"a page from {origin} may not drive this device; add it to cors.origins",
        )

    def cors_headers(self, request: http.Request, response: http.Response) -> bytes:
        """The CORS header lines of every reply to `request`, whoever made it (a gate,
        the files, this domain, a protocol error once the head is read): the connection
        adds them as it queues the reply. With `cors.origins` set, every reply says
        `Vary: Origin`; one to an allowed origin also names it in
        Access-Control-Allow-Origin, exposes the HTTaP headers, and, when `auth` is on
        and the origin is listed by name (not through "*"), says
        Access-Control-Allow-Credentials: true (Fetch standard, "CORS protocol"). A reply
        that names its own Access-Control-Allow-Origin (an action's) keeps it. Used only
        when `cors.origins` is set."""
        origin = request.headers.get("origin")
        if origin is None:
            return VARY_ORIGIN
        lines = self._cors_lines.get(origin)
        if lines is None:
            lines = self._cors_lines_for(origin)
        if lines is not VARY_ORIGIN and response.header("access-control-allow-origin"):
            return VARY_ORIGIN
        return lines

    def _cors_lines_for(self, origin: str) -> bytes:
        """The lines for one origin, remembered (a bounded memo: origins are few)."""
        lines = VARY_ORIGIN
        if self._origin_allowed(origin):
            credentials = self.server.auth is not None and origin in self._origins
            lines = (
                f"Access-Control-Allow-Origin: {origin}\r\n"
                f"Access-Control-Expose-Headers: {EXPOSED}\r\n"
                + ("Access-Control-Allow-Credentials: true\r\n" if credentials else "")
            ).encode("latin-1") + VARY_ORIGIN
        if len(self._cors_lines) >= MAX_ORIGINS:
            self._cors_lines.clear()
        self._cors_lines[origin] = lines
        return lines

    def _preflight(self, request: http.Request) -> http.Response:
        allow = [("Allow", PIN_METHODS + ", OPTIONS")]
        origin = request.headers.get("origin")
        if origin is None:
            return http.Response(204, [*_dynamic(request.session), *allow])
        if not self._origin_allowed(origin):
            raise fail(
                403,
                "origin-not-allowed",
                f"origin {origin} may not call this server; add it to cors.origins",
            )
        headers = request.headers.get("access-control-request-headers", "Content-Type")
        return http.Response(
            204,
            [
                *_dynamic(request.session),
                *allow,
                ("Access-Control-Allow-Methods", PIN_METHODS + ", OPTIONS"),
                ("Access-Control-Allow-Headers", headers),
                ("Access-Control-Max-Age", "600"),
            ],
        )

    # -- GPIO --------------------------------------------------------------------

    def _gpio(self, request: http.Request, name: str) -> Reply:
        if not name:
            self._allow(request, "GET, HEAD, POST")
            if request.method == "POST":
                return self._ok(request, {"pins": self._batch(request)})
            return self._ok(request, {"pins": {n: self._state(p) for n, p in self.pins.items()}})
        if "/" in name:
            raise fail(404, "not-found", f"no such resource: /?gpio/{name}; pins are /?gpio/NAME")
        pin = self._pin(name)
        self._allow(request, PIN_METHODS)
        if request.method in ("GET", "HEAD"):
            if "wait" in request.params:
                return self._long_poll(request, pin)
            return self._ok(request, self._state(pin))
        command = self._body_value(request)
        if "drive" in command:
            self._drivable(pin)
            refused = f"driving pin {pin.name} is refused; reading pins stays open"
        else:
            self._writable(pin)
            refused = f"writing pin {pin.name} is refused; reading pins stays open"
        self.lease.acquire(request.session, self.loop.now, refused)
        return self._write(request, pin, command)

    def _pin(self, name: str) -> gpio.Pin:
        """A declared pin by name or GPIO number (every lookup comes here: one pin, a
        batch, a long-poll, the app API). A name no pin has, or a number no GPIO has, is
        404 `unknown-pin` listing the declared names; a GPIO that exists but is not
        declared is 403 `not-declared` (docs/protocol.md)."""
        pin = self.pins.get(name)
        if pin is not None:
            return pin
        number = None
        if name.isascii() and name.isdigit() and len(name) <= 9:  # "0017" is 17
            number = int(name)
        if GPIO_NUMBER.holds(number):
            pin = self.by_number.get(number)
            if pin is None:
                raise fail(
                    403,
                    "not-declared",
                    f"pin {name!r} (GPIO {number}) is not declared; declare it in web.json5,"
                    f' e.g. gpio: {{pins: {{led: {{gpio: {number}, mode: "out"}}}}}}',
                )
            return pin
        names = ", ".join(sorted(self.pins)) or "none"
        raise fail(
            404,
            "unknown-pin",
            f"no pin is named {_shown(name)}; the declared pins are: {names} (gpio.pins in"
            f" web.json5), each also reached by its GPIO number ({GPIO_NUMBER.low}"
            f" to {GPIO_NUMBER.high})",
        )

    def _writable(self, pin: gpio.Pin) -> None:
        if not pin.is_output:
            sim = ' (on the simulated board, {"drive": 0} sets its wire)'
            raise fail(
                409,
                "mode-conflict",
                f"pin {pin.name} is an input and cannot be written; declare it with"
                f' mode "out" to drive it{sim if self.backend.simulated else ""}',
            )

    def _drivable(self, pin: gpio.Pin) -> None:
        """`{"drive": V}` sets the wire of an input, as a button would: on the simulated
        board only, whose wires are in memory; a real board's inputs follow real wires."""
        if not self.backend.simulated:
            raise fail(
                409,
                "sim-only",
                f'{{"drive": V}} is only for the simulated board (gpio.backend "sim"); this'
                f" board is {self.backend.name}, where pin {pin.name} follows its real wire",
            )
        if pin.is_output:
            raise fail(
                409,
                "mode-conflict",
                f"pin {pin.name} is an output: its level is what the server drives, so"
                ' there is no wire to set; write it with 0, 1 or {"value": 1}',
            )

    def _written(self, pin: gpio.Pin) -> dict:
        """The reply to a write: the pin's state, plus, for a pin with a `safe` value,
        that value and how long the written one holds (HOLDS, by session.exclusive)."""
        state = self._state(pin)
        if pin.safe is not None:
            state["safe"] = pin.safe
            state["holds"] = HOLDS[self.lease.mode]
        return state

    def _state(self, pin: gpio.Pin) -> dict:
        state = {"gpio": pin.gpio, "mode": pin.mode, "value": self.backend.read(pin.gpio)}
        driver = self.pwm.get(pin.gpio)
        if driver is not None:
            state["pwm"] = {
                "frequency": driver.frequency,
                "duty": driver.duty,
                "running": driver.running,
            }
        return state

    def _body_value(self, request: http.Request) -> Any:
        """0, 1, true, false or a JSON object with one of value, pulse, pwm."""
        try:
            value = http.parse_json(request.body)
        except ValueError:
            value = None
        if (
            isinstance(value, dict)
            and len(value) == 1
            and next(iter(value)) in ("value", "pulse", "pwm", "drive")
        ):
            return value
        if value in (0, 1) and not isinstance(value, float):
            return {"value": int(value)}
        raise fail(
            400,
            "bad-value",
            "the body must be 0, 1, true, false, or a JSON object such as"
            ' {"value": 1}, {"pulse": 0.2} or {"pwm": {"frequency": 440, "duty": 0.5}}',
        )

    def _write(self, request: http.Request, pin: gpio.Pin, command: dict) -> Reply:
        ((kind, argument),) = command.items()
        if kind in ("value", "drive"):
            self._set(pin, self._level(argument, pin), request, "drive" if kind == "drive" else "")
            return self._ok(request, self._written(pin))
        if kind == "pulse":
            return self._pulse(request, pin, argument)
        return self._start_pwm(request, pin, argument)

    @staticmethod
    def _level(value: Any, pin: gpio.Pin) -> int:
        if value in (0, 1) and not isinstance(value, float):
            return int(value)
        raise fail(
            400,
            "bad-value",
            f"pin {pin.name}: a value is 0, 1, true or false, not {_shown(value)}",
        )

    def _set(
        self, pin: gpio.Pin, value: int, cause: Optional[http.Request], note: str = ""
    ) -> None:
        """Drive an output (or set an input's wire on the simulated board: `_drivable`):
        ends any pulse or PWM on it, wakes its long-polls, and is audited with `cause`,
        the request behind it (None: the server's own doing)."""
        old = self._output(pin)
        self._stop_activity(pin.gpio)
        if pin.is_output:
            self.backend.write(pin.gpio, value)
        else:
            self.backend.drive(pin.gpio, value)
        self._notify(pin.gpio, value)
        self._audit(pin, old, value, cause, note)

    def _output(self, pin: gpio.Pin) -> Any:
        """What a pin does now, as the audit shows it: its wave while PWM runs
        ("pwm 0.5 at 440 Hz"), else its level (0 or 1)."""
        driver = self.pwm.get(pin.gpio)
        if driver is not None and driver.running:
            return _wave(driver)
        return self.backend.read(pin.gpio)

    @staticmethod
    def _audit(pin: gpio.Pin, old: Any, new: Any, cause: Optional[http.Request], note: str) -> None:
        """One line per hardware change, always: it answers "who set this pin". A write
        that leaves the output as it was (`old == new`) is a repeat, not a change: no line."""
        if old == new:
            return
        if cause is None:
            session = client = "-"
            why = note
        else:
            session = getattr(cause.session, "id", "-")
            client = cause.client[0] if cause.client else "-"
            if cause.user is not None:
                client += f" user={cause.user}"
            why = f"{cause.method} {cause.target}" + (f", {note}" if note else "")
        audit.info("s=%s %s %s %s -> %s (%s)", session, client, pin.name, old, new, why)

    def _stop_activity(self, number: int) -> None:
        pulse = self.pulses.pop(number, None)
        if pulse is not None:
            # Cut short (a write, safe values): its request is still answered, with the
            # state after the write that cut it, once that write has finished.
            timer, pending, request, _ = pulse
            timer.cancel()
            pin = self.by_number[number]
            self.loop.call_soon(
                lambda: self._answer(
                    pending, request, lambda: {**self._written(pin), "interrupted": True}
                )
            )
        driver = self.pwm.get(number)
        if driver is not None:
            driver.stop()

    def _pulse(self, request: http.Request, pin: gpio.Pin, seconds: Any) -> Pending:
        if pin.mode != "out":
            raise fail(
                409, "mode-conflict", f'pin {pin.name} is {pin.mode}: pulses need mode "out"'
            )
        _check(seconds, PULSE, "a pulse")
        active = self.pulses.get(pin.gpio)  # a pulse during a pulse: same level to restore
        level = active[3] if active is not None else self.backend.read(pin.gpio)
        self._set(pin, 1 - level, request, f"pulse {seconds:g} s")
        pending = Pending()

        def restored() -> dict:
            self._set(pin, level, request, "pulse end")
            return self._written(pin)

        def end() -> None:
            self.pulses.pop(pin.gpio, None)
            self._answer(pending, request, restored)

        timer = self.loop.call_later(seconds, end)
        self.pulses[pin.gpio] = (timer, pending, request, level)
        return pending

    def _start_pwm(self, request: http.Request, pin: gpio.Pin, setting: Any) -> http.Response:
        self._apply_pwm(pin, setting, request)
        return self._ok(request, self._written(pin))

    def _apply_pwm(
        self, pin: gpio.Pin, setting: Any, cause: Optional[http.Request], note: str = ""
    ) -> None:
        driver = self.pwm.get(pin.gpio)
        if driver is None:
            raise fail(409, "mode-conflict", f'pin {pin.name} is {pin.mode}: PWM needs mode "pwm"')
        if not isinstance(setting, dict) or set(setting) - {"frequency", "duty"}:
            raise fail(400, "bad-value", 'pwm takes {"frequency": HZ, "duty": 0..1}')
        frequency = setting.get("frequency", driver.frequency or pin.frequency)
        duty = setting.get("duty", driver.duty)
        _check(frequency, PWM_FREQUENCY, "pwm frequency")
        _check(duty, PWM_DUTY, "pwm duty")
        old = self._output(pin)
        self._stop_activity(pin.gpio)
        driver.start(float(frequency), float(duty))
        self._audit(pin, old, self._output(pin), cause, note)

    # -- the pins for applications ------------------------------------------------
    # The same checks and effects as the requests: a write ends a pulse or PWM on the pin
    # and wakes its long-polls. Errors are HTTPErrors, so inside an action they become
    # the fitting reply (403 undeclared, 409 wrong mode, 400 bad value).

    def pin(self, name: str) -> gpio.Pin:
        """A declared pin, by name or GPIO number."""
        return self._pin(str(name))

    def state(self, name: str) -> dict:
        """What `GET /?gpio/NAME` answers: gpio, mode, value (and pwm)."""
        return self._state(self.pin(name))

    def write(self, name: str, value: Any) -> None:
        """Drive an output to 0 or 1 (true and false too)."""
        pin = self.pin(name)
        self._writable(pin)
        self._set(pin, self._level(value, pin), self.current, "app")

    def set_pwm(
        self, name: str, frequency: Optional[float] = None, duty: Optional[float] = None
    ) -> None:
        """Start (or change) the bit-banged wave of a "pwm" pin; None keeps a setting."""
        setting = {
            key: value
            for key, value in (("frequency", frequency), ("duty", duty))
            if value is not None
        }
        self._apply_pwm(self.pin(name), setting, self.current, "app")

    def _batch(self, request: http.Request) -> dict:
        """`POST /?gpio {"a": 1, "b": 0}`: checked whole, then applied in order in this tick."""
        try:
            writes = http.parse_json(request.body)
        except ValueError:
            writes = None
        if not isinstance(writes, dict) or not writes:
            raise fail(
                400,
                "bad-value",
                'a batch is a JSON object of pin names and values, e.g. {"led": 1, "motor": 0}',
            )
        plan = []
        for name, value in writes.items():
            pin = self._pin(name)
            self._writable(pin)
            if isinstance(value, dict) and set(value) == {"value"}:
                value = value["value"]
            plan.append((pin, self._level(value, pin)))
        names = ", ".join(pin.name for pin, _ in plan)
        self.lease.acquire(
            request.session,
            self.loop.now,
            f"writing pins {names} is refused; reading pins stays open",
        )
        for pin, level in plan:
            self._set(pin, level, request)
        return {pin.name: self._written(pin) for pin, _ in plan}

    # -- long-polls --------------------------------------------------------------

    def _long_poll(self, request: http.Request, pin: gpio.Pin) -> Reply:
        wait = _param(request, "wait", WAIT)
        value = request.params.get("value")
        if value not in (None, "0", "1"):
            raise fail(400, "bad-value", "value is 0 or 1: the value the pin is expected to leave")
        current = self.backend.read(pin.gpio)
        value = current if value is None else int(value)
        if current != value or wait == 0:
            return self._ok(request, {**self._state(pin), "timeout": current == value})
        pending = Pending()
        watch = Watch(pin, value, pending, request)
        watch.timer = self.loop.call_later(wait, lambda: self._end_watch(watch, True))
        pending.on_cancel(lambda: self._drop_watch(watch))
        self.watches.setdefault(pin.gpio, []).append(watch)
        self.sampled.setdefault(pin.gpio, current)
        if self.sampler is None:
            self.sampler = self.loop.every(
                self.config.gpio.sample_interval, self._sample, name="gpio sampling"
            )
        return pending

    def _sample(self) -> None:
        """Find input changes by reading the watched pins (every gpio.sample_interval)."""
        for number in list(self.watches):
            try:
                value = self.backend.read(number)
            except gpio.GpioError as err:  # answer its long-polls now, not every tick
                for watch in list(self.watches.get(number, ())):
                    self._end_watch(watch, False, err)
                continue
            if value != self.sampled.get(number):
                self._notify(number, value)

    def _notify(self, number: int, value: int) -> None:
        if number in self.sampled:
            self.sampled[number] = value
        for watch in list(self.watches.get(number, ())):
            if watch.value != value:
                self._end_watch(watch, False)

    def _end_watch(
        self, watch: Watch, timed_out: bool, error: Optional[gpio.GpioError] = None
    ) -> None:
        self._drop_watch(watch)
        self._answer(
            watch.pending,
            watch.request,
            lambda: {**self._state(watch.pin), "timeout": timed_out},
            error,
        )

    def _answer(
        self,
        pending: Pending,
        request: http.Request,
        state: Callable[[], dict],
        error: Optional[gpio.GpioError] = None,
    ) -> None:
        """Answer a deferred pin reply (a long-poll, a pulse's end, a pulse cut short):
        200 with `state()` read now, or 500 `gpio-error` when the board fails (`error`
        given, or raised by `state()`), so that no reply is ever left hanging. It is
        sent in the loop's next step: resolving runs the requests queued behind it,
        which must not run in the middle of the request or timer that ended it (a batch
        whose write woke a long-poll)."""
        try:
            if error is not None:
                raise error
            reply = self._ok(request, state())
        except gpio.GpioError as err:
            reply = self._gpio_failure(request, err)
        self.loop.call_soon(lambda: pending.resolve(reply))

    def _drop_watch(self, watch: Watch) -> None:
        watch.timer.cancel()
        watches = self.watches.get(watch.pin.gpio, [])
        if watch in watches:
            watches.remove(watch)
        if not watches:
            self.watches.pop(watch.pin.gpio, None)
            self.sampled.pop(watch.pin.gpio, None)
        if not self.watches and self.sampler is not None:
            self.sampler.cancel()
            self.sampler = None

    # -- serial ports ------------------------------------------------------------

    def _serial(self, request: http.Request, name: str) -> Reply:
        """`GET` reads received bytes; `POST` writes the body, then reads a reply if it
        names `until`, `count` or `wait`. The port's mechanics are in serialport.py."""
        port = self.server.serial.get(name)
        if port is None:
            names = ", ".join(sorted(self.server.serial)) or "none are configured"
            raise fail(
                404,
                "not-found",
                f"no serial port {name!r}; the ports are: {names} (serial.NAME in web.json5)",
            )
        self._allow(request, "GET, POST")
        job = self._serial_job(request, port)
        if request.method == "POST":
            self.lease.acquire(
                request.session, self.loop.now, f"writing to serial port {port.name} is refused"
            )
        else:  # a read takes bytes from the port: not from under the holder's feet
            self.lease.check(
                request.session,
                self.loop.now,
                f"reading serial port {port.name} is refused: a read takes the bytes that"
                " may be the holder's reply, so only the holder reads a port while it drives",
            )
        pending = Pending()
        pending.convert = lambda done: self._serial_reply(request, port, done)
        pending.on_cancel(lambda: port.cancel(job))
        port.submit(job, pending.resolve)
        return pending

    def _serial_job(self, request: http.Request, port: SerialPort) -> Job:
        params = request.params
        unknown = set(params) - SERIAL_PARAMS
        if unknown:
            raise fail(
                400, "bad-param", f"unknown parameter {min(unknown)!r}; use wait, until, count"
            )
        until = None
        # Neither `until` nor `count` can be longer than what the port keeps.
        kept = Range(1, port.config.buffer, "a whole number of bytes", integer=True)
        buffer = f" (serial.{port.name}.buffer)"
        if "until" in params:
            # Bytes, not text: decoded again as Latin-1 so that %FF is the byte 0xFF.
            query = request.target.partition("&")[2]
            raw = dict(parse_qsl(query, keep_blank_values=True, encoding="latin-1"))
            until = raw["until"].encode("latin-1")
            if not kept.holds(len(until)):
                raise fail(
                    400, "bad-value", f"until is from 1 to {kept.high} bytes, e.g. %0A{buffer}"
                )
        count = _param(request, "count", kept, None, buffer)
        wait = _param(request, "wait", WAIT, port.config.timeout or 0.0)
        if request.method == "GET":
            return Job(b"", True, until, count, wait)
        return Job(request.body, bool(params), until, count, wait)

    def _serial_reply(self, request: http.Request, port: SerialPort, job: Job) -> http.Response:
        session = request.session
        if job.error is not None:
            written = f" ({job.written} of {len(job.data)} bytes were written)" if job.data else ""
            return json_response(
                503,
                {
                    "error": "port-unavailable",
                    "message": f"serial port {port.name} ({port.url}) is unavailable:"
                    f" {job.error}{written}; the server keeps trying to open it",
                },
                session,
                (("Retry-After", str(math.ceil(port.delay))),),
            )
        if not job.reads:
            return json_response(200, {"written": job.written}, session)
        return http.Response(
            200,
            [
                ("Content-Type", "application/octet-stream"),
                *_dynamic(session),
                ("HTTaP-Serial-Timeout", "1" if job.timed_out else "0"),
                ("HTTaP-Serial-Dropped", str(job.dropped)),
            ],
            job.received,
        )

    # -- user actions ------------------------------------------------------------

    def action(self, name: str, methods: Union[str, tuple[str, ...]] = ("GET",)) -> Callable:
        """Decorator: register `function(request)` under `/?NAME` for `methods` (one
        method name, or several: one function answers them all and reads
        `request.method`).

        Raises ValueError, naming the action, for a name that would shadow the standard
        vocabulary, a method not in ACTION_METHODS, and a name already registered: the
        second registration would otherwise silently replace the first.
        """
        name = name.strip("/")
        first = name.split("/", 1)[0]
        if not name or first in STANDARD or first.startswith("ping"):
            raise ValueError(
                f"action name {name!r} would shadow the standard vocabulary"
                f" ({', '.join(STANDARD)}, ping…)"
            )
        methods = tuple(
            method.upper() for method in ((methods,) if isinstance(methods, str) else methods)
        )
        if not methods or not set(methods) <= set(ACTION_METHODS):
            raise ValueError(
                f"action {name!r}: methods must name one or more of"
                f" {', '.join(ACTION_METHODS)}, not {methods!r}"
            )

        def register(function: Callable) -> Callable:
            taken = self.actions.get(name)
            if taken is not None:
                raise ValueError(
                    f"action {name!r} is already registered, for {', '.join(taken.methods)};"
                    " register it once with every method it answers, e.g."
                    ' methods=("GET", "POST"), and read request.method'
                )
            self.actions[name] = Action(name, function, methods)
            return function

        return register

    def _action(self, request: http.Request, action: Action) -> Reply:
        allowed = ", ".join(action.methods)
        if request.method not in action.methods and not (
            request.method == "HEAD" and "GET" in action.methods
        ):
            self._allow(request, allowed)
        if request.method not in ("GET", "HEAD"):
            self.lease.acquire(
                request.session,
                self.loop.now,
                f"{request.method} /?{action.name} is refused: an action other than GET may"
                " drive the hardware",
            )
        result = action.function(request)
        if isinstance(result, Pending):
            result.convert = lambda value: self._late_reply(request, value)
            return result
        return self._reply(request, result)

    def _late_reply(self, request: http.Request, value: Any) -> http.Response:
        """What a pending action resolved with; a value that cannot be sent is a JSON 500."""
        try:
            return self._reply(request, value)
        except Exception:
            log.exception("bad reply value for %s %s", request.method, request.target)
            message = "the handler's reply cannot be sent; see the server log"
            failed = {"error": "handler-failed", "message": message}
            return json_response(500, failed, request.session)

    def _reply(self, request: http.Request, value: Any) -> http.Response:
        """What an action returned, as a dynamic reply."""
        session = request.session
        if isinstance(value, http.Response):
            # A copy: the app may return the same Response to every client, and each
            # reply carries its own session.
            present = {name.lower() for name, _ in value.headers}
            extra = [h for h in _dynamic(session) if h[0].lower() not in present]
            return http.Response(value.status, [*value.headers, *extra], value.body, value.file)
        if isinstance(value, (bytes, bytearray)):
            return http.Response(
                200,
                [("Content-Type", "application/octet-stream"), *_dynamic(session)],
                bytes(value),
            )
        if value is None:
            return http.Response(204, _dynamic(session))
        return json_response(200, value, session)

    def stop(self) -> None:
        """The server is stopping: answer the long-polls and end the pulses now, so that
        their connections can finish instead of waiting out the stop's grace period."""
        for watches in list(self.watches.values()):
            for watch in list(watches):
                self._end_watch(watch, True)
        for timer, *_ in list(self.pulses.values()):
            end = timer.callback  # cancelling drops it
            timer.cancel()
            end()

    def close(self) -> None:
        """The server stops: outputs go to their safe values, the board is released.

        Safe values first: each one ends its pin's pulse or wave, and is audited against
        what the pin was doing; then the pulses and waves of pins without one stop."""
        self._apply_safe_values()
        for number in list(self.pulses) + list(self.pwm):
            self._stop_activity(number)
        self.backend.close()


def _wave(driver: SoftPwm) -> str:
    return f"pwm {driver.duty:g} at {driver.frequency:g} Hz"


def _shown(value: Any) -> str:
    """A value from a request as a message quotes it: as JSON, cut short if long."""
    try:
        text = json.dumps(value)
    except ValueError:  # a whole number past Python's 4,300 digits
        text = "a huge number"
    return text if len(text) <= 40 else text[:37] + "..."


def _params(query: str) -> dict[str, str]:
    """The PARAMS of a dynamic target, form-decoded as browsers encode them (WHATWG URL
    standard, application/x-www-form-urlencoded: `+` is a space, and bytes that are not
    UTF-8 once percent-decoded become U+FFFD). A name given twice is 400 `bad-param`:
    which of the two counts would be a guess."""
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in params:
            raise fail(400, "bad-param", f"the parameter {_shown(name)} is given twice")
        params[name] = value
    return params


def _check(value: Any, span: Range, what: str) -> None:
    """A number from a request body or the app API: 400 giving the range when outside."""
    if not span.holds(value):
        raise fail(400, "bad-value", f"{what} is {span}")


def _param(
    request: http.Request, name: str, span: Range, default: Any = None, note: str = ""
) -> Any:
    """The query parameter `name` as a number in `span` (`default` when it is absent);
    400 giving the range otherwise. Only plain decimals are read: no sign, exponent,
    "nan" or "inf"; a long run of digits is out of every range and never converted."""
    text = request.params.get(name)
    if text is None:
        return default
    value: Any = None
    if _DECIMAL.fullmatch(text):
        if not span.integer:
            value = float(text)
        elif text.isdigit() and len(text.lstrip("0")) <= 30:
            value = int(text)
    if not span.holds(value):
        raise fail(400, "bad-value", f"{name} is {span}{note}")
    return value
