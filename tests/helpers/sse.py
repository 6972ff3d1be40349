"""An event stream (`GET /?events`) read over a raw socket, as EventSource reads one: the
head first, then the body, de-chunked on HTTP/1.1, cut into events at blank lines."""

from __future__ import annotations

import json
import select
import socket
import time
from typing import Any, NamedTuple, Optional


class Event(NamedTuple):
    """One event: its `id` (an int, None if it had none), its `event` type and its
    `data` read as JSON; a comment (`: keep-alive`) has `comment` set instead."""

    id: Optional[int]
    event: Optional[str]
    data: Any
    comment: Optional[str] = None


class Ended(Exception):
    """The stream is over: `clean` when its body was finished (the last chunk, or the
    close of an HTTP/1.0 body), else the connection was closed or reset under it."""

    def __init__(self, clean: bool) -> None:
        super().__init__("the stream ended" + (" cleanly" if clean else " without its end"))
        self.clean = clean


class Sse:
    """Sends `GET target` on `sock` (with `headers`, a string of header lines, and
    `version`), then reads the head: `status`, `headers` (lower-case names) and, for
    a refusal, `body`."""

    def __init__(
        self,
        sock: socket.socket,
        target: str = "/?events",
        headers: str = "",
        version: str = "HTTP/1.1",
    ) -> None:
        self.sock = sock
        self.raw = b""  # bytes received, not yet de-chunked
        self.body = b""  # the body's bytes, not yet cut into events
        self.received = 0  # body bytes so far
        self.done = False  # the body was finished
        sock.sendall(f"GET {target} {version}\r\nHost: test\r\n{headers}\r\n".encode())
        while b"\r\n\r\n" not in self.raw:
            if not self._fill(5.0):
                raise ConnectionError(f"closed before a full head: {self.raw!r}")
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.chunked = self.headers.get("transfer-encoding") == "chunked"
        if "content-length" in self.headers:  # a refusal: JSON of a known length
            length = int(self.headers["content-length"])
            while len(self.raw) < length:
                self._fill(5.0)
            self.body = self.raw[:length]

    def json(self) -> Any:
        return json.loads(self.body)

    def _fill(self, timeout: float) -> bool:
        """Wait up to `timeout` s for bytes; False at the end of the connection."""
        if not select.select([self.sock], [], [], timeout)[0]:
            raise TimeoutError(f"nothing within {timeout} s; body so far {self.body[-200:]!r}")
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        self.raw += data
        return bool(data)

    def _dechunk(self) -> None:
        """Move the complete chunks of `raw` into `body` (all of it when not chunked)."""
        if not self.chunked:
            self.body += self.raw
            self.received += len(self.raw)
            self.raw = b""
            return
        while b"\r\n" in self.raw:
            size_line, rest = self.raw.split(b"\r\n", 1)
            size = int(size_line, 16)
            if size == 0:
                if rest.startswith(b"\r\n"):
                    self.done = True
                    self.raw = rest[2:]
                return
            if len(rest) < size + 2:
                return
            assert rest[size : size + 2] == b"\r\n", rest[: size + 2]
            self.body += rest[:size]
            self.received += size
            self.raw = rest[size + 2 :]

    def next(self, timeout: float = 5.0, comments: bool = False) -> Event:
        """The next event (comments skipped unless `comments`). TimeoutError when none
        comes within `timeout` s (0: only what has arrived already); Ended when the
        stream is over."""
        deadline = time.monotonic() + timeout
        while True:
            self._dechunk()
            while b"\n\n" in self.body:
                block, self.body = self.body.split(b"\n\n", 1)
                event = parse(block.decode())
                if event.comment is None or comments:
                    return event
            if self.done:
                raise Ended(True)
            if not self._fill(max(0.0, deadline - time.monotonic())):
                self._dechunk()
                raise Ended(self.done or not self.chunked)

    def take(self, count: int, timeout: float = 5.0) -> list[Event]:
        """The next `count` events."""
        return [self.next(timeout) for _ in range(count)]

    def quiet(self, seconds: float) -> list[Event]:
        """The events that come within `seconds` (none expected, usually)."""
        found = []
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return found
            try:
                found.append(self.next(left))
            except TimeoutError:
                return found

    def close(self) -> None:
        self.sock.close()


def parse(block: str) -> Event:
    """One event's lines (WHATWG HTML 9.2.6): `field: value`; a line starting with ":"
    is a comment."""
    fields: dict[str, str] = {}
    comment = None
    for line in block.split("\n"):
        if line.startswith(":"):
            comment = line[1:].strip()
            continue
        name, _, value = line.partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value
    if not fields:
        return Event(None, None, None, comment)
    data = fields.get("data")
    return Event(
        int(fields["id"]) if "id" in fields else None,
        fields.get("event"),
        json.loads(data) if data is not None else None,
    )
