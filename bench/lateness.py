"""The 1 kHz task's lateness, computed the same way in every server that runs one.

A tick due at an absolute deadline (start + n * interval, on `time.monotonic`) records
`now - deadline` when it runs. A tick that runs more than one interval late skips the
ticks it missed and keeps the phase, as httap's `Loop.every` does; the skipped ticks are
counted, and each is a deadline that was late until the tick that ran, by `now` less
its own time: the percentiles cover every deadline, so skipping cannot hide a stall.
`report()` returns the figures in microseconds and starts a new series: `ticks` that
ran, `missed` (skipped) ones, and p50, p99 and max over the `ticks + missed` deadlines.
"""

from __future__ import annotations

import threading
from collections import deque

INTERVAL = 0.001  # 1 kHz
KEEP = 200_000  # the newest samples kept (200 s at 1 kHz): the list stays bounded


class Lateness:
    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self._lock = threading.Lock()  # the http.server design reads it from another thread
        self._samples: deque[float] = deque(maxlen=KEEP)  # one per deadline
        self._ticks = 0
        self._missed = 0

    def add(self, late: float, missed: int = 0) -> None:
        """One tick ran `late` seconds after its deadline; the `missed` deadlines after
        that one were skipped, each late by `late` less its distance to the first."""
        with self._lock:
            self._samples.append(late)
            self._samples.extend(late - step * self.interval for step in range(1, missed + 1))
            self._ticks += 1
            self._missed += missed

    def tick(self, deadline: float, now: float) -> float:
        """Record a tick due at `deadline` running at `now`; return the next deadline."""
        following = deadline + self.interval
        missed = 0
        if following <= now:  # overran: skip the missed ticks, keep the phase
            missed = int((now - following) // self.interval) + 1
            following += missed * self.interval
        self.add(now - deadline, missed)
        return following

    def report(self) -> dict:
        with self._lock:
            samples = sorted(self._samples)
            ticks, missed = self._ticks, self._missed
            self._samples.clear()
            self._ticks = self._missed = 0
        count = len(samples)

        def at(q: float) -> float:
            return round(samples[min(count - 1, int(q * count))] * 1e6, 1) if count else 0.0

        return {
            "ticks": ticks,
            "missed": missed,
            "p50_us": at(0.50),
            "p99_us": at(0.99),
            "max_us": round(samples[-1] * 1e6, 1) if count else 0.0,
        }
