"""One connection's state machine: its buffers, its deadline and its requests in order.

Rules of this file:
- Every state of a connection and every move between them is here. The state is
  derived in one place, `state_of`, from the facts below, in this order; `_settle`
  applies it. Each state's deadline is the row of DEADLINES below, armed on entering
  the state:

      state     when                                       reads  deadline, counted from
      CLOSED    the socket is closed                        -      -
      HANDSHAKE an https connection before its TLS session  yes    timeouts.parse, from accept
                is set up: the first byte tells TLS from
                plain HTTP (answered 400), then the TLS
                handshake runs; a failure closes silently
      LINGER    all is sent and our side is shut: input is  drops  LINGER seconds
                read and dropped until the client closes,
                so that its unread bytes do not turn our
                last response into a reset
      CLOSING   no more requests will be read: the last     no     timeouts.inactivity, from the
                response is being written                          last send progress
      BUSY      a reply is queued and the client is slow    no*    timeouts.inactivity, from the
                to read it (back-pressure), or requests            reply's queuing or the last
                wait for their turn                                send progress
      WAITING   a reply is pending (a long-poll, a serial   yes*   none: the reply's own timer
                wait, a slow action, a held sign-in)               (a wait, a serial timeout)
                                                                   ends it
      BODY      a head is in, its body is arriving          yes    timeouts.request, from the head
      HEAD      part of a head has arrived                  yes    timeouts.parse, from byte one
      IDLE      kept alive, nothing buffered or in flight   yes    timeouts.inactivity, from the
                                                                   end of the last reply

  (*) while a reply is pending or requests wait for their turn, reading goes on up to
  a bound so that a reset or a close from the client is seen at once.
- So a timeout never closes a connection while a reply for it is pending or queued:
  WAITING has no deadline, and a queued reply is timed from its queuing, never from
  the request that asked for it. Only a client that reads nothing of it for
  timeouts.inactivity is dropped.
- Requests run one at a time in arrival order. A pending reply (a long-poll, a serial
  transaction) holds back the requests behind it on this connection only; responses
  therefore leave in request order by construction.
- At most REQUESTS_PER_TURN pipelined requests run per loop iteration; the rest wait
  for the next iteration, so one client cannot starve the others.
- A protocol error is answered (status and a one-line message), then the connection
  closes. A timeout in HEAD or BODY is answered with 408; in the others the connection
  closes silently.
- The session sees the connection's activity (`Session.last_active`): the start of
  every request and the end of every reply (entering IDLE) count, so `/?ping`'s Remain
  and the lease's idle time agree with the inactivity deadline.
- Every reply, whoever made it, gets the owner's `reply_headers` (CORS; None when
  there are none) as it is queued.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Optional

from httap import http
from httap.loop import READ, WRITE

if TYPE_CHECKING:
    from httap.loop import Handle
    from httap.server import Server
    from httap.tls import Secure

log = logging.getLogger("httap.connection")

HANDSHAKE, IDLE, HEAD, BODY, WAITING, BUSY, CLOSING, LINGER, CLOSED = (
    "HANDSHAKE",
    "IDLE",
    "HEAD",
    "BODY",
    "WAITING",
    "BUSY",
    "CLOSING",
    "LINGER",
    "CLOSED",
)

REQUESTS_PER_TURN = 8
RECV_SIZE = 65536
HIGH_WATER = 256 * 1024  # bytes queued for the client before we stop running requests
SENDFILE_SLICE = 128 * 1024
SENDFILE_SLICES_PER_TURN = 8
INLINE_BODY = 64 * 1024  # bodies up to this size are joined to their head in one buffer
LINGER_SECONDS = 2.0

# The deadline of each state: the timeout that bounds it (a field of config.timeouts, or
# "linger" for LINGER_SECONDS), and what its expiry answers: a 408 that says what did not
# arrive, or None to close silently. A state that is not here has no deadline.
DEADLINES: dict[str, tuple[str, Optional[str]]] = {
    HANDSHAKE: ("parse", None),
    IDLE: ("inactivity", None),
    HEAD: ("parse", "the request head did not arrive"),
    BODY: ("request", "the body did not arrive"),
    BUSY: ("inactivity", None),
    CLOSING: ("inactivity", None),
    LINGER: ("linger", None),
}


def state_of(
    closing: bool, writing: bool, scheduled: bool, pending: bool, partial: bool, buffered: int
) -> str:
    """The state of an open connection past its handshake, from the facts (see the table):
    the last response is queued; output is queued; requests wait for the next turn; a
    reply is pending; a body is arriving; bytes of a head have arrived (a count)."""
    if closing:
        return CLOSING
    if writing or scheduled:
        return BUSY
    if pending:
        return WAITING
    if partial:
        return BODY
    if buffered:
        return HEAD
    return IDLE


class Pending:
    """A reply that is not ready yet. The handler returns it; a timer or an event calls
    `resolve(value)` later. `on_cancel(fn)` runs if the connection ends first.

    `convert`, set by whoever hands the Pending out, turns the value into a Response
    (the manager turns an action's dict into JSON this way). It is applied when the
    reply is delivered, so a Pending may even be resolved before it is returned.
    """

    __slots__ = ("_cancel", "_connection", "convert", "done", "resolved", "value")

    def __init__(self) -> None:
        self._connection: Optional[Connection] = None
        self._cancel: list[Callable[[], Any]] = []
        self.convert: Optional[Callable[[Any], http.Response]] = None
        self.done = False  # resolved or cancelled
        self.resolved = False
        self.value: Any = None

    def on_cancel(self, callback: Callable[[], Any]) -> None:
        self._cancel.append(callback)

    def resolve(self, value: Any) -> None:
        if self.done:
            return
        self.done = self.resolved = True
        self.value = value
        self._cancel.clear()
        if self._connection is not None:
            self._connection._resolved(self.response())

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
        request held back, then routed, may get a reply that is itself pending."""
        if not isinstance(reply, Pending):
            self.resolve(reply)
            return
        connection = self._connection
        if self.done or connection is None or connection.pending is None:
            reply.cancel()  # nobody waits for this one any more
            return
        self.done = True
        self._cancel.clear()
        if reply._connection is not None or (reply.done and not reply.resolved):
            log.error("a Pending was handed over twice or after it was cancelled")
            connection._resolved(
                http.error_response(500, "internal server error: a reply used twice")
            )
            return
        connection.pending = (connection.pending[0], reply)
        reply._connection = connection
        if reply.resolved:
            connection._resolved(reply.response())

    def cancel(self) -> None:
        """The client went away: nobody will read the reply."""
        if self.done:
            return
        self.done = True
        callbacks, self._cancel = self._cancel, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("cancel callback %r failed", callback)


class Connection:
    """One accepted socket, from its first byte to its close."""

    def __init__(
        self, server: Server, sock: socket.socket, client: tuple, secure: Optional[Secure] = None
    ) -> None:
        self.server = server
        self.loop = server.loop
        self.sock: Any = sock  # a socket, or a tls.Stream once the handshake starts
        self.client = client
        self.session: Any = None
        self.secure = secure  # the listener's TLS set-up, until the handshake is done
        self.tls = False  # the requests arrive over TLS
        self.state = HANDSHAKE if secure is not None else IDLE
        self.events = READ
        limits = server.config.limits
        self.parser = http.Parser(limits.uri, limits.header, limits.body)
        self.requests = 0
        self.pending: Optional[tuple[http.Request, Pending]] = None
        self.out: list[Any] = []  # bytes or memoryview, in order
        self.out_size = 0
        self.file: Optional[list] = None  # [fd, offset, remaining] being sent
        self.closing = False  # the last response is queued
        self.eof = False  # the client sent FIN
        self.continued = False  # 100 Continue sent for the current partial request
        self.settled_requests = 0  # self.requests when the deadline was last set
        self.scheduled = False  # _process queued for the next turn
        self.deadline = 0.0
        self.timer: Optional[Handle] = None
        self.started = 0.0  # when the running request started, for the access log

    def start(self) -> None:
        self.loop.register(self.sock, READ, self)
        self._arm_for(self.state)

    # -- events from the loop ----------------------------------------------------

    def on_event(self, mask: int) -> None:
        if self.state == LINGER:
            self._drop_input()
            return
        if self.state == HANDSHAKE:
            self._handshake()
            if self.state != IDLE:
                return
            mask = READ  # the request may have come with the handshake's last flight
        if mask & READ:
            self._read()
        if mask & WRITE and self.state != CLOSED:
            self._flush()
        if self.state != CLOSED:
            self._process()

    def _read(self) -> None:
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.abort()
            return
        if data:
            self.parser.feed(data)
        elif self.pending is not None:
            self.abort()  # the client has gone: nobody waits for the pending reply
        else:
            self.eof = True

    def _handshake(self) -> None:
        """HANDSHAKE: tell TLS from plain HTTP by the first byte, then advance TLS."""
        secure = self.secure
        assert secure is not None
        if not self.tls:
            first = secure.sniff(self.sock)
            if first == "wait":
                return
            if first != "tls":
                self.secure = None
                self.state = IDLE
                if first == "gone":
                    self.close()
                else:
                    self.refuse(400, "bad request: this port speaks HTTPS; use an https:// URL")
                return
            self._watch(0)  # the wrapped socket is another object for the loop
            self.sock = secure.wrap(self.sock)
            self.tls = True
        try:
            wanted = self.sock.handshake()
        except OSError as err:  # ssl.SSLError is one: a client that failed the handshake
            log.debug("TLS handshake with %s failed: %s", self.client, err)
            self.close()
            return
        if wanted:
            self._watch(wanted)
            return
        self.secure = None
        self.state = IDLE
        self._arm_for(IDLE)

    def _drop_input(self) -> None:
        try:
            if self.sock.recv(RECV_SIZE):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self.close()

    def _process(self) -> None:
        """Run the requests that are complete, in order, within this turn's budget."""
        self.scheduled = False
        parser = self.parser
        budget = REQUESTS_PER_TURN
        blocked = False  # stopped by output still queued, not by a lack of requests
        while self.pending is None and not self.closing:
            if self.file is not None or self.out_size >= HIGH_WATER:
                blocked = True
                break
            if not budget:
                if parser.buffered and not self.scheduled:
                    self.scheduled = True
                    self.loop.call_soon(self._process)
                break
            try:
                request = parser.next_request()
            except http.ProtocolError as err:
                self._answer_error(err.status, err.message, err.request)
                break
            if request is None:
                break
            budget -= 1
            self.continued = False
            self._run(request)
        if self.state == CLOSED:
            return
        if self.eof and self.pending is None and not self.scheduled and not blocked:
            self.closing = True  # answer what was complete, then close
        self._continue_if_expected()
        self._flush()
        if self.state == CLOSED:
            return
        if blocked and self.file is None and not self.out and not self.scheduled:
            # The flush above drained what held the requests back: run them next.
            self.scheduled = True
            self.loop.call_soon(self._process)
        self._settle()

    def _run(self, request: http.Request) -> None:
        self.requests += 1
        request.client = self.client
        request.session = self.session
        request.tls = self.tls
        if self.server.logs is not None:
            self.started = self.server.logs.request(self, request)
        try:
            reply = self.server.route(request)
        except Exception:
            log.exception("handler failed for %r", request)
            reply = http.error_response(500, "internal server error: the handler failed")
        if self.session is not None:  # activity: stamped once routed, for the handler
            self.session.last_active = self.loop.now  # (/?ping) reads the time before it
        if isinstance(reply, Pending):
            if reply._connection is not None or (reply.done and not reply.resolved):
                log.error("a Pending was returned twice or after it was cancelled: %r", request)
                reply = http.error_response(500, "internal server error: a reply used twice")
            elif not reply.resolved:
                self.pending = (request, reply)
                reply._connection = self
                return
            else:
                reply = reply.response()
        self._emit(request, reply)

    def _resolved(self, response: http.Response) -> None:
        """A pending reply is ready: send it, and run what waited behind it in a turn of
        its own, never inside the handler that resolved it."""
        if self.pending is None or self.state == CLOSED:
            return
        request = self.pending[0]
        self.pending = None
        self._emit(request, response)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._process)

    # -- output ------------------------------------------------------------------

    def _emit(self, request: http.Request, response: http.Response) -> None:
        """Queue `response` to `request`'s head and body, in order."""
        try:
            response.head_bytes()  # encoded once and kept; a bad header fails here
            if not isinstance(response.body, bytes):
                raise TypeError(f"the body is {type(response.body).__name__}, not bytes")
        except (AttributeError, TypeError, ValueError, UnicodeEncodeError):
            log.exception("cannot send the reply to %r", request)
            response = http.error_response(
                500, "internal server error: a reply that cannot be sent as it is"
            )
        limit = self.server.config.limits.requests
        keep_alive = (
            request.keep_alive
            and not self.server.stopping
            and not (limit and self.requests >= limit)
        )
        if not keep_alive:
            connection = http.CLOSE_LINE
            self.closing = True
        elif request.version == "HTTP/1.0":
            connection = http.KEEP_ALIVE_LINE
        else:
            connection = b""
        file = response.file
        if file is not None and request.method != "HEAD":
            try:
                fd = os.open(file.path, os.O_RDONLY | os.O_NONBLOCK)
            except OSError as err:
                if err.errno in (errno.EMFILE, errno.ENFILE):
                    response = http.error_response(
                        503, "service unavailable: too many files open; try again shortly"
                    )
                else:
                    response = http.error_response(404, "not found: the file has just gone")
                file = None
            else:
                self.file = [fd, file.offset, file.length]
        extra = self.server.reply_headers
        head = (
            response.head_bytes()
            + (b"" if extra is None else extra(request, response))
            + http.date_line()
            + connection
            + b"\r\n"
        )
        body = response.body
        if request.method == "HEAD" or not body:
            self.out.append(head)
            self.out_size += len(head)
        elif len(body) <= INLINE_BODY:
            self.out.append(head + body)
            self.out_size += len(head) + len(body)
        else:
            self.out.append(head)
            self.out.append(body)
            self.out_size += len(head) + len(body)
        if self.server.logs is not None:
            sent = 0 if request.method == "HEAD" else response.length
            self.server.logs.response(self, request, response.status, head, sent, self.started)

    def _answer_error(
        self, status: int, message: str, request: Optional[http.Request] = None
    ) -> None:
        """Answer a protocol error or a timeout, then close. `request` is the request
        whose head was read, when there is one: its reply gets the owner's headers too."""
        self.closing = True
        response = http.error_response(status, message)
        extra = self.server.reply_headers
        lines = b"" if request is None or extra is None else extra(request, response)
        head = response.head_bytes() + lines + http.date_line() + http.CLOSE_LINE + b"\r\n"
        self.out.append(head + response.body)
        self.out_size += len(head) + len(response.body)
        if self.server.logs is not None:
            self.server.logs.response(self, None, status, head, len(response.body), None)

    def _continue_if_expected(self) -> None:
        partial = self.parser.partial
        if (
            partial is not None
            and partial.expect_continue
            and not self.continued
            and self.pending is None
            and not self.closing
        ):
            self.continued = True
            self.out.append(http.CONTINUE)
            self.out_size += len(http.CONTINUE)

    def _flush(self) -> None:
        """Send what is queued, as far as the socket takes it; then the file, in slices."""
        out = self.out
        while out:
            data = out[0] if len(out) == 1 else b"".join(out)
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.abort()
                return
            if sent < len(data):
                out[:] = [memoryview(data)[sent:]]
                self.out_size = len(data) - sent
                if sent:
                    self._progress()
                return
            out.clear()
            self.out_size = 0
        if self.file is not None and not self._send_file():
            return
        if self.closing and self.pending is None:
            self._linger()

    def _linger(self) -> None:
        """All is sent: shut our side, then wait for the client's close (or a reset)."""
        if self.eof:
            self.close()
            return
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()
            return
        self.state = LINGER
        self._arm_for(LINGER)
        self._watch(READ)

    def _send_file(self) -> bool:
        """Send up to a few slices of the file; True when it is all sent."""
        file = self.file
        assert file is not None
        fd, offset, remaining = file
        sock_fd = self.sock.fileno()
        send = self.sock.send_file if self.tls else partial(os.sendfile, sock_fd)
        for _ in range(SENDFILE_SLICES_PER_TURN):
            try:
                sent = send(fd, offset, min(remaining, SENDFILE_SLICE))
            except (BlockingIOError, InterruptedError):
                break
            except OSError as err:
                if err.errno != errno.EAGAIN:
                    self.abort()
                    return False
                break
            if sent == 0:  # the file shrank under us: the promised length cannot be met
                self.abort()
                return False
            offset += sent
            remaining -= sent
            if not remaining:
                os.close(fd)
                self.file = None
                self._progress()
                return True
        file[1], file[2] = offset, remaining
        self._progress()
        return False

    def _progress(self) -> None:
        """Bytes went out: a slow but moving reader is not idle (BUSY, CLOSING)."""
        self.deadline = self.loop.now + self.server.config.timeouts.inactivity

    # -- state, deadline and interest --------------------------------------------

    def _settle(self) -> None:
        """Decide the state from the facts, and with it the deadline and the events."""
        if self.state in (HANDSHAKE, LINGER, CLOSED):
            return
        previous = self.state
        writing = bool(self.out) or self.file is not None
        pending = self.pending is not None
        buffered = self.parser.buffered
        state = state_of(
            self.closing,
            writing,
            self.scheduled,
            pending,
            self.parser.partial is not None,
            buffered,
        )
        if self.server.stopping and state in (IDLE, HEAD, BODY):
            self.close()  # the server is stopping and what was in flight is done
            return
        if state != previous or self.requests != self.settled_requests:
            self.state = state
            self.settled_requests = self.requests
            self._arm_for(state)
            if state == IDLE and self.session is not None:
                self.session.last_active = self.loop.now  # the inactivity timer starts here
        events = WRITE if writing else 0
        if not self.eof and (
            state in (IDLE, HEAD, BODY) or ((pending or self.scheduled) and buffered < HIGH_WATER)
        ):
            events |= READ
        self._watch(events)

    def _watch(self, events: int) -> None:
        """Tell the loop which readiness to wait for: none unregisters the socket."""
        if events == self.events:
            return
        previous, self.events = self.events, events
        if not events:
            self.loop.unregister(self.sock)
        elif previous:
            self.loop.modify(self.sock, events, self)
        else:
            self.loop.register(self.sock, events, self)

    def _arm_for(self, state: str) -> None:
        """Entering `state`: its deadline (DEADLINES) from now, or none at all."""
        row = DEADLINES.get(state)
        if row is None:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            return
        self._arm(self.loop.now + self._seconds(row[0]))

    def _seconds(self, timeout: str) -> float:
        """The length of a timeout named in DEADLINES, in seconds."""
        if timeout == "linger":
            return LINGER_SECONDS
        return getattr(self.server.config.timeouts, timeout)

    def _arm(self, deadline: float) -> None:
        """Set the deadline; the timer is only rescheduled when it must fire earlier."""
        self.deadline = deadline
        if self.timer is None or deadline < self.timer.when:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.loop.call_at(deadline, self._on_deadline)

    def _on_deadline(self) -> None:
        self.timer = None
        row = DEADLINES.get(self.state)
        if row is None:  # WAITING or CLOSED: no deadline applies
            return
        if self.loop.now < self.deadline:
            self.timer = self.loop.call_at(self.deadline, self._on_deadline)
            return
        timeout, missing = row
        if missing is None:
            self.close()
            return
        self._answer_error(
            408,
            f"request timeout: {missing} within {self._seconds(timeout):g} s (timeouts.{timeout})",
            self.parser.partial,
        )
        self._flush()
        if self.state != CLOSED:
            self._settle()

    # -- the end -----------------------------------------------------------------

    def refuse(self, status: int, message: str) -> None:
        """Answer at once, before any request is read (over a limit), then close."""
        self._answer_error(status, message)
        self._flush()
        self._settle()

    def shutdown(self) -> None:
        """The server is stopping: close now if nothing is in flight, else after it."""
        if self.state in (HANDSHAKE, IDLE, HEAD, BODY):
            self.close()

    def abort(self) -> None:
        """Drop the connection at once (a reset, a send error, a handler bug)."""
        self.out.clear()
        self.close()

    def close(self) -> None:
        if self.state == CLOSED:
            return
        self.state = CLOSED
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.file is not None:
            os.close(self.file[0])
            self.file = None
        if self.pending is not None:
            self.pending[1].cancel()
            self.pending = None
        self._watch(0)
        try:
            self.sock.close()
        except OSError:
            pass
        self.server.connection_closed(self)
