"""The pin domain (httap/pins.py) on the simulated board, with a clock the test moves."""

from __future__ import annotations

import logging

import pytest

from httap.http import HTTPError
from httap.pins import Cause, Pins
from tests.helpers.domain import BUTTON, BUZZER, LED

WHO = Cause(7, "10.0.0.2", "POST /?gpio/led")


@pytest.fixture
def heard(pins) -> list[tuple[str, int]]:
    """What a listener of the change source hears, in order."""
    changes: list[tuple[str, int]] = []
    pins.subscribe(lambda change: changes.append((change.pin.name, change.level)))
    return changes


def audit_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "httap.audit"]


def test_one_object_per_declared_pin_by_name_and_number(pins):
    led = pins.find("led")
    assert pins.find("17") is led and pins.find("0017") is led
    assert (led.gpio, led.mode, led.safe, led.is_output) == (LED, "out", 0, True)
    assert led.spec.name == "led" and pins.declared(17) == led.spec
    assert pins.find("button").wave is None and pins.find("buzzer").wave is not None


@pytest.mark.parametrize(
    ("name", "status", "code", "words"),
    [
        ("nope", 404, "unknown-pin", "the declared pins are: button, buzzer, led"),
        ("99", 404, "unknown-pin", "(0 to 53)"),
        ("22", 403, "not-declared", "gpio: {pins: {led: {gpio: 22"),
    ],
)
def test_finding_an_unknown_pin_says_what_exists(pins, name, status, code, words):
    with pytest.raises(HTTPError) as refused:
        pins.find(name)
    assert (refused.value.status, refused.value.code) == (status, code)
    assert words in refused.value.message


def test_a_write_drives_the_board_announces_and_is_audited(pins, heard, caplog):
    caplog.set_level(logging.INFO, logger="httap.audit")
    led = pins.find("led")
    pins.set(led, 1, WHO)
    assert pins.backend.read(LED) == 1 and led.level == 1
    assert heard == [("led", 1)]
    assert audit_lines(caplog) == ["s=7 10.0.0.2 led 0 -> 1 (POST /?gpio/led)"]


def test_a_repeat_is_announced_but_not_audited(pins, heard, caplog):
    caplog.set_level(logging.INFO, logger="httap.audit")
    led = pins.find("led")
    pins.set(led, 1, None, "app")
    pins.set(led, 1, None, "app")
    assert heard == [("led", 1), ("led", 1)]  # a long-poll expecting 0 must hear it
    assert audit_lines(caplog) == ["s=- - led 0 -> 1 (app)"]


def test_an_input_is_not_writable_but_its_simulated_wire_is_set(pins, heard):
    button = pins.find("button")
    with pytest.raises(HTTPError) as refused:
        pins.writable(button)
    assert refused.value.status == 409 and '{"drive": 0} sets its wire' in refused.value.message
    pins.set(button, 0, WHO, "drive")
    assert pins.backend.read(BUTTON) == 0 and heard == [("button", 0)]


@pytest.mark.parametrize("value", [2, -1, 0.0, 1.0, "1", None, [1]])
def test_a_level_is_0_1_true_or_false(pins, value):
    with pytest.raises(HTTPError) as refused:
        Pins.level_of(value, pins.find("led"))
    assert refused.value.status == 400 and refused.value.message.startswith("pin led: a value")


@pytest.mark.parametrize(("value", "level"), [(0, 0), (1, 1), (True, 1), (False, 0)])
def test_the_levels_accepted(pins, value, level):
    assert Pins.level_of(value, pins.find("led")) == level


def test_a_pulse_inverts_then_restores_and_tells_its_owner(pins, manual_loop, heard):
    led = pins.find("led")
    ended = []
    pins.pulse(led, 0.25, WHO, lambda interrupted, error: ended.append((interrupted, error)))
    assert pins.backend.read(LED) == 1 and led.pulse is not None
    manual_loop.advance(0.2)
    assert pins.backend.read(LED) == 1 and ended == []
    manual_loop.advance(0.1)
    assert pins.backend.history(LED) == [(0.0, 0), (0.0, 1), (0.25, 0)]
    assert ended == [(False, None)] and led.pulse is None
    assert heard == [("led", 1), ("led", 0)]


def test_a_write_cuts_a_pulse_short_and_its_owner_hears_it_next_step(pins, manual_loop):
    led = pins.find("led")
    ended = []
    pins.pulse(led, 5, WHO, lambda interrupted, error: ended.append(interrupted))
    pins.set(led, 0, WHO)
    assert ended == []  # not in the middle of the write that cut it
    manual_loop.run_soon()
    assert ended == [True]
    manual_loop.advance(10)
    assert ended == [True] and pins.backend.read(LED) == 0  # the timer did not fire


def test_a_pulse_over_a_pulse_restores_the_first_level(pins, manual_loop):
    led = pins.find("led")
    ends = []
    pins.pulse(led, 1, WHO, lambda interrupted, error: ends.append(("first", interrupted)))
    pins.pulse(led, 1, WHO, lambda interrupted, error: ends.append(("second", interrupted)))
    manual_loop.advance(2)
    assert ends == [("first", True), ("second", False)]
    assert pins.backend.read(LED) == 0


@pytest.mark.parametrize(
    ("name", "seconds", "status"), [("button", 1, 409), ("buzzer", 1, 409), ("led", 0, 400)]
)
def test_pulses_need_an_output_and_a_duration_in_range(pins, name, seconds, status):
    with pytest.raises(HTTPError) as refused:
        pins.pulse(pins.find(name), seconds, WHO, lambda *_: None)
    assert refused.value.status == status


def test_pwm_starts_is_shown_and_a_write_stops_it(pins, manual_loop, caplog):
    caplog.set_level(logging.INFO, logger="httap.audit")
    buzzer = pins.find("buzzer")
    pins.set_pwm(buzzer, {"frequency": 10, "duty": 0.5}, WHO)
    assert pins.state(buzzer)["pwm"] == {
        "frequency": 10.0,
        "duty": 0.5,
        "running": True,
        "kind": "soft",
    }
    manual_loop.advance(0.2)  # two periods: four edges after the first rise
    # set up at 0, the declared duty 0 written, then the wave, on its absolute times
    edges = [(round(when, 9), level) for when, level in pins.backend.history(BUZZER)[2:]]
    assert edges == [(0, 1), (0.05, 0), (0.1, 1), (0.15, 0), (0.2, 1)]
    pins.set(buzzer, 0, None, "app")
    assert buzzer.wave.running is False
    manual_loop.advance(1)
    assert pins.backend.read(BUZZER) == 0
    assert [line.split(" ", 2)[2] for line in audit_lines(caplog)] == [
        "buzzer 0 -> pwm 0.5 at 10 Hz (POST /?gpio/led)",
        "buzzer pwm 0.5 at 10 Hz -> 0 (app)",
    ]


@pytest.mark.parametrize(
    "setting",
    [{"frequency": 0}, {"duty": 2}, {"speed": 1}, [440, 0.5], {"frequency": True}],
)
def test_pwm_settings_are_checked(pins, setting):
    with pytest.raises(HTTPError) as refused:
        pins.set_pwm(pins.find("buzzer"), setting, WHO)
    assert refused.value.status == 400
    assert pins.find("buzzer").wave.running is False


def test_safe_values_end_activity_and_are_audited(pins, manual_loop, caplog):
    caplog.set_level(logging.INFO, logger="httap.audit")
    led = pins.find("led")
    ended = []
    pins.pulse(led, 5, WHO, lambda interrupted, error: ended.append(interrupted))
    pins.apply_safe_values()
    manual_loop.run_soon()
    assert pins.backend.read(LED) == 0 and ended == [True]
    assert audit_lines(caplog)[-1] == "s=- - led 1 -> 0 (safe value)"


def test_the_app_api_is_audited_as_the_running_action(pins, caplog):
    caplog.set_level(logging.INFO, logger="httap.audit")
    pins.cause = WHO
    pins.write("led", True)
    pins.cause = None
    pins.write(17, 0)
    assert pins.state_of("led")["value"] == 0
    assert audit_lines(caplog) == [
        "s=7 10.0.0.2 led 0 -> 1 (POST /?gpio/led, app)",
        "s=- - led 1 -> 0 (app)",
    ]


def test_stopping_ends_pulses_at_once_and_close_releases(pins, manual_loop):
    led = pins.find("led")
    ended = []
    pins.pulse(led, 30, WHO, lambda interrupted, error: ended.append(interrupted))
    pins.end_pulses()
    assert ended == [False] and pins.backend.read(LED) == 0
    pins.set_pwm(pins.find("buzzer"), {"duty": 0.5}, WHO)
    pins.close()
    assert pins.find("buzzer").wave.running is False
    assert manual_loop.pending == 0


def test_each_change_says_what_made_it_when_and_whether_it_was_one(pins, manual_loop):
    changes = []
    pins.subscribe(changes.append)
    led, buzzer = pins.find("led"), pins.find("buzzer")
    pins.set(led, 1, WHO)
    pins.set(led, 1, WHO)  # a repeat
    pins.write("led", 0)  # the app
    manual_loop.advance(1)
    pins.pulse(led, 0.5, WHO, lambda interrupted, error: None)
    manual_loop.advance(1)
    pins.apply_safe_values()  # the led is at 0, its safe value, already: a repeat
    pins.set_pwm(buzzer, {"frequency": 10, "duty": 0.5}, WHO)
    pins.set_pwm(buzzer, {"duty": 0.5}, WHO)  # the same setting again
    assert [(c.pin.name, c.level, c.kind, c.repeat) for c in changes] == [
        ("led", 1, "write", False),
        ("led", 1, "write", True),
        ("led", 0, "app", False),
        ("led", 1, "pulse", False),
        ("led", 0, "pulse", False),
        ("led", 0, "safe", True),
        ("buzzer", None, "write", False),
        ("buzzer", None, "write", True),
    ]
    epoch = pins.backend.epoch  # the board's clock is the loop's: its history in epoch s
    rise, fall = changes[3:5]
    assert (rise.time - epoch, fall.time - epoch) == (pytest.approx(1), pytest.approx(1.5))
