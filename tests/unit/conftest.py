"""Fixtures of the rooms' unit tests: a loop whose clock the test moves, and the pins."""

from __future__ import annotations

import pytest

from gpio.sim import SimBackend
from httap.pins import Pins
from tests.unit.domain import ManualLoop, settings


@pytest.fixture
def loop() -> ManualLoop:
    return ManualLoop()


@pytest.fixture
def pins(loop) -> Pins:
    """The declared PINS on a simulated board that keeps the loop's time."""
    return Pins(settings().gpio.pins, SimBackend(clock=loop.clock), loop)
