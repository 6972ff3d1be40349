"""The 1 kHz task's lateness, computed the same way in every server that runs one.

A task has absolute deadlines (start + n * interval, on `time.monotonic`). A run due at
a deadline records `now - deadline` when it starts. A run that starts more than one
interval late skips the deadlines it missed and keeps the phase, as httap's
`Loop.every` does. Every deadline is counted, the skipped ones too: a skipped deadline
had no run of its own, so it is late until the run that follows it (the late run that
skipped it, which is the first to start after it), and that is its lateness, counted
as httap's loop counts it for `GET /?stats` (`Periodic.advance`). A stall therefore
shows in the percentiles with one sample per deadline it swallowed instead of one late
run among many punctual ones. `report()` returns the figures in microseconds and starts
a new series.
"""

from __future__ import annotations

import threading
from collections import deque

INTERVAL = 0.001  # 1 kHz
KEEP = 200_000  # the newest deadlines kept (200 s at 1 kHz): the list stays bounded


class Lateness:
    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self._lock = threading.Lock()  # the http.server design reads it from another thread
        self._samples: deque[float] = deque(maxlen=KEEP)  # seconds late, one per deadline
        self._runs = 0
        self._skipped = 0

    def ran(self, deadline: float, now: float, following: float) -> None:
        """A run due at `deadline` started at `now` (seconds, time.monotonic); the next
        run is due at `following`. The deadlines between the two were skipped: they had
        passed when this run started, each late by `now` less itself."""
        skipped = max(0, round((following - deadline) / self.interval) - 1)
        with self._lock:
            self._samples.append(now - deadline)
            self._samples.extend(now - deadline - k * self.interval for k in range(1, skipped + 1))
            self._runs += 1
            self._skipped += skipped

    def tick(self, deadline: float, now: float) -> float:
        """Record a run due at `deadline` starting at `now`; return the next deadline:
        the one after `deadline`, or, after an overrun, the first one after `now`."""
        following = deadline + self.interval
        if following <= now:  # overran: skip the missed deadlines, keep the phase
            following += ((now - following) // self.interval + 1) * self.interval
        self.ran(deadline, now, following)
        return following

    def report(self) -> dict:
        """{"deadlines", "runs", "skipped", "p50_us", "p99_us", "max_us"}: the deadlines
        counted (the runs and the deadlines they skipped) and their lateness; the figures
        restart."""
        with self._lock:
            samples = sorted(self._samples)
            runs, skipped = self._runs, self._skipped
            self._samples.clear()
            self._runs = self._skipped = 0
        count = len(samples)

        def at(q: float) -> float:
            return round(samples[min(count - 1, int(q * count))] * 1e6, 1) if count else 0.0

        return {
            "deadlines": count,
            "runs": runs,
            "skipped": skipped,
            "p50_us": at(0.50),
            "p99_us": at(0.99),
            "max_us": round(samples[-1] * 1e6, 1) if count else 0.0,
        }
