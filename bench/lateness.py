"""The 1 kHz task's lateness, computed the same way in every server that runs one.

A tick due at an absolute deadline (start + n * interval, on `time.monotonic`) records
`now - deadline` when it runs. A tick that runs more than one interval late skips the
ticks it missed and keeps the phase, as httap's `Loop.every` does; the skipped ticks are
counted. `report()` returns the figures in microseconds and starts a new series.
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
        self._samples: deque[float] = deque(maxlen=KEEP)
        self._missed = 0

    def add(self, late: float, missed: int = 0) -> None:
        """One tick ran `late` seconds after its deadline; `missed` ticks were skipped."""
        with self._lock:
            self._samples.append(late)
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
            missed = self._missed
            self._samples.clear()
            self._missed = 0
        count = len(samples)

        def at(q: float) -> float:
            return round(samples[min(count - 1, int(q * count))] * 1e6, 1) if count else 0.0

        return {
            "ticks": count,
            "missed": missed,
            "p50_us": at(0.50),
            "p99_us": at(0.99),
            "max_us": round(samples[-1] * 1e6, 1) if count else 0.0,
        }
