"""`POST /?gpio/NAME {"drive": V}`: the simulated board's inputs, set over HTTP.

Over real sockets to a real server: on the simulated board a drive sets an input's wire
(with the lease, audited, waking its long-polls); everywhere else, and on an output,
it is 409; a plain write to an input stays 409 on the sim as on a real board. The
README's lines that use it are run with curl, when it is installed.
"""

from __future__ import annotations

import json
import logging
import subprocess

import pytest

from tests.helpers import ROOT, wait_for
from tests.helpers.client import Client
from tests.helpers.dynamic import call, check_dynamic, check_error, encode
from tests.helpers.processes import curl, needs_curl
from tests.helpers.readme import readme_command, readme_pins
from tests.helpers.servers import values

LED, BUTTON = 17, 4
PINS = {
    "led": {"gpio": LED, "mode": "out"},
    "button": {"gpio": BUTTON, "mode": "in", "pull": "up"},
}


@pytest.fixture
def start(make_server):
    def start_gpio(**overrides):
        return make_server(**{"gpio__backend": "sim", "gpio__pins": PINS, **overrides})

    return start_gpio


# -- on the simulated board --------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "level"),
    [('{"drive": 0}', 0), ('{"drive": false}', 0), ('{"drive": 1}', 1), ('{"drive": true}', 1)],
)
def test_drive_sets_the_wire_of_a_simulated_input(start, connect, body, level):
    running = start()
    client = connect(running)
    for method in ("POST", "PUT"):
        reply = call(client, method, "/?gpio/button", body)
        assert reply.status == 200, reply.body
        check_dynamic(reply)
        assert reply.json() == {"gpio": BUTTON, "mode": "in", "value": level}
    assert call(client, "GET", "/?gpio/button").json()["value"] == level
    assert values(running, BUTTON) == [1, level, level]  # pulled up, then the drives


def test_discovery_says_the_board_is_simulated(start, connect):
    assert call(connect(start()), "GET", "/?").json()["Simulated"] is True


def test_drive_answers_a_pending_long_poll_at_once(start, connect):
    # A sampler that reads the pins once a second: only a direct wake-up has answered
    # the long-poll by the time the drive's own reply is in.
    running = start(gpio__sample_interval=1)
    waiting, driver = connect(running), connect(running)
    waiting.send(encode("GET", "/?gpio/button&wait=30&value=1"))
    manager = running.server.manager
    assert wait_for(lambda: running.call(lambda: BUTTON in manager.watches.watched))
    assert call(driver, "POST", "/?gpio/button", '{"drive": 0}').status == 200
    assert running.call(lambda: BUTTON not in manager.watches.watched)
    reply = waiting.read()
    assert reply.json() == {"gpio": BUTTON, "mode": "in", "value": 0, "timeout": False}
    assert call(waiting, "GET", "/?gpio/button").json()["value"] == 0


def test_drive_is_audited(start, connect, caplog):
    caplog.set_level(logging.INFO, logger="httap.audit")
    running = start()
    reply = call(connect(running), "POST", "/?gpio/button", '{"drive": 0}')
    session = reply.headers["httap-session"]
    audit = [r.getMessage() for r in caplog.records if r.name == "httap.audit"]
    assert audit == [f"s={session} 127.0.0.1 button 1 -> 0 (POST /?gpio/button, drive)"]


def test_drive_needs_the_lease(start, connect):
    running = start()
    holder, other = connect(running, "127.0.0.1"), connect(running, "127.0.0.2")
    assert call(holder, "POST", "/?gpio/led", "1").status == 200
    busy = call(other, "POST", "/?gpio/button", '{"drive": 0}')
    check_error(busy, 503, "busy", "127.0.0.1")
    assert int(busy.headers["retry-after"]) >= 1
    assert values(running, BUTTON) == [1]
    assert call(other, "GET", "/?gpio/button").json()["value"] == 1  # reads stay open
    assert call(holder, "POST", "/?gpio/button", '{"drive": 0}').status == 200


def test_drive_on_an_output_is_409(start, connect):
    running = start()
    client = connect(running)
    reply = call(client, "POST", "/?gpio/led", '{"drive": 1}')
    check_error(reply, 409, "mode-conflict", "led is an output", "no wire", '{"value": 1}')
    assert values(running, LED) == [0]
    assert call(client, "POST", "/?gpio/led", "1").status == 200  # the same connection


def test_a_plain_write_to_a_simulated_input_stays_409(start, connect):
    running = start()
    client = connect(running)
    for body in ("0", '{"value": 0}', '{"pulse": 0.1}'):
        reply = call(client, "POST", "/?gpio/button", body)
        check_error(reply, 409, "mode-conflict", "input", '{"drive": 0}')
    check_error(call(client, "POST", "/?gpio", '{"button": 0}'), 409, "mode-conflict")
    assert values(running, BUTTON) == [1]
    assert call(client, "POST", "/?gpio/button", '{"drive": 0}').status == 200


@pytest.mark.parametrize("value", ["2", '"1"', "null", "0.5", "[1]", '{"value": 1}'])
def test_a_bad_drive_value_is_400(start, connect, value):
    running = start()
    client = connect(running)
    reply = call(client, "POST", "/?gpio/button", f'{{"drive": {value}}}')
    check_error(reply, 400, "bad-value", "button", "0, 1, true or false")
    assert values(running, BUTTON) == [1]
    assert call(client, "GET", "/?gpio/button").status == 200


@pytest.mark.usefixtures("standins")
def test_drive_off_the_simulated_board_is_409(make_server, connect):
    # RPi.GPIO's stand-in (tests/helpers/standins): gpiod's needs a /dev/gpiochip* to be picked.
    backend = "rpi"
    running = make_server(gpio__backend=backend, gpio__pins=PINS)
    client = connect(running)
    assert call(client, "GET", "/?").json()["Simulated"] is False
    for pin in ("button", "led"):
        reply = call(client, "POST", f"/?gpio/{pin}", '{"drive": 0}')
        check_error(reply, 409, "sim-only", "simulated board", f"this board is {backend}")
    # A plain write to an input is 409 as on the sim, with no word of a drive.
    reply = call(client, "POST", "/?gpio/button", "0")
    assert '{"drive"' not in check_error(reply, 409, "mode-conflict", "input")["message"]
    assert call(client, "GET", "/?gpio/button").json()["value"] == 1  # pulled up
    assert call(connect(running), "POST", "/?gpio/led", "1").status == 200


# -- the README's lines, with curl -------------------------------------------------------


@needs_curl
def test_readme_long_poll_answers_when_the_button_is_driven(make_server):
    running = make_server(gpio__backend="sim", gpio__pins=readme_pins())
    long_poll = readme_command("The HTTaP vocabulary", "gpio/button&wait=10&value=1")
    base = f"http://127.0.0.1:{running.port}"
    waiting = subprocess.Popen(
        ["curl", "-sS", long_poll.split("'")[1].replace("http://pi:8080", base)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        manager = running.server.manager
        assert wait_for(lambda: running.call(lambda: bool(manager.watches.watched)))
        drive = readme_command("The HTTaP vocabulary", '"drive"', "gpio/button")
        assert json.loads(curl(running, drive))["value"] == 0
        output, _ = waiting.communicate(timeout=10)
    finally:
        waiting.kill()
    assert json.loads(output) == {"gpio": 4, "mode": "in", "value": 0, "timeout": False}


@needs_curl
def test_readme_simon_buttons_pressed_by_driving_them(make_server):
    running = make_server(config_file=str(ROOT / "examples/simon/web.json5"))
    client = Client(running.connect())
    assert call(client, "POST", "/?simon/start").status == 200
    game = lambda: call(client, "GET", "/?simon").json()  # noqa: E731
    assert wait_for(lambda: game()["phase"] == "waiting", timeout=10)
    led = next(  # the one LED of the first round: the one that lit
        n for n in range(4) if 1 in values(running, running.config.gpio.pins[f"led{n}"].gpio)
    )
    press = readme_command("Example: simon", '"drive": 0', "button2").replace(
        "button2", f"button{led}"
    )
    release = readme_command("Example: simon", '"drive": 1', "button2").replace(
        "button2", f"button{led}"
    )
    assert json.loads(curl(running, press))["value"] == 0
    assert wait_for(lambda: game()["level"] == 1)  # the app's 5 ms task saw the press
    assert json.loads(curl(running, release))["value"] == 1
