"""The simulated board: the default where no GPIO hardware exists, and the tests' board.

Like gpiozero's mock pins, every pin keeps its history of (monotonic time, value), so
tests and examples can check real timing. An output can be wired to an input (a
loopback), and inputs can be driven from code as if a button were pressed.

Its inputs give edge events as libgpiod's line requests do (`watch`, `edges`): a pipe
whose read end becomes readable when an edge arrives, the edges timestamped on the
board's clock in nanoseconds with a sequence number per line, and at most
KERNEL_EVENTS kept, the oldest dropped first, as the kernel does (drivers/gpio/
gpiolib-cdev.c: a line's kfifo of 16 events). So the loop's edge path runs on the
simulated board exactly as on a Pi 5. `SimBackend(edges=False)` has no descriptors,
as RPi.GPIO: its watched inputs are sampled.
"""

from __future__ import annotations

import os
import time
from collections import deque
from typing import Callable, Optional

from gpio.base import Backend, Edge, GpioError, Pin

HISTORY_LIMIT = 20_000  # per pin (about 2 MB); the oldest half is dropped beyond it
KERNEL_EVENTS = 16  # edges the kernel keeps per line until they are read


class SimPin:
    __slots__ = ("debounce", "events", "history", "mode", "pipe", "pull", "seqno", "value")

    def __init__(self, mode: str, pull: str, value: int, now: float) -> None:
        self.mode = mode
        self.pull = pull
        self.value = value
        self.history: list[tuple[float, int]] = [(now, value)]
        self.debounce = 0.0
        self.pipe: Optional[tuple[int, int]] = None  # (read, write) once watched
        self.events: deque[Edge] = deque(maxlen=KERNEL_EVENTS)
        self.seqno = 0


class SimBackend(Backend):
    """A board in memory whose pins record every value they are given."""

    name = "sim"
    simulated = True

    def __init__(self, clock: Callable[[], float] = time.monotonic, edges: bool = True) -> None:
        self.clock = clock
        self.edge_events = edges
        # Seconds since the epoch at the clock's 0 (a history time plus it is wall time),
        # read once, when first asked for.
        self.epoch: Optional[float] = None
        self.pins: dict[int, SimPin] = {}
        self.wires: dict[int, list[int]] = {}  # output gpio -> inputs it drives
        self.unplugged: list[SimPin] = []  # lost pins, whose pipes close with the board

    def setup(self, pin: Pin) -> None:
        """An output without `initial` keeps the level the pin had (0 on a new one)."""
        old = self.pins.get(pin.gpio)
        if old is not None:
            self._unwatch(old)
        if pin.is_output:
            kept = old.value if old is not None else 0
            value = kept if pin.initial is None else (1 if pin.initial else 0)
        else:
            value = 1 if pin.pull == "up" else 0
        made = SimPin(pin.mode, pin.pull, value, self.clock())
        made.debounce = pin.debounce
        self.pins[pin.gpio] = made

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
        return self._pin(gpio).history[-1][0] + self._epoch()

    def wall(self, ns: int) -> float:
        """An edge's time (the board's clock, in ns) in seconds since the epoch."""
        return ns / 1e9 + self._epoch()

    def _epoch(self) -> float:
        if self.epoch is None:
            self.epoch = time.time() - self.clock()
        return self.epoch

    def watch(self, gpio: int) -> Optional[int]:
        """The read end of the input's pipe (non-blocking), as a line request's fd."""
        pin = self._pin(gpio)
        if not self.edge_events or pin.mode != "in":
            return None
        if pin.pipe is None:
            pin.pipe = os.pipe()
            os.set_blocking(pin.pipe[0], False)
            os.set_blocking(pin.pipe[1], False)
        return pin.pipe[0]

    def edges(self, gpio: int) -> list[Edge]:
        """The edges kept since the last call (at most KERNEL_EVENTS), oldest first."""
        pin = self._pin(gpio)
        if pin.pipe is None:
            return []
        try:
            while os.read(pin.pipe[0], 512):
                pass
        except BlockingIOError:
            pass
        events = list(pin.events)
        pin.events.clear()
        return events

    def unplug(self, gpio: int) -> None:
        """The board loses a pin (its chip is unplugged): from now on every use of it
        raises GpioError. Its edge descriptor turns readable, as the kernel wakes the
        line request of a chip that is gone (gpiolib-cdev.c: EPOLLHUP | EPOLLERR), and
        reading its edges fails."""
        pin = self._pin(gpio)
        del self.pins[gpio]
        if pin.pipe is not None:
            os.write(pin.pipe[1], b"x")
            self.unplugged.append(pin)

    def close(self) -> None:
        """Close the pipes of the watched inputs."""
        for pin in [*self.pins.values(), *self.unplugged]:
            self._unwatch(pin)

    def _unwatch(self, pin: SimPin) -> None:
        if pin.pipe is not None:
            for fd in pin.pipe:
                os.close(fd)
            pin.pipe = None

    def history(self, gpio: int) -> list[tuple[float, int]]:
        """Every (time, value) the pin has had, oldest first."""
        return list(self._pin(gpio).history)

    def _pin(self, gpio: int) -> SimPin:
        try:
            return self.pins[gpio]
        except KeyError:
            raise GpioError(f"GPIO {gpio} has not been set up") from None

    def _record(self, pin: SimPin, value: int) -> None:
        now = self.clock()
        if pin.pipe is not None and value != pin.value:  # an edge, as the kernel reports it
            pin.seqno += 1
            if not pin.events:
                os.write(pin.pipe[1], b"e")
            pin.events.append(Edge(value, round(now * 1e9), pin.seqno))
        pin.value = value
        pin.history.append((now, value))
        if len(pin.history) > HISTORY_LIMIT:
            del pin.history[: HISTORY_LIMIT // 2]
