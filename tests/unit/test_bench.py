"""The benchmark's own rules (bench/, no server run): every deadline of the 1 kHz task is
counted, a skipped one as late until the run that follows it (issue 14), as the loop
counts it, and each goal is judged on figures the run measures."""

from __future__ import annotations

import sys

import pytest

from tests.helpers import ROOT

MS = 0.001


@pytest.fixture(scope="module")
def bench():
    """bench/'s modules (plain names, as bench/run.py imports them), then forgotten."""
    sys.path.insert(0, str(ROOT / "bench"))
    before = set(sys.modules)
    try:
        import goals
        import lateness
        import results

        yield {"goals": goals, "lateness": lateness, "results": results}
    finally:
        sys.path.remove(str(ROOT / "bench"))
        for name in set(sys.modules) - before:
            del sys.modules[name]


def stalled(lateness, report: bool = False) -> dict:
    """Four runs on time, one 3.5 ms late (its next three deadlines skipped), the next
    one 0.1 ms late; with `report`, the figures are read before that last run."""
    late = lateness.Lateness(MS)
    deadline = 0.0
    for start in (0.0, 1 * MS, 2 * MS, 3 * MS, 4 * MS + 3.5 * MS):
        deadline = late.tick(deadline, start)
    assert deadline == pytest.approx(8 * MS)  # 5, 6 and 7 ms passed: the phase is kept
    first = late.report() if report else None
    late.tick(deadline, 8.1 * MS)
    return {"first": first, "then": late.report()}


def test_a_skipped_deadline_is_late_until_the_run_that_follows(bench):
    got = stalled(bench["lateness"])["then"]
    # Latenesses: 0, 0, 0, 0 (on time), 3.5 ms (the run due at 4 ms, which starts at 7.5
    # ms), 2.5, 1.5, 0.5 ms (5, 6 and 7 ms, late until that run), 0.1 ms (the run at 8 ms).
    assert got == {
        "deadlines": 9,
        "runs": 6,
        "skipped": 3,
        "p50_us": pytest.approx(100.0),  # counting only the runs, it would be 0
        "p99_us": pytest.approx(3500.0),
        "max_us": pytest.approx(3500.0),
    }


def test_skipped_deadlines_count_in_the_series_of_the_run_that_follows_them(bench):
    got = stalled(bench["lateness"], report=True)
    assert got["first"]["skipped"] == 3
    assert got["first"]["deadlines"] == 8  # five runs and the three deadlines skipped
    assert got["first"]["max_us"] == pytest.approx(3500.0)
    assert got["then"] == {**got["then"], "deadlines": 1, "runs": 1, "skipped": 0}


def test_ran_with_the_loops_next_deadline_counts_as_tick_does(bench):
    """bench/app.py gives httap's loop's next deadline to `ran`; the peers call `tick`."""
    late = bench["lateness"].Lateness(MS)
    late.ran(4 * MS, 7.5 * MS, 8 * MS)  # the loop skipped 5, 6 and 7 ms
    late.ran(8 * MS, 8.1 * MS, 9 * MS)
    assert late.report()["skipped"] == 3
    assert stalled(bench["lateness"])["then"]["skipped"] == 3


def test_every_goal_is_judged_on_figures_the_run_measures(bench):
    keys = {key for key, _, _ in bench["results"].FIGURES}
    for goal in bench["goals"].GOALS:
        for figure in (goal.of, goal.to):
            assert figure is None or figure[1] in keys, (goal.label, figure)


def test_a_ratio_goal_passes_misses_or_is_not_measured(bench):
    results = bench["results"].Results()
    read = next(goal for goal in bench["goals"].GOALS if goal.to == ("uvicorn", "gpio_rps_10"))
    assert read.judge(results) == ("not measured", None)
    results.set("httap", "gpio_rps_10", 100_000)
    assert read.judge(results) == ("not measured", None)
    results.set("uvicorn", "gpio_rps_10", 50_000)
    assert read.judge(results) == ("2.00x uvicorn (100,000 / 50,000)", True)
    results.set("uvicorn", "gpio_rps_10", 50_001)
    assert read.judge(results)[1] is False
    assert read.goal() == "≥ 2x uvicorn"


def test_a_limit_goal_is_at_most_its_limit(bench):
    results = bench["results"].Results()
    rss = next(goal for goal in bench["goals"].GOALS if goal.of == ("httap", "rss_bare"))
    results.set("httap", "rss_bare", 16.0)
    assert rss.judge(results) == ("16.0 MiB", True)
    results.set("httap", "rss_bare", 16.01)
    assert rss.judge(results)[1] is False
