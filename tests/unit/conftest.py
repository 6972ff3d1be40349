"""Fixtures of the rooms' unit tests: a loop whose clock the test moves, and the pins."""

from __future__ import annotations

import pytest

from gpio.sim import SimBackend
from httap.pins import Pins
from tests.helpers.domain import ManualLoop, settings


@pytest.fixture
def manual_loop() -> ManualLoop:
    """A loop whose clock only the test moves."""
    return ManualLoop()


@pytest.fixture
def pins(manual_loop) -> Pins:
    """The declared PINS on a simulated board that keeps the loop's time."""
    return Pins(settings().gpio.pins, SimBackend(clock=manual_loop.clock), manual_loop)
