"""Pending: a reply that is not ready yet; Stream: a reply whose body comes in parts and
may never end. Neither knows a connection.

A handler that must wait (a long-poll, a serial transaction, a slow action, a held
sign-in) returns a Pending; a timer or an event calls `resolve(value)` later. Whoever
delivers replies (a connection) binds it with `bind(deliver)`: `deliver(response)` is
then called once, when the value is there, and `cancel()` tells the Pending that nobody
waits any more (the client went away), which runs its `on_cancel` callbacks.

A Pending delivers at most once: a second `resolve` is ignored, and one that was bound
already, cancelled or handed over is `taken` (returned again as a reply: its receiver
answers 500).

A Stream (the event streams of manager/events.py) is returned, or resolves a Pending,
like a Response; its receiver binds it with `bind(send, end)` and sends its head and
first part. Then `write(data)` hands each later part to `send(data)` at once, and `end()`
has its receiver finish the body. Either side may end it: the server with `end()`, the
receiver with `cancel()` (the client went away, or left too much unread); `on_close`
callbacks run once, whichever it was.

An Upload is the other way round: a request body that its handler takes in parts as it
arrives, never whole in memory. The handler returns it in the place of a reply, for a
request whose head it has accepted (only a head whose row streams its body: see
http.Parser's `streams`); its receiver binds it (`bind(resume)`) and hands it each part
(`feed`), then asks for the reply at the end (`finish`), or `cancel()`s it when the body
will not come whole.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from httap import http

log = logging.getLogger("httap.reply")


class Pending:
    """A reply that is not ready yet. The handler returns it; a timer or an event calls
    `resolve(value)` later. `on_cancel(fn)` runs if the client goes away first.

    `convert`, set by whoever hands the Pending out, turns the value into a Response
    (the manager turns an action's dict into JSON this way). It is applied when the
    reply is delivered, so a Pending may even be resolved before it is returned.
    """

    __slots__ = ("_cancel", "_deliver", "convert", "done", "resolved", "value")

    def __init__(self) -> None:
        self._deliver: Optional[Callable[[http.Response], Any]] = None
        self._cancel: list[Callable[[], Any]] = []
        self.convert: Optional[Callable[[Any], http.Response]] = None
        self.done = False  # resolved, cancelled or handed over
        self.resolved = False
        self.value: Any = None

    @property
    def taken(self) -> bool:
        """Bound to a receiver already, or cancelled or handed over: returning it (again)
        as a reply is a bug, answered 500."""
        return self._deliver is not None or (self.done and not self.resolved)

    def bind(self, deliver: Callable[[http.Response], Any]) -> None:
        """Have `deliver(response)` send this reply: once it resolves, or at once if it
        has. Call it only on a Pending that is not `taken`."""
        self._deliver = deliver
        if self.resolved:
            deliver(self.response())

    def on_cancel(self, callback: Callable[[], Any]) -> None:
        self._cancel.append(callback)

    def resolve(self, value: Any) -> None:
        if self.done:
            return
        self.done = self.resolved = True
        self.value = value
        self._cancel.clear()
        if self._deliver is not None:
            self._deliver(self.response())

    def response(self) -> http.Response:
        """The resolved value as a Response."""
        if self.convert is None:
            return self.value
        try:
            return self.convert(self.value)
        except Exception:
            log.exception("cannot turn %r into a reply", self.value)
            return http.error_response(500, "internal server error: bad reply value")

    def hand_over(self, reply: Any) -> None:
        """Let `reply` (a Response, or another Pending) answer in this one's place: a
        request held back, then routed, may get a reply that is itself pending. From then
        on, cancelling this one cancels `reply`."""
        if not isinstance(reply, Pending):
            self.resolve(reply)
            return
        deliver = self._deliver
        if self.done or deliver is None:
            reply.cancel()  # nobody waits for this one any more
            return
        self.done = True
        if reply.taken:
            self._cancel.clear()
            log.error("a Pending was handed over twice or after it was cancelled")
            deliver(http.error_response(500, "internal server error: a reply used twice"))
            return
        self._cancel = [reply.cancel]
        reply.bind(deliver)

    def cancel(self) -> None:
        """The client went away: nobody will read the reply. The `on_cancel` callbacks
        run once; none run once it has resolved."""
        if self.resolved:
            return
        self.done = True
        callbacks, self._cancel = self._cancel, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("cancel callback %r failed", callback)


class Stream:
    """A reply whose body is sent in parts as they happen and may never end: `response`
    gives its status and headers, and its body is the first part; `limit` is how many
    bytes its client may leave unread before the receiver ends it (a reader that does
    not keep up is never waited for). Parts written before it is bound wait for it."""

    __slots__ = ("_end", "_on_close", "_send", "closed", "limit", "parts", "response")

    def __init__(self, response: http.Response, limit: int) -> None:
        self.response = response
        self.limit = limit
        self.parts: list[bytes] = []  # written before `bind`
        self.closed = False
        self._send: Optional[Callable[[bytes], bool]] = None
        self._end: Optional[Callable[[], Any]] = None
        self._on_close: list[Callable[[], Any]] = []

    def bind(self, send: Callable[[bytes], bool], end: Callable[[], Any]) -> None:
        """Have `send(part)` send each part (False: the stream is over) and `end()`
        finish the body; the parts written so far go first."""
        self._send, self._end = send, end
        parts, self.parts = self.parts, []
        for part in parts:
            if not send(part):
                return

    def on_close(self, callback: Callable[[], Any]) -> None:
        self._on_close.append(callback)

    def write(self, data: bytes) -> bool:
        """Send one part now (or once bound); False when the stream is over."""
        if self.closed:
            return False
        if self._send is None:
            self.parts.append(data)
            return True
        return self._send(data)

    def end(self) -> None:
        """The server ends the stream: its receiver finishes the body."""
        end = self._end
        if self.closed:
            return
        self.cancel()
        if end is not None:
            end()

    def cancel(self) -> None:
        """The stream is over (its receiver says so when the client has gone or is past
        the limit); the `on_close` callbacks run, once."""
        if self.closed:
            return
        self.closed = True
        self.parts.clear()
        callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("close callback %r failed", callback)


class Upload:
    """The receiver of a request body streamed in parts, returned by a handler in the
    place of a reply once it has accepted the request's head (the gates, hosts, roles
    and https, have run on the head, before any byte of the body is read).

    A handler subclasses it and overrides:
    - `write(data)`: one part of the body (bytes, at most the connection's slice, 64
      KiB), in order, as it arrives. Raise (HTTPError...) to refuse the upload: the
      refusal is the reply, `abort()` runs, and the rest of the body is not read (the
      connection closes after the reply).
    - `end()`: the body is complete; returns the outcome the reply is made of (what a
      room may return, a Pending included), or raises (then `abort()` runs).
    - `abort()`: the body will not come whole (the client went away, stalled past
      timeouts.request, framed it badly, or `write`/the limit refused it), or `end()`
      raised: undo what was kept. Runs at most once, and never after `end()` returned.

    `limit` is the handler's own cap in bytes (None: none; limits.body does not apply
    to a streamed body): a Content-Length over it is refused with `too_large()` before
    any byte is read, so `Expect: 100-continue` gets the 413 instead of a 100; a body
    without one (chunked) is refused as soon as it grows past it.

    Flow control: while `behind` is True (say, the disk lags), the receiver stops
    reading the socket, so TCP holds the client back; the handler sets `behind` back
    to False and calls `resume()` when it can take more (from a loop callback: a
    bounded slice written per loop turn).

    `convert`, set by whoever hands the Upload out (the manager), turns an outcome or
    an exception into the reply, as for a Pending.
    """

    __slots__ = ("_resume", "behind", "convert", "done", "limit", "received", "request")

    def __init__(self, request: http.Request, limit: Optional[int] = None) -> None:
        self.request = request
        self.limit = limit
        self.received = 0  # bytes of the body taken so far
        self.behind = False
        self.done = False  # ended, refused or cancelled
        self.convert: Optional[Callable[[Any], Any]] = None
        self._resume: Optional[Callable[[], Any]] = None

    # -- what a handler overrides --------------------------------------------------

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def end(self) -> Any:
        raise NotImplementedError

    def abort(self) -> None:
        """Nothing to undo by default."""

    def too_large(self, size: Optional[int] = None) -> http.HTTPError:
        """413 `too-large`: the body is `size` bytes (None: it grew past the limit)."""
        what = "the body" if size is None else f"the body ({size} bytes)"
        return http.HTTPError(
            413, "too-large", f"{what} is over this upload's limit of {self.limit} bytes"
        )

    def resume(self) -> None:
        """The handler can take more: its receiver reads the socket again."""
        self.behind = False
        if self._resume is not None and not self.done:
            self._resume()

    # -- what its receiver calls -------------------------------------------------

    def bind(self, resume: Callable[[], Any]) -> Any:
        """Have `resume()` read on after the handler was `behind`. Returns the refusal
        reply when the declared Content-Length is over `limit`, else None."""
        self._resume = resume
        declared = self.request.headers.get("content-length")  # digits: the parser checked
        if self.limit is not None and declared is not None and int(declared) > self.limit:
            return self._refuse(self.too_large(int(declared)))
        return None

    def feed(self, data: bytes) -> Any:
        """Hand one part to `write`; None to go on, or the refusal reply (then the
        rest of the body is not wanted)."""
        self.received += len(data)
        try:
            if self.limit is not None and self.received > self.limit:
                raise self.too_large()
            self.write(data)
        except Exception as err:
            return self._refuse(err)
        return None

    def finish(self) -> Any:
        """The body is complete: the reply of `end()`, or of what it raised (then
        `abort()` runs)."""
        try:
            outcome = self.end()
        except Exception as err:
            return self._refuse(err)
        self.done = True
        return self._reply(outcome)

    def cancel(self) -> None:
        """The body will not come whole: `abort()`, once."""
        if not self.done:
            self.done = True
            try:
                self.abort()
            except Exception:
                log.exception("abort of %r failed", self)

    def _refuse(self, err: Exception) -> Any:
        self.cancel()
        return self._reply(err)

    def _reply(self, outcome: Any) -> Any:
        if self.convert is not None:
            return self.convert(outcome)
        if isinstance(outcome, http.HTTPError):
            return http.error_response(outcome.status, outcome.message)
        if isinstance(outcome, Exception):
            log.error("upload failed", exc_info=outcome)
            return http.error_response(500, "internal server error: the upload failed")
        return outcome
