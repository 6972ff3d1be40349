"""What a room of the `/?` domain may return, and what every room reads a request with.

A room answers the rows of the dispatch table that name it (manager/__init__.py). A
row's `run(request, target)` returns an outcome, and the dispatch, never the room, turns
it into the reply (`Manager.finish`):
- a JSON value: 200 with it;
- an `Encoded`: a JSON object the room has encoded already (and keeps): 200 with it;
- an `Answer`: another status, a body of raw bytes or none, headers of its own;
- an `http.Response` (an action's own), bytes (raw, 200), or None (204);
- a `Change`: a change of the hardware that the lease must allow first; the dispatch
  applies the row's lease column, then makes the change and finishes what it returns;
- a `Pending`, resolved later with any of these, or with an exception;
- a `Stream` (reply.py), whose body is sent in parts and never ends (`/?events`);
- an `Upload` (reply.py), on a row whose `streamed` methods hold the request's: the
  body then comes to it in parts, after the head was accepted, and its `end()` gives
  the outcome;
- or it raises: HTTPError (its own status), Busy (503), GpioError (500 `gpio-error`),
  anything else (500 `handler-failed`, logged).
A row whose resource takes a name (`gpio/NAME`) also has a `find(name)` that returns
the target or raises 404; it runs before the method is checked, so that an unknown name
is 404 whatever the method.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional

from httap import http
from httap.config import Range
from httap.pins import Cause

READS = frozenset(("GET", "HEAD"))  # the methods that change nothing
# The lease column of a row: what a Change there needs from the lease (session.py).
WRITES = "writes"  # a write takes the lease; reads stay open to everyone
ALL = "all"  # a write takes it; a read needs that nobody else holds it
to_json = http.json_encoder()  # a reply's JSON text (NaN and infinities as Python writes them)
# A number in a query parameter: plain decimal digits, no sign or exponent.
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


class Row:
    """One resource of the `/?` vocabulary: `resource` as docs/protocol.md writes it
    ("gpio/NAME"); `methods`, the Allow header's list; `lease`, what a Change there
    needs (WRITES, ALL, or None where nothing changes); `run(request, target)`, the
    room's answer; `find(name)`, the target a name after the resource gives (None: the
    row takes no name). `allowed` is the set of methods (`methods` unless given);
    `streamed`, the methods whose body the room takes in parts (an Upload) instead of
    whole in memory (limits.body)."""

    __slots__ = ("allowed", "find", "lease", "methods", "named", "resource", "run", "streamed")

    def __init__(
        self,
        resource: str,
        methods: str,
        lease: Optional[str],
        run: Callable[[http.Request, Any], Any],
        find: Optional[Callable[[Optional[str]], Any]] = None,
        allowed: Optional[frozenset] = None,
        streamed: frozenset = frozenset(),
    ) -> None:
        self.resource = resource
        self.methods = methods
        self.lease = lease
        self.run = run
        self.find = find
        self.allowed = allowed if allowed is not None else frozenset(methods.split(", "))
        self.named: Optional[Row] = None  # the row for a name after this resource
        self.streamed = streamed

    def __repr__(self) -> str:
        return f"<Row /?{self.resource} {self.methods} lease={self.lease}>"


class Answer:
    """A reply other than 200 with a JSON value: `status`, `value` (a JSON value, bytes
    sent as application/octet-stream, or None for no body) and `headers` of its own,
    which follow the ones every `/?` reply carries."""

    __slots__ = ("headers", "status", "value")

    def __init__(self, status: int, value: Any = None, headers: tuple = ()) -> None:
        self.status = status
        self.value = value
        self.headers = headers


class Encoded(dict):
    """A JSON object with its encoding: the dict itself, and `body`, its JSON as UTF-8
    bytes, answered as 200 like the dict would be. A room keeps one for a value it
    sends again and again (a pin's state: it has as many as the pin has levels), so
    that its text is encoded once. Frozen: `body` would no longer say what it holds."""

    __slots__ = ("body",)

    def __init__(self, value: dict) -> None:
        super().__init__(value)
        self.body = to_json(value).encode()


class Change:
    """A change of the hardware, checked and ready: `refused` says, for a 503 when
    another client holds the lease, what was refused and what stays open ("writing pin
    led is refused; reading pins stays open"); `make()` makes it and returns the
    outcome."""

    __slots__ = ("make", "refused")

    def __init__(self, refused: str, make: Callable[[], Any]) -> None:
        self.refused = refused
        self.make = make


def cause_of(request: http.Request) -> Cause:
    """The request as the audit names who changed a pin."""
    client = request.client[0] if request.client else "-"
    if request.user is not None:
        client += f" user={request.user}"
    return Cause(getattr(request.session, "id", "-"), client, f"{request.method} {request.target}")


def param(
    request: http.Request, name: str, span: Range, default: Any = None, note: str = ""
) -> Any:
    """The query parameter `name` as a number in `span` (`default` when it is absent);
    400 `bad-value` giving the range (and `note`) otherwise. Only plain decimals are
    read: no sign, exponent, "nan" or "inf"; a long run of digits is out of every range
    and never converted."""
    text = request.params.get(name)
    if text is None:
        return default
    value: Any = None
    if _DECIMAL.fullmatch(text):
        if not span.integer:
            value = float(text)
        elif text.isdigit() and len(text.lstrip("0")) <= 30:
            value = int(text)
    if not span.holds(value):
        raise http.HTTPError(400, "bad-value", f"{name} is {span}{note}")
    return value


def no_such(path: str, hint: str = "GET /? lists the services") -> http.HTTPError:
    """404 `not-found` for `/?PATH`, with a hint of what exists."""
    return http.HTTPError(404, "not-found", f"no such resource: /?{path}; {hint}")


def nothing_after(resource: str, hint: str) -> Callable[[Optional[str]], None]:
    """The `find` of a row whose path is its resource alone: anything after a `/` is
    404 `no_such` with `hint`."""

    def find(name: Optional[str]) -> None:
        if name is not None:
            raise no_such(f"{resource}/{name}", hint)

    return find
