"""The `/?gpio` room's grammar (httap/manager/gpio.py): pin bodies, the batch and the
long-poll's parameters, on one manager built without a server."""

from __future__ import annotations

import pytest

from httap import http
from httap.manager.gpio import BAD_BATCH, BAD_BODY, LEVELS, command
from httap.manager.room import Change
from httap.reply import Pending
from httap.session import Session
from tests.helpers.domain import BUTTON, BUZZER, LED, answer, build, request


@pytest.fixture
def manager():
    return build()


@pytest.mark.parametrize(
    ("body", "parsed"),
    [
        (b"1", ("value", 1)),
        (b"0", ("value", 0)),
        (b"true", ("value", 1)),
        (b" false ", ("value", 0)),
        (b'{"value": 5}', ("value", 5)),  # the command checks the level (after the lease)
        (b'{"pulse": 0.2}', ("pulse", 0.2)),
        (b'{"pwm": {"duty": 0.5}}', ("pwm", {"duty": 0.5})),
        (b'{"drive": 0}', ("drive", 0)),
    ],
)
def test_a_pin_body_is_a_level_or_one_command(body, parsed):
    assert command(body) == parsed


@pytest.mark.parametrize(
    "body",
    [b"", b"7", b"1.0", b"null", b'"1"', b"abc", b"[1]", b"{}", b'{"value": 1, "pulse": 1}',
     b'{"speed": 1}', b"\xff", b"1" * 5000],
)  # fmt: skip
def test_any_other_body_is_400_naming_the_grammar(body):
    with pytest.raises(Exception) as refused:
        command(body)
    assert (refused.value.status, refused.value.code) == (400, "bad-value")
    assert refused.value.message == BAD_BODY


def test_a_write_is_a_change_made_only_once_the_lease_allows_it(manager):
    led = manager.pins.find("led")
    change = manager.gpio.pin(request("POST", "/?gpio/led", 1), led)
    assert isinstance(change, Change)
    assert change.refused == "writing pin led is refused; reading pins stays open"
    assert manager.pins.backend.read(LED) == 0  # nothing done yet
    assert change.make() == {"gpio": LED, "mode": "out", "value": 1, "safe": 0,
                             "holds": "until this client's last connection closes"}  # fmt: skip
    assert manager.pins.backend.read(LED) == 1


@pytest.mark.parametrize(
    ("exclusive", "holds"),
    [("connection", "until this connection closes"), ("off", "until the server stops")],
)
def test_a_safe_pins_reply_says_how_long_the_write_holds(exclusive, holds):
    manager = build(session__exclusive=exclusive)
    status, body = answer(manager.handle(request("PUT", "/?gpio/led", {"value": 1})))
    assert status == 200 and (body["safe"], body["holds"]) == (0, holds)


@pytest.mark.parametrize(
    ("target", "body", "status", "code"),
    [
        ("/?gpio/led", {"value": 2}, 400, "bad-value"),
        ("/?gpio/led", {"pulse": 0}, 400, "bad-value"),
        ("/?gpio/led", {"pulse": 61}, 400, "bad-value"),
        ("/?gpio/led", {"pwm": {"duty": 0.5}}, 409, "mode-conflict"),
        ("/?gpio/buzzer", {"pulse": 0.1}, 409, "mode-conflict"),
        ("/?gpio/buzzer", {"pwm": {"duty": 1.5}}, 400, "bad-value"),
        ("/?gpio/button", 1, 409, "mode-conflict"),
        ("/?gpio/led", {"drive": 1}, 409, "mode-conflict"),
    ],
)
def test_a_bad_command_is_refused_and_changes_nothing(manager, target, body, status, code):
    before = [manager.pins.backend.history(number) for number in (LED, BUTTON, BUZZER)]
    got, reply = answer(manager.handle(request("POST", target, body)))
    assert (got, reply["error"]) == (status, code)
    assert [manager.pins.backend.history(number) for number in (LED, BUTTON, BUZZER)] == before


def test_drive_sets_a_simulated_input_and_is_sim_only(manager):
    assert answer(manager.handle(request("POST", "/?gpio/button", {"drive": 0})))[1]["value"] == 0
    manager.pins.backend.simulated = False  # a real board: inputs follow their wires
    status, body = answer(manager.handle(request("POST", "/?gpio/button", {"drive": 1})))
    assert (status, body["error"]) == (409, "sim-only")
    assert "only for the simulated board" in body["message"]


def test_a_batch_is_checked_whole_then_applied_in_order(manager):
    status, body = answer(
        manager.handle(request("POST", "/?gpio", {"led": 1, "buzzer": {"value": 1}}))
    )
    assert status == 200 and list(body["pins"]) == ["led", "buzzer"]
    assert body["pins"]["led"]["value"] == 1 and body["pins"]["buzzer"]["value"] == 1


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        ({"led": 0, "buzzer": 7}, 400, "bad-value", "pin buzzer: a value is 0, 1"),
        ({"led": 0, "button": 1}, 409, "mode-conflict", "pin button is an input"),
        ({"led": 0, "nope": 1}, 404, "unknown-pin", "no pin is named"),
        ({"led": 0, "22": 1}, 403, "not-declared", "(GPIO 22) is not declared"),
        ({}, 400, "bad-value", BAD_BATCH),
        ([["led", 0]], 400, "bad-value", BAD_BATCH),
        (b"led=0", 400, "bad-value", BAD_BATCH),
    ],
)
def test_a_bad_batch_applies_nothing(manager, body, status, code, words):
    manager.pins.write("led", 1)
    got, reply = answer(manager.handle(request("POST", "/?gpio", body)))
    assert (got, reply["error"]) == (status, code) and words in reply["message"]
    assert manager.pins.backend.read(LED) == 1


def test_get_gpio_lists_every_pin_in_declared_order(manager):
    status, body = answer(manager.handle(request("GET", "/?gpio")))
    assert status == 200 and list(body["pins"]) == ["led", "button", "buzzer"]
    assert body["pins"]["buzzer"]["pwm"] == {
        "frequency": 100.0,
        "duty": 0.0,
        "running": False,
        "kind": "soft",
    }


@pytest.mark.parametrize(
    "params",
    ["wait=-1", "wait=3601", "wait=1e3", "wait=nan", "wait=", "wait=5&value=2", "wait=5&value=on"],
)
def test_long_poll_parameters_are_checked(manager, params):
    status, body = answer(manager.handle(request("GET", f"/?gpio/button&{params}")))
    assert (status, body["error"]) == (400, "bad-value")


def test_a_long_poll_answers_at_once_when_the_level_already_differs_or_wait_is_0(manager):
    assert (
        answer(manager.handle(request("GET", "/?gpio/button&wait=5&value=0")))[1]["timeout"]
        is False
    )
    assert answer(manager.handle(request("GET", "/?gpio/button&wait=0")))[1]["timeout"] is True


def test_a_long_poll_waits_then_answers_with_the_state_when_it_ends(manager):
    manual_loop = manager.loop
    waiting = manager.handle(request("GET", "/?gpio/button&wait=5"))
    assert isinstance(waiting, Pending) and not waiting.done
    manager.handle(request("POST", "/?gpio/button", {"drive": 0}))
    assert not waiting.done  # answered in the loop's next step, not inside the write
    manual_loop.run_soon()
    assert answer(waiting.response()) == (
        200,
        {"gpio": BUTTON, "mode": "in", "value": 0, "timeout": False},
    )
    timed = manager.handle(request("GET", "/?gpio/button&wait=1.5"))
    manual_loop.advance(1.5)
    assert answer(timed.response())[1]["timeout"] is True


def test_a_pulse_answers_at_its_end_and_a_cut_pulse_says_so(manager):
    manual_loop = manager.loop
    pulse = manager.handle(request("POST", "/?gpio/led", {"pulse": 0.5}))
    assert isinstance(pulse, Pending) and manager.pins.backend.read(LED) == 1
    manual_loop.advance(0.5)
    assert answer(pulse.response())[1]["value"] == 0
    cut = manager.handle(request("POST", "/?gpio/led", {"pulse": 10}))
    manager.handle(request("POST", "/?gpio/led", 1))
    manual_loop.run_soon()
    status, body = answer(cut.response())
    assert status == 200 and body["interrupted"] is True and body["value"] == 1


def test_a_board_failing_under_a_waiting_reply_answers_500():
    manager = build(edges=False)  # its inputs are sampled, as RPi.GPIO's are
    waiting = manager.handle(request("GET", "/?gpio/button&wait=5"))
    del manager.pins.backend.pins[BUTTON]  # the line is gone
    manager.loop.advance(0.01)  # the sampler's read fails
    status, body = answer(waiting.response())
    assert (status, body["error"]) == (500, "gpio-error")
    assert f"GPIO {BUTTON} has not been set up" in body["message"]


@pytest.mark.parametrize("body", sorted(LEVELS))
def test_a_level_read_by_its_bytes_is_what_the_json_decoder_reads(body):
    decoded = http.parse_json(body)  # what every other body goes through
    assert command(body) == ("value", int(decoded)) == ("value", LEVELS[body])


def test_a_read_answers_the_level_read_now_its_json_kept_per_state(manager):
    session = Session(("127.0.0.1", 40000), 0.0)
    first = manager.handle(request("GET", "/?gpio/led", session=session))
    manager.pins.backend.write(LED, 1)  # behind the server's back: the board is read
    second = manager.handle(request("GET", "/?gpio/led", session=session))
    manager.pins.backend.write(LED, 0)
    third = manager.handle(request("GET", "/?gpio/led", session=session))
    assert answer(first) == answer(third) == (200, {"gpio": LED, "mode": "out", "value": 0})
    assert answer(second) == (200, {"gpio": LED, "mode": "out", "value": 1})
    assert third.body is first.body  # encoded once, for the state value 0


def test_every_json_reply_carries_its_own_session_and_no_cache(manager):
    one, two = Session(("127.0.0.1", 40000), 0.0), Session(("127.0.0.1", 40001), 0.0)
    for session in (one, two, one):
        response = manager.handle(request("GET", "/?gpio/led", session=session))
        head = response.head_bytes().decode()
        assert f"HTTaP-Session: {session.id}\r\n" in head
        assert "Cache-Control: no-cache, no-store, must-revalidate\r\n" in head
        assert head.endswith(f"Content-Length: {len(response.body)}\r\n")
        assert response.head_bytes() == http.encode_head(200, response.headers, len(response.body))
