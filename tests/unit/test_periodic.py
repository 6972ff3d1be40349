"""A periodic task's bookkeeping (httap/loop.py, `Periodic.advance`): every deadline
counts, the ones skipped after an overrun too, each late until the run that follows.

Times are plain numbers handed in by the test (binary fractions, exact in floats): no
loop, no clock, no socket.
"""

from __future__ import annotations

import pytest

from httap.loop import WINDOW, Periodic


def task(when: float = 1.0, interval: float = 0.25) -> Periodic:
    return Periodic(when, lambda: None, interval, "tick", [])


def test_a_run_on_time_records_its_own_lateness_and_moves_one_step():
    periodic = task()
    periodic.advance(1.0625)
    assert list(periodic.lateness) == [0.0625]
    assert (periodic.runs, periodic.skipped, periodic.overruns) == (1, 0, 0)
    assert periodic.when == 1.25


def test_skipped_deadlines_are_late_until_the_run_that_follows():
    """Due at 1.0, it starts at 1.8: the deadlines 1.25, 1.5 and 1.75 have passed. They
    are skipped (no burst of runs), and each is recorded as late until 1.8."""
    periodic = task()
    periodic.advance(1.8)
    assert list(periodic.lateness) == pytest.approx([0.8, 0.55, 0.3, 0.05])
    assert (periodic.runs, periodic.skipped, periodic.overruns) == (1, 3, 1)
    assert periodic.when == 2.0  # the next deadline on the grid after the start
    periodic.advance(2.0)
    assert (periodic.runs, periodic.skipped, len(periodic.lateness)) == (2, 3, 5)
    assert periodic.lateness[-1] == 0.0 and periodic.when == 2.25


def test_a_start_exactly_on_a_later_deadline_skips_it_too():
    periodic = task()
    periodic.advance(1.5)  # 1.25 and 1.5 have both come: 1.5 is served late, not early
    assert list(periodic.lateness) == [0.5, 0.25, 0.0]
    assert (periodic.skipped, periodic.when) == (2, 1.75)


def test_the_stats_count_skipped_deadlines_in_the_percentiles():
    """200 runs on time, then one that starts 5 s late. Counting runs only, that is one
    late run in 201 and the p99 is 0; counting every deadline, the 5 skipped ones are
    late too (4 s down to 0 s), and the p99 shows the stall."""
    periodic = task(when=0.0, interval=1.0)
    for second in range(200):
        periodic.advance(float(second))
    periodic.advance(205.0)  # due at 200; 201 to 205 have passed
    stats = periodic.stats()
    assert (stats["runs"], stats["skipped"], stats["overruns"]) == (201, 5, 1)
    assert stats["lateness_us"] == {"median": 0.0, "p99": 3e6, "max": 5e6}
    assert sorted(periodic.lateness)[-6:] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_a_long_stall_keeps_the_newest_window_of_deadlines():
    periodic = task(when=0.0, interval=1.0)
    periodic.advance(5000.0)
    assert periodic.skipped == 5000 and len(periodic.lateness) == WINDOW
    assert periodic.lateness[-1] == 0.0 and periodic.lateness[0] == WINDOW - 1
    assert periodic.when == 5001.0
