"""PWM: bit-banged on the poll loop's timers (SoftPwm), or the SoC's own PWM through
the kernel's sysfs interface (HardwarePwm). Neither uses a thread.

Soft PWM: edges are scheduled on absolute times (start + n * period), so the frequency
does not drift when one edge runs late; a late edge shows as jitter, never as a slower
wave.

Hardware PWM (Linux, Documentation/ABI/testing/sysfs-class-pwm and
Documentation/driver-api/pwm.rst): a chip is /sys/class/pwm/pwmchipN, with `npwm` (its
channels) and `export`; writing a channel's number to `export` makes pwmN/ with
`period` and `duty_cycle` (nanoseconds), `enable` (0 or 1) and `polarity` ("normal" or
"inversed", set while disabled). The folder appears a moment after the write (the
export is asynchronous, and udev then hands its files to the group gpio). The kernel
refuses a duty cycle longer than the period at every write. The chip is found by its
device (the link pwmchipN/device), not its number, which moves between kernels.
Export and set-up happen once, at start-up; a change is then one or two pwrite()s on
files kept open, a few microseconds each, and the hardware takes it at the end of the
running period: no glitch, no jitter.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple, Optional

from gpio.base import Backend, GpioError, Pin

log = logging.getLogger("gpio.pwm")

Scheduler = Callable[[float, Callable[[], Any]], Any]  # call_at(when, fn) -> handle


class SoftPwm:
    """Drives one output as a square wave of `frequency` Hz and `duty` (0 to 1)."""

    kind = "soft"

    def __init__(
        self, backend: Backend, gpio: int, call_at: Scheduler, clock: Callable[[], float]
    ) -> None:
        self.backend = backend
        self.gpio = gpio
        self.call_at = call_at
        self.clock = clock
        self.frequency = 0.0
        self.duty = 0.0
        self._handle: Optional[Any] = None
        self._start = 0.0
        self._cycle = 0

    def start(self, frequency: float, duty: float) -> None:
        self.stop()
        self.frequency, self.duty = frequency, duty
        if duty <= 0.0 or duty >= 1.0:
            self.backend.write(self.gpio, 1 if duty >= 1.0 else 0)
            return
        self._start = self.clock()
        self._cycle = 0
        self._rise()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    @property
    def running(self) -> bool:
        return self._handle is not None

    def _rise(self) -> None:
        self._handle = None  # if the board fails below, the wave has stopped: say so
        period = 1.0 / self.frequency
        cycle_start = self._start + self._cycle * period
        self.backend.write(self.gpio, 1)
        self._handle = self.call_at(cycle_start + self.duty * period, self._fall)

    def _fall(self) -> None:
        self._handle = None
        self.backend.write(self.gpio, 0)
        self._cycle += 1
        period = 1.0 / self.frequency
        next_start = self._start + self._cycle * period
        behind = self.clock() - next_start
        if behind >= self.duty * period:  # whole pulses are past: skip them, keep the phase
            self._cycle += int((behind - self.duty * period) / period) + 1
            next_start = self._start + self._cycle * period
        # else the next rise is due now or later; late, it comes at once (a shorter pulse)
        self._handle = self.call_at(next_start, self._rise)


# The hardware PWM of a Raspberry Pi, by the chip's device (the last part of the link
# /sys/class/pwm/pwmchipN/device): {BCM GPIO: channel}.
# - Pi 1 to 4: the BCM283x's PWM block at bus address 7e20c000, a device named 2020c000.pwm
#   (Pi 1), 3f20c000.pwm (Pi 2, 3) or fe20c000.pwm (Pi 4), there with `dtoverlay=pwm`
#   or `pwm-2chan`. Channel 0 is on GPIO 12 (func 4, Alt0) or 18 (func 2, Alt5), channel
#   1 on GPIO 13 (Alt0) or 19 (Alt5); the overlay's pin and func parameters say which
#   (Raspberry Pi overlays README, "pwm", "pwm-2chan"; shared with the analogue audio).
# - Pi 5: RP1's PWM0, 1f00098000.pwm, four channels: GPIO 12, 13 (a0), 18, 19 (a3) on
#   channels 0 to 3 (RP1 peripherals datasheet, GPIO functions). RP1's PWM1
#   (1f0009c000.pwm) drives the fan: never ours.
BCM2835_CHANNELS = {12: 0, 13: 1, 18: 0, 19: 1}
RP1_CHANNELS = {12: 0, 13: 1, 18: 2, 19: 3}
RP1_DEVICE = "1f00098000.pwm"
HARDWARE_GPIOS = (12, 13, 18, 19)
SYSFS_PWM = "/sys/class/pwm"
EXPORT_WAIT = 2.0  # seconds start-up waits for an exported channel's files, at most


def channels_of(device: str) -> Optional[Mapping[int, int]]:
    """The {GPIO: channel} map of a PWM chip's device name, None for another chip."""
    if device == RP1_DEVICE:
        return RP1_CHANNELS
    if device.endswith("20c000.pwm"):  # 2020c000, 3f20c000, 7e20c000, fe20c000
        return BCM2835_CHANNELS
    return None


class Chip(NamedTuple):
    """A PWM chip under the sysfs root: its folder, device name, channel count and map."""

    path: str
    device: str
    npwm: int
    channels: Mapping[int, int]


def find_chip(root: str = SYSFS_PWM) -> Optional[Chip]:
    """The Raspberry Pi's GPIO PWM chip under `root` (a /sys/class/pwm), found by the
    link pwmchipN/device; None where there is none (no overlay, not a Pi)."""
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return None
    for name in names:
        path = os.path.join(root, name)
        if not name.startswith("pwmchip"):
            continue
        try:
            device = os.path.basename(os.readlink(os.path.join(path, "device")))
        except OSError:
            continue
        channels = channels_of(device)
        if channels is not None:
            return Chip(path, device, int(_attribute(os.path.join(path, "npwm"))), channels)
    return None


def _attribute(path: str) -> str:
    """A sysfs attribute's value: its first line (the kernel ends it with a newline)."""
    try:
        with open(path, encoding="ascii") as file:
            return file.readline().strip()
    except (OSError, ValueError) as err:
        raise GpioError(f"cannot read {path}: {getattr(err, 'strerror', None) or err}") from None


def order(period: int, duty: int, new_period: int, new_duty: int) -> list[tuple[str, int]]:
    """The writes that take a channel from (period, duty) to (new_period, new_duty), in
    nanoseconds, such that the duty cycle never exceeds the period in between (the
    kernel refuses every write that would: pwm_apply_state): the period first, unless it
    shrinks below the duty cycle now. A value that does not change is not written."""
    writes = []
    if new_period != period:
        writes.append(("period", new_period))
    if new_duty != duty:
        writes.append(("duty_cycle", new_duty))
    if new_period < duty:
        writes.reverse()
    return writes


class HardwarePwm:
    """One channel of `chip`, exported and set up when made (GpioError if the kernel
    refuses, or its files do not appear within `wait` seconds); then SoftPwm's interface:
    `start(frequency, duty)` (Hz, 0 to 1), `stop()`, `running`, and `level`."""

    kind = "hardware"
    FILES = ("period", "duty_cycle", "enable")

    def __init__(self, chip: Chip, channel: int, wait: float = EXPORT_WAIT) -> None:
        self.chip = chip
        self.channel = channel
        self.path = os.path.join(chip.path, f"pwm{channel}")
        if channel >= chip.npwm:
            raise GpioError(f"{chip.path} has {chip.npwm} channels, not channel {channel}")
        if not os.path.isdir(self.path):  # exported already by an earlier run: kept
            self._export(wait)
        self.frequency = 0.0
        self.duty = 0.0
        self.values = {name: int(_attribute(self._file(name))) for name in self.FILES}
        self.fds: dict[str, int] = {}
        try:
            for name in self.FILES:
                self.fds[name] = os.open(self._file(name), os.O_WRONLY | os.O_CLOEXEC)
            if _attribute(self._file("polarity")) != "normal":
                self._write("enable", 0)  # the polarity is set while disabled only
                with open(self._file("polarity"), "w", encoding="ascii") as polarity:
                    polarity.write("normal\n")
        except OSError as err:
            self.close()
            raise GpioError(f"cannot set up {self.path}: {err.strerror}") from None
        except GpioError:
            self.close()
            raise

    def _file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def _export(self, wait: float) -> None:
        """Ask the kernel for the channel, then wait (start-up only, `wait` s at most)
        until its files are there and writable: the kernel makes them a moment later,
        and udev gives them to the group gpio after that."""
        try:
            fd = os.open(os.path.join(self.chip.path, "export"), os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"%d\n" % self.channel)
            finally:
                os.close(fd)
        except OSError as err:
            raise GpioError(f"cannot export {self.path}: {err.strerror}") from None
        deadline = time.monotonic() + wait
        files = [self._file(name) for name in (*self.FILES, "polarity")]
        while not all(os.access(path, os.W_OK) for path in files):
            if time.monotonic() > deadline:
                raise GpioError(
                    f"{self.path}: its files were not there and writable {wait:g} s after"
                    " the export (is this user in the group gpio?)"
                )
            time.sleep(0.005)

    def _write(self, name: str, value: int) -> None:
        try:
            os.pwrite(self.fds[name], b"%d\n" % value, 0)
        except OSError as err:
            raise GpioError(f"{self._file(name)}: cannot write {value}: {err.strerror}") from None
        self.values[name] = value

    def start(self, frequency: float, duty: float) -> None:
        """Run at `frequency` Hz with `duty` (0 to 1): a duty of 0 or 1 is a steady level.
        The period is rounded to whole nanoseconds, the duty cycle too. GpioError when
        the kernel refuses (a period the chip cannot make)."""
        period = round(1e9 / frequency)
        values = self.values
        for name, value in order(
            values["period"], values["duty_cycle"], period, round(duty * period)
        ):
            self._write(name, value)
        if not values["enable"]:
            self._write("enable", 1)
        self.frequency, self.duty = frequency, duty

    def stop(self) -> None:
        """Nothing to stop: no timer runs. The hardware keeps its wave until the next
        `start` or level replaces it in one write, at the end of a period (a stop then a
        start would give a glitch of one period, a servo's twitch)."""

    @property
    def running(self) -> bool:
        """True while it makes a wave (a duty strictly between 0 and 1)."""
        return bool(self.values["enable"]) and 0.0 < self.duty < 1.0

    @property
    def level(self) -> int:
        """The level as a read gives it: 1 for a steady high (duty 1), else 0."""
        return 1 if self.values["enable"] and self.duty >= 1.0 else 0

    def close(self) -> None:
        """Close the files; the channel stays exported and keeps its last setting."""
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


class HardwareBoard:
    """`board` with its hardware PWM pins (`channels`, {GPIO: HardwarePwm}) taken out:
    the GPIO library must not touch those, as claiming a line would take it from the
    PWM function. Their level is the channel's (a write is a duty of 0 or 1), the rest
    is `board`'s, every other method included."""

    def __init__(self, board: Backend, channels: Mapping[int, HardwarePwm]) -> None:
        self.board = board
        self.channels = channels
        self.name = board.name
        self.simulated = board.simulated

    def __getattr__(self, name: str) -> Any:
        return getattr(self.board, name)

    def setup(self, pin: Pin) -> None:
        if pin.gpio not in self.channels:
            self.board.setup(pin)

    def read(self, gpio: int) -> int:
        channel = self.channels.get(gpio)
        return self.board.read(gpio) if channel is None else channel.level

    def write(self, gpio: int, value: int) -> None:
        channel = self.channels.get(gpio)
        if channel is None:
            self.board.write(gpio, value)
        else:
            channel.start(channel.frequency, 1.0 if value else 0.0)

    def stamp(self, gpio: int) -> Optional[float]:
        return None if gpio in self.channels else self.board.stamp(gpio)

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()
        self.board.close()


def no_chip(root: str) -> str:
    """Why there is no hardware PWM where find_chip(root) is None."""
    return (
        f"no PWM chip of a Raspberry Pi under {root} (add dtoverlay=pwm-2chan to"
        " config.txt; on a Pi 1 to 4 with pin=12,func=4 or pin2=13,func2=4 for"
        " GPIO 12 and 13)"
    )


SIMULATED = "hardware PWM simulated by soft PWM on the sim board"


def hardware_channels(
    wanted: Mapping[str, tuple[int, str, float]], root: str = SYSFS_PWM, board: str = ""
) -> dict[int, HardwarePwm]:
    """The hardware channels for the PWM pins `wanted` ({name: (GPIO, "hardware" or
    "auto", frequency in Hz)}), exported and running at that frequency with duty 0.
    "auto" falls back to soft PWM where the pin has no channel, the chip is not under
    `root` or refuses; one INFO line per pin says which it got, and why. On the sim
    `board` without a chip under `root`, "hardware" does too, with a WARNING line (a
    laptop tries a servo's config; a fake tree under `root` is still driven). GpioError
    for a "hardware" pin that cannot have one (a GPIO without a channel, no chip, two
    pins on one channel, the kernel's refusal)."""
    chip = find_chip(root)
    channels: dict[int, HardwarePwm] = {}
    users: dict[int, str] = {}
    for name, (gpio, choice, frequency) in wanted.items():
        try:
            if gpio not in HARDWARE_GPIOS:
                raise GpioError(f"GPIO {gpio} has no hardware PWM channel (GPIO 12, 13, 18, 19 do)")
            if chip is None and board == "sim" and choice == "hardware":
                log.warning("pin %s (GPIO %d): %s: %s", name, gpio, SIMULATED, no_chip(root))
                continue
            if chip is None:
                raise GpioError(no_chip(root))
            number = chip.channels[gpio]
            if number in users:
                raise GpioError(f"its channel {number} is pin {users[number]}'s already")
            channel = HardwarePwm(chip, number)
            try:
                channel.start(frequency, 0.0)
            except GpioError:
                channel.close()
                raise
        except GpioError as err:
            if choice == "hardware":
                for each in channels.values():
                    each.close()
                raise GpioError(f"pin {name} (GPIO {gpio}): no hardware PWM: {err}") from None
            log.info("pin %s (GPIO %d): soft PWM: %s", name, gpio, err)
            continue
        users[number] = name
        channels[gpio] = channel
        where = os.path.basename(chip.path)
        log.info(
            "pin %s (GPIO %d): hardware PWM, %s channel %d (%s)",
            name,
            gpio,
            where,
            number,
            chip.device,
        )
    return channels
