"""RPi.GPIO (Raspberry Pi 1 to 4), or rpi-lgpio, its stand-in over lgpio that runs on
every Pi, the Pi 5 included. The original RPi.GPIO does not run on a Pi 5 (its first
`setup()` fails: "Cannot determine SOC peripheral base address"): gpio.detect() skips
it there.

RPi.GPIO raises RuntimeError and ValueError; rpi-lgpio those and `lgpio.error`, a plain
Exception ("can not open gpiochip", "GPIO busy"). Every one becomes a GpioError with
the library's words. RPi.GPIO's own edge detection runs a thread over sysfs, which the
kernel no longer offers (6.6 on): this backend gives no descriptor (`watch()` is None),
so watched inputs are sampled.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Optional

from gpio.base import Backend, GpioError, Pin, said

log = logging.getLogger("gpio")


def is_rpi_lgpio(module: ModuleType) -> bool:
    """True for rpi-lgpio (it imports lgpio into its namespace), False for RPi.GPIO."""
    return getattr(module, "lgpio", None) is not None


class RpiBackend(Backend):
    name = "rpi"

    def __init__(self, module: Optional[ModuleType] = None) -> None:
        if module is None:
            try:
                import RPi.GPIO as module
            except (ImportError, RuntimeError) as err:  # RuntimeError: not on a Raspberry Pi
                raise GpioError(f"cannot use RPi.GPIO: {err}") from None
        self.lib = module
        lgpio = getattr(module, "lgpio", None)
        self.library = "rpi-lgpio" if lgpio is not None else "RPi.GPIO"
        self.errors: tuple[type[BaseException], ...] = (RuntimeError, ValueError)
        if lgpio is not None:
            self.errors += (lgpio.error,)
        module.setwarnings(False)
        try:
            module.setmode(module.BCM)
        except self.errors as err:  # BOARD numbering set already; rpi-lgpio: no gpiochip
            raise GpioError(f"{self.library} refused BCM numbering: {said(err)}") from None

    def setup(self, pin: Pin) -> None:
        """An output without `initial` is set up without one: RPi.GPIO then leaves the
        output latch as it is, and rpi-lgpio reads the level first and keeps it."""
        lib = self.lib
        try:
            if pin.is_output:
                if pin.initial is None:
                    lib.setup(pin.gpio, lib.OUT)
                else:
                    lib.setup(pin.gpio, lib.OUT, initial=lib.HIGH if pin.initial else lib.LOW)
            else:
                pull = {"up": lib.PUD_UP, "down": lib.PUD_DOWN, "off": lib.PUD_OFF}[pin.pull]
                lib.setup(pin.gpio, lib.IN, pull_up_down=pull)
        except self.errors as err:
            raise GpioError(
                f"GPIO {pin.gpio}: {self.library} refused the set-up: {said(err)}"
            ) from None

    def read(self, gpio: int) -> int:
        try:
            return 1 if self.lib.input(gpio) else 0
        except self.errors as err:
            raise GpioError(f"GPIO {gpio}: {self.library} cannot read it: {said(err)}") from None

    def write(self, gpio: int, value: int) -> None:
        try:
            self.lib.output(gpio, self.lib.HIGH if value else self.lib.LOW)
        except self.errors as err:
            raise GpioError(f"GPIO {gpio}: {self.library} cannot drive it: {said(err)}") from None

    def close(self) -> None:
        """`cleanup()`: every pin set up goes back to an input. A library that refuses
        is logged: the server is stopping, and must finish stopping."""
        try:
            self.lib.cleanup()
        except self.errors as err:
            log.error("%s cannot clean up: %s", self.library, said(err))
