"""libgpiod, through either of its Python APIs (any Linux board with a GPIO character
device: every Raspberry Pi on a current kernel, and the only way on a Pi 5).

- v2 (`gpiod` 2.x from PyPI: `request_lines`, `LineSettings`, `gpiod.line`): one line
  request per pin; a pin set up again is changed with `reconfigure_lines()`, never
  released first, so no other program can take it in between.
- v1 (`gpiod` 1.x, Debian's python3-libgpiod 1.6: `Chip.get_line`, `Line.request`):
  what a Pi gets from apt without a compiler. An output set up again is changed with
  `set_config()`; an input's edge request cannot be changed in place (the kernel's v1
  event request has no SET_CONFIG), so it is released and requested again. v1 has no
  debounce and its edges carry no sequence number.

Which API a module has is read from the module (`api_of`), never from its name: both
import as `gpiod`. Inputs are requested with edge detection on both edges, so `watch()`
gives the request's descriptor (made non-blocking) for the loop's selector. Every error
of the library (OSError, ValueError, NotImplementedError for EOPNOTSUPP, the released
and closed errors) becomes a GpioError that names the pin and keeps the library's words.
"""

from __future__ import annotations

import errno
import glob
import importlib
import logging
import os
from abc import abstractmethod
from datetime import timedelta
from types import ModuleType
from typing import Any, Optional

from gpio.base import Backend, Edge, GpioError, Pin, said

CONSUMER = "httap"
log = logging.getLogger("gpio")


def api_of(lib: ModuleType) -> int:
    """2 for libgpiod v2's bindings (they have `request_lines`), 1 for v1's (`Chip` and
    the `LINE_REQ_*` constants), 0 for neither."""
    if hasattr(lib, "request_lines") and hasattr(lib, "LineSettings"):
        return 2
    if hasattr(lib, "Chip") and hasattr(lib, "LINE_REQ_DIR_OUT"):
        return 1
    return 0


def load(module: Optional[ModuleType] = None) -> ModuleType:
    """The `gpiod` module (or `module`); GpioError when it cannot be imported."""
    if module is not None:
        return module
    try:
        return importlib.import_module("gpiod")
    except ImportError as err:
        raise GpioError(f"cannot use libgpiod (the gpiod package): {err}") from None


def open_gpiod(chip: Optional[str] = None, module: Optional[ModuleType] = None) -> Backend:
    """The backend for the libgpiod API that `gpiod` (or `module`) has."""
    lib = load(module)
    api = api_of(lib)
    if api == 2:
        return GpiodBackend(chip, lib)
    if api == 1:
        return GpiodV1Backend(chip, lib)
    where = getattr(lib, "__file__", None) or lib.__name__
    raise GpioError(f"{where} is neither libgpiod v1 nor v2 Python bindings")


def _label(lib: ModuleType, path: str) -> str:
    with lib.Chip(path) as chip:
        return chip.get_info().label if api_of(lib) == 2 else chip.label()


def find_chip(lib: ModuleType, paths: Optional[list[str]] = None) -> str:
    """The chip of the header pins: the first whose label starts with `pinctrl-`
    (pinctrl-rp1 on a Pi 5, pinctrl-bcm2711 on a Pi 4), else the first chip."""
    paths = sorted(glob.glob("/dev/gpiochip*")) if paths is None else paths
    if not paths:
        raise GpioError("no /dev/gpiochip* device: this board has no GPIO character device")
    for path in paths:
        try:
            if _label(lib, path).startswith("pinctrl-"):
                return path
        except (OSError, ValueError):
            continue
    return paths[0]


class LibgpiodBackend(Backend):
    """What both libgpiod APIs share: one library object held per set-up GPIO (v2 its
    `LineRequest`, v1 its requested `Line`) in `held`, the inputs among them that were
    requested with edges, and every library error wrapped into a GpioError that names
    the pin. A subclass gives its API's number (`api`), the library's errors (`errors`)
    and the calls that differ: `_setup`, `_get`, `_set`, `_fd`, `_edges`."""

    name = "gpiod"
    api = 0  # the bindings' API, as api_of() reads it
    errors: tuple[type[BaseException], ...] = (OSError, ValueError)

    def __init__(self, module: Optional[ModuleType] = None) -> None:
        self.lib = lib = load(module)
        if api_of(lib) != self.api:
            raise GpioError(
                f"{lib.__name__} is not libgpiod v{self.api}'s bindings: use open_gpiod()"
            )
        self.held: dict[int, Any] = {}
        self.inputs: set[int] = set()  # the inputs requested with edge detection

    def setup(self, pin: Pin) -> None:
        try:
            self._setup(pin)
        except self.errors as err:
            raise GpioError(f"GPIO {pin.gpio}: libgpiod refused the set-up: {said(err)}") from None

    def read(self, gpio: int) -> int:
        try:
            return self._get(self._held(gpio), gpio)
        except self.errors as err:
            raise GpioError(f"GPIO {gpio}: libgpiod cannot read it: {said(err)}") from None

    def write(self, gpio: int, value: int) -> None:
        try:
            self._set(self._held(gpio), gpio, value)
        except self.errors as err:
            raise GpioError(f"GPIO {gpio}: libgpiod cannot drive it: {said(err)}") from None

    def watch(self, gpio: int) -> Optional[int]:
        """The input's edge descriptor (v2 the request's `fd`, v1 `event_get_fd()`),
        made non-blocking; None for an output or an input without edge detection."""
        if gpio not in self.inputs:
            return None
        try:
            fd = self._fd(self._held(gpio))
            os.set_blocking(fd, False)
        except self.errors as err:
            raise GpioError(f"GPIO {gpio}: libgpiod gives no descriptor: {said(err)}") from None
        return fd

    def edges(self, gpio: int) -> list[Edge]:
        try:
            return self._edges(self._held(gpio))
        except BlockingIOError:
            return []
        except self.errors as err:
            raise GpioError(f"GPIO {gpio}: libgpiod cannot read its edges: {said(err)}") from None

    def _held(self, gpio: int) -> Any:
        try:
            return self.held[gpio]
        except KeyError:
            raise GpioError(f"GPIO {gpio} has not been set up") from None

    def close(self) -> None:
        """Release every line once (a second release raises in gpiod 2.1 to 2.4); a
        library that refuses is logged: the server is stopping, and must finish."""
        held = list(self.held.items())
        self.held.clear()
        self.inputs.clear()
        for number, thing in held:
            try:
                thing.release()
            except self.errors as err:
                log.error("GPIO %d: libgpiod cannot release it: %s", number, said(err))

    @abstractmethod
    def _setup(self, pin: Pin) -> None:
        """`setup()` in the library's calls; the library's errors are wrapped by it."""

    @abstractmethod
    def _get(self, held: Any, gpio: int) -> int:
        """The level of `gpio`, 0 or 1, read through what is held for it."""

    @abstractmethod
    def _set(self, held: Any, gpio: int, value: int) -> None:
        """Drive `gpio` to `value` (any truth value) through what is held for it."""

    @abstractmethod
    def _fd(self, held: Any) -> int:
        """The descriptor on which the held input's edge events arrive."""

    @abstractmethod
    def _edges(self, held: Any) -> list[Edge]:
        """The edge events waiting on the held input, as Edges; BlockingIOError when
        none is waiting."""


class GpiodBackend(LibgpiodBackend):
    """libgpiod v2: one `LineRequest` per pin."""

    api = 2

    def __init__(self, chip: Optional[str] = None, module: Optional[ModuleType] = None) -> None:
        super().__init__(module)
        name = self.lib.__name__
        self.line = importlib.import_module(name + ".line")
        self.rising = importlib.import_module(name + ".edge_event").EdgeEvent.Type.RISING_EDGE
        exception = importlib.import_module(name + ".exception")
        self.errors = (
            OSError,
            ValueError,
            NotImplementedError,  # EOPNOTSUPP: the chip cannot do what the settings ask
            exception.ChipClosedError,
            exception.RequestReleasedError,
        )
        self.chip = chip or find_chip(self.lib)

    def _settings(self, pin: Pin, value: Any = None, edges: bool = True) -> Any:
        line = self.line
        if pin.is_output:
            if value is None:
                value = line.Value.ACTIVE if pin.initial else line.Value.INACTIVE
            return self.lib.LineSettings(direction=line.Direction.OUTPUT, output_value=value)
        bias = {"up": line.Bias.PULL_UP, "down": line.Bias.PULL_DOWN, "off": line.Bias.DISABLED}
        return self.lib.LineSettings(
            direction=line.Direction.INPUT,
            bias=bias[pin.pull],
            edge_detection=line.Edge.BOTH if edges else line.Edge.NONE,
            debounce_period=timedelta(seconds=pin.debounce if edges else 0),
        )

    def _setup(self, pin: Pin) -> None:
        number = pin.gpio
        keep = pin.is_output and pin.initial is None  # leave the level as it is: read it
        edges = not pin.is_output
        request = self.held.get(number)
        if request is None:  # a new request; the line's level is read where kept
            as_is = self.lib.LineSettings(direction=self.line.Direction.AS_IS)
            try:
                request = self._request({number: as_is if keep else self._settings(pin)})
            except OSError as err:
                if not edges or err.errno != errno.ENODEV:
                    raise
                # No interrupt for this line (an I2C expander, say): no edges.
                request = self._request({number: self._settings(pin, edges=False)})
                edges = False
                log.warning("GPIO %d has no edge detection (%s): sampled", number, err)
            if keep:
                try:
                    request.reconfigure_lines(
                        {number: self._settings(pin, request.get_value(number))}
                    )
                except self.errors:
                    request.release()
                    raise
            self.held[number] = request
        else:  # ours already: changed in place, never let go
            value = request.get_value(number) if keep else None
            request.reconfigure_lines({number: self._settings(pin, value)})
        if edges:
            self.inputs.add(number)
        else:
            self.inputs.discard(number)

    def _request(self, config: dict) -> Any:
        return self.lib.request_lines(self.chip, consumer=CONSUMER, config=config)

    def _get(self, held: Any, gpio: int) -> int:
        return 1 if held.get_value(gpio) == self.line.Value.ACTIVE else 0

    def _set(self, held: Any, gpio: int, value: int) -> None:
        held.set_value(gpio, self.line.Value.ACTIVE if value else self.line.Value.INACTIVE)

    def _fd(self, held: Any) -> int:
        return held.fd

    def _edges(self, held: Any) -> list[Edge]:
        """`read_edge_events()`: at most 64 a call (the bindings' default)."""
        rising = self.rising
        return [
            Edge(1 if event.event_type == rising else 0, event.timestamp_ns, event.line_seqno)
            for event in held.read_edge_events()
        ]


class GpiodV1Backend(LibgpiodBackend):
    """libgpiod v1: the chip stays open, one requested `Line` per pin. v1 raises
    OSError(errno), and ValueError on a closed chip or line (the class's `errors`)."""

    api = 1

    def __init__(self, chip: Optional[str] = None, module: Optional[ModuleType] = None) -> None:
        super().__init__(module)
        path = chip or find_chip(self.lib)
        try:
            self.chip = self.lib.Chip(path)
        except self.errors as err:
            raise GpioError(f"libgpiod cannot open {path}: {said(err)}") from None

    def _setup(self, pin: Pin) -> None:
        lib, number = self.lib, pin.gpio
        if not pin.is_output and pin.debounce:
            raise GpioError(
                f"GPIO {number}: libgpiod v1 cannot debounce; drop `debounce` or install"
                " gpiod 2.x (pip install gpiod)"
            )
        flags = 0
        if not pin.is_output:
            flags = {
                "up": lib.LINE_REQ_FLAG_BIAS_PULL_UP,
                "down": lib.LINE_REQ_FLAG_BIAS_PULL_DOWN,
                "off": lib.LINE_REQ_FLAG_BIAS_DISABLE,
            }[pin.pull]
        line = self.held.get(number)
        if line is not None and number in self.inputs:
            # An event request has no SET_CONFIG in the kernel's v1 uAPI.
            del self.held[number]
            self.inputs.discard(number)
            line.release()
            line = None
        if line is None:
            line = self.chip.get_line(number)
            if pin.is_output and pin.initial is None:
                line.request(consumer=CONSUMER, type=lib.LINE_REQ_DIR_AS_IS)
            elif pin.is_output:
                line.request(consumer=CONSUMER, type=lib.LINE_REQ_DIR_OUT, default_val=pin.initial)
            else:
                line.request(consumer=CONSUMER, type=lib.LINE_REQ_EV_BOTH_EDGES, flags=flags)
                self.inputs.add(number)
            self.held[number] = line
            if pin.is_output and pin.initial is None:
                line.set_direction_output(line.get_value())
        elif pin.is_output:
            value = line.get_value() if pin.initial is None else pin.initial
            line.set_direction_output(value)
        else:  # an output becomes an input: a value request cannot give edges
            del self.held[number]
            line.release()
            line = self.chip.get_line(number)
            line.request(consumer=CONSUMER, type=lib.LINE_REQ_EV_BOTH_EDGES, flags=flags)
            self.held[number] = line
            self.inputs.add(number)

    def _get(self, held: Any, gpio: int) -> int:
        return 1 if held.get_value() else 0

    def _set(self, held: Any, gpio: int, value: int) -> None:
        held.set_value(1 if value else 0)

    def _fd(self, held: Any) -> int:
        return held.event_get_fd()

    def _edges(self, held: Any) -> list[Edge]:
        """`event_read_multiple()` (at most 16 a call); v1 edges have no sequence number."""
        rising = self.lib.LineEvent.RISING_EDGE
        return [
            Edge(1 if event.type == rising else 0, event.sec * 1_000_000_000 + event.nsec, None)
            for event in held.event_read_multiple()
        ]

    def close(self) -> None:
        super().close()
        if self.chip is not None:
            self.chip.close()
            self.chip = None
