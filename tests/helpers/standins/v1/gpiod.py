"""A stand-in for libgpiod v1's Python bindings: Debian's python3-libgpiod 1.6.3, one C
extension module named `gpiod` (bindings/python/gpiodmodule.c of libgpiod v1.6.x), over
simulated chips. It imports under the same name as v2's bindings: only its API tells
them apart (`Chip.get_line`, `Line.request`, the `LINE_REQ_*` constants).

Errors are raised as the C module raises them: the library's errno through
PyErr_SetFromErrno(PyExc_OSError), so ENOENT is a FileNotFoundError, EBUSY a plain
OSError, EAGAIN a BlockingIOError; a closed chip is ValueError("I/O operation on closed
file"). The rules of the library and of the kernel's v1 uAPI (gpiolib-cdev.c,
linehandle_create and lineevent_create) that a backend can trip:

- a line requested already, by us or by another program: OSError(EBUSY);
- an offset beyond the chip's lines: OSError(EINVAL);
- a bias flag without a direction: OSError(EINVAL);
- get_value on a line not requested, set_value or set_direction_output on a line that
  is not a value request (an event request, or not requested), event_get_fd and
  event_read_multiple on a line that is no event request: OSError(EPERM);
- set_value on an input: OSError(EPERM);
- `Line()` itself: NotImplementedError (only a Chip makes lines).

An event request (LINE_REQ_EV_*) gets an event for each change of the line's level
(`_set_external`), with CLOCK_MONOTONIC `sec` and `nsec` and no sequence number; the
kernel keeps 16 and drops the oldest. Its descriptor is a real pipe, blocking unless
the caller makes it non-blocking: `event_read_multiple()` then raises BlockingIOError
with nothing to read. The chip at /dev/gpiochip0 is a Pi 4's ("pinctrl-bcm2711", 58
lines), /dev/gpiochip1 its expander ("raspberrypi-exp-gpio", 8 lines). `_reset()`
restores them.
"""

from __future__ import annotations

import errno
import os
import time
from collections import deque
from typing import Any, Optional

LINE_REQ_DIR_AS_IS = 1
LINE_REQ_DIR_IN = 2
LINE_REQ_DIR_OUT = 3
LINE_REQ_EV_FALLING_EDGE = 4
LINE_REQ_EV_RISING_EDGE = 5
LINE_REQ_EV_BOTH_EDGES = 6
LINE_REQ_FLAG_OPEN_DRAIN = 1
LINE_REQ_FLAG_OPEN_SOURCE = 2
LINE_REQ_FLAG_ACTIVE_LOW = 4
LINE_REQ_FLAG_BIAS_DISABLE = 8
LINE_REQ_FLAG_BIAS_PULL_DOWN = 16
LINE_REQ_FLAG_BIAS_PULL_UP = 32
_BIAS = LINE_REQ_FLAG_BIAS_DISABLE | LINE_REQ_FLAG_BIAS_PULL_DOWN | LINE_REQ_FLAG_BIAS_PULL_UP
_EVENTS = (LINE_REQ_EV_FALLING_EDGE, LINE_REQ_EV_RISING_EDGE, LINE_REQ_EV_BOTH_EDGES)
KERNEL_EVENTS = 16


def version_string() -> str:
    return "1.6.3"


def _error(code: int) -> OSError:
    """PyErr_SetFromErrno(PyExc_OSError): OSError picks its subclass from the errno."""
    return OSError(code, os.strerror(code))


class LineEvent:
    """One event of an event request: `type`, `sec`, `nsec`, `source` (the Line)."""

    RISING_EDGE = 1
    FALLING_EDGE = 2

    def __init__(self, kind: int, ns: int, source: Line) -> None:
        self.type = kind
        self.sec, self.nsec = divmod(ns, 1_000_000_000)
        self.source = source


class _State:
    """One line as the kernel keeps it."""

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.owner: Any = None  # a Line of ours, or "other"
        self.consumer = ""
        self.output = False  # the hardware's direction survives a release
        self.pull = 0  # the hardware's pull flag survives a release too
        self.driven = 0
        self.external = 0
        self.kind = 0  # the request's type while requested
        self.events: deque[LineEvent] = deque(maxlen=KERNEL_EVENTS)
        self.pipe: Optional[tuple[int, int]] = None

    def level(self) -> int:
        if self.output:
            return self.driven
        if self.pull == LINE_REQ_FLAG_BIAS_PULL_UP:
            return 1
        if self.pull == LINE_REQ_FLAG_BIAS_PULL_DOWN:
            return 0
        return self.external


class _ChipState:
    def __init__(self, name: str, label: str, lines: int) -> None:
        self.name = name
        self.label = label
        self.lines = [_State(offset) for offset in range(lines)]


_CHIPS: dict[str, _ChipState] = {}


def _reset() -> None:
    """Back to the chips as they are at boot: nothing requested."""
    for state in _CHIPS.values():
        for line in state.lines:
            if line.pipe is not None:
                for fd in line.pipe:
                    os.close(fd)
    _CHIPS.clear()
    _CHIPS["/dev/gpiochip0"] = _ChipState("gpiochip0", "pinctrl-bcm2711", 58)
    _CHIPS["/dev/gpiochip1"] = _ChipState("gpiochip1", "raspberrypi-exp-gpio", 8)


def _set_external(path: str, offset: int, level: int) -> None:
    """Test helper: the level the outside world puts on a floating input."""
    state = _CHIPS[path].lines[offset]
    before = state.level()
    state.external = 1 if level else 0
    after = state.level()
    if after == before or state.kind not in _EVENTS:
        return
    if state.kind == LINE_REQ_EV_RISING_EDGE and not after:
        return
    if state.kind == LINE_REQ_EV_FALLING_EDGE and after:
        return
    assert state.pipe is not None
    if not state.events:
        os.write(state.pipe[1], b"e")
    kind = LineEvent.RISING_EDGE if after else LineEvent.FALLING_EDGE
    state.events.append(LineEvent(kind, time.monotonic_ns(), state.owner))


def _hold(path: str, offset: int, consumer: str) -> None:
    """Test helper: another program requests the line."""
    state = _CHIPS[path].lines[offset]
    state.owner = "other"
    state.consumer = consumer


_reset()


class Chip:
    """Represents a GPIO chip (`with gpiod.Chip(path) as chip:` closes it)."""

    OPEN_LOOKUP = 1
    OPEN_BY_PATH = 2
    OPEN_BY_NAME = 3
    OPEN_BY_LABEL = 4
    OPEN_BY_NUMBER = 5

    def __init__(self, description: str, how: int = OPEN_LOOKUP) -> None:
        for path, state in _CHIPS.items():
            names = (path, state.name, state.label, state.name[len("gpiochip") :])
            if description in names:
                self._state: Optional[_ChipState] = state
                self._lines: dict[int, Line] = {}
                return
        if os.path.exists(description) and description.startswith("/dev/"):
            raise _error(errno.ENOTTY)
        raise _error(errno.ENOENT)

    def __enter__(self) -> Chip:
        self._open()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _open(self) -> _ChipState:
        if self._state is None:
            raise ValueError("I/O operation on closed file")
        return self._state

    def close(self) -> None:
        """Close the chip; its requested lines are released."""
        self._open()
        for line in self._lines.values():
            line.release()
        self._state = None

    def name(self) -> str:
        return self._open().name

    def label(self) -> str:
        return self._open().label

    def num_lines(self) -> int:
        return len(self._open().lines)

    def get_line(self, offset: int) -> Line:
        state = self._open()
        if not 0 <= offset < len(state.lines):
            raise _error(errno.EINVAL)
        line = self._lines.get(offset)
        if line is None:
            line = self._lines[offset] = Line(_made_by_chip=(self, state.lines[offset]))
        return line


class Line:
    """A GPIO line of a Chip: request it, then read, write or wait for its events."""

    def __init__(self, *args: Any, _made_by_chip: Any = None) -> None:
        if _made_by_chip is None:
            raise NotImplementedError("Only gpiod.Chip can create new Line objects.")
        self._chip, self._state = _made_by_chip

    def _owned(self) -> _State:
        self._chip._open()
        state = self._state
        if state.owner is not self:
            raise _error(errno.EPERM)
        return state

    def offset(self) -> int:
        return self._state.offset

    def consumer(self) -> Optional[str]:
        return self._state.consumer or None

    def is_requested(self) -> bool:
        return self._state.owner is self

    def is_used(self) -> bool:
        return self._state.owner is not None

    def request(
        self,
        consumer: str,
        type: int = LINE_REQ_DIR_AS_IS,
        flags: int = 0,
        default_val: Optional[int] = None,
        default_vals: Optional[list] = None,
    ) -> None:
        """Request this GPIO line."""
        self._chip._open()
        state = self._state
        if state.owner is not None:
            raise _error(errno.EBUSY)
        if flags & _BIAS and type == LINE_REQ_DIR_AS_IS:
            raise _error(errno.EINVAL)  # bias flags need a direction
        if type in _EVENTS:
            state.output = False
            state.pipe = os.pipe()
        elif type == LINE_REQ_DIR_IN:
            state.output = False
        elif type == LINE_REQ_DIR_OUT:
            state.output = True
            value = default_val if default_val is not None else (default_vals or [0])[0]
            state.driven = 1 if value else 0
        if flags & _BIAS:
            state.pull = flags & _BIAS
        state.owner = self
        state.consumer = consumer
        state.kind = type

    def release(self) -> None:
        """Release this GPIO line (nothing happens to a line not requested)."""
        state = self._state
        if state.owner is not self:
            return
        state.owner = None
        state.consumer = ""
        state.kind = 0
        state.events.clear()
        if state.pipe is not None:
            for fd in state.pipe:
                os.close(fd)
            state.pipe = None

    def get_value(self) -> int:
        return self._owned().level()

    def set_value(self, value: int) -> None:
        state = self._owned()
        if state.kind in _EVENTS or not state.output:
            raise _error(errno.EPERM)
        state.driven = 1 if value else 0

    def set_direction_output(self, value: int = 0) -> None:
        state = self._owned()
        if state.kind in _EVENTS:
            raise _error(errno.EPERM)  # an event request has no SET_CONFIG
        state.output = True
        state.driven = 1 if value else 0

    def event_get_fd(self) -> int:
        state = self._owned()
        if state.kind not in _EVENTS or state.pipe is None:
            raise _error(errno.EPERM)
        return state.pipe[0]

    def event_read_multiple(self) -> list[LineEvent]:
        fd = self.event_get_fd()
        state = self._state
        if not state.events:
            if os.get_blocking(fd):
                raise AssertionError("event_read_multiple() on a blocking fd would wait forever")
            raise _error(errno.EAGAIN)
        events = list(state.events)
        state.events.clear()
        os.read(fd, 512)
        return events
