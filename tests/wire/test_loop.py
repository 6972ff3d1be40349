"""Time in the loop: timers, periodic and idle tasks, the two modes, and the figures
`GET /?stats` gives about them.

The loop is real, and so is its clock: the tests assert behaviour (order, phase,
counts, never early) and leave speed alone, since the machine may be busy.
"""

from __future__ import annotations

import functools
import gc
import logging
import math
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from httap.loop import READ, WRITE, Epoll, Loop, Select, task_name, tighten_timer_slack
from tests.helpers import run_for, wait_for
from tests.helpers.client import Client
from tests.helpers.dynamic import call, check_error
from tests.helpers.processes import fetch

TICKER = """
def tick():
    pass

def setup(server):
    server.every(0.001, tick)
"""


# -- timers and tasks, on a bare loop --------------------------------------------------


def test_timers_run_in_deadline_order_and_never_early(loop):
    start = time.monotonic()
    ran: list[tuple[str, float, float]] = []

    def at(name: str, deadline: float):
        return lambda: ran.append((name, deadline, time.monotonic()))

    loop.call_later(0.03, at("third", start + 0.03))
    loop.call_at(start + 0.01, at("first", start + 0.01))
    loop.call_later(0.015, at("cancelled", start + 0.015)).cancel()
    loop.call_at(start + 0.02, at("second", start + 0.02))
    run_for(loop, 0.05)
    assert [name for name, _, _ in ran] == ["first", "second", "third"]
    assert all(when >= deadline for _, deadline, when in ran)


def test_every_keeps_its_phase_after_an_overrun(loop):
    interval = 0.01
    deadlines: list[float] = []

    def tick():
        deadlines.append(handle.when)  # the loop has already moved it to the next deadline
        if len(deadlines) == 2:
            time.sleep(3.5 * interval)

    handle = loop.every(interval, tick)
    first = handle.when
    run_for(loop, 0.2)
    steps = [(when - first) / interval for when in deadlines]
    assert all(abs(step - round(step)) < 1e-6 for step in steps), steps  # on the grid
    assert round(steps[2] - steps[1]) >= 3, steps  # the missed ticks were skipped
    assert handle.overruns >= 1
    assert handle.runs == len(deadlines)
    assert max(handle.lateness) >= 2.5 * interval  # the late run shows in the figures
    # Every deadline up to the next one is accounted for, run or skipped, and each has
    # its lateness in the figures: skipping hides nothing.
    assert handle.skipped >= 2
    assert handle.runs + handle.skipped == round(steps[-1])
    assert len(handle.lateness) == handle.runs + handle.skipped


class Slow:
    """A handler of a readable socket whose work takes 10 ms, during which, the first
    time, a timer falls due (`arm` schedules it 5 ms in)."""

    def __init__(self, loop: Loop, name: str, order: list[str], arm) -> None:
        self.mine, self.theirs = socket.socketpair()
        self.theirs.send(b"x")
        self.name, self.order, self.arm, self.loop = name, order, arm, loop
        loop.register(self.mine, READ, self)

    def on_event(self, mask: int) -> None:
        self.mine.recv(1)
        self.loop.unregister(self.mine)
        self.order.append(self.name)
        self.arm()
        time.sleep(0.01)

    def close(self) -> None:
        self.mine.close()
        self.theirs.close()


def test_a_timer_due_during_the_events_runs_between_two_of_them(loop):
    """Two connections ready in one wake-up: a timer that falls due while the first is
    handled runs before the second, not after all of them; the same between two
    callbacks queued with call_soon."""
    order: list[str] = []
    armed: list[str] = []

    def arm(name: str):
        def schedule() -> None:
            if not armed:
                armed.append(name)
                loop.call_later(0.005, lambda: order.append("timer"))

        return schedule

    handlers = [Slow(loop, name, order, arm("events")) for name in ("one", "two")]
    try:
        run_for(loop, 0.05)
    finally:
        for handler in handlers:
            handler.close()
    assert sorted(order) == ["one", "timer", "two"] and order[1] == "timer"

    order.clear()
    armed.clear()

    def soon(name: str):
        def work() -> None:
            order.append(name)
            arm("soon")()
            time.sleep(0.01)

        return work

    loop.call_soon(soon("first"))
    loop.call_soon(soon("second"))
    loop.run_once()
    assert order == ["first", "timer", "second"]


# -- files, on a bare loop --------------------------------------------------------------


def epoll_interest(loop: Loop) -> dict[int, int]:
    """What the kernel's epoll set of `loop` holds: {descriptor: event bits}, as
    /proc/self/fdinfo shows it (proc(5); EPOLLERR and EPOLLHUP are always in)."""
    lines = Path(f"/proc/self/fdinfo/{loop.poller.epoll.fileno()}").read_text().splitlines()
    fields = [line.split() for line in lines if line.startswith("tfd:")]
    return {int(field[1]): int(field[3], 16) & 0x1F for field in fields}


class Reader:
    """A handler that records its events."""

    def __init__(self) -> None:
        self.masks: list[int] = []

    def on_event(self, mask: int) -> None:
        self.masks.append(mask)


def test_a_file_stays_in_epoll_and_its_interest_changes_only_when_asked(loop):
    """Registered once; modify() with other events changes the kernel's set, with the
    same events it makes no system call (shown by a socket closed meanwhile, which epoll
    dropped: a call would fail); unregister() takes it out."""
    assert isinstance(loop.poller, Epoll) and loop.fd_limit is None
    mine, theirs = socket.socketpair()
    fd, handler = mine.fileno(), Reader()
    loop.register(mine, READ, handler)
    assert epoll_interest(loop)[fd] == 0x19  # EPOLLIN | EPOLLERR | EPOLLHUP
    loop.modify(mine, READ | WRITE, handler)
    assert epoll_interest(loop)[fd] == 0x1D  # and EPOLLOUT
    loop.run_once()
    assert handler.masks == [WRITE]  # a socket with room to write
    loop.modify(mine, READ, handler)
    assert epoll_interest(loop)[fd] == 0x19
    with pytest.raises(KeyError, match="watched already"):
        loop.register(mine, WRITE, handler)
    mine.close()  # the last reference: epoll drops it (epoll(7))
    assert fd not in epoll_interest(loop)
    loop.modify(mine, READ, handler)  # unchanged: no call, so no error
    with pytest.raises(OSError):
        loop.modify(mine, WRITE, handler)  # changed: epoll_ctl() on a closed descriptor
    loop.unregister(mine)  # found by the socket itself, whose fileno() is now -1
    loop.unregister(mine)  # not watched: nothing
    theirs.close()


@pytest.mark.parametrize("poller", [Epoll, Select])
def test_a_file_unregistered_by_an_earlier_handler_of_the_batch_gets_no_event(poller):
    """Two sockets ready in one wake-up, each handler unregistering and closing the
    other's: only the first handler runs, the second's socket is gone."""
    loop = Loop(poller())
    pairs = [socket.socketpair() for _ in range(2)]
    ran: list[int] = []

    class Closer:
        def __init__(self, index: int) -> None:
            self.index = index

        def on_event(self, mask: int) -> None:
            ran.append(self.index)
            other = pairs[1 - self.index][0]
            loop.unregister(other)
            other.close()

    try:
        for index, (mine, theirs) in enumerate(pairs):
            loop.register(mine, READ, Closer(index))
            theirs.send(b"x")
        loop.run_once()
        assert len(ran) == 1
    finally:
        for mine, theirs in pairs:
            mine.close()
            theirs.close()
        loop.close()


@pytest.mark.parametrize("wait", [0.0004, 0.0015])
def test_a_timed_wait_in_epoll_is_not_rounded_up_to_milliseconds(loop, wait):
    """epoll_wait() rounds its timeout up to whole milliseconds (here 1 and 2 ms): a
    loop waiting in it for a timer `wait` seconds ahead would run it 0.5-0.6 ms late.
    It runs at its time, never early; the best of five tries is well under that (the
    best, for a shared machine; the figures are in docs/performance.md)."""
    lateness: list[float] = []
    for _ in range(5):
        start = time.monotonic()
        due = start + wait
        loop.call_at(due, lambda due=due: lateness.append(time.monotonic() - due))
        count = len(lateness)
        while len(lateness) == count:
            loop.run_once()
    assert min(lateness) >= 0 and min(lateness) < 0.0002, lateness


def test_a_cancelled_task_stops_and_leaves_the_stats(loop):
    runs: list[float] = []
    handle = loop.every(0.001, lambda: runs.append(1), name="blink")
    seen: list[tuple[list, int]] = []

    def cancel():
        seen.append(([task["name"] for task in loop.stats()["tasks"]], len(runs)))
        handle.cancel()
        handle.cancel()  # twice is harmless

    loop.call_later(0.05, cancel)
    run_for(loop, 0.1)
    (names, count), *_ = seen
    assert names == ["blink"] and count > 0
    assert len(runs) == count
    assert loop.stats()["tasks"] == []


def test_idle_callbacks_run_every_iteration_until_cancelled(loop):
    calls: list[int] = []
    handle = loop.idle(lambda: calls.append(loop.iterations))
    for _ in range(5):
        loop.run_once()
    assert calls == [1, 2, 3, 4, 5]
    handle.cancel()
    run_for(loop, 0.02)
    assert calls == [1, 2, 3, 4, 5]


def test_the_mode_is_sleep_or_spin(loop):
    assert loop.mode == "sleep"
    loop.mode = "spin"
    assert loop.mode == "spin" and loop.spin
    with pytest.raises(ValueError, match="'sleep' or 'spin', not 'fast'"):
        loop.mode = "fast"
    assert loop.mode == "spin"


# -- through the server ----------------------------------------------------------------


def test_stats_list_the_tasks_of_an_app(make_server, tmp_path):
    app = tmp_path / "app.py"
    app.write_text(TICKER)
    running = make_server(app=str(app))
    client = Client(running.connect())

    def ticker() -> dict:
        reply = client.get("/?stats")
        assert reply.status == 200
        tasks = [task for task in reply.json()["tasks"] if task["name"] == "tick"]
        return tasks[0] if tasks and tasks[0]["runs"] > 10 else {}

    task = wait_for(ticker)
    assert task["interval_us"] == 1000.0
    assert isinstance(task["overruns"], int) and task["overruns"] >= 0
    assert isinstance(task["skipped"], int) and task["skipped"] >= 0
    late = task["lateness_us"]
    assert 0 <= late["median"] <= late["p99"] <= late["max"]
    stats = client.get("/?stats").json()
    assert stats["mode"] == "sleep"
    assert stats["iterations_per_second"] > 0
    assert {"iterations", "requests", "connections", "uptime"} <= set(stats)
    client.close()


STALLING = """
import time

def setup(server):
    def tick():
        if task.runs == 5:
            time.sleep(0.3)  # a stall of 15 periods: the loop skips what it missed

    task = server.every(0.02, tick, name="stalling")
"""


def test_stats_count_the_deadlines_a_stall_made_the_task_skip(make_server, tmp_path):
    """A 50 Hz task that blocks the loop for 0.3 s once: at least 13 deadlines passed
    meanwhile (15, less the one served and the edges). `/?stats` counts them as
    skipped, and each one's lateness is in the task's window of figures."""
    app = tmp_path / "app.py"
    app.write_text(STALLING)
    running = make_server(app=str(app))
    client = Client(running.connect())

    def stalled() -> dict:
        (task,) = client.get("/?stats").json()["tasks"]
        return task if task["runs"] > 6 else {}

    task = wait_for(stalled)
    assert task["name"] == "stalling" and task["skipped"] >= 13 and task["overruns"] >= 1
    assert task["lateness_us"]["max"] >= 280_000
    handle = running.call(lambda: running.server.loop.tasks[0])
    assert len(handle.lateness) == handle.runs + handle.skipped
    assert client.get("/?ping").status == 200
    client.close()


def test_the_loop_mode_over_http_needs_the_lease(make_server):
    running = make_server()
    holder = Client(running.connect("127.0.0.1"))
    other = Client(running.connect("127.0.0.2"))
    reply = call(holder, "GET", "/?loop")
    assert (reply.status, reply.json()) == (200, {"mode": "sleep"})
    reply = call(holder, "POST", "/?loop", {"mode": "spin"})
    assert (reply.status, reply.json()) == (200, {"mode": "spin"})
    assert running.call(lambda: running.server.mode) == "spin"

    check_error(call(other, "POST", "/?loop", {"mode": "sleep"}), 503, "busy", "127.0.0.1")
    assert call(other, "GET", "/?loop").json() == {"mode": "spin"}  # reads stay open
    for body in ({"mode": "fast"}, ["spin"], '"spin"'):
        check_error(call(holder, "POST", "/?loop", body), 400, "bad-value", "sleep", "spin")
    check_error(call(holder, "POST", "/?loop", "spin"), 400, "bad-json")
    assert call(holder, "PUT", "/?loop", "1").headers["allow"] == "GET, HEAD, POST"
    reply = call(holder, "POST", "/?loop", {"mode": "sleep"})
    assert (reply.status, reply.json()) == (200, {"mode": "sleep"})
    with pytest.raises(ValueError):
        running.server.mode = "turbo"
    holder.close()
    other.close()


def test_spinning_iterates_far_more_than_sleeping(make_server):
    running = make_server()

    def iterations_in(seconds: float) -> int:
        before = running.call(lambda: running.server.loop.iterations)
        time.sleep(seconds)
        return running.call(lambda: running.server.loop.iterations) - before

    sleeping = iterations_in(0.3)
    running.call(lambda: setattr(running.server, "mode", "spin"))
    spinning = iterations_in(0.3)
    running.call(lambda: setattr(running.server, "mode", "sleep"))
    assert spinning > 20 * max(sleeping, 1), (spinning, sleeping)


def test_due_timers_run_before_the_requests_of_the_same_wake_up(make_server):
    running = make_server()
    order: list[str] = []
    mark = running.server.action("mark")
    running.call(lambda: mark(lambda request: order.append("request") or {}))
    client = Client(running.connect())
    assert client.get("/?mark").status == 200  # the connection is accepted and idle
    order.clear()
    blocked = threading.Event()

    def block():
        running.server.call_later(0.02, lambda: order.append("timer"))
        blocked.set()
        time.sleep(0.1)  # the request arrives now; the timer falls due 20 ms in

    running.server.loop.call_threadsafe(block)
    assert blocked.wait(5)
    client.send(b"GET /?mark HTTP/1.1\r\nHost: test\r\n\r\n")
    assert client.read().status == 200
    assert order == ["timer", "request"]
    client.close()


def test_cancelled_timers_do_not_pile_up_in_the_heap():
    """Connections arm and cancel a timer each; their coming and going must not grow the
    heap without bound while the timers' deadlines are still far away."""
    loop = Loop()
    try:
        kept = loop.call_later(60, lambda: None)
        for _ in range(50_000):
            loop.call_later(60, lambda: None).cancel()
        assert len(loop._timers) < 5_000
        assert kept in loop._timers and not kept.cancelled
    finally:
        loop.close()


@pytest.mark.skipif(not os.path.exists("/proc/self/timerslack_ns"), reason="Linux 4.6 and later")
def test_the_serving_loop_waits_without_timer_slack(spawn):
    """`httap serve` runs its loop in the main thread, which has the kernel end its
    waits on time: a timer slack of 1 ns, not the default 50 µs. A loop in another
    thread leaves the process's slack alone (the file is the main thread's)."""
    process = spawn("serve", "--listen", "http://127.0.0.1:0", "--gpio", "sim")
    assert fetch(process, "/?ping").status == 200  # the loop runs
    assert Path(f"/proc/{process.proc.pid}/timerslack_ns").read_text().strip() == "1"
    elsewhere: list[bool] = []
    thread = threading.Thread(target=lambda: elsewhere.append(tighten_timer_slack()))
    thread.start()
    thread.join()
    assert elsewhere == [False]


def test_what_the_start_up_built_is_frozen_out_of_the_collector(make_server):
    """While it serves, the objects the start-up made are frozen (gc.freeze()): a full
    collection walks only what came since; `/?stats` shows how many. Thawed once the
    server has stopped."""
    running = make_server()
    assert running.call(gc.get_freeze_count) > 1000
    client = Client(running.connect())
    collector = client.get("/?stats").json()["gc"]
    client.close()
    assert collector["frozen"] > 1000 and len(collector["collections"]) == 3
    assert running.call(lambda: len(gc.get_objects(generation=2))) < running.call(
        gc.get_freeze_count
    )
    running.stop()
    assert gc.get_freeze_count() == 0


# -- numbers the loop is given, and how far it waits -----------------------------------


def test_a_timer_far_in_the_future_does_not_stop_the_loop(loop):
    """select() has a largest timeout: a loop whose next timer lay 1e11 s away raised
    OverflowError, and ended. The wait is clamped; the far timer stays scheduled."""
    ran: list[str] = []
    far = loop.call_at(time.monotonic() + 1e11, lambda: ran.append("far"))
    waker = threading.Timer(0.05, lambda: loop.call_threadsafe(loop.stop))
    waker.start()  # the loop waits for the far timer alone until another thread stops it
    try:
        loop.run()
    finally:
        waker.join()
    assert loop.iterations >= 1 and ran == []
    assert far in loop._timers and not far.cancelled


BAD_NUMBERS = [
    # (method, arguments, exception, words of the message)
    ("every", (0, print), ValueError, "interval is from 1e-06 to 31622400 seconds, not 0"),
    ("every", (-1, print), ValueError, "interval is from"),
    ("every", (math.nan, print), ValueError, "not nan"),
    ("every", (math.inf, print), ValueError, "not inf"),
    ("every", (1e11, print), ValueError, "to 31622400 seconds, not 1"),
    ("every", ("0.5", print), TypeError, "interval is a number of seconds, not str"),
    ("every", (True, print), TypeError, "not bool"),
    ("every", (0.5, "print"), TypeError, "callback must be callable"),
    ("every", (0.5, print, 7), TypeError, "name is a string"),
    ("call_later", (-1, print), ValueError, "delay is from 0 to 31622400 seconds, not -1"),
    ("call_later", (math.nan, print), ValueError, "not nan"),
    ("call_later", (math.inf, print), ValueError, "not inf"),
    ("call_later", (1e11, print), ValueError, "delay is from 0"),
    ("call_later", (None, print), TypeError, "delay is a number of seconds, not NoneType"),
    ("call_later", (1, None), TypeError, "callback must be callable"),
    ("call_at", (math.nan, print), ValueError, "time.monotonic() time"),
    ("call_at", (-math.inf, print), ValueError, "not -inf"),
    ("call_at", (-1, print), ValueError, "from 0 to"),
    ("call_at", (time.monotonic() + 1e11, print), ValueError, "up to a year from now"),
    ("call_at", ("soon", print), TypeError, "not str"),
    ("idle", (42,), TypeError, "callback must be callable (a function), not 42"),
]


@pytest.mark.parametrize("method, args, error, words", BAD_NUMBERS)
def test_the_app_api_refuses_a_bad_number_at_the_call(make_server, method, args, error, words):
    running = make_server()
    with pytest.raises(error) as caught:
        getattr(running.server, method)(*args)
    assert words in str(caught.value)
    client = Client(running.connect())
    assert client.get("/?ping").status == 200  # nothing was scheduled, the loop goes on
    assert running.call(lambda: running.server.loop.stats()["tasks"]) == []
    client.close()


def test_a_bad_number_in_an_app_stops_the_start_with_its_line(tmp_path):
    app = tmp_path / "app.py"
    app.write_text("def setup(server):\n    server.every(0, print)\n")
    serve = ("serve", "--listen", "http://127.0.0.1:0", "--gpio", "sim", "--app", str(app))
    done = subprocess.run(
        [sys.executable, "-m", "httap", *serve],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"httap: cannot load the app {app}, line 2: ValueError:"
        " interval is from 1e-06 to 31622400 seconds, not 0"
    )


# -- callbacks that raise ----------------------------------------------------------------


FAILING = """
def setup(server):
    def toggle():
        raise ZeroDivisionError("no rate")

    server.every(0.005, toggle)
"""


def test_a_failing_task_is_logged_once_then_counted(make_server, tmp_path, caplog):
    """A task that raises on every tick: one traceback, under a readable name; the
    repeats are counted in /?stats and summarised in one line (here when the server
    stops, sooner than the once a minute the summaries come otherwise)."""
    app = tmp_path / "app.py"
    app.write_text(FAILING)
    caplog.set_level(logging.INFO, logger="httap.loop")
    running = make_server(app=str(app))
    client = Client(running.connect())

    def failed_enough() -> dict:
        stats = client.get("/?stats").json()
        (task,) = stats["tasks"]
        return stats if task["errors"] >= 40 else {}

    stats = wait_for(failed_enough)
    (task,) = stats["tasks"]
    assert task["name"] == "setup.toggle" and task["runs"] >= task["errors"] >= 40
    assert stats["failures"]["setup.toggle"] >= task["errors"]
    assert client.get("/?ping").status == 200
    client.close()
    lines = [record for record in caplog.records if record.name == "httap.loop"]
    (first,) = lines  # one line so far, however many ticks failed
    assert first.getMessage() == (
        "task setup.toggle failed; further failures are counted and summarised every 60 s"
    )
    assert first.exc_info[0] is ZeroDivisionError  # with its traceback
    running.stop()
    errors = running.server.loop.failures["setup.toggle"].count
    lines = [record for record in caplog.records if record.name == "httap.loop"]
    assert len(lines) == 2
    assert lines[1].getMessage() == (
        f"setup.toggle failed {errors - 1} more times ({errors} in all);"
        " the last: ZeroDivisionError: no rate"
    )
    assert lines[1].exc_info is None
    assert all("<locals>" not in line.getMessage() for line in lines)


class Broken:
    """An event handler with a bug, on a socket that stays readable."""

    def __init__(self, loop: Loop) -> None:
        self.mine, self.theirs = socket.socketpair()
        self.theirs.send(b"x")
        self.aborts = 0
        loop.register(self.mine, READ, self)

    def on_event(self, mask: int) -> None:
        raise KeyError("bug")

    def abort(self) -> None:  # keeps the file registered: the bug comes back each time
        self.aborts += 1


def test_repeated_failures_are_summarised_at_most_once_per_period(caplog):
    """Each kind of callback: a task, a timer re-armed by itself, an idle callback and
    an event handler. Each logs its first failure with a traceback, then a summary line
    no sooner than `summary_every` after the last line, and the counts add up."""
    caplog.set_level(logging.INFO, logger="httap.loop")
    loop = Loop()
    loop.summary_every = 0.05
    runs = {"timer": 0}

    def tick():
        raise ValueError("tick")

    def again():
        runs["timer"] += 1
        loop.call_later(0.001, again)
        raise OSError("again")

    def lazy():
        raise RuntimeError("idle")

    task = loop.every(0.001, tick)
    loop.call_later(0.001, again)
    idler = loop.idle(lazy)
    broken = Broken(loop)
    try:
        loop.call_later(0.2, idler.cancel)
        run_for(loop, 0.3)
    finally:
        failures = {name: failed.count for name, failed in loop.failures.items()}
        loop.close()
        broken.mine.close()
        broken.theirs.close()
    names = {
        "test_repeated_failures_are_summarised_at_most_once_per_period.tick": task.errors,
        "test_repeated_failures_are_summarised_at_most_once_per_period.again": runs["timer"],
        "test_repeated_failures_are_summarised_at_most_once_per_period.lazy": None,
        "Broken.on_event": broken.aborts,
    }
    assert set(failures) == set(names)
    for name, count in names.items():
        lines = [r for r in caplog.records if r.name == "httap.loop" and name in r.getMessage()]
        assert failures[name] > 10 and (count is None or failures[name] == count), name
        first, *summaries = lines
        assert first.exc_info is not None and all(line.exc_info is None for line in summaries)
        assert 1 <= len(summaries) < failures[name] / 2, name
        told = 1 + sum(int(line.getMessage().split(" failed ")[1].split()[0]) for line in summaries)
        assert told == failures[name], name  # every failure is accounted for, once
        times = [line.created for line in lines[:-1]]  # the last one came at close
        assert all(b - a >= 0.05 - 0.002 for a, b in zip(times, times[1:])), (name, times)


def test_task_names_are_readable():
    def setup():
        def toggle():
            pass

        return toggle, lambda: None

    toggle, anonymous = setup()
    line = anonymous.__code__.co_firstlineno
    assert task_name(toggle) == "test_task_names_are_readable.setup.toggle"
    assert task_name(anonymous) == f"test_task_names_are_readable.setup.<lambda>:{line}"
    assert task_name(functools.partial(toggle)) == task_name(toggle)
    assert task_name(Broken.on_event) == "Broken.on_event"
    assert task_name(Client.close) == "Client.close"
    assert task_name(print) == "print"
    loop = Loop()
    try:
        assert task_name(Loop.stop) == task_name(loop.stop) == "Loop.stop"
        assert task_name(loop) == "Loop"  # an object without a name: its class
        assert loop.every(1, toggle).name == "test_task_names_are_readable.setup.toggle"
    finally:
        loop.close()


def test_stats_tell_the_servers_own_tasks_from_an_apps(make_server, tmp_path):
    """`internal`: true for the event streams' keep-alive (the console marks it), false
    for an app's task."""
    app = tmp_path / "app.py"
    app.write_text(TICKER)
    running = make_server(app=str(app))
    client = Client(running.connect())
    events = Client(running.connect())
    events.send(b"GET /?events HTTP/1.1\r\nHost: test\r\n\r\n")

    def tasks() -> dict:
        found = {task["name"]: task["internal"] for task in client.get("/?stats").json()["tasks"]}
        return found if "event keep-alive" in found else {}

    assert wait_for(tasks) == {"tick": False, "event keep-alive": True}
    events.close()
    client.close()
