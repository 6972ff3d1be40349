"""The 1 kHz task in httap: `httap serve --config bench/web.json5 --app bench/app.py`.

`server.every(0.001, tick)` runs on the poll loop; `GET /?bench/lateness` returns the
lateness figures (see lateness.py) as JSON and starts a new series.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lateness import INTERVAL, Lateness


def setup(server) -> None:
    lateness = Lateness(INTERVAL)
    handle = server.every(INTERVAL, lambda: tick())
    due = handle.when  # the deadline of the next tick, as the loop scheduled it

    def tick() -> None:
        nonlocal due
        now = time.monotonic()
        # The loop has already moved `handle.when` to the following deadline, past any
        # ticks it skipped because this one ran more than an interval late.
        missed = max(0, round((handle.when - due) / INTERVAL) - 1)
        lateness.add(now - due, missed)
        due = handle.when

    @server.action("bench/lateness")
    def report(request):
        return lateness.report()
