"""Safe values, made understood: every write to a pin with a `safe` value says in its
reply how long the value holds; a one-shot client's write is undone when it closes, a
kept-alive session keeps it; and the README's curl lines do what the README says
(run with curl itself, when it is installed).

Over real sockets to a real server on the simulated board, as tests/wire/test_manager.py.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.helpers import ROOT, wait_for
from tests.helpers.client import Client
from tests.helpers.dynamic import call, check_dynamic, encode
from tests.helpers.processes import curl, needs_curl
from tests.helpers.readme import README, readme_command, readme_pins
from tests.helpers.servers import read_pin, values

LED, VALVE, MOTOR = 17, 22, 18
PINS = {
    "led": {"gpio": LED, "mode": "out"},  # no safe value: a write holds
    "valve": {"gpio": VALVE, "mode": "out", "safe": 0},
    "motor": {"gpio": MOTOR, "mode": "pwm", "safe": 0},
}
HOLDS = {
    "client": "until this client's last connection closes",
    "connection": "until this connection closes",
    "off": "until the server stops",
}


@pytest.fixture
def start(make_server):
    def start_gpio(**overrides):
        return make_server(**{"gpio__backend": "sim", "gpio__pins": PINS, **overrides})

    return start_gpio


def one_shot(running, method: str, target: str, body="", source: str = "127.0.0.1"):
    """What curl does: a connection for one request, closed once the reply is in."""
    client = Client(running.connect(source=source))
    try:
        return call(client, method, target, body)
    finally:
        client.close()


# -- the reply says how long a value holds ---------------------------------------------


@pytest.mark.parametrize(
    ("method", "target", "body", "where"),
    [
        ("POST", "/?gpio/valve", "1", ()),
        ("PUT", "/?gpio/22", '{"value": true}', ()),
        ("POST", "/?gpio", '{"led": 1, "valve": 1}', ("pins", "valve")),
        ("POST", "/?gpio/valve", '{"pulse": 0.05}', ()),
        ("POST", "/?gpio/motor", '{"pwm": {"frequency": 50, "duty": 0.5}}', ()),
    ],
    ids=["value", "by-number", "batch", "pulse", "pwm"],
)
@pytest.mark.parametrize("exclusive", ["client", "connection", "off"])
def test_every_write_to_a_pin_with_a_safe_value_says_how_long_it_holds(
    start, connect, exclusive, method, target, body, where
):
    running = start(session__exclusive=exclusive)
    client = connect(running)
    reply = call(client, method, target, body)
    assert reply.status == 200, reply.body
    check_dynamic(reply)
    state = reply.json()
    for key in where:
        state = state[key]
    assert state["safe"] == 0
    assert state["holds"] == HOLDS[exclusive]
    # A read is not a write: it carries neither.
    assert "holds" not in call(client, "GET", target.partition("&")[0]).body.decode()


@pytest.mark.parametrize(
    ("target", "body"),
    [("/?gpio/led", "1"), ("/?gpio/led", '{"pulse": 0.05}'), ("/?gpio", '{"led": 1}')],
)
def test_a_write_to_a_pin_without_a_safe_value_adds_nothing(start, connect, target, body):
    running = start()
    reply = call(connect(running), "POST", target, body)
    assert reply.status == 200, reply.body
    state = reply.json().get("pins", {}).get("led") or reply.json()
    assert set(state) == {"gpio", "mode", "value"}


def test_a_pulse_cut_short_says_how_long_the_value_holds(start, connect):
    running = start()
    pulsing, other = connect(running), connect(running)  # one client: one lease
    pulsing.send(encode("POST", "/?gpio/valve", {"pulse": 5}))
    assert wait_for(lambda: read_pin(running, VALVE) == 1)
    assert call(other, "POST", "/?gpio/valve", "0").status == 200
    reply = pulsing.read()
    assert reply.json() == {
        "gpio": VALVE,
        "mode": "out",
        "value": 0,
        "safe": 0,
        "holds": HOLDS["client"],
        "interrupted": True,
    }


# -- one-shot clients and kept-alive sessions -------------------------------------------


def test_a_one_shot_write_is_undone_once_its_connection_closes(start):
    running = start()
    reply = one_shot(running, "POST", "/?gpio", '{"valve": 1, "led": 1}')
    assert reply.json()["pins"]["valve"]["holds"] == HOLDS["client"]
    # Another connection (here another client, so that it does not keep the lease) reads
    # the safe value as soon as the server has seen the close: the writer holds nothing.
    assert wait_for(
        lambda: one_shot(running, "GET", "/?gpio/valve", source="127.0.0.2").json()["value"] == 0
    )
    assert values(running, VALVE) == [0, 1, 0]
    assert one_shot(running, "GET", "/?gpio/led").json()["value"] == 1  # no safe value: kept
    # The same holds from the writer's own address, once it has no connection left.
    assert one_shot(running, "POST", "/?gpio/valve", "1").status == 200
    assert wait_for(lambda: one_shot(running, "GET", "/?gpio/valve").json()["value"] == 0)


def test_a_kept_alive_session_keeps_the_value(start, connect):
    running = start(timeouts__inactivity=3)
    writer = connect(running)
    reader = connect(running, "127.0.0.2")
    assert call(writer, "POST", "/?gpio/valve", "1").json()["value"] == 1
    for _ in range(2):  # past the inactivity timeout, kept by the writer's pings
        time.sleep(1.6)
        assert call(writer, "GET", "/?ping").status == 200
        assert call(reader, "GET", "/?gpio/valve").json()["value"] == 1
    writer.close()
    assert wait_for(lambda: call(reader, "GET", "/?gpio/valve").json()["value"] == 0)


# -- the README's curl lines, run with curl ---------------------------------------------


@needs_curl
def test_readme_curl_one_shot_write_motor_undone_led_kept(make_server):
    pins = readme_pins()
    assert "safe" in pins["motor"] and "safe" not in pins["led"]  # safe only on the motor
    running = make_server(gpio__backend="sim", gpio__pins=pins)
    motor = pins["motor"]["gpio"]
    reply = json.loads(curl(running, readme_command("The HTTaP vocabulary", "pwm", "gpio/motor")))
    assert reply["pwm"]["running"] is True
    assert (reply["safe"], reply["holds"]) == (0, HOLDS["client"])
    # Once curl has closed: the motor is back at its safe value, the PWM stopped.
    assert wait_for(
        lambda: (
            read_pin(running, motor) == 0 and not running.server.pins.by_number[motor].wave.running
        )
    )
    read = "curl 'http://pi:8080/?gpio/motor'"
    assert json.loads(curl(running, read))["pwm"]["running"] is False
    reply = json.loads(curl(running, readme_command("The HTTaP vocabulary", "-d 1", "gpio/led")))
    assert reply == {"gpio": pins["led"]["gpio"], "mode": "out", "value": 1}
    assert json.loads(curl(running, "curl 'http://pi:8080/?gpio/led'"))["value"] == 1


@needs_curl
def test_readme_car_one_shot_drive_stops_at_once_and_a_kept_one_lasts_half_a_second(
    make_server,
):
    running = make_server(
        config_file=str(ROOT / "examples/car/web.json5"), listen=["http://127.0.0.1:0"]
    )
    speeds = "curl 'http://127.0.0.1:8080/?car'"
    drive = readme_command("Example: car", "car/drive", 'right": 0.5')
    assert json.loads(curl(running, drive)) == {"left": 1, "right": 0.5}
    assert wait_for(lambda: json.loads(curl(running, speeds)) == {"left": 0, "right": 0})
    forward = running.config.gpio.pins["left_forward"].gpio
    began = len(values(running, forward))
    output = curl(running, readme_command("Example: car", "--next"))
    stopped = '{"gpio":5,"mode":"out","value":0,"timeout":false}'
    assert f"`{stopped}`" in README
    assert output == '{"left":1,"right":1}' + stopped
    steps = running.call(lambda: running.server.gpio.history(forward))[began:]
    up = next(i for i, (_, value) in enumerate(steps) if value == 1)
    down = next(i for i, (_, value) in enumerate(steps) if i > up and value == 0)
    assert steps[down][0] - steps[up][0] >= 0.5  # the dead man's switch, not the link
