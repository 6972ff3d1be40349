"""The campaign (issue 11, "A campaign, not a list"): hypothesis builds requests from the
`/?` vocabulary's own pieces, and web.json5 files from the schema's own keys, and throws
them at a real server process and at the real config loader and `httap check`.

After every request, on a server running as its own process with a pty as its serial
device and a small app's actions:
- the status is not 500, and is one the contract names;
- the reply is well-formed: h11 parses it, it states its caching, a JSON one has the
  headers of every dynamic reply (check_dynamic), an error says {error, message} (or
  is a protocol error's one line), 405 says `Allow`, 503 says `Retry-After`, a wave it
  shows is within web.json5's range, and a Host that is no RFC 3986 authority was 400;
- a GET or HEAD changed no pin;
- the same connection still serves a request (sent with the first one, pipelined, or
  after its reply), and so does another connection;
- no descriptor leaked (the server's /proc/PID/fd), and the log has no traceback.
After the requests, the server idles past every deadline and still serves.

A random web.json5 (with random HTTAP_* variables) is accepted, and what `httap check`
prints loads back to the same values, or it is refused with one line (from `httap
check`: on stderr, exit status 2, or 1 for certificate files that do not load, as
`serve` says it), never with a traceback.

The budget keeps `make test` fast; `HTTAP_CAMPAIGN=long` (`make campaign`) runs a
longer one.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional
from urllib.parse import quote, unquote

import h11
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from httap import config
from httap.auth import hash_password
from httap.config import ConfigError
from tests.helpers import client, wait_for
from tests.helpers.dynamic import check_dynamic
from tests.helpers.processes import Process

LONG = os.environ.get("HTTAP_CAMPAIGN") == "long"
REQUESTS = 5000 if LONG else 800  # requests to the server, each with its checks
CONFIGS = 5000 if LONG else 150  # web.json5 files through the config loader
CHECKS = 200 if LONG else 5  # web.json5 files through `httap check`, a process each
# No "explain" phase: after a failure, it would replay each example many more times.
BUDGET = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow],
    "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
}

# -- the server under test ------------------------------------------------------------

INACTIVITY = 3  # seconds: timeouts.inactivity, the shortest it may be
PINS = {
    "led": {"gpio": 17, "mode": "out", "safe": 0},
    "button": {"gpio": 4, "mode": "in", "pull": "up"},
    "motor": {"gpio": 18, "mode": "pwm", "frequency": 50},  # no safe value: the wave runs on
}
PASSWORD = "open sesame"
CHEAP = 10  # scrypt cost: the smallest auth.users accepts

# Actions as the README writes them, some handing request values to the pin API, which
# checks them as a request would: whatever the body, none of them is a 500.
APP = """
from httap.connection import Pending


def setup(server):
    @server.action("car/forward", methods=("POST",))
    def forward(request):
        speed = request.json_object().get("speed", 1)
        server.write("led", 1)
        return {"moving": True, "speed": speed}

    @server.action("car/set", methods=("POST", "PUT"))
    def set_pin(request):
        body = request.json_object()
        server.write(body.get("pin", "led"), body.get("value", 0))
        return server.state(body.get("pin", "led"))

    @server.action("car/speed", methods="POST")
    def speed(request):
        body = request.json_object()
        server.pwm("motor", frequency=body.get("frequency"), duty=body.get("duty"))
        return server.state("motor")

    @server.action("sensor/slow")
    def slow(request):
        reply = Pending()
        server.call_later(0.02, lambda: reply.resolve({"value": 42}))
        return reply

    @server.action("echo", methods=("GET", "POST", "PUT", "DELETE"))
    def echo(request):
        return {"path": request.path, "params": request.params, "size": len(request.body)}

    @server.action("raw")
    def raw(request):
        return b"\\x00raw\\xff"

    @server.action("nothing", methods=("POST",))
    def nothing(request):
        return None

    @server.action("secret")
    def secret(request):
        return {"user": request.user}
"""


class Echo:
    """A serial device on a pty's master side: it sends back whatever it is sent."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            if select.select([self.master], [], [], 0.05)[0]:
                try:
                    os.write(self.master, os.read(self.master, 4096))
                except OSError:
                    self.done.wait(0.05)  # the server has the port closed for now

    def close(self) -> None:
        self.done.set()
        self.thread.join(5)
        os.close(self.master)
        os.close(self.slave)


class Target:
    """`httap serve` on 127.0.0.1 with the pins, the pty, the app and a guarded action;
    its log goes to a file, read with `news()`."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self.device = Echo()
        www = where / "www"
        www.mkdir()
        (www / "index.html").write_bytes(b"<!doctype html><title>campaign</title>\n")
        (where / "app.py").write_text(APP)
        settings = {
            "listen": ["http://127.0.0.1:0"],
            "documents": str(www),
            "app": str(where / "app.py"),
            "gpio": {"backend": "sim", "pins": PINS},
            "serial": {"meter": {"port": self.device.path, "timeout": 0.05, "buffer": 64}},
            "timeouts": {"inactivity": INACTIVITY, "parse": 2, "request": 2},
            "cors": {"origins": ["http://app.example"]},
            "auth": {
                "plain_http": True,
                "users": {"ada": {"password": hash_password(PASSWORD, CHEAP), "role": "user"}},
                "routes": [{"match": "/?secret", "role": "user"}],
            },
        }
        self.config = where / "web.json5"
        self.config.write_text(json.dumps(settings))
        self.log = where / "server.log"
        self.read_to = 0
        self.start()

    def start(self) -> None:
        self.process = Process(["serve", "--config", str(self.config)], self.where, log=self.log)
        self.port = self.process.port
        assert ask(self, "GET", "/?ping").status == 200
        self.baseline = self.process.fds()

    def ensure(self) -> None:
        """A server that died on an earlier example is started again for the next one."""
        if self.process.proc.poll() is not None:
            self.process.kill()
            self.start()

    def news(self) -> str:
        """What the server logged since the last call."""
        with open(self.log, "rb") as log:
            log.seek(self.read_to)
            data = log.read()
        self.read_to += len(data)
        return data.decode("utf-8", "replace")

    def stop(self) -> None:
        self.process.signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        finally:
            self.process.kill()
            self.device.close()


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    running = Target(tmp_path_factory.mktemp("campaign"))
    yield running
    running.stop()


# -- exchanges, read with h11 ---------------------------------------------------------


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes
    keep_alive: bool  # both sides may go on with the connection


class Exchange:
    """A client connection that sends exact bytes and reads replies with h11, which
    refuses any reply that is not well-formed HTTP/1.1."""

    def __init__(self, port: int, source: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=5, source_address=(source, 0)
        )
        self.h11 = h11.Connection(h11.CLIENT)

    def send(self, raw: bytes) -> None:
        try:
            self.sock.sendall(raw)
        except OSError:
            pass  # the server may answer and close before it reads it all

    def read(self, method: str) -> Reply:
        """The next reply; h11 is told the method, which decides the reply's framing
        (the bytes sent were ours, an HTTP/1.0 request among them)."""
        self.h11.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
        self.h11.send(h11.EndOfMessage())
        status, headers, body = 0, {}, b""
        while True:
            got = self.h11.next_event()
            if got is h11.NEED_DATA:
                self.h11.receive_data(self.sock.recv(65536))
            elif isinstance(got, h11.Response):
                status = got.status_code
                for name, value in got.headers:
                    name = name.decode().lower()
                    value = value.decode("latin-1")
                    headers[name] = f"{headers[name]}, {value}" if name in headers else value
            elif isinstance(got, h11.Data):
                body += got.data
            elif isinstance(got, h11.EndOfMessage):
                break
            elif isinstance(got, h11.ConnectionClosed):
                raise AssertionError("the connection closed before a whole reply")
        keep_alive = self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE
        if keep_alive:
            self.h11.start_next_cycle()
        return Reply(status, headers, body, keep_alive)

    def close(self) -> None:
        self.sock.close()


PING = b"GET /?ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def ask(target: Target, method: str, path: str, body: bytes = b"") -> Reply:
    """One plain request on a new connection."""
    exchange = Exchange(target.port)
    try:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        exchange.send(head.encode() + b"\r\n" + body)
        return exchange.read(method)
    finally:
        exchange.close()


def pins(target: Target) -> dict:
    """Every pin's state, but the level a running wave changes by itself."""
    reply = ask(target, "GET", "/?gpio")
    assert reply.status == 200, reply
    states = json.loads(reply.body)["pins"]
    for state in states.values():
        if state.get("pwm", {}).get("running"):
            state.pop("value")
    return states


# -- the vocabulary's pieces ----------------------------------------------------------
#
# A request is right but for at most one thing (an odd method, path, parameter, number,
# body or header): so the odd thing gets past the checks of the others to its own.


def one(values: list) -> st.SearchStrategy:
    return st.sampled_from(values)


def chance(odds: int) -> st.SearchStrategy:
    """True once in `odds`."""
    return one([True] + [False] * (odds - 1))


class Piece(NamedTuple):
    """The values of one slot of a request: those that fit, and odd ones (wrong, huge,
    NaN, negative, not ASCII)."""

    good: list
    odd: list

    def draw(self, odd: bool) -> st.SearchStrategy:
        return one(self.odd if odd else self.good)


# Waits are short: a valid wait of seconds would only make the campaign slow.
WAIT = Piece(["0", "0.01", "0.05", ".1", "0.0"],
             ["2e-1", " 0.1", "-0", "-1", "1e-11", "nan", "inf", "Infinity", "1e309", "3601",
              "9" * 400, "", "x", "0x10", "1,5", "\u0660", "1_0"])  # fmt: skip
VALUE = Piece(["0", "1"], ["2", "-1", "", "x", "1.0", "true", "01", "9" * 50])
COUNT = Piece(["1", "10", "64"], ["65", "0", "-1", "x", "", "1e3", "9" * 30, "\u0663", "1.5"])
UNTIL = Piece(["%0A", "%0D%0A", "OK", "%FF", "%00", "+"], ["", "%zz", "%", "a%2", "%0A" * 70])
HUGE = [1e-11, 1e-300, 1e308, 10**400, math.nan, math.inf, -math.inf, -1, -0.0]
LEVEL = Piece([0, 1, True, False], [*HUGE, 0.0, 1.0, 0.5, 2, None, "1", [], {}])
PULSE = Piece([0.01, 0.05, 0.1], [*HUGE, 0, 61, True, "0.1", None])
FREQUENCY = Piece([0.5, 1, 50, 440, 0.01, 10_000], [*HUGE, 0, 10000.5, True, "440", None])
DUTY = Piece([0.5, 1, 0], [*HUGE, 1.5, "0.5", True, None])
MODE = Piece(["spin", "sleep"], ["x", 1, None, "SPIN"])
PIN = Piece(["led", "button", "motor", "17", "4", "18", "0017"],
            ["22", "99", "-1", "1e1", "LED", "nope", "led ", "", "é", "\u0663", "led/x",
             "9" * 40, 1, None, []])  # fmt: skip
ODD_NAMES = [name for name in PIN.odd if isinstance(name, str)]
ODD_PARAMS = ["", "wait", "=", "&", "a=%ZZ", "x=1", "wait=0&wait=1", "%77ait=0", "+=+", "%"]
ODD_SEQUENCES = ["%", "%G1", "%FF", "%C3%28", "%00", "%2F", "%252F", "%e9", "%ED%A0%80"]
ODD_BODIES = [b"0", b"1", b"true", b"null", b"1 1", b"{", b'"1"', b"\xff\xfe", b"NaN",
              b"-Infinity", b" 1 ", b"[1]", b"[]", b"{}", b"", b"\xef\xbb\xbf1", b"1" * 5000,
              b'{"value": 1, "value": 0}', b'{"\\ud800": 1}', b'{"value": 1, "pulse": 0.1}',
              b'{"pwm": 1}', b'{"pwm": []}', b'{"x": 1}', b'{"led": {"x": 1}}']  # fmt: skip
# An Origin the server allows (its own page, cors.origins), and ones it does not.
ORIGIN = Piece(["http://127.0.0.1", "http://app.example"],
               ["http://evil.example", "null", "http://app.example:80"])  # fmt: skip
# Good credentials, and malformed ones (no colon, no name, not base64, not UTF-8). A wrong
# password is left out: its 401 is held back longer each time (auth.py), which would
# only slow the campaign down; tests/test_auth.py shows it.
AUTHORIZATION = Piece(
    [f"Basic {base64.b64encode(f'ada:{PASSWORD}'.encode()).decode()}"],
    ["Basic %%%", "Basic", "Basic " + "A" * 3000, "Bearer x", "Basic /w==", "Basic YWRh",
     "Basic Og==", "Basic " + base64.b64encode(b"\xff:\xfe").decode()],
)  # fmt: skip
HOST = Piece(["127.0.0.1", "localhost", "pi.local", "[::1]:8080", "127.0.0.1:", "", "x.example"],
             ["bad host", "127.0.0.1/evil", "user@127.0.0.1", "127.0.0.1:80x", "[::1", "%zz",
              "a\tb"])  # fmt: skip
EXTRA_HEADERS = [("Accept", "*/*"), ("Range", "bytes=0-1"), ("If-None-Match", "*"),
                 ("Last-Event-ID", "9" * 30), ("Access-Control-Request-Method", "POST"),
                 ("Access-Control-Request-Headers", "x-a, x-b"),
                 ("Content-Type", "application/json"), ("Content-Type", "text/plain")]  # fmt: skip
# Requests whose replies wait (a long-poll, a pulse, a slow action, a serial read), sent
# on another connection just before the campaign's request: that one may wake, cut
# short, or be refused by them.
MEANWHILE = [
    b"GET /?gpio/led&wait=0.05 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /?gpio/button&wait=0.05&value=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b'POST /?gpio/led HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 14\r\n\r\n{"pulse": 0.1}',
    b"GET /?sensor/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /?serial/meter&wait=0.05&count=64 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"POST /?serial/meter&until=%0A&wait=0.05 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Length: 2\r\n\r\nab",
]
# An authority as RFC 9112 section 3.2 and RFC 3986 section 3.2 let a Host name it:
# an IP literal in brackets or a reg-name, then an optional port; no userinfo.
AUTHORITY = re.compile(
    r"(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*)(?::[0-9]*)?"
)


def deep(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "[" else '{"a":' * depth + "1" + "}" * depth


@st.composite
def object_of(draw, pieces: dict[str, Piece], odd: bool) -> dict:
    """An object with a value for each of `pieces`' keys; when `odd`, one of them odd."""
    bad = draw(one(sorted(pieces))) if odd and pieces else None
    return {key: draw(piece.draw(key == bad)) for key, piece in pieces.items()}


def pwm_body(odd: bool) -> st.SearchStrategy:
    """{"pwm": {...}} with a frequency, a duty or both."""
    both = {"frequency": FREQUENCY, "duty": DUTY}
    return st.one_of(
        object_of(both, odd),
        object_of({"frequency": FREQUENCY}, odd),
        object_of({"duty": DUTY}, odd),
    ).map(lambda wave: {"pwm": wave})


def pin_body(mode: str, odd: bool) -> st.SearchStrategy:
    """The bodies that fit a pin of `mode` ("out", "pwm", "in")."""
    value = object_of({"value": LEVEL}, odd)
    if mode == "out":
        return st.one_of(LEVEL.draw(odd), value, object_of({"pulse": PULSE}, odd))
    if mode == "pwm":
        return st.one_of(pwm_body(odd), pwm_body(odd), value)
    return st.one_of(object_of({"drive": LEVEL}, odd), LEVEL.draw(odd))


MODES = {key: pin["mode"] for name, pin in PINS.items() for key in (name, str(pin["gpio"]))}


@st.composite
def batch_body(draw, odd: bool) -> dict:
    """Writes to some declared pins; when `odd`, one odd number or one odd name."""
    names = draw(st.lists(one(sorted(PINS)), unique=True, min_size=1))
    bad = draw(one([*names, "name"])) if odd else None
    body = {name: draw(pin_body(PINS[name]["mode"], name == bad)) for name in names}
    if bad == "name":
        body[draw(one(ODD_NAMES))] = 1
    return body


ACTION_BODIES = {
    "car/forward": {"speed": LEVEL},
    "car/set": {"pin": PIN, "value": LEVEL},
    "car/speed": {"frequency": FREQUENCY, "duty": DUTY},
}


def action_body(path: str, odd: bool) -> st.SearchStrategy:
    return object_of(ACTION_BODIES.get(path, {}), odd)


def serial_body(path: str, odd: bool) -> st.SearchStrategy:
    return st.binary(max_size=40) if odd else one([b"*IDN?\n", b"ab\n", b"\x00\xff"])


@st.composite
def encoded(draw, text: str, odd: bool) -> str:
    """`text` with some characters percent-encoded; when `odd`, an odd sequence put in."""
    out = []
    for char in text:
        if draw(chance(8)):
            upper = draw(st.booleans())
            out.append("".join(f"%{b:02X}" if upper else f"%{b:02x}" for b in char.encode()))
        else:
            out.append(char)
    if odd:
        out.insert(draw(st.integers(0, len(out))), draw(one(ODD_SEQUENCES)))
    return "".join(out)


@st.composite
def parameters(draw, pieces: dict[str, Piece], odd: bool) -> list[str]:
    """NAME=VALUE for some of `pieces`, each once, in any order; when `odd`, one value is
    odd or an odd parameter (given twice, unknown, no value, not UTF-8) is put in."""
    names = draw(st.lists(one(sorted(pieces)), unique=True)) if pieces else []
    bad = draw(one([*names, ""])) if odd else None
    pairs = [f"{name}={draw(pieces[name].draw(name == bad))}" for name in names]
    if bad == "":
        pairs.insert(draw(st.integers(0, len(pairs))), draw(one(ODD_PARAMS)))
    return pairs


class Resource(NamedTuple):
    """A part of the vocabulary: its paths (and paths near them that are wrong), the
    methods it answers (and others), its parameters, the bodies that fit a path
    (`body(path, odd)`: one odd number in it when `odd`), and how often it is drawn."""

    paths: st.SearchStrategy
    odd_paths: st.SearchStrategy
    methods: list[str]
    other_methods: list[str]
    params: dict[str, Piece]
    body: Callable[[str, bool], st.SearchStrategy]
    weight: int = 1


ODD_PINS = one([f"gpio/{name}" for name in ODD_NAMES])
LONG_POLL = {"wait": WAIT, "value": VALUE}
OTHERS = ["DELETE", "PATCH", "OPTIONS", "TRACE", "BREW"]
RESOURCES = [
    *(
        Resource(
            one([f"gpio/{key}" for key, of in MODES.items() if of == mode]),
            ODD_PINS,
            methods,
            OTHERS,
            LONG_POLL,
            lambda path, odd, mode=mode: pin_body(mode, odd),
            weight=3,
        )
        for mode, methods in (
            ("out", ["POST", "PUT", "GET", "HEAD"]),
            ("pwm", ["POST", "PUT", "GET", "HEAD"]),
            ("in", ["GET", "POST", "HEAD"]),
        )
    ),
    Resource(
        st.just("gpio"),
        one(["gpio/", "GPIO", "gpio//"]),
        ["POST", "GET", "HEAD"],
        ["PUT", *OTHERS],
        {},
        lambda path, odd: batch_body(odd),
        weight=2,
    ),
    Resource(
        st.just("serial/meter"),
        one(["serial/nope", "serial/meter/x", "serial/", "serial", "serial/METER"]),
        ["GET", "POST"],
        ["PUT", "HEAD", *OTHERS],
        {"wait": WAIT, "until": UNTIL, "count": COUNT},
        serial_body,
        weight=2,
    ),
    Resource(
        st.just("loop"),
        one(["loop/x", "LOOP", "loops"]),
        ["GET", "POST", "HEAD"],
        ["PUT", *OTHERS],
        {},
        lambda path, odd: object_of({"mode": MODE}, odd),
    ),
    Resource(
        one(["", "ping", "ping42", "pingpong", "stats"]),
        one(["stats/x", "pingx/y", "files", "events/x", "nope", "/", "%"]),  # /?events streams
        ["GET", "HEAD"],
        ["POST", "PUT", *OTHERS],
        {},
        lambda path, odd: st.just({}),
    ),
    Resource(
        one(["car/forward", "car/set", "car/speed", "sensor/slow", "echo", "raw", "nothing"]),
        one(["car", "car/forward/x", "CAR/forward", "secret/x", "echo/"]),
        ["POST", "GET", "PUT", "HEAD"],
        OTHERS,
        {"x": VALUE},
        action_body,
        weight=3,
    ),
    Resource(  # Basic credentials are asked for
        st.just("secret"),
        one(["secret/x", "SECRET", "secrets"]),
        ["GET", "HEAD"],
        ["POST", *OTHERS],
        {},
        lambda path, odd: st.just({}),
    ),
]
DRAWN = one([each for each in RESOURCES for _ in range(each.weight)])
# The one thing a request gets wrong, if any: more often a number, where most limits are.
SLOTS = ["none", "none", "method", "path", "params", "number", "number", "body", "headers"]


class Sent(NamedTuple):
    """One request of the campaign, and what the oracle needs to know about it."""

    method: str
    target: str
    version: str
    source: str
    headers: list[tuple[str, str]]
    body: bytes
    chunked: bool
    pipelined: bool  # the next request goes with it, before its reply
    meanwhile: Optional[bytes]  # a request another connection has pending meanwhile
    abandoned: bool  # whose client then goes away without its reply

    def raw(self) -> bytes:
        head = f"{self.method} {self.target} HTTP/{self.version}\r\n"
        fields = list(self.headers)
        if self.chunked:
            fields.append(("Transfer-Encoding", "chunked"))
            body = f"{len(self.body):x}\r\n".encode() + self.body + b"\r\n" if self.body else b""
            body += b"0\r\n\r\n"
        else:
            if self.body or self.method in ("POST", "PUT", "PATCH"):
                fields.append(("Content-Length", str(len(self.body))))
            body = self.body
        lines = "".join(f"{name}: {value}\r\n" for name, value in fields)
        return (head + lines + "\r\n").encode("utf-8") + body

    def header(self, name: str) -> Optional[str]:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def path(self) -> str:
        """The path the manager sees ("" for one that is no UTF-8: a 400)."""
        path = self.target.partition("/?")[2].partition("&")[0]
        try:
            return unquote(path, errors="strict")
        except UnicodeDecodeError:
            return ""


@st.composite
def headers(draw, odd: bool) -> list[tuple[str, str]]:
    """Host, and perhaps Origin, credentials and another field; when `odd`, a Host that
    is no authority, an Origin the server refuses or malformed credentials."""
    bad = draw(one(["Host", "Origin", "Authorization"])) if odd else None
    host = HOST.draw(True) if bad == "Host" else one(["127.0.0.1"] * 4 + HOST.good)
    fields = [("Host", draw(host))]
    for name, piece, odds in (("Origin", ORIGIN, 6), ("Authorization", AUTHORIZATION, 6)):
        if name == bad or draw(chance(odds)):
            fields.append((name, draw(piece.draw(name == bad))))
    if draw(chance(3)):
        fields.append(draw(one(EXTRA_HEADERS)))
    if draw(chance(6)):
        fields.append(("Connection", draw(one(["close", "keep-alive"]))))
    return fields


@st.composite
def requests(draw) -> Sent:
    resource = draw(DRAWN)
    odd = draw(one(SLOTS))
    if odd == "method":
        method = draw(one(resource.other_methods))
    else:
        method = draw(one([resource.methods[0]] * 2 + resource.methods))
    odd_name = odd == "path" and draw(st.booleans())  # else an odd percent-encoding
    path = draw(resource.odd_paths | st.text(max_size=12) if odd_name else resource.paths)
    target = "/?" + draw(encoded(path, odd == "path" and not odd_name))
    pairs = draw(parameters(resource.params, odd == "params"))
    if pairs:
        target += "&" + "&".join(pairs)
    target = quote(target, safe="/?&=%:@!$'()*+,;~-._")  # the wire takes no raw spaces
    if draw(chance(10)):  # the absolute form (RFC 9112 section 3.2.2)
        target = draw(one(["http://127.0.0.1", "http://pi.local:8080", "HTTP://x"])) + target
    version = draw(one(["1.1"] * 4 + ["1.0"]))
    fields = draw(headers(odd == "headers"))
    if version == "1.0" and draw(st.booleans()):
        fields = fields[1:]  # no Host
    body = b""
    if method in ("POST", "PUT", "PATCH") or draw(chance(10)):
        if odd == "body":
            body = draw(one(ODD_BODIES) | st.binary(max_size=40))
            if draw(chance(4)):
                body = deep(draw(one([10, 1000, 5000])), draw(one("[{"))).encode()
        else:
            value = draw(resource.body(path, odd == "number"))
            body = value if isinstance(value, bytes) else json.dumps(value).encode()
    chunked = version == "1.1" and bool(body) and draw(chance(5))
    if body and version == "1.1" and draw(chance(7)):
        fields.append(("Expect", "100-continue"))
    source = draw(one(["127.0.0.1", "127.0.0.1", "127.0.0.2"]))
    meanwhile = draw(one(MEANWHILE)) if draw(chance(8)) else None
    pipelined, abandoned = draw(st.booleans()), draw(st.booleans())
    return Sent(
        method, target, version, source, fields, body, chunked, pipelined, meanwhile, abandoned
    )


# -- the oracle -----------------------------------------------------------------------

# The statuses docs/protocol.md and the HTTP layer name; 500 is never one to reach.
STATUSES = {200, 204, 400, 401, 403, 404, 405, 408, 409, 413, 414, 417, 421, 429, 431, 501,
            503, 505}  # fmt: skip
PROTOCOL_ERRORS = {400, 408, 413, 414, 417, 431, 501, 505}  # one line of text/plain


def broken_rules(sent: Sent, reply: Reply) -> list[str]:
    """Each rule of the contract that this reply breaks."""
    broken = []
    status, headers = reply.status, reply.headers
    if status == 500:
        broken.append("500: " + reply.body[:300].decode("utf-8", "replace"))
    elif status not in STATUSES:
        broken.append(f"a status the contract does not name: {status}")
    for name in ("date", "cache-control"):
        if name not in headers:
            broken.append(f"no {name.title()} header")
    if status == 405 and "allow" not in headers:
        broken.append("405 without Allow")
    if status == 503 and "retry-after" not in headers:
        broken.append("503 without Retry-After")
    if sent.method == "HEAD" and reply.body:
        broken.append("a body in reply to HEAD")
    kind = headers.get("content-type", "")
    value: Any = None
    if kind == "application/json" and sent.method != "HEAD":
        try:  # the headers of every dynamic reply, and one JSON value
            check_dynamic(client.Reply(status, headers, reply.body))
            value = json.loads(reply.body)
        except (AssertionError, KeyError, ValueError) as err:
            broken.append(f"a dynamic reply without its headers or JSON: {err!r}")
    if status >= 400 and sent.method != "HEAD":
        protocol = status in PROTOCOL_ERRORS and kind.startswith("text/plain")
        described = isinstance(value, dict) and {"error", "message"} <= set(value)
        if not (protocol or described):
            broken.append(f"an error that is not {{error, message}}: {kind}")
    for wave in waves(value):
        frequency, duty = wave.get("frequency"), wave.get("duty")
        if not (config.PWM_FREQUENCY.holds(frequency) and config.PWM_DUTY.holds(duty)):
            broken.append(f"a wave out of range (web.json5's: {config.PWM_FREQUENCY}): {wave}")
    host = sent.header("host")
    if host is not None and not AUTHORITY.fullmatch(host) and status != 400:
        broken.append(f"Host {host!r} is no authority (RFC 3986 section 3.2), answered {status}")
    return broken


def waves(value: Any) -> list[dict]:
    """Every PWM setting a reply shows (a pin's state has one under "pwm")."""
    if isinstance(value, list):
        return [wave for each in value for wave in waves(each)]
    if not isinstance(value, dict):
        return []
    found = [value["pwm"]] if isinstance(value.get("pwm"), dict) else []
    return found + [wave for each in value.values() for wave in waves(each)]


def check_one(target: Target, sent: Sent) -> None:
    target.ensure()
    target.news()
    before = pins(target) if sent.method in ("GET", "HEAD") and not sent.meanwhile else None
    other = Exchange(target.port) if sent.meanwhile else None
    exchange = Exchange(target.port, sent.source)
    try:
        if other:
            other.send(sent.meanwhile)
            time.sleep(0.01)  # so that it is pending before the request comes
        exchange.send(sent.raw() + (PING if sent.pipelined else b""))
        reply = exchange.read(sent.method)
        event(str(reply.status))  # shown by --hypothesis-show-statistics
        broken = broken_rules(sent, reply)
        if reply.keep_alive:  # the same connection goes on, with no stray bytes
            if not sent.pipelined:
                exchange.send(PING)
            again = exchange.read("GET")
            if again.status != 200:
                broken.append(f"the next request on the connection got {again.status}")
        if other and not sent.abandoned:
            late = other.read(sent.meanwhile.split(b" ", 1)[0].decode())
            if late.status not in (200, 503):
                broken.append(f"the pending {sent.meanwhile[:40]!r} was answered {late.status}")
    finally:
        exchange.close()
        if other:
            other.close()
    if other and sent.abandoned:
        time.sleep(0.15)  # what it started (a pulse) runs out before the pins are read again
    if ask(target, "GET", "/?ping").status != 200:
        broken.append("another connection is not served")
    if not wait_for(lambda: target.process.fds() <= target.baseline, timeout=3):
        broken.append(f"descriptors: {target.process.fds()}, {target.baseline} when idle")
    if before is not None and pins(target) != before:
        broken.append(f"a {sent.method} changed a pin")
    if sent.path() == "loop" and reply.status == 200:  # spare the shared CPU a spinning loop
        ask(target, "POST", "/?loop", b'{"mode": "sleep"}')
    log = target.news()
    if "Traceback" in log:
        broken.append("a traceback in the log:\n" + log[-2000:])
    assert not broken, (
        f"{sent.raw()[:600]!r}\n -> {reply.status} {reply.body[:300]!r}\n" + "\n".join(broken)
    )


@settings(max_examples=REQUESTS, **BUDGET)
@given(requests())
def test_the_vocabulary_keeps_its_promises(target: Target, sent: Sent) -> None:
    try:
        check_one(target, sent)
    except (OSError, h11.ProtocolError) as err:  # a lost reply, a stall, a bad frame
        alive = "alive" if target.process.proc.poll() is None else "dead"
        raise AssertionError(
            f"{sent.raw()[:600]!r}: {type(err).__name__}: {err}; the server is {alive}\n"
            + target.news()[-2000:]
        ) from None


def test_the_server_outlives_an_idle_spell(target: Target) -> None:
    """After the campaign (or alone), the server idles past every connection's deadline,
    when only what the requests left behind (waves, timers) is due: it still serves."""
    target.ensure()
    target.news()
    time.sleep(INACTIVITY + 1)
    assert target.process.proc.poll() is None, target.news()[-3000:]
    assert ask(target, "GET", "/?ping").status == 200
    assert "Traceback" not in target.news()


# -- web.json5 ------------------------------------------------------------------------

# Values that fit a key, by its name, besides its default; the odd values fit none.
FITTING: dict[str, list] = {
    "listen": [["http://127.0.0.1:0"], ["https://[::1]:0", "http://:8080"], ["http://x:1"]],
    "documents": [".", "www", "/"],
    "app": ["app.py"],
    "certificate": ["cert.pem"],
    "key": ["cert.pem"],
    "gpio": [17, 4, 0, 53],
    "port": ["/dev/ttyS0", "loop://", "socket://127.0.0.1:9", "socket://pi.local:1"],
    "password": [hash_password("x", CHEAP)],
    "role": ["user", "admin"],
    "access": [True, "access.log", "www/access.log"],
    "origins": [["*"], ["http://app.example:8080"]],
    "hosts": [["pi.local"]],
    "user": [None, "nobody"],
    "match": ["/?secret", "/private/"],
    "methods": [None, ["GET"], ["POST", "PUT"]],
    "from": ["/old", "/docs/*"],
    "to": ["/new", "https://pi.local/*", "/x/*"],
    "status": [301, 308],
    "scheme": [None, "http"],
    "group": [None, "nogroup"],
}
ODD = [None, True, False, 0, -1, 1, 0.5, 1e308, -1e308, math.nan, math.inf, 2**64, 10**400,
       "", "x", "sim", "out", "*", "/", "..", "\x00", "a\nb", "\ud800", "\u2028", "a" * 3000,
       "~nobody-here/x", "loop", "loop/x", "app.py", "http://127.0.0.1:0", "https://:8443",
       "/old", "/assets/*", "GET", [], {}, ["x"], {"x": 1}]  # fmt: skip
KEYS = ["/assets/*", "/index.html", "/", ".svg", "svg", "X-Frame-Options", "Cache-Control",
        "led", "meter", "ada", "1x", "", "x", "\x00", "\ud800", "a" * 300]  # fmt: skip
# Free keys and their values, for the settings that are mappings.
MAPPINGS = {
    "mime": ([".svg", "wasm"], ["image/svg+xml", "text/plain; charset=utf-8"]),
    "headers": (["X-Frame-Options"], ["DENY", ""]),
    "cache": (["/assets/*", "/index.html"], [3600, 0]),
    "roles": (["admin", "user"], [["user"], []]),
}
RECORDS = {"pins": config.PinConfig, "serial": config.SerialConfig, "users": config.User}
ENVIRONMENT = {
    "HTTAP_KEEPALIVE": ["20", "2", "x", "1e400", "nan", "\u0663\u0660"],
    "HTTAP_TCPPORT": ["8080", "0", "65536", "-1", "1e3", "x"],
    "HTTAP_STATICPATH": [".", "www", "\x01", "~nobody-here", "loop"],
    "HTTAP_ROOTPAGE": ["index.html", "a/b", ".."],
    "HTTAP_USER": ["nobody", "a b"],
}


def usually(good: list, odd: list) -> st.SearchStrategy:
    """One of `good`, and once in 20 one of `odd`."""
    return one(good * (19 * len(odd) // max(1, len(good))) + odd)


def mostly(fitting: st.SearchStrategy, odd: st.SearchStrategy, odds: int = 20) -> st.SearchStrategy:
    """A fitting value, and once in `odds` an odd one: one odd value among good ones is
    what reaches the checks of the keys read after it."""
    return st.integers(1, odds).flatmap(lambda n: odd if n == 1 else fitting)


def leaf(name: str, default: Any) -> st.SearchStrategy:
    """Values for a key: its default and values like it, or an odd one."""
    near = list(FITTING.get(name, []))
    if default is not config._REQUIRED and not callable(default):
        near.append(default)
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            near.append(default * 2)
        elif isinstance(default, bool):
            near.append(not default)
    return usually(near, ODD)


def record(cls: type, depth: int = 0) -> st.SearchStrategy:
    """An object of a schema class's own keys (some left out, now and then one missing
    or unknown)."""
    fields = {}
    for name, declared in config._keys(cls).items():
        if declared.section is not None:
            fields[name] = record(declared.section, depth + 1)
        elif name in RECORDS and depth < 3:
            names = usually(["led", "meter", "ada", "b_2"], KEYS)
            fields[name] = st.dictionaries(names, record(RECORDS[name], depth + 1), max_size=2)
        elif name == "routes":
            fields[name] = st.lists(record(config.Route, depth + 1), max_size=2)
        elif name == "redirect":
            entry = {key: leaf(key, None) for key in config._REDIRECT_KEYS}
            fields[name] = st.lists(st.fixed_dictionaries(entry), max_size=2)
        elif name in MAPPINGS:
            keys, values = MAPPINGS[name]
            fields[name] = st.dictionaries(usually(keys, KEYS), usually(values, ODD), max_size=2)
        else:
            fields[name] = leaf(name, declared.default)
    keys = config._keys(cls)
    required = {name for name in keys if keys[name].default is config._REQUIRED}
    whole = st.fixed_dictionaries(
        {name: fields[name] for name in required},
        optional={name: each for name, each in fields.items() if name not in required},
    )
    odd = st.fixed_dictionaries({}, optional={**fields, "zzz": one(ODD)})
    return mostly(whole, odd | one(ODD), odds=50)


def json5_text(value: Any, draw) -> str:
    """`value` written as JSON5 with its liberties, chosen at random: unquoted keys,
    single quotes, hexadecimal, comments and trailing commas."""
    if isinstance(value, dict):
        items = []
        for key, each in value.items():
            plain = re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", key) and draw(st.booleans())
            items.append(f"{key if plain else json.dumps(key)}: {json5_text(each, draw)}")
        return "{" + ", ".join(items) + draw(one(["", ",", " // c\n", " /* c */"])) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(json5_text(each, draw) for each in value) + "]"
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value >= 0
        and draw(st.booleans())
    ):
        return hex(value)
    if isinstance(value, str) and "'" not in value and draw(st.booleans()):
        return "'" + json.dumps(value)[1:-1] + "'"
    return json.dumps(value)  # NaN and Infinity are JSON5


@st.composite
def web_json5(draw) -> tuple[str, dict[str, str]]:
    """A web.json5's text, and environment variables for it."""
    tree = draw(record(config.Config))
    kind = draw(one(["json", "json", "json5", "json5", "deep", "odd"]))
    text = json5_text(tree, draw) if kind == "json5" else json.dumps(tree)
    if kind == "deep":
        tree = tree if isinstance(tree, dict) else {}
        text = json.dumps({**tree, "id": 0})[:-2] + deep(draw(one([100, 5000])), "[") + "}"
    elif kind == "odd":
        text += draw(one(["", "}", "//", "/*", ",", "\x00", "\ufeff", '{"a": 1}']))
    env = draw(st.dictionaries(one(sorted(ENVIRONMENT)), st.just(None), max_size=2))
    return text, {name: draw(one(ENVIRONMENT[name])) for name in env}


def config_dir(tmp_path_factory, text: str) -> Path:
    """A directory holding the web.json5 and what its fitting values name (a documents
    directory, an app, a PEM file) and a symbolic link that loops."""
    where = tmp_path_factory.mktemp("config")
    (where / "www").mkdir()
    (where / "app.py").write_text("def setup(server):\n    pass\n")
    (where / "cert.pem").write_text("not a PEM file\n")
    (where / "loop").symlink_to("loop")
    (where / "web.json5").write_text(text, encoding="utf-8")
    return where


@settings(max_examples=CONFIGS, **BUDGET)
@given(web_json5())
def test_a_random_config_is_accepted_or_refused_in_one_line(tmp_path_factory, case) -> None:
    text, env = case
    path = config_dir(tmp_path_factory, text) / "web.json5"
    try:
        settings = config.load(str(path), env=env)
    except ConfigError as err:
        assert "\n" not in str(err), str(err)
        return
    shown = json.dumps(config.to_dict(settings))  # what `httap check` prints
    path.write_text(shown, encoding="utf-8")
    assert config.to_dict(config.load(str(path), env={})) == json.loads(shown)


@settings(max_examples=CHECKS, **BUDGET)
@given(web_json5())
def test_httap_check_accepts_or_refuses_with_one_line_and_status_2(tmp_path_factory, case) -> None:
    text, env = case
    where = config_dir(tmp_path_factory, text)
    done = subprocess.run(
        [sys.executable, "-m", "httap", "check", "--config", str(where / "web.json5")],
        cwd=where,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in done.stderr, done.stderr
    if done.returncode == 0:
        json.loads(done.stdout)
        assert done.stderr == ""
    else:  # 2: a configuration error; 1: a certificate and key that exist but do not
        # load, a start-up error as `serve` gives it (tests/test_tls.py)
        tls = done.stderr.startswith("httap: cannot set up TLS: ")
        assert done.returncode == (1 if tls else 2), (done.returncode, done.stderr)
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("httap: "), done.stderr
