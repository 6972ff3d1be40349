"""The sans-IO HTTP/1.1 codec (httap/http.py), tested with byte strings alone.

- Split feeding: representative requests cut at every byte boundary give the same requests.
- Framing table: each case's verdict is pinned, and compared with h11's; every place where
  the two disagree is listed in DIFFERENCES (and in docs/http.md) with its reason.
- Statuses and messages of every refusal and limit; limits are enforced while buffering.
- keep-alive, Expect: 100-continue, response encoding, the Date line.
- Properties (hypothesis): random bytes and mutated requests, in random chunkings, only
  ever raise ProtocolError, terminate, and do not depend on how the bytes were cut.
"""

from __future__ import annotations

import re
import time
from email.utils import parsedate_to_datetime
from typing import Optional

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from httap import http
from httap.http import FileBody, Parser, ProtocolError, Request, Response
from tests.helpers import ROOT

DOCS = ROOT / "docs" / "http.md"

# -- helpers -----------------------------------------------------------------------


def snapshot(request: Request) -> tuple:
    """Everything the parser decides about a request, comparable with ==."""
    return (
        request.method,
        request.target,
        request.version,
        dict(request.headers),
        request.body,
        request.keep_alive,
        request.expect_continue,
    )


def run(pieces: list[bytes], **limits: int) -> tuple[list[tuple], Optional[int]]:
    """Feed `pieces` one by one, taking requests as they complete.

    Returns the snapshots of the requests and the status of the ProtocolError that
    stopped the parser (None if none did). Fails on a request that consumes nothing.
    """
    parser = Parser(**limits)
    requests: list[tuple] = []
    total = sum(len(piece) for piece in pieces)
    for piece in pieces:
        parser.feed(piece)
        while True:
            try:
                request = parser.next_request()
            except ProtocolError as err:
                return requests, err.status
            if request is None:
                break
            requests.append(snapshot(request))
            assert len(requests) <= total, "a request came out of no bytes"
    return requests, None


def fate(pieces: list[bytes], **limits: int) -> tuple[list[tuple], bool]:
    """The requests, and whether the stream was refused (the status may vary, see below)."""
    requests, status = run(pieces, **limits)
    return requests, status is not None


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """`data` cut at the given offsets."""
    bounds = [0, *sorted(set(points)), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def refusal(data: bytes, **limits: int) -> ProtocolError:
    """The ProtocolError that `data` (fed whole) gets."""
    parser = Parser(**limits)
    parser.feed(data)
    with pytest.raises(ProtocolError) as info:
        while parser.next_request() is not None:
            pass
    return info.value


def parse_one(data: bytes, **limits: int) -> Request:
    parser = Parser(**limits)
    parser.feed(data)
    request = parser.next_request()
    assert request is not None
    return request


# -- split feeding -------------------------------------------------------------------

GET_HEADERS = (
    b"GET /index.html?q=1&r=%20 HTTP/1.1\r\n"
    b"Host: example.com:8080\r\n"
    b"User-Agent: test/1.0\r\n"
    b"Accept: text/html\r\n"
    b"Accept: application/json\r\n"
    b"X-Spaces: \t padded value \t\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
)
POST_CL = (
    b"POST /?gpio/led HTTP/1.1\r\n"
    b"Host: a\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: 27\r\n"
    b"\r\n"
    b'{"value": 1, "mode": "out"}'
)
CHUNKED = (
    b"PUT /upload HTTP/1.1\r\n"
    b"Host: a\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"Expect: 100-continue\r\n"
    b"\r\n"
    b"5;name=value\r\nhello\r\n"
    b'6 ; quoted = "a \\" b" ; flag\r\n world\r\n'
    b"000A\r\n0123456789\r\n"
    b"0;last\r\n"
    b"X-Checksum: abc\r\n"
    b"X-Other: 1\r\n"
    b"\r\n"
)
PIPELINED = (
    b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
    b"POST /b HTTP/1.0\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nxyz"
)
PIPELINED_CHUNKED = (
    b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    b"DELETE /d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
)

REPRESENTATIVE = {
    "get-headers": (
        GET_HEADERS,
        [
            (
                "GET",
                "/index.html?q=1&r=%20",
                "HTTP/1.1",
                {
                    "host": "example.com:8080",
                    "user-agent": "test/1.0",
                    "accept": "text/html, application/json",
                    "x-spaces": "padded value",
                    "connection": "keep-alive",
                },
                b"",
                True,
                False,
            )
        ],
    ),
    "post-content-length": (
        POST_CL,
        [
            (
                "POST",
                "/?gpio/led",
                "HTTP/1.1",
                {"host": "a", "content-type": "application/json", "content-length": "27"},
                b'{"value": 1, "mode": "out"}',
                True,
                False,
            )
        ],
    ),
    "chunked-extensions-trailers": (
        CHUNKED,
        [
            (
                "PUT",
                "/upload",
                "HTTP/1.1",
                {"host": "a", "transfer-encoding": "chunked", "expect": "100-continue"},
                b"hello world0123456789",
                True,
                True,
            )
        ],
    ),
    "pipelined-pair": (
        PIPELINED,
        [
            ("GET", "/a", "HTTP/1.1", {"host": "a"}, b"", True, False),
            (
                "POST",
                "/b",
                "HTTP/1.0",
                {"content-length": "3", "connection": "keep-alive"},
                b"xyz",
                True,
                False,
            ),
        ],
    ),
    "pipelined-chunked-then-get": (
        PIPELINED_CHUNKED,
        [
            (
                "POST",
                "/c",
                "HTTP/1.1",
                {"host": "a", "transfer-encoding": "chunked"},
                b"abc",
                True,
                False,
            ),
            ("DELETE", "/d", "HTTP/1.1", {"host": "a", "connection": "close"}, b"", False, False),
        ],
    ),
}


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_whole(name: str) -> None:
    data, expected = REPRESENTATIVE[name]
    assert run([data]) == (expected, None)


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_every_split_point(name: str) -> None:
    data, expected = REPRESENTATIVE[name]
    for point in range(len(data) + 1):
        assert run([data[:point], data[point:]]) == (expected, None), point


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_every_chunk_size(name: str) -> None:
    """Fed in pieces of 1, 2, ... n bytes (1 is byte by byte, n is whole)."""
    data, expected = REPRESENTATIVE[name]
    for size in range(1, len(data) + 1):
        pieces = [data[i : i + size] for i in range(0, len(data), size)]
        assert run(pieces) == (expected, None), size


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_every_pair_of_split_points(name: str) -> None:
    """Three pieces, cut at every pair of points."""
    data, expected = REPRESENTATIVE[name]
    for first in range(1, len(data)):
        for second in range(first + 1, len(data)):
            assert run(cut(data, [first, second])) == (expected, None), (first, second)


def test_partial_request_is_none_until_complete() -> None:
    parser = Parser()
    for byte in range(len(POST_CL) - 1):
        parser.feed(POST_CL[byte : byte + 1])
        assert parser.next_request() is None
    parser.feed(POST_CL[-1:])
    assert parser.next_request().body == b'{"value": 1, "mode": "out"}'
    assert parser.next_request() is None
    assert parser.buffered == 0


def test_buffered_counts_the_next_request() -> None:
    parser = Parser()
    parser.feed(PIPELINED[:40])
    assert parser.next_request().target == "/a"
    assert parser.buffered == 40 - len(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")


# -- the framing table, against h11 ----------------------------------------------------


def ours(data: bytes) -> tuple:
    """Our verdict on the first request of `data`: accept + body, reject + status."""
    parser = Parser()
    parser.feed(data)
    try:
        request = parser.next_request()
    except ProtocolError as err:
        return ("reject", err.status)
    if request is None:
        return ("incomplete",)
    return ("accept", request.method, request.target, request.body)


def theirs(data: bytes) -> tuple:
    """h11's verdict on the same bytes, in the same shape."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    request = None
    body = b""
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return ("incomplete",)
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return ("accept", request.method.decode(), request.target.decode(), body)
    except h11.RemoteProtocolError as err:
        return ("reject", err.error_status_hint)


def post(headers: bytes, body: bytes = b"hello", version: bytes = b"1.1") -> bytes:
    host = b"Host: a\r\n" if version == b"1.1" else b""
    return b"POST / HTTP/" + version + b"\r\n" + host + headers + b"\r\n" + body


def te(value: bytes, body: bytes = b"5\r\nhello\r\n0\r\n\r\n", extra: bytes = b"") -> bytes:
    return post(b"Transfer-Encoding: " + value + b"\r\n" + extra, body)


def chunks(body: bytes) -> bytes:
    return te(b"chunked", body)


def get(target: bytes = b"/", headers: bytes = b"Host: a\r\n", line_end: bytes = b"\r\n") -> bytes:
    return b"GET " + target + b" HTTP/1.1" + line_end + headers + line_end


OK = ("accept", "POST", "/", b"hello")
OK_GET = ("accept", "GET", "/", b"")
LONG = b"a" * 3000

# name: (bytes, our verdict)
CASES: dict[str, tuple[bytes, tuple]] = {
    # Content-Length
    "cl": (post(b"Content-Length: 5\r\n"), OK),
    "cl-zero": (post(b"Content-Length: 0\r\n", b""), ("accept", "POST", "/", b"")),
    "cl-leading-zeros": (post(b"Content-Length: 005\r\n"), OK),
    "cl-16-digits-zero-padded": (post(b"Content-Length: 0000000000000005\r\n"), OK),
    "cl-ows": (post(b"Content-Length: \t5 \t\r\n"), OK),
    "cl-duplicate-identical": (post(b"Content-Length: 5\r\nContent-Length: 5\r\n"), OK),
    "cl-duplicate-as-list": (post(b"Content-Length: 5, 5\r\n"), ("reject", 400)),
    "cl-conflicting": (
        post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
        ("reject", 400),
    ),
    "cl-conflicting-list": (post(b"Content-Length: 5, 6\r\n"), ("reject", 400)),
    "cl-plus-sign": (post(b"Content-Length: +5\r\n"), ("reject", 400)),
    "cl-minus-sign": (post(b"Content-Length: -5\r\n"), ("reject", 400)),
    "cl-inner-space": (post(b"Content-Length: 5 5\r\n"), ("reject", 400)),
    "cl-hex": (post(b"Content-Length: 0x5\r\n"), ("reject", 400)),
    "cl-empty": (post(b"Content-Length:\r\n"), ("reject", 400)),
    "cl-unicode-digit": (post(b"Content-Length: \xb2\r\n"), ("reject", 400)),
    "cl-over-limit": (post(b"Content-Length: 99999999999\r\n"), ("reject", 413)),
    "cl-21-digits": (post(b"Content-Length: " + b"9" * 21 + b"\r\n"), ("reject", 413)),
    # Transfer-Encoding
    "te-chunked": (te(b"chunked"), OK),
    "te-chunked-trailing-space": (te(b"chunked "), OK),
    "te-chunked-leading-space": (te(b" chunked"), OK),
    "te-chunked-tab": (te(b"\tchunked"), OK),
    "te-Chunked": (te(b"Chunked"), OK),
    "te-CHUNKED": (te(b"CHUNKED"), OK),
    "te-xchunked": (te(b"xchunked"), ("reject", 501)),
    "te-chunked-identity": (te(b"chunked, identity"), ("reject", 501)),
    "te-gzip-chunked": (te(b"gzip, chunked"), ("reject", 501)),
    "te-identity": (te(b"identity", b"hello"), ("reject", 501)),
    "te-two-headers": (te(b"chunked", extra=b"Transfer-Encoding: chunked\r\n"), ("reject", 501)),
    "te-vertical-tab": (te(b"\x0bchunked"), ("reject", 400)),
    "te-and-cl": (te(b"chunked", extra=b"Content-Length: 5\r\n"), ("reject", 400)),
    "te-and-cl-zero": (te(b"chunked", extra=b"Content-Length: 0\r\n"), ("reject", 400)),
    "te-in-http-1.0": (
        post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n", b"1.0"),
        ("reject", 400),
    ),
    # chunk sizes
    "chunk-upper-hex": (
        chunks(b"A\r\nhellohello\r\n0\r\n\r\n"),
        ("accept", "POST", "/", b"hello" * 2),
    ),
    "chunk-leading-zeros": (chunks(b"0000000005\r\nhello\r\n0\r\n\r\n"), OK),
    "chunk-size-9-digits": (chunks(b"100000000\r\nhello\r\n0\r\n\r\n"), ("reject", 413)),
    "chunk-size-17-digits": (chunks(b"1" + b"0" * 16 + b"\r\nhello\r\n0\r\n\r\n"), ("reject", 413)),
    "chunk-size-21-digits": (chunks(b"1" + b"0" * 20 + b"\r\nhello\r\n0\r\n\r\n"), ("reject", 413)),
    "chunk-size-over-limit": (chunks(b"100001\r\nhello\r\n0\r\n\r\n"), ("reject", 413)),
    "chunk-size-plus": (chunks(b"+5\r\nhello\r\n0\r\n\r\n"), ("reject", 400)),
    "chunk-size-0x": (chunks(b"0x5\r\nhello\r\n0\r\n\r\n"), ("reject", 400)),
    "chunk-size-leading-space": (chunks(b" 5\r\nhello\r\n0\r\n\r\n"), ("reject", 400)),
    "chunk-size-trailing-space": (chunks(b"5 \r\nhello\r\n0\r\n\r\n"), OK),
    "chunk-size-empty": (chunks(b"\r\nhello\r\n0\r\n\r\n"), ("reject", 400)),
    "chunk-no-last-chunk": (chunks(b"5\r\nhello\r\n"), ("incomplete",)),
    # chunk extensions
    "chunk-ext": (chunks(b'5;a=b;c="d e";f\r\nhello\r\n0;z\r\n\r\n'), OK),
    "chunk-ext-quoted-pair": (chunks(b'5;a="x\\"y"\r\nhello\r\n0\r\n\r\n'), OK),
    "chunk-ext-bws": (chunks(b"5 ; a = b\r\nhello\r\n0\r\n\r\n"), OK),
    "chunk-ext-no-name": (chunks(b"5;\r\nhello\r\n0\r\n\r\n"), ("reject", 400)),
    "chunk-ext-space-in-name": (chunks(b"5;a b\r\nhello\r\n0\r\n\r\n"), ("reject", 400)),
    "chunk-ext-space-in-value": (chunks(b"5;a=b c\r\nhello\r\n0\r\n\r\n"), ("reject", 400)),
    "chunk-ext-unterminated-quote": (chunks(b'5;a="b\r\nhello\r\n0\r\n\r\n'), ("reject", 400)),
    "chunk-ext-nul": (chunks(b"5;a\x00\r\nhello\r\n0\r\n\r\n"), ("reject", 400)),
    "chunk-ext-nul-in-quotes": (chunks(b'5;a="\x00"\r\nhello\r\n0\r\n\r\n'), ("reject", 400)),
    "chunk-ext-1100-bytes": (
        chunks(b"5;a=" + b"b" * 1100 + b"\r\nhello\r\n0\r\n\r\n"),
        ("reject", 400),
    ),
    # chunk data and line endings in the body
    "chunk-data-no-crlf": (chunks(b"5\r\nhelloXX0\r\n\r\n"), ("reject", 400)),
    "chunk-data-lf-only": (chunks(b"5\r\nhello\n0\r\n\r\n"), ("reject", 400)),
    "chunk-data-too-long": (chunks(b"5\r\nhello!\r\n0\r\n\r\n"), ("reject", 400)),
    "chunk-size-lf-only": (chunks(b"5\nhello\r\n0\r\n\r\n"), ("reject", 400)),
    "chunk-size-bare-cr": (chunks(b"5\rhello\r\n0\r\n\r\n"), ("reject", 400)),
    "chunk-trailer": (chunks(b"5\r\nhello\r\n0\r\nX-T: 1\r\nX-U:2\r\n\r\n"), OK),
    "chunk-trailer-malformed": (chunks(b"5\r\nhello\r\n0\r\nX T: 1\r\n\r\n"), ("reject", 400)),
    "chunk-trailer-nul": (chunks(b"5\r\nhello\r\n0\r\nX: \x00\r\n\r\n"), ("reject", 400)),
    "chunk-end-lf-only": (chunks(b"5\r\nhello\r\n0\r\n\n"), ("reject", 400)),
    # line endings in the head
    "bare-lf-everywhere": (b"GET / HTTP/1.1\nHost: a\n\n", ("reject", 400)),
    "bare-lf-request-line": (
        get(line_end=b"\n", headers=b"Host: a\r\n") + b"\r\n",
        ("reject", 400),
    ),
    "bare-lf-last-header": (b"GET / HTTP/1.1\r\nHost: a\n\r\n", ("reject", 400)),
    "bare-cr-in-header": (b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", ("reject", 400)),
    "bare-cr-request-line": (b"GET / HTTP/1.1\rHost: a\r\n\r\n", ("reject", 400)),
    "empty-line-before-request": (b"\r\n" + get(), ("reject", 400)),
    # header fields
    "space-before-colon": (get(headers=b"Host: a\r\nX : b\r\n"), ("reject", 400)),
    "tab-before-colon": (get(headers=b"Host: a\r\nX\t: b\r\n"), ("reject", 400)),
    "space-before-colon-host": (get(headers=b"Host : a\r\n"), ("reject", 400)),
    "obs-fold": (get(headers=b"Host: a\r\nX: b\r\n c\r\n"), ("reject", 400)),
    "obs-fold-first-line": (get(headers=b" X: b\r\nHost: a\r\n"), ("reject", 400)),
    "empty-header-name": (get(headers=b"Host: a\r\n: b\r\n"), ("reject", 400)),
    "non-token-header-name": (get(headers=b"Host: a\r\nX(y): b\r\n"), ("reject", 400)),
    "non-ascii-header-name": (get(headers=b"Host: a\r\nX\xe9: b\r\n"), ("reject", 400)),
    "header-without-colon": (get(headers=b"Host: a\r\nX\r\n"), ("reject", 400)),
    "nul-in-header-value": (get(headers=b"Host: a\r\nX: a\x00b\r\n"), ("reject", 400)),
    "del-in-header-value": (get(headers=b"Host: a\r\nX: a\x7fb\r\n"), ("reject", 400)),
    "obs-text-in-header-value": (get(headers=b"Host: a\r\nX: caf\xe9\r\n"), OK_GET),
    "tab-in-header-value": (get(headers=b"Host: a\r\nX: a\tb\r\n"), OK_GET),
    "empty-header-value": (get(headers=b"Host: a\r\nX:\r\n"), OK_GET),
    "missing-host-1.1": (get(headers=b"X: a\r\n"), ("reject", 400)),
    "no-headers-1.1": (b"GET / HTTP/1.1\r\n\r\n", ("reject", 400)),
    "missing-host-1.0": (b"GET / HTTP/1.0\r\n\r\n", OK_GET),
    "empty-host": (get(headers=b"Host:\r\n"), OK_GET),
    "two-host-headers": (get(headers=b"Host: a\r\nHost: b\r\n"), ("reject", 400)),
    "two-identical-host-headers": (get(headers=b"Host: a\r\nHost: a\r\n"), ("reject", 400)),
    # the request line
    "http-1.0": (b"GET / HTTP/1.0\r\n\r\n", OK_GET),
    "http-2.0": (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", ("reject", 505)),
    "http-1.2": (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", ("reject", 505)),
    "http-0.9-style": (b"GET /\r\n\r\n", ("reject", 400)),
    "version-no-minor": (b"GET / HTTP/1\r\nHost: a\r\n\r\n", ("reject", 400)),
    "version-lowercase": (b"GET / http/1.1\r\nHost: a\r\n\r\n", ("reject", 400)),
    "version-two-digits": (b"GET / HTTP/1.10\r\nHost: a\r\n\r\n", ("reject", 400)),
    "lowercase-method": (b"get / HTTP/1.1\r\nHost: a\r\n\r\n", ("reject", 501)),
    "unknown-method": (b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n", ("reject", 501)),
    "non-token-method": (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", ("reject", 400)),
    "two-spaces": (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", ("reject", 400)),
    "tab-separator": (b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", ("reject", 400)),
    "trailing-space": (b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", ("reject", 400)),
    "absolute-form": (get(b"http://a/b?c"), ("accept", "GET", "/b?c", b"")),
    "absolute-form-no-path": (get(b"http://a"), ("accept", "GET", "/", b"")),
    "asterisk-options": (
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        ("accept", "OPTIONS", "*", b""),
    ),
    "asterisk-get": (get(b"*"), ("reject", 400)),
    "authority-form-connect": (b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", ("reject", 400)),
    "relative-target": (get(b"index.html"), ("reject", 400)),
    "control-char-in-target": (get(b"/a\x01b"), ("reject", 400)),
    "del-in-target": (get(b"/a\x7fb"), ("reject", 400)),
    "non-ascii-target": (get(b"/caf\xe9"), ("reject", 400)),
    "fragment-in-target": (get(b"/a#b"), ("accept", "GET", "/a#b", b"")),
    # very long lines (default limits: uri 2048, header 8192)
    "uri-3000": (get(b"/" + LONG), ("reject", 414)),
    "method-3000": (b"GET" + LONG + b" / HTTP/1.1\r\nHost: a\r\n\r\n", ("reject", 414)),
    "header-9000": (get(headers=b"Host: a\r\nX: " + LONG * 3 + b"\r\n"), ("reject", 431)),
    "header-20000": (get(headers=b"Host: a\r\nX: " + LONG * 7 + b"\r\n"), ("reject", 431)),
    # Expect
    "expect-100-continue": (post(b"Expect: 100-continue\r\nContent-Length: 5\r\n"), OK),
    "expect-unknown": (post(b"Expect: foo\r\nContent-Length: 5\r\n"), ("reject", 417)),
}

# name: (h11's verdict, why we differ). Any difference not listed here fails the test.
DIFFERENCES: dict[str, tuple[tuple, str]] = {
    "cl-duplicate-as-list": (
        OK,
        "a comma list in Content-Length is refused, even of equal values: one number only",
    ),
    "cl-over-limit": (
        ("incomplete",),
        "limits.body is checked on the head, before the body arrives (h11 has no body limit)",
    ),
    "cl-21-digits": (
        ("reject", 400),
        "a number longer than 15 digits is over any body limit: 413, not malformed",
    ),
    "te-and-cl": (
        OK,
        "TE beside CL is refused (RFC 9112 6.1: MAY reject); h11 drops the CL and reads chunks",
    ),
    "te-and-cl-zero": (
        OK,
        "TE beside CL is refused (RFC 9112 6.1: MAY reject); h11 drops the CL and reads chunks",
    ),
    "te-in-http-1.0": (
        OK,
        "RFC 9112 6.1: TE in an HTTP/1.0 message means faulty framing; h11 reads chunks",
    ),
    "chunk-size-9-digits": (
        ("incomplete",),
        "a chunk size has at most 8 significant hex digits; more is over any body limit: 413",
    ),
    "chunk-size-17-digits": (
        ("incomplete",),
        "a chunk size has at most 8 significant hex digits; more is over any body limit: 413",
    ),
    "chunk-size-21-digits": (
        ("reject", 400),
        "a chunk size has at most 8 significant hex digits; more is over any body limit: 413",
    ),
    "chunk-size-over-limit": (
        ("incomplete",),
        "limits.body is checked on each chunk size, before its data arrives",
    ),
    "chunk-ext-bws": (
        ("reject", 400),
        "RFC 9112 7.1.1 allows whitespace (BWS) around ';' and '=' in chunk extensions",
    ),
    "chunk-ext-no-name": (
        OK,
        "chunk extensions follow the grammar (;name[=token|quoted-string]); h11 takes ';.*'",
    ),
    "chunk-ext-space-in-name": (
        OK,
        "chunk extensions follow the grammar (;name[=token|quoted-string]); h11 takes ';.*'",
    ),
    "chunk-ext-space-in-value": (
        OK,
        "chunk extensions follow the grammar (;name[=token|quoted-string]); h11 takes ';.*'",
    ),
    "chunk-ext-unterminated-quote": (
        OK,
        "chunk extensions follow the grammar (;name[=token|quoted-string]); h11 takes ';.*'",
    ),
    "chunk-ext-nul": (
        OK,
        "chunk extensions follow the grammar (;name[=token|quoted-string]); h11 takes ';.*'",
    ),
    "chunk-ext-nul-in-quotes": (
        OK,
        "control characters are refused in a quoted chunk-ext value; h11 takes ';.*'",
    ),
    "chunk-ext-1100-bytes": (
        OK,
        "a chunk-size or trailer line is capped at 1024 bytes (with its CR); h11 has no cap",
    ),
    "chunk-end-lf-only": (
        OK,
        "CRLF only: the blank line that ends the trailers may not be a bare LF",
    ),
    "bare-lf-everywhere": (
        OK_GET,
        "CRLF only: RFC 9112 2.2 MAY accept a bare LF; refusing closes a smuggling gap",
    ),
    "bare-lf-request-line": (
        OK_GET,
        "CRLF only: RFC 9112 2.2 MAY accept a bare LF; refusing closes a smuggling gap",
    ),
    "bare-lf-last-header": (
        OK_GET,
        "CRLF only: RFC 9112 2.2 MAY accept a bare LF; refusing closes a smuggling gap",
    ),
    "obs-fold": (
        OK_GET,
        "obs-fold is refused (RFC 9112 5.2 allows a server to refuse it); h11 unfolds it",
    ),
    "del-in-header-value": (
        OK_GET,
        "DEL (0x7f) is not a field-vchar (RFC 9110 5.5); h11 lets it through",
    ),
    "http-2.0": (
        ("accept", "GET", "/", b""),
        "only HTTP/1.0 and HTTP/1.1 are spoken: another version is 505",
    ),
    "http-1.2": (
        ("accept", "GET", "/", b""),
        "only HTTP/1.0 and HTTP/1.1 are spoken: another version is 505",
    ),
    "lowercase-method": (
        ("accept", "get", "/", b""),
        "methods are case-sensitive; only the nine of RFC 9110 are served, others are 501",
    ),
    "unknown-method": (
        ("accept", "FOO", "/", b""),
        "methods are case-sensitive; only the nine of RFC 9110 are served, others are 501",
    ),
    "absolute-form": (
        ("accept", "GET", "http://a/b?c", b""),
        "absolute-form is reduced to origin-form (the path and query); h11 keeps it whole",
    ),
    "absolute-form-no-path": (
        ("accept", "GET", "http://a", b""),
        "absolute-form is reduced to origin-form (the path and query); h11 keeps it whole",
    ),
    "asterisk-get": (
        ("accept", "GET", "*", b""),
        "asterisk-form is for OPTIONS only (RFC 9112 3.2.4)",
    ),
    "authority-form-connect": (
        ("accept", "CONNECT", "a:443", b""),
        "no proxying: authority-form (CONNECT) is refused",
    ),
    "relative-target": (
        ("accept", "GET", "index.html", b""),
        "a target must be origin-form (start with '/'), absolute-form or '*' (OPTIONS)",
    ),
    "uri-3000": (
        ("accept", "GET", "/" + "a" * 3000, b""),
        "limits.uri (2048 by default) caps the target: 414; h11 has no such limit",
    ),
    "method-3000": (
        ("accept", "GET" + "a" * 3000, "/", b""),
        "the request line is capped at limits.uri + 32 bytes: 414",
    ),
    "header-9000": (
        OK_GET,
        "limits.header (8192 by default) caps the field block: 431; h11 caps incomplete heads",
    ),
    "header-20000": (
        OK_GET,
        "limits.header (8192 by default) caps the field block: 431; h11 caps incomplete heads",
    ),
    "expect-unknown": (
        OK,
        "an expectation other than 100-continue is refused with 417 when a body follows",
    ),
}


def _check_table() -> None:
    """Keep the tables honest: every listed difference is a case, with a reason."""
    for name, (_, reason) in DIFFERENCES.items():
        assert name in CASES, name
        assert reason, name


@pytest.mark.parametrize("name", CASES)
def test_framing_verdict(name: str) -> None:
    data, expected = CASES[name]
    assert ours(data) == expected


@pytest.mark.parametrize("name", CASES)
def test_framing_verdict_byte_by_byte(name: str) -> None:
    """The same verdict, status included, when the bytes come one at a time."""
    data, expected = CASES[name]
    requests, status = run([data[i : i + 1] for i in range(len(data))])
    if expected[0] == "accept":
        assert status is None
        assert (requests[0][0], requests[0][1], requests[0][4]) == expected[1:]
    elif expected[0] == "reject":
        assert (requests, status) == ([], expected[1])
    else:
        assert (requests, status) == ([], None)


@pytest.mark.parametrize("name", CASES)
def test_framing_against_h11(name: str) -> None:
    data, _ = CASES[name]
    mine, h11s = ours(data), theirs(data)
    if name in DIFFERENCES:
        listed, _reason = DIFFERENCES[name]
        assert mine != h11s, f"{name}: no longer differs from h11, drop it from DIFFERENCES"
        assert h11s == listed
    else:
        assert mine == h11s


def test_differences_are_cases_with_reasons() -> None:
    _check_table()


def test_differences_are_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name in DIFFERENCES:
        assert f"`{name}`" in text, f"docs/http.md does not list {name}"


# -- statuses and messages -------------------------------------------------------------

STATUSES = {
    # name: (bytes, limits, status, words the message must contain)
    "malformed-request-line": (b"GET /\r\n\r\n", {}, 400, "METHOD TARGET VERSION"),
    "malformed-header": (get(headers=b"Host: a\r\nX : b\r\n"), {}, 400, "header"),
    "obs-fold": (get(headers=b"Host: a\r\nX: b\r\n c\r\n"), {}, 400, "folding"),
    "bare-lf": (b"GET / HTTP/1.1\nHost: a\n\n", {}, 400, "bare LF"),
    "bare-cr": (b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", {}, 400, "bare CR"),
    "no-host": (get(headers=b"X: a\r\n"), {}, 400, "Host"),
    "two-hosts": (get(headers=b"Host: a\r\nHost: b\r\n"), {}, 400, "Host"),
    "host-space": (get(headers=b"Host: bad host\r\n"), {}, 400, "Host 'bad host' is not"),
    "host-path": (get(headers=b"Host: a/evil\r\n"), {}, 400, "Host 'a/evil' is not"),
    "host-user": (get(headers=b"Host: u@a\r\n"), {}, 400, "Host 'u@a' is not"),
    "host-port": (get(headers=b"Host: a:80x\r\n"), {}, 400, "RFC 9112 3.2"),
    "host-long": (get(headers=b"Host: " + b"a" * 90 + b"/\r\n"), {}, 400, "'" + "a" * 29 + "...'"),
    "target-user": (get(b"http://u@a/"), {}, 400, "authority 'u@a' is not"),
    "target-no-host": (get(b"http:///x"), {}, 400, "authority '' is not"),
    "target-port": (get(b"http://a:b/x"), {}, 400, "RFC 9112 3.2.2"),
    "cl-and-te": (te(b"chunked", extra=b"Content-Length: 5\r\n"), {}, 400, "Content-Length"),
    "conflicting-cl": (post(b"Content-Length: 5\r\nContent-Length: 6\r\n"), {}, 400, "conflicting"),
    "bad-cl": (post(b"Content-Length: 5a\r\n"), {}, 400, "Content-Length"),
    "te-in-1.0": (post(b"Transfer-Encoding: chunked\r\n", b"", b"1.0"), {}, 400, "HTTP/1.0"),
    "bad-chunk-size": (chunks(b"5x\r\nhello\r\n0\r\n\r\n"), {}, 400, "chunk size"),
    "chunk-no-crlf": (chunks(b"5\r\nhelloXX"), {}, 400, "CRLF"),
    "bad-trailer": (chunks(b"0\r\nX T: 1\r\n\r\n"), {}, 400, "trailer"),
    "long-chunk-line": (chunks(b"5;" + b"a" * 1100), {}, 400, "1024"),
    "unknown-te": (te(b"gzip"), {}, 501, "chunked"),
    "unknown-method": (b"BREW / HTTP/1.1\r\nHost: a\r\n\r\n", {}, 501, "BREW"),
    "version": (b"GET / HTTP/3.0\r\nHost: a\r\n\r\n", {}, 505, "HTTP/1.1"),
    "malformed-version": (b"GET / HTTP/x\r\nHost: a\r\n\r\n", {}, 400, "version"),
    "uri": (get(b"/" + b"u" * 100), {"max_uri": 100}, 414, "limits.uri"),
    "header": (
        get(headers=b"Host: a\r\nX: " + b"h" * 100 + b"\r\n"),
        {"max_header": 100},
        431,
        "limits.header",
    ),
    "body-cl": (
        post(b"Content-Length: 101\r\n", b"b" * 101),
        {"max_body": 100},
        413,
        "limits.body",
    ),
    "body-chunked": (
        chunks(b"40\r\n" + b"b" * 64 + b"\r\n40\r\n" + b"b" * 64 + b"\r\n0\r\n\r\n"),
        {"max_body": 100},
        413,
        "limits.body",
    ),
    "body-trailers": (
        chunks(b"5\r\nhello\r\n0\r\nX: " + b"t" * 100 + b"\r\n\r\n"),
        {"max_body": 100},
        413,
        "limits.body",
    ),
    "expect": (post(b"Expect: 200-ok\r\nContent-Length: 5\r\n"), {}, 417, "100-continue"),
}


@pytest.mark.parametrize("name", STATUSES)
def test_status_and_message(name: str) -> None:
    data, limits, status, words = STATUSES[name]
    err = refusal(data, **limits)
    assert err.status == status
    assert words in err.message
    assert str(err) == err.message
    assert "\n" not in err.message and "\r" not in err.message
    assert 10 < len(err.message) < 100
    limit = {"max_uri": 2048, "max_header": 8192, "max_body": 1 << 20, **limits}
    if status in (413, 414, 431):
        field = {413: "max_body", 414: "max_uri", 431: "max_header"}[status]
        assert f"{limit[field]} bytes" in err.message


def test_error_response_is_the_message() -> None:
    response = http.error_response(431, "too large (limits.header)")
    assert response.status == 431
    assert response.body == b"too large (limits.header)\n"
    assert response.header("content-type") == "text/plain; charset=utf-8"


def test_uri_limit_is_inclusive() -> None:
    target = b"/" + b"u" * 99
    assert parse_one(get(target), max_uri=100).target == target.decode()
    assert refusal(get(target + b"u"), max_uri=100).status == 414


def test_header_limit_is_inclusive() -> None:
    """limits.header counts the field block from the CRLF ending the request line."""
    fields = b"Host: a\r\nX: " + b"h" * 50
    block = b"\r\n" + fields  # what is counted
    limit = len(block)
    assert parse_one(b"GET / HTTP/1.1" + block + b"\r\n\r\n", max_header=limit)
    err = refusal(b"GET / HTTP/1.1" + block + b"h\r\n\r\n", max_header=limit)
    assert err.status == 431


@pytest.mark.parametrize("chunked", [False, True])
def test_body_limit_is_inclusive(chunked: bool) -> None:
    def request(size: int) -> bytes:
        if chunked:
            half = size // 2
            return chunks(
                b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n"
                % (half, b"b" * half, size - half, b"b" * (size - half))
            )
        return post(b"Content-Length: %d\r\n" % size, b"b" * size)

    assert parse_one(request(100), max_body=100).body == b"b" * 100
    assert refusal(request(101), max_body=100).status == 413


# -- limits hold while buffering ---------------------------------------------------------


def first_refusal(pieces: list[bytes], **limits: int) -> tuple[int, int]:
    """Feed pieces until refused: (status, bytes fed so far)."""
    parser = Parser(**limits)
    fed = 0
    for piece in pieces:
        parser.feed(piece)
        fed += len(piece)
        try:
            while parser.next_request() is not None:
                pass
        except ProtocolError as err:
            return err.status, fed
    raise AssertionError("never refused")


def drip(prefix: bytes, filler: bytes, count: int) -> list[bytes]:
    return [prefix] + [filler] * count


def test_endless_request_line_is_414_at_the_limit() -> None:
    status, fed = first_refusal(drip(b"GET /", b"u", 10_000), max_uri=100)
    assert status == 414
    assert fed == 100 + 32 + 1  # one byte past limits.uri + 32 (method, version, CR)


def test_endless_request_line_with_crlf_in_one_piece_is_414_at_once() -> None:
    pieces = [b"GET /" + b"u" * 5000 + b" HTTP/1.1\r\n"]
    assert first_refusal(pieces, max_uri=100)[0] == 414


def test_endless_header_is_431_at_the_limit() -> None:
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX: "
    status, fed = first_refusal(drip(head, b"h", 10_000), max_header=200)
    assert status == 431
    assert fed - len(b"GET / HTTP/1.1") == 200 + 4 + 1  # past the limit and a CRLFCR


def test_endless_headers_of_short_lines_are_431() -> None:
    status, fed = first_refusal(drip(b"GET / HTTP/1.1\r\n", b"X: y\r\n", 10_000), max_header=200)
    assert status == 431
    assert fed - len(b"GET / HTTP/1.1") <= 200 + 4 + len(b"X: y\r\n")


def test_endless_header_in_big_pieces_is_431_at_once() -> None:
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX: "
    assert first_refusal([head + b"h" * 100_000], max_header=200) == (431, len(head) + 100_000)


def test_endless_chunk_line_is_400_at_1024() -> None:
    status, fed = first_refusal(drip(chunks(b"5;a="), b"b", 10_000))
    assert status == 400
    assert fed - len(chunks(b"")) == 1025


def test_endless_trailer_is_refused() -> None:
    status, fed = first_refusal(drip(chunks(b"0\r\nX: "), b"t", 10_000))
    assert status == 400
    assert fed - len(chunks(b"")) - 3 == 1025


def test_content_length_over_limit_is_refused_before_the_body() -> None:
    assert first_refusal([post(b"Content-Length: 101\r\n", b"")], max_body=100)[0] == 413


def test_chunk_size_over_limit_is_refused_before_its_data() -> None:
    assert first_refusal([chunks(b"65\r\n")], max_body=100)[0] == 413


def test_slow_patterns_stay_fast() -> None:
    """Runs of whitespace before a bad byte once took minutes in the field regex."""
    lines = [
        b"X:" + b" " * 8000 + b"\x01",
        b"X: a" + b" \t" * 4000 + b"\x01",
        b"X: " + b"a " * 4000 + b"\x00",
    ]
    start = time.perf_counter()
    for line in lines:
        head = get(headers=b"Host: a\r\n" + line + b"\r\n")
        assert refusal(head, max_header=20_000).status == 400
        trailer = line[:500] + line[-500:]  # within the 1024 bytes of a chunk line
        assert refusal(chunks(b"0\r\n" + trailer + b"\r\n\r\n")).status == 400
    assert refusal(chunks(b"5" + b" ;a" * 330 + b"\x01\r\n")).status == 400
    assert refusal(chunks(b"0" * 1000 + b"g\r\n")).status == 400
    assert time.perf_counter() - start < 1.0


# -- a refused stream stays refused --------------------------------------------------------


def test_dead_parser_raises_the_same_error_and_keeps_nothing() -> None:
    parser = Parser()
    parser.feed(chunks(b"5\r\nhelloXX"))
    with pytest.raises(ProtocolError) as first:
        parser.next_request()
    assert parser.state == http.DEAD
    parser.feed(b"0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
    with pytest.raises(ProtocolError) as again:
        parser.next_request()
    assert again.value is first.value
    assert parser.buffered <= len(chunks(b"5\r\nhelloXX"))


def test_dead_after_a_head_error_with_no_partial() -> None:
    parser = Parser()
    parser.feed(b"get / HTTP/1.1\r\nHost: a\r\n\r\n")
    for _ in range(3):
        with pytest.raises(ProtocolError) as info:
            parser.next_request()
        assert info.value.status == 501


# -- keep-alive, Expect, and what a request carries -----------------------------------------


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        (b"1.1", None, True),
        (b"1.1", b"close", False),
        (b"1.1", b"Close", False),
        (b"1.1", b"keep-alive, close", False),
        (b"1.1", b"keep-alive", True),
        (b"1.1", b"upgrade", True),
        (b"1.0", None, False),
        (b"1.0", b"keep-alive", True),
        (b"1.0", b"Keep-Alive", True),
        (b"1.0", b"te, keep-alive", True),
        (b"1.0", b"close", False),
    ],
)
def test_keep_alive(version: bytes, connection: Optional[bytes], keep_alive: bool) -> None:
    headers = b"Host: a\r\n"
    if connection is not None:
        headers += b"Connection: " + connection + b"\r\n"
    request = parse_one(b"GET / HTTP/" + version + b"\r\n" + headers + b"\r\n")
    assert request.keep_alive is keep_alive


def test_expect_continue_while_the_body_is_pending() -> None:
    parser = Parser()
    head = post(b"Expect: 100-Continue\r\nContent-Length: 5\r\n", b"")
    parser.feed(head)
    assert parser.next_request() is None
    assert parser.partial is not None
    assert parser.partial.expect_continue is True
    parser.feed(b"hel")
    assert parser.next_request() is None
    assert parser.partial.expect_continue is True
    parser.feed(b"lo")
    request = parser.next_request()
    assert request.body == b"hello"
    assert request.expect_continue is True
    assert parser.partial is None


def test_expect_continue_chunked() -> None:
    parser = Parser()
    parser.feed(te(b"chunked", b"5\r\n", b"Expect: 100-continue\r\n"))
    assert parser.next_request() is None
    assert parser.partial.expect_continue is True
    assert parser.partial.body == b""


def test_no_partial_without_expect() -> None:
    parser = Parser()
    parser.feed(post(b"Content-Length: 5\r\n", b""))
    assert parser.next_request() is None
    assert parser.partial is not None
    assert parser.partial.expect_continue is False


def test_expect_in_http_1_0_is_not_answered() -> None:
    parser = Parser()
    parser.feed(post(b"Expect: 100-continue\r\nContent-Length: 5\r\n", b"", b"1.0"))
    assert parser.next_request() is None
    assert parser.partial.expect_continue is False


def test_expect_without_a_body_is_ignored() -> None:
    assert parse_one(get(headers=b"Host: a\r\nExpect: 100-continue\r\n")).expect_continue is False
    assert parse_one(get(headers=b"Host: a\r\nExpect: whatever\r\n")).method == "GET"


def test_headers_are_lowercased_joined_and_stripped() -> None:
    request = parse_one(
        get(headers=b"HOST: a\r\nX-A:1\r\nx-a: 2 \r\nX-B: caf\xe9\r\nX-C:\r\nContent-Length: 0\r\n")
    )
    assert request.headers == {
        "host": "a",
        "x-a": "1, 2",
        "x-b": "caf\xe9",
        "x-c": "",
        "content-length": "0",
    }


def test_trailers_are_read_and_dropped() -> None:
    request = parse_one(chunks(b"0\r\nX-Trailer: 1\r\n\r\n"))
    assert request.body == b""
    assert "x-trailer" not in request.headers


def test_request_repr() -> None:
    assert repr(parse_one(get(b"/x"))) == "<Request GET /x HTTP/1.1>"


def test_zero_length_body_needs_no_partial() -> None:
    parser = Parser()
    parser.feed(post(b"Content-Length: 0\r\nExpect: 100-continue\r\n", b""))
    request = parser.next_request()
    assert request.body == b""
    assert request.expect_continue is False
    assert parser.partial is None


# -- responses -----------------------------------------------------------------------------

SERVER_LINE = f"Server: httap/{http.__version__}\r\n".encode()


def test_head_bytes() -> None:
    response = Response(200, [("Content-Type", "text/plain"), ("X-A", "1")], b"hello")
    assert response.head_bytes() == (
        b"HTTP/1.1 200 OK\r\n"
        + SERVER_LINE
        + b"Content-Type: text/plain\r\nX-A: 1\r\nContent-Length: 5\r\n"
    )
    assert response.head_bytes() is response.head_bytes()  # cached
    assert response.header("content-type") == "text/plain"
    assert response.header("missing") is None


@pytest.mark.parametrize("status", [100, 101, 204, 304])
def test_no_content_length(status: int) -> None:
    head = Response(status).head_bytes()
    assert b"Content-Length" not in head
    assert head.startswith(b"HTTP/1.1 %d " % status)


@pytest.mark.parametrize(("status", "line"), [(404, b"404 Not Found"), (299, b"299 Unknown")])
def test_reason_phrase(status: int, line: bytes) -> None:
    head = Response(status).head_bytes()
    assert head.startswith(b"HTTP/1.1 " + line + b"\r\n")
    assert head.endswith(b"Content-Length: 0\r\n")


def test_file_body_length() -> None:
    response = Response(206, [], file=FileBody("/x", 10, 1234))
    assert response.length == 1234
    assert response.head_bytes().endswith(b"Content-Length: 1234\r\n")


def test_latin1_header_value() -> None:
    head = Response(200, [("X-Name", "caf\xe9")]).head_bytes()
    assert b"X-Name: caf\xe9\r\n" in head


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-A", "a\r\nSet-Cookie: evil=1"),
        ("X-A", "a\nb"),
        ("X-A", "a\rb"),
        ("X-A\r\nX-B", "a"),
        ("X A", "a"),
        ("", "a"),
        ("X:A", "a"),
        ("X-A", "\u20ac"),  # not latin-1
    ],
)
def test_header_injection_refused(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        Response(200, [(name, value)]).head_bytes()


def test_date_line() -> None:
    line = http.date_line()
    assert re.fullmatch(
        rb"Date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
        rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT\r\n",
        line,
    )
    when = parsedate_to_datetime(line[6:-2].decode()).timestamp()
    assert abs(when - time.time()) < 2
    assert http.date_line() in (line, http.date_line())  # cached within the second


def test_constant_lines() -> None:
    assert http.CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert http.CLOSE_LINE == b"Connection: close\r\n"
    assert http.KEEP_ALIVE_LINE == b"Connection: keep-alive\r\n"


# -- properties ------------------------------------------------------------------------------

VALID = [GET_HEADERS, POST_CL, CHUNKED, PIPELINED, PIPELINED_CHUNKED]
SNIPPETS = [
    b"\r", b"\n", b"\r\n", b"\r\n\r\n", b" ", b"\t", b":", b";", b",", b"=", b'"', b"\\",
    b"0", b"5", b"f", b"ff", b"\x00", b"\x01", b"\x7f", b"\xff", b"/", b"*", b"HTTP/1.1",
    b"chunked", b"Content-Length: 3\r\n", b"Transfer-Encoding: chunked\r\n",
    b"Host: b\r\n", b"Expect: 100-continue\r\n", b"0\r\n\r\n", b"GET / HTTP/1.1\r\n",
]  # fmt: skip
SMALL = {"max_uri": 40, "max_header": 160, "max_body": 24}


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        if kind == "insert":
            data[at:at] = draw(st.sampled_from(SNIPPETS) | st.binary(min_size=1, max_size=4))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 4))]
        elif kind == "replace":
            data[at : at + 1] = draw(st.sampled_from(SNIPPETS))
        else:
            end = draw(st.integers(at, len(data)))
            data[at:at] = data[at:end]
    return bytes(data)


@st.composite
def chunkings(draw: st.DrawFn, data: st.SearchStrategy[bytes]) -> tuple[bytes, list[bytes]]:
    whole = draw(data)
    points = draw(st.lists(st.integers(0, len(whole)), max_size=12))
    if draw(st.booleans()) and len(whole) < 400:
        points = list(range(len(whole)))  # byte by byte
    return whole, cut(whole, points)


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(chunkings(st.binary(max_size=300)))
def test_random_bytes_only_raise_protocol_error(case: tuple[bytes, list[bytes]]) -> None:
    whole, pieces = case
    assert fate(pieces) == fate([whole])
    assert fate(pieces, **SMALL) == fate([whole], **SMALL)


@PROPERTY
@given(chunkings(st.builds(lambda a, b: a + b, st.sampled_from(VALID), st.binary(max_size=60))))
def test_valid_then_random_bytes(case: tuple[bytes, list[bytes]]) -> None:
    whole, pieces = case
    assert fate(pieces) == fate([whole])


@PROPERTY
@given(chunkings(mutated()))
def test_mutations_only_raise_protocol_error_and_ignore_cuts(
    case: tuple[bytes, list[bytes]],
) -> None:
    """Whatever the mutation, the cut never changes the requests or the refusal."""
    whole, pieces = case
    assert fate(pieces) == fate([whole])
    assert fate(pieces, **SMALL) == fate([whole], **SMALL)


@PROPERTY
@given(chunkings(mutated()))
def test_mutations_agree_with_h11_where_both_accept(case: tuple[bytes, list[bytes]]) -> None:
    """When both parsers take the first request, they frame it the same way."""
    whole, _ = case
    mine, h11s = ours(whole), theirs(whole)
    if mine[0] == "accept" and h11s[0] == "accept" and mine[2].startswith("/"):
        assert mine == h11s


# -- the memo of heads already parsed ---------------------------------------------------


def test_a_remembered_head_still_meets_a_stricter_parsers_limits():
    """A head parsed under generous limits is not waved through by a parser with
    smaller ones: the memo only serves heads within every limit of the parser asking."""
    head = b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    generous = http.Parser(max_uri=2048)
    generous.feed(head)
    assert generous.next_request().target == "/" + "a" * 300
    strict = http.Parser(max_uri=100)
    strict.feed(head)
    with pytest.raises(http.ProtocolError) as refused:
        strict.next_request()
    assert refused.value.status == 414


def test_a_handler_changing_its_headers_does_not_change_the_next_parse():
    head = b"GET /m HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"
    parser = http.Parser()
    parser.feed(head + head)
    first = parser.next_request()
    first.headers["accept"] = "changed"
    first.headers["x-added"] = "1"
    second = parser.next_request()
    assert second.headers == {"host": "x", "accept": "*/*"}
    assert second is not first and second.headers is not first.headers


def test_a_remembered_head_keeps_its_framing_and_keep_alive():
    head = b"POST /m HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\n"
    parser = http.Parser()
    parser.feed(head + b"abc" + head + b"xyz")
    first, second = parser.next_request(), parser.next_request()
    assert (first.body, second.body) == (b"abc", b"xyz")
    assert first.keep_alive and second.keep_alive


@pytest.mark.parametrize(
    ("data", "authority", "target"),
    [
        (get(headers=b"Host: pi.local:8080\r\n"), "pi.local:8080", "/"),
        (get(headers=b"Host: [::1]:8080\r\n"), "[::1]:8080", "/"),
        (get(headers=b"Host: pi.local.\r\n"), "pi.local.", "/"),
        (get(headers=b"Host: a:\r\n"), "a:", "/"),  # empty port: the default one
        (get(headers=b"Host:\r\n"), "", "/"),  # RFC 9110 7.2 allows an empty Host
        (get(b"http://pi.local/x?y", b"Host: other\r\n"), "pi.local", "/x?y"),  # 3.2.2
        (get(b"HTTP://[::1]:80?y", b"Host: other\r\n"), "[::1]:80", "/?y"),
        (b"GET / HTTP/1.0\r\n\r\n", None, "/"),
        (b"GET http://a/ HTTP/1.0\r\n\r\n", "a", "/"),
    ],
)
def test_the_authority_is_the_targets_or_the_hosts(data, authority, target) -> None:
    for _ in range(2):  # the second time from the memo of heads
        request = parse_one(data)
        assert (request.authority, request.target) == (authority, target)


@pytest.mark.parametrize(
    "text",
    ["a", "A.b-c_d~e", "1.2.3.4:0", "[::1]", "[v7.x:y]", "!$&'()*+,;=", "%41", "", "a:"],
)
def test_valid_authorities(text: str) -> None:
    assert http.valid_authority(text)


@pytest.mark.parametrize(
    "text",
    ["a b", "a/b", "u@a", "a:8x", "a:-1", "[::1", "::1", "[::1]x", "[1.2.3.4]", "%4", "a#", "é"],
)
def test_invalid_authorities(text: str) -> None:
    assert not http.valid_authority(text)


def test_a_refusal_after_the_head_names_its_request() -> None:
    """Its reply can then carry what every reply to that request carries (CORS)."""
    head = post(b"Content-Length: 101\r\nOrigin: http://app.example\r\n", b"")
    refused = refusal(head, max_body=100)
    assert refused.status == 413 and refused.request.headers["origin"] == "http://app.example"
    late = refusal(chunks(b"zz\r\n"))
    assert late.status == 400 and late.request.method == "POST"
    early = refusal(get(headers=b"Host: a b\r\nOrigin: http://app.example\r\n"))
    assert early.request is None  # a malformed head: nothing of it is trusted


# -- HTTP dates (our own, lighter than email.utils, which is the oracle here) ----------


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=253402300799))
def test_http_date_matches_email_utils_and_parses_back(seconds):
    from email.utils import formatdate

    assert http.http_date(seconds) == formatdate(seconds, usegmt=True)
    assert http.parse_http_date(http.http_date(seconds)) == seconds


@pytest.mark.parametrize(
    "text",
    ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"],
)
def test_the_three_date_forms_of_rfc_9110(text):
    assert http.parse_http_date(text) == 784111777


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 25:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 +0000",
    ],
)
def test_unparseable_dates_are_none(text):
    assert http.parse_http_date(text) is None


@pytest.mark.parametrize(
    "value", [{"gpio": 4, "mode": "in", "value": 0}, [1, 2.5, None, True, "é\n"], "x", 7, {}]
)
def test_the_json_encoder_built_once_writes_what_json_dumps_writes(value) -> None:
    import json

    assert http.json_encoder()(value) == json.dumps(value, separators=(",", ":"))


def test_the_json_encoder_refuses_what_json_refuses() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        http.json_encoder()({"x": object()})
    with pytest.raises(ValueError, match="Out of range float"):
        http.json_encoder(allow_nan=False)([float("nan")])
    assert http.json_encoder()(float("inf")) == "Infinity"  # as JSONEncoder() writes it


def test_a_prepared_head_is_the_head_encode_head_writes() -> None:
    headers = [("Content-Type", "application/json"), ("HTTaP-Session", "7")]
    for status, body in ((200, b'{"a":1}'), (200, b""), (204, b""), (304, b"")):
        start = http.encode_head(status, headers, None)  # kept for many replies
        prepared = Response(status, headers, body, head=start)
        assert prepared.head_bytes() == Response(status, headers, body).head_bytes()
