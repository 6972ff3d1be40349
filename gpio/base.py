"""The Backend interface and the pin model every board shares.

As gpiozero does with its pin factories, each backend implements one small interface
and the rest of httap never knows which board it drives. Pins are named by BCM GPIO
number; names come from the configuration.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import NamedTuple, Optional

MODES = ("in", "out", "pwm")
PULLS = ("up", "down", "off")


class Pin(NamedTuple):
    """One declared pin: its name, BCM number, mode and the values the server keeps.

    A NamedTuple, not a dataclass: `dataclasses` costs about 1 MiB of memory to import.
    """

    name: str
    gpio: int
    mode: str = "in"
    pull: str = "off"
    initial: Optional[int] = None
    safe: Optional[int] = None
    frequency: float = 100.0
    duty: float = 0.0
    debounce: float = 0.0  # seconds an input's level must hold before an edge counts

    @property
    def is_output(self) -> bool:
        return self.mode in ("out", "pwm")


class GpioError(Exception):
    """The board refused an operation; the message says what and why."""


class Edge(NamedTuple):
    """One edge of an input as the kernel reports it (libgpiod's `EdgeEvent`): `level`,
    the level after it (1 rising, 0 falling); `ns`, when, on CLOCK_MONOTONIC in
    nanoseconds (`time.monotonic_ns()`'s clock); `seqno`, the line's sequence number,
    which counts every edge the kernel saw, the ones it dropped included (None where
    the library gives none: libgpiod v1)."""

    level: int
    ns: int
    seqno: Optional[int]


def said(err: BaseException) -> str:
    """What a library's exception says: its message as the library wrote it. lgpio's
    `error` keeps it in `.value` and shows its repr (quotes and all) as its str;
    libgpiod v2 raises EOPNOTSUPP as NotImplementedError(errno, text), shown here as an
    OSError shows itself."""
    value = getattr(err, "value", None)
    if isinstance(value, str):
        return value
    args = err.args
    if not isinstance(err, OSError) and len(args) == 2 and isinstance(args[0], int):
        return f"[Errno {args[0]}] {args[1]}"  # libgpiod's NotImplementedError(errno, text)
    return str(err) or type(err).__name__


class Backend(ABC):
    """A board. Every call is short and never blocks: the poll loop calls them inline."""

    name = "base"
    # True for a board in memory (gpio/sim.py): its inputs have no real wire, so
    # `drive(gpio, value)` sets them, and `POST /?gpio/NAME {"drive": V}` reaches it.
    simulated = False

    @abstractmethod
    def setup(self, pin: Pin) -> None:
        """Configure a pin's direction, pull and initial value; an output whose `initial`
        is None keeps the level the pin has (read first where the library allows), and
        an input gets edge detection (both edges, `debounce` seconds) where the board
        has it. Setting a pin up again changes it in place where the library can."""

    @abstractmethod
    def read(self, gpio: int) -> int:
        """The level of a set-up pin, 0 or 1 (an output reads back what it drives)."""

    @abstractmethod
    def write(self, gpio: int, value: int) -> None:
        """Drive a set-up output to 0 or 1."""

    def watch(self, gpio: int) -> Optional[int]:
        """A readable, non-blocking descriptor on which a set-up input's edges arrive
        (the kernel's line request: libgpiod), for the loop's selector; None where the
        board has none (RPi.GPIO): the caller samples the level instead. Once the
        descriptor is readable, `edges(gpio)` gives what arrived."""
        return None

    def edges(self, gpio: int) -> list[Edge]:
        """The edges that arrived on `watch(gpio)`'s descriptor, oldest first; empty
        when nothing is left to read. GpioError if the board refuses."""
        return []

    def wall(self, ns: int) -> float:
        """An edge's time (`Edge.ns`, CLOCK_MONOTONIC in ns) in seconds since the epoch:
        the wall clock now less the monotonic time since the edge."""
        return time.time() - (time.monotonic_ns() - ns) / 1e9

    def stamp(self, gpio: int) -> Optional[float]:
        """When the pin's level last changed, in seconds since the epoch, on a board
        that timestamps its changes (the simulated board's history; kernel edge events);
        None where it does not: the caller takes the time it learns of the change."""
        return None

    def close(self) -> None:  # noqa: B027 - optional: most boards have nothing to release
        """Release the board's resources."""
