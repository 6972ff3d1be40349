"""The GPIO backends: one contract for every board, then what only some boards do.

The contract suite runs the same tests on the simulated board and on the rpi and gpiod
backends. Those two run on stand-ins for their libraries (tests/helpers/standins: RPi.GPIO
0.7 and the libgpiod v2 bindings), which keep the libraries' API, state rules and errors —
RPi.GPIO's RuntimeError for a channel not set up, libgpiod's EBUSY and EPERM — over
simulated pins, so a backend that misuses its library fails here as it would on a Pi.

SoftPwm runs on a real `httap.loop.Loop` and is measured from the sim's pin history.
"""

from __future__ import annotations

import errno
import glob
import importlib.metadata
import itertools
import logging
import os
import select
import subprocess
import sys
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest

import gpio
from gpio import GpioError, Pin
from gpio.gpiod import GpiodBackend, GpiodV1Backend, api_of, find_chip, open_gpiod
from gpio.pwm import SoftPwm
from gpio.rpi import RpiBackend
from gpio.sim import HISTORY_LIMIT, SimBackend
from tests.helpers import ROOT, run_for

CHIP = "/dev/gpiochip0"  # the stand-in's RP1: "pinctrl-rp1", 54 lines
OTHER_CHIP = "/dev/gpiochip10"  # the stand-in's other controller, 32 lines


@pytest.fixture
def no_libraries(monkeypatch):
    """Neither RPi.GPIO nor gpiod can be imported, as on this machine without stand-ins."""
    for name in ("RPi", "RPi.GPIO", "gpiod", "gpiod.line"):
        monkeypatch.setitem(sys.modules, name, None)  # `import name` raises ImportError


# -- the boards under test -------------------------------------------------------------


KINDS = ["sim", "rpi", "rpi-lgpio", "gpiod", "gpiod-2.4", "gpiod-v1"]
V1_CHIP = "/dev/gpiochip0"  # the v1 stand-in's Pi 4 chip: "pinctrl-bcm2711", 58 lines


class Board:
    """How to open one kind of backend, and a look at its library's side of things:
    "rpi" is RPi.GPIO, "rpi-lgpio" the real rpi-lgpio over lgpio's stand-in, "gpiod"
    libgpiod v2 with gpiod 2.5's rules, "gpiod-2.4" with 2.4's, "gpiod-v1" libgpiod v1."""

    def __init__(self, kind: str, libs: SimpleNamespace) -> None:
        self.kind = kind
        self.libs = libs
        self.opened: list[gpio.Backend] = []

    def open(self) -> gpio.Backend:
        if self.kind == "sim":
            backend: gpio.Backend = SimBackend()
        elif self.kind.startswith("rpi"):
            backend = RpiBackend()  # imports RPi.GPIO: the stand-in, or rpi-lgpio
        elif self.kind == "gpiod-v1":
            backend = open_gpiod(chip=V1_CHIP)  # imports gpiod: v1's stand-in
        else:
            backend = open_gpiod(chip=CHIP)  # imports gpiod: v2's stand-in
        self.opened.append(backend)
        return backend

    def holds_nothing(self) -> bool:
        """The library holds no pin for us any more (what close() must achieve)."""
        if self.kind == "rpi":
            lib = self.libs.GPIO
            return lib.getmode() is None and not any(lib._is_set_up(n) for n in range(54))
        if self.kind == "rpi-lgpio":
            return self.libs.GPIO.getmode() is None and not self.libs.lgpio._handles
        if self.kind == "gpiod-v1":
            with self.libs.gpiod.Chip(V1_CHIP) as chip:
                return not any(chip.get_line(n).is_used() for n in range(54))
        if self.kind.startswith("gpiod"):
            with self.libs.gpiod.Chip(CHIP) as chip:
                return not any(chip.get_line_info(n).used for n in range(54))
        return True  # the sim holds nothing outside itself

    def outside(self, backend: gpio.Backend, number: int, level: int) -> None:
        """What the outside world puts on the floating input `number`."""
        if self.kind == "sim":
            backend.drive(number, level)
        elif self.kind == "rpi":
            self.libs.GPIO._set_external(number, level)
        elif self.kind == "rpi-lgpio":
            self.libs.lgpio._set_external(number, level)
        else:
            self.libs.gpiod._set_external(CHIP, number, level)


@pytest.fixture(params=KINDS)
def board(request, standins):
    libs = standins
    if request.param == "rpi-lgpio":
        libs = request.getfixturevalue("rpi_lgpio")
    elif request.param == "gpiod-v1":
        libs = SimpleNamespace(gpiod=request.getfixturevalue("gpiod_v1"))
    elif request.param == "gpiod-2.4":
        standins.gpiod._reset("2.4.3")
    made = Board(request.param, libs)
    yield made
    for backend in made.opened:
        backend.close()


@pytest.fixture
def backend(board):
    return board.open()


def out(number: int, initial=None) -> Pin:
    return Pin(f"out{number}", number, "out", initial=initial)


def inp(number: int, pull: str = "off") -> Pin:
    return Pin(f"in{number}", number, "in", pull=pull)


# -- the contract: every backend -------------------------------------------------------


def test_outputs_start_at_their_initial_level(backend):
    backend.setup(out(17, initial=0))
    backend.setup(out(27, initial=1))
    backend.setup(out(22))  # no initial value: the level it has, low on a line never driven
    assert [backend.read(17), backend.read(27), backend.read(22)] == [0, 1, 0]


def test_an_output_reads_back_what_it_drives(backend):
    backend.setup(out(17, initial=0))
    seen = []
    for value in (1, 0, 1, 1, 0):
        backend.write(17, value)
        seen.append(backend.read(17))
    assert seen == [1, 0, 1, 1, 0]
    assert all(type(value) is int for value in seen)


def test_any_true_value_drives_high_and_reads_1(backend):
    backend.setup(out(17))
    backend.write(17, True)
    assert backend.read(17) == 1
    backend.write(17, 2)
    assert backend.read(17) == 1 and type(backend.read(17)) is int
    backend.write(17, False)
    assert backend.read(17) == 0


def test_a_pwm_pin_is_set_up_as_an_output(backend):
    backend.setup(Pin("buzzer", 18, "pwm", initial=1))
    assert backend.read(18) == 1
    backend.write(18, 0)
    assert backend.read(18) == 0


def test_inputs_read_their_pull(backend):
    backend.setup(inp(5, "up"))
    backend.setup(inp(6, "down"))
    assert (backend.read(5), backend.read(6)) == (1, 0)


def test_writing_an_input_is_a_gpio_error_naming_the_pin(backend):
    backend.setup(inp(22, "up"))
    with pytest.raises(GpioError, match=r"\bGPIO 22\b"):
        backend.write(22, 0)
    assert backend.read(22) == 1  # and the input is unchanged


def test_a_pin_never_set_up_cannot_be_read_or_written(backend):
    backend.setup(out(17))
    with pytest.raises(GpioError, match=r"\bGPIO 23\b"):
        backend.read(23)
    with pytest.raises(GpioError, match=r"\bGPIO 23\b"):
        backend.write(23, 1)


def test_pins_are_independent(backend):
    backend.setup(out(17, initial=0))
    backend.setup(out(27, initial=0))
    backend.setup(inp(5, "up"))
    backend.write(17, 1)
    assert (backend.read(17), backend.read(27), backend.read(5)) == (1, 0, 1)


def test_a_pin_can_be_set_up_again_in_another_mode(backend):
    backend.setup(out(17, initial=1))
    backend.setup(inp(17, "down"))
    assert backend.read(17) == 0
    with pytest.raises(GpioError, match=r"\bGPIO 17\b"):
        backend.write(17, 1)
    backend.setup(out(17, initial=0))
    backend.write(17, 1)
    assert backend.read(17) == 1


def test_close_releases_the_board_for_the_next_user(board):
    first = board.open()
    first.setup(out(17, initial=1))
    first.setup(inp(5, "up"))
    first.close()
    assert board.holds_nothing()
    first.close()  # closing twice is harmless

    second = board.open()  # e.g. the server restarted: the same pins, again
    second.setup(out(17, initial=0))
    second.setup(inp(5, "down"))
    assert (second.read(17), second.read(5)) == (0, 0)


def test_an_output_without_initial_keeps_the_level_it_has(backend):
    backend.setup(out(17, initial=1))
    backend.setup(out(17))  # set up again: the level stays
    assert backend.read(17) == 1
    backend.write(17, 0)
    backend.setup(out(17))
    assert backend.read(17) == 0


def test_a_restarted_server_leaves_an_output_without_initial_as_it_was(board):
    if board.kind in ("sim", "rpi-lgpio"):
        pytest.skip(
            "a new simulated board starts low; rpi-lgpio's cleanup() makes every pin an input"
        )
    first = board.open()
    first.setup(out(17, initial=1))
    first.close()
    second = board.open()
    second.setup(out(17))
    assert second.read(17) == 1


def test_an_input_gives_its_edges_on_a_descriptor_or_none(board, backend):
    backend.setup(inp(5))
    backend.setup(out(17))
    assert backend.watch(17) is None  # an output has no edges
    fd = backend.watch(5)
    if board.kind.startswith("rpi"):
        assert fd is None  # RPi.GPIO's edges need a thread: sampled instead
        return
    assert not os.get_blocking(fd)
    assert select.select([fd], [], [], 0)[0] == []
    assert backend.edges(5) == []  # nothing to read: no wait, no error
    before = time.monotonic_ns()
    for level in (1, 0, 1):
        board.outside(backend, 5, level)
    assert select.select([fd], [], [], 0)[0] == [fd]
    edges = backend.edges(5)
    assert [edge.level for edge in edges] == [1, 0, 1]
    stamps = [edge.ns for edge in edges]
    assert before <= stamps[0] <= stamps[1] <= stamps[2] <= time.monotonic_ns()
    if board.kind == "gpiod-v1":
        assert [edge.seqno for edge in edges] == [None] * 3  # v1 numbers nothing
    else:
        assert [edge.seqno for edge in edges] == [1, 2, 3]
    assert select.select([fd], [], [], 0)[0] == [] and backend.edges(5) == []


def test_the_kernel_keeps_the_last_16_edges_and_numbers_the_lost_ones(board, backend):
    if board.kind.startswith("rpi"):
        pytest.skip("RPi.GPIO gives no edges")
    backend.setup(inp(5))
    backend.watch(5)
    for n in range(20):
        board.outside(backend, 5, 1 - n % 2)
    edges = backend.edges(5)
    assert len(edges) == 16 and edges[-1].level == 0
    if board.kind != "gpiod-v1":
        assert [edge.seqno for edge in edges] == list(range(5, 21))  # 1 to 4 were dropped


# -- RPi.GPIO ------------------------------------------------------------------------


def test_rpi_sets_bcm_numbering_and_silences_warnings(standins):
    GPIO = standins.GPIO
    RpiBackend()
    assert GPIO.getmode() == GPIO.BCM
    assert GPIO._warnings is False


def test_rpi_gpio_numbers_are_bcm(standins):
    GPIO = standins.GPIO
    backend = RpiBackend(module=GPIO)
    backend.setup(inp(2, "up"))  # BCM 2 is physical pin 3; BOARD 2 is a 5 V pin
    assert backend.read(2) == 1
    assert GPIO.gpio_function(2) == GPIO.IN and GPIO.input(2) == 1


def test_rpi_invalid_channel_is_a_gpio_error(standins):
    backend = RpiBackend(module=standins.GPIO)
    with pytest.raises(GpioError, match=r"GPIO 60\b.*invalid on a Raspberry Pi"):
        backend.setup(out(60))


def test_rpi_after_close_the_library_refuses_and_the_backend_says_so(standins):
    backend = RpiBackend(module=standins.GPIO)
    backend.setup(out(17))
    backend.close()
    with pytest.raises(GpioError, match=r"GPIO 17\b.*setmode"):
        backend.read(17)


def test_rpi_refuses_when_the_process_already_uses_board_numbering(standins):
    standins.GPIO.setmode(standins.GPIO.BOARD)  # e.g. the user's app did
    with pytest.raises(GpioError, match=r"RPi\.GPIO.*different mode"):
        RpiBackend()


def test_rpi_without_the_library_is_a_gpio_error(no_libraries):
    with pytest.raises(GpioError, match=r"RPi\.GPIO"):
        RpiBackend()


@pytest.mark.parametrize(
    ("steps", "error", "message"),
    [
        (["input 17"], RuntimeError, "Please set pin numbering mode using GPIO.setmode"),
        (["setup 17 out"], RuntimeError, "Please set pin numbering mode using GPIO.setmode"),
        (["bcm", "input 17"], RuntimeError, "You must setup\\(\\) the GPIO channel first"),
        (["bcm", "output 17"], RuntimeError, "has not been set up as an OUTPUT"),
        (["bcm", "setup 17 in", "output 17"], RuntimeError, "not been set up as an OUTPUT"),
        (["bcm", "setup 54 in"], ValueError, "The channel sent is invalid on a Raspberry Pi"),
        (["board", "setup 2 in"], ValueError, "The channel sent is invalid on a Raspberry Pi"),
        (["bcm", "board"], ValueError, "A different mode has already been set!"),
        (["bcm", "setup 17 out", "cleanup", "input 17"], RuntimeError, "setmode"),
        (["bcm", "setup 17 out", "cleanup", "bcm", "input 17"], RuntimeError, "setup\\(\\)"),
    ],
)
def test_rpi_standin_raises_as_rpi_gpio_does(standins, steps, error, message):
    GPIO = standins.GPIO
    GPIO.setwarnings(False)
    actions = {
        "bcm": lambda: GPIO.setmode(GPIO.BCM),
        "board": lambda: GPIO.setmode(GPIO.BOARD),
        "cleanup": GPIO.cleanup,
        "input": lambda n: GPIO.input(n),
        "output": lambda n: GPIO.output(n, GPIO.HIGH),
        "setup": lambda n, d: GPIO.setup(n, GPIO.OUT if d == "out" else GPIO.IN),
    }
    *before, last = steps
    for step in before:
        verb, *args = step.split()
        actions[verb](*[int(a) if a.isdigit() else a for a in args])
    verb, *args = last.split()
    with pytest.raises(error, match=message):
        actions[verb](*[int(a) if a.isdigit() else a for a in args])


def test_rpi_gpio_on_a_pi_5_fails_at_the_first_setup_as_a_gpio_error(standins):
    standins.GPIO._reset(board="pi5")
    backend = RpiBackend()  # RPi.GPIO imports, and takes BCM numbering, on a Pi 5
    with pytest.raises(GpioError, match=r"GPIO 17: RPi\.GPIO .*Cannot determine SOC peripheral"):
        backend.setup(out(17))


def test_rpi_gpio_without_the_gpiomem_device_is_a_gpio_error(standins):
    standins.GPIO._reset(gpiomem=False)  # a systemd unit that does not allow it
    with pytest.raises(GpioError, match=r"GPIO 4: RPi\.GPIO .*No access to /dev/mem"):
        RpiBackend().setup(inp(4))


def test_rpi_lgpio_errors_are_gpio_errors_in_the_librarys_words(rpi_lgpio):
    rpi_lgpio.lgpio._hold(17)  # another program holds GPIO 17
    backend = RpiBackend()
    assert backend.library == "rpi-lgpio"
    with pytest.raises(GpioError) as busy:
        backend.setup(out(17))
    assert str(busy.value) == "GPIO 17: rpi-lgpio refused the set-up: GPIO busy"
    backend.setup(out(27))
    backend.close()
    rpi_lgpio.lgpio._reset(chips=())  # no gpiochip at all
    with pytest.raises(GpioError) as none:
        RpiBackend()
    assert str(none.value) == "rpi-lgpio refused BCM numbering: can not open gpiochip"


def test_real_rpi_lgpio_over_real_lgpio_without_a_chip_is_a_gpio_error(monkeypatch):
    """The real libraries, as installed here (no GPIO chip): lgpio.error, a plain
    Exception whose str() is a repr, becomes a GpioError with the message itself."""
    try:
        importlib.metadata.version("rpi-lgpio")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("rpi-lgpio is not installed here")
    if glob.glob("/dev/gpiochip*"):
        pytest.skip("this machine has GPIO character devices")
    monkeypatch.setenv("RPI_LGPIO_REVISION", "d04170")  # else it refuses to import off a Pi
    for name in [n for n in sys.modules if n.split(".")[0] in ("RPi", "lgpio")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(GpioError) as refused:
        RpiBackend()
    assert str(refused.value) == "rpi-lgpio refused BCM numbering: can not open gpiochip"
    for name in [n for n in sys.modules if n.split(".")[0] in ("RPi", "lgpio")]:
        del sys.modules[name]


def test_rpi_standin_levels(standins):
    GPIO = standins.GPIO
    GPIO.setmode(GPIO.BCM)
    GPIO.setup(5, GPIO.IN, pull_up_down=GPIO.PUD_UP)
    GPIO.setup(6, GPIO.IN, pull_up_down=GPIO.PUD_DOWN)
    GPIO.setup(17, GPIO.OUT, initial=GPIO.HIGH)
    assert (GPIO.input(5), GPIO.input(6), GPIO.input(17)) == (1, 0, 1)
    GPIO.output(17, GPIO.LOW)
    assert GPIO.input(17) == 0
    with pytest.raises(ValueError, match="initial parameter is not valid for inputs"):
        GPIO.setup(6, GPIO.IN, initial=GPIO.HIGH)
    with pytest.raises(ValueError, match="pull_up_down parameter is not valid for outputs"):
        GPIO.setup(17, GPIO.OUT, pull_up_down=GPIO.PUD_UP)


# -- libgpiod ------------------------------------------------------------------------


def test_gpiod_requests_each_pin_as_httap_with_its_settings(standins):
    line = standins.gpiod.line
    backend = GpiodBackend(chip=CHIP, module=standins.gpiod)
    backend.setup(inp(5, "up"))
    backend.setup(inp(6, "off"))
    backend.setup(out(17, initial=1))
    with standins.gpiod.Chip(CHIP) as chip:
        up, off, led = (chip.get_line_info(n) for n in (5, 6, 17))
    assert (up.used, up.consumer, up.direction, up.bias) == (
        True, "httap", line.Direction.INPUT, line.Bias.PULL_UP,
    )  # fmt: skip
    assert (off.direction, off.bias) == (line.Direction.INPUT, line.Bias.DISABLED)
    assert (led.consumer, led.direction) == ("httap", line.Direction.OUTPUT)
    backend.close()


def test_gpiod_line_held_by_another_program_is_a_gpio_error(standins):
    gpiod = standins.gpiod
    settings = gpiod.LineSettings(direction=gpiod.line.Direction.INPUT)
    with gpiod.request_lines(CHIP, consumer="other", config={17: settings}):
        backend = GpiodBackend(chip=CHIP)
        with pytest.raises(GpioError, match=r"GPIO 17\b.*busy"):
            backend.setup(out(17))
        with pytest.raises(GpioError, match=r"\bGPIO 17\b"):
            backend.read(17)  # nothing half set up
    backend.setup(out(17))  # the other program let go
    assert backend.read(17) == 0
    backend.close()


def test_gpiod_offset_beyond_the_chip_is_a_gpio_error(standins):
    backend = GpiodBackend(chip=CHIP)
    with pytest.raises(GpioError, match=r"GPIO 54\b.*range"):
        backend.setup(out(54))


def test_gpiod_missing_chip_is_a_gpio_error(standins):
    backend = GpiodBackend(chip="/dev/gpiochip7")
    with pytest.raises(GpioError, match=r"GPIO 17\b.*No such file"):
        backend.setup(out(17))


def test_gpiod_after_close_pins_are_gone(standins):
    backend = GpiodBackend(chip=CHIP)
    backend.setup(out(17))
    backend.close()
    with pytest.raises(GpioError, match=r"GPIO 17 has not been set up"):
        backend.write(17, 1)


def test_gpiod_without_a_chip_device_is_a_gpio_error(standins):
    if glob.glob("/dev/gpiochip*"):
        pytest.skip("this machine has GPIO character devices")
    with pytest.raises(GpioError, match="no /dev/gpiochip"):
        GpiodBackend()


def test_gpiod_without_the_library_is_a_gpio_error(no_libraries):
    with pytest.raises(GpioError, match="gpiod"):
        GpiodBackend(chip=CHIP)


def test_gpiod_reconfigures_in_place_and_a_refusal_keeps_the_line(standins):
    gpiod = standins.gpiod
    backend = GpiodBackend(chip=CHIP)
    backend.setup(out(17, initial=1))
    request = backend.held[17]
    backend.setup(inp(17, "up"))  # the same request, reconfigured
    assert backend.held[17] is request and backend.read(17) == 1
    gpiod._NO_DEBOUNCE.add(17)  # this chip answers a debounce with EOPNOTSUPP
    with pytest.raises(GpioError, match=r"GPIO 17: libgpiod refused the set-up: \[Errno 95\]"):
        backend.setup(Pin("button", 17, "in", debounce=0.01))
    with gpiod.Chip(CHIP) as chip:
        info = chip.get_line_info(17)
    assert (info.used, info.consumer) == (True, "httap")  # never let go
    backend.close()


def test_gpiod_inputs_ask_for_both_edges_and_their_debounce(standins):
    line = standins.gpiod.line
    backend = GpiodBackend(chip=CHIP)
    backend.setup(Pin("button", 4, "in", pull="up", debounce=0.005))
    with standins.gpiod.Chip(CHIP) as chip:
        info = chip.get_line_info(4)
    assert (info.edge_detection, info.debounce_period) == (line.Edge.BOTH, timedelta(seconds=0.005))
    backend.close()


def test_gpiod_an_input_without_an_interrupt_is_sampled(standins, caplog):
    standins.gpiod._NO_IRQ.add(5)  # e.g. a line of an I2C expander
    backend = GpiodBackend(chip=CHIP)
    with caplog.at_level(logging.WARNING, logger="gpio"):
        backend.setup(inp(5, "up"))
    assert "GPIO 5 has no edge detection ([Errno 19] No such device): sampled" in caplog.text
    assert backend.watch(5) is None and backend.read(5) == 1
    backend.close()


def test_gpiod_v1_requests_edges_and_refuses_a_debounce_it_cannot_do(gpiod_v1):
    backend = open_gpiod(chip=V1_CHIP)
    assert isinstance(backend, GpiodV1Backend)
    backend.setup(inp(4, "up"))
    line = backend.held[4]
    assert (line.consumer(), line.is_requested()) == ("httap", True)
    with pytest.raises(GpioError, match=r"GPIO 5: libgpiod v1 cannot debounce"):
        backend.setup(Pin("button", 5, "in", debounce=0.01))
    gpiod_v1._hold(V1_CHIP, 6, "other")
    with pytest.raises(GpioError) as busy:
        backend.setup(out(6))
    assert str(busy.value) == (
        "GPIO 6: libgpiod refused the set-up: [Errno 16] Device or resource busy"
    )
    with pytest.raises(GpioError, match=r"GPIO 58: .*Invalid argument"):
        backend.setup(out(58))  # the Pi 4's chip has 58 lines
    with pytest.raises(GpioError, match=r"GPIO 4: libgpiod cannot drive it: .*not permitted"):
        backend.write(4, 1)
    backend.close()


def test_gpiod_2_4_raises_on_a_second_release_and_close_releases_once(standins):
    gpiod = standins.gpiod
    gpiod._reset("2.4.3")
    backend = GpiodBackend(chip=CHIP)
    backend.setup(out(17))
    request = backend.held[17]
    backend.close()
    backend.close()
    with pytest.raises(gpiod.exception.RequestReleasedError):
        request.release()  # what releasing it again would have done inside close()
    gpiod._reset("2.5.0")
    request = gpiod.request_lines(CHIP, config={17: None})
    request.release()
    request.release()  # a no-op from 2.5 on


def test_gpiod_value_truth_follows_the_version(standins):
    gpiod = standins.gpiod
    Value = gpiod.line.Value
    assert (bool(Value.ACTIVE), bool(Value.INACTIVE)) == (True, False)  # 2.2 and later
    gpiod._reset("2.1.3")
    assert (bool(Value.ACTIVE), bool(Value.INACTIVE)) == (True, True)  # a plain Enum member
    backend = GpiodBackend(chip=CHIP)
    backend.setup(out(17, initial=0))
    assert backend.read(17) == 0  # compared with ACTIVE, never taken for a truth value
    backend.close()


def test_the_api_is_read_from_the_module_not_its_name(standins, gpiod_v1):
    import gpiod as v1

    assert (api_of(v1), api_of(standins.gpiod), api_of(sys)) == (1, 2, 0)
    with pytest.raises(GpioError, match="is not libgpiod v2's bindings"):
        GpiodBackend(chip=CHIP, module=v1)
    with pytest.raises(GpioError, match="neither libgpiod v1 nor v2"):
        open_gpiod(chip=CHIP, module=sys)


def test_real_gpiod_2_without_the_chip_is_a_gpio_error():
    """gpiod 2.x from PyPI, as installed here (requirements-test.txt), where no
    /dev/gpiochip0 exists: FileNotFoundError becomes a GpioError."""
    if glob.glob("/dev/gpiochip*"):
        pytest.skip("this machine has GPIO character devices")
    try:
        importlib.metadata.version("gpiod")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("gpiod is not installed here")
    backend = open_gpiod(chip="/dev/gpiochip0")
    assert isinstance(backend, GpiodBackend)
    with pytest.raises(GpioError) as missing:
        backend.setup(out(17))
    assert str(missing.value) == (
        "GPIO 17: libgpiod refused the set-up: [Errno 2] No such file or directory"
    )
    with pytest.raises(GpioError, match="no /dev/gpiochip"):
        open_gpiod()


SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, for which python3-libgpiod is built


def test_real_gpiod_v1_without_the_chip_is_a_gpio_error():
    """Debian's python3-libgpiod 1.6 (the Makefile's test tools install it), run by the
    Python it is built for: its API is detected, its missing chip is a GpioError."""
    if glob.glob("/dev/gpiochip*"):
        pytest.skip("this machine has GPIO character devices")
    script = (
        "import gpiod\n"
        "from gpio import GpioError\n"
        "from gpio.gpiod import api_of, open_gpiod\n"
        "print(gpiod.version_string(), api_of(gpiod))\n"
        "try:\n"
        "    open_gpiod(chip='/dev/gpiochip0')\n"
        "except GpioError as err:\n"
        "    print(err)\n"
    )
    try:
        found = subprocess.run(
            [SYSTEM_PYTHON, "-c", "import gpiod; gpiod.Chip; gpiod.LINE_REQ_DIR_OUT"],
            capture_output=True,
        )
    except FileNotFoundError:
        pytest.skip(f"no {SYSTEM_PYTHON}")
    if found.returncode:
        pytest.skip("python3-libgpiod (v1) is not installed here")
    ran = subprocess.run(
        [SYSTEM_PYTHON, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    )
    head, refused = ran.stdout.splitlines()
    version, api = head.split()
    assert version.startswith("1.") and api == "1"
    assert refused == "libgpiod cannot open /dev/gpiochip0: [Errno 2] No such file or directory"


def test_find_chip_picks_the_pinctrl_chip(standins):
    gpiod = standins.gpiod
    assert find_chip(gpiod, [OTHER_CHIP, CHIP]) == CHIP
    assert find_chip(gpiod, ["/dev/gpiochip3", OTHER_CHIP, CHIP]) == CHIP  # missing: skipped
    assert find_chip(gpiod, [OTHER_CHIP]) == OTHER_CHIP  # no pinctrl chip: the first
    with pytest.raises(GpioError, match="no /dev/gpiochip"):
        find_chip(gpiod, [])


def test_gpiod_standin_raises_as_libgpiod_does(standins):
    gpiod = standins.gpiod
    gpiod._reset("2.4.3")  # a second release raises up to 2.4
    line = gpiod.line
    Value, Direction, Bias = line.Value, line.Direction, line.Bias
    settings = gpiod.LineSettings
    request = gpiod.request_lines(
        CHIP,
        consumer="test",
        config={
            5: settings(direction=Direction.INPUT, bias=Bias.PULL_UP),
            (17, 27): settings(direction=Direction.OUTPUT, output_value=Value.ACTIVE),
        },
    )
    assert request.get_values() == [Value.ACTIVE, Value.ACTIVE, Value.ACTIVE]
    with pytest.raises(OSError) as busy:
        gpiod.request_lines(CHIP, config={27: None})
    assert busy.value.errno == errno.EBUSY
    with pytest.raises(ValueError, match="out range"):
        gpiod.request_lines(CHIP, config={54: None})
    with pytest.raises(ValueError) as not_requested:
        request.get_value(6)
    assert not_requested.value.args[0] == errno.EINVAL
    with pytest.raises(PermissionError) as to_input:
        request.set_value(5, Value.INACTIVE)
    assert to_input.value.errno == errno.EPERM
    with pytest.raises(AttributeError):
        request.set_value(17, 0)  # a bare int: the bindings want a line.Value
    with pytest.raises(ValueError):
        gpiod.request_lines(CHIP, config={6: settings(bias=Bias.PULL_UP)})  # no direction
    with pytest.raises(FileNotFoundError):
        gpiod.Chip("/dev/gpiochip3")
    request.set_values({17: Value.INACTIVE})
    assert request.get_values([17, 27]) == [Value.INACTIVE, Value.ACTIVE]
    request.release()
    for call in (request.release, lambda: request.get_value(17), request.get_values):
        with pytest.raises(gpiod.exception.RequestReleasedError):
            call()
    with gpiod.request_lines(CHIP, config={27: None}) as again:  # free again
        assert again.offsets == [27]
    with gpiod.Chip(CHIP) as chip:
        assert chip.get_info().label == "pinctrl-rp1" and chip.get_info().num_lines == 54
    with pytest.raises(gpiod.ChipClosedError):
        chip.get_info()


# -- the simulated board -------------------------------------------------------------


def test_sim_history_records_every_value_with_its_time():
    before = time.monotonic()
    sim = SimBackend()
    sim.setup(out(17, initial=0))
    for value in (1, 0, 1):
        sim.write(17, value)
    after = time.monotonic()
    history = sim.history(17)
    assert [value for _, value in history] == [0, 1, 0, 1]
    times = [when for when, _ in history]
    assert times == sorted(times) and before <= times[0] and times[-1] <= after
    history.append((0.0, 9))  # a copy: the pin's own history is untouched
    assert len(sim.history(17)) == 4


def test_sim_history_uses_the_given_clock():
    ticks = itertools.count()
    sim = SimBackend(clock=lambda: next(ticks))
    sim.setup(out(17))
    sim.write(17, 1)
    sim.setup(inp(5, "up"))
    sim.write(17, 0)
    assert sim.history(17) == [(0, 0), (1, 1), (3, 0)]
    assert sim.history(5) == [(2, 1)]


def test_sim_history_drops_its_oldest_half_beyond_the_limit():
    sim = SimBackend()
    sim.setup(out(17))
    for n in range(HISTORY_LIMIT):  # with the set-up's entry: one more than the limit
        sim.write(17, n & 1)
    history = sim.history(17)
    assert len(history) == HISTORY_LIMIT + 1 - HISTORY_LIMIT // 2
    assert history[-1][1] == (HISTORY_LIMIT - 1) & 1


def test_sim_setting_a_pin_up_again_starts_a_new_history():
    sim = SimBackend()
    sim.setup(out(17, initial=1))
    sim.write(17, 0)
    sim.setup(inp(17, "up"))
    assert [value for _, value in sim.history(17)] == [1]


def test_sim_wire_loops_an_output_back_to_inputs():
    sim = SimBackend()
    sim.setup(out(17, initial=1))
    sim.setup(inp(27))
    sim.setup(inp(22, "up"))
    sim.wire(17, 27)  # the input reads the output's level at once
    assert sim.read(27) == 1
    sim.wire(17, 22)  # one output, two inputs
    sim.write(17, 0)
    assert (sim.read(27), sim.read(22)) == (0, 0)
    sim.write(17, 1)
    assert (sim.read(27), sim.read(22)) == (1, 1)
    assert [value for _, value in sim.history(27)] == [0, 1, 0, 1]


def test_sim_wire_connects_an_output_to_an_input_only():
    sim = SimBackend()
    sim.setup(out(17))
    sim.setup(out(18))
    sim.setup(inp(27))
    with pytest.raises(GpioError, match=r"GPIO 18\b"):
        sim.wire(17, 18)  # two outputs fighting
    with pytest.raises(GpioError, match=r"GPIO 27\b"):
        sim.wire(27, 17)  # an input drives nothing
    with pytest.raises(GpioError, match=r"GPIO 9\b"):
        sim.wire(17, 9)  # not set up
    sim.write(17, 1)
    assert sim.read(18) == 0


def test_sim_drive_sets_an_input_as_a_button_would():
    sim = SimBackend()
    sim.setup(inp(5, "up"))
    sim.drive(5, 0)  # pressed: pulled to ground
    assert sim.read(5) == 0
    sim.drive(5, 7)  # any true level reads 1
    assert sim.read(5) == 1
    assert [value for _, value in sim.history(5)] == [1, 0, 1]


def test_sim_refuses_to_drive_an_output():
    sim = SimBackend()
    sim.setup(out(17, initial=1))
    with pytest.raises(GpioError, match=r"GPIO 17 is an output"):
        sim.drive(17, 0)
    assert sim.read(17) == 1
    with pytest.raises(GpioError, match=r"GPIO 4 has not been set up"):
        sim.drive(4, 1)


# -- SoftPwm on the real loop ------------------------------------------------------


@pytest.fixture
def sim_pwm(loop):
    sim = SimBackend()
    sim.setup(Pin("buzzer", 18, "pwm"))
    return sim, SoftPwm(sim, 18, loop.call_at, loop.clock)


def rises(history: list[tuple[float, int]]) -> list[float]:
    return [t for (t, v), (_, before) in zip(history[1:], history) if v == 1 and before == 0]


def measure(history: list[tuple[float, int]]) -> tuple[float, float]:
    """(frequency, duty) of a square wave from its history, between its first and last rise."""
    edges = rises(history)
    assert len(edges) >= 3, f"not a wave: {history[:10]}"
    first, last = edges[0], edges[-1]
    high = sum(
        (t_next - t) * value
        for (t, value), (t_next, _) in zip(history, history[1:])
        if first <= t < last
    )
    return (len(edges) - 1) / (last - first), high / (last - first)


def test_softpwm_makes_the_asked_frequency_and_duty(loop, sim_pwm):
    sim, pwm = sim_pwm
    pwm.start(100.0, 0.25)
    assert pwm.running
    run_for(loop, 0.3)
    frequency, duty = measure(sim.history(18))
    assert 80 <= frequency <= 120
    assert 0.1 <= duty <= 0.4


def test_softpwm_start_again_replaces_the_wave(loop, sim_pwm):
    sim, pwm = sim_pwm
    pwm.start(200.0, 0.25)
    pwm.start(50.0, 0.5)  # the 200 Hz edges must not carry on alongside
    assert (pwm.frequency, pwm.duty) == (50.0, 0.5)
    run_for(loop, 0.3)
    frequency, duty = measure(sim.history(18))
    assert 40 <= frequency <= 60
    assert 0.35 <= duty <= 0.65


@pytest.mark.parametrize(("duty", "level"), [(0.0, 0), (1.0, 1)])
def test_softpwm_duty_0_and_1_are_constant_levels(loop, sim_pwm, duty, level):
    sim, pwm = sim_pwm
    pwm.start(100.0, 0.5)
    run_for(loop, 0.03)
    pwm.start(100.0, duty)
    assert not pwm.running
    settled = len(sim.history(18))
    run_for(loop, 0.1)
    assert sim.read(18) == level
    assert sim.history(18)[settled - 1][1] == level
    assert len(sim.history(18)) == settled  # no edge since


def test_softpwm_stop_stops_the_edges(loop, sim_pwm):
    sim, pwm = sim_pwm
    pwm.start(100.0, 0.5)
    run_for(loop, 0.05)
    pwm.stop()
    assert not pwm.running
    stopped = len(sim.history(18))
    run_for(loop, 0.1)
    assert len(sim.history(18)) == stopped
    assert len(rises(sim.history(18))) >= 3


def test_softpwm_a_late_fall_shortens_the_next_pulse_but_never_drops_it(loop, sim_pwm):
    """The loop was busy when a fall was due and the next rise is due already: the rise
    comes at once (jitter), it is not skipped for a whole period (a slower wave)."""
    sim, pwm = sim_pwm
    period = 1 / 50
    pwm.start(50.0, 0.5)  # rise now, fall due in 10 ms, next rise in 20 ms
    time.sleep(1.1 * period)  # the loop is busy past the next rise's time
    run_for(loop, 0.1)
    history = sim.history(18)
    late_fall, next_rise = history[2], history[3]
    assert (late_fall[1], next_rise[1]) == (0, 1)
    assert next_rise[0] - late_fall[0] < period / 2


def test_softpwm_a_long_stall_skips_whole_cycles_and_keeps_the_phase(loop, sim_pwm):
    sim, pwm = sim_pwm
    period = 1 / 50
    pwm.start(50.0, 0.5)
    start = sim.history(18)[1][0]  # the first rise
    time.sleep(3.25 * period)  # three rises missed for good
    run_for(loop, 0.2)
    edges = rises(sim.history(18))
    late = [t for t in edges if t > start + 4.5 * period]  # past the catching up
    phases = sorted(abs(((t - start) / period + 0.5) % 1 - 0.5) for t in late)
    assert len(late) >= 3
    assert phases[len(phases) // 2] < 0.25  # on the grid start + n * period
    frequency, _ = measure(sim.history(18)[-2 * len(late) :])
    assert 40 <= frequency <= 60


# -- detect() and open_backend() -----------------------------------------------------


def _gpio_hardware() -> bool:
    if glob.glob("/dev/gpiochip*"):
        return True
    try:
        with open("/proc/device-tree/model", "rb") as model:
            return b"Raspberry Pi" in model.read()
    except OSError:
        return False


needs_no_gpio = pytest.mark.skipif(_gpio_hardware(), reason="this machine has GPIO hardware")


@needs_no_gpio
def test_detect_gives_sim_without_gpio_hardware(standins):
    assert gpio.detect() == "sim"  # even with both libraries importable


@needs_no_gpio
def test_auto_falls_back_to_the_sim_and_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="gpio"):
        backend = gpio.open_backend()
    assert isinstance(backend, SimBackend)
    (record,) = [r for r in caplog.records if r.name == "gpio"]
    assert record.levelno == logging.WARNING
    assert "simulated board" in record.getMessage()


PI5 = b"raspberrypi,5-model-b\0brcm,bcm2712\0"
PI4 = b"raspberrypi,4-model-b\0brcm,bcm2711\0"


def machine(tmp_path, compatible: bytes = b"", model: bytes = b"", chip: bool = False) -> str:
    """A root directory with a device tree (/proc/device-tree) and /dev/gpiochip0."""
    tree = tmp_path / "proc" / "device-tree"
    tree.mkdir(parents=True)
    if compatible:
        (tree / "compatible").write_bytes(compatible)
    if model:
        (tree / "model").write_bytes(model)
    (tmp_path / "dev").mkdir()
    if chip:
        (tmp_path / "dev" / "gpiochip0").write_bytes(b"")
    return str(tmp_path)


@pytest.mark.parametrize(
    ("compatible", "model", "kind"),
    [
        (PI5, b"Raspberry Pi 5 Model B Rev 1.0\0", "pi5"),
        (b"", b"Raspberry Pi 5 Model B Rev 1.0\0", "pi5"),  # no compatible: the model
        (PI4, b"Raspberry Pi 4 Model B Rev 1.5\0", "pi"),
        (b"raspberrypi,model-zero-w\0brcm,bcm2835\0", b"", "pi"),
        (b"", b"Raspberry Pi Model B Rev 2\0", "pi"),
        (b"hardkernel,odroid-c4\0amlogic,g12a\0", b"Hardkernel ODROID-C4\0", None),
        (b"", b"", None),
    ],
)
def test_the_board_is_read_from_the_device_tree(tmp_path, compatible, model, kind):
    assert gpio.board(machine(tmp_path, compatible, model)) == kind


def test_a_pi_5_skips_rpi_gpio_and_says_what_to_install(tmp_path, standins, caplog):
    root = machine(tmp_path, PI5)
    with caplog.at_level(logging.WARNING, logger="gpio"):
        assert gpio.detect(root) == "sim"  # RPi.GPIO importable, but it cannot drive a Pi 5
    assert "install rpi-lgpio" in caplog.text and "gpiod" in caplog.text
    assert gpio.detect(machine(tmp_path / "4", PI4)) == "rpi"  # a Pi 4 keeps it


def test_a_pi_5_takes_rpi_lgpio(tmp_path, rpi_lgpio):
    assert gpio.detect(machine(tmp_path, PI5)) == "rpi"


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_a_chip_device_with_either_libgpiod_api_takes_gpiod(tmp_path, standins, request, api):
    if api == "v1":
        request.getfixturevalue("gpiod_v1")
    assert gpio.detect(machine(tmp_path, PI4, chip=True)) == "gpiod"
    assert gpio.detect(machine(tmp_path / "x", chip=True)) == "gpiod"  # any Linux board


def test_a_gpiod_module_of_neither_api_is_passed_over(tmp_path, standins, monkeypatch):
    monkeypatch.setitem(sys.modules, "gpiod", SimpleNamespace(__name__="gpiod"))
    assert gpio.detect(machine(tmp_path, PI4, chip=True)) == "rpi"


def test_sim_by_name_does_not_warn(caplog):
    with caplog.at_level(logging.WARNING, logger="gpio"):
        backend = gpio.open_backend("sim")
    assert isinstance(backend, SimBackend)
    assert not [r for r in caplog.records if r.name == "gpio"]


def test_open_backend_by_name_uses_the_library(standins):
    backend = gpio.open_backend("rpi")
    assert isinstance(backend, RpiBackend) and backend.name == "rpi"
    assert standins.GPIO.getmode() == standins.GPIO.BCM
    backend.close()


@needs_no_gpio
def test_open_backend_gpiod_without_a_chip_device_is_a_gpio_error(standins):
    with pytest.raises(GpioError, match="no /dev/gpiochip"):
        gpio.open_backend("gpiod")


def test_unknown_backend_is_a_gpio_error_listing_the_choices():
    with pytest.raises(GpioError, match=r"unknown GPIO backend 'pigpio'.*auto, sim, rpi, gpiod"):
        gpio.open_backend("pigpio")


# -- the systemd unit ------------------------------------------------------------------


def test_the_unit_allows_gpiomem_under_both_of_its_names():
    """RPi.GPIO opens /dev/gpiomem, whose driver /proc/devices lists as bcm2835-gpiomem
    before the Raspberry Pi kernel 6.1.54 and as gpiomem since: a unit that allows only
    one gives "No access to /dev/mem" on the other kernels."""
    unit = (ROOT / "examples" / "httap.service").read_text()
    allowed = {
        line.split("=", 1)[1].strip()
        for line in unit.splitlines()
        if line.startswith("DeviceAllow=")
    }
    assert {"char-bcm2835-gpiomem rw", "char-gpiomem rw", "char-gpiochip rw"} <= allowed
    assert "DevicePolicy=closed" in unit.splitlines()
