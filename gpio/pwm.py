"""PWM bit-banged with the poll loop's timers, for boards without it: no thread.

Edges are scheduled on absolute times (start + n * period), so the frequency does not
drift when one edge runs late; a late edge shows as jitter, never as a slower wave.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from gpio.base import Backend

Scheduler = Callable[[float, Callable[[], Any]], Any]  # call_at(when, fn) -> handle


class SoftPwm:
    """Drives one output as a square wave of `frequency` Hz and `duty` (0 to 1)."""

    def __init__(
        self, backend: Backend, gpio: int, call_at: Scheduler, clock: Callable[[], float]
    ) -> None:
        self.backend = backend
        self.gpio = gpio
        self.call_at = call_at
        self.clock = clock
        self.frequency = 0.0
        self.duty = 0.0
        self._handle: Optional[Any] = None
        self._start = 0.0
        self._cycle = 0

    def start(self, frequency: float, duty: float) -> None:
        self.stop()
        self.frequency, self.duty = frequency, duty
        if duty <= 0.0 or duty >= 1.0:
            self.backend.write(self.gpio, 1 if duty >= 1.0 else 0)
            return
        self._start = self.clock()
        self._cycle = 0
        self._rise()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    @property
    def running(self) -> bool:
        return self._handle is not None

    def _rise(self) -> None:
        self._handle = None  # if the board fails below, the wave has stopped: say so
        period = 1.0 / self.frequency
        cycle_start = self._start + self._cycle * period
        self.backend.write(self.gpio, 1)
        self._handle = self.call_at(cycle_start + self.duty * period, self._fall)

    def _fall(self) -> None:
        self._handle = None
        self.backend.write(self.gpio, 0)
        self._cycle += 1
        period = 1.0 / self.frequency
        next_start = self._start + self._cycle * period
        behind = self.clock() - next_start
        if behind >= self.duty * period:  # whole pulses are past: skip them, keep the phase
            self._cycle += int((behind - self.duty * period) / period) + 1
            next_start = self._start + self._cycle * period
        # else the next rise is due now or later; late, it comes at once (a shorter pulse)
        self._handle = self.call_at(next_start, self._rise)
