"""A stand-in for RPi.GPIO 0.7 on a 40-pin Raspberry Pi, with no hardware behind it.

The public API, constants, exception types and messages are those of RPi.GPIO's C
module (source/py_gpio.c, source/common.c); only the pins are simulated. The rules a
caller can trip over are kept:

- setup/input/output/cleanup(channel) before setmode(): RuntimeError asking for setmode;
- a BCM channel outside 0..53, or a BOARD pin that is not a GPIO: ValueError;
- input() on a channel never set up: RuntimeError "You must setup() the GPIO channel first";
- output() on a channel not set up as an output: RuntimeError;
- setup(..., initial=) on an input, or a pull on an output: ValueError;
- setmode() to a different mode than the one set: ValueError;
- cleanup() sets every used channel back to an input without pull and forgets the mode.

An input with PUD_UP reads 1, with PUD_DOWN 0, without pull the level of the outside
world (0 unless a test sets it with `_set_external`); an output reads back what it
drives. An output set up without `initial` keeps its latch (setup_one() of py_gpio.c
writes the level only for HIGH or LOW).

The first `setup()` maps the GPIO registers (c_gpio.c setup()): on a Pi 5
(`_reset(board="pi5")`) that fails with RuntimeError "Cannot determine SOC peripheral
base address", and without /dev/gpiomem access (`_reset(gpiomem=False)`: a systemd
unit that does not allow the device) with "No access to /dev/mem.  Try running as
root!". Not modelled: PWM, edge detection, RPI_INFO beyond a few keys.
"""

from __future__ import annotations

import warnings

VERSION = "0.7.1"
RPI_REVISION = 3
RPI_INFO = {"P1_REVISION": 3, "TYPE": "Pi 4 Model B", "PROCESSOR": "BCM2711", "RAM": "4G"}

# The values of RPi.GPIO's constants (py_constants.c, c_gpio.h).
LOW = 0
HIGH = 1
OUT = 0
IN = 1
HARD_PWM = 43
SERIAL = 40
I2C = 42
SPI = 41
UNKNOWN = -1
BOARD = 10
BCM = 11
PUD_OFF = 20
PUD_DOWN = 21
PUD_UP = 22
RISING = 31
FALLING = 32
BOTH = 33

_MODE_UNKNOWN = -1
_GPIO_COUNT = 54
# 40-pin header: physical pin -> BCM GPIO (-1: power, ground or ID EEPROM... not a GPIO).
_BOARD_TO_BCM = {
    3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23, 18: 24,
    19: 10, 21: 9, 22: 25, 23: 11, 24: 8, 26: 7, 27: 0, 28: 1, 29: 5, 31: 6, 32: 12,
    33: 13, 35: 19, 36: 16, 37: 26, 38: 20, 40: 21,
}  # fmt: skip

_MODE_NOT_SET = (
    "Please set pin numbering mode using GPIO.setmode(GPIO.BOARD) or GPIO.setmode(GPIO.BCM)"
)
_INVALID_CHANNEL = "The channel sent is invalid on a Raspberry Pi"

# Module state, as the C module's statics; `_reset()` restores it.
_mode = _MODE_UNKNOWN
_warnings = True
_direction: dict[int, int] = {}  # gpio -> IN/OUT, for channels this process set up
_function: dict[int, int] = {}  # gpio -> IN/OUT, the hardware's function register
_pull: dict[int, int] = {}  # gpio -> PUD_*
_driven: dict[int, int] = {}  # gpio -> level an output drives (the output latch)
_external: dict[int, int] = {}  # gpio -> level the outside world puts on a floating input


_board = "pi4"
_gpiomem = True
_mapped = False


def _reset(board: str = "pi4", gpiomem: bool = True) -> None:
    """Back to the state just after `import RPi.GPIO` (the tests' fixture calls it), on
    a `board` ("pi4", "pi5"), with the gpiomem device open to us or not."""
    global _mode, _warnings, _board, _gpiomem, _mapped
    _mode = _MODE_UNKNOWN
    _warnings = True
    _board, _gpiomem, _mapped = board, gpiomem, False
    for table in (_direction, _function, _pull, _driven, _external):
        table.clear()


def _set_external(gpio: int, level: int) -> None:
    """Test helper: what a floating (PUD_OFF) input on BCM `gpio` reads."""
    _external[gpio] = 1 if level else 0


def _is_set_up(gpio: int) -> bool:
    """Test helper: whether this process has set BCM `gpio` up (the C module's gpio_direction)."""
    return gpio in _direction


def _gpio_number(channel: int) -> int:
    """get_gpio_number() of common.c: the mode must be set and the channel valid."""
    if _mode not in (BOARD, BCM):
        raise RuntimeError(_MODE_NOT_SET)
    if isinstance(channel, bool) or not isinstance(channel, int):
        raise TypeError(f"an integer is required (got type {type(channel).__name__})")
    if _mode == BCM:
        if not 0 <= channel < _GPIO_COUNT:
            raise ValueError(_INVALID_CHANNEL)
        return channel
    if channel not in _BOARD_TO_BCM:
        raise ValueError(_INVALID_CHANNEL)
    return _BOARD_TO_BCM[channel]


def _channels(channel: object) -> list:
    if isinstance(channel, (list, tuple)):
        return list(channel)
    if isinstance(channel, int):
        return [channel]
    raise ValueError("Channel must be an integer or list/tuple of integers")


def _level(gpio: int) -> int:
    """The pin's level as the GPLEV register would show it."""
    if _function.get(gpio, IN) == OUT:
        return _driven.get(gpio, LOW)
    pull = _pull.get(gpio, PUD_OFF)
    if pull == PUD_UP:
        return HIGH
    if pull == PUD_DOWN:
        return LOW
    return _external.get(gpio, LOW)


def setwarnings(flag: bool) -> None:
    """Enable or disable warning messages."""
    global _warnings
    _warnings = bool(flag)


def setmode(mode: int) -> None:
    """Set up numbering mode to use for channels: BOARD or BCM."""
    global _mode
    if _mode != _MODE_UNKNOWN and mode != _mode:
        raise ValueError("A different mode has already been set!")
    if mode not in (BOARD, BCM):
        raise ValueError("An invalid mode was passed to setmode()")
    _mode = mode


def getmode() -> int | None:
    """Get numbering mode used for channel numbers: BOARD, BCM or None."""
    return None if _mode == _MODE_UNKNOWN else _mode


def setup(channel, direction: int, pull_up_down: int = PUD_OFF, initial: int = -1) -> None:
    """Set up a GPIO channel or list of channels with a direction and (optional) pull/initial."""
    global _mapped
    if direction not in (IN, OUT):
        raise ValueError("An invalid direction was passed to setup()")
    if direction == OUT and pull_up_down != PUD_OFF:
        raise ValueError("pull_up_down parameter is not valid for outputs")
    if direction == IN and initial != -1:
        raise ValueError("initial parameter is not valid for inputs")
    if pull_up_down not in (PUD_OFF, PUD_DOWN, PUD_UP):
        raise ValueError(
            "Invalid value for pull_up_down - should be either PUD_OFF, PUD_UP or PUD_DOWN"
        )
    if not _mapped:  # mmap of the GPIO registers, once
        if _board == "pi5":
            raise RuntimeError("Cannot determine SOC peripheral base address")
        if not _gpiomem:
            raise RuntimeError("No access to /dev/mem.  Try running as root!")
        _mapped = True
    for one in _channels(channel):
        gpio = _gpio_number(one)
        if _warnings and _function.get(gpio, IN) == OUT and gpio not in _direction:
            warnings.warn(
                "This channel is already in use, continuing anyway.  "
                "Use GPIO.setwarnings(False) to disable warnings.",
                RuntimeWarning,
                stacklevel=2,
            )
        if direction == OUT:
            if initial in (LOW, HIGH):
                _driven[gpio] = initial
            _pull[gpio] = PUD_OFF
        else:
            _pull[gpio] = pull_up_down
        _function[gpio] = direction
        _direction[gpio] = direction


def input(channel: int) -> int:
    """Input from a GPIO channel. Returns HIGH=1=True or LOW=0=False."""
    gpio = _gpio_number(channel)
    if _direction.get(gpio) not in (IN, OUT):
        raise RuntimeError("You must setup() the GPIO channel first")
    return _level(gpio)


def output(channel, value) -> None:
    """Output to a GPIO channel or list of channels."""
    channels = _channels(channel)
    values = list(value) if isinstance(value, (list, tuple)) else [value] * len(channels)
    if len(values) != len(channels):
        raise RuntimeError("Number of channels != number of values")
    for one, level in zip(channels, values):
        if not isinstance(level, int):
            raise ValueError(
                "Value must be an integer/boolean or a list/tuple of integers/booleans"
            )
        gpio = _gpio_number(one)
        if _direction.get(gpio) != OUT:
            raise RuntimeError("The GPIO channel has not been set up as an OUTPUT")
        _driven[gpio] = HIGH if level else LOW


def gpio_function(channel: int) -> int:
    """Return the current GPIO function (IN, OUT, ...) of the hardware."""
    return _function.get(_gpio_number(channel), IN)


def cleanup(channel=None) -> None:
    """Set every channel used (or only `channel`) back to an input without pull."""
    global _mode
    if channel is None:
        found = bool(_direction)
        for gpio in list(_direction):
            _release(gpio)
        _mode = _MODE_UNKNOWN
    else:
        found = False
        for one in _channels(channel):
            gpio = _gpio_number(one)
            if gpio in _direction:
                _release(gpio)
                found = True
    if not found and _warnings:
        warnings.warn(
            "No channels have been set up yet - nothing to clean up!  "
            "Try cleaning up at the end of your program instead!",
            RuntimeWarning,
            stacklevel=2,
        )


def _release(gpio: int) -> None:
    _function[gpio] = IN
    _pull[gpio] = PUD_OFF
    del _direction[gpio]
