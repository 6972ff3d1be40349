"""One connection's I/O: its buffers, its deadline and its requests in order.

It knows no server: whoever accepts it passes an owner (`Owner` below: a loop, the
limits and timeouts, `route`, `connection_closed`, the logs and the stop flag).

Rules of this file:
- The state of a connection is derived in one place, `state_of`, from the facts; only
  `_settle` applies it. What each state means is its row of STATES below: whether to
  read, which deadline bounds it (armed on entering it), what that deadline's expiry
  does, and whether a stopping server closes it at once. A change of policy is a row
  edit. The states, in `state_of`'s order:

      CLOSED    the socket is closed
      HANDSHAKE an https connection before its TLS session is set up: the first byte
                tells TLS from plain HTTP (answered 400), then the TLS handshake runs;
                a failure closes silently. The deadline counts from the accept.
      LINGER    all is sent and our side is shut: input is read and dropped until the
                client closes, so that its unread bytes do not turn our last response
                into a reset
      CLOSING   no more requests will be read: the last response is being written;
                its deadline counts from the last send progress
      RECEIVING a streamed body is arriving and its handler takes it in parts
                (`Receiving`); the deadline counts from the last part received
      BEHIND    the same, while the handler is behind (the disk lags): the socket is
                not read, so TCP holds the client back; no deadline, the lag is ours
      BUSY      a reply is queued and the client is slow to read it (back-pressure),
                or requests wait for their turn; the deadline counts from the reply's
                queuing or the last send progress
      STREAMING a reply's body is being streamed (an event stream: `Streamed`), all
                sent so far: no deadline; a reader that falls behind is ended by the
                stream's own bound of unread bytes, never waited for
      WAITING   a reply is pending (a long-poll, a serial wait, a slow action, a held
                sign-in): no deadline, the reply's own timer ends it
      BODY      a head is in, its body is arriving (the deadline counts from the head)
      HEAD      part of a head has arrived (the deadline counts from its first byte)
      IDLE      kept alive, nothing buffered or in flight (the deadline counts from the
                end of the last reply)

- So a timeout never closes a connection while a reply for it is pending or queued:
  WAITING has no deadline, and a queued reply is timed from its queuing, never from
  the request that asked for it. Only a client that reads nothing of it for
  timeouts.inactivity is dropped.
- Requests run one at a time in arrival order. A pending reply (a long-poll, a serial
  transaction) holds back the requests behind it on this connection only; responses
  therefore leave in request order by construction.
- At most REQUESTS_PER_TURN pipelined requests run per loop iteration, and none while
  HIGH_WATER bytes wait to be sent; the rest wait for the next iteration, so one client
  cannot starve the others.
- A protocol error is answered (status and a one-line message), then the connection
  closes.
- A streamed body (reply.Upload) is read only once its handler has accepted the head
  (then `Expect: 100-continue` is answered 100); a reply before its end (a refusal)
  closes the connection after it, as the rest of the body is never read
  (docs/protocol.md, Choices).
- A stream (reply.Stream) is the last reply on its connection: it stands where a
  pending reply would, its parts are queued as they come, and once it ends the
  connection closes. Each part sent is activity of the session, like a reply's end.
- The session sees the connection's activity (`Session.last_active`): the start of
  every request and the end of every reply (entering IDLE) count, so `/?ping`'s Remain
  and the lease's idle time agree with the inactivity deadline.
- How a response is framed is http.py's (`keep_alive`, `frame`); this file only
  queues and sends the bytes (and the file) that `frame` gives. Every reply, whoever
  made it, gets the owner's `reply_headers` (CORS; None when there are none) as it is
  queued.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from functools import lru_cache, partial
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional, Protocol, Union

from httap import http
from httap.loop import READ, WRITE
from httap.reply import Pending, Stream, Upload

if TYPE_CHECKING:
    from httap.config import Limits, Timeouts
    from httap.loop import Handle, Loop
    from httap.session import Session
    from httap.tls import Secure

log = logging.getLogger("httap.connection")

(
    CLOSED,
    HANDSHAKE,
    LINGER,
    CLOSING,
    RECEIVING,
    BEHIND,
    BUSY,
    STREAMING,
    WAITING,
    BODY,
    HEAD,
    IDLE,
) = (
    "CLOSED",
    "HANDSHAKE",
    "LINGER",
    "CLOSING",
    "RECEIVING",
    "BEHIND",
    "BUSY",
    "STREAMING",
    "WAITING",
    "BODY",
    "HEAD",
    "IDLE",
)

# What a state reads: YES, requests; BOUNDED, only while a reply is pending or requests
# wait for their turn, and up to HIGH_WATER bytes buffered, so that a reset or a close
# from the client is seen at once; NO; DRAIN, input dropped unread (LINGER); TLS, what
# the handshake asks for (the first byte, to begin).
YES, BOUNDED, NO, DRAIN, TLS = "yes", "bounded", "no", "drain", "tls"
# What a deadline's expiry does (CLOSE: close silently), or an Answer, sent before the
# close; and what a stopping server does (CLOSE at once: nothing is in flight; FINISH).
CLOSE, FINISH = "close", "finish"


class Answer(NamedTuple):
    """A timeout's answer: `status`, saying that `missing` did not arrive in time."""

    status: int
    missing: str


class Row(NamedTuple):
    reads: str  # YES, BOUNDED, NO, DRAIN or TLS
    deadline: Optional[str]  # a field of config.timeouts, "linger" or None: no deadline
    on_timeout: Union[str, Answer, None]  # CLOSE or an Answer; None with no deadline
    on_stop: str  # CLOSE or FINISH


# fmt: off
STATES: dict[str, Row] = {
    #          reads    deadline      on timeout                                     on stop
    CLOSED:    Row(NO,      None,         None,                                          FINISH),
    HANDSHAKE: Row(TLS,     "parse",      CLOSE,                                         CLOSE),
    LINGER:    Row(DRAIN,   "linger",     CLOSE,                                         FINISH),
    CLOSING:   Row(NO,      "inactivity", CLOSE,                                         FINISH),
    RECEIVING: Row(YES,     "request",    Answer(408, "the body did not arrive"),        FINISH),
    BEHIND:    Row(NO,      None,         None,                                          FINISH),
    BUSY:      Row(BOUNDED, "inactivity", CLOSE,                                         FINISH),
    STREAMING: Row(BOUNDED, None,         None,                                          FINISH),
    WAITING:   Row(BOUNDED, None,         None,                                          FINISH),
    BODY:      Row(YES,     "request",    Answer(408, "the body did not arrive"),        CLOSE),
    HEAD:      Row(YES,     "parse",      Answer(408, "the request head did not arrive"), CLOSE),
    IDLE:      Row(YES,     "inactivity", CLOSE,                                         CLOSE),
}
# fmt: on

REQUESTS_PER_TURN = 8
RECV_SIZE = 65536
HIGH_WATER = 256 * 1024  # bytes queued for the client before we stop running requests
SENDFILE_SLICE = 128 * 1024
SENDFILE_SLICES_PER_TURN = 8
INLINE_BODY = 64 * 1024  # bodies up to this size are joined to their head in one buffer
LINGER_SECONDS = 2.0
UNSENDABLE = "internal server error: a reply that cannot be sent as it is"


def state_of(
    closing: bool,
    writing: bool,
    scheduled: bool,
    pending: bool,
    partial: bool,
    buffered: int,
    closed: bool = False,
    handshake: bool = False,
    shut: bool = False,
    streaming: bool = False,
    receiving: bool = False,
    behind: bool = False,
) -> str:
    """The state of a connection (a key of STATES) from the facts. The first true fact
    decides, in STATES' order: the socket is `closed`; the TLS `handshake` is not done;
    our side is `shut` (all was sent); the last response is queued (`closing`); a
    streamed body is arriving (`receiving`; its handler is `behind` or not); output
    is queued (`writing`) or requests wait for the next turn (`scheduled`); a stream's
    body is being sent (`streaming`); a reply is `pending`; a body is arriving
    (`partial`); bytes of a head have arrived (`buffered`, a count). The last six
    default to an open connection past its handshake, with no stream nor upload."""
    if closed:
        return CLOSED
    if handshake:
        return HANDSHAKE
    if shut:
        return LINGER
    if closing:
        return CLOSING
    if receiving:
        return BEHIND if behind else RECEIVING
    if writing or scheduled:
        return BUSY
    if streaming:
        return STREAMING
    if pending:
        return WAITING
    if partial:
        return BODY
    if buffered:
        return HEAD
    return IDLE


@lru_cache(maxsize=8)  # one Timeouts per server: a few at most
def _deadlines(timeouts: Timeouts) -> dict[str, Optional[float]]:
    """Each state's deadline in seconds (None: it has none), from STATES and the
    configured `timeouts`; "linger" is LINGER_SECONDS."""
    seconds = {**timeouts._asdict(), "linger": LINGER_SECONDS}
    return {state: seconds.get(row.deadline) for state, row in STATES.items()}


class Owner(Protocol):
    """What a connection needs from whoever accepted it (the server)."""

    loop: Loop  # register, modify, unregister, call_soon, call_at, now
    limits: Limits  # uri, header, body: the parser's bounds; requests: per connection
    timeouts: Timeouts  # parse, request, inactivity: the deadlines STATES names
    stopping: bool  # the server is stopping: STATES' "on stop" applies
    # Whether a head's body goes to its handler in parts (http.Parser's `streams`).
    streams_body: Optional[Callable[[http.Request], bool]]
    # The reply to a request: a Response, or a Pending, Stream or Upload that it binds.
    route: Callable[[http.Request], Union[http.Response, Pending, Stream]]
    # Header lines every reply carries besides its own (CORS), or None for none.
    reply_headers: Optional[Callable[[http.Request, http.Response], bytes]]
    # The logs, None when off: log_request(request) -> when it started (perf_counter);
    # log_response(client, session or None, request or None for a protocol error,
    # status, head, body bytes sent, when its request started or None).
    log_request: Optional[Callable[[http.Request], float]]
    log_response: Optional[Callable[..., None]]

    def connection_closed(self, connection: Connection) -> None:
        """`connection` has closed: its socket, file and pending reply are released."""


class Output:
    """What is queued for one client, in order: bytes (heads, and bodies joined to their
    head when small, so that one send carries both), then at most one file, sent in
    slices with sendfile. Its `connection`'s `_progress()` is called when bytes went
    out but not all (the connection itself, not a bound method: 64 bytes less each)."""

    __slots__ = ("chunks", "connection", "file", "size")

    def __init__(self, connection: Connection) -> None:
        self.chunks: list[Any] = []  # bytes or memoryview
        self.size = 0  # bytes in chunks
        self.file: Optional[list] = None  # [fd, offset, remaining], after the chunks
        self.connection = connection

    def add(self, head: bytes, body: bytes = b"") -> None:
        if not body:
            self.chunks.append(head)
        elif len(body) <= INLINE_BODY:
            self.chunks.append(head + body)
        else:
            self.chunks.append(head)
            self.chunks.append(body)
        self.size += len(head) + len(body)

    def open_file(self, file: http.FileBody) -> None:
        """Send `file`'s slice after what is queued. OSError if it cannot be opened."""
        fd = os.open(file.path, os.O_RDONLY | os.O_NONBLOCK)
        self.file = [fd, file.offset, file.length]

    def send(self, sock: Any, tls: bool) -> bool:
        """Send what is queued as far as `sock` takes it, then up to a few slices of the
        file; True when all is sent. OSError when the socket fails, or when the file
        has shrunk under us (its promised length cannot be met)."""
        chunks = self.chunks
        while chunks:
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            try:
                sent = sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            if sent < len(data):
                chunks[:] = [memoryview(data)[sent:]]
                self.size = len(data) - sent
                if sent:
                    self.connection._progress()
                return False
            chunks.clear()
            self.size = 0
        return self.file is None or self._send_file(sock, tls)

    def _send_file(self, sock: Any, tls: bool) -> bool:
        file = self.file
        assert file is not None
        fd, offset, remaining = file
        send = sock.send_file if tls else partial(os.sendfile, sock.fileno())
        for _ in range(SENDFILE_SLICES_PER_TURN):
            try:
                sent = send(fd, offset, min(remaining, SENDFILE_SLICE))
            except (BlockingIOError, InterruptedError):
                break
            except OSError as err:
                if err.errno != errno.EAGAIN:
                    raise
                break
            if sent == 0:
                raise OSError(f"the file shrank: {remaining} bytes of it are missing")
            offset += sent
            remaining -= sent
            if not remaining:
                os.close(fd)
                self.file = None
                self.connection._progress()
                return True
        file[1], file[2] = offset, remaining
        self.connection._progress()
        return False

    def drop(self) -> None:
        """Nothing more will be sent: forget the bytes, close the file."""
        self.chunks.clear()
        self.size = 0
        if self.file is not None:
            os.close(self.file[0])
            self.file = None


class Deadline:
    """A connection's deadline on the loop: `at`, in loop seconds, may move later at no
    cost; the one timer is rescheduled only to fire earlier, and when it fires before
    `at` it waits again. Past `at`, its `connection`'s `_on_deadline()` runs."""

    __slots__ = ("at", "connection", "loop", "timer")

    def __init__(self, loop: Loop, connection: Connection) -> None:
        self.loop = loop
        self.connection = connection
        self.at = 0.0
        self.timer: Optional[Handle] = None

    def set(self, at: float) -> None:
        self.at = at
        if self.timer is None or at < self.timer.when:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.loop.call_at(at, self)  # __call__: no bound method to keep

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def __call__(self) -> None:
        """The timer fired."""
        if self.loop.now < self.at:
            self.timer = self.loop.call_at(self.at, self)
            return
        self.timer = None
        self.connection._on_deadline()


class Streamed:
    """A Stream's body on `connection`, in the place of its pending reply: the head and
    first part are queued at once (framed by http.frame_stream), then each part as it
    comes (`part`), flushed at once when nothing waits before it. Past the stream's
    `limit` of unsent bytes (those of the first part, however many, not counted) the
    connection closes: the client is not reading, and it will reconnect. The kernel's
    send buffer is set to the limit as well (Linux doubles it for its bookkeeping), so
    that what such a client leaves unread there is bounded too. Ended by the server
    (`end`), the body is finished and the connection closes once all is sent."""

    __slots__ = ("chunked", "connection", "first", "queued", "stream")

    def __init__(self, connection: Connection, request: http.Request, stream: Stream) -> None:
        self.connection = connection
        self.stream = stream
        owner = connection.owner
        limit = connection.limits.requests
        keep_alive = http.keep_alive(request, owner.stopping, connection.requests, limit)
        extra = owner.reply_headers
        lines = b"" if extra is None else extra(request, stream.response)
        head, first, self.chunked = http.frame_stream(request, stream.response, keep_alive, lines)
        connection.output.add(head, first)
        try:  # a copy of the descriptor: the socket may be a TLS stream
            with socket.fromfd(
                connection.sock.fileno(), socket.AF_INET, socket.SOCK_STREAM
            ) as copy:
                copy.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, stream.limit)
        except OSError:  # out of descriptors for the copy: the kernel's default bound
            pass
        # Bytes queued since the stream began, what was unsent then included, and how
        # many of them came first: unread bytes count against the limit past those.
        self.queued = self.first = connection.output.size
        if owner.log_response is not None:
            owner.log_response(
                connection.client,
                connection.session,
                request,
                200,
                head,
                len(first),
                connection.started,
            )
        stream.bind(self.part, self.end)

    def part(self, data: bytes) -> bool:
        """Queue one part, sent at once when nothing waits before it; False when the
        stream is over (the connection closed, or this part took it past the limit)."""
        connection = self.connection
        if connection.closed:
            return False
        output = connection.output
        idle = not output.chunks
        data = http.chunk(data) if self.chunked else data
        output.add(data)
        self.queued += len(data)
        if connection.session is not None:
            connection.session.last_active = connection.loop.now
        if idle or self.unread() > self.stream.limit:
            connection._flush()
            unread = self.unread()
            if unread > self.stream.limit and not connection.closed:
                log.info(
                    "event stream to %s ended: %d bytes unread, over %d (limits.event_buffer)",
                    connection.client[0] if connection.client else "-",
                    unread,
                    self.stream.limit,
                )
                connection.close()
        if connection.closed:
            return False
        if idle == bool(output.chunks):  # bytes left queued, or all sent at last
            connection._settle()
        return True

    def unread(self) -> int:
        """Bytes queued and unsent, but for what is left of the first part."""
        unsent = self.connection.output.size
        return unsent - max(0, self.first - (self.queued - unsent))

    def end(self) -> None:
        connection = self.connection
        if connection.closed:
            return
        if self.chunked:
            connection.output.add(http.LAST_CHUNK)
        connection.pending = None
        connection.closing = True
        connection._flush()
        if not connection.closed:
            connection._settle()

    def cancel(self) -> None:
        """The connection closes: the stream is over."""
        self.stream.cancel()


def handshake(connection: Connection) -> None:
    """HANDSHAKE of `connection`: tell TLS from plain HTTP by the first byte, then
    advance TLS. (Out of the class, which is at the layout's size limit.)"""
    secure = connection.secure
    assert secure is not None
    if not connection.tls:
        first = secure.sniff(connection.sock)
        if first == "wait":
            return
        if first != "tls":
            connection.secure = None
            if first == "gone":
                connection.close()
            else:
                connection.refuse(400, "bad request: this port speaks HTTPS; use an https:// URL")
            return
        connection._watch(0)  # the wrapped socket is another object for the loop
        connection.sock = secure.wrap(connection.sock)
        connection.tls = True
    try:
        wanted = connection.sock.handshake()
    except OSError as err:  # ssl.SSLError is one: a client that failed the handshake
        log.debug("TLS handshake with %s failed: %s", connection.client, err)
        connection.close()
        return
    if wanted:
        connection._watch(wanted)
        return
    connection.secure = None
    connection._settle()  # IDLE, its deadline from now


class Receiving:
    """A streamed request body on `connection`, in the place of its pending reply: the
    handler's `upload` (reply.Upload) is handed each part as it arrives, at most
    RECV_SIZE bytes per read, so per loop turn; then its reply is the request's reply.

    Started once the handler has accepted the head: a Content-Length over the
    upload's limit is refused at once, else `Expect: 100-continue` gets its 100. A
    refusal (the limit, or `write` raising) is answered and the connection closes
    (`Connection._emit`: the rest of the body is never read). Bad framing is a protocol
    error; a client that leaves or stalls past timeouts.request cancels the upload."""

    __slots__ = ("connection", "request", "upload")

    def __init__(self, connection: Connection, request: http.Request, upload: Upload) -> None:
        self.connection = connection
        self.request = request
        self.upload = upload

    def start(self) -> None:
        connection = self.connection
        refusal = self.upload.bind(self.resume)
        if refusal is not None:
            self._answer(refusal)
            return
        if self.request.expect_continue and not connection.continued:
            connection.continued = True
            connection.output.add(http.CONTINUE)
        self.pump()

    def pump(self) -> None:
        """Hand the upload what has arrived while it is not behind; at the body's end,
        its reply. Each part received moves the deadline on (a slow upload that moves
        is not idle)."""
        connection = self.connection
        parser = connection.parser
        upload = self.upload
        moved = False
        while not upload.behind:
            try:
                part = parser.body_part(RECV_SIZE)
            except http.ProtocolError as err:
                connection._answer_error(err.status, err.message, self.request)
                return
            if part is None:
                self._answer(upload.finish())
                return
            if not part:
                break
            moved = True
            refusal = upload.feed(part)
            if refusal is not None:
                self._answer(refusal)
                return
        seconds = connection.seconds[RECEIVING]
        if moved and seconds is not None:
            connection.deadline.at = connection.loop.now + seconds

    def resume(self) -> None:
        """The upload can take more: what is buffered first, then the socket again."""
        connection = self.connection
        if connection.closed or connection.pending is None or connection.pending[1] is not self:
            return
        self.pump()
        if not connection.closed:
            connection._settle()

    def _answer(self, reply: Any) -> None:
        connection = self.connection
        connection.pending = None
        connection._reply(self.request, reply)
        connection._schedule()  # the requests behind it, in a turn of their own

    def cancel(self) -> None:
        """The connection closes before the body's end: the upload is cancelled."""
        self.upload.cancel()


# A Connection's attributes: without a dict per connection (limits.connections of them).
_CONNECTION_SLOTS = (
    "client",
    "closed",
    "closing",
    "continued",
    "deadline",
    "eof",
    "events",
    "limits",
    "loop",
    "output",
    "owner",
    "parser",
    "pending",
    "requests",
    "scheduled",
    "seconds",
    "secure",
    "session",
    "settled_requests",
    "shut",
    "sock",
    "started",
    "state",
    "tls",
    "__weakref__",
)


class Connection:
    """One accepted socket, from its first byte to its close."""

    __slots__ = _CONNECTION_SLOTS

    def __init__(
        self,
        owner: Owner,
        sock: socket.socket,
        client: tuple,
        secure: Optional[Secure] = None,
        session: Optional[Session] = None,
    ) -> None:
        self.owner = owner
        self.loop = owner.loop
        self.limits = owner.limits
        self.sock: Any = sock  # a socket, or a tls.Stream once the handshake starts
        self.client = client
        self.session = session  # None for a connection refused at once (over a limit)
        self.secure = secure  # the listener's TLS set-up, until the handshake is done
        self.tls = False  # the requests arrive over TLS
        self.state = ""  # set by _settle, from start() on
        self.events = 0
        limits = self.limits
        self.parser = http.Parser(limits.uri, limits.header, limits.body, owner.streams_body)
        self.requests = 0
        self.pending: Optional[tuple[http.Request, Union[Pending, Streamed, Receiving]]] = None
        self.output = Output(self)
        self.closing = False  # the last response is queued
        self.shut = False  # all is sent and our side is shut (LINGER)
        self.closed = False
        self.eof = False  # the client sent FIN
        self.continued = False  # 100 Continue sent for the current partial request
        self.settled_requests = 0  # self.requests when the deadline was last set
        self.scheduled = False  # _process queued for the next turn
        self.deadline = Deadline(self.loop, self)
        self.seconds = _deadlines(owner.timeouts)  # state -> its deadline's length, or None
        self.started: Optional[float] = None  # when the running request started, for the log

    def start(self) -> None:
        """Into the loop: HANDSHAKE or IDLE, with its deadline and its events."""
        self._settle()

    # -- events from the loop ----------------------------------------------------

    def on_event(self, mask: int) -> None:
        reads = STATES[self.state].reads
        if reads == DRAIN:
            self._drop_input()
            return
        if reads == TLS:
            handshake(self)
            if self.state != IDLE:
                return
            mask = READ  # the request may have come with the handshake's last flight
        if mask & READ:
            self._read()
        if mask & WRITE and not self.closed:
            self._flush()
        if not self.closed:
            self._process()

    def _read(self) -> None:
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if data:
            self.parser.feed(data)
            if self.pending is not None and type(self.pending[1]) is Receiving:
                self.pending[1].pump()
        elif self.pending is not None:
            self.close()  # the client has gone: nobody waits for the pending reply
        else:
            self.eof = True

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
        output = self.output
        blocked = False  # stopped by output still queued, not by a lack of requests
        while self.pending is None and not self.closing:
            if output.file is not None or output.size >= HIGH_WATER:
                blocked = True
                break
            if not budget:
                if parser.buffered:
                    self._schedule()
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
        if self.closed:
            return
        if self.eof and self.pending is None and not self.scheduled and not blocked:
            self.closing = True  # answer what was complete, then close
        partial = parser.partial  # a body is arriving: 100 Continue, once, if it asks
        if (
            partial is not None
            and partial.expect_continue
            and not self.continued
            and self.pending is None
            and not self.closing
        ):
            self.continued = True
            self.output.add(http.CONTINUE)
        self._flush()
        if self.closed:
            return
        if blocked and output.file is None and not output.chunks:
            self._schedule()  # the flush above drained what held the requests back
        self._settle()

    def _run(self, request: http.Request) -> None:
        self.requests += 1
        request.client = self.client
        request.session = self.session
        request.tls = self.tls
        owner = self.owner
        if owner.log_request is not None:
            self.started = owner.log_request(request)
        try:
            reply = owner.route(request)
        except Exception:
            log.exception("handler failed for %r", request)
            reply = http.error_response(500, "internal server error: the handler failed")
        if self.session is not None:  # activity: stamped once routed, for the handler
            self.session.last_active = self.loop.now  # (/?ping) reads the time before it
        self._reply(request, reply)

    def _reply(self, request: http.Request, reply: Any) -> None:
        """Send `reply` to `request`, or hold it: a Pending until it resolves."""
        if isinstance(reply, Pending):
            if reply.taken:
                log.error("a Pending was returned twice or after it was cancelled: %r", request)
                reply = http.error_response(500, "internal server error: a reply used twice")
            elif not reply.resolved:
                self.pending = (request, reply)
                reply.bind(self._resolved)
                return
            else:
                reply = reply.response()
        self._emit(request, reply)

    def _resolved(self, response: http.Response) -> None:
        """A pending reply is ready: send it, and run what waited behind it in a turn of
        its own, never inside the handler that resolved it."""
        if self.pending is None or self.closed:
            return
        request = self.pending[0]
        self.pending = None
        self._emit(request, response)
        self._schedule()

    def _schedule(self) -> None:
        """Have _process run in the loop's next step (once, however often asked)."""
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._process)

    # -- output ------------------------------------------------------------------

    def _emit(self, request: http.Request, response: Union[http.Response, Stream]) -> None:
        """Queue `response` to `request`, framed by http.py (a Stream: see Streamed; an
        Upload: see Receiving)."""
        if isinstance(response, Stream):
            self.pending = (request, Streamed(self, request, response))
            return
        if isinstance(response, Upload):
            receiving = Receiving(self, request, response)
            self.pending = (request, receiving)
            receiving.start()
            return
        owner = self.owner
        keep_alive = http.keep_alive(request, owner.stopping, self.requests, self.limits.requests)
        if self.parser.streamed:  # answered before its body's end: the rest goes unread
            keep_alive = False
        if not keep_alive:
            self.closing = True
        extra = owner.reply_headers
        try:  # a header or a body that cannot be sent fails here
            lines = b"" if extra is None else extra(request, response)
            head, body, file = http.frame(request, response, keep_alive, lines)
        except (AttributeError, TypeError, ValueError, UnicodeEncodeError):
            log.exception("cannot send the reply to %r", request)
            response = http.error_response(500, UNSENDABLE)
            lines = b"" if extra is None else extra(request, response)
            head, body, file = http.frame(request, response, keep_alive, lines)
        if file is not None:
            try:
                self.output.open_file(file)
            except OSError as err:
                if err.errno in (errno.EMFILE, errno.ENFILE):
                    response = http.error_response(
                        503, "service unavailable: too many files open; try again shortly"
                    )
                else:
                    response = http.error_response(404, "not found: the file has just gone")
                lines = b"" if extra is None else extra(request, response)
                head, body, file = http.frame(request, response, keep_alive, lines)
        self.output.add(head, body)
        if owner.log_response is not None:
            sent = len(body) if file is None else file.length
            owner.log_response(
                self.client, self.session, request, response.status, head, sent, self.started
            )

    def _answer_error(
        self, status: int, message: str, request: Optional[http.Request] = None
    ) -> None:
        """Answer a protocol error or a timeout, then close. `request` is the request
        whose head was read, when there is one: its reply gets the owner's headers too.
        A streamed body being received will not come whole: its upload is cancelled."""
        self.closing = True
        if self.pending is not None and type(self.pending[1]) is Receiving:
            self.pending[1].cancel()
            self.pending = None
        response = http.error_response(status, message)
        extra = self.owner.reply_headers
        lines = b"" if request is None or extra is None else extra(request, response)
        head, body, _ = http.frame(None, response, False, lines)
        self.output.add(head, body)
        if self.owner.log_response is not None:
            self.owner.log_response(self.client, self.session, None, status, head, len(body), None)

    def _flush(self) -> None:
        """Send what is queued, as far as the socket takes it; all sent, the last
        response's connection lingers."""
        try:
            done = self.output.send(self.sock, self.tls)
        except OSError:
            self.close()
            return
        if done and self.closing and self.pending is None:
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
        self.shut = True
        self._settle()  # LINGER

    def _progress(self) -> None:
        """Bytes went out: a slow but moving reader is not idle. The deadline of the
        state that writes (CLOSING, else BUSY) counts again from now."""
        seconds = self.seconds[CLOSING if self.closing else BUSY]
        if seconds is not None:
            self.deadline.at = self.loop.now + seconds

    # -- state, deadline and interest --------------------------------------------

    def _settle(self) -> None:
        """Derive the state from the facts (`state_of`) and apply its row: on entering a
        state, or after a request, its deadline from now; the events it waits for; and a
        stopping server's close of what has nothing in flight."""
        parser = self.parser
        output = self.output
        writing = bool(output.chunks) or output.file is not None
        pending = self.pending is not None
        kind = type(self.pending[1]) if pending else None
        receiving = kind is Receiving
        buffered = parser.buffered
        state = state_of(
            self.closing,
            writing,
            self.scheduled,
            pending,
            parser.partial is not None,
            buffered,
            self.closed,
            self.secure is not None,
            self.shut,
            kind is Streamed,  # streaming
            receiving,
            receiving and self.pending[1].upload.behind,  # behind
        )
        row = STATES[state]
        if self.owner.stopping and row.on_stop == CLOSE:
            self.close()  # the server is stopping and nothing is in flight
            return
        if state != self.state or self.requests != self.settled_requests:
            self.state = state
            self.settled_requests = self.requests
            seconds = self.seconds[state]  # the row's deadline, from now
            if seconds is None:
                self.deadline.cancel()
            else:
                self.deadline.set(self.loop.now + seconds)
            if state == IDLE and self.session is not None:
                self.session.last_active = self.loop.now  # the inactivity timer starts here
        reads = row.reads
        events = WRITE if writing else 0
        if (
            not self.eof
            and reads != NO
            and (reads != BOUNDED or ((pending or self.scheduled) and buffered < HIGH_WATER))
        ):
            events |= READ
        if events != self.events:
            self._watch(events)

    def _watch(self, events: int) -> None:
        """Tell the loop which readiness to wait for now: none unregisters the socket."""
        previous, self.events = self.events, events
        if not events:
            self.loop.unregister(self.sock)
        elif previous:
            self.loop.modify(self.sock, events, self)
        else:
            self.loop.register(self.sock, events, self)

    def _on_deadline(self) -> None:
        """Past the deadline (which progress may have moved on): the row's `on_timeout`."""
        row = STATES[self.state]
        if row.deadline is None:  # WAITING or CLOSED: no deadline applies
            return
        action = row.on_timeout
        if not isinstance(action, Answer):
            self.close()
            return
        phrase = HTTPStatus(action.status).phrase.lower()
        seconds = self.seconds[self.state]
        self._answer_error(
            action.status,
            f"{phrase}: {action.missing} within {seconds:g} s (timeouts.{row.deadline})",
            self.parser.partial,
        )
        self._flush()
        if not self.closed:
            self._settle()

    # -- the end -----------------------------------------------------------------

    def refuse(self, status: int, message: str) -> None:
        """Answer at once, before any request is read (over a limit), then close."""
        self._answer_error(status, message)
        self._flush()
        self._settle()

    def shutdown(self) -> None:
        """The server is stopping: close now if nothing is in flight (STATES' "on
        stop"), else once it is done."""
        if STATES[self.state].on_stop == CLOSE:
            self.close()

    def close(self) -> None:
        """Close at once, dropping what is queued (all was sent, a reset, a send error,
        a timeout, a stop): the file, the pending reply, the deadline and the socket."""
        if self.closed:
            return
        self.closed = True
        self.output.drop()
        if self.pending is not None:
            self.pending[1].cancel()
            self.pending = None
        self._settle()  # CLOSED: no deadline, no events
        try:
            self.sock.close()
        except OSError:
            pass
        self.owner.connection_closed(self)

    abort = close  # the loop's name for it: a bug in on_event drops the connection
