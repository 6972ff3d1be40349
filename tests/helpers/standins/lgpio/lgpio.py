"""A stand-in for lgpio's Python module (lgpio 0.2, the library under rpi-lgpio), over a
simulated Pi 5 chip, for the calls rpi-lgpio makes to set pins up, read and drive them.

With `exceptions` True (lgpio's default), every call that fails raises `error`, a plain
Exception whose str() is the repr of its message, as lgpio's `_u2i` does: "can not
open gpiochip", "GPIO busy", "GPIO not allocated", "bad GPIO number", "GPIO not set as
an output". The real rpi-lgpio (pure Python) runs on top of it, so its own rules and
messages are the real ones.

The chip is gpiochip0 (the RP1's, 54 lines); `_reset(chips=())` takes it away, as on a
machine without a GPIO character device. `_hold(gpio)` has another program hold a line;
`_set_external(gpio, level)` sets what a floating input reads.
"""

from __future__ import annotations

from typing import Any

exceptions = True

SET_ACTIVE_LOW = 4
SET_OPEN_DRAIN = 8
SET_OPEN_SOURCE = 16
SET_PULL_UP = 32
SET_PULL_DOWN = 64
SET_PULL_NONE = 128
SET_BIAS_PULL_UP = SET_PULL_UP
SET_BIAS_PULL_DOWN = SET_PULL_DOWN
SET_BIAS_DISABLE = SET_PULL_NONE
RISING_EDGE = 1
FALLING_EDGE = 2
BOTH_EDGES = 3

BAD_HANDLE = -5
BAD_GPIO_NUMBER = -73
GPIO_BUSY = -79
GPIO_NOT_ALLOCATED = -80
CANNOT_OPEN_CHIP = -78
GPIO_NOT_AN_OUTPUT = -104

_TEXT = {
    BAD_HANDLE: "unknown handle",
    BAD_GPIO_NUMBER: "bad GPIO number",
    GPIO_BUSY: "GPIO busy",
    GPIO_NOT_ALLOCATED: "GPIO not allocated",
    CANNOT_OPEN_CHIP: "can not open gpiochip",
    GPIO_NOT_AN_OUTPUT: "GPIO not set as an output",
}

# lgpio's mode bits (gpio_get_mode): the kernel's line flags, then lgpio's own claims.
_KERNEL_OUTPUT = 2
_LG_INPUT = 0x100
_LG_OUTPUT = 0x200


class error(Exception):
    """rgpio module exception"""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __str__(self) -> str:
        return repr(self.value)


def error_text(errnum: int) -> str:
    return _TEXT.get(errnum, "unknown error")


def _fail(code: int) -> int:
    if exceptions:
        raise error(error_text(code))
    return code


class _Line:
    def __init__(self) -> None:
        self.claim = 0  # _LG_INPUT or _LG_OUTPUT while this process holds it
        self.other = False  # another program holds it
        self.output = False
        self.pull = SET_PULL_NONE
        self.driven = 0
        self.external = 0

    def level(self) -> int:
        if self.output:
            return self.driven
        if self.pull == SET_PULL_UP:
            return 1
        if self.pull == SET_PULL_DOWN:
            return 0
        return self.external


_chips: dict[int, list[_Line]] = {}
_handles: dict[int, int] = {}  # handle -> chip number


def _reset(chips: tuple = (0,)) -> None:
    """Back to boot: the gpiochips numbered `chips`, nothing claimed."""
    global exceptions
    exceptions = True
    _chips.clear()
    _handles.clear()
    for number in chips:
        _chips[number] = [_Line() for _ in range(54)]


def _hold(gpio: int, chip: int = 0) -> None:
    _chips[chip][gpio].other = True


def _set_external(gpio: int, level: int, chip: int = 0) -> None:
    _chips[chip][gpio].external = 1 if level else 0


_reset()


def _line(handle: int, gpio: int) -> Any:
    if handle not in _handles:
        return _fail(BAD_HANDLE)
    lines = _chips[_handles[handle]]
    if not 0 <= gpio < len(lines):
        return _fail(BAD_GPIO_NUMBER)
    return lines[gpio]


def gpiochip_open(gpiochip: int) -> int:
    if gpiochip not in _chips:
        return _fail(CANNOT_OPEN_CHIP)
    handle = len(_handles) + 1
    _handles[handle] = gpiochip
    return handle


def gpiochip_close(handle: int) -> int:
    if handle not in _handles:
        return _fail(BAD_HANDLE)
    for line in _chips[_handles.pop(handle)]:
        line.claim = 0
    return 0


def gpio_get_chip_info(handle: int) -> list:
    if handle not in _handles:
        return [_fail(BAD_HANDLE)]
    return [0, 54, f"gpiochip{_handles[handle]}", "pinctrl-rp1"]


def gpio_get_mode(handle: int, gpio: int) -> int:
    line = _line(handle, gpio)
    if isinstance(line, int):
        return line
    return line.claim | line.pull | (_KERNEL_OUTPUT if line.output else 0)


def _claim(handle: int, gpio: int, flags: int, output: bool) -> Any:
    line = _line(handle, gpio)
    if isinstance(line, int):
        return line
    if line.other:
        return _fail(GPIO_BUSY)
    line.claim = _LG_OUTPUT if output else _LG_INPUT
    line.output = output
    line.pull = flags & (SET_PULL_UP | SET_PULL_DOWN | SET_PULL_NONE) or SET_PULL_NONE
    return line


def gpio_claim_input(handle: int, gpio: int, lFlags: int = 0) -> int:
    line = _claim(handle, gpio, lFlags, False)
    return line if isinstance(line, int) else 0


def gpio_claim_output(handle: int, gpio: int, level: int = 0, lFlags: int = 0) -> int:
    line = _claim(handle, gpio, lFlags, True)
    if isinstance(line, int):
        return line
    line.driven = 1 if level else 0
    return 0


def gpio_free(handle: int, gpio: int) -> int:
    line = _line(handle, gpio)
    if isinstance(line, int):
        return line
    if not line.claim:
        return _fail(GPIO_NOT_ALLOCATED)
    line.claim = 0
    return 0


def gpio_read(handle: int, gpio: int) -> int:
    """The level of any line of the chip: rpi-lgpio reads a line before it claims it as
    an output without `initial` (its docstring speaks only of claimed lines: what lgpio
    does to an unclaimed one's direction is not modelled)."""
    line = _line(handle, gpio)
    if isinstance(line, int):
        return line
    return line.level()


def gpio_write(handle: int, gpio: int, level: int) -> int:
    line = _line(handle, gpio)
    if isinstance(line, int):
        return line
    if not line.claim:
        return _fail(GPIO_NOT_ALLOCATED)
    if not line.output:
        return _fail(GPIO_NOT_AN_OUTPUT)
    line.driven = 1 if level else 0
    return 0
