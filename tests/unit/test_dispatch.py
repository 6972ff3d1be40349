"""The `/?` dispatch (httap/manager/__init__.py): the target parsed once, the table's
rows, the lease column, and `finish`, which every reply passes. No server, no socket."""

from __future__ import annotations

import logging

import pytest

from gpio import GpioError
from httap import http
from httap.manager import NO_CACHE
from httap.manager.room import ALL, WRITES, Answer
from httap.reply import Pending
from httap.session import Busy
from tests.helpers.domain import LED, ManualLoop, answer, build, request, session


@pytest.fixture
def manager():
    return build()


def test_the_table_lists_every_standard_resource_with_its_methods_and_lease(manager):
    assert [(row.resource, row.methods, row.lease) for row in manager.table] == [
        ("", "GET, HEAD", None),
        ("ping…", "GET, HEAD", None),
        ("stats", "GET, HEAD", None),
        ("loop", "GET, HEAD, POST", WRITES),
        ("gpio", "GET, HEAD, POST", WRITES),
        ("gpio/NAME", "GET, HEAD, POST, PUT", WRITES),
        ("serial/NAME", "GET, POST", ALL),
        ("events", "GET", None),
    ]


@pytest.mark.parametrize(
    ("target", "method", "allowed"),
    [
        ("/?", "POST", "GET, HEAD"),
        ("/?ping", "PUT", "GET, HEAD"),
        ("/?stats", "DELETE", "GET, HEAD"),
        ("/?loop", "PUT", "GET, HEAD, POST"),
        ("/?gpio", "PUT", "GET, HEAD, POST"),
        ("/?gpio/led", "DELETE", "GET, HEAD, POST, PUT"),
        ("/?gpio/led", "PATCH", "GET, HEAD, POST, PUT"),
    ],
)
def test_a_method_not_in_the_row_is_405_listing_the_rows_methods(manager, target, method, allowed):
    response = manager.handle(request(method, target))
    assert answer(response) == (
        405,
        {"error": "method-not-allowed", "message": f"{method} is not allowed here; use {allowed}"},
    )
    assert response.header("allow") == allowed


def test_the_target_is_parsed_once_into_path_and_params(manager):
    parsed = request("GET", "/?gpio/l%65d&wait=0&note=a+b%C3%A9&odd=%FF")
    assert answer(manager.handle(parsed))[0] == 200
    assert parsed.path == "gpio/led"
    assert parsed.params == {"wait": "0", "note": "a bé", "odd": "\ufffd"}


@pytest.mark.parametrize(
    ("target", "status", "code", "words"),
    [
        ("/?gpio/%FF", 400, "bad-path", "not valid UTF-8"),
        ("/?gpio/led&wait=1&wait=2", 400, "bad-param", 'the parameter "wait" is given twice'),
        ("/?nothing", 404, "not-found", "no such resource: /?nothing; GET /? lists the services"),
        ("/?/x", 404, "not-found", "no such resource: /?/x; GET /? lists the services"),
        ("/?loop/", 404, "not-found", "the loop is /?loop"),
        ("/?gpio/led/x", 404, "not-found", "pins are /?gpio/NAME"),
        ("/?serial", 404, "not-found", "no serial port ''; the ports are: none are configured"),
        ("/?gpio/nope", 404, "unknown-pin", "the declared pins are: button, buzzer, led"),
    ],
)
def test_what_no_row_answers(manager, target, status, code, words):
    status_, body = answer(manager.handle(request("GET", target)))
    assert (status_, body["error"]) == (status, code)
    assert words in body["message"]


def test_a_name_is_looked_up_before_the_method_is_checked(manager):
    assert answer(manager.handle(request("DELETE", "/?gpio/nope")))[0] == 404
    assert answer(manager.handle(request("DELETE", "/?gpio/led")))[0] == 405


@pytest.mark.parametrize(
    ("target", "key"),
    [("/?stats/x", "requests"), ("/?pingpong", "Remain"), ("/?gpio/", "pins"), ("/?", "ID")],
)
def test_what_a_row_takes_after_its_resource(manager, target, key):
    status, body = answer(manager.handle(request("GET", target)))
    assert status == 200 and key in body


def test_finish_gives_every_reply_the_session_and_no_cache_headers(manager):
    client = session(manager)
    response = manager.handle(request("GET", "/?gpio/led", session=client))
    assert response.headers == [
        ("Content-Type", "application/json"),
        *NO_CACHE,
        ("HTTaP-Session", str(client.id)),
    ]
    assert response.body == b'{"gpio":17,"mode":"out","value":0}'


@pytest.mark.parametrize(
    ("outcome", "status", "content_type", "body"),
    [
        (None, 204, None, b""),
        (b"\x00\xff", 200, "application/octet-stream", b"\x00\xff"),
        ([1, "two"], 200, "application/json", b'[1,"two"]'),
        (Answer(202, {"queued": 1}), 202, "application/json", b'{"queued":1}'),
        (Answer(204, None, (("Allow", "GET"),)), 204, None, b""),
    ],
)
def test_finish_turns_each_kind_of_outcome_into_a_reply(
    manager, outcome, status, content_type, body
):
    response = manager.finish(request("GET", "/?x"), outcome)
    assert (response.status, response.header("content-type"), response.body) == (
        status,
        content_type,
        body,
    )
    assert response.header("cache-control") == NO_CACHE[0][1]
    assert response.header("httap-session") is not None


def test_finish_keeps_an_actions_own_response_and_adds_only_what_it_lacks(manager):
    own = http.Response(201, [("Cache-Control", "max-age=5"), ("X-Mine", "1")], b"ok")
    client = session(manager)
    response = manager.finish(request("GET", "/?x", session=client), own)
    assert response is not own and own.headers == [("Cache-Control", "max-age=5"), ("X-Mine", "1")]
    assert response.headers == [
        ("Cache-Control", "max-age=5"),
        ("X-Mine", "1"),
        NO_CACHE[1],
        ("HTTaP-Session", str(client.id)),
    ]


def test_finish_answers_errors_in_one_place(manager, caplog):
    asked = request("POST", "/?gpio/led")
    refused = http.HTTPError(409, "mode-conflict", "no", (("Retry-After", "3"),))
    response = manager.finish(asked, refused)
    assert answer(response) == (409, {"error": "mode-conflict", "message": "no"})
    assert response.headers[-1] == ("Retry-After", "3")
    with caplog.at_level(logging.ERROR, logger="httap.manager"):
        board = answer(manager.finish(asked, GpioError("line 17 is busy")))
        bug = answer(manager.finish(asked, KeyError("x")))
        unsendable = answer(manager.finish(asked, {"a": {1, 2}}))
    assert board == (500, {"error": "gpio-error", "message": "line 17 is busy"})
    assert bug[0] == 500 and bug[1]["error"] == "handler-failed"
    assert unsendable[0] == 500 and unsendable[1]["error"] == "handler-failed"
    assert len(caplog.records) == 3 and all(r.name == "httap.manager" for r in caplog.records)


def test_a_busy_lease_is_503_with_retry_after(manager):
    holder = session(manager, "10.0.0.1")
    assert answer(manager.handle(request("POST", "/?gpio/led", 1, holder)))[0] == 200
    manager.loop.now = 4.0
    response = manager.finish(request("POST", "/?gpio/led"), Busy("10.0.0.1 (session 1)", 4.0, "x"))
    status, body = answer(response)
    assert status == 503 and body["error"] == "busy" and body["held_for"] == 4.0
    assert response.header("retry-after") == str(round(manager.config.timeouts.inactivity - 4))


def test_a_pending_is_finished_when_it_resolves(manager):
    pending = Pending()
    client = session(manager)
    assert manager.finish(request("GET", "/?x", session=client), pending) is pending
    pending.resolve({"done": True})
    response = pending.response()
    assert answer(response) == (200, {"done": True})
    assert response.header("httap-session") == str(client.id)


# -- the lease column ------------------------------------------------------------------


@pytest.fixture
def two(manager):
    """The manager, the lease's holder, and another client."""
    holder, other = session(manager, "10.0.0.1"), session(manager, "10.0.0.2")
    assert answer(manager.handle(request("POST", "/?gpio/led", 1, holder)))[0] == 200
    return manager, holder, other


@pytest.mark.parametrize(
    ("method", "target", "body", "what"),
    [
        ("POST", "/?gpio/led", 0, "writing pin led is refused; reading pins stays open"),
        ("PUT", "/?gpio/led", {"pulse": 1}, "writing pin led is refused"),
        ("POST", "/?gpio", {"led": 0}, "writing pins led is refused"),
        ("POST", "/?gpio/button", {"drive": 0}, "driving pin button is refused"),
        ("POST", "/?loop", {"mode": "spin"}, "setting the loop's mode is refused"),
    ],
)
def test_a_write_on_a_writes_row_needs_the_lease(two, method, target, body, what):
    manager, _, other = two
    status, reply = answer(manager.handle(request(method, target, body, other)))
    assert status == 503 and reply["error"] == "busy" and what in reply["message"]
    assert manager.pins.backend.read(LED) == 1 and manager.loop.mode == "sleep"


def test_reads_stay_open_and_checks_come_before_the_lease(two):
    manager, _, other = two
    assert answer(manager.handle(request("GET", "/?gpio/led", session=other)))[0] == 200
    assert answer(manager.handle(request("GET", "/?loop", session=other)))[0] == 200
    assert answer(manager.handle(request("POST", "/?gpio", {"nope": 1}, other)))[0] == 404
    assert answer(manager.handle(request("POST", "/?gpio/led", "on", other)))[0] == 400
    assert answer(manager.handle(request("POST", "/?gpio/button", 1, other)))[0] == 409


def test_an_action_other_than_get_needs_the_lease_before_it_runs(two):
    manager, holder, other = two
    calls = []
    manager.actions.register("car/go", methods=("GET", "POST"))(
        lambda asked: calls.append(asked.method) or {"went": asked.method}
    )
    assert answer(manager.handle(request("GET", "/?car/go", session=other))) == (
        200,
        {"went": "GET"},
    )
    assert answer(manager.handle(request("POST", "/?car/go", session=other)))[0] == 503
    assert answer(manager.handle(request("HEAD", "/?car/go", session=other)))[0] == 200
    assert answer(manager.handle(request("POST", "/?car/go", session=holder)))[0] == 200
    assert calls == ["GET", "HEAD", "POST"]
    refused = manager.handle(request("PUT", "/?car/go", session=holder))
    assert refused.status == 405 and refused.header("allow") == "GET, POST"


def test_the_holders_writes_and_the_app_are_audited_as_the_request(manager, caplog):
    caplog.set_level(logging.INFO, logger="httap.audit")
    client = session(manager, "10.0.0.9")
    manager.actions.register("lamp", methods=("POST",))(lambda asked: manager.pins.write("led", 1))
    assert manager.handle(request("POST", "/?lamp", session=client)).status == 204
    manager.pins.write("led", 0)  # outside any request: the server's own doing
    assert [r.getMessage() for r in caplog.records if r.name == "httap.audit"] == [
        f"s={client.id} 10.0.0.9 led 0 -> 1 (POST /?lamp, app)",
        "s=- - led 1 -> 0 (app)",
    ]


def test_the_manager_is_built_without_a_server_and_counts_its_requests():
    manual_loop = ManualLoop()
    manager = build(manual_loop, id="bench-7")
    for _ in range(3):
        manager.handle(request("GET", "/?gpio/led"))
    status, stats = answer(manager.handle(request("GET", "/?stats")))
    assert status == 200 and stats["requests"] == 4
    assert answer(manager.handle(request("GET", "/?")))[1]["ID"] == "bench-7"
