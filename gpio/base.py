"""The Backend interface and the pin model every board shares.

As gpiozero does with its pin factories, each backend implements one small interface
and the rest of httap never knows which board it drives. Pins are named by BCM GPIO
number; names come from the configuration.
"""

from __future__ import annotations

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

    @property
    def is_output(self) -> bool:
        return self.mode in ("out", "pwm")


class GpioError(Exception):
    """The board refused an operation; the message says what and why."""


class Backend(ABC):
    """A board. Every call is short and never blocks: the poll loop calls them inline."""

    name = "base"
    # True for a board in memory (gpio/sim.py): its inputs have no real wire, so
    # `drive(gpio, value)` sets them, and `POST /?gpio/NAME {"drive": V}` reaches it.
    simulated = False

    @abstractmethod
    def setup(self, pin: Pin) -> None:
        """Configure a pin's direction, pull and initial value."""

    @abstractmethod
    def read(self, gpio: int) -> int:
        """The level of a set-up pin, 0 or 1 (an output reads back what it drives)."""

    @abstractmethod
    def write(self, gpio: int, value: int) -> None:
        """Drive a set-up output to 0 or 1."""

    def stamp(self, gpio: int) -> Optional[float]:
        """When the pin's level last changed, in seconds since the epoch, on a board
        that timestamps its changes (the simulated board's history; kernel edge events);
        None where it does not: the caller takes the time it learns of the change."""
        return None

    def close(self) -> None:  # noqa: B027 - optional: most boards have nothing to release
        """Release the board's resources."""
