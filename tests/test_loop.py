"""Time in the loop: timers, periodic and idle tasks, the two modes, and the figures
`GET /?stats` gives about them.

The loop is real, and so is its clock: the tests assert behaviour (order, phase,
counts, never early) and leave speed alone, since the machine may be busy.
"""

from __future__ import annotations

import threading
import time

import pytest

from httap.loop import Loop
from tests.client import Client
from tests.conftest import wait_for
from tests.test_manager import call, check_error

TICKER = """
def tick():
    pass

def setup(server):
    server.every(0.001, tick)
"""


@pytest.fixture
def loop():
    loop = Loop()
    yield loop
    loop.close()


def run_for(loop: Loop, seconds: float) -> None:
    loop.call_later(seconds, loop.stop)
    loop.run()


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
    late = task["lateness_us"]
    assert 0 <= late["median"] <= late["p99"] <= late["max"]
    stats = client.get("/?stats").json()
    assert stats["mode"] == "sleep"
    assert stats["iterations_per_second"] > 0
    assert {"iterations", "requests", "connections", "uptime"} <= set(stats)
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
