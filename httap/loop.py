"""The poll loop: one thread, one poller (epoll), timers, idle callbacks and signals.

Each iteration: wait in the poller until the next timer is due (or not at all in
`spin` mode), run the timers that are due, then dispatch I/O events, then the callbacks
queued with `call_soon`, then the idle callbacks. Timers run before the requests that
arrived in the same wake-up, so the application's time comes first; and a timer that
falls due while the events are handled runs between two of them (the clock is read
after each), not after all of them: a task waits for at most one connection's work.

The loop waits in epoll (Linux, so every Pi) where it exists: each file is registered
once, its handler kept in a plain dict by descriptor, and a wait returns the ready
(descriptor, events) pairs, dispatched straight to the handlers; a file's interest
changes only when its owner asks for other events (`modify`, a no-op when they are the
same). epoll_wait() counts its timeout in whole milliseconds (CPython rounds a float up:
`_PyTime_ROUND_CEILING`), so the loop waits there for the whole milliseconds before a
deadline only, and the rest, under a millisecond, in select() on the epoll descriptor
itself, which is readable when any of its files is ready (one descriptor, a timeout in
microseconds); then epoll_wait() with no wait collects the events (`Epoll.wait`).
Where there is no epoll (macOS and the BSDs, development machines) the loop waits in
select() over its files: microsecond timeouts too, and descriptors below FD_SETSIZE
(1,024) only, which is plenty there (`Loop.fd_limit`; listen.py answers 503 beyond).

Waking up is not instant either: a thread asleep in select() starts running again some
tens of microseconds after its timeout, more on a virtual machine or a CPU in a deep
idle state (docs/performance.md, "The loop's timing and memory"). So a sleeping loop
wakes `lead` seconds (LEAD, 50 µs) before its next deadline and polls (asks the
poller with no wait, I/O still served) until the deadline: a 1 kHz task costs up to
5 % more CPU, and its median lateness falls from tens of microseconds to a few.

The kernel adds "timer slack" to every wait of a normal thread (50 µs by default,
prctl(2) PR_SET_TIMERSLACK): a loop that sleeps until a deadline wakes up to that much
late. `run()` sets the slack of the thread that runs the loop to 1 ns where it can
(`tighten_timer_slack`).

Timer accuracy is measured, not assumed: every periodic task keeps the lateness of its
last `WINDOW` deadlines and counts its overruns, and `stats()` summarises them for
`GET /?stats`. Every deadline counts, the skipped ones too: a run that starts after the
task's next deadline has passed (an overrun) does not run the missed ones in a burst,
it skips them; but each skipped deadline was late until that run started, and is
recorded so, so skipping cannot hide a stall. Recording costs one clock read, one
subtraction and one append per run; the figures are computed only when read.

A callback that raises does not stop the loop, and does not flood the log either: the
first failure of each callback (a task, a timer, an idle callback, an event handler),
named as `task_name` names it, is logged with its traceback; later ones are counted and
summarised in one line at most every `summary_every` seconds (a minute), and the
counts are in the stats.
"""

from __future__ import annotations

import functools
import heapq
import logging
import numbers
import select
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, Callable, Optional, Union

log = logging.getLogger("httap.loop")

SWEEP_MIN = 1024  # timers in the heap before cancelled ones are first swept out
FD_SETSIZE = 1024  # select() watches descriptors below this number only
READ = 1  # an interest and an event, as in the `selectors` module (EVENT_READ)
WRITE = 2  # (EVENT_WRITE)
# poll(2) and epoll(7) event bits (the same numbers) and the READ | WRITE mask of each:
# an error or a hang-up (EPOLLERR 8, EPOLLHUP 16) wakes both readers and writers.
POLLIN, POLLOUT = 1, 4
POLL_BITS = (0, POLLIN, POLLOUT, POLLIN | POLLOUT)  # by READ | WRITE interest
MASKS = tuple(
    (READ if bits & ~POLLOUT else 0) | (WRITE if bits & ~POLLIN else 0) for bits in range(32)
)
MODES = ("sleep", "spin")
WINDOW = 1000  # the runs of a periodic task whose lateness the stats summarise
RATE_SPAN = 1.0  # seconds: iterations per second are counted over at least this long
MAX_WAIT = 3600.0  # seconds: the longest single wait in the poller (a farther timer waits again)
MAX_DELAY = 366 * 86400.0  # seconds: the farthest an app may schedule a timer (a year)
MIN_INTERVAL = 1e-6  # seconds: the shortest period of a task (select() counts microseconds)
SUMMARY_EVERY = 60.0  # seconds: a failing callback's repeats are summarised this often
LEAD = 50e-6  # seconds: a sleeping loop wakes this long before a deadline, then polls


def _cancelled() -> None:
    """What a cancelled handle holds instead of its callback."""


def seconds(value: Any, what: str, low: float, high: float) -> float:
    """`value`, a number of seconds from `low` to `high`, as a float.

    For the numbers an application hands the loop (an interval, a delay, a time), so
    that a bad one fails where it is given, not later inside the loop. TypeError for
    what is not a real number (a bool, a string); ValueError outside the range (NaN and
    the infinities included), with a message giving the range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} is a number of seconds, not {type(value).__name__}")
    number = float(value)
    if not low <= number <= high:
        raise ValueError(f"{what} is from {low:.10g} to {high:.10g} seconds, not {value!r}")
    return number


def callback_checked(callback: Any) -> Callable[[], Any]:
    """`callback` if it can be called; TypeError at once otherwise, not at its first run."""
    if not callable(callback):
        raise TypeError(f"the callback must be callable (a function), not {callback!r}")
    return callback


def task_name(callback: Callable[..., Any]) -> str:
    """A callback's name for the log and the stats: its qualified name without the
    `<locals>.` steps (`setup.<locals>.toggle` is `setup.toggle`); a lambda adds its
    line (`setup.<lambda>:12`), a partial is named by its function, and any other
    callable object by its class."""
    while isinstance(callback, functools.partial):
        callback = callback.func
    function = getattr(callback, "__func__", callback)  # a bound method's function
    qualname = getattr(function, "__qualname__", None)
    if not isinstance(qualname, str):
        qualname = type(callback).__qualname__
    name = qualname.replace("<locals>.", "")
    code = getattr(function, "__code__", None)
    if code is not None and code.co_name == "<lambda>":
        name += f":{code.co_firstlineno}"
    return name


def tighten_timer_slack() -> bool:
    """Have the kernel end this thread's waits on time: set its timer slack to 1 ns.

    Linux adds a slack to every timed wait of a normal thread, 50 µs by default
    (prctl(2), PR_SET_TIMERSLACK), so that it can group wake-ups; a loop sleeping in
    select() until a task's deadline then wakes up to 50 µs late. The slack is set by
    writing /proc/self/timerslack_ns (proc(5), Linux 4.6 and later; a process may set
    its own without privileges), which is the main thread's: so only from the main
    thread. True when it was set; False elsewhere (another thread, another system, a
    file that cannot be written), where waits keep the default slack.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        with open("/proc/self/timerslack_ns", "w") as slack:
            slack.write("1")
    except OSError:
        return False
    return True


class Failures:
    """How one callback has failed, under its name: `count` failures in all; the first
    was logged with its traceback, the `unreported` ones since wait for the next summary
    (`timer`), which gives `last`, the latest exception as one line."""

    __slots__ = ("count", "last", "name", "timer", "unreported")

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.unreported = 0
        self.last = ""
        self.timer: Optional[Handle] = None


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

    `runs` counts its runs; `skipped` the deadlines it skipped after overruns (see
    `advance`); `lateness` holds, in seconds, how late each of its last `WINDOW`
    deadlines was served, skipped ones included; `overruns` counts the runs that
    started after their next deadline had passed; `errors` counts the runs that raised.
    `internal`: the server's own task (event keep-alives, sampling), not an app's.
    """

    __slots__ = ("errors", "internal", "lateness", "name", "overruns", "runs", "skipped", "tasks")

    def __init__(
        self,
        when: float,
        callback: Callable[[], Any],
        interval: float,
        name: str,
        tasks: list[Periodic],
        internal: bool = False,
    ) -> None:
        super().__init__(when, callback, interval)
        self.name = name
        self.internal = internal
        self.runs = 0
        self.skipped = 0
        self.overruns = 0
        self.errors = 0
        self.lateness: deque[float] = deque(maxlen=WINDOW)
        self.tasks = tasks
        tasks.append(self)

    def advance(self, started: float) -> None:
        """Record a run that starts at `started` (loop seconds) for the deadline `when`,
        and move `when` on to the first deadline after `started`, on the grid
        (start + n * interval), so the task neither drifts nor runs in a burst.

        The deadline served is late by `started - when`. The deadlines between it and
        `started` (an overrun) are skipped: each was late until this run, by `started`
        less its own time, and is recorded so (the newest `WINDOW` of them at most, as
        the older would leave the window at once) and counted in `skipped`.
        """
        interval = self.interval
        when = self.when
        lateness = self.lateness
        lateness.append(started - when)
        self.runs += 1
        when += interval
        if when <= started:  # overran: skip the deadlines that have passed
            self.overruns += 1
            missed = int((started - when) // interval) + 1
            self.skipped += missed
            for step in range(max(0, missed - WINDOW), missed):
                lateness.append(started - (when + step * interval))
            when += missed * interval
        self.when = when

    def cancel(self) -> None:
        if not self.cancelled:
            self.tasks.remove(self)
        super().cancel()

    def stats(self) -> dict:
        """For `/?stats`: `runs`, `skipped` deadlines, `overruns`, `errors`, and the
        median, p99 and max lateness of the last `WINDOW` deadlines (µs); `internal`."""
        return {
            "name": self.name,
            "internal": self.internal,
            "interval_us": round(self.interval * 1e6, 1),
            "runs": self.runs,
            "skipped": self.skipped,
            "lateness_us": summary_us(self.lateness),
            "overruns": self.overruns,
            "errors": self.errors,
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


class Epoll:
    """Readiness from epoll(7), the Linux poller: files registered once, waits timed in
    microseconds (select() on the epoll descriptor: see the module's docstring)."""

    fd_limit: Optional[int] = None  # no limit on descriptor numbers

    def __init__(self) -> None:
        self.epoll = select.epoll()
        self._itself = [self.epoll.fileno()]  # what a timed wait watches

    def register(self, fd: int, bits: int) -> None:
        self.epoll.register(fd, bits)

    def modify(self, fd: int, bits: int) -> None:
        self.epoll.modify(fd, bits)

    def unregister(self, fd: int) -> None:
        """OSError when the descriptor is closed (epoll dropped it then, epoll(7))."""
        self.epoll.unregister(fd)

    def wait(self, timeout: Optional[float]) -> list[tuple[int, int]]:
        """The ready (descriptor, poll bits) pairs; when none is ready, wait for one at
        most `timeout` seconds (None: as long as it takes; 0: not at all).

        A wait of a millisecond or more is epoll_wait()'s for the whole milliseconds in
        it (one system call; the loop comes back for the rest); a shorter one is
        select()'s on the epoll descriptor, in microseconds, after epoll_wait() with no
        wait found nothing ready; then epoll_wait() with no wait collects the events."""
        poll = self.epoll.poll
        if timeout is None:
            return poll()
        if timeout >= 1e-3:  # 1 µs under whole ms: CPython rounds it up to them, not over
            return poll((int(timeout * 1e3) - 1e-3) * 1e-3)
        ready = poll(0)
        if ready or timeout <= 0:
            return ready
        select.select(self._itself, (), (), timeout)
        return poll(0)

    def close(self) -> None:
        self.epoll.close()


class Select:
    """Readiness from select(2), where there is no epoll (macOS, the BSDs): microsecond
    timeouts, descriptors below FD_SETSIZE only (`fd_limit`)."""

    fd_limit: Optional[int] = FD_SETSIZE

    def __init__(self) -> None:
        self.readers: set[int] = set()
        self.writers: set[int] = set()

    def register(self, fd: int, bits: int) -> None:
        if bits & POLLIN:
            self.readers.add(fd)
        if bits & POLLOUT:
            self.writers.add(fd)

    def modify(self, fd: int, bits: int) -> None:
        self.unregister(fd)
        self.register(fd, bits)

    def unregister(self, fd: int) -> None:
        self.readers.discard(fd)
        self.writers.discard(fd)

    def wait(self, timeout: Optional[float]) -> list[tuple[int, int]]:
        """As `Epoll.wait`."""
        readable, writable, _ = select.select(self.readers, self.writers, (), timeout)
        ready = dict.fromkeys(readable, POLLIN)
        for fd in writable:
            ready[fd] = ready.get(fd, 0) | POLLOUT
        return list(ready.items())

    def close(self) -> None:
        self.readers.clear()
        self.writers.clear()


Poller = Union[Epoll, Select]


class Loop:
    """A single-threaded event loop around a poller (`Epoll`, or `Select` without epoll).

    Objects registered with `register` get `on_event(mask)` (READ | WRITE) when their
    file is ready. `spin` is the mode as a flag, for the hot path: set it through `mode`.
    """

    def __init__(self, poller: Optional[Poller] = None) -> None:
        self.poller = poller or (Epoll() if hasattr(select, "epoll") else Select())
        self.fd_limit = self.poller.fd_limit  # descriptors from this number up: unwatchable
        self._handlers: dict[int, Callable[[int], Any]] = {}  # fd: on_event, to dispatch
        self._watched: dict[int, tuple[int, Any, Any]] = {}  # fd: (events, file, handler)
        self.clock = time.monotonic
        self.started = self.now = time.monotonic()
        self.iterations = 0
        self.spin = False
        self.lead = LEAD  # seconds before a deadline that a sleeping loop wakes up
        self._timers: list[Handle] = []
        self._sweep_at = SWEEP_MIN
        self._soon: deque[Callable[[], Any]] = deque()
        self._idle: list[Handle] = []
        self.tasks: list[Periodic] = []  # the live periodic tasks, for the stats
        self.failures: dict[str, Failures] = {}  # by task_name, the callbacks that raised
        self.summary_every = SUMMARY_EVERY
        # (time, iterations) at the last two stats reads, at least RATE_SPAN apart
        self._rate_marks: deque[tuple[float, int]] = deque([(self.started, 0)], maxlen=2)
        self._running = False
        self._signals: list[int] = []
        self._signal_handlers: dict[int, Callable[[], Any]] = {}
        # A socket pair that wakes the poller: written by signals and by other threads.
        self._waker, self._wake_writer = socket.socketpair()
        self._waker.setblocking(False)
        self._wake_writer.setblocking(False)
        self.register(self._waker, READ, self)

    # -- registration ------------------------------------------------------------

    def register(self, fileobj: Any, events: int, handler: Any) -> None:
        """Watch `fileobj` (a socket, a file or a descriptor) for `events` (READ, WRITE or
        both): `handler.on_event(mask)` runs when it is ready. KeyError when it is watched
        already; ValueError for a closed file or a descriptor the poller cannot watch
        (`fd_limit`), which would otherwise make every later wait fail."""
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        if fd in self._watched:
            raise KeyError(f"descriptor {fd} is watched already")
        if fd < 0:
            raise ValueError(f"{fileobj!r} is closed: it cannot be watched")
        limit = self.fd_limit
        if limit is not None and fd >= limit:
            raise ValueError(f"descriptor {fd} is beyond select()'s {limit}")
        self.poller.register(fd, POLL_BITS[events])
        self._handlers[fd] = handler.on_event
        self._watched[fd] = (events, fileobj, handler)

    def modify(self, fileobj: Any, events: int, handler: Any) -> None:
        """Watch `fileobj` for `events` with `handler` from now on; no system call when it
        is watched for those events already. KeyError when it is not watched."""
        fd = self._fd(fileobj)
        watched = self._watched.get(fd)
        if watched is None:
            raise KeyError(f"{fileobj!r} is not watched")
        if watched[0] != events:
            self.poller.modify(fd, POLL_BITS[events])
        elif watched[2] is handler:
            return
        self._handlers[fd] = handler.on_event
        self._watched[fd] = (events, fileobj, handler)

    def unregister(self, fileobj: Any) -> None:
        """Stop watching `fileobj`; nothing when it is not watched (or closed and gone)."""
        fd = self._fd(fileobj)
        if self._watched.pop(fd, None) is None:
            return
        del self._handlers[fd]
        try:
            self.poller.unregister(fd)
        except OSError:
            pass  # closed already, which took it out of epoll's set

    def _fd(self, fileobj: Any) -> int:
        """`fileobj`'s descriptor; for a socket closed since it was registered (whose
        fileno() is -1), the one it was registered under."""
        if isinstance(fileobj, int):
            return fileobj
        fd = fileobj.fileno()
        if fd < 0:
            for number, (_, watched, _) in self._watched.items():
                if watched is fileobj:
                    return number
        return fd

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
        self,
        interval: float,
        callback: Callable[[], Any],
        name: Optional[str] = None,
        internal: bool = False,
    ) -> Periodic:
        """Run `callback` every `interval` seconds on absolute deadlines, so it does not drift.

        `interval` is from MIN_INTERVAL to MAX_DELAY seconds (ValueError otherwise,
        TypeError for what is not a number). `name` labels it in the stats and the log;
        the default is the callback's `task_name`. `internal` marks the server's own
        tasks in the stats (the console tells them from an app's).
        """
        interval = seconds(interval, "interval", MIN_INTERVAL, MAX_DELAY)
        callback_checked(callback)
        if name is None:
            name = task_name(callback)
        elif not isinstance(name, str):
            raise TypeError(f"a task's name is a string, not {name!r}")
        handle = Periodic(
            time.monotonic() + interval, callback, interval, name, self.tasks, internal
        )
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
        """`sleep`: the poller waits until `lead` before the next deadline, then polls
        until it; `spin`: it never waits."""
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
            "failures": {name: failed.count for name, failed in self.failures.items()},
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
        tighten_timer_slack()
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
        elif timers:  # a timer far away is waited for in steps: a wait has a maximum
            timeout = timers[0].when - time.monotonic() - self.lead
            if timeout > MAX_WAIT:
                timeout = MAX_WAIT
            elif timeout < 0.0:
                timeout = 0.0
        else:
            timeout = None
        ready = self.poller.wait(timeout)
        clock = time.monotonic
        self.now = now = clock()  # the wake-up's time, as `_run_timers` sets it
        if timers and timers[0].when <= now:
            self._run_timers()
        handlers = self._handlers
        masks = MASKS
        for fd, bits in ready:
            on_event = handlers.get(fd)
            if on_event is None:  # unregistered by a handler before it in this batch
                continue
            try:
                on_event(masks[bits & 31])
            except Exception as err:
                self._event_failed(on_event.__self__, err)
            if timers and timers[0].when <= clock():  # due meanwhile: before the next
                self._run_timers()
        soon = self._soon
        for _ in range(len(soon)):
            self._run(soon.popleft())
            if timers and timers[0].when <= clock():
                self._run_timers()
        if self._idle:
            self._idle = [handle for handle in self._idle if not handle.cancelled]
            for handle in self._idle:
                self._run(handle.callback)

    def _run_timers(self) -> None:
        """Run the timers due now (`now` is read once, first), in deadline order. A
        periodic task is rescheduled before it runs, to a deadline after its start: it
        runs once here however late it is, and the loop goes on to the I/O."""
        timers = self._timers
        self.now = now = time.monotonic()
        while timers and timers[0].when <= now:
            handle = heapq.heappop(timers)
            if handle.cancelled:
                continue
            if handle.interval:  # a Periodic
                handle.advance(time.monotonic())
                heapq.heappush(timers, handle)
                self._run(handle.callback, handle)
            else:
                self._run(handle.callback)

    def _run(self, callback: Callable[[], Any], task: Optional[Periodic] = None) -> None:
        try:
            callback()
        except Exception as err:
            if task is None:
                self._failed(task_name(callback), "callback", err)
            else:
                task.errors += 1
                self._failed(task.name, "task", err)

    def _event_failed(self, handler: Any, err: Exception) -> None:
        """A bug in a handler must not stop the loop: log it and drop that handler's file."""
        name = type(handler).__qualname__
        self._failed(f"{name}.on_event", "event handler", err)
        abort = getattr(handler, "abort", None)
        if abort is not None:
            try:
                abort()
            except Exception as err:
                self._failed(f"{name}.abort", "event handler", err)

    def _failed(self, name: str, kind: str, err: BaseException) -> None:
        """Called in an `except` block: log the first failure of `name` with its
        traceback, count the others and summarise them once per `summary_every`."""
        failed = self.failures.get(name)
        if failed is None:
            failed = self.failures[name] = Failures(name)
        failed.count += 1
        if failed.count == 1:
            log.exception(
                "%s %s failed; further failures are counted and summarised every %g s",
                kind,
                name,
                self.summary_every,
            )
            return
        failed.unreported += 1
        failed.last = f"{type(err).__name__}: {err}"
        if failed.timer is None:
            failed.timer = self.call_later(self.summary_every, lambda: self._summarise(failed))

    def _summarise(self, failed: Failures) -> None:
        """One line for the failures of `failed` since its last line."""
        failed.timer = None
        if failed.unreported:
            log.error(
                "%s failed %d more times (%d in all); the last: %s",
                failed.name,
                failed.unreported,
                failed.count,
                failed.last,
            )
            failed.unreported = 0

    def close(self) -> None:
        """Release the loop's files; failures not yet summarised are summarised now."""
        for failed in self.failures.values():
            self._summarise(failed)
        if self._signal_handlers:
            signal.set_wakeup_fd(-1)
            for signum in self._signal_handlers:
                signal.signal(signum, signal.SIG_DFL)
            self._signal_handlers.clear()
        self.unregister(self._waker)
        self._waker.close()
        self._wake_writer.close()
        self.poller.close()
