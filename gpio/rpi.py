"""RPi.GPIO (Raspberry Pi 1 to 4). RPi.GPIO does not run on a Pi 5: use gpiod there."""

from __future__ import annotations

from types import ModuleType
from typing import Optional

from gpio.base import Backend, GpioError, Pin


class RpiBackend(Backend):
    name = "rpi"

    def __init__(self, module: Optional[ModuleType] = None) -> None:
        if module is None:
            try:
                import RPi.GPIO as module
            except (ImportError, RuntimeError) as err:  # RuntimeError: not on a Raspberry Pi
                raise GpioError(f"cannot use RPi.GPIO: {err}") from None
        self.lib = module
        module.setwarnings(False)
        try:
            module.setmode(module.BCM)
        except ValueError as err:  # this process set BOARD numbering already
            raise GpioError(f"RPi.GPIO refused BCM numbering: {err}") from None

    def setup(self, pin: Pin) -> None:
        lib = self.lib
        try:
            if pin.is_output:
                lib.setup(pin.gpio, lib.OUT, initial=lib.HIGH if pin.initial else lib.LOW)
            else:
                pull = {"up": lib.PUD_UP, "down": lib.PUD_DOWN, "off": lib.PUD_OFF}[pin.pull]
                lib.setup(pin.gpio, lib.IN, pull_up_down=pull)
        except (RuntimeError, ValueError) as err:
            raise GpioError(f"GPIO {pin.gpio}: RPi.GPIO refused the set-up: {err}") from None

    def read(self, gpio: int) -> int:
        try:
            return 1 if self.lib.input(gpio) else 0
        except (RuntimeError, ValueError) as err:
            raise GpioError(f"GPIO {gpio}: RPi.GPIO cannot read it: {err}") from None

    def write(self, gpio: int, value: int) -> None:
        try:
            self.lib.output(gpio, self.lib.HIGH if value else self.lib.LOW)
        except (RuntimeError, ValueError) as err:
            raise GpioError(f"GPIO {gpio}: RPi.GPIO cannot drive it: {err}") from None

    def close(self) -> None:
        self.lib.cleanup()
