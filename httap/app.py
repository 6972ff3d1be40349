"""The application API: what an app's `setup(server)` calls, and the loading of the app.

An app is a Python file named by `app` in web.json5 (or `--app`); `load_app` imports it
and calls its `setup(server)`. The server an app gets is an `App`: the Server class
derives from it, so `server.write(...)`, `server.every(...)` and the rest are these
methods, whatever else the server holds.

Rules of this file:
- An app drives the pins through the same checks and effects as the requests (the
  pin domain's, pins.py): a write ends a pulse or PWM on the pin, wakes its long-polls and is
  audited. Its mistakes raise the error a request would get (404, 403, 409, 400).
- A bad number or callback is refused at the call (ValueError, TypeError), never later
  in the loop.
- An error while loading the app is a StartupError naming the file and the line.
"""

from __future__ import annotations

import importlib.util
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from httap.config import StartupError
from httap.loop import MAX_DELAY, Handle, Loop, Periodic, callback_checked, seconds

if TYPE_CHECKING:
    from httap.manager import Manager
    from httap.pins import Pins


class App:
    """The methods an app calls on the server it is given. A subclass (the Server)
    provides `loop`, `pins` and `manager`."""

    loop: Loop
    pins: Pins
    manager: Manager

    # -- the pins and the actions ------------------------------------------------

    def action(self, name: str, methods: tuple[str, ...] = ("GET",)) -> Callable:
        """Decorator: `@server.action("car/forward", methods=("POST",))` serves `/?car/forward`."""
        return self.manager.actions.register(name, methods)

    def pin(self, name: str) -> Any:
        """A declared pin (`gpio.Pin`), by name or GPIO number."""
        return self.pins.declared(name)

    def state(self, name: str) -> dict:
        """A declared pin's state, as `GET /?gpio/NAME` gives it."""
        return self.pins.state_of(name)

    def read(self, name: str) -> int:
        """A declared pin's level."""
        return self.state(name)["value"]

    def write(self, name: str, value: Any) -> None:
        """Drive a declared output as a request would (ends its pulse or PWM, wakes
        its long-polls). Use this rather than `server.gpio.write`, which bypasses that."""
        self.pins.write(name, value)

    def pwm(
        self,
        name: str,
        frequency: Optional[float] = None,
        duty: Optional[float] = None,
        width: Optional[float] = None,
    ) -> None:
        """Start or change the wave of a declared "pwm" pin: `width`, a pulse's length
        in seconds (a servo's position), instead of `duty`."""
        self.pins.pwm(name, frequency, duty, width)

    def publish(self, name: str, data: Any = None) -> None:
        """Send an event of the app's own to every event stream (`GET /?events`): `event:
        app` with {"name": name, "data": data}. TypeError here, at the call, for a name
        that is not a non-empty string or data that is not JSON; ValueError for data
        over 4 KiB of JSON."""
        self.manager.events.publish(name, data)

    @property
    def gpio(self) -> Any:
        """The GPIO backend (a `gpio.Backend`; the simulated board where there is no GPIO)."""
        return self.pins.backend

    # -- time in the loop --------------------------------------------------------

    def every(
        self, interval: float, callback: Callable[[], Any], name: Optional[str] = None
    ) -> Periodic:
        """A periodic task on absolute deadlines, every `interval` seconds (1 µs to a
        year); `name` labels it in `GET /?stats` and the log. ValueError or TypeError
        here, at the call, for a bad interval or callback."""
        return self.loop.every(interval, callback, name)

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Handle:
        """Run `callback()` once, `delay` seconds from now (0 to a year). ValueError or
        TypeError here, at the call, for a bad delay or callback."""
        delay = seconds(delay, "delay", 0.0, MAX_DELAY)
        return self.loop.call_later(delay, callback_checked(callback))

    def call_at(self, when: float, callback: Callable[[], Any]) -> Handle:
        """Run `callback()` once at `when`, a `time.monotonic()` time from 0 (a time
        past runs at once) to a year from now. ValueError or TypeError here, at the
        call, for a bad time or callback."""
        limit = self.loop.clock() + MAX_DELAY
        when = seconds(when, "when, a time.monotonic() time up to a year from now,", 0.0, limit)
        return self.loop.call_at(when, callback_checked(callback))

    def idle(self, callback: Callable[[], Any]) -> Handle:
        """Run `callback()` on every iteration of the loop (TypeError if it is not callable)."""
        return self.loop.idle(callback_checked(callback))

    @property
    def mode(self) -> str:
        """The loop's mode: "sleep" (the default) or "spin" (never waits: 100% CPU)."""
        return self.loop.mode

    @mode.setter
    def mode(self, mode: str) -> None:
        self.loop.mode = mode

    # -- loading -----------------------------------------------------------------

    def load_app(self, path: str) -> None:
        """Import a Python file and call its `setup(server)`; errors name the file and line."""
        spec = importlib.util.spec_from_file_location(f"httap_app_{Path(path).stem}", path)
        if spec is None or spec.loader is None:
            raise StartupError(f"cannot load the app {path}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
            setup = getattr(module, "setup", None)
            if not callable(setup):
                raise StartupError(f"cannot load the app {path}: it has no setup(server) function")
            setup(self)
        except StartupError:
            raise
        except Exception as err:
            line = getattr(err, "lineno", None) if isinstance(err, SyntaxError) else None
            for frame in traceback.extract_tb(err.__traceback__):
                if frame.filename == path:
                    line = frame.lineno
            where = f"{path}, line {line}" if line else path
            raise StartupError(
                f"cannot load the app {where}: {type(err).__name__}: {err}"
            ) from None
