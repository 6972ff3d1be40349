"""The simulated board: the default where no GPIO hardware exists, and the tests' board.

Like gpiozero's mock pins, every pin keeps its history of (monotonic time, value), so
tests and examples can check real timing. An output can be wired to an input (a
loopback), and inputs can be driven from code as if a button were pressed.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from gpio.base import Backend, GpioError, Pin

HISTORY_LIMIT = 20_000  # per pin (about 2 MB); the oldest half is dropped beyond it


class SimPin:
    __slots__ = ("history", "mode", "pull", "value")

    def __init__(self, mode: str, pull: str, value: int, now: float) -> None:
        self.mode = mode
        self.pull = pull
        self.value = value
        self.history: list[tuple[float, int]] = [(now, value)]


class SimBackend(Backend):
    """A board in memory whose pins record every value they are given."""

    name = "sim"
    simulated = True

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        # Seconds since the epoch at the clock's 0 (a history time plus it is wall time),
        # read once, when first asked for.
        self.epoch: Optional[float] = None
        self.pins: dict[int, SimPin] = {}
        self.wires: dict[int, list[int]] = {}  # output gpio -> inputs it drives

    def setup(self, pin: Pin) -> None:
        if pin.is_output:
            value = 1 if pin.initial else 0
        else:
            value = 1 if pin.pull == "up" else 0
        self.pins[pin.gpio] = SimPin(pin.mode, pin.pull, value, self.clock())

    def read(self, gpio: int) -> int:
        return self._pin(gpio).value

    def write(self, gpio: int, value: int) -> None:
        pin = self._pin(gpio)
        if pin.mode == "in":
            raise GpioError(f"GPIO {gpio} is an input and cannot be driven")
        value = 1 if value else 0
        self._record(pin, value)
        for target in self.wires.get(gpio, ()):
            self._record(self._pin(target), value)

    def drive(self, gpio: int, value: int) -> None:
        """Set an input's level from outside, as a button or a sensor would."""
        pin = self._pin(gpio)
        if pin.mode != "in":
            raise GpioError(f"GPIO {gpio} is an output: drive inputs only")
        self._record(pin, 1 if value else 0)

    def wire(self, output: int, input_: int) -> None:
        """Connect an output to an input: what the output drives, the input reads."""
        source, target = self._pin(output), self._pin(input_)
        if source.mode == "in":
            raise GpioError(f"GPIO {output} is an input: wire an output to an input")
        if target.mode != "in":
            raise GpioError(f"GPIO {input_} is an output: wire an output to an input")
        self.wires.setdefault(output, []).append(input_)
        self._record(target, source.value)

    def stamp(self, gpio: int) -> Optional[float]:
        """When the pin last changed, from its history, in seconds since the epoch."""
        if self.epoch is None:
            self.epoch = time.time() - self.clock()
        return self._pin(gpio).history[-1][0] + self.epoch

    def history(self, gpio: int) -> list[tuple[float, int]]:
        """Every (time, value) the pin has had, oldest first."""
        return list(self._pin(gpio).history)

    def _pin(self, gpio: int) -> SimPin:
        try:
            return self.pins[gpio]
        except KeyError:
            raise GpioError(f"GPIO {gpio} has not been set up") from None

    def _record(self, pin: SimPin, value: int) -> None:
        pin.value = value
        pin.history.append((self.clock(), value))
        if len(pin.history) > HISTORY_LIMIT:
            del pin.history[: HISTORY_LIMIT // 2]
