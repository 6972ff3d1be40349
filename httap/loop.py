"""The poll loop: one thread, one selector, timers, idle callbacks and signals.

Each iteration: wait in the selector until the next timer is due (or not at all in
`spin` mode), run the timers that are due, then dispatch I/O events, then the callbacks
queued with `call_soon`, then the idle callbacks. Timers run before the requests that
arrived in the same wake-up, so the application's time comes first.

select() is the default selector because it takes its timeout in microseconds: epoll
and poll round it up to whole milliseconds, so a loop that sleeps in them wakes up to
1 ms late. A device serves far fewer than select()'s 1,024 descriptors.

Timer accuracy is measured, not assumed: every periodic task keeps its lateness (how
long after its deadline each run started) over its last `WINDOW` runs and counts its
overruns, and `stats()` summarises them for `GET /?stats`. Recording costs one clock
read, one subtraction and one append per run; the figures are computed only when read.
"""

from __future__ import annotations

import heapq
import logging
import selectors
import signal
import socket
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, Callable, Optional

log = logging.getLogger("httap.loop")

SWEEP_MIN = 1024  # timers in the heap before cancelled ones are first swept out
FD_SETSIZE = 1024  # select() watches descriptors below this number only
SELECT_CONNECTIONS = 900  # above this many connections, poll() replaces select()
READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE
MODES = ("sleep", "spin")
WINDOW = 1000  # the runs of a periodic task whose lateness the stats summarise
RATE_SPAN = 1.0  # seconds: iterations per second are counted over at least this long


def _cancelled() -> None:
    """What a cancelled handle holds instead of its callback."""


class Handle:
    """A scheduled callback; `cancel()` stops it. Periodic handles keep absolute deadlines."""

    __slots__ = ("callback", "cancelled", "interval", "when")

    def __init__(self, when: float, callback: Callable[[], Any], interval: float = 0.0) -> None:
        self.when = when
        self.callback = callback
        self.interval = interval
        self.cancelled = False

    def cancel(self) -> None:
        """Never run it. The callback is dropped at once: a cancelled timer waits in the
        heap until its time, and must not keep its owner (a closed connection) alive."""
        self.cancelled = True
        self.callback = _cancelled

    def __lt__(self, other: Handle) -> bool:
        return self.when < other.when


class Periodic(Handle):
    """A handle from `Loop.every`: named, listed in the loop's `tasks` until cancelled.

    `runs` counts its runs; `lateness` holds, in seconds, how late each of the last
    `WINDOW` runs started; `overruns` counts the runs that started after their next
    deadline had passed.
    """

    __slots__ = ("lateness", "name", "overruns", "runs", "tasks")

    def __init__(
        self,
        when: float,
        callback: Callable[[], Any],
        interval: float,
        name: str,
        tasks: list[Periodic],
    ) -> None:
        super().__init__(when, callback, interval)
        self.name = name
        self.runs = 0
        self.overruns = 0
        self.lateness: deque[float] = deque(maxlen=WINDOW)
        self.tasks = tasks
        tasks.append(self)

    def cancel(self) -> None:
        if not self.cancelled:
            self.tasks.remove(self)
        super().cancel()

    def stats(self) -> dict:
        return {
            "name": self.name,
            "interval_us": round(self.interval * 1e6, 1),
            "runs": self.runs,
            "lateness_us": summary_us(self.lateness),
            "overruns": self.overruns,
        }


def summary_us(seconds: Iterable[float]) -> dict[str, Optional[float]]:
    """Median, p99 and max of durations in seconds, in microseconds; None when empty."""
    ordered = sorted(seconds)
    if not ordered:
        return {"median": None, "p99": None, "max": None}
    count = len(ordered)
    return {
        "median": round(ordered[count // 2] * 1e6, 1),
        "p99": round(ordered[min(count - 1, int(count * 0.99))] * 1e6, 1),
        "max": round(ordered[-1] * 1e6, 1),
    }


class Loop:
    """A single-threaded event loop around a `selectors` selector.

    Objects registered with `register` get `on_event(mask)` when their file is ready.
    `spin` is the mode as a flag, for the hot path: set it through `mode`.
    """

    @staticmethod
    def selector_for(connections: int) -> selectors.BaseSelector:
        """select() for its microsecond timeouts, unless the server may hold more sockets
        than select() can watch: then poll(), whose timeouts are whole milliseconds."""
        if connections <= SELECT_CONNECTIONS:
            return selectors.SelectSelector()
        log.info(
            "limits.connections is over %d: using poll(), timers keep whole milliseconds",
            SELECT_CONNECTIONS,
        )
        return selectors.PollSelector()

    @property
    def fd_limit(self) -> Optional[int]:
        """Descriptors from this number up cannot be watched (None: no such limit)."""
        return FD_SETSIZE if isinstance(self.selector, selectors.SelectSelector) else None

    def __init__(self, selector: Optional[selectors.BaseSelector] = None) -> None:
        self.selector = selector or selectors.SelectSelector()
        self.clock = time.monotonic
        self.started = self.now = time.monotonic()
        self.iterations = 0
        self.spin = False
        self._timers: list[Handle] = []
        self._sweep_at = SWEEP_MIN
        self._soon: deque[Callable[[], Any]] = deque()
        self._idle: list[Handle] = []
        self.tasks: list[Periodic] = []  # the live periodic tasks, for the stats
        # (time, iterations) at the last two stats reads, at least RATE_SPAN apart
        self._rate_marks: deque[tuple[float, int]] = deque([(self.started, 0)], maxlen=2)
        self._running = False
        self._signals: list[int] = []
        self._signal_handlers: dict[int, Callable[[], Any]] = {}
        # A socket pair that wakes the selector: written by signals and by other threads.
        self._waker, self._wake_writer = socket.socketpair()
        self._waker.setblocking(False)
        self._wake_writer.setblocking(False)
        self.register(self._waker, READ, self)

    # -- registration ------------------------------------------------------------

    def register(self, fileobj: Any, events: int, handler: Any) -> None:
        """Watch `fileobj`; ValueError for a descriptor the selector cannot watch, which
        would otherwise make every later select() fail."""
        limit = self.fd_limit
        if limit is not None:
            fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
            if fd >= limit:
                raise ValueError(f"descriptor {fd} is beyond select()'s {limit}")
        self.selector.register(fileobj, events, handler)

    def modify(self, fileobj: Any, events: int, handler: Any) -> None:
        self.selector.modify(fileobj, events, handler)

    def unregister(self, fileobj: Any) -> None:
        try:
            self.selector.unregister(fileobj)
        except (KeyError, ValueError):
            pass

    # -- scheduling --------------------------------------------------------------

    def call_at(self, when: float, callback: Callable[[], Any]) -> Handle:
        """Run `callback` once at monotonic time `when`."""
        handle = Handle(when, callback)
        self._push(handle)
        return handle

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Handle:
        """Run `callback` once, `delay` seconds from now."""
        return self.call_at(time.monotonic() + delay, callback)

    def every(
        self, interval: float, callback: Callable[[], Any], name: Optional[str] = None
    ) -> Periodic:
        """Run `callback` every `interval` seconds on absolute deadlines, so it does not drift.

        `name` labels it in the stats; the default is the callback's qualified name.
        """
        if interval <= 0:
            raise ValueError("interval must be positive")
        if name is None:
            name = getattr(callback, "__qualname__", repr(callback))
        handle = Periodic(time.monotonic() + interval, callback, interval, name, self.tasks)
        self._push(handle)
        return handle

    def _push(self, handle: Handle) -> None:
        """Schedule a handle. A cancelled timer stays in the heap until its time comes, so
        when the heap has doubled since it was last swept, the cancelled ones are dropped:
        connections that come and go cannot grow it without bound (amortised O(1))."""
        timers = self._timers
        if len(timers) >= self._sweep_at:
            timers[:] = [each for each in timers if not each.cancelled]
            heapq.heapify(timers)
            self._sweep_at = max(SWEEP_MIN, 2 * len(timers))
        heapq.heappush(timers, handle)

    def idle(self, callback: Callable[[], Any]) -> Handle:
        """Run `callback` on every iteration of the loop."""
        handle = Handle(0.0, callback)
        self._idle.append(handle)
        return handle

    def call_soon(self, callback: Callable[[], Any]) -> None:
        """Run `callback` in this iteration, after the I/O events."""
        self._soon.append(callback)

    def call_threadsafe(self, callback: Callable[[], Any]) -> None:
        """From another thread: run `callback` in the loop's thread, waking it up."""
        self._soon.append(callback)
        try:
            self._wake_writer.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (a wake-up is pending anyway) or the loop is closed

    # -- modes and figures -------------------------------------------------------

    @property
    def mode(self) -> str:
        """`sleep`: the selector waits until the next deadline; `spin`: it never waits."""
        return "spin" if self.spin else "sleep"

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"the loop mode is 'sleep' or 'spin', not {mode!r}")
        self.spin = mode == "spin"

    def iteration_rate(self) -> float:
        """Iterations per second since the figures were last read, over at least RATE_SPAN.

        Derived from marks taken when the figures are read, so that an idle loop needs
        no timer to count and keeps sleeping.
        """
        now = time.monotonic()
        marks = self._rate_marks
        since, count = marks[-1] if now - marks[-1][0] >= RATE_SPAN else marks[0]
        rate = (self.iterations - count) / (now - since) if now > since else 0.0
        if now - marks[-1][0] >= RATE_SPAN:
            marks.append((now, self.iterations))
        return round(rate, 1)

    def stats(self) -> dict:
        """The loop's figures for `GET /?stats`."""
        return {
            "iterations": self.iterations,
            "iterations_per_second": self.iteration_rate(),
            "mode": self.mode,
            "tasks": [task.stats() for task in self.tasks],
        }

    # -- signals -----------------------------------------------------------------

    def add_signal_handler(self, signum: int, callback: Callable[[], Any]) -> None:
        """Run `callback` in the loop (not in the signal handler) when `signum` arrives."""
        signal.set_wakeup_fd(self._wake_writer.fileno(), warn_on_full_buffer=False)
        self._signal_handlers[signum] = callback
        signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals.append(signum)

    def on_event(self, mask: int) -> None:
        """The wake-up socket is readable: a signal arrived or another thread called."""
        try:
            while self._waker.recv(512):
                pass
        except BlockingIOError:
            pass
        while self._signals:
            self._signal_handlers[self._signals.pop(0)]()

    # -- running -----------------------------------------------------------------

    def run(self) -> None:
        """Run until `stop()` is called."""
        self._running = True
        try:
            while self._running:
                self.run_once()
        finally:
            self._running = False

    def stop(self) -> None:
        self._running = False

    def run_once(self) -> None:
        self.iterations += 1
        timers = self._timers
        if self.spin or self._soon or self._idle:
            timeout: Optional[float] = 0.0
        elif timers:
            timeout = max(0.0, timers[0].when - time.monotonic())
        else:
            timeout = None
        events = self.selector.select(timeout)
        self.now = now = time.monotonic()
        while timers and timers[0].when <= now:
            handle = heapq.heappop(timers)
            if handle.cancelled:
                continue
            if handle.interval:  # a Periodic
                started = time.monotonic()
                handle.lateness.append(started - handle.when)
                handle.runs += 1
                handle.when += handle.interval
                if handle.when <= started:  # overran: skip the missed ticks, keep the phase
                    handle.overruns += 1
                    missed = (started - handle.when) // handle.interval + 1
                    handle.when += missed * handle.interval
                heapq.heappush(timers, handle)
            self._run(handle.callback)
        for key, mask in events:
            try:
                key.data.on_event(mask)
            except Exception:
                self._event_failed(key.data)
        for _ in range(len(self._soon)):
            self._run(self._soon.popleft())
        if self._idle:
            self._idle = [handle for handle in self._idle if not handle.cancelled]
            for handle in self._idle:
                self._run(handle.callback)

    @staticmethod
    def _run(callback: Callable[[], Any]) -> None:
        try:
            callback()
        except Exception:
            log.exception("callback %r failed", callback)

    @staticmethod
    def _event_failed(handler: Any) -> None:
        """A bug in a handler must not stop the loop: log it and drop that handler's file."""
        log.exception("event handler %r failed", handler)
        abort = getattr(handler, "abort", None)
        if abort is not None:
            try:
                abort()
            except Exception:
                log.exception("aborting %r failed too", handler)

    def close(self) -> None:
        if self._signal_handlers:
            signal.set_wakeup_fd(-1)
            for signum in self._signal_handlers:
                signal.signal(signum, signal.SIG_DFL)
            self._signal_handlers.clear()
        self.unregister(self._waker)
        self._waker.close()
        self._wake_writer.close()
        self.selector.close()
