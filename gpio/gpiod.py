"""libgpiod v2 (Raspberry Pi 5 and any Linux board with a GPIO character device)."""

from __future__ import annotations

import glob
import importlib
from types import ModuleType
from typing import Any, Optional

from gpio.base import Backend, GpioError, Pin

CONSUMER = "httap"


def find_chip(lib: ModuleType, paths: Optional[list[str]] = None) -> str:
    """The chip of the header pins: the first whose label starts with `pinctrl-`
    (pinctrl-rp1 on a Pi 5, pinctrl-bcm2711 on a Pi 4), else the first chip."""
    paths = sorted(glob.glob("/dev/gpiochip*")) if paths is None else paths
    if not paths:
        raise GpioError("no /dev/gpiochip* device: this board has no GPIO character device")
    for path in paths:
        try:
            with lib.Chip(path) as chip:
                if chip.get_info().label.startswith("pinctrl-"):
                    return path
        except OSError:
            continue
    return paths[0]


class GpiodBackend(Backend):
    name = "gpiod"

    def __init__(self, chip: Optional[str] = None, module: Optional[ModuleType] = None) -> None:
        try:
            self.lib = module or importlib.import_module("gpiod")
            self.line = importlib.import_module(self.lib.__name__ + ".line")
        except ImportError as err:
            raise GpioError(f"cannot use libgpiod (the gpiod package): {err}") from None
        self.chip = chip or find_chip(self.lib)
        self.requests: dict[int, Any] = {}

    def setup(self, pin: Pin) -> None:
        line = self.line
        if pin.is_output:
            value = line.Value.ACTIVE if pin.initial else line.Value.INACTIVE
            settings = self.lib.LineSettings(direction=line.Direction.OUTPUT, output_value=value)
        else:
            bias = {
                "up": line.Bias.PULL_UP,
                "down": line.Bias.PULL_DOWN,
                "off": line.Bias.DISABLED,
            }[pin.pull]
            settings = self.lib.LineSettings(direction=line.Direction.INPUT, bias=bias)
        old = self.requests.pop(pin.gpio, None)
        if old is not None:
            old.release()
        try:
            self.requests[pin.gpio] = self.lib.request_lines(
                self.chip, consumer=CONSUMER, config={pin.gpio: settings}
            )
        except (OSError, ValueError) as err:
            raise GpioError(f"GPIO {pin.gpio}: libgpiod refused the request: {err}") from None

    def read(self, gpio: int) -> int:
        try:
            return 1 if self._request(gpio).get_value(gpio) == self.line.Value.ACTIVE else 0
        except (OSError, ValueError) as err:
            raise GpioError(f"GPIO {gpio}: libgpiod cannot read it: {err}") from None

    def write(self, gpio: int, value: int) -> None:
        level = self.line.Value.ACTIVE if value else self.line.Value.INACTIVE
        try:
            self._request(gpio).set_value(gpio, level)
        except (OSError, ValueError) as err:
            raise GpioError(f"GPIO {gpio}: libgpiod cannot drive it: {err}") from None

    def _request(self, gpio: int) -> Any:
        try:
            return self.requests[gpio]
        except KeyError:
            raise GpioError(f"GPIO {gpio} has not been set up") from None

    def close(self) -> None:
        for request in self.requests.values():
            request.release()
        self.requests.clear()
