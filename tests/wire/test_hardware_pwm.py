"""Hardware PWM over HTTP: `GET`/`POST /?gpio/NAME` on a pin driven through sysfs.

A real server over real sockets, its PWM chips in a tree laid out as Linux lays out
/sys (tests/helpers/sysfs.py), with the kernel's side (the asynchronous export) played
by a thread; the other pins on the simulated board.
"""

from __future__ import annotations

import json

import pytest

from gpio import GpioError
from gpio.pwm import hardware_channels
from tests.helpers.dynamic import call, check_error
from tests.helpers.processes import fetch, httap, one_line_error, stop
from tests.helpers.sysfs import PI4, PI5, Kernel, PwmSysfs

PINS = {
    "servo": {"gpio": 18, "mode": "pwm", "frequency": 50},  # pwm: "auto"
    "fan": {"gpio": 12, "mode": "pwm", "pwm": "soft"},
    "led": {"gpio": 17, "mode": "out"},
}


@pytest.fixture
def pi5(tmp_path) -> PwmSysfs:
    return PwmSysfs(tmp_path / "sys", PI5)


@pytest.fixture
def start(make_server, pi5):
    def start_server(pins=PINS):
        with Kernel(pi5):  # the export happens at start-up
            return make_server(
                gpio__backend="sim", gpio__pins=pins, gpio__sysfs_pwm=str(pi5.pwm_root)
            )

    return start_server


def test_get_says_which_pwm_drives_each_pin(start, connect):
    client = connect(start())
    servo = call(client, "GET", "/?gpio/servo").json()
    assert servo == {
        "gpio": 18,
        "mode": "pwm",
        "value": 0,
        "pwm": {"frequency": 50, "duty": 0, "running": False, "kind": "hardware"},
    }
    assert call(client, "GET", "/?gpio/fan").json()["pwm"]["kind"] == "soft"
    pins = call(client, "GET", "/?gpio").json()["pins"]
    assert pins["servo"]["pwm"]["kind"] == "hardware"


def test_a_servo_width_is_one_sysfs_write(start, connect, pi5):
    client = connect(start())
    assert pi5.values("pwmchip2", 2) == {
        "period": "20000000",
        "duty_cycle": "0",
        "enable": "1",
        "polarity": "normal",
    }
    reply = call(client, "POST", "/?gpio/servo", '{"pwm": {"frequency": 50, "width": 0.0015}}')
    assert reply.status == 200, reply.body
    assert reply.json()["pwm"] == {
        "frequency": 50,
        "duty": pytest.approx(0.075),
        "running": True,
        "kind": "hardware",
    }
    assert pi5.value("pwmchip2", 2, "duty_cycle") == "1500000"
    reply = call(client, "PUT", "/?gpio/servo", '{"pwm": {"duty": 0.5}}')
    assert reply.status == 200 and pi5.value("pwmchip2", 2, "duty_cycle") == "10000000"
    reply = call(client, "POST", "/?gpio/servo", "1")  # a level: the duty cycle is the period
    assert reply.json()["value"] == 1 and not reply.json()["pwm"]["running"]
    assert pi5.value("pwmchip2", 2, "duty_cycle") == "20000000"
    reply = call(client, "POST", "/?gpio/servo", '{"pwm": {"frequency": 1000, "duty": 0.25}}')
    assert reply.status == 200, reply.body
    assert pi5.values("pwmchip2", 2)["period"] == "1000000"
    assert pi5.value("pwmchip2", 2, "duty_cycle") == "250000"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            {"pwm": {"frequency": 50, "width": 0.025}},
            ["pwm width is at most the period, 1 / frequency: 0.02 s at 50 Hz, not 0.025 s"],
        ),
        ({"pwm": {"width": -0.001}}, ["pwm width is a pulse width in seconds from 0 to 100"]),
        ({"pwm": {"width": True}}, ["pwm width is a pulse width in seconds from 0 to 100"]),
        (
            {"pwm": {"width": 0.001, "duty": 0.1}},
            ['{"frequency": HZ, "duty": 0..1} or {"frequency": HZ, "width": SECONDS}'],
        ),
    ],
)
def test_a_bad_width_is_400_and_the_server_serves_on(start, connect, pi5, body, words):
    running = start()
    reply = call(connect(running), "POST", "/?gpio/servo", json.dumps(body))
    check_error(reply, 400, "bad-value", *words)
    assert pi5.value("pwmchip2", 2, "duty_cycle") == "0"  # nothing written
    other = call(connect(running), "GET", "/?gpio/servo")
    assert other.status == 200 and other.json()["pwm"]["duty"] == 0


def test_two_pins_on_one_channel_of_a_pi_4(make_server, connect, tmp_path):
    """GPIO 12 and 18 are both channel 0 on a Pi 1 to 4: the first gets it, the second
    (auto) is soft PWM."""
    pi4 = PwmSysfs(tmp_path / "sys", PI4)
    pins = {"a": {"gpio": 18, "mode": "pwm"}, "b": {"gpio": 12, "mode": "pwm"}}
    with Kernel(pi4) as kernel:
        running = make_server(
            gpio__backend="sim", gpio__pins=pins, gpio__sysfs_pwm=str(pi4.pwm_root)
        )
    assert kernel.exports == [("pwmchip0", 0)]
    client = connect(running)
    assert call(client, "GET", "/?gpio/a").json()["pwm"]["kind"] == "hardware"
    assert call(client, "GET", "/?gpio/b").json()["pwm"]["kind"] == "soft"


def write_config(tmp_path, pins, **gpio) -> str:
    path = tmp_path / "web.json5"
    settings = {"listen": ["http://127.0.0.1:0"], "gpio": {"backend": "sim", "pins": pins, **gpio}}
    path.write_text(json.dumps(settings))
    return str(path)


def test_hardware_without_a_chip_on_the_sim_board_is_soft_pwm_and_says_so(spawn, tmp_path):
    """A laptop tries a servo's config on the sim board: simulated by soft PWM, with a
    start-up line saying so; `httap check` says it too (a warning, status 0)."""
    pins = {"servo": {"gpio": 18, "mode": "pwm", "pwm": "hardware"}}
    config = write_config(tmp_path, pins, sysfs_pwm=str(tmp_path / "nothing"))
    checked = httap("check", "--config", config)
    assert checked.returncode == 0
    (line,) = checked.stderr.splitlines()
    assert line.startswith("httap check: warning: gpio.pins servo: hardware PWM simulated")
    assert "no PWM chip of a Raspberry Pi under" in line
    process = spawn("serve", "--config", config)
    reply = fetch(process, "/?gpio/servo")
    assert reply.status == 200 and json.loads(reply.body)["pwm"]["kind"] == "soft"
    log = stop(process)
    assert "pin servo (GPIO 18): hardware PWM simulated by soft PWM on the sim board" in log
    assert "dtoverlay=pwm-2chan" in log


def test_hardware_without_a_chip_on_a_real_board_is_refused(tmp_path):
    """Off the sim board it stays a refusal (`serve`: "cannot set up the GPIO pins";
    `check`: an error, status 1, since serve would refuse)."""
    root = str(tmp_path / "nothing")
    with pytest.raises(GpioError, match=r"pin servo \(GPIO 18\): no hardware PWM: no PWM chip"):
        hardware_channels({"servo": (18, "hardware", 50.0)}, root, board="gpiod")
    pins = {"servo": {"gpio": 18, "mode": "pwm", "pwm": "hardware"}}
    config = write_config(tmp_path, pins, sysfs_pwm=root, backend="rpi")
    checked = httap("check", "--config", config)
    assert checked.returncode == 1
    assert 'error: gpio.pins servo: pwm "hardware" on the rpi board: no PWM chip' in checked.stderr


def test_hardware_on_a_gpio_without_a_channel_is_a_config_error(tmp_path):
    config = write_config(tmp_path, {"motor": {"gpio": 5, "mode": "pwm", "pwm": "hardware"}})
    one_line_error(
        httap("check", "--config", config),
        'gpio.pins.motor.pwm: found "hardware" for GPIO 5',
        "GPIO 12, 13, 18 and 19 only",
    )
