"""Pin backends: one interface, several boards (`import gpio`)."""

from __future__ import annotations

import glob
import importlib.util
import logging

from gpio.base import Backend, GpioError, Pin

__all__ = ["BACKENDS", "Backend", "GpioError", "Pin", "detect", "open_backend"]

BACKENDS = ("auto", "sim", "rpi", "gpiod")
log = logging.getLogger("gpio")


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _is_raspberry_pi() -> bool:
    try:
        with open("/proc/device-tree/model", "rb") as model:
            return b"Raspberry Pi" in model.read()
    except OSError:
        return False


def detect() -> str:
    """gpiod where a GPIO character device and the library exist; RPi.GPIO on a Pi; else sim."""
    if glob.glob("/dev/gpiochip*") and _importable("gpiod"):
        return "gpiod"
    if _is_raspberry_pi() and _importable("RPi.GPIO"):
        return "rpi"
    return "sim"


def open_backend(name: str = "auto") -> Backend:
    """The backend called `name`; `auto` detects the board and warns when it falls to sim."""
    chosen = detect() if name == "auto" else name
    if name == "auto" and chosen == "sim":
        log.warning("no GPIO hardware found: using the simulated board (gpio.backend: sim)")
    if chosen == "sim":
        from gpio.sim import SimBackend

        return SimBackend()
    if chosen == "rpi":
        from gpio.rpi import RpiBackend

        return RpiBackend()
    if chosen == "gpiod":
        from gpio.gpiod import GpiodBackend

        return GpiodBackend()
    raise GpioError(f"unknown GPIO backend {name!r}: choose one of {', '.join(BACKENDS)}")
