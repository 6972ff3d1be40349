"""The examples, run for real: each one's web.json5 and app on the sim board, over real
sockets, checked against what its README section promises."""

from __future__ import annotations

import ast
import importlib.util
import json
import logging
import re
import socket
import struct
import time

import pytest

from tests.helpers import ROOT, wait_for
from tests.helpers.client import Client
from tests.helpers.dynamic import call
from tests.helpers.processes import make

EXAMPLES = ROOT / "examples"


def start(make_server, name: str):
    return make_server(config_file=str(EXAMPLES / name / "web.json5"))


def history(running, pin: str) -> list:
    number = running.config.gpio.pins[pin].gpio
    return running.call(lambda: running.server.gpio.history(number))


def changes(running, pin: str, since: float, until: float = float("inf")) -> int:
    """How many times the pin changed level in [since, until)."""
    entries = history(running, pin)
    return sum(
        1
        for (_, before), (t, value) in zip(entries, entries[1:])
        if before != value and since <= t < until
    )


NAMES = sorted(path.parent.name for path in EXAMPLES.glob("*/web.json5"))


def test_every_example_is_listed_where_make_example_is_taught():
    makefile = (ROOT / "Makefile").read_text()
    listed = re.search(r"# make example NAME=(\w+) \(or ([\w, ]+)\)", makefile).groups()
    assert sorted([listed[0], *listed[1].split(", ")]) == NAMES
    readme = (ROOT / "README.md").read_text()
    assert sorted(set(re.findall(r"make example NAME=(\w+)", readme))) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_make_example_serves_the_page(spawn, name):
    """What `make example NAME=...` runs (as `make -n` shows it), on a free port."""
    planned = make(ROOT, "example", f"NAME={name}").splitlines()[-1]
    command = planned.partition(" -m httap ")[2].split()
    assert command == ["serve", "--config", f"examples/{name}/web.json5"]
    process = spawn(*command, "--listen", "http://127.0.0.1:0")
    assert "sim" in process.banner
    with socket.create_connection((process.host, process.port), timeout=5) as sock:
        page = Client(sock).get("/")
    assert page.status == 200
    assert b"<title>httap: " in page.body


@pytest.mark.parametrize("name", NAMES)
def test_each_page_gets_the_library_from_its_own_server(make_server, name):
    """The page imports /httap.js, which the server serves from its own static/ (the
    example has no copy)."""
    running = start(make_server, name)
    client = Client(running.connect())
    assert b'import { HTTaP } from "/httap.js";' in client.get("/").body
    library = client.get("/httap.js")
    assert library.status == 200
    assert library.headers["content-type"] == "text/javascript; charset=utf-8"
    assert library.body == (ROOT / "static" / "httap.js").read_bytes()
    for built_in, kind in (("/console.js", "text/javascript"), ("/favicon.ico", "image/")):
        reply = client.get(built_in)
        assert (reply.status, reply.body) == (200, (ROOT / "static" / built_in[1:]).read_bytes())
        assert reply.headers["content-type"].startswith(kind)


def raw_writes() -> set[tuple[str, str]]:
    """(example, function) of each `....gpio.write(...)` call in the examples' apps."""
    found = set()

    def visit(node: ast.AST, example: str, function: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.Lambda)):
            function = getattr(node, "name", function)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "write"
            and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr == "gpio"
        ):
            found.add((example, function))
        for child in ast.iter_child_nodes(node):
            visit(child, example, function)

    for app in EXAMPLES.glob("*/app.py"):
        visit(ast.parse(app.read_text()), app.parent.name, "")
    return found


def test_the_examples_drive_pins_with_server_write():
    """`server.write` is audited and wakes the pin's long-polls; `server.gpio.write` does
    neither. The one raw write left is the buzzer's edges (a tone's start and end are
    `server.write`s): an audit line per edge would be thousands a second."""
    assert raw_writes() == {("buzzer", "_toggle")}


def audited(caplog, pin: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "httap.audit" and f" {pin} " in record.getMessage()
    ]


def test_the_examples_writes_are_audited(make_server, caplog):
    caplog.set_level(logging.INFO, logger="httap.audit")
    running = start(make_server, "blink")  # a task's toggles: no request behind them
    assert wait_for(lambda: audited(caplog, "led"), 3)
    assert audited(caplog, "led")[0] == "s=- - led 0 -> 1 (app)"
    running.stop()

    running = start(make_server, "buzzer")
    client = Client(running.connect())
    call(client, "POST", "/?buzzer", '{"note": "A4"}')
    time.sleep(0.2)  # ~180 edges
    call(client, "POST", "/?buzzer", '{"frequency": 0}')
    lines = audited(caplog, "speaker")
    assert len(lines) == 2, lines  # the tone's start and end, not its edges
    assert lines[0].endswith("speaker 0 -> 1 (POST /?buzzer, app)")
    assert lines[1].endswith("(POST /?buzzer, app)") and " -> 0 " in lines[1]
    assert changes(running, "speaker", 0) > 100


# -- blink -----------------------------------------------------------------------------


def test_blink_blinks_at_the_rate_set_and_stops_when_off(make_server):
    running = start(make_server, "blink")
    client = Client(running.connect())
    assert call(client, "GET", "/?blink").json()["on"] is True
    for rate in (5, 20):  # blinks per second: twice as many level changes
        reply = call(client, "POST", "/?blink", json.dumps({"on": True, "rate": rate}))
        assert reply.status == 200 and reply.json()["rate"] == rate
        since = time.monotonic()
        time.sleep(0.6)
        seen = changes(running, "led", since + 0.1, since + 0.6)  # 0.5 s after settling
        assert 0.6 * rate <= seen <= 1.4 * rate, (rate, seen)

    reply = call(client, "POST", "/?blink", '{"on": false}')
    assert reply.json() == {"on": False, "rate": 20, "led": 0}
    since = time.monotonic()
    time.sleep(0.3)
    assert changes(running, "led", since) == 0
    assert call(client, "POST", "/?blink", '{"rate": 0}').status == 400
    assert call(client, "POST", "/?blink", '{"on": 1}').status == 400


# -- buzzer ----------------------------------------------------------------------------


def load_measure():
    path = EXAMPLES / "buzzer" / "measure.py"
    spec = importlib.util.spec_from_file_location("buzzer_measure", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_buzzer_plays_440_hz_and_silence_stops_it(make_server):
    analyse = load_measure().analyse
    running = start(make_server, "buzzer")
    client = Client(running.connect())
    reply = call(client, "POST", "/?buzzer", '{"note": "A4"}')
    assert reply.json() == {"frequency": 440.0, "note": "A4"}
    since = time.monotonic()
    time.sleep(0.6)
    figures = analyse(history(running, "speaker"), since + 0.1, since + 0.6, 440.0)
    assert 418 <= figures["frequency"] <= 462, figures
    assert figures["periods"] > 150, figures  # of 220: a busy machine may delay a few

    assert call(client, "POST", "/?buzzer", '{"frequency": 0}').json()["frequency"] == 0
    since = time.monotonic()
    time.sleep(0.2)
    assert changes(running, "speaker", since) == 0
    assert history(running, "speaker")[-1][1] == 0
    assert call(client, "POST", "/?buzzer", '{"note": "H2"}').status == 400
    assert call(client, "POST", "/?buzzer", '{"frequency": 5}').status == 400


# -- car -------------------------------------------------------------------------------

CAR_PINS = ("left_forward", "left_back", "left_speed", "right_forward", "right_back")


def car_pins(running) -> dict:
    """Each pin's level, and the PWM duty of the speed pins (0 when not running)."""

    def read():
        server = running.server
        levels = {}
        for name, spec in running.config.gpio.pins.items():
            pwm = server.pins.by_number[spec.gpio].wave
            running_duty = pwm.duty if pwm is not None and pwm.running else None
            levels[name] = running_duty or server.gpio.read(spec.gpio)
        return levels

    return running.call(read)


def stopped(running) -> bool:
    return not any(car_pins(running).values())


def test_car_drives_one_driver_at_a_time(make_server):
    running = start(make_server, "car")
    driver = Client(running.connect())
    reply = call(driver, "POST", "/?car/drive", '{"left": 1, "right": -0.5}')
    assert reply.status == 200 and reply.json() == {"left": 1, "right": -0.5}
    assert car_pins(running) == {
        "left_forward": 1,
        "left_back": 0,
        "left_speed": 1,
        "right_forward": 0,
        "right_back": 1,
        "right_speed": 0.5,
    }
    other = Client(running.connect(source="127.0.0.2"))
    assert call(other, "POST", "/?car/drive", '{"left": 1, "right": 1}').status == 503
    assert call(other, "GET", "/?car").json() == {"left": 1, "right": -0.5}  # reads are open
    assert call(driver, "POST", "/?car/stop").json() == {"left": 0, "right": 0}
    assert stopped(running)
    assert call(driver, "POST", "/?car/drive", '{"left": 2}').status == 400


def test_car_stops_when_the_driver_link_drops(make_server):
    running = start(make_server, "car")
    sock = running.connect()
    call(Client(sock), "POST", "/?car/drive", '{"left": 1, "right": 1}')
    assert not stopped(running)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # a reset, well before the dead man's switch (0.5 s)
    assert wait_for(lambda: stopped(running), timeout=0.3)


def test_car_stops_when_no_command_comes_for_500_ms(make_server):
    running = start(make_server, "car")
    driver = Client(running.connect())
    for _ in range(3):  # commands every 200 ms keep it going
        call(driver, "POST", "/?car/drive", '{"left": 0.5, "right": 0.5}')
        time.sleep(0.2)
    time.sleep(0.1)
    assert not stopped(running)
    time.sleep(0.5)
    assert stopped(running)
    assert call(driver, "GET", "/?car").json() == {"left": 0, "right": 0}


# -- simon -----------------------------------------------------------------------------


def simon(client) -> dict:
    return call(client, "GET", "/?simon").json()


def shown_sequence(running, client) -> list[int]:
    """Wait for the player's turn, then read what the LEDs showed from their history."""
    assert wait_for(lambda: simon(client)["phase"] == "waiting", timeout=10)
    rises = []
    for button in range(4):
        entries = history(running, f"led{button}")
        rises += [
            (t, button)
            for (_, before), (t, value) in zip(entries, entries[1:])
            if before == 0 and value == 1
        ]
    length = simon(client)["length"]
    return [button for _, button in sorted(rises)[-length:]]


def press_button(running, button: int) -> None:
    """Press and release a (simulated) push button: pulled up, it reads 0 when pressed."""
    number = running.config.gpio.pins[f"button{button}"].gpio
    gpio = running.server.gpio
    running.call(lambda: gpio.drive(number, 0))
    time.sleep(0.03)
    running.call(lambda: gpio.drive(number, 1))
    time.sleep(0.03)


def test_simon_plays_from_the_page_and_the_buttons(make_server):
    running = start(make_server, "simon")
    client = Client(running.connect())
    assert simon(client)["phase"] == "ready"
    reply = call(client, "POST", "/?simon/start")
    assert reply.json() == {"phase": "showing", "level": 0, "length": 1}

    (first,) = shown_sequence(running, client)
    reply = call(client, "POST", "/?simon/press", json.dumps({"button": first}))
    assert reply.json() == {"phase": "showing", "level": 1, "length": 2}

    sequence = shown_sequence(running, client)
    assert sequence[0] == first
    for button in sequence:
        press_button(running, button)
    assert simon(client) == {"phase": "showing", "level": 2, "length": 3}

    wrong = (shown_sequence(running, client)[0] + 1) % 4
    reply = call(client, "POST", "/?simon/press", json.dumps({"button": wrong}))
    assert reply.json() == {"phase": "over", "level": 2, "length": 3}
    assert call(client, "POST", "/?simon/press", '{"button": 4}').status == 400
