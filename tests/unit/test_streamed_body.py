"""A streamed request body in the sans-IO parser (http.Parser's `streams`, `body_part`):
the head comes first, then the body in parts as bytes arrive, chunked framing removed,
never held whole, and limits.body does not apply to it."""

from __future__ import annotations

import pytest

from httap.http import Parser, ProtocolError

HEAD = b"PUT /?files/a HTTP/1.1\r\nHost: x\r\n"


def streaming(max_body: int = 16) -> Parser:
    return Parser(max_body=max_body, streams=lambda request: request.target.startswith("/?files"))


def drain(parser: Parser, most: int = 1 << 20) -> list:
    parts = []
    while True:
        part = parser.body_part(most)
        if not part:
            parts.append(part)
            return parts
        parts.append(part)


def test_the_head_comes_before_its_body_and_the_body_past_limits_body():
    parser = streaming(max_body=16)
    parser.feed(HEAD + b"Content-Length: 40\r\nExpect: 100-continue\r\n\r\n")
    request = parser.next_request()
    assert (request.method, request.body, request.expect_continue) == ("PUT", b"", True)
    assert parser.streamed and parser.partial is request
    assert parser.next_request() is None  # the body is body_part's
    assert parser.body_part(100) == b""  # none has arrived yet
    parser.feed(b"x" * 25)
    assert parser.body_part(10) == b"x" * 10  # at most `most` bytes at a time
    assert parser.body_part(100) == b"x" * 15
    parser.feed(b"y" * 15 + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert parser.body_part(100) == b"y" * 15
    assert parser.body_part(100) is None
    assert not parser.streamed and parser.partial is None
    assert parser.next_request().target == "/"  # the next request reads on


def test_a_chunked_body_comes_as_it_arrives_even_inside_a_chunk():
    parser = streaming(max_body=12)  # the 13 bytes of data pass; the trailer counts
    parser.feed(HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    assert parser.next_request() is not None
    parser.feed(b"a;ext=1\r\n01234")
    assert parser.body_part(100) == b"01234"  # half a chunk: given at once
    parser.feed(b"56789\r\n3\r\nabc\r\n0\r\nTrailer: x\r\n")
    assert parser.body_part(100) == b"56789abc"
    assert parser.body_part(100) == b""  # the trailer section is not over
    parser.feed(b"\r\n")
    assert parser.body_part(100) is None


def test_other_targets_keep_the_in_memory_body_and_its_limit():
    parser = streaming(max_body=4)
    parser.feed(b"POST /?gpio/led HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
    with pytest.raises(ProtocolError) as refused:
        parser.next_request()
    assert refused.value.status == 413


@pytest.mark.parametrize(
    "body",
    [b"zz\r\nab\r\n0\r\n\r\n", b"2\r\nabXY0\r\n\r\n", b"2\r\nab\r\n0\r\nbad trailer\r\n\r\n"],
)
def test_bad_chunked_framing_is_a_protocol_error_and_the_parser_dies(body):
    parser = streaming()
    parser.feed(HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + body)
    parser.next_request()
    with pytest.raises(ProtocolError) as refused:
        drain(parser)
    assert refused.value.status == 400
    assert refused.value.request is not None  # its head was read: its reply says so
    with pytest.raises(ProtocolError):
        parser.body_part(10)


def test_a_head_without_a_body_is_not_streamed():
    parser = streaming()
    parser.feed(HEAD + b"Content-Length: 0\r\n\r\n")
    request = parser.next_request()
    assert request is not None and not parser.streamed
    assert parser.body_part(10) is None
