"""Hardware PWM through sysfs (gpio/pwm.py) on a tree laid out as the kernel lays it out."""

from __future__ import annotations

import itertools
import logging
import os

import pytest

from gpio import GpioError
from gpio.pwm import HardwarePwm, find_chip, hardware_channels, order
from gpio.sim import SimBackend
from httap.http import HTTPError
from httap.pins import Pins
from tests.helpers.domain import settings
from tests.helpers.sysfs import PI4, PI5, Kernel, PwmSysfs


@pytest.fixture
def pi5(tmp_path) -> PwmSysfs:
    return PwmSysfs(tmp_path, PI5)


@pytest.fixture
def pi4(tmp_path) -> PwmSysfs:
    return PwmSysfs(tmp_path, PI4)


def test_the_chip_is_found_by_its_device_not_its_number(pi5):
    chip = find_chip(str(pi5.pwm_root))
    assert chip.path.endswith("pwmchip2")  # pwmchip0 is the fan's
    assert (chip.device, chip.npwm) == ("1f00098000.pwm", 4)
    assert dict(chip.channels) == {12: 0, 13: 1, 18: 2, 19: 3}


def test_a_pi_4s_chip_has_two_channels_on_four_gpios(pi4):
    chip = find_chip(str(pi4.pwm_root))
    assert chip.device == "fe20c000.pwm"
    assert dict(chip.channels) == {12: 0, 13: 1, 18: 0, 19: 1}


def test_no_chip_without_the_folder_or_a_pi_chip(tmp_path):
    assert find_chip(str(tmp_path / "missing")) is None
    other = PwmSysfs(tmp_path, [("platform/48300200.pwm", "pwmchip0", 2)])
    assert find_chip(str(other.pwm_root)) is None


def test_the_duty_cycle_never_exceeds_the_period_between_writes():
    """Every move between settings, applied in `order`, keeps duty <= period at each
    write, as the kernel demands; unchanged values are not written."""
    settings_ns = [(0, 0), (1000, 0), (1000, 500), (1000, 1000), (400, 100), (20_000, 15_000)]
    for (period, duty), (new_period, new_duty) in itertools.permutations(settings_ns, 2):
        state = {"period": period, "duty_cycle": duty}
        for name, value in order(period, duty, new_period, new_duty):
            state[name] = value
            assert state["duty_cycle"] <= state["period"], (period, duty, new_period, new_duty)
        assert state == {"period": new_period, "duty_cycle": new_duty}
    assert order(20_000, 1_000, 20_000, 1_500) == [("duty_cycle", 1_500)]  # one write
    assert order(20_000, 15_000, 10_000, 5_000) == [("duty_cycle", 5_000), ("period", 10_000)]


def test_export_waits_for_the_kernel_then_drives_the_channel(pi5):
    chip = find_chip(str(pi5.pwm_root))
    with Kernel(pi5) as kernel:
        channel = HardwarePwm(chip, 2)
    assert kernel.exports == [("pwmchip2", 2)]
    channel.start(50, 0.075)
    values = pi5.values("pwmchip2", 2)
    assert values == {
        "period": "20000000",
        "duty_cycle": "1500000",
        "enable": "1",
        "polarity": "normal",
    }
    assert (channel.running, channel.level, channel.kind) == (True, 0, "hardware")
    channel.start(50, 1.0)
    assert pi5.value("pwmchip2", 2, "duty_cycle") == "20000000"
    assert (channel.running, channel.level) == (False, 1)
    channel.start(1000, 0.25)  # the period shrinks below the duty cycle: duty first
    assert pi5.values("pwmchip2", 2)["period"] == "1000000"
    assert pi5.value("pwmchip2", 2, "duty_cycle") == "250000"
    channel.close()


def test_a_channel_exported_before_is_taken_as_it_is(pi5):
    pi5.export("pwmchip2", 0, period="1000000", duty_cycle="500000", enable="1")
    channel = HardwarePwm(find_chip(str(pi5.pwm_root)), 0)
    assert (pi5.chips["pwmchip2"] / "export").read_text() == ""  # not exported twice
    channel.start(100, 0.5)
    assert pi5.values("pwmchip2", 0)["period"] == "10000000"
    assert pi5.value("pwmchip2", 0, "duty_cycle") == "5000000"
    channel.close()


def test_an_inversed_channel_is_made_normal_while_disabled(pi5):
    pi5.export("pwmchip2", 1, period="1000", duty_cycle="100", enable="1", polarity="inversed")
    channel = HardwarePwm(find_chip(str(pi5.pwm_root)), 1)
    assert pi5.value("pwmchip2", 1, "polarity") == "normal"
    assert pi5.value("pwmchip2", 1, "enable") == "0"
    channel.start(100, 0.5)
    assert pi5.value("pwmchip2", 1, "enable") == "1"
    channel.close()


def test_an_export_that_never_appears_is_a_clear_error(pi5):
    with pytest.raises(GpioError, match=r"pwmchip2/pwm3: its files were not there"):
        HardwarePwm(find_chip(str(pi5.pwm_root)), 3, wait=0.05)
    assert (pi5.chips["pwmchip2"] / "export").read_text() == "3\n"


def test_a_channel_the_chip_does_not_have_is_refused(pi4):
    with pytest.raises(GpioError, match="has 2 channels, not channel 2"):
        HardwarePwm(find_chip(str(pi4.pwm_root)), 2)


def test_a_write_that_fails_is_a_gpio_error_and_changes_nothing(pi5):
    folder = pi5.export("pwmchip2", 0)
    channel = HardwarePwm(find_chip(str(pi5.pwm_root)), 0)
    channel.start(100, 0.5)
    os.close(channel.fds["period"])  # a write to it fails, as the kernel's refusal would
    channel.fds["period"] = os.open(folder / "period", os.O_RDONLY)
    with pytest.raises(GpioError, match=r"pwm0/period: cannot write 20000000: Bad file"):
        channel.start(50, 0.5)
    assert (channel.frequency, channel.values["period"]) == (100, 10_000_000)
    channel.close()


def test_auto_says_which_it_chose_and_why(pi4, caplog):
    pi4.export("pwmchip0", 0)
    caplog.set_level(logging.INFO, "gpio.pwm")
    wanted = {"a": (18, "auto", 100.0), "b": (12, "auto", 100.0), "c": (5, "auto", 100.0)}
    channels = hardware_channels(wanted, str(pi4.pwm_root))
    assert list(channels) == [18]
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "pin a (GPIO 18): hardware PWM, pwmchip0 channel 0 (fe20c000.pwm)",
        "pin b (GPIO 12): soft PWM: its channel 0 is pin a's already",
        "pin c (GPIO 5): soft PWM: GPIO 5 has no hardware PWM channel (GPIO 12, 13, 18, 19 do)",
    ]
    channels[18].close()


def test_auto_without_the_overlay_is_soft_and_hardware_is_refused(tmp_path, caplog):
    caplog.set_level(logging.INFO, "gpio.pwm")
    root = str(tmp_path / "no-pwm")
    assert hardware_channels({"servo": (18, "auto", 50.0)}, root) == {}
    assert "soft PWM: no PWM chip of a Raspberry Pi under" in caplog.text
    assert "dtoverlay=pwm-2chan" in caplog.text
    with pytest.raises(GpioError, match=r"pin servo \(GPIO 18\): no hardware PWM: no PWM chip"):
        hardware_channels({"servo": (18, "hardware", 50.0)}, root)


def servo_pins(manual_loop, sysfs: PwmSysfs) -> Pins:
    conf = settings(
        gpio__pins={
            "servo": {"gpio": 18, "mode": "pwm", "frequency": 50, "pwm": "hardware"},
            "led": {"gpio": 17, "mode": "out"},
        }
    )
    return Pins(
        conf.gpio.pins, SimBackend(clock=manual_loop.clock), manual_loop, str(sysfs.pwm_root)
    )


def test_a_hardware_pin_in_the_pin_domain(manual_loop, pi5):
    """Levels and waves of a hardware pin are the channel's: the sim board never sets
    that GPIO up (a GPIO library would take it from the PWM function); timers: none."""
    pi5.export("pwmchip2", 2)
    pins = servo_pins(manual_loop, pi5)
    servo = pins.find("servo")
    assert 18 not in pins.backend.pins  # the simulated board's own pins
    assert pins.state(servo)["pwm"] == {
        "frequency": 50,
        "duty": 0,
        "running": False,
        "kind": "hardware",
    }
    pins.set_pwm(servo, {"width": 0.0015}, None)
    assert pi5.value("pwmchip2", 2, "duty_cycle") == "1500000"
    assert pins.state(servo)["pwm"]["duty"] == pytest.approx(0.075)
    assert manual_loop.pending == 0
    pins.set(servo, 1, None)
    assert pi5.value("pwmchip2", 2, "duty_cycle") == "20000000"
    assert pins.state(servo)["value"] == 1
    pins.set(pins.find("led"), 1, None)  # the others are the board's
    assert pins.backend.history(17)[-1][1] == 1
    pins.close()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"width": 0.03}, "pwm width is at most the period, 1 / frequency: 0.02 s at 50 Hz"),
        ({"width": -1}, "pwm width is a pulse width in seconds from 0 to 100"),
        ({"width": "1"}, "pwm width is a pulse width in seconds from 0 to 100"),
        ({"width": 0.001, "duty": 0.5}, 'or {"frequency": HZ, "width": SECONDS}'),
    ],
)
def test_a_bad_width_is_400(manual_loop, pi5, setting, message):
    pi5.export("pwmchip2", 2)
    pins = servo_pins(manual_loop, pi5)
    with pytest.raises(HTTPError) as refused:
        pins.set_pwm(pins.find("servo"), setting, None)
    assert refused.value.status == 400 and message in str(refused.value)
    assert pi5.value("pwmchip2", 2, "duty_cycle") == "0"
    pins.close()


def test_width_works_on_soft_pwm_too(pins, manual_loop):
    buzzer = pins.find("buzzer")
    pins.set_pwm(buzzer, {"frequency": 50, "width": 0.005}, None)
    assert pins.state(buzzer)["pwm"] == {
        "frequency": 50,
        "duty": 0.25,
        "running": True,
        "kind": "soft",
    }
    manual_loop.advance(0.01)
    rise, fall = pins.backend.history(18)[-2:]
    assert (rise[1], fall[1]) == (1, 0)
    assert fall[0] - rise[0] == pytest.approx(0.005)
