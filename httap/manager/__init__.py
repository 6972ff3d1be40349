"""The HTTaP domain: a `/?` target parsed once, a table that picks the room, and one
place, `finish`, that every reply passes.

A dynamic target is `/?PATH[&PARAMS]`: PATH is percent-decoded and split on `/`,
PARAMS is form-encoded; both are read once, into `request.path` and `request.params`.
The first segment of PATH picks a row of the table (`table` below): "" (discovery),
`ping…`, `stats`, `loop`, `gpio`, `gpio/NAME`, `serial/NAME`, `events`, and with
`uploads` `files`, `files/NAME`, `app`, `app/rollback` (files.py), else a
registered user action by its whole path. A row says the methods it allows (405
otherwise, with Allow) and what a change there needs from the hardware lease; its room
(status.py, gpio.py, serial.py, events.py, actions.py) answers, and what it returns is
finished here (room.py lists what a room may return).

Every reply, immediate or pending, passes `finish`: JSON unless it is raw bytes,
the headers docs/protocol.md requires (no-cache and HTTaP-Session), errors as
`{"error", "message"}`, and the catch-all 500. CORS is cors.py's, added by the
connection to every reply, whoever made it (`Cors.headers`, the server's
`reply_headers`).

A room that must wait (a long-poll, a pulse, a serial read, a user's pending reply)
returns a `Pending`; its connection holds back its later requests until the reply is
resolved, and other connections go on. The event stream is a `Stream`: the last reply
on its connection, its body sent as the events happen.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Optional, Union
from urllib.parse import parse_qsl, unquote

from gpio import GpioError
from httap import http
from httap.manager.actions import Actions
from httap.manager.cors import Cors
from httap.manager.events import Events
from httap.manager.gpio import Gpio
from httap.manager.room import (
    ALL,
    READS,
    WRITES,
    Answer,
    Change,
    Encoded,
    Row,
    no_such,
    nothing_after,
    to_json,
)
from httap.manager.serial import Serial
from httap.manager.status import Status
from httap.pins import Pins, shown
from httap.reply import Pending, Stream, Upload
from httap.session import Busy, Lease, Sessions
from httap.watches import Watches

if TYPE_CHECKING:
    from httap.auth import Auth
    from httap.config import Config
    from httap.manager.files import Files
    from httap.serialport import SerialPort

log = logging.getLogger("httap.manager")

# Expires is a date in the past: the original's "0" is no HTTP-date (RFC 9111 section 5.3).
NO_CACHE = (
    ("Cache-Control", "no-cache, no-store, must-revalidate"),
    ("Expires", http.http_date(0)),
)
JSON = ("Content-Type", "application/json")
OCTETS = ("Content-Type", "application/octet-stream")
PIN_METHODS = "GET, HEAD, POST, PUT"
READ_ONLY = "GET, HEAD"
MAX_REMEMBERED = 256  # paths whose row and target are kept (`_selected`)
MAX_SESSIONS = 64  # sessions whose replies' head is kept (`_heads`): ~3 KiB each at most
KEPT_REPLIES = 8  # whole replies kept per session (a few pins' states a page polls)

Reply = Union[http.Response, Pending, Stream]


def table(status: Status, gpio: Gpio, serial: Serial, events: Events) -> tuple[Row, ...]:
    """The standard vocabulary, one row per resource (docs/protocol.md). A row whose
    resource ends in /NAME answers the paths with a name after its first segment; a
    row with no `find` ignores what follows (`/?stats/x` is `/?stats`)."""
    alone = nothing_after("", "GET /? lists the services")
    loop_alone = nothing_after("loop", "the loop is /?loop")
    events_alone = nothing_after("events", "the event stream is /?events")
    # fmt: off
    return (
        #   resource       methods            lease   run                find
        Row("",            READ_ONLY,         None,   status.discovery,  alone),
        Row("ping…",       READ_ONLY,         None,   status.ping),
        Row("stats",       READ_ONLY,         None,   status.stats),
        Row("loop",        "GET, HEAD, POST", WRITES, status.loop_mode,  loop_alone),
        Row("gpio",        "GET, HEAD, POST", WRITES, gpio.all),
        Row("gpio/NAME",   PIN_METHODS,       WRITES, gpio.pin,          gpio.find),
        Row("serial/NAME", "GET, POST",       ALL,    serial.port,       serial.find),
        Row("events",      "GET",             None,   events.stream,     events_alone),
    )
    # fmt: on


class Manager:
    """Answers `/?` requests. Built from the `config`, the `loop`, the declared `pins`,
    the hardware `lease`, the serial `ports` (name -> SerialPort), the sign-in gate
    `auth` (or None) and the open `connections` (only counted, for the stats)."""

    def __init__(
        self,
        config: Config,
        loop: Any,
        pins: Pins,
        lease: Lease,
        sessions: Sessions,
        ports: Optional[Mapping[str, SerialPort]] = None,
        auth: Optional[Auth] = None,
        site: Any = None,
    ) -> None:
        self.config = config
        self.loop = loop
        self.pins = pins
        self.lease = lease
        self.watches = Watches(pins, loop, config.gpio.sample_interval)
        self.cors = Cors(config.cors.origins, auth is not None, PIN_METHODS + ", OPTIONS")
        self.gpio = Gpio(pins, self.watches, loop, lease.mode)
        self.serial = Serial(ports or {})
        self.events = Events(
            pins, self.watches, ports or {}, lease, loop, config.limits, config.events.keepalive
        )
        self.status = Status(
            config, loop, pins.backend.simulated, self._names, sessions, auth, self.watches.stats
        )
        self.table = table(self.status, self.gpio, self.serial, self.events)
        self.files: Optional[Files] = None  # files.py is loaded only with `uploads.dir`
        if config.uploads.dir:
            from httap.manager.files import Files

            self.files = Files(config.uploads, loop, site)
            self.table += self.files.rows()
        self.rows: dict[str, Row] = {}  # the first segment of a path -> its row
        for row in self.table:
            first, _, name = row.resource.rstrip("…").partition("/")
            if name and first in self.rows:
                self.rows[first].named = row
            else:
                self.rows[first] = row
        standard = {key for key in self.rows if key not in ("", "ping")} | {"files", "app"}
        self.actions = Actions(pins, sorted(standard))
        # Bounded memos, cleared when full: a path -> its row and target (what `_select`
        # found: pins, ports and rows are fixed once the server runs, and a path that
        # finds nothing is never kept); a session's id -> its 200 JSON replies' head
        # (`_SessionReplies`).
        self._selected: dict[str, tuple[Row, Any]] = {}
        self._heads: dict[int, _SessionReplies] = {}

    def _names(self) -> list[str]:
        return self.actions.names()

    # -- dispatch ----------------------------------------------------------------

    def handle(self, request: http.Request) -> Reply:
        """The reply to a `/?` request, finished."""
        self.status.requests += 1
        try:
            outcome = self._dispatch(request)
        except Exception as err:
            outcome = err
        return self.finish(request, outcome)

    def _dispatch(self, request: http.Request) -> Any:
        path, _, query = request.target[2:].partition("&")
        try:
            request.path = path = unquote(path, errors="strict") if "%" in path else path
        except UnicodeDecodeError:
            raise http.HTTPError(
                400, "bad-path", "the path is not valid UTF-8 once decoded"
            ) from None
        request.params = params(query) if query else {}
        method = request.method
        if method == "OPTIONS":
            return self.cors.preflight(request)
        if method not in READS:
            self.cors.check_write(request)
        row, target = self._selected.get(path) or self._select(path)
        if method not in row.allowed:
            raise http.HTTPError(
                405,
                "method-not-allowed",
                f"{method} is not allowed here; use {row.methods}",
                (("Allow", row.methods),),
            )
        outcome = row.run(request, target)
        if type(outcome) is Change:
            self._lease(request, row, outcome)
            return outcome.make()
        return outcome

    def streams_body(self, request: http.Request) -> bool:
        """Whether the body of `request` (a head with a body) goes to its room in parts:
        its row lists the method as `streamed` (http.Parser's `streams`).

        `curl -T FILE 'http://host/?files/NAME'` sends `PUT /FILE?files/NAME`: curl
        appends the local file name to a URL whose path is `/`. A PUT whose path is one
        segment and whose query is an upload's `/?` target is taken as that target
        (`request.target` becomes `/?files/NAME`): the files domain has no PUT, so the
        request could mean nothing else (docs/protocol.md, Choices)."""
        target = request.target
        if target.startswith("/?"):
            return self._streams(request.method, target)
        if request.method != "PUT":
            return False
        path, _, query = target.partition("?")
        if path.count("/") != 1 or not (query and self._streams("PUT", "/?" + query)):
            return False
        request.target = "/?" + query
        return True

    def _streams(self, method: str, target: str) -> bool:
        """Whether `method` on the `/?` `target` is read in parts (its row's `streamed`)."""
        path = target[2:].partition("&")[0]
        if "%" in path:
            path = unquote(path, errors="replace")
        first, _, name = path.partition("/")
        row = self.rows.get(first)
        if row is not None and name and row.named is not None:
            row = row.named
        return row is not None and method in row.streamed

    def _select(self, path: str) -> tuple[Row, Any]:
        """The row that answers `path`, and its target (what a name after the resource
        finds: a pin, a port); 404 when there is none. Remembered in `_selected`, which
        the dispatch looks in first."""
        first, slash, name = path.partition("/")
        row = self.rows.get(first)
        if row is None:
            if first.startswith("ping"):
                row = self.rows["ping"]
            else:
                row = self.actions.registered.get(path)
                if row is None:
                    raise no_such(path)
            selected = row, None
        else:
            if name and row.named is not None:
                row = row.named
            find = row.find
            selected = row, (find(name if slash else None) if find is not None else None)
        if len(self._selected) >= MAX_REMEMBERED:
            self._selected.clear()
        self._selected[path] = selected
        return selected

    def _lease(self, request: http.Request, row: Row, change: Change) -> None:
        """The lease column: on a row that changes the hardware, a write takes the
        lease, and on an ALL row a read needs that nobody else holds it; Busy (503)
        otherwise, saying what was refused."""
        if request.method not in READS:
            self.lease.acquire(request.session, self.loop.now, change.refused)
        elif row.lease == ALL:
            self.lease.check(request.session, self.loop.now, change.refused)

    # -- every reply ---------------------------------------------------------------

    def finish(self, request: http.Request, outcome: Any) -> Reply:
        """The reply to `request` for what its room gave (room.py lists the kinds), or
        for an exception raised on the way: the one place a `/?` reply is made. A
        Pending is finished the same way when it resolves. Never raises: a value that
        cannot be sent is a 500 `handler-failed`, logged."""
        kind = type(outcome)
        if kind is not dict and kind is not Encoded:
            if isinstance(outcome, (Pending, Upload)):
                outcome.convert = partial(self.finish, request)
                return outcome
            if isinstance(outcome, Stream):  # its head: the dynamic headers after its own
                outcome.response.headers.extend(self._dynamic(request))
                return outcome
        try:
            if kind is Encoded:  # the same bytes for the same state: the reply is kept
                return self._replies(request).kept(outcome.body)
            if kind is dict:  # the common reply
                return self._replies(request).made(to_json(outcome).encode())
            return self._response(request, outcome)
        except Exception:
            log.exception("bad reply value for %s %s", request.method, request.target)
            failed = {
                "error": "handler-failed",
                "message": "the handler's reply cannot be sent; see the server log",
            }
            return self._response(request, Answer(500, failed))

    @staticmethod
    def _dynamic(request: http.Request) -> list[tuple[str, str]]:
        """The headers of every `/?` reply: no caching, and the session's id."""
        session = request.session
        return [*NO_CACHE, ("HTTaP-Session", str(session.id if session else 0))]

    def _replies(self, request: http.Request) -> _SessionReplies:
        """The 200 JSON replies of the request's session: their headers are the same on
        every reply to a session, so they are encoded once per session (`_heads`)."""
        session = request.session
        replies = self._heads.get(session.id if session else 0)
        if replies is None:
            replies = _SessionReplies([JSON, *self._dynamic(request)])
            if len(self._heads) >= MAX_SESSIONS:
                self._heads.clear()
            self._heads[session.id if session else 0] = replies
        return replies

    def _response(self, request: http.Request, outcome: Any) -> http.Response:
        dynamic = self._dynamic(request)
        status, headers = 200, ()
        if isinstance(outcome, Exception):
            outcome = self._failure(request, outcome)
        if isinstance(outcome, Answer):
            status, headers, outcome = outcome.status, outcome.headers, outcome.value
        elif isinstance(outcome, http.Response):
            # A copy: the app may return the same Response to every client, and each
            # reply carries its own session.
            present = {name.lower() for name, _ in outcome.headers}
            extra = [h for h in dynamic if h[0].lower() not in present]
            return http.Response(
                outcome.status, [*outcome.headers, *extra], outcome.body, outcome.file
            )
        elif outcome is None:
            status = 204
        if outcome is None:
            return http.Response(status, [*dynamic, *headers])
        if isinstance(outcome, (bytes, bytearray)):
            return http.Response(status, [OCTETS, *dynamic, *headers], bytes(outcome))
        return http.Response(status, [JSON, *dynamic, *headers], to_json(outcome).encode())

    def _failure(self, request: http.Request, err: Exception) -> Answer:
        """The answer to an exception: HTTPError its own, Busy 503 with Retry-After,
        GpioError 500 `gpio-error`, anything else 500 `handler-failed` (logged)."""
        if isinstance(err, http.HTTPError):
            return Answer(err.status, {"error": err.code, "message": err.message}, err.headers)
        if isinstance(err, Busy):
            return self._busy(err)
        if isinstance(err, GpioError):
            log.error("GPIO failure for %s %s: %s", request.method, request.target, err)
            return Answer(500, {"error": "gpio-error", "message": str(err)})
        log.error("handler failed for %s %s", request.method, request.target, exc_info=err)
        message = "the handler raised an exception; see the server log"
        return Answer(500, {"error": "handler-failed", "message": message})

    def _busy(self, busy: Busy) -> Answer:
        timeout = self.config.timeouts.inactivity
        retry = max(1, math.ceil(timeout - self.lease.holder_idle(self.loop.now)))
        return Answer(
            503,
            {
                "error": "busy",
                "message": f"another client drives the hardware: {busy.holder}, for"
                f" {busy.held_for:.1f} s, until it lets go (at most {timeout:g} s after its"
                f" last request); {busy.what}",
                "holder": busy.holder,
                "held_for": round(busy.held_for, 3),
            },
            (("Retry-After", str(retry)),),
        )

    # -- stopping ------------------------------------------------------------------

    def stop(self) -> None:
        """The server is stopping: answer the long-polls, end the pulses, then the event
        streams (which hear the pulses' ends) now, so that their connections can finish
        instead of waiting out the stop's grace period."""
        self.watches.stop()
        self.pins.end_pulses()
        self.events.stop()


class _SessionReplies:
    """One session's 200 JSON replies: `headers` (the JSON type, no-cache, the session)
    and their `head`, encoded once, to which each reply adds its Content-Length
    (`made`); and the replies of the bodies a room keeps (`Encoded`), kept whole as
    well (`kept`): the same state to the same session is the same bytes. At most
    KEPT_REPLIES of them; cleared when full. The headers list is shared, and the kept
    replies are sent again: frozen, as every sent Response is."""

    __slots__ = ("head", "headers", "replies")

    def __init__(self, headers: list[tuple[str, str]]) -> None:
        self.headers = headers
        self.head = http.encode_head(200, headers, None)
        self.replies: dict[bytes, http.Response] = {}  # body -> its reply

    def made(self, body: bytes) -> http.Response:
        return http.Response(200, self.headers, body, head=self.head)

    def kept(self, body: bytes) -> http.Response:
        reply = self.replies.get(body)
        if reply is None:
            if len(self.replies) >= KEPT_REPLIES:
                self.replies.clear()
            reply = self.replies[body] = self.made(body)
        return reply


def params(query: str) -> dict[str, str]:
    """The PARAMS of a dynamic target, form-decoded as browsers encode them (WHATWG URL
    standard, application/x-www-form-urlencoded: `+` is a space, and bytes that are not
    UTF-8 once percent-decoded become U+FFFD). A name given twice is 400 `bad-param`:
    which of the two counts would be a guess."""
    decoded: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in decoded:
            raise http.HTTPError(400, "bad-param", f"the parameter {shown(name)} is given twice")
        decoded[name] = value
    return decoded
