"""How a response is framed, with byte strings: http.py's `keep_alive` and `frame`, the
sans-IO half of what a connection sends (RFC 9112 6 and 9.3).

Requests are parsed from bytes by http.Parser; the framed bytes are read back by h11, an
independent HTTP/1.1 implementation, as a client would read them.
"""

from __future__ import annotations

import h11
import pytest

from httap import http
from httap.http import FileBody, Parser, Response

SERVER = f"httap/{http.__version__}".encode()


def request(raw: bytes) -> http.Request:
    parser = Parser()
    parser.feed(raw)
    parsed = parser.next_request()
    assert parsed is not None
    return parsed


GET_11 = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
GET_10 = b"GET / HTTP/1.0\r\n\r\n"


def lines(head: bytes) -> list[bytes]:
    """The head's lines, Date's value left out (it is the clock's)."""
    assert head.endswith(b"\r\n\r\n")
    shown = head[:-4].split(b"\r\n")
    return [b"Date: *" if line.startswith(b"Date: ") else line for line in shown]


def read_back(method: bytes, data: bytes) -> list:
    """What a client reads from `data` sent in reply to a `method` request (h11's events)."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=method, target="/", headers=[("Host", "a")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    events = []
    while True:
        event = client.next_event()
        if event in (h11.NEED_DATA, h11.PAUSED):
            return events
        events.append(event)


# -- the keep-alive decision -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "wanted"),
    [
        (GET_11, True),  # persistence is HTTP/1.1's default
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", False),
        (GET_10, False),  # and not HTTP/1.0's
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
    ],
)
def test_keep_alive_is_what_the_client_asks(raw, wanted):
    assert http.keep_alive(request(raw), stopping=False, served=1, limit=0) is wanted


def test_a_stopping_server_keeps_nothing_alive():
    assert http.keep_alive(request(GET_11), stopping=True, served=1, limit=0) is False


@pytest.mark.parametrize(("served", "kept"), [(1, True), (2, True), (3, False), (4, False)])
def test_limits_requests_closes_after_the_last_allowed(served, kept):
    assert http.keep_alive(request(GET_11), stopping=False, served=served, limit=3) is kept


def test_no_limit_is_zero():
    assert http.keep_alive(request(GET_11), stopping=False, served=10**9, limit=0) is True


# -- the head and what follows it ----------------------------------------------------------


def head_of(response: Response, keep_alive: bool = True, raw: bytes = GET_11, extra=b""):
    head, _, _ = http.frame(request(raw), response, keep_alive, extra)
    return head


def test_an_http11_response_kept_alive_has_no_connection_line():
    response = Response(200, [("Content-Type", "text/plain")], b"hello")
    head, body, file = http.frame(request(GET_11), response, True)
    assert lines(head) == [
        b"HTTP/1.1 200 OK",
        b"Server: " + SERVER,
        b"Content-Type: text/plain",
        b"Content-Length: 5",
        b"Date: *",
    ]
    assert (body, file) == (b"hello", None)


@pytest.mark.parametrize("raw", [GET_11, GET_10])
def test_the_last_response_says_close(raw):
    assert lines(head_of(Response(200, [], b"x"), False, raw))[-1] == b"Connection: close"


def test_an_http10_client_kept_alive_is_told_so():
    raw = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    assert lines(head_of(Response(200, [], b"x"), True, raw))[-1] == b"Connection: keep-alive"


def test_a_request_whose_head_was_not_read_is_answered_as_http11():
    head, body, _ = http.frame(None, http.error_response(400, "bad request: x"), False)
    assert lines(head)[0] == b"HTTP/1.1 400 Bad Request"
    assert lines(head)[-1] == b"Connection: close"
    assert body == b"bad request: x\n"


def test_extra_lines_come_before_date_and_connection():
    head = head_of(Response(200, [], b""), False, extra=b"Vary: Origin\r\n")
    assert lines(head)[-3:] == [b"Vary: Origin", b"Date: *", b"Connection: close"]


def test_the_date_line_is_an_imf_fixdate():
    (date,) = [line for line in head_of(Response()).split(b"\r\n") if b"Date" in line]
    assert http.parse_http_date(date[len(b"Date: ") :].decode()) is not None


@pytest.mark.parametrize("status", [204, 304])
def test_no_content_length_and_no_body_for_204_and_304(status):
    response = Response(status, [("ETag", '"1"')], b"not sent")
    head, body, file = http.frame(request(GET_11), response, True)
    assert not any(line.startswith(b"Content-Length") for line in lines(head))
    assert (body, file) == (b"", None)


def test_head_gets_the_get_length_and_no_body():
    response = Response(200, [], b"0123456789")
    head, body, _ = http.frame(request(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"), response, True)
    assert b"Content-Length: 10" in lines(head)
    assert body == b""


@pytest.mark.parametrize("status", [100, 101])
def test_an_interim_status_has_no_body(status):
    _, body, _ = http.frame(request(GET_11), Response(status, [], b"x"), True)
    assert body == b""


def test_a_file_follows_its_head_except_to_head():
    file = FileBody("/srv/big.bin", 100, 5000)
    response = Response(206, [], file=file)
    head, body, sent = http.frame(request(GET_11), response, True)
    assert (body, sent) == (b"", file)
    assert b"Content-Length: 5000" in lines(head)
    _, _, sent = http.frame(request(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"), response, True)
    assert sent is None


def test_a_header_that_cannot_be_sent_is_a_value_error():
    with pytest.raises(ValueError, match="CR or LF"):
        head_of(Response(200, [("X-A", "1\r\nSet-Cookie: a=b")]))


# -- read back as a client reads it ---------------------------------------------------------


def sent(method: bytes, response: Response, keep_alive: bool = True) -> bytes:
    raw = method + b" / HTTP/1.1\r\nHost: a\r\n\r\n"
    head, body, _ = http.frame(request(raw), response, keep_alive)
    return head + body


def test_a_client_reads_a_kept_alive_response_and_its_body():
    response = Response(200, [("Content-Type", "text/plain")], b"hello")
    events = read_back(b"GET", sent(b"GET", response))
    assert [type(event) for event in events] == [h11.Response, h11.Data, h11.EndOfMessage]
    assert events[0].status_code == 200
    assert (b"content-length", b"5") in events[0].headers
    assert events[1].data == b"hello"


def test_a_client_reads_a_head_reply_without_a_body():
    events = read_back(b"HEAD", sent(b"HEAD", Response(200, [], b"hello")))
    assert [type(event) for event in events] == [h11.Response, h11.EndOfMessage]


def test_a_client_reads_a_304_to_its_end_without_a_body():
    """A 304 has no body and no Content-Length: its head alone is the whole response."""
    events = read_back(b"GET", sent(b"GET", Response(304, [("ETag", '"1"')], b"not sent")))
    assert [type(event) for event in events] == [h11.Response, h11.EndOfMessage]
    assert events[0].status_code == 304


def test_a_closing_response_tells_the_client_to_close():
    response = http.error_response(400, "bad request: malformed header line")
    events = read_back(b"GET", sent(b"GET", response, keep_alive=False))
    assert events[0].status_code == 400
    assert (b"connection", b"close") in events[0].headers
    assert events[1].data == b"bad request: malformed header line\n"


# -- a stream: a body of no known length --------------------------------------------------


def test_a_stream_on_http_1_1_is_chunked_and_a_client_reads_it_part_by_part():
    response = Response(200, [("Content-Type", "text/event-stream")], b"first\n\n")
    head, first, chunked = http.frame_stream(request(GET_11), response, True)
    assert chunked and head.endswith(b"\r\n\r\n")
    assert b"Content-Length" not in head and b"Connection" not in head
    assert b"\r\nTransfer-Encoding: chunked\r\n" in head
    data = head + first + http.chunk(b"second\n\n") + http.LAST_CHUNK
    events = read_back(b"GET", data)
    assert [type(event) for event in events] == [h11.Response, h11.Data, h11.Data, h11.EndOfMessage]
    assert [event.data for event in events[1:3]] == [b"first\n\n", b"second\n\n"]


def test_a_stream_on_http_1_0_ends_with_the_connection():
    """No chunks in HTTP/1.0: the body is delimited by the close (RFC 9112 6.3, rule 8),
    which the head announces; the parts go as they are."""
    response = Response(200, [("Content-Type", "text/event-stream")], b"first\n\n")
    head, first, chunked = http.frame_stream(request(GET_10), response, True)
    assert not chunked and first == b"first\n\n"
    assert head.endswith(b"Connection: close\r\n\r\n")
    assert b"Content-Length" not in head and b"Transfer-Encoding" not in head


def test_a_stream_that_ends_with_its_connection_says_so():
    response = Response(200, [], b"")
    head, first, chunked = http.frame_stream(request(GET_11), response, False)
    assert chunked and head.endswith(b"Connection: close\r\n\r\n") and first == b""


def test_a_chunk_is_its_size_in_hex_then_the_data():
    assert http.chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"
