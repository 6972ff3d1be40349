"""The HTTaP domain built without a server or a socket, for the rooms' unit tests.

`ManualLoop` keeps time only as the test moves it (`advance`), so a pulse or a
long-poll's timeout is a step of the test, not a wait. The rest are the real parts:
the simulated board, `Pins`, `Lease`, `Manager`, `http.Request`, `Session`, and the
loop's own `Handle` for timers.
"""

from __future__ import annotations

import heapq
import itertools
import json
import selectors
from collections import deque
from typing import Any, Callable, Optional

from gpio.sim import SimBackend
from httap import config, http
from httap.loop import Handle
from httap.manager import Manager
from httap.pins import Pins
from httap.session import Lease, Session, Sessions

LED, BUTTON, BUZZER = 17, 4, 18
PINS = {
    "led": {"gpio": LED, "mode": "out", "safe": 0},
    "button": {"gpio": BUTTON, "mode": "in", "pull": "up"},
    "buzzer": {"gpio": BUZZER, "mode": "pwm"},
}


class ManualLoop:
    """The loop's scheduling API (call_soon, call_later, call_at, every, clock, now),
    with a clock that moves only in `advance`, and its registration (register, modify,
    unregister, fd_limit; modelled on a `selectors` selector): `ready()` runs the
    handlers of the descriptors that are ready."""

    fd_limit = None  # as the real loop's over epoll

    def __init__(self) -> None:
        self.now = self.started = 0.0
        self.mode = "sleep"
        self._timers: list[tuple[float, int, Handle]] = []
        self._order = itertools.count()
        self._soon: deque[Callable[[], Any]] = deque()
        self.selector = selectors.DefaultSelector()

    def register(self, fileobj: Any, events: int, handler: Any) -> None:
        self.selector.register(fileobj, events, handler)

    def modify(self, fileobj: Any, events: int, handler: Any) -> None:
        self.selector.modify(fileobj, events, handler)

    def unregister(self, fileobj: Any) -> None:
        """As the real loop's: nothing when `fileobj` is not watched."""
        try:
            self.selector.unregister(fileobj)
        except (KeyError, ValueError):
            pass

    def ready(self) -> int:
        """Run `on_event` of every handler whose descriptor is ready now; how many ran."""
        events = self.selector.select(0)
        for key, mask in events:
            key.data.on_event(mask)
        self.run_soon()
        return len(events)

    def clock(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], Any]) -> Handle:
        timer = Handle(when, callback)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Handle:
        return self.call_at(self.now + delay, callback)

    def every(
        self,
        interval: float,
        callback: Callable[[], Any],
        name: Optional[str] = None,
        internal: bool = False,
    ) -> Handle:
        timer = Handle(self.now + interval, callback, interval)
        heapq.heappush(self._timers, (timer.when, next(self._order), timer))
        return timer

    def call_soon(self, callback: Callable[[], Any]) -> None:
        self._soon.append(callback)

    def stats(self) -> dict:
        return {"iterations": 0, "mode": self.mode}

    @property
    def pending(self) -> int:
        """Timers not cancelled, periodic ones included."""
        return sum(not timer.cancelled for _, _, timer in self._timers)

    def run_soon(self) -> None:
        """Run what `call_soon` queued, and what that queues, as the loop's steps would."""
        while self._soon:
            self._soon.popleft()()

    def advance(self, seconds: float) -> None:
        """Move the clock on by `seconds`, running each timer at its time, in order, and
        what it queues with call_soon after it."""
        end = self.now + seconds
        self.run_soon()
        while self._timers and self._timers[0][0] <= end:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self.now = when
            if timer.interval:
                timer.when = when + timer.interval
                heapq.heappush(self._timers, (timer.when, next(self._order), timer))
            timer.callback()
            self.run_soon()
        self.now = end


def settings(**overrides: Any) -> config.Config:
    """A Config with the PINS on the simulated board, and `overrides` (dotted keys as
    `a__b`)."""
    flat = {key.replace("__", "."): value for key, value in overrides.items()}
    return config.load(None, env={}, overrides={"gpio.backend": "sim", "gpio.pins": PINS, **flat})


def build(
    manual_loop: Optional[ManualLoop] = None,
    ports: Optional[dict] = None,
    *,
    edges: bool = True,
    **overrides: Any,
) -> Manager:
    """A Manager over the simulated board, its pins, a lease and the serial `ports`;
    `edges=False`: a board whose inputs give no edge descriptor (they are sampled)."""
    manual_loop = manual_loop or ManualLoop()
    conf = settings(**overrides)
    board = SimBackend(clock=manual_loop.clock, edges=edges)
    pins = Pins(conf.gpio.pins, board, manual_loop)
    sessions = Sessions()
    lease = Lease(conf.session.exclusive, pins.apply_safe_values, sessions)
    return Manager(conf, manual_loop, pins, lease, sessions, ports)


def session(manager: Manager, address: str = "127.0.0.1") -> Session:
    """An open session of a client at `address`, as a new connection has."""
    return manager.status.sessions.open((address, 40000), manager.loop.now)


def request(
    method: str,
    target: str,
    body: Any = b"",
    session: Optional[Session] = None,
    headers: Optional[dict[str, str]] = None,
) -> http.Request:
    """A parsed request as the connection hands it over; `body` not bytes is sent as JSON."""
    made = http.Request(method, target, "HTTP/1.1", headers or {}, True, "device.local")
    made.body = body if isinstance(body, bytes) else json.dumps(body).encode()
    made.session = session or Session(("127.0.0.1", 40000), 0.0)
    made.client = made.session.client
    return made


def answer(response: http.Response) -> tuple[int, Any]:
    """A finished response's status and its JSON body (None when it has none)."""
    return response.status, json.loads(response.body) if response.body else None
