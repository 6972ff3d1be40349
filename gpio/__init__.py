"""Pin backends: one interface, several boards (`import gpio`).

`auto` picks, in order (README "Boards"):
1. libgpiod, where a /dev/gpiochip* device exists and `gpiod` imports with either API
   (v1 or v2: gpio/gpiod.py reads which from the module);
2. on a Raspberry Pi, RPi.GPIO, unless the Pi is a Pi 5 and the module is the original
   RPi.GPIO (it cannot drive a Pi 5): rpi-lgpio, which imports as RPi.GPIO too, is kept;
3. else the simulated board, with a warning.
The board is read from the device tree (`/proc/device-tree/compatible`, else `model`);
`root` stands for `/` in tests.
"""

from __future__ import annotations

import glob
import importlib
import logging
import os
from typing import Optional

from gpio.base import Backend, Edge, GpioError, Pin

__all__ = ["BACKENDS", "Backend", "Edge", "GpioError", "Pin", "board", "detect", "open_backend"]

BACKENDS = ("auto", "sim", "rpi", "gpiod")
log = logging.getLogger("gpio")


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError:
        return b""


def board(root: str = "/") -> Optional[str]:
    """ "pi5" on a Raspberry Pi 5 (compatible "brcm,bcm2712", or a model "Raspberry Pi
    5"), "pi" on another Raspberry Pi, None elsewhere (or without a device tree)."""
    tree = os.path.join(root, "proc", "device-tree")
    compatible = _read(os.path.join(tree, "compatible")).split(b"\0")
    model = _read(os.path.join(tree, "model")).rstrip(b"\0")
    if b"brcm,bcm2712" in compatible or model.startswith(b"Raspberry Pi 5"):
        return "pi5"
    if any(name.startswith(b"raspberrypi,") for name in compatible) or b"Raspberry Pi" in model:
        return "pi"
    return None


def _module(name: str) -> Optional[object]:
    """`name` imported, or None when it cannot be (RPi.GPIO raises RuntimeError off a Pi)."""
    try:
        return importlib.import_module(name)
    except (ImportError, RuntimeError):
        return None


def detect(root: str = "/") -> str:
    """The backend `auto` picks on this machine (`root`: where `/` is, for tests)."""
    from gpio.gpiod import api_of
    from gpio.rpi import is_rpi_lgpio

    if glob.glob(os.path.join(root, "dev", "gpiochip*")):
        lib = _module("gpiod")
        if lib is not None and api_of(lib):
            return "gpiod"
    kind = board(root)
    if kind is not None:
        lib = _module("RPi.GPIO")
        if lib is not None:
            if kind != "pi5" or is_rpi_lgpio(lib):
                return "rpi"
            log.warning(
                "RPi.GPIO cannot drive a Raspberry Pi 5: install rpi-lgpio in its place,"
                " or gpiod (pip install gpiod, or apt install python3-libgpiod)"
            )
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
        from gpio.gpiod import open_gpiod

        return open_gpiod()
    raise GpioError(f"unknown GPIO backend {name!r}: choose one of {', '.join(BACKENDS)}")
