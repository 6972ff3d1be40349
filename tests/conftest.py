"""Fixtures that run the real server: in a thread of this process, or as a process."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, NamedTuple

import pytest

from httap import config
from httap.server import Server

ROOT = Path(__file__).resolve().parent.parent
HELLO = b"hello, world\n"


def open_fds() -> int:
    """Descriptors open in this process (a leak shows up as a larger count)."""
    return len(os.listdir("/proc/self/fd"))


class RunningServer:
    """A real Server on 127.0.0.1 with an OS-picked port, its loop in a thread."""

    def __init__(self, overrides: dict, config_file: str | None = None) -> None:
        settings = {"listen": ["http://127.0.0.1:0"], **overrides}
        self.config = config.load(config_file, env={}, overrides=settings)
        self.server = Server(self.config)
        url = self.server.listen()[0]
        self.host, port = re.match(r"https?://\[?([^\]]+)\]?:(\d+)", url).groups()
        self.port = int(port)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def connect(self, source: str | None = None, timeout: float = 5.0) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        if source:
            sock.bind((source, 0))
        sock.connect((self.host, self.port))
        return sock

    def call(self, fn):
        """Run `fn` in the loop's thread and return its result."""
        done = threading.Event()
        box = []
        self.server.loop.call_threadsafe(lambda: (box.append(fn()), done.set()))
        assert done.wait(5), "the loop did not answer"
        return box[0]

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.loop.call_threadsafe(lambda: self.server.stop(grace=1.0))
            self.thread.join(10)
        assert not self.thread.is_alive(), "the server did not stop"


@pytest.fixture
def make_server():
    """Start servers with config overrides (dotted keys); all are stopped at the end."""
    started: list[RunningServer] = []

    def start(config_file: str | None = None, **overrides) -> RunningServer:
        flat = {key.replace("__", "."): value for key, value in overrides.items()}
        running = RunningServer(flat, config_file)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture(scope="session")
def tls_pair(tmp_path_factory) -> tuple[str, str]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key, made the way
    `make run-tls` makes them."""
    where = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["make", "-s", "-f", str(ROOT / "Makefile"), f"TLS_DIR={where}", f"{where}/cert.pem"],
        check=True,
        capture_output=True,
    )
    return str(where / "cert.pem"), str(where / "key.pem")


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A small documents directory: an index page and hello.txt."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_bytes(b"<h1>home</h1>\n")
    (www / "hello.txt").write_bytes(HELLO)
    return www


@pytest.fixture
def server(make_server, tmp_path):
    """A server over a documents directory holding a 1 KiB index.html and a few files."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.html").write_bytes(b"<!doctype html>" + b"x" * (1024 - 15))
    (docs / "hello.txt").write_bytes(b"hello, world\n")
    (docs / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    return make_server(documents=str(docs))


class Process:
    """`python -m httap ...` as a child process; the first line of stdout gives the URL.
    Its stderr is a pipe, or appended to the file `log` (a pipe nobody reads fills up)."""

    def __init__(
        self,
        args: list[str],
        cwd: Path | None = None,
        env: dict | None = None,
        log: Path | None = None,
    ) -> None:
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with open(log, "ab") if log else contextlib.nullcontext(subprocess.PIPE) as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "httap", *args],
                cwd=cwd or ROOT,
                env=full_env,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self.banner = self.proc.stdout.readline()
        match = re.search(r"https?://\[?([0-9.:a-f]+)\]?:(\d+)", self.banner)
        if not match:
            self.proc.kill()
            said = log.read_text() if log else self.proc.stderr.read()
            raise AssertionError(f"no start-up line: {self.banner!r} {said}")
        self.host, self.port = match.group(1), int(match.group(2))

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 15) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc.stdout.close()
        if self.proc.stderr:
            self.proc.stderr.close()


@pytest.fixture
def spawn():
    started: list[Process] = []

    def start(*args: str, cwd: Path | None = None, env: dict | None = None) -> Process:
        process = Process(list(args), cwd, env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


class Slowloris(NamedTuple):
    """What `slowloris` saw: how long each connection lasted, what each got before its
    close, and how long each of the well-behaved client's turns took meanwhile."""

    lasted: list[float]
    answers: list[bytes]
    latencies: list[float]


def slowloris(
    connect: Callable[[], socket.socket],
    payload: bytes,
    count: int,
    seconds: float,
    meanwhile: Callable[[], None],
) -> Slowloris:
    """Open `count` connections that send `payload` a byte a second each, and run
    `meanwhile()` (another client's requests) on every turn, until the server has
    closed them all or `seconds` have passed; then close what is left."""
    slow: dict[socket.socket, float] = {}
    for _ in range(count):
        sock = connect()
        sock.sendall(payload[:1])
        slow[sock] = time.monotonic()
    seen = Slowloris([], [], [])
    sent, last_byte = 1, time.monotonic()
    deadline = time.monotonic() + seconds
    while slow and time.monotonic() < deadline:
        ready, _, _ = select.select(list(slow), [], [], 0.05)
        for sock in ready:
            seen.lasted.append(time.monotonic() - slow.pop(sock))
            try:
                seen.answers.append(sock.recv(4096))
            except ConnectionResetError:
                seen.answers.append(b"")
            sock.close()
        if time.monotonic() - last_byte >= 1:  # one more byte a second each
            last_byte = time.monotonic()
            for sock in slow:
                try:
                    sock.send(payload[sent : sent + 1])
                except OSError:
                    pass
            sent += 1
        began = time.monotonic()
        meanwhile()
        seen.latencies.append(time.monotonic() - began)
    for sock in slow:
        sock.close()
    return seen


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.01):
    """Poll `predicate` until it is true or `timeout` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
