"""Outputs that survive a restart (httap/persist.py): the state file, its batched
writes on the loop's timers, and what a start-up takes from it."""

from __future__ import annotations

import json
import logging

import pytest

from gpio.sim import SimBackend
from httap import config
from httap.persist import STATE_NAME, Persist, replace, state_path
from httap.pins import Pins
from tests.helpers.domain import settings

PINS = {
    "led": {"gpio": 17, "mode": "out", "persist": True, "initial": 0},
    "lamp": {"gpio": 27, "mode": "out", "persist": True, "safe": 0},
    "plain": {"gpio": 22, "mode": "out"},
    "motor": {"gpio": 18, "mode": "pwm", "persist": True, "pwm": "soft"},
}


def start(manual_loop, path, **gpio):
    """A start-up as server.py makes it: the kept settings, then the pins that follow."""
    conf = settings(gpio__pins=PINS, **gpio)
    persist = Persist(str(path), conf.gpio, manual_loop)
    pins = Pins(persist.restore(conf.gpio.pins), SimBackend(clock=manual_loop.clock), manual_loop)
    persist.follow(pins)
    return persist, pins


def kept(path) -> dict:
    return json.loads(path.read_text())["pins"]


def test_changes_are_written_at_most_once_per_interval(manual_loop, tmp_path):
    path = tmp_path / STATE_NAME
    persist, pins = start(manual_loop, path, gpio__persist_interval=5)
    led = pins.find("led")
    pins.set(led, 1, None)
    assert not path.exists()  # not inside the request that made the change
    manual_loop.advance(0)
    assert kept(path) == {"led": {"gpio": 17, "value": 1}}
    pins.set(led, 0, None)
    pins.set_pwm(pins.find("motor"), {"frequency": 50, "duty": 0.25}, None)
    pins.set(pins.find("plain"), 1, None)  # not persisted
    manual_loop.advance(4.9)
    assert kept(path) == {"led": {"gpio": 17, "value": 1}}  # the interval is not over
    manual_loop.advance(0.1)
    assert kept(path) == {
        "led": {"gpio": 17, "value": 0},
        "motor": {"gpio": 18, "pwm": {"frequency": 50, "duty": 0.25}},
    }
    assert [each.name for each in tmp_path.iterdir()] == [STATE_NAME]  # no temporary left
    assert persist.timer is None  # nothing more to write


def test_a_pulse_is_not_kept_and_a_safe_value_is(manual_loop, tmp_path):
    path = tmp_path / STATE_NAME
    _, pins = start(manual_loop, path)
    lamp = pins.find("lamp")
    pins.set(lamp, 1, None)
    manual_loop.advance(5)
    pins.pulse(pins.find("led"), 1, None, lambda interrupted, error: None)
    manual_loop.advance(0.5)  # the pulse's first edge is past, not kept
    pins.apply_safe_values()  # the link is lost
    manual_loop.advance(5)
    assert kept(path) == {"lamp": {"gpio": 27, "value": 0}}


def test_a_clean_stop_writes_at_once(manual_loop, tmp_path):
    path = tmp_path / STATE_NAME
    persist, pins = start(manual_loop, path, gpio__persist_interval=3600)
    pins.set(pins.find("led"), 1, None)
    manual_loop.advance(0)
    pins.set(pins.find("led"), 0, None)
    pins.set(pins.find("lamp"), 1, None)
    pins.close()  # the lamp goes to its safe value: that is kept
    persist.close()
    assert kept(path) == {"led": {"gpio": 17, "value": 0}, "lamp": {"gpio": 27, "value": 0}}


def test_a_kept_setting_wins_over_initial(manual_loop, tmp_path):
    path = tmp_path / STATE_NAME
    entries = {
        "led": {"gpio": 17, "value": 1},
        "motor": {"gpio": 18, "pwm": {"frequency": 50, "duty": 0.075}},
    }
    path.write_text(json.dumps({"pins": entries}))
    persist, pins = start(manual_loop, path)
    assert pins.backend.read(17) == 1
    assert pins.state(pins.find("motor"))["pwm"] == {
        "frequency": 50,
        "duty": 0.075,
        "running": True,
        "kind": "soft",
    }
    persist.close()
    assert kept(path) == entries  # nothing changed: nothing written


def test_a_level_kept_for_a_pwm_pin_holds_it_steady(manual_loop, tmp_path):
    path = tmp_path / STATE_NAME
    path.write_text(json.dumps({"pins": {"motor": {"gpio": 18, "value": 1}}}))
    _, pins = start(manual_loop, path)
    motor = pins.find("motor")
    assert pins.state(motor)["value"] == 1 and not pins.state(motor)["pwm"]["running"]


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", 'not {"pins": {...}}'),
        ('{"pins": 3}', 'not {"pins": {...}}'),
        ('{"pins": {"led": {"gpio": 4, "value": 1}}}', "the entry of pin led does not fit it"),
        ('{"pins": {"led": {"gpio": 17, "value": 2}}}', "the entry of pin led does not fit it"),
        ('{"pins": {"led": {"gpio": 17, "value": true}}}', "the entry of pin led does not fit"),
        (
            '{"pins": {"led": {"gpio": 17, "pwm": {"frequency": 5, "duty": 0.5}}}}',
            "the entry of pin led does not fit it (GPIO 17, mode out)",
        ),
        (
            '{"pins": {"motor": {"gpio": 18, "pwm": {"frequency": 0, "duty": 0.5}}}}',
            "the entry of pin motor does not fit it",
        ),
    ],
)
def test_a_missing_or_corrupt_file_is_a_warning(manual_loop, tmp_path, caplog, content, said):
    path = tmp_path / STATE_NAME
    if content is not None:
        path.write_text(content)
    caplog.set_level(logging.WARNING, "httap.persist")
    _, pins = start(manual_loop, path)
    assert said in caplog.text and str(path) in caplog.text
    assert pins.backend.read(17) == 0  # its `initial`
    assert not pins.state(pins.find("motor"))["pwm"]["running"]


def test_a_missing_file_is_info_the_first_run_has_none(manual_loop, tmp_path, caplog):
    path = tmp_path / STATE_NAME
    caplog.set_level(logging.INFO, "httap.persist")
    _, pins = start(manual_loop, path)
    (record,) = [r for r in caplog.records if "is not there (yet)" in r.getMessage()]
    assert record.levelname == "INFO" and str(path) in record.getMessage()
    assert "pins led, lamp, motor start as declared" in record.getMessage()
    assert pins.backend.read(17) == 0  # its `initial`


def test_a_state_file_in_a_missing_folder_says_so(tmp_path):
    from httap.config import ConfigError, load

    with pytest.raises(ConfigError) as info:
        load(None, env={}, overrides={"gpio.state_file": str(tmp_path / "gone" / "kept.json")})
    assert str(info.value) == (
        f'command line: gpio.state_file: found "{tmp_path}/gone/kept.json" (the folder'
        f" {tmp_path}/gone does not exist), expected a file path in an existing folder"
    )


def test_a_file_that_cannot_be_written_is_a_warning(manual_loop, tmp_path, caplog):
    path = tmp_path / STATE_NAME
    path.mkdir()  # rename(2) over a folder fails, as a read-only file system would
    _, pins = start(manual_loop, path)
    pins.set(pins.find("led"), 1, None)
    manual_loop.advance(0)
    assert "cannot write the state file" in caplog.text and "StateDirectory=" in caplog.text
    assert pins.backend.read(17) == 1  # the pin did what it was told all the same


def test_without_persisted_pins_no_file_is_read_or_written(manual_loop, tmp_path, caplog):
    path = tmp_path / STATE_NAME
    conf = settings(gpio__state_file=str(path))
    persist = Persist(str(path), conf.gpio, manual_loop)
    persist.close()
    assert not path.exists() and "state file" not in caplog.text


def test_replace_leaves_the_old_file_whole_when_it_fails(tmp_path):
    path = tmp_path / "state.json"
    replace(str(path), b"old\n")
    (tmp_path / "state.json.tmp").mkdir()  # the temporary cannot be made
    with pytest.raises(OSError):
        replace(str(path), b"new\n")
    assert path.read_bytes() == b"old\n"


def test_where_the_file_lives(tmp_path):
    config_file = tmp_path / "web.json5"
    config_file.write_text("{}")
    conf = config.load(str(config_file), env={})
    assert state_path(conf, env={}) == str(tmp_path / STATE_NAME)
    assert state_path(conf, env={"STATE_DIRECTORY": "/var/lib/httap:/x"}) == (
        "/var/lib/httap/" + STATE_NAME
    )
    config_file.write_text("{gpio: {state_file: 'kept.json'}}")  # beside the file
    chosen = config.load(str(config_file), env={})
    assert state_path(chosen, env={"STATE_DIRECTORY": "/var/lib/httap"}) == str(
        tmp_path.resolve() / "kept.json"
    )
