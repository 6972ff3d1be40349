"""`make soak`: httap under mixed load for a while; fails if its memory or descriptors grow.

`python bench/soak.py --minutes 10` starts httap as a child process on 127.0.0.1 (the
simulated board with an input and an output whose safe value is 0, the bench's docs)
and loads it from a few threads: static GETs, `/?gpio` reads and writes, long-polls,
slow clients dribbling a head, and resets in the middle of responses and long-polls.
Every minute it prints the server's RSS and open descriptors. A leak shows as growth
that the first minute's warm-up does not explain, so the last sample is compared with
the first; once the load stops, the descriptors must come back to the idle count.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RSS_GROWTH = 2 * 1024 * 1024  # bytes over the first minute's sample: more is a leak
FD_GROWTH = 10  # descriptors over the first minute's sample
MAX_REQUESTS = 50_000_000  # per worker: a bound on each loop besides the clock
TIMEOUT = 5.0  # seconds any one reply may take

CONFIG = {
    "id": "soak",
    "listen": ["http://127.0.0.1:0"],
    "documents": str(HERE / "docs"),
    "gpio": {
        "backend": "sim",
        "pins": {
            "button": {"gpio": 4, "mode": "in"},
            "led": {"gpio": 17, "mode": "out", "initial": 0, "safe": 0},
        },
    },
    "log": {"level": "error"},
}


class Failure(Exception):
    """What the soak found wrong, as the one line it prints."""


def read_reply(sock: socket.socket, buffer: bytearray) -> int:
    """Read one Content-Length-framed response; return its status."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a full head")
        buffer += chunk
    end = buffer.index(b"\r\n\r\n")
    head = bytes(buffer[:end]).lower()
    length = int(re.search(rb"\r\ncontent-length: *(\d+)", head)[1])
    while len(buffer) < end + 4 + length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in a body")
        buffer += chunk
    del buffer[: end + 4 + length]
    return int(head[9:12])


def request(method: str, target: str, body: bytes = b"") -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: soak\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a pulled cable or a killed browser tab does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class Soak:
    def __init__(self, port: int, deadline: float) -> None:
        self.port = port
        self.deadline = deadline
        self.counts: dict[str, int] = {}
        self.errors: list[str] = []

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT)

    def run(self, name: str, step) -> None:
        """Repeat `step` until the deadline or MAX_REQUESTS; any exception is an error."""
        self.counts[name] = 0
        while time.monotonic() < self.deadline and self.counts[name] < MAX_REQUESTS:
            try:
                step()
            except Exception as err:
                self.errors.append(f"{name}: {type(err).__name__}: {err}")
                time.sleep(0.5)  # a dead server must not become a busy loop
            self.counts[name] += 1

    def expect(self, sock: socket.socket, buffer: bytearray, data: bytes, status: int) -> None:
        sock.sendall(data)
        got = read_reply(sock, buffer)
        if got != status:
            raise Failure(f"{data.split(b' HTTP')[0].decode()} answered {got}, not {status}")

    # -- the kinds of load -------------------------------------------------------

    def static(self) -> None:
        """A hundred kept-alive GETs of the 1 KiB file, then a fresh connection."""
        with self.connect() as sock:
            buffer = bytearray()
            for _ in range(100):
                self.expect(sock, buffer, request("GET", "/index.html"), 200)

    def gpio(self) -> None:
        """Reads of the input and of every pin, writes of the output (which wake long-polls)."""
        with self.connect() as sock:
            buffer = bytearray()
            for value in (0, 1) * 25:
                self.expect(sock, buffer, request("GET", "/?gpio/button"), 200)
                self.expect(sock, buffer, request("POST", "/?gpio/led", str(value).encode()), 200)
                self.expect(sock, buffer, request("GET", "/?gpio"), 200)
            time.sleep(0.01)

    def long_poll(self) -> None:
        """Long-polls that time out (the input never moves), that a write ends, and one
        left by a reset."""
        with self.connect() as sock:
            buffer = bytearray()
            self.expect(sock, buffer, request("GET", "/?gpio/button&wait=0.3"), 200)
            self.expect(sock, buffer, request("GET", "/?gpio/led&wait=1"), 200)
        sock = self.connect()
        sock.sendall(request("GET", "/?gpio/button&wait=30"))
        time.sleep(0.05)
        reset(sock)

    def slow(self) -> None:
        """A head dribbled a byte every 20 ms and answered, then another abandoned
        half-way with a reset."""
        data = request("GET", "/index.html")
        with self.connect() as sock:
            for byte in data:
                sock.send(bytes([byte]))
                time.sleep(0.02)
            if read_reply(sock, bytearray()) != 200:
                raise Failure("a slow client was not answered 200")
        sock = self.connect()
        for byte in data[: len(data) // 2]:
            sock.send(bytes([byte]))
            time.sleep(0.02)
        reset(sock)

    def resets(self) -> None:
        """Two hundred pipelined GETs, a few bytes read, then a reset mid-response."""
        sock = self.connect()
        sock.sendall(request("GET", "/index.html") * 200)
        sock.recv(4096)
        reset(sock)
        time.sleep(0.02)


def memory(pid: int) -> tuple[int, int]:
    """The server's RSS in bytes and its open descriptors."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]) * 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def show(rss: int, fds: int) -> str:
    return f"RSS {rss / 2**20:.1f} MiB, {fds} fds"


def start_server(config_path: Path) -> tuple[subprocess.Popen, int]:
    server = subprocess.Popen(
        [sys.executable, "-m", "httap", "serve", "--config", str(config_path)],
        cwd=HERE.parent,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        text=True,
    )
    match = re.search(r"http://127\.0\.0\.1:(\d+)", server.stdout.readline())
    if not match:
        server.kill()
        raise Failure("httap did not start (no URL on its first line)")
    return server, int(match[1])


def soak(minutes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "web.json5"
        config_path.write_text(json.dumps(CONFIG))
        server, port = start_server(config_path)
    try:
        time.sleep(0.5)
        idle_fds = memory(server.pid)[1]
        print(f"httap pid {server.pid} on port {port}: {show(*memory(server.pid))} idle")
        start = time.monotonic()
        load = Soak(port, start + minutes * 60)
        steps = {
            "static": load.static,
            "gpio": load.gpio,
            "long-poll": load.long_poll,
            "slow 1": load.slow,
            "slow 2": load.slow,
            "resets": load.resets,
        }
        threads = [
            threading.Thread(target=load.run, args=(name, step), daemon=True)
            for name, step in steps.items()
        ]
        for thread in threads:
            thread.start()
        samples = []
        for minute in range(1, minutes + 1):
            time.sleep(max(0.0, start + minute * 60 - time.monotonic()))
            if server.poll() is not None:
                raise Failure(f"httap exited with status {server.returncode} during the soak")
            samples.append(memory(server.pid))
            total = sum(load.counts.values())
            print(f"minute {minute}: {show(*samples[-1])}, {total} rounds of load", flush=True)
        for thread in threads:
            thread.join(TIMEOUT * 3)
        print("done:", ", ".join(f"{kind} {count}" for kind, count in load.counts.items()))
        if load.errors:
            raise Failure(f"{len(load.errors)} client errors, the first: {load.errors[0]}")
        (rss0, fds0), (rss1, fds1) = samples[0], samples[-1]
        if rss1 - rss0 > RSS_GROWTH:
            raise Failure(f"RSS grew from {rss0 / 2**20:.1f} to {rss1 / 2**20:.1f} MiB")
        if fds1 - fds0 > FD_GROWTH:
            raise Failure(f"open descriptors grew from {fds0} to {fds1}")
        deadline = time.monotonic() + TIMEOUT
        while memory(server.pid)[1] > idle_fds and time.monotonic() < deadline:
            time.sleep(0.1)
        fds = memory(server.pid)[1]
        if fds > idle_fds:
            raise Failure(f"{fds} descriptors open after the load, {idle_fds} before it")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
        server.stdout.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10, help="how long (at least 2)")
    args = parser.parse_args()
    if args.minutes < 2:
        parser.error("--minutes must be at least 2: the first minute is the baseline")
    try:
        soak(args.minutes)
    except Failure as failure:
        print(f"FAIL: {failure}")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
