"""What `serve` would say of this machine that the configuration alone does not tell,
for `httap check` to say it too: the optional libraries (which feature needs which,
and the one line that says what to install when one is missing: pyproject.toml's
extras; `make run EXTRAS=...` in a clone), and hardware PWM without a PWM chip.

Nothing here imports them: `importlib.util.find_spec` on the top-level name only looks
for the package (Python docs, importlib.util.find_spec), so a missing one costs nothing.
"""

from __future__ import annotations

import importlib.util
from typing import NamedTuple

from gpio import detect
from gpio.pwm import SIMULATED, find_chip, no_chip
from httap.config import Config


class Extra(NamedTuple):
    module: str  # the top-level import name
    package: str  # its name on PyPI
    extra: str  # pyproject.toml's extra that installs it
    also: str = ""  # another way to install it, or ""

    def missing(self) -> bool:
        """True when the library cannot be found on sys.path."""
        try:
            return importlib.util.find_spec(self.module) is None
        except ValueError:  # a module in sys.modules without a spec
            return False

    def advice(self, feature: str) -> str:
        """`feature` needs this library, which is missing: what to install, one line."""
        also = f", or {self.also}" if self.also else ""
        return (
            f"{feature} needs {self.package}, which is not installed: pip install"
            f" 'httap[{self.extra}]' (in a clone: make run EXTRAS={self.extra}){also}"
        )


MQTT = Extra("paho", "paho-mqtt", "mqtt")
FILES = Extra("python_multipart", "python-multipart", "files")
BACKENDS = {
    "gpiod": Extra("gpiod", "gpiod", "gpiod", "apt install python3-libgpiod"),
    "rpi": Extra("RPi", "RPi.GPIO", "rpi", "apt install python3-rpi.gpio"),
}


def errors(config: Config) -> list[str]:
    """What serve would refuse: a configured feature whose library is missing."""
    found = []
    if config.mqtt.broker is not None and MQTT.missing():
        found.append(MQTT.advice("mqtt.broker"))
    backend = BACKENDS.get(config.gpio.backend)
    if backend is not None and backend.missing():
        found.append(backend.advice(f"gpio.backend {config.gpio.backend}"))
    return found


def warnings(config: Config) -> list[str]:
    """What serve would start without: uploads as forms (PUT /?files/NAME still works)."""
    if config.uploads.dir is not None and FILES.missing():
        return [forms("uploads as forms (POST /?files, multipart/form-data)")]
    return []


def forms(feature: str) -> str:
    """python-multipart is missing for `feature`: what to install, and what still works."""
    return FILES.advice(feature) + "; PUT /?files/NAME works without it"


def hardware_pwm(config: Config) -> tuple[list[str], list[str]]:
    """(errors, warnings) of `pwm: "hardware"` pins where there is no PWM chip under
    `gpio.sysfs_pwm`: serve refuses them on a real board, and simulates them by soft
    PWM on the sim board (for `auto`, the board gpio/__init__.py's detection picks
    here). Serve says it itself as it sets the pins up (gpio/pwm.py): for `httap check`."""
    pins = [
        name
        for name, pin in config.gpio.pins.items()
        if pin.mode == "pwm" and pin.pwm == "hardware"
    ]
    if not pins or find_chip(config.gpio.sysfs_pwm) is not None:
        return [], []
    board = config.gpio.backend if config.gpio.backend != "auto" else detect()
    line = f"gpio.pins {', '.join(pins)}: "
    why = no_chip(config.gpio.sysfs_pwm)
    if board == "sim":
        return [], [f"{line}{SIMULATED}: {why}"]
    return [f'{line}pwm "hardware" on the {board} board: {why}'], []
