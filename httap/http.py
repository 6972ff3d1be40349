"""Sans-IO HTTP/1.1: bytes in -> requests out, responses -> bytes.

Nothing here touches a socket, so every framing rule can be tested with byte strings.

Rules of this file:
- The parser is strict where request smuggling lives: line endings are CRLF only (a
  bare CR or LF is an error), header names are tokens with no space before the colon,
  obs-fold is refused, Content-Length is digits only and must agree with itself,
  Transfer-Encoding is `chunked` alone and never beside Content-Length, chunk sizes
  are bounded hex.
- Every refusal is a `ProtocolError` carrying the status to answer with and a
  one-line message. After one, the parser is dead: the connection answers and closes.
- The parser never buffers more than the configured limits allow.
"""

from __future__ import annotations

import ipaddress
import json
import json.encoder
import re
import time
from http import HTTPStatus
from typing import Any, Callable, Optional

from httap.version import __version__

SERVER_HEADER = f"Server: httap/{__version__}\r\n".encode()

KNOWN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT")
)

_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_METHOD_RE = re.compile(_TOKEN)
# A field line: token name, colon, optional whitespace, a value of visible characters,
# spaces and tabs (obs-text allowed), optional whitespace. Anything else is malformed.
# Name and value are checked apart (see `_field`): one regex for the whole line
# backtracks cubically on a run of spaces followed by a control character.
_FIELD_NAME_RE = re.compile(rb"(" + _TOKEN + rb"):")
_FIELD_VALUE_BAD_RE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_TARGET_BAD_RE = re.compile(rb"[\x00-\x20\x7f-\xff]")
_VERSION_RE = re.compile(rb"HTTP/[0-9]\.[0-9]")
# chunk-size [ chunk-ext ]: at most 8 significant hex digits (leading zeros are fine);
# extensions are `;name[=token|quoted-string]` with BWS around `;` and `=` (RFC 9112 7.1.1).
_QUOTED = rb'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\x00-\x08\x0a-\x1f\x7f])*"'
_CHUNK_SIZE_RE = re.compile(
    rb"0*([0-9A-Fa-f]{1,8})((?:[ \t]*;[ \t]*"
    + _TOKEN
    + rb"(?:[ \t]*=[ \t]*(?:"
    + _TOKEN
    + rb"|"
    + _QUOTED
    + rb"))?)*)[ \t]*"
)
_HEX_RE = re.compile(rb"[0-9A-Fa-f]+")
_ABSOLUTE_RE = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)")
# uri-host [ ":" port ] (RFC 9110 7.2, RFC 3986 3.2.2-3.2.3): an IP-literal in brackets
# (IPv6, checked again by `ipaddress`, or IPvFuture), or a reg-name (which an IPv4
# address also matches); then an optional port of digits, possibly none. No userinfo.
_AUTHORITY_RE = re.compile(
    r"(?:\[(?:(?P<ipv6>[0-9A-Fa-f:.]+)|[vV][0-9A-Fa-f]+\.[-A-Za-z0-9._~!$&'()*+,;=:]+)\]"
    r"|(?:[-A-Za-z0-9._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)"
    r"(?::[0-9]*)?"
)

MAX_CHUNK_LINE = 1024
# Heads already parsed, by their exact bytes: parsing is a pure function of those bytes,
# so a head seen before gets the same verdict without the work (clients repeat their
# heads: a polling page, a browser fetching assets). Bounded; cleared when full.
MEMO_ENTRIES = 256
MEMO_HEAD = 2048
_memo: dict[bytes, tuple[str, str, str, dict[str, str], bool, Optional[str]]] = {}


class ProtocolError(Exception):
    """A request the server refuses to frame: answer `status` with `message`, then close.

    `request` is the request whose head was read when the refusal came later (its
    framing or its body), else None: its reply can then say what any reply to it says.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.request: Optional[Request] = None


class HTTPError(Exception):
    """Raised by a handler to answer `status` with a JSON error; the connection stays open."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: tuple[tuple[str, str], ...] = (),
        delay: float = 0.0,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.delay = delay  # seconds to hold the reply back (a failed sign-in)


class Request:
    """One parsed request. `headers` has lower-case names; repeated fields are joined.

    `authority` is what the request is for, `host[:port]` as sent: the authority of an
    absolute-form target, else the Host header (RFC 9112 3.2.2, 3.3); None for an
    HTTP/1.0 request with neither. The parser has checked its syntax.
    """

    __slots__ = (
        "authority",
        "body",
        "client",
        "expect_continue",
        "headers",
        "keep_alive",
        "method",
        "params",
        "path",
        "session",
        "target",
        "tls",
        "user",
        "version",
    )

    def __init__(
        self,
        method: str,
        target: str,
        version: str,
        headers: dict[str, str],
        keep_alive: bool,
        authority: Optional[str] = None,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self.authority = authority
        self.body = b""
        self.expect_continue = False
        self.client: Optional[tuple] = None
        self.session = None
        self.tls = False  # it came over an https:// listener
        self.user: Optional[str] = None  # who signed in (auth), for the logs
        self.params: Optional[dict[str, str]] = None
        self.path: Optional[str] = None

    def json(self) -> object:
        """The body parsed as JSON (`parse_json`); 400 `bad-json` saying why when it is not."""
        if not self.body:
            raise HTTPError(400, "bad-json", "the body is not valid JSON: it is empty")
        try:
            return parse_json(self.body)
        except ValueError as err:
            raise HTTPError(400, "bad-json", f"the body is not valid JSON: {err}") from None

    def json_object(self) -> dict:
        """The body as a JSON object, for a handler that reads named fields: an empty
        body is `{}` (nothing given, every field takes its default); any other body that
        is not a JSON object is 400 `bad-json`, so `request.json_object().get("speed", 1)`
        cannot fail. The values inside are the sender's: check them before use."""
        if not self.body:
            return {}
        value = self.json()
        if not isinstance(value, dict):
            raise HTTPError(
                400,
                "bad-json",
                f'the body must be a JSON object such as {{"speed": 1}}, not {_json_kind(value)}',
            )
        return value

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target} {self.version}>"


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number (RFC 8259 section 6)")


MAX_JSON_DIGITS = 4300  # Python 3.11's own limit for int(text), kept on every version
MAX_JSON_DEPTH = 200  # levels of arrays and objects in a request body


def _whole_number(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_DIGITS:
        raise ValueError(f"a whole number has more than {MAX_JSON_DIGITS} digits")
    return int(text)


_json_decoder = json.JSONDecoder(parse_constant=_no_constant, parse_int=_whole_number)


def parse_json(body: bytes) -> object:
    """The JSON value of a request body: UTF-8 text holding one value (RFC 8259).

    Raises ValueError, with a short reason, for anything else: bytes that are not
    UTF-8, text that is not JSON, NaN or Infinity (Python accepts them; JSON has no
    such numbers), a whole number of more than MAX_JSON_DIGITS digits, and arrays or
    objects nested more than MAX_JSON_DEPTH deep (the limit is ours, so that it does
    not change with the interpreter: before Python 3.12 the decoder itself gives up
    near a thousand levels, from 3.12 it goes on).
    """
    try:
        value = _json_decoder.decode(body.decode("utf-8"))
    except RecursionError:
        value = None
    else:
        if not isinstance(value, (list, dict)) or _within_depth(value, MAX_JSON_DEPTH):
            return value
    raise ValueError(f"arrays and objects nest too deep (at most {MAX_JSON_DEPTH} levels)")


def _within_depth(value: object, limit: int) -> bool:
    """Whether no array or object in `value` lies more than `limit` levels deep;
    iterative, so that a deep value cannot exhaust the stack here either."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        if depth > limit:
            return False
        pending.extend((inner, depth + 1) for inner in item)
    return True


def json_encoder(allow_nan: bool = True) -> Callable[[Any], str]:
    """A compact JSON encoder (`separators=(",", ":")`, ASCII only), built once.

    `json.JSONEncoder.encode` builds its C encoder anew on every call (`iterencode`),
    which costs about as much as encoding a small reply; this one is built here, once.
    The encoder raises what JSONEncoder raises: TypeError for a value that is not JSON,
    ValueError for NaN or an infinity unless `allow_nan`; there is no circular check, so
    a value that contains itself raises RecursionError instead of ValueError.
    """
    make = json.encoder.c_make_encoder  # None where the C accelerator is missing
    if make is None:
        return json.JSONEncoder(separators=(",", ":"), allow_nan=allow_nan).encode
    default = json.JSONEncoder().default  # raises TypeError, naming the type
    chunks = make(
        None, default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, allow_nan
    )
    return lambda value: "".join(chunks(value, 0))


def _json_kind(value: object) -> str:
    """A JSON value named by its kind, for messages (the value itself may be huge)."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return "a number"


class FileBody:
    """A slice of a file to send with os.sendfile instead of an in-memory body."""

    __slots__ = ("length", "offset", "path")

    def __init__(self, path: str, offset: int, length: int) -> None:
        self.path = path
        self.offset = offset
        self.length = length


class Response:
    """A status, headers and a body (bytes, or a `FileBody`).

    `headers` excludes Server, Date, Content-Length and Connection, which the encoder
    adds. The encoded head is cached, so a response prepared once (a static file) costs
    one concatenation per request. Treat a response as frozen once it has been sent.
    """

    __slots__ = ("_head", "body", "file", "headers", "status")

    def __init__(
        self,
        status: int = 200,
        headers: Optional[list[tuple[str, str]]] = None,
        body: bytes = b"",
        file: Optional[FileBody] = None,
        head: Optional[bytes] = None,
    ) -> None:
        self.status = status
        self.headers = headers if headers is not None else []
        self.body = body
        self.file = file
        # `head`: the head already encoded but for its Content-Length, as
        # `encode_head(status, headers, None)` gives it, kept for many responses alike
        # (the JSON replies to one session), so that each one only adds its length.
        if head is not None:
            head += length_line(status, len(body) if file is None else file.length)
        self._head = head

    @property
    def length(self) -> int:
        return self.file.length if self.file is not None else len(self.body)

    def header(self, name: str) -> Optional[str]:
        """The value of header `name` (case-insensitive), or None."""
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def head_bytes(self) -> bytes:
        """Status line, Server, the headers and Content-Length: all but Date and Connection."""
        if self._head is None:
            self._head = encode_head(self.status, self.headers, self.length)
        return self._head


_STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode() + SERVER_HEADER
    for status in HTTPStatus
}
_sendable_names: set[str] = set()  # header names already checked to be tokens


def encode_head(status: int, headers: list[tuple[str, str]], length: Optional[int]) -> bytes:
    """The status line and header block, without Date, Connection and the blank line;
    `length` None for a body of no known length (a stream: see `frame_stream`)."""
    first = _STATUS_LINES.get(status) or f"HTTP/1.1 {status} Unknown\r\n".encode() + SERVER_HEADER
    lines = []
    for name, value in headers:
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} has a CR or LF in its value")
        if name not in _sendable_names:
            if not _METHOD_RE.fullmatch(name.encode()):
                raise ValueError(f"header name {name!r} is not a token")
            if len(_sendable_names) < 1024:
                _sendable_names.add(name)
        lines.append(f"{name}: {value}\r\n")
    return first + "".join(lines).encode("latin-1") + length_line(status, length)


def length_line(status: int, length: Optional[int]) -> bytes:
    """The Content-Length line of a head, or b"" when it has none: a body of no known
    `length` (None), or a 1xx, 204 or 304 (RFC 9110 8.6)."""
    if length is None or status < 200 or status == 204 or status == 304:
        return b""
    return b"Content-Length: %d\r\n" % length


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = {name: number for number, name in enumerate(_MONTHS, 1)}
# The three forms RFC 9110 (5.6.7) tells a recipient to accept.
_IMF_FIXDATE = re.compile(r"[A-Z][a-z]{2}, (\d\d) ([A-Z][a-z]{2}) (\d{4}) (\d\d):(\d\d):(\d\d) GMT")
_RFC850_DATE = re.compile(
    r"[A-Z][a-z]{5,8}, (\d\d)-([A-Z][a-z]{2})-(\d\d) (\d\d):(\d\d):(\d\d) GMT"
)
_ASCTIME_DATE = re.compile(r"[A-Z][a-z]{2} ([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d) (\d{4})")


def http_date(seconds: float) -> str:
    """IMF-fixdate, as `Sun, 06 Nov 1994 08:49:37 GMT` (what email.utils gives, lighter)."""
    t = time.gmtime(seconds)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d}"
        f" {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def parse_http_date(text: str) -> Optional[int]:
    """Seconds since the epoch of an HTTP date in any of its three forms, else None."""
    text = text.strip()
    match = _IMF_FIXDATE.fullmatch(text)
    if match:
        day, month, year, hour, minute, second = match.groups()
    elif (match := _RFC850_DATE.fullmatch(text)) is not None:
        day, month, year, hour, minute, second = match.groups()
        year = str(1900 + int(year) if int(year) >= 70 else 2000 + int(year))
    elif (match := _ASCTIME_DATE.fullmatch(text)) is not None:
        month, day, hour, minute, second, year = match.groups()
    else:
        return None
    number = _MONTH_NUMBER.get(month)
    day_, hour_, minute_, second_ = int(day), int(hour), int(minute), int(second)
    if number is None or not (1 <= day_ <= 31 and hour_ < 24 and minute_ < 60 and second_ < 61):
        return None
    return (
        _days_since_epoch(int(year), number, day_) * 86400 + hour_ * 3600 + minute_ * 60 + second_
    )


def _days_since_epoch(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a date of the proleptic Gregorian calendar."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


_date_second = -1
_date_line = b""


def date_line() -> bytes:
    """`Date: ...\\r\\n`, formatted at most once a second."""
    global _date_second, _date_line
    now = int(time.time())
    if now != _date_second:
        _date_second = now
        _date_line = b"Date: " + http_date(now).encode() + b"\r\n"
    return _date_line


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
CLOSE_LINE = b"Connection: close\r\n"
KEEP_ALIVE_LINE = b"Connection: keep-alive\r\n"


# -- framing a response ----------------------------------------------------------------
# A response is framed by its Content-Length (encode_head): every body is known whole
# (bytes) or by its length (a FileBody) before its head is sent. The one exception is a
# stream (an event stream's body, which never ends): `frame_stream` and `chunk`.


def keep_alive(request: Request, stopping: bool, served: int, limit: int) -> bool:
    """Whether the connection stays open after the response to `request`, the `served`th
    request on it: the client wants it (`request.keep_alive`: HTTP/1.1 unless it sent
    `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`, RFC 9112 9.3), the
    server is not `stopping`, and `limit` requests (limits.requests; 0: no limit) have
    not been served yet."""
    return request.keep_alive and not stopping and not (limit and served >= limit)


def frame(
    request: Optional[Request], response: Response, keep_alive: bool, extra: bytes = b""
) -> tuple[bytes, bytes, Optional[FileBody]]:
    """What to send for `response` to `request`: its head, then the body bytes and the
    file slice that follow it (b"" and None where there are none).

    The head, up to and with its blank line: status line, Server, the response's headers
    and Content-Length (`encode_head`), `extra` (header lines every reply carries: CORS),
    Date (RFC 9110 6.6.1), and the Connection line: `close` when the connection ends
    after this response, `keep-alive` when an HTTP/1.0 client's connection stays open
    (RFC 9112 9.3: persistence is HTTP/1.1's default, not 1.0's), none otherwise.
    `request` None is one whose head could not be read: answered as HTTP/1.1.

    No body follows a response to HEAD (RFC 9110 9.3.2), nor a 1xx, 204 or 304 (RFC
    9112 6.3), whose heads have no Content-Length either. Raises ValueError for a header
    that cannot be sent (a CR or LF in a value, a name that is not a token), TypeError
    for a body that is not bytes."""
    if not keep_alive:
        connection = CLOSE_LINE
    elif request is None or request.version == "HTTP/1.1":
        connection = b""
    else:
        connection = KEEP_ALIVE_LINE
    head = response.head_bytes() + extra + date_line() + connection + b"\r\n"
    if not isinstance(response.body, bytes):
        raise TypeError(f"the body is {type(response.body).__name__}, not bytes")
    status = response.status
    if (
        status < 200
        or status == 204
        or status == 304
        or (request is not None and request.method == "HEAD")
    ):
        return head, b"", None
    return head, response.body, response.file


LAST_CHUNK = b"0\r\n\r\n"  # the end of a chunked body, with no trailer (RFC 9112 7.1)
_TRANSFER_CHUNKED = ("Transfer-Encoding", "chunked")


def frame_stream(
    request: Request, response: Response, keep_alive: bool, extra: bytes = b""
) -> tuple[bytes, bytes, bool]:
    """The head of a response whose body is sent in parts and has no known length (a
    stream), its first part (`response.body`) framed, and whether its parts are
    chunked (then each part is `chunk(part)`, and `LAST_CHUNK` ends the body).

    HTTP/1.1 is chunked (RFC 9112 7.1). HTTP/1.0 knows no chunks: the body ends when the
    connection closes (RFC 9112 6.3, rule 8), which the head says with `Connection:
    close`. The head is `frame`'s otherwise: no Content-Length, and the Connection line
    by `keep_alive`."""
    chunked = request.version == "HTTP/1.1"
    headers = [*response.headers, _TRANSFER_CHUNKED] if chunked else response.headers
    connection = b"" if chunked and keep_alive else CLOSE_LINE
    head = encode_head(response.status, headers, None) + extra + date_line() + connection
    body = response.body
    if chunked and body:
        body = chunk(body)
    return head + b"\r\n", body, chunked


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (RFC 9112 7.1): its size in hex, CRLF, the data, CRLF.
    Never empty: an empty chunk would end the body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def error_response(status: int, message: str) -> Response:
    """A one-line plain-text answer: a protocol error, a refusal or a redirect.

    `no-store`: it answers this request at this moment, and a cache that kept it (404,
    405, 301 and 308 may be kept by default, RFC 9110 section 15.1) would go on giving
    it after the file appears or the configuration changes.
    """
    return Response(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")],
        (message + "\n").encode(),
    )


# Parser states (what the next bytes of the stream are).
HEAD = 0  # a request head, or nothing yet
BODY = 1  # a body of known length
CHUNK_SIZE = 2  # a chunk-size line
CHUNK_DATA = 3  # chunk data and its CRLF
TRAILER = 4  # trailer fields after the last chunk
DEAD = 5  # a protocol error was raised; nothing more is parsed


# A Parser's attributes: without a dict per connection.
_PARSER_SLOTS = (
    "_body_size",
    "_buf",
    "_chunks",
    "_error",
    "_memo_limit",
    "_pos",
    "_remaining",
    "max_body",
    "max_header",
    "max_uri",
    "partial",
    "state",
    "streamed",
    "streams",
)


class Parser:
    """Turns a byte stream into `Request` objects.

    `feed(data)` appends bytes; `next_request()` returns the next complete request or
    None if more bytes are needed. `partial` is the request whose head has been read
    and whose body is still arriving (the connection answers `Expect: 100-continue`
    and times the body from it).

    A streamed body: `streams(request)`, asked of each head that has a body, says
    whether its handler takes the body in parts. If so, `next_request()` returns the
    request at its head (`streamed` is then True, `request.body` empty), `max_body`
    (limits.body) does not apply, and `body_part()` gives the body as it arrives,
    chunked framing removed, until it returns None; then `next_request()` reads on.
    """

    __slots__ = _PARSER_SLOTS

    def __init__(
        self,
        max_uri: int = 2048,
        max_header: int = 8192,
        max_body: int = 1 << 20,
        streams: Optional[Callable[[Request], bool]] = None,
    ) -> None:
        self.max_uri = max_uri
        self.max_header = max_header
        self.max_body = max_body
        # A remembered head this small is within every head limit of this parser.
        self._memo_limit = min(max_uri, max_header, MEMO_HEAD)
        self._buf = b""
        self._pos = 0
        self.state = HEAD
        self.partial: Optional[Request] = None
        self._remaining = 0
        self._chunks: list[bytes]  # a chunked body's chunks, from its head on
        self._body_size = 0
        self._error: Optional[ProtocolError] = None
        self.streams = streams
        self.streamed = False  # `partial`'s body is read with body_part

    def feed(self, data: bytes) -> None:
        if self.state == DEAD:
            return  # nothing more is parsed, so nothing more is kept
        if self._pos:
            self._buf = self._buf[self._pos :] + data
            self._pos = 0
        elif self._buf:
            self._buf += data
        else:
            self._buf = data

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed."""
        return len(self._buf) - self._pos

    def next_request(self) -> Optional[Request]:
        if self._error is not None:
            raise self._error  # dead: the same refusal again, nothing more is parsed
        if self._pos == len(self._buf):
            if self._pos:  # not kept while the connection waits for more
                self._buf, self._pos = b"", 0
            return None  # all consumed: how most turns end, after their last request
        try:
            if self.state == HEAD:
                request = self._read_head()
                if request is None or self.state == HEAD or self.streamed:
                    return request
            if self.streamed:
                return None  # its body is body_part's
            return self._read_body()
        except ProtocolError as err:
            self.state = DEAD
            if err.request is None:
                err.request = self.partial  # a body's refusal: its head was read
            self._error = err
            raise

    # -- the head ------------------------------------------------------------------

    def _read_head(self) -> Optional[Request]:
        buf, pos = self._buf, self._pos
        end = buf.find(b"\r\n\r\n", pos)
        if end < 0:
            self._check_partial_head(buf, pos)
            return None
        head = buf[pos:end]
        self._pos = end + 4
        known = _memo.get(head) if len(head) <= self._memo_limit else None
        if known is not None:
            method, target, version, headers, keep_alive, authority = known
            request = Request(method, target, version, headers.copy(), keep_alive, authority)
        else:
            request = self._parse_head(head)
            if len(head) <= MEMO_HEAD:
                if len(_memo) >= MEMO_ENTRIES:
                    _memo.clear()
                _memo[head] = (
                    request.method,
                    request.target,
                    request.version,
                    request.headers.copy(),
                    request.keep_alive,
                    request.authority,
                )
        try:
            return self._framing(request)
        except ProtocolError as err:
            err.request = request
            raise

    def _parse_head(self, head: bytes) -> Request:
        if b"\n" in head and head.count(b"\n") != head.count(b"\r\n"):
            raise ProtocolError(400, "bad request: a line ends with a bare LF, not CRLF")
        if b"\r" in head and head.count(b"\r") != head.count(b"\r\n"):
            raise ProtocolError(400, "bad request: a bare CR inside a line")
        line_end = head.find(b"\r\n")
        if line_end < 0:
            line_end = len(head)
        if line_end >= self.max_uri + 32:  # line + CR > max_uri + 32, as while buffering
            raise _uri_too_long(self.max_uri)
        if len(head) - line_end > self.max_header:
            raise _header_too_large(self.max_header)
        request = self._request_line(head[:line_end])
        if line_end < len(head):
            self._fields(request, head[line_end + 2 :].split(b"\r\n"))
        elif request.version == "HTTP/1.1":
            raise ProtocolError(400, "bad request: HTTP/1.1 requires a Host header")
        return request

    def _check_partial_head(self, buf: bytes, pos: int) -> None:
        size = len(buf) - pos
        if not size:
            return
        if buf[pos] in b"\r\n":
            raise ProtocolError(400, "bad request: empty line before the request line")
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            if size > self.max_uri + 32:
                raise _uri_too_long(self.max_uri)
            if buf.find(b"\n", pos) >= 0:
                raise ProtocolError(400, "bad request: a line ends with a bare LF, not CRLF")
        else:
            if line_end - pos >= self.max_uri + 32:  # line + CR, as below
                raise _uri_too_long(self.max_uri)
            if size - (line_end - pos) > self.max_header + 4:
                raise _header_too_large(self.max_header)
            partial = buf[pos:]
            if partial.count(b"\n") != partial.count(b"\r\n"):
                raise ProtocolError(400, "bad request: a line ends with a bare LF, not CRLF")

    def _request_line(self, line: bytes) -> Request:
        parts = line.split(b" ")
        if len(parts) != 3:
            raise ProtocolError(400, "bad request: the request line must be METHOD TARGET VERSION")
        method_b, target_b, version_b = parts
        if len(target_b) > self.max_uri:
            raise _uri_too_long(self.max_uri)
        if version_b == b"HTTP/1.1":
            version = "HTTP/1.1"
        elif version_b == b"HTTP/1.0":
            version = "HTTP/1.0"
        elif _VERSION_RE.fullmatch(version_b):
            raise ProtocolError(505, "HTTP version not supported: use HTTP/1.1 or HTTP/1.0")
        else:
            raise ProtocolError(400, "bad request: malformed HTTP version")
        if not _METHOD_RE.fullmatch(method_b):
            raise ProtocolError(400, "bad request: malformed method")
        method = method_b.decode()
        if method not in KNOWN_METHODS:
            raise ProtocolError(501, f"not implemented: unknown method {method}")
        if not target_b or _TARGET_BAD_RE.search(target_b):
            raise ProtocolError(400, "bad request: malformed request target")
        authority = None
        if target_b[0] != 47:  # not "/"
            target_b, authority = self._origin_form(method, target_b)
        target = target_b.decode("ascii")
        return Request(method, target, version, {}, version == "HTTP/1.1", authority)

    @staticmethod
    def _origin_form(method: str, target: bytes) -> tuple[bytes, Optional[str]]:
        """An absolute-form target as its origin-form and its authority, which must name
        a host (RFC 9110 4.2.1: an http URI with an empty host is invalid)."""
        if target == b"*" and method == "OPTIONS":
            return target, None
        match = _ABSOLUTE_RE.match(target)
        if match and method != "CONNECT":
            authority = match.group(1).decode("ascii")
            if not authority or authority[0] == ":" or not valid_authority(authority):
                raise ProtocolError(
                    400,
                    f"bad request: the target's authority {_shown(authority)} is not"
                    " host[:port] (RFC 9112 3.2.2)",
                )
            rest = target[match.end() :]
            return (rest if rest[:1] == b"/" else b"/" + rest), authority
        raise ProtocolError(400, "bad request: the target must start with /")

    def _fields(self, request: Request, lines: list[bytes]) -> None:
        headers = request.headers
        for line in lines:
            field = _field(line)
            if field is None:
                if line[:1] in (b" ", b"\t"):
                    raise ProtocolError(400, "bad request: obsolete line folding in a header")
                raise ProtocolError(400, "bad request: malformed header line")
            name = field[0].decode("ascii").lower()
            value = field[1].decode("latin-1")
            if name in headers:
                if name == "host":
                    raise ProtocolError(400, "bad request: more than one Host header")
                if name == "content-length":
                    if value != headers[name]:
                        raise ProtocolError(400, "bad request: conflicting Content-Length headers")
                    continue
                headers[name] = headers[name] + ", " + value
            else:
                headers[name] = value
        host = headers.get("host")
        if host is not None:
            if not valid_authority(host):
                raise ProtocolError(
                    400, f"bad request: Host {_shown(host)} is not host[:port] (RFC 9112 3.2)"
                )
            if request.authority is None:  # an absolute-form target's authority wins
                request.authority = host
        elif request.version == "HTTP/1.1":
            raise ProtocolError(400, "bad request: HTTP/1.1 requires a Host header")
        connection = headers.get("connection")
        if connection is not None:
            tokens = connection.lower()
            if request.version == "HTTP/1.1":
                request.keep_alive = "close" not in _tokens(tokens)
            else:
                request.keep_alive = "keep-alive" in _tokens(tokens)

    # -- framing and the body ----------------------------------------------------

    def _framing(self, request: Request) -> Request:
        headers = request.headers
        te = headers.get("transfer-encoding")
        cl = headers.get("content-length")
        if te is not None:
            if cl is not None:
                raise ProtocolError(400, "bad request: both Transfer-Encoding and Content-Length")
            if request.version == "HTTP/1.0":
                raise ProtocolError(400, "bad request: Transfer-Encoding in an HTTP/1.0 request")
            if te.lower() != "chunked":
                raise ProtocolError(501, "not implemented: the only transfer-coding is chunked")
            self.state = CHUNK_SIZE
            self._chunks = []
            self._body_size = 0
        elif cl is not None:
            if not cl.isdigit() or not cl.isascii():
                raise ProtocolError(400, "bad request: Content-Length is not a number")
            digits = cl.lstrip("0") or "0"  # leading zeros are allowed and mean nothing
            if len(digits) > 15:
                raise _body_too_large(self.max_body)
            length = int(digits)
            if length:
                self.state = BODY
                self._remaining = length
        if self.state != HEAD:
            self.streamed = self.streams is not None and self.streams(request)
            if self.state == BODY and self._remaining > self.max_body and not self.streamed:
                raise _body_too_large(self.max_body)
            expect = headers.get("expect")
            if expect is not None:
                if expect.lower() != "100-continue":
                    raise ProtocolError(417, "expectation failed: only 100-continue is supported")
                request.expect_continue = request.version == "HTTP/1.1"
            self.partial = request
        return request

    def _read_body(self) -> Optional[Request]:
        request = self.partial
        assert request is not None
        if self.state == BODY:
            buf, pos = self._buf, self._pos
            if len(buf) - pos < self._remaining:
                return None
            end = pos + self._remaining
            request.body = buf[pos:end]
            self._pos = end
        else:
            while self.state != HEAD:
                if not self._read_chunked_step():
                    return None
            request.body = b"".join(self._chunks)
            self._chunks = []
        self.state = HEAD
        self.partial = None
        return request

    def _read_chunked_step(self) -> bool:
        """Consume one chunk-size line, chunk or trailer line; False if more bytes are needed."""
        buf, pos = self._buf, self._pos
        if self.state == CHUNK_DATA:
            need = self._remaining + 2
            if len(buf) - pos < need:
                return False
            if buf[pos + self._remaining : pos + need] != b"\r\n":
                raise ProtocolError(400, "bad request: chunk data is not followed by CRLF")
            self._chunks.append(buf[pos : pos + self._remaining])
            self._pos = pos + need
            self.state = CHUNK_SIZE
            return True
        end = buf.find(b"\r\n", pos)
        # The same limit whether the line arrived whole or piecemeal: line + CR <= 1024.
        if (end if end >= 0 else len(buf) - 1) - pos >= MAX_CHUNK_LINE:
            raise ProtocolError(
                400, f"bad request: a chunk line is longer than {MAX_CHUNK_LINE} bytes"
            )
        if end < 0:
            if buf.find(b"\n", pos) >= 0:
                raise ProtocolError(400, "bad request: malformed chunk line")
            return False
        line = buf[pos:end]
        self._pos = end + 2
        if self.state == TRAILER:
            self._body_size += len(line)
            if not line:
                self.state = HEAD
            elif self._body_size > self.max_body:
                raise _body_too_large(self.max_body)
            elif _field(line) is None:
                raise ProtocolError(400, "bad request: malformed trailer field")
            return True
        match = _CHUNK_SIZE_RE.fullmatch(line)
        if match is None:
            digits = line.split(b";")[0].strip(b" \t").lstrip(b"0")
            if len(digits) > 8 and _HEX_RE.fullmatch(digits):
                raise _body_too_large(self.max_body)
            raise ProtocolError(400, "bad request: malformed chunk size")
        size = int(match.group(1), 16)
        self._body_size += size
        if self._body_size > self.max_body and not self.streamed:
            raise _body_too_large(self.max_body)
        if size:
            self._remaining = size
            self.state = CHUNK_DATA
        else:
            self.state = TRAILER
            if self.streamed:
                self._body_size = 0  # its trailer alone counts against limits.body
        return True

    def body_part(self, most: int) -> Optional[bytes]:
        """The next bytes of a streamed body (see the class): up to `most` bytes of it
        that have arrived, b"" when none has yet, None once it is complete (and for a
        request that had no body). Raises ProtocolError for bad chunked framing (RFC
        9112 7.1); the parser is then dead, as after any refusal."""
        if self._error is not None:
            raise self._error
        try:
            part = self._body_part(most) if self.state != HEAD else None
        except ProtocolError as err:
            self.state = DEAD
            err.request = self.partial
            self._error = err
            raise
        if part is None:
            self.streamed = False
            self.partial = None
        return part

    def _body_part(self, most: int) -> Optional[bytes]:
        buf, pos = self._buf, self._pos
        if self.state == BODY:
            take = min(self._remaining, len(buf) - pos, most)
            self._pos = pos + take
            self._remaining -= take
            if not self._remaining:
                self.state = HEAD
            return buf[pos : pos + take]
        parts = []
        size = 0
        while size < most:
            buf, pos = self._buf, self._pos
            if self.state == CHUNK_DATA:
                if self._remaining:  # chunk data is given as it comes, not whole
                    take = min(self._remaining, len(buf) - pos, most - size)
                    if not take:
                        break
                    parts.append(buf[pos : pos + take])
                    self._pos = pos + take
                    self._remaining -= take
                    size += take
                    continue
                if len(buf) - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise ProtocolError(400, "bad request: chunk data is not followed by CRLF")
                self._pos = pos + 2
                self.state = CHUNK_SIZE
            elif self.state == HEAD or not self._read_chunked_step():
                break
        if not parts and self.state == HEAD:
            return None
        return b"".join(parts)


def _field(line: bytes) -> Optional[tuple[bytes, bytes]]:
    """A field line's name and value (OWS stripped), or None if it is malformed."""
    match = _FIELD_NAME_RE.match(line)
    if match is None or _FIELD_VALUE_BAD_RE.search(line, match.end()):
        return None
    return match.group(1), line[match.end() :].strip(b" \t")


def valid_authority(text: str) -> bool:
    """Whether `text` is `host[:port]` as a Host header or an absolute-form target gives
    it (RFC 9110 7.2, RFC 3986 3.2.2-3.2.3): a reg-name (possibly empty) or IPv4 address,
    or an IPv6 or IPvFuture literal in brackets, then an optional port of digits. A
    userinfo (`user@`) is refused (RFC 9110 4.2.4)."""
    match = _AUTHORITY_RE.fullmatch(text)
    if match is None:
        return False
    ipv6 = match.group("ipv6")
    if ipv6 is not None:
        try:
            ipaddress.IPv6Address(ipv6)
        except ValueError:
            return False
    return True


def _shown(value: str) -> str:
    """A header value quoted for a one-line message, cut to a readable length."""
    return repr(value if len(value) <= 32 else value[:29] + "...")


def _tokens(value: str) -> set[str]:
    return {token.strip() for token in value.split(",")}


def _uri_too_long(limit: int) -> ProtocolError:
    return ProtocolError(414, f"URI too long: the limit is {limit} bytes (limits.uri)")


def _header_too_large(limit: int) -> ProtocolError:
    return ProtocolError(
        431, f"request header fields too large: the limit is {limit} bytes (limits.header)"
    )


def _body_too_large(limit: int) -> ProtocolError:
    return ProtocolError(413, f"content too large: the body limit is {limit} bytes (limits.body)")
