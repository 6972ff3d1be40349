"""A small raw-socket HTTP/1.1 client for tests: we send exact bytes, it reads replies."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    raw_head: bytes = b""

    def json(self):
        import json

        return json.loads(self.body)


class Client:
    """Wraps a connected socket; keeps the bytes read past one reply for the next."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def get(self, target: str, headers: str = "", method: str = "GET") -> Reply:
        self.send(f"{method} {target} HTTP/1.1\r\nHost: test\r\n{headers}\r\n".encode())
        return self.read(head_only=method == "HEAD")

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError("closed before a full line")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError(f"closed after {len(self.buf)} of {n} body bytes")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read(self, head_only: bool = False) -> Reply:
        """Read one reply (1xx interim replies are returned like any other)."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError(f"closed before a full head: {self.buf!r}")
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        reply = Reply(status, headers, b"", raw)
        if head_only or status < 200 or status in (204, 304):
            return reply
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self._line().split(b";")[0], 16)
                if not size:
                    while self._line():
                        pass
                    break
                parts.append(self._exactly(size))
                self._exactly(2)
            reply.body = b"".join(parts)
        elif "content-length" in headers:
            reply.body = self._exactly(int(headers["content-length"]))
        else:
            while self._fill():
                pass
            reply.body, self.buf = self.buf, b""
        return reply

    def closed(self, timeout: float = 5.0) -> bool:
        """True when the server closes the connection (EOF or reset) within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        self.sock.close()


class Asking:
    """`client` asks for `target` every 5 ms in a thread for as long as the `with` lasts:
    another client served while a long job runs. `answered` counts its 200 replies."""

    def __init__(self, client: Client, target: str) -> None:
        self.client = client
        self.target = target
        self.answered = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._ask)

    def _ask(self) -> None:
        while not self._done.is_set():
            if self.client.get(self.target).status == 200:
                self.answered += 1
            time.sleep(0.005)

    def __enter__(self) -> Asking:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
