"""User actions over real sockets: an app file's `setup(server)` registers them, and they
answer under `/?NAME` with the same rules as the standard vocabulary (docs/protocol.md).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT, wait_for
from tests.helpers.client import Client, Reply
from tests.helpers.dynamic import call, encode

LAMP = 27
PINS = {
    "led": {"gpio": 17, "mode": "out", "safe": 0},
    "lamp": {"gpio": LAMP, "mode": "out"},
}

APP = """
from httap import http
from httap import Pending

LOG = []
WAITING = []
CONSTANT = http.Response(200, [("Content-Type", "text/plain")], b"same every time")


def setup(server):
    @server.action("car/forward", methods=("POST",))
    def forward(request):
        return {"moving": "forward", "speed": request.params.get("speed")}

    @server.action("echo", methods=("get", "POST", "PUT"))
    def echo(request):
        return {
            "method": request.method,
            "path": request.path,
            "params": request.params,
            "body": request.body.decode("latin-1"),
            "session": request.session.id,
            "client": list(request.client),
            "headers": request.headers,
        }

    @server.action("parse", methods=("POST",))
    def parse(request):
        return {"got": request.json()}

    @server.action("object", methods="POST")  # one method may be named alone
    def an_object(request):
        return {"got": request.json_object()}

    @server.action("list")
    def a_list(request):
        return [1, "two", None]

    @server.action("bytes")
    def a_bytes(request):
        return b"\\x00\\x01raw\\xff"

    @server.action("response")
    def a_response(request):
        return http.Response(
            201, [("Content-Type", "text/plain"), ("X-Made-By", "app")], b"made"
        )

    @server.action("cached")
    def cached(request):
        return http.Response(
            200, [("Content-Type", "text/plain"), ("Cache-Control", "max-age=60")], b"c"
        )

    @server.action("constant")
    def constant(request):
        return CONSTANT

    @server.action("nothing", methods=("POST",))
    def nothing(request):
        return None

    @server.action("teapot")
    def teapot(request):
        raise http.HTTPError(418, "teapot", "I am a teapot: brew with POST /?coffee")

    @server.action("unjsonable")
    def unjsonable(request):
        return {"a set": {1, 2}}

    @server.action("later", methods=("POST",))
    def later(request):
        pending = Pending()
        started = server.loop.clock()
        server.call_later(
            0.2, lambda: pending.resolve({"late": True, "after": server.loop.clock() - started})
        )
        return pending

    @server.action("later/bad")
    def later_bad(request):
        pending = Pending()
        server.call_later(0.05, lambda: pending.resolve({"a set": {1}}))
        return pending

    @server.action("hold")
    def hold(request):
        pending = Pending()
        pending.on_cancel(lambda: LOG.append(("cancelled", request.session.id)))
        return pending

    @server.action("watch-close")
    def watch_close(request):
        session = request.session

        def closed():
            LOG.append(("closed", session.id))
            server.gpio.write(27, 1)

        session.on_close(closed)
        return {"session": session.id}

    @server.action("log")
    def log(request):
        return LOG

    @server.action("wait-event")
    def wait_event(request):
        pending = Pending()
        WAITING.append(pending)
        return pending

    @server.action("fire", methods=("POST",))
    def fire(request):
        while WAITING:
            WAITING.pop().resolve({"fired": True})
        server.gpio.write(27, 1)
        return {"lamp": server.gpio.read(27)}

    @server.action("ready")
    def ready(request):
        pending = Pending()
        pending.resolve({"ready": True})  # resolved before it is even returned
        return pending

    @server.action("own-cors")
    def own_cors(request):
        return http.Response(200, [("Access-Control-Allow-Origin", "http://own.example")])

    @server.action("unsendable/header")
    def unsendable_header(request):
        return http.Response(200, [("X-Note", "two\\r\\nlines")], b"x")

    @server.action("unsendable/body")
    def unsendable_body(request):
        return http.Response(200, [("Content-Type", "text/plain")], "text, not bytes")
"""


# -- helpers ---------------------------------------------------------------------------


def check_dynamic(reply: Reply, content_type: str | None = "application/json") -> None:
    assert reply.headers["cache-control"] == "no-cache, no-store, must-revalidate"
    assert reply.headers["expires"] == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert reply.headers["httap-session"].isdigit()
    if content_type:
        assert reply.headers["content-type"] == content_type
    if reply.status not in (204, 304) and reply.body:  # HEAD replies have no body
        assert int(reply.headers["content-length"]) == len(reply.body)


@pytest.fixture
def app(tmp_path):
    path = tmp_path / "car.py"
    path.write_text(APP)
    return str(path)


@pytest.fixture
def running(make_server, app):
    return make_server(app=app, gpio__backend="sim", gpio__pins=PINS)


def app_log(running, connect) -> list:
    return call(connect(running), "GET", "/?log").json()


# -- requests and replies --------------------------------------------------------------


def test_post_action_answers_json(running, connect):
    client = connect(running)
    reply = call(client, "POST", "/?car/forward&speed=3")
    assert reply.status == 200
    check_dynamic(reply)
    assert reply.json() == {"moving": "forward", "speed": "3"}
    assert "car/forward" in call(client, "GET", "/?").json()["Services"]


def test_wrong_method_is_405_with_allow(running, connect):
    client = connect(running)
    for method in ("GET", "HEAD", "PUT", "DELETE"):
        reply = call(client, method, "/?car/forward")
        assert reply.status == 405, method
        assert reply.headers["allow"] == "POST"
        check_dynamic(reply)
        if method != "HEAD":
            assert reply.json()["error"] == "method-not-allowed"
            assert "use POST" in reply.json()["message"]
    assert call(client, "POST", "/?car/forward").status == 200  # the same connection


def test_head_on_a_get_action(running, connect):
    client = connect(running)
    full = call(client, "GET", "/?list")
    head = call(client, "HEAD", "/?list")
    assert head.status == 200 and head.body == b""
    assert head.headers["content-length"] == full.headers["content-length"]


def test_the_action_sees_the_request(running, connect):
    client = connect(running)
    session = int(call(client, "GET", "/?").headers["httap-session"])
    reply = call(
        client,
        "PUT",
        "/?echo&a=1&b=two%20words&empty",
        '{"x": 1}',
        "X-Token: abc\r\nContent-Type: application/json\r\n",
    )
    assert reply.status == 200
    seen = reply.json()
    assert seen["method"] == "PUT"
    assert seen["path"] == "echo"
    assert seen["params"] == {"a": "1", "b": "two words", "empty": ""}
    assert seen["body"] == '{"x": 1}'
    assert seen["session"] == session
    assert seen["client"] == list(client.sock.getsockname())
    assert seen["headers"]["x-token"] == "abc"
    assert seen["headers"]["content-type"] == "application/json"
    assert call(client, "GET", "/?%65cho").json()["path"] == "echo"  # percent-decoded


def test_json_of_a_bad_body_is_a_clear_400(running, connect):
    client = connect(running)
    assert call(client, "POST", "/?parse", '{"speed": 3}').json() == {"got": {"speed": 3}}
    for body in ("{speed: 3}", "", "\xff"):
        reply = call(client, "POST", "/?parse", body)
        assert reply.status == 400, body
        check_dynamic(reply)
        assert reply.json()["error"] == "bad-json"
        assert "not valid JSON" in reply.json()["message"]
    assert call(client, "POST", "/?parse", "[1]").json() == {"got": [1]}


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("[" * 5000 + "]" * 5000, "nest too deep"),
        ('{"a": ' * 5000 + "1" + "}" * 5000, "nest too deep"),
        ("NaN", "NaN is not a JSON number"),
        ('{"speed": Infinity}', "Infinity is not a JSON number"),
        ("-Infinity", "Infinity is not a JSON number"),
        ("9" * 5000, "more than 4300 digits"),
        ("\ufeff1", "not valid JSON"),
        ("1 2", "not valid JSON"),
    ],
)
def test_json_that_python_would_mishandle_is_a_clear_400(running, connect, body, why):
    """Deep nesting raised RecursionError past the handler (a 500); NaN and Infinity
    are not JSON (RFC 8259 section 6), though Python reads them."""
    client = connect(running)
    for action in ("parse", "object"):
        reply = call(client, "POST", f"/?{action}", body)
        assert reply.status == 400, (action, reply.body[:200])
        check_dynamic(reply)
        assert reply.json()["error"] == "bad-json"
        assert why in reply.json()["message"]
    assert call(client, "POST", "/?parse", "[1]").json() == {"got": [1]}
    assert call(connect(running), "GET", "/?list").status == 200


def test_json_object_is_a_dict_or_a_clear_400(running, connect):
    client = connect(running)
    assert call(client, "POST", "/?object", '{"speed": 3}').json() == {"got": {"speed": 3}}
    assert call(client, "POST", "/?object", "").json() == {"got": {}}  # nothing given
    for body, kind in (
        ("[1]", "an array"),
        ("null", "null"),
        ('"x"', "a string"),
        ("1", "a number"),
    ):
        reply = call(client, "POST", "/?object", body)
        assert reply.status == 400, body
        check_dynamic(reply)
        assert reply.json()["error"] == "bad-json"
        assert (
            f'must be a JSON object such as {{"speed": 1}}, not {kind}' in reply.json()["message"]
        )
    assert call(client, "GET", "/?list").status == 200


def readme_action_app() -> str:
    """The app of README.md's "Your own actions", as written there."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Your own actions", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("body", ["[1]", "", "null", '"fast"', "7", "[" * 5000, "NaN"])
def test_the_readme_action_pattern_never_answers_500(make_server, connect, tmp_path, body):
    """`request.json().get(...)` answered 500 for a body of [1]: the README's pattern
    must turn every wrong body into a 400, or take an empty one as all defaults."""
    path = tmp_path / "readme_app.py"
    path.write_text(readme_action_app())
    running = make_server(
        app=str(path), gpio__backend="sim", gpio__pins={"motor": {"gpio": 18, "mode": "out"}}
    )
    client = connect(running)
    reply = call(client, "POST", "/?car/forward", body)
    if body == "":
        assert reply.status == 200 and reply.json() == {"moving": True, "speed": 1}
    else:
        assert reply.status == 400, (body, reply.body)
        check_dynamic(reply)
        assert reply.json()["error"] == "bad-json"
    assert call(client, "POST", "/?car/forward", '{"speed": 2}').json()["speed"] == 2
    assert call(connect(running), "GET", "/?gpio/motor").json()["value"] == 1


def test_an_http_error_from_the_action(running, connect):
    client = connect(running)
    reply = call(client, "GET", "/?teapot")
    assert reply.status == 418
    check_dynamic(reply)
    assert reply.json() == {"error": "teapot", "message": "I am a teapot: brew with POST /?coffee"}
    assert call(client, "GET", "/?list").status == 200


def test_a_write_action_needs_the_lease(running, connect):
    holder = connect(running, "127.0.0.1")
    other = connect(running, "127.0.0.2")
    assert call(holder, "POST", "/?car/forward").status == 200
    busy = call(other, "POST", "/?car/forward")
    assert busy.status == 503
    check_dynamic(busy)
    assert int(busy.headers["retry-after"]) >= 1
    assert "127.0.0.1" in busy.json()["holder"]
    assert call(other, "GET", "/?list").status == 200  # a GET action is a read: open to all
    holder.close()
    assert wait_for(lambda: call(other, "POST", "/?car/forward").status == 200)


# -- what an action returns ------------------------------------------------------------


def test_returns_a_list_as_json(running, connect):
    reply = call(connect(running), "GET", "/?list")
    assert reply.status == 200
    check_dynamic(reply)
    assert reply.json() == [1, "two", None]


def test_returns_bytes_as_octet_stream(running, connect):
    reply = call(connect(running), "GET", "/?bytes")
    assert reply.status == 200
    check_dynamic(reply, "application/octet-stream")
    assert reply.body == b"\x00\x01raw\xff"


def test_returns_a_response_as_is_with_the_session(running, connect):
    client = connect(running)
    reply = call(client, "GET", "/?response")
    assert reply.status == 201
    check_dynamic(reply, "text/plain")
    assert reply.headers["x-made-by"] == "app"
    assert reply.body == b"made"
    cached = call(client, "GET", "/?cached")
    assert cached.headers["cache-control"] == "max-age=60"  # the app's own choice is kept
    assert cached.raw_head.lower().count(b"cache-control") == 1


def test_a_reused_response_carries_each_clients_session(running, connect):
    sessions = set()
    for _ in range(3):
        client = connect(running)
        own = call(client, "GET", "/?").headers["httap-session"]
        reply = call(client, "GET", "/?constant")
        assert reply.body == b"same every time"
        assert reply.headers["httap-session"] == own
        assert reply.raw_head.lower().count(b"httap-session") == 1
        sessions.add(own)
    assert len(sessions) == 3


def test_returns_none_as_204(running, connect):
    client = connect(running)
    reply = call(client, "POST", "/?nothing")
    assert reply.status == 204
    check_dynamic(reply, content_type=None)
    assert "content-length" not in reply.headers
    assert call(client, "GET", "/?list").status == 200  # framing intact


def test_an_unserialisable_return_is_a_json_500(running, connect):
    client = connect(running)
    for target in ("/?unjsonable", "/?later/bad"):
        reply = call(client, "GET", target)
        assert reply.status == 500, target
        check_dynamic(reply)
        assert reply.json()["error"] == "handler-failed"
        assert call(client, "GET", "/?list").status == 200


def test_a_reply_that_cannot_be_sent_is_a_500_and_the_connection_goes_on(running, connect):
    client = connect(running)
    for target in ("/?unsendable/header", "/?unsendable/body"):
        reply = call(client, "GET", target)
        assert reply.status == 500, target
        assert reply.body == b"internal server error: a reply that cannot be sent as it is\n"
        assert call(client, "GET", "/?list").status == 200, target  # framing intact


# -- pending replies -------------------------------------------------------------------


def test_pending_reply_arrives_later_and_holds_back_the_next(running, connect):
    client = connect(running)
    began = time.monotonic()
    client.send(encode("POST", "/?later") + encode("GET", "/?list"))
    first = client.read()
    arrived = time.monotonic() - began
    second = client.read()
    assert first.status == 200
    check_dynamic(first)
    assert first.json()["late"] is True
    assert 0.18 <= arrived <= 1.5
    assert first.json()["after"] >= 0.18
    assert second.json() == [1, "two", None]


def test_pending_reply_does_not_hold_back_other_connections(running, connect):
    waiting, other = connect(running), connect(running)
    waiting.send(encode("GET", "/?hold"))
    time.sleep(0.1)
    began = time.monotonic()
    for _ in range(5):
        assert call(other, "GET", "/?list").status == 200
    assert time.monotonic() - began < 0.5


def test_a_closed_connection_cancels_its_pending_reply(running, connect):
    client = connect(running)
    session = int(call(client, "GET", "/?").headers["httap-session"])
    client.send(encode("GET", "/?hold"))
    time.sleep(0.1)
    client.close()
    assert wait_for(lambda: ["cancelled", session] in app_log(running, connect))


def test_pending_reply_with_cors(make_server, app, connect):
    running = make_server(app=app, gpio__backend="sim", cors__origins=["http://app.example"])
    reply = call(connect(running), "POST", "/?later", headers="Origin: http://app.example\r\n")
    assert reply.status == 200
    assert reply.headers["access-control-allow-origin"] == "http://app.example"
    assert "HTTaP-Session" in reply.headers["access-control-expose-headers"]


def test_an_actions_own_cors_header_is_kept_alone(make_server, app, connect):
    running = make_server(app=app, gpio__backend="sim", cors__origins=["http://app.example"])
    reply = call(connect(running), "GET", "/?own-cors", headers="Origin: http://app.example\r\n")
    assert reply.status == 200
    assert reply.raw_head.count(b"Access-Control-Allow-Origin") == 1
    assert reply.headers["access-control-allow-origin"] == "http://own.example"
    assert b"\r\nVary: Origin" in reply.raw_head


def test_requests_behind_a_pending_reply_run_after_the_resolving_request(running, connect):
    """docs/protocol.md: each request's hardware effects are complete before the next request on
    any connection starts, even when a handler resolves another connection's pending reply."""
    waiter, firer = connect(running), connect(running)
    waiter.send(encode("GET", "/?wait-event") + encode("POST", "/?gpio/lamp", "0"))
    time.sleep(0.1)
    assert call(firer, "POST", "/?fire").json() == {"lamp": 1}
    assert waiter.read().json() == {"fired": True}
    assert waiter.read().json()["value"] == 0
    lamp = running.call(lambda: running.server.gpio.history(LAMP))
    assert [value for _, value in lamp] == [0, 1, 0]  # fire's write, then the queued one


def test_a_pending_resolved_at_once_is_answered(running, connect):
    reply = call(connect(running), "GET", "/?ready")
    assert reply.status == 200
    assert reply.json() == {"ready": True}


# -- sessions --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["close", "reset"])
def test_on_close_runs_when_the_connection_ends(running, connect, how):
    client = connect(running)
    session = call(client, "GET", "/?watch-close").json()["session"]
    assert running.call(lambda: running.server.gpio.read(LAMP)) == 0
    if how == "reset":
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    client.close()
    assert wait_for(lambda: running.call(lambda: running.server.gpio.read(LAMP)) == 1)
    assert ["closed", session] in app_log(running, connect)


def test_on_close_runs_on_inactivity(make_server, app, connect):
    running = make_server(app=app, gpio__backend="sim", gpio__pins=PINS, timeouts__inactivity=3)
    client = connect(running)
    call(client, "GET", "/?watch-close")
    assert not wait_for(lambda: running.call(lambda: running.server.gpio.read(LAMP)), 2)
    assert wait_for(lambda: running.call(lambda: running.server.gpio.read(LAMP)), 3)


# -- registration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["gpio", "gpio/x", "ping", "ping42", "stats", "stats/more", "serial/x", "loop", "", "/"],
)
def test_shadowing_the_vocabulary_is_refused(running, name):
    def register():
        try:
            running.server.action(name, methods=("POST",))(lambda request: {})
        except ValueError as err:
            return str(err)
        return None

    message = running.call(register)
    assert message is not None and "shadow" in message
    assert running.call(lambda: name.strip("/") not in running.server.manager.actions.registered)


def register_in_loop(running, name: str, methods) -> str | None:
    """Register an action in the loop's thread; the ValueError's message, or None."""

    def register():
        try:
            running.server.action(name, methods=methods)(lambda request: {"second": True})
        except ValueError as err:
            return str(err)
        return None

    return running.call(register)


@pytest.mark.parametrize("methods", [("GET",), ("POST",), "post", ("PUT", "GET")])
def test_the_same_name_twice_is_an_error_naming_the_action(running, connect, methods):
    """`car/forward` (POST) registered again, for GET or for POST, silently replaced
    the first one."""
    message = register_in_loop(running, "car/forward", methods)
    assert message is not None
    assert "'car/forward' is already registered, for POST" in message
    assert 'methods=("GET", "POST")' in message
    client = connect(running)
    assert call(client, "POST", "/?car/forward").json()["moving"] == "forward"  # the first
    assert call(client, "GET", "/?car/forward").status == 405
    assert register_in_loop(running, "/car/forward/", ("PUT",)) is not None  # same name


@pytest.mark.parametrize(("methods", "shown"), [((), "()"), (("FETCH",), "FETCH"), ("", "''")])
def test_methods_that_no_request_has_are_an_error(running, methods, shown):
    message = register_in_loop(running, "car/odd", methods)
    assert message is not None and "'car/odd'" in message, message
    assert "GET, HEAD, POST, PUT, DELETE, PATCH" in message and shown in message
    assert running.call(lambda: "car/odd" not in running.server.manager.actions.registered)


def test_one_action_answers_each_of_its_methods(running, connect):
    client = connect(running)
    assert call(client, "POST", "/?object", "{}").status == 200  # methods="POST"
    assert call(client, "GET", "/?object").headers["allow"] == "POST"
    for method in ("GET", "POST", "PUT"):  # echo: methods=("get", "POST", "PUT")
        assert call(client, method, "/?echo").json()["method"] == method


def test_registering_from_the_test_thread_is_served(running, connect):
    running.call(lambda: running.server.action("late/added", methods=("POST",))(lambda r: [r.path]))
    assert call(connect(running), "POST", "/?late/added").json() == ["late/added"]


# -- app loading errors ----------------------------------------------------------------


def start_cli(app: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "httap",
            "serve",
            "--listen",
            "http://127.0.0.1:0",
            "--gpio",
            "sim",
            "--app",
            app,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )


@pytest.mark.parametrize(
    ("source", "line", "words"),
    [
        ("def setup(server):\n    x = (\n", 2, ["SyntaxError"]),
        (
            "import os\n\ndef setup(server):\n    raise RuntimeError('no motor')\n",
            4,
            ["RuntimeError", "no motor"],
        ),
        ("X = 1\n", None, ["setup(server)"]),
        ("import no_such_module_here\n", 1, ["no_such_module_here"]),
        ('def setup(server):\n    server.action("gpio/x")(print)\n', 2, ["shadow"]),
        (
            "def setup(server):\n"
            '    @server.action("car/drive")\n'
            "    def look(request):\n"
            "        return {}\n"
            '    @server.action("car/drive", methods=("POST",))\n'
            "    def drive(request):\n"
            "        return {}\n",
            (5, 6),  # the decorator's line (Python 3.11+), or its function's before
            ["'car/drive' is already registered, for GET", "methods="],
        ),
    ],
    ids=["syntax", "setup-raises", "no-setup", "import", "shadowing", "twice"],
)
def test_app_errors_are_one_clear_line(tmp_path, source, line, words):
    path = tmp_path / "broken_app.py"
    path.write_text(source)
    result = start_cli(str(path))
    assert result.returncode != 0
    assert "listening" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    (message,) = lines
    assert "Traceback" not in message
    assert str(path.resolve()) in message
    if line is not None:
        lines_told = line if isinstance(line, tuple) else (line,)
        assert any(f"line {one}:" in message for one in lines_told), message
    for word in words:
        assert word in message


def test_a_good_app_starts_from_the_cli(spawn, app):
    process = spawn("serve", "--listen", "http://127.0.0.1:0", "--gpio", "sim", "--app", app)
    sock = socket.create_connection((process.host, process.port), timeout=5)
    client = Client(sock)
    try:
        reply = call(client, "POST", "/?car/forward")
        assert reply.status == 200 and reply.json()["moving"] == "forward"
    finally:
        client.close()


# -- the pin API for applications ----------------------------------------------------------

PIN_APP = """
def setup(server):
    @server.action("pins/set", methods=("POST",))
    def set_pin(request):
        command = request.json()
        server.write(command["name"], command["value"])
        return server.state(command["name"])

    @server.action("pins/wave", methods=("POST",))
    def wave(request):
        server.pwm("buzzer", **request.json())
        return server.state("buzzer")

    @server.action("pins/read")
    def read(request):
        pin = server.pin(request.params["name"])
        return {"gpio": pin.gpio, "value": server.read(pin.name)}
"""

PIN_APP_PINS = {
    **PINS,
    "button": {"gpio": 4, "mode": "in", "pull": "up"},
    "buzzer": {"gpio": 18, "mode": "pwm"},
}


@pytest.fixture
def pin_app(make_server, tmp_path):
    path = tmp_path / "pins.py"
    path.write_text(PIN_APP)
    return make_server(app=str(path), gpio__backend="sim", gpio__pins=PIN_APP_PINS)


def test_an_app_write_goes_through_the_manager_and_wakes_long_polls(pin_app, connect):
    waiter = connect(pin_app)
    waiter.send(encode("GET", "/?gpio/lamp&wait=5&value=0"))
    time.sleep(0.1)
    reply = call(connect(pin_app), "POST", "/?pins/set", '{"name": "lamp", "value": true}')
    assert reply.status == 200 and reply.json()["value"] == 1
    woken = waiter.read().json()
    assert woken["value"] == 1 and woken["timeout"] is False
    assert pin_app.call(lambda: pin_app.server.gpio.read(LAMP)) == 1


def test_app_pin_mistakes_become_the_fitting_errors(pin_app, connect):
    client = connect(pin_app)
    assert call(client, "POST", "/?pins/set", '{"name": "button", "value": 1}').status == 409
    unknown = call(client, "POST", "/?pins/set", '{"name": "nope", "value": 1}')
    assert unknown.status == 404 and unknown.json()["error"] == "unknown-pin"
    assert "button, buzzer, lamp, led" in unknown.json()["message"]
    undeclared = call(client, "POST", "/?pins/set", '{"name": 22, "value": 1}')
    assert undeclared.status == 403 and undeclared.json()["error"] == "not-declared"
    assert call(client, "GET", "/?pins/read&name=nope").status == 404
    assert call(client, "POST", "/?pins/set", '{"name": "lamp", "value": 5}').status == 400
    assert call(client, "POST", "/?pins/wave", '{"duty": 2}').status == 400
    assert call(client, "POST", "/?pins/set", '{"name": "lamp", "value": 0}').status == 200


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ('{"frequency": 1e-11}', "pwm frequency is a frequency in Hz from 0.01 to 10000"),
        ('{"frequency": 20000}', "from 0.01 to 10000"),
        ('{"frequency": 1e400}', "from 0.01 to 10000"),
        ('{"frequency": true}', "from 0.01 to 10000"),
        ('{"duty": -0.5}', "pwm duty is a duty cycle from 0 to 1"),
        ('{"duty": "half"}', "from 0 to 1"),
        ('{"duty": ' + "1" * 4000 + "}", "from 0 to 1"),
    ],
)
def test_app_pwm_numbers_are_range_checked_where_they_enter(pin_app, connect, setting, words):
    """`server.pwm` takes numbers from the app: the same ranges as requests and web.json5."""
    client = connect(pin_app)
    reply = call(client, "POST", "/?pins/wave", setting)
    assert reply.status == 400, reply.body
    assert reply.json()["error"] == "bad-value" and words in reply.json()["message"]
    assert call(client, "GET", "/?gpio/buzzer").json()["pwm"]["running"] is False
    assert call(connect(pin_app), "GET", "/?pins/read&name=button").status == 200


def test_app_pwm_read_and_pin(pin_app, connect):
    client = connect(pin_app)
    state = call(client, "POST", "/?pins/wave", '{"frequency": 50, "duty": 0.5}').json()
    assert state["pwm"] == {"frequency": 50.0, "duty": 0.5, "running": True, "kind": "soft"}
    assert call(client, "GET", "/?pins/read&name=button").json() == {"gpio": 4, "value": 1}
    assert call(client, "GET", "/?pins/read&name=17").json() == {"gpio": 17, "value": 0}
