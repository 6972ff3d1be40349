"""A stand-in for libgpiod v2's Python bindings (`gpiod` >= 2.0), over simulated chips.

The public API follows bindings/python/gpiod of libgpiod 2.x: `Chip`, `ChipInfo`,
`LineInfo`, `LineSettings`, `LineRequest`, `request_lines`, `is_gpiochip_device`, the
enums of `gpiod.line` and the errors of `gpiod.exception`. Errors are raised as the
bindings raise them: the C library's errno goes through Py_gpiod_SetErrFromErrno, so
EINVAL is a ValueError, EPERM a PermissionError, ENOENT a FileNotFoundError and EBUSY
a plain OSError, each with its errno.

The rules of the kernel's GPIO character device are kept where a backend can trip:

- a line held by another request is busy: OSError(EBUSY);
- an offset beyond the chip's lines: ValueError("line offset of out range");
- get/set on an offset that is not in the request: ValueError(EINVAL);
- set on an input line: PermissionError(EPERM);
- a bias without a direction, a drive on an input, edges on an output: ValueError(EINVAL);
- a value that is not a `gpiod.line.Value`: AttributeError, as the C extension reads
  its `.value`;
- any use of a released request: RequestReleasedError; of a closed chip: ChipClosedError;
  a second `release()` or `close()` raises them too before gpiod 2.5, and is a no-op
  from 2.5 on;
- `line.Value` is truthy when ACTIVE from 2.2 on, and always truthy (a plain Enum
  member) before;
- EOPNOTSUPP (a chip that cannot debounce, `_NO_DEBOUNCE`): NotImplementedError;
- edge detection on a line without an interrupt (`_NO_IRQ`): OSError(ENODEV).

`_reset(version)` picks the version whose rules apply (default "2.5.0").

The chips live in the module-level `_CHIPS` table: /dev/gpiochip0 is the Pi 5's RP1
("pinctrl-rp1", 54 lines named GPIO0..GPIO27 then others), /dev/gpiochip10 one of its
other controllers ("gpio-brcmstb@107d508500", 32 lines). An input with a pull-up reads
ACTIVE, a pull-down INACTIVE, no pull the outside level (`_set_external`); an output
reads back what it drives; `active_low` inverts both. `_reset()` restores the table.

Edge events are the kernel's: a line requested with edge detection gets an event for
each change of its level (`_set_external`), timestamped on CLOCK_MONOTONIC in ns,
numbered per line and per request; the request keeps 16 per line and drops the oldest
(gpiolib-cdev.c's kfifo). `LineRequest.fd` is a real descriptor (a pipe), readable
while events wait, blocking unless the caller makes it non-blocking: then
`read_edge_events()` with nothing to read raises BlockingIOError (EAGAIN), as the
kernel's read does. Not modelled: info events.
"""

from __future__ import annotations

import errno
import itertools
import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Optional, Union

from . import edge_event, exception, line
from .edge_event import EdgeEvent
from .exception import ChipClosedError, RequestReleasedError
from .line import Bias, Clock, Direction, Drive, Edge, Value

__version__ = "2.5.0"
api_version = "2.3"
_NO_DEBOUNCE: set[int] = set()  # offsets whose chip answers a debounce with EOPNOTSUPP
_NO_IRQ: set[int] = set()  # offsets without an interrupt: edge detection is ENODEV

__all__ = [
    "Chip",
    "ChipClosedError",
    "ChipInfo",
    "LineInfo",
    "LineRequest",
    "LineSettings",
    "RequestReleasedError",
    "api_version",
    "edge_event",
    "exception",
    "is_gpiochip_device",
    "line",
    "request_lines",
]


def _errno(kind: type, code: int) -> OSError:
    """What PyErr_SetFromErrno(kind) raises: kind(errno, strerror)."""
    return kind(code, os.strerror(code))


# -- the public data classes ---------------------------------------------------------


@dataclass(frozen=True, repr=False)
class ChipInfo:
    """Snapshot of a chip's status."""

    name: str
    label: str
    num_lines: int

    def __str__(self) -> str:
        return f'<ChipInfo name="{self.name}" label="{self.label}" num_lines={self.num_lines}>'


@dataclass(frozen=True)
class LineInfo:
    """Snapshot of a line's status."""

    offset: int
    name: str
    used: bool
    consumer: str
    direction: Direction
    active_low: bool
    bias: Bias
    drive: Drive
    edge_detection: Edge
    event_clock: Clock
    debounced: bool
    debounce_period: timedelta


@dataclass
class LineSettings:
    """Stores a set of line properties."""

    direction: Direction = Direction.AS_IS
    edge_detection: Edge = Edge.NONE
    bias: Bias = Bias.AS_IS
    drive: Drive = Drive.PUSH_PULL
    active_low: bool = False
    debounce_period: timedelta = field(default_factory=timedelta)
    event_clock: Clock = Clock.MONOTONIC
    output_value: Value = Value.INACTIVE


# -- the simulated chips (the kernel's side) -----------------------------------------


class _Line:
    """One line as the kernel keeps it: its flags while requested, its level always."""

    def __init__(self, offset: int, name: str) -> None:
        self.offset = offset
        self.name = name
        self.owner: Optional[int] = None  # id of the request holding it
        self.consumer = ""
        self.direction = Direction.INPUT  # the hardware's direction survives a release
        self.pull = Bias.AS_IS  # the hardware's pull survives a release too
        self.bias = Bias.UNKNOWN  # the flag reported by get_line_info
        self.active_low = False
        self.drive = Drive.PUSH_PULL
        self.edge = Edge.NONE
        self.clock = Clock.MONOTONIC
        self.debounce = timedelta()
        self.driven = 0  # the output latch (physical level)
        self.external = 0  # what the outside world puts on a floating input
        self.events: Optional[_Req] = None  # the request that hears its edges

    def physical(self) -> int:
        if self.direction == Direction.OUTPUT:
            return self.driven
        if self.pull == Bias.PULL_UP:
            return 1
        if self.pull == Bias.PULL_DOWN:
            return 0
        return self.external

    def info(self) -> LineInfo:
        used = self.owner is not None
        return LineInfo(
            offset=self.offset,
            name=self.name,
            used=used,
            consumer=self.consumer if used else "",
            direction=self.direction,
            active_low=self.active_low,
            bias=self.bias,
            drive=self.drive,
            edge_detection=self.edge,
            event_clock=self.clock,
            debounced=self.debounce > timedelta(),
            debounce_period=self.debounce,
        )


class _ChipState:
    def __init__(self, name: str, label: str, names: list[str]) -> None:
        self.info = ChipInfo(name, label, len(names))
        self.lines = [_Line(offset, line_name) for offset, line_name in enumerate(names)]


_RP1_NAMES = [f"GPIO{n}" for n in range(28)] + [
    "PCIE_RP1_WAKE", "FAN_TACH", "HOST_SDA", "HOST_SCL", "ETH_RST_N", "", "CD0_IO0_MICCLK",
    "CD0_IO0_MICDAT0", "RP1_PCIE_CLKREQ_N", "", "CD0_SDA", "CD0_SCL", "CD1_SDA", "CD1_SCL",
    "USB_VBUS_EN", "USB_OC_N", "RP1_STAT_LED", "FAN_PWM", "CD0_IO1_MICCLK", "2712_WAKE",
    "CD1_IO1_MICDAT1", "EN_MAX_USB_CUR", "", "", "", "",
]  # fmt: skip
assert len(_RP1_NAMES) == 54

_CHIPS: dict[str, _ChipState] = {}
_request_ids = itertools.count(1)


def _version() -> tuple[int, ...]:
    return tuple(int(part) for part in __version__.split(".")[:2])


def _reset(version: str = "2.5.0") -> None:
    """Back to the chips as they are at boot: nothing requested (the tests' fixture),
    with the rules of gpiod `version`."""
    global __version__
    __version__ = version
    if _version() >= (2, 2):
        Value.__bool__ = lambda self: self == Value.ACTIVE  # type: ignore[method-assign]
    elif "__bool__" in Value.__dict__:
        del Value.__bool__
    _NO_DEBOUNCE.clear()
    _NO_IRQ.clear()
    _CHIPS.clear()
    _CHIPS["/dev/gpiochip0"] = _ChipState("gpiochip0", "pinctrl-rp1", _RP1_NAMES)
    _CHIPS["/dev/gpiochip10"] = _ChipState("gpiochip10", "gpio-brcmstb@107d508500", [""] * 32)


def _set_external(path: str, offset: int, level: int) -> None:
    """Test helper: the level a floating input at `offset` of chip `path` reads."""
    state = _CHIPS[path].lines[offset]
    before = state.physical()
    state.external = 1 if level else 0
    if state.events is not None and state.physical() != before:
        state.events.edge(state)


_reset()


def _checked(settings: LineSettings) -> LineSettings:
    """What _line_settings_to_ext and gpiod_line_settings_set_*() accept."""
    Direction(settings.direction.value)  # AttributeError for a bare int, as the bindings
    Edge(settings.edge_detection.value)
    Drive(settings.drive.value)
    Clock(settings.event_clock.value)
    Value(settings.output_value.value)
    if Bias(settings.bias.value) == Bias.UNKNOWN:  # not a bias one can set
        raise _errno(ValueError, errno.EINVAL)
    return settings


def _validate_flags(settings: LineSettings) -> None:
    """gpio_v2_line_flags_validate() of drivers/gpio/gpiolib-cdev.c."""
    direction = settings.direction
    if settings.bias != Bias.AS_IS and direction == Direction.AS_IS:
        raise _errno(ValueError, errno.EINVAL)  # bias requires an explicit direction
    if settings.drive != Drive.PUSH_PULL and direction != Direction.OUTPUT:
        raise _errno(ValueError, errno.EINVAL)  # drive flags are for outputs only
    if settings.edge_detection != Edge.NONE and direction != Direction.INPUT:
        raise _errno(ValueError, errno.EINVAL)  # edge detection is for inputs only


def _interrupt(offset: int, settings: LineSettings) -> None:
    """edge_detector_setup() of gpiolib-cdev.c: a line without an IRQ is ENODEV."""
    if settings.edge_detection != Edge.NONE and offset in _NO_IRQ:
        raise _errno(OSError, errno.ENODEV)


def _apply(state: _Line, settings: LineSettings, value: Value) -> None:
    if settings.direction != Direction.AS_IS:
        state.direction = settings.direction
    if settings.bias != Bias.AS_IS:
        state.pull = settings.bias
    state.bias = Bias.UNKNOWN if settings.bias == Bias.AS_IS else settings.bias
    state.active_low = settings.active_low
    state.drive = settings.drive
    state.edge = settings.edge_detection
    state.clock = settings.event_clock
    state.debounce = settings.debounce_period
    if settings.debounce_period and state.offset in _NO_DEBOUNCE:
        raise NotImplementedError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
    if settings.direction == Direction.OUTPUT:
        state.driven = value.value ^ int(settings.active_low)


def _config_iter(config: dict) -> Iterator[tuple[Union[int, str], Optional[LineSettings]]]:
    for key, settings in config.items():
        if isinstance(key, (int, str)):
            yield key, settings
        else:
            for one in key:
                yield one, settings


def _unsigned(offset: int) -> int:
    """Py_gpiod_PyLongAsUnsignedInt()."""
    if offset < 0:
        raise OverflowError("can't convert negative int to unsigned")
    return offset


# -- Chip --------------------------------------------------------------------------


def is_gpiochip_device(path: str) -> bool:
    """Check if the file pointed to by path is a GPIO chip character device."""
    return path in _CHIPS


class Chip:
    """Represents a GPIO chip; `with gpiod.Chip(path) as chip:` closes it."""

    def __init__(self, path: str) -> None:
        state = _CHIPS.get(path)
        if state is None:  # gpiod_chip_open(): open() fails, or the file is no GPIO chip
            if os.path.exists(path):
                raise _errno(OSError, errno.ENODEV)
            raise _errno(FileNotFoundError, errno.ENOENT)
        self._path = path
        self._state: Optional[_ChipState] = state

    def __bool__(self) -> bool:
        return self._state is not None

    def __enter__(self) -> Chip:
        self._check_closed()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _check_closed(self) -> _ChipState:
        if self._state is None:
            raise ChipClosedError()
        return self._state

    def close(self) -> None:
        """Close the chip; it must not be used afterwards (a second close raises
        before 2.5)."""
        if self._state is None and _version() >= (2, 5):
            return
        self._check_closed()
        self._state = None

    def get_info(self) -> ChipInfo:
        """Information about the chip."""
        return self._check_closed().info

    def line_offset_from_id(self, id: Union[str, int]) -> int:
        """The offset of a line given by name, by offset as a string, or by offset."""
        state = self._check_closed()
        if not isinstance(id, int):
            for one in state.lines:
                if one.name and one.name == id:
                    return one.offset
            try:
                offset = int(id)
            except ValueError:
                raise _errno(FileNotFoundError, errno.ENOENT) from None
        else:
            offset = _unsigned(id)
        if offset >= state.info.num_lines:
            raise ValueError("line offset of out range")
        return offset

    def get_line_info(self, line: Union[int, str]) -> LineInfo:
        """A snapshot of the line's status (used, consumer, direction, bias...)."""
        state = self._check_closed()
        return state.lines[self.line_offset_from_id(line)].info()

    def request_lines(
        self,
        config: dict,
        consumer: Optional[str] = None,
        event_buffer_size: Optional[int] = None,
        output_values: Optional[dict] = None,
    ) -> LineRequest:
        """Request a set of lines for exclusive use: {offset or name or tuple: LineSettings}."""
        state = self._check_closed()
        mapped_output_values = None
        if output_values:
            mapped_output_values = {
                self.line_offset_from_id(key): value for key, value in output_values.items()
            }
        name_map: dict[str, int] = {}
        requested: list[Union[int, str]] = []
        plan: list[tuple[int, LineSettings, Value]] = []
        seen: set[int] = set()
        for key, settings in _config_iter(config):
            offset = self.line_offset_from_id(key)
            if offset in seen:
                raise ValueError(f"line must be configured exactly once - offset {offset} repeats")
            seen.add(offset)
            requested.append(key)
            if isinstance(key, str):
                name_map[key] = offset
            settings = _checked(settings or LineSettings())
            value = settings.output_value
            if mapped_output_values:
                value = mapped_output_values.get(offset, Value.INACTIVE)
                Value(value.value)
            plan.append((offset, settings, value))
        # The kernel's side: gpiod_chip_request_lines() -> GPIO_V2_GET_LINE_IOCTL.
        if not plan:
            raise _errno(ValueError, errno.EINVAL)
        for offset, settings, _ in plan:
            _validate_flags(settings)
            _interrupt(offset, settings)
        if any(state.lines[offset].owner is not None for offset, _, _ in plan):
            raise _errno(OSError, errno.EBUSY)
        owner = next(_request_ids)
        for offset, settings, value in plan:
            one = state.lines[offset]
            one.owner = owner
            one.consumer = consumer or "?"
            _apply(one, settings, value)
        req = _Req(owner, state, [offset for offset, _, _ in plan])
        for offset, _, _ in plan:
            req.listen(state.lines[offset])
        request = LineRequest(req)
        request._chip_name = state.info.name
        request._offsets = [offset for offset, _, _ in plan]
        request._name_map = name_map
        request._lines = requested
        return request

    @property
    def path(self) -> str:
        self._check_closed()
        return self._path

    def __repr__(self) -> str:
        return f'gpiod.Chip("{self._path}")' if self._state else "<Chip CLOSED>"


def request_lines(path: str, *args: Any, **kwargs: Any) -> LineRequest:
    """Open the chip at `path`, request lines (see Chip.request_lines), close the chip."""
    with Chip(path) as chip:
        return chip.request_lines(*args, **kwargs)


# -- LineRequest -------------------------------------------------------------------


class _Req:
    """The C extension's request: the lines it holds in the kernel."""

    def __init__(self, owner: int, chip: _ChipState, offsets: list[int]) -> None:
        self.owner = owner
        self.chip = chip
        self.offsets = offsets
        self.read_end, self.write_end = os.pipe()  # the request's fd: readable with events
        self.queue: deque[EdgeEvent] = deque(maxlen=16 * len(offsets))
        self.seqno = 0
        self.line_seqno: dict[int, int] = {}

    def listen(self, state: _Line) -> None:
        state.events = self if state.edge != Edge.NONE else None

    def edge(self, state: _Line) -> None:
        """The line's level changed: queue an event if its edge setting wants it."""
        rising = state.physical() ^ int(state.active_low)
        if (state.edge == Edge.RISING and not rising) or (state.edge == Edge.FALLING and rising):
            return
        self.seqno += 1
        line_seqno = self.line_seqno[state.offset] = self.line_seqno.get(state.offset, 0) + 1
        if not self.queue:
            os.write(self.write_end, b"e")
        kind = EdgeEvent.Type.RISING_EDGE if rising else EdgeEvent.Type.FALLING_EDGE
        self.queue.append(
            EdgeEvent(kind.value, time.monotonic_ns(), state.offset, self.seqno, line_seqno)
        )

    def read(self, max_events: int) -> list[EdgeEvent]:
        if not self.queue:
            if os.get_blocking(self.read_end):
                raise AssertionError("read_edge_events() on a blocking fd would wait forever")
            raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
        events = [self.queue.popleft() for _ in range(min(max_events, len(self.queue)))]
        if not self.queue:
            os.read(self.read_end, 512)
        return events

    def line(self, offset: int) -> _Line:
        """gpiod_line_request_*_values_subset(): an offset outside the request is EINVAL."""
        if offset not in self.offsets:
            raise _errno(ValueError, errno.EINVAL)
        return self.chip.lines[offset]

    def release(self) -> None:
        for offset in self.offsets:
            one = self.chip.lines[offset]
            if one.owner == self.owner:
                one.owner = None
                one.consumer = ""
                one.bias = Bias.UNKNOWN  # the kernel clears the request's flags
                one.active_low = False
                one.drive = Drive.PUSH_PULL
                one.edge = Edge.NONE
                one.events = None
        os.close(self.read_end)
        os.close(self.write_end)


class LineRequest:
    """A set of requested lines; `release()` (or leaving `with`) gives them back."""

    def __init__(self, req: _Req) -> None:
        self._req: Optional[_Req] = req
        self._chip_name = ""
        self._offsets: list[int] = []
        self._name_map: dict[str, int] = {}
        self._lines: list[Union[int, str]] = []

    def __bool__(self) -> bool:
        return self._req is not None

    def __enter__(self) -> LineRequest:
        self._check_released()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()

    def _check_released(self) -> _Req:
        if self._req is None:
            raise RequestReleasedError()
        return self._req

    def release(self) -> None:
        """Release the lines; the request must not be used afterwards (a second release
        raises before 2.5)."""
        if self._req is None and _version() >= (2, 5):
            return
        self._check_released().release()
        self._req = None

    @property
    def fd(self) -> int:
        """The request's file descriptor: readable while edge events wait."""
        return self._check_released().read_end

    def fileno(self) -> int:
        return self.fd

    def read_edge_events(self, max_events: Optional[int] = None) -> list[EdgeEvent]:
        """The edge events waiting (at most `max_events`, default 64), oldest first."""
        return self._check_released().read(64 if max_events is None else max_events)

    def _line_to_offset(self, line: Union[int, str]) -> int:
        if isinstance(line, int):
            return _unsigned(line)
        offset = self._name_map.get(line)
        if offset is None:
            raise ValueError(f"unknown line name: {line}")
        return offset

    def get_value(self, line: Union[int, str]) -> Value:
        """The logical value of one requested line."""
        return self.get_values([line])[0]

    def get_values(self, lines: Optional[list] = None) -> list[Value]:
        """The logical values of some (default: all) requested lines."""
        req = self._check_released()
        lines = lines or self._lines
        states = [req.line(self._line_to_offset(one)) for one in lines]
        return [Value(state.physical() ^ int(state.active_low)) for state in states]

    def set_value(self, line: Union[int, str], value: Value) -> None:
        """Set the logical value of one requested output line."""
        self.set_values({line: value})

    def set_values(self, values: dict) -> None:
        """Set the logical values of requested output lines: {offset or name: Value}."""
        req = self._check_released()
        mapped = [(self._line_to_offset(key), value.value) for key, value in values.items()]
        states = [(req.line(offset), value) for offset, value in mapped]
        if any(state.direction != Direction.OUTPUT for state, _ in states):
            raise _errno(PermissionError, errno.EPERM)  # the kernel: not an output
        for state, value in states:
            state.driven = (1 if value else 0) ^ int(state.active_low)

    def reconfigure_lines(self, config: dict) -> None:
        """Change the settings of requested lines; lines not given get the defaults."""
        req = self._check_released()
        given: dict[int, Optional[LineSettings]] = {}
        for key, settings in _config_iter(config):
            given[self._line_to_offset(key)] = settings
        plan = [(offset, _checked(given.get(offset) or LineSettings())) for offset in req.offsets]
        for offset, settings in plan:
            _validate_flags(settings)
            _interrupt(offset, settings)
        for offset, settings in plan:
            _apply(req.chip.lines[offset], settings, settings.output_value)
            req.listen(req.chip.lines[offset])

    @property
    def chip_name(self) -> str:
        self._check_released()
        return self._chip_name

    @property
    def num_lines(self) -> int:
        self._check_released()
        return len(self._offsets)

    @property
    def offsets(self) -> list[int]:
        self._check_released()
        return self._offsets

    @property
    def lines(self) -> list[Union[int, str]]:
        self._check_released()
        return self._lines

    def __str__(self) -> str:
        if self._req is None:
            return "<LineRequest RELEASED>"
        return (
            f'<LineRequest chip="{self._chip_name}" num_lines={len(self._offsets)}'
            f" offsets={self._offsets}>"
        )
