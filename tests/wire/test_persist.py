"""Outputs that survive a restart: `persist: true` pins across real restarts of
`python -m httap serve` (a clean stop, a kill), and a corrupt state file."""

from __future__ import annotations

import json
import signal
import socket

import pytest

from tests.helpers import wait_for
from tests.helpers.client import Client
from tests.helpers.dynamic import call
from tests.helpers.processes import fetch, stop

PINS = {
    "led": {"gpio": 17, "mode": "out", "persist": True, "initial": 0},
    "lamp": {"gpio": 27, "mode": "out", "persist": True, "safe": 0},
    "motor": {"gpio": 18, "mode": "pwm", "persist": True, "pwm": "soft"},
    "plain": {"gpio": 22, "mode": "out"},
}


@pytest.fixture
def config(tmp_path) -> str:
    """A config whose state file is its default: beside the config file."""
    path = tmp_path / "web.json5"
    gpio = {"backend": "sim", "pins": PINS, "persist_interval": 0.2}
    path.write_text(json.dumps({"listen": ["http://127.0.0.1:0"], "gpio": gpio}))
    return str(path)


def post(process, target: str, body: str) -> None:
    sock = socket.create_connection((process.host, process.port), timeout=5)
    client = Client(sock)
    try:
        reply = call(client, "POST", target, body)
        assert reply.status == 200, reply.body
    finally:
        client.close()


def state(process, name: str) -> dict:
    return fetch(process, f"/?gpio/{name}").json()


def test_settings_survive_a_clean_restart(spawn, config, tmp_path):
    first = spawn("serve", "--config", config)
    post(first, "/?gpio/led", "1")
    post(first, "/?gpio/lamp", "1")
    post(first, "/?gpio/plain", "1")
    post(first, "/?gpio/motor", '{"pwm": {"frequency": 50, "width": 0.002}}')
    stop(first)  # the lamp's safe value applies at the stop, and is what is kept
    kept = json.loads((tmp_path / "httap-state.json").read_text())["pins"]
    assert kept == {
        "led": {"gpio": 17, "value": 1},
        "lamp": {"gpio": 27, "value": 0},
        "motor": {"gpio": 18, "pwm": {"frequency": 50, "duty": pytest.approx(0.1)}},
    }
    second = spawn("serve", "--config", config)
    assert state(second, "led")["value"] == 1  # over its `initial` of 0
    assert state(second, "lamp")["value"] == 0
    assert state(second, "plain")["value"] == 0  # not persisted
    motor = state(second, "motor")["pwm"]
    assert (motor["frequency"], motor["duty"], motor["running"]) == (50, pytest.approx(0.1), True)
    stop(second)


def test_a_kept_setting_survives_a_kill_once_written(spawn, config, tmp_path):
    """No clean stop: the batched write (persist_interval 0.2 s) has reached the file."""
    first = spawn("serve", "--config", config)
    post(first, "/?gpio/led", "1")
    path = tmp_path / "httap-state.json"
    assert wait_for(lambda: path.exists() and '"value": 1' in path.read_text())
    first.signal(signal.SIGKILL)
    first.wait()
    second = spawn("serve", "--config", config)
    assert state(second, "led")["value"] == 1
    stop(second)


def test_a_corrupt_state_file_is_a_warning_not_a_refusal(spawn, config, tmp_path):
    (tmp_path / "httap-state.json").write_text('{"pins": {"led": ')
    process = spawn("serve", "--config", config)
    assert state(process, "led")["value"] == 0  # its `initial`
    assert fetch(process, "/?gpio/plain").status == 200  # and it serves on
    log = stop(process)
    assert "WARNING" in log and "httap-state.json: not JSON" in log
    assert "pins led, lamp, motor start as declared" in log
