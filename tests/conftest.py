"""Fixtures that more than one folder uses: real servers (in a thread of this process, or
as a process), a documents directory, a TLS pair, a bare loop and the GPIO stand-ins.
The helpers they use live in tests/helpers/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from httap.loop import Loop
from tests.helpers import HELLO, ROOT
from tests.helpers.processes import Process
from tests.helpers.servers import RunningServer

STANDINS = ROOT / "tests" / "helpers" / "standins"


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
def spawn():
    started: list[Process] = []

    def start(*args: str, cwd: Path | None = None, env: dict | None = None) -> Process:
        process = Process(list(args), cwd, env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def loop():
    """A bare httap Loop, closed at the end."""
    made = Loop()
    yield made
    made.close()


def _is_standin(name: str) -> bool:
    return name in ("RPi", "gpiod") or name.startswith(("RPi.", "gpiod."))


@pytest.fixture
def standins(monkeypatch):
    """`import RPi.GPIO` and `import gpiod` give the stand-ins, fresh, for this test only."""
    monkeypatch.syspath_prepend(str(STANDINS))
    for name in [name for name in sys.modules if _is_standin(name)]:
        monkeypatch.delitem(sys.modules, name)
    import gpiod
    import RPi.GPIO

    RPi.GPIO._reset()
    gpiod._reset()
    yield SimpleNamespace(GPIO=RPi.GPIO, gpiod=gpiod)
    for name in [name for name in sys.modules if _is_standin(name)]:
        del sys.modules[name]


@pytest.fixture
def mosquitto(tmp_path):
    """Start Mosquitto brokers (tests/helpers/broker.py) on free loopback ports: with
    `users` a password file, with `tls` a TLS listener; all are killed at the end."""
    from tests.helpers.broker import Mosquitto

    started: list[Mosquitto] = []

    def start(**options) -> Mosquitto:
        where = tmp_path / f"mosquitto{len(started)}"
        where.mkdir()
        broker = Mosquitto(where, **options)
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.kill()


@pytest.fixture
def watch():
    """Watchers (paho clients recording messages) of a broker; all closed at the end."""
    from tests.helpers.broker import Watcher

    opened: list[Watcher] = []

    def open_watcher(broker, *topics: str, **options) -> Watcher:
        watcher = Watcher(broker, *topics, **options)
        opened.append(watcher)
        return watcher

    yield open_watcher
    for watcher in opened:
        watcher.close()
