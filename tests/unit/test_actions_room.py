"""User actions (httap/manager/actions.py): registration and what an action returns."""

from __future__ import annotations

import pytest

from httap import http
from httap.reply import Pending
from tests.helpers.domain import answer, build, request


@pytest.fixture
def manager():
    return build()


@pytest.mark.parametrize(
    ("name", "methods", "words"),
    [
        (
            "gpio/x",
            "GET",
            "would shadow the standard vocabulary"
            " (app, events, files, gpio, loop, serial, stats, ping…)",
        ),
        ("pingpong", "GET", "would shadow"),
        ("/", "GET", "would shadow"),
        ("car", ("GET", "TRACE"), "methods must name one or more of GET, HEAD, POST"),
        ("car", (), "methods must name one or more"),
    ],
)
def test_a_bad_registration_is_a_value_error_naming_the_action(manager, name, methods, words):
    with pytest.raises(ValueError) as refused:
        manager.actions.register(name, methods)
    assert words in str(refused.value)


def test_a_name_is_registered_once_with_all_its_methods(manager):
    manager.actions.register("/car/", "post")(lambda asked: None)
    with pytest.raises(ValueError) as refused:
        manager.actions.register("car", "GET")(lambda asked: None)
    assert "is already registered, for POST" in str(refused.value)
    assert list(manager.actions.registered) == ["car"]


@pytest.mark.parametrize(
    ("value", "status", "body"),
    [
        ({"a": 1}, 200, b'{"a":1}'),
        (b"\x01", 200, b"\x01"),
        (None, 204, b""),
        (http.Response(418, [("X-Tea", "1")], b"tea"), 418, b"tea"),
    ],
)
def test_what_an_action_returns_is_the_reply_now_or_later(manager, value, status, body):
    manager.actions.register("now")(lambda asked: value)
    later = Pending()
    manager.actions.register("later")(lambda asked: later)
    assert manager.handle(request("GET", "/?now")).status == status
    pending = manager.handle(request("GET", "/?later"))
    assert pending is later
    later.resolve(value)
    response = later.response()
    assert (response.status, response.body) == (status, body)
    assert response.header("httap-session") is not None


def test_an_action_raising_is_a_500_and_an_http_error_its_own_status(manager):
    manager.actions.register("boom")(lambda asked: 1 / 0)

    def refuse(asked):
        raise http.HTTPError(422, "bad-note", "a note is A4")

    manager.actions.register("refuse")(refuse)
    assert answer(manager.handle(request("GET", "/?boom")))[1]["error"] == "handler-failed"
    assert answer(manager.handle(request("GET", "/?refuse"))) == (
        422,
        {"error": "bad-note", "message": "a note is A4"},
    )
