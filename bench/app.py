"""The 1 kHz task in httap: `httap serve --config bench/web.json5 --app bench/app.py`.

`server.every(0.001, tick)` runs on the poll loop; `GET /?bench/lateness` returns the
lateness figures (see lateness.py) as JSON and starts a new series.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent))  # behind the libraries: for lateness

from lateness import INTERVAL, Lateness


def setup(server) -> None:
    lateness = Lateness(INTERVAL)
    handle = server.every(INTERVAL, lambda: tick())
    due = handle.when  # the deadline of the next tick, as the loop scheduled it

    def tick() -> None:
        nonlocal due
        # The loop has already moved `handle.when` to the following deadline, past any
        # it skipped because this run started more than an interval late.
        lateness.ran(due, time.monotonic(), handle.when)
        due = handle.when

    @server.action("bench/lateness")
    def report(request):
        return lateness.report()
