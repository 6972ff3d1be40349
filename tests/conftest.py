"""Fixtures that more than one folder uses: real servers (in a thread of this process, or
as a process), a documents directory, a TLS pair, a bare loop and the GPIO stand-ins.
The helpers they use live in tests/helpers/."""

from __future__ import annotations

import importlib.metadata
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

    def start(config_file: str | None = None, loop=None, **overrides) -> RunningServer:
        flat = {key.replace("__", "."): value for key, value in overrides.items()}
        running = RunningServer(flat, config_file, loop)
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


def _forget(*names: str) -> None:
    for name in [name for name in sys.modules if name.split(".")[0] in names]:
        del sys.modules[name]


@pytest.fixture
def gpiod_v1(standins):
    """`import gpiod` gives the stand-in for libgpiod v1 (Debian's python3-libgpiod 1.6:
    one module, the same name as v2's), fresh, for this test only."""
    sys.path.insert(0, str(STANDINS / "v1"))
    _forget("gpiod")
    import gpiod

    gpiod._reset()
    yield gpiod
    sys.path.remove(str(STANDINS / "v1"))
    gpiod._reset()  # closes the pipes of lines left requested
    _forget("gpiod")


@pytest.fixture
def rpi_lgpio(standins, monkeypatch):
    """`import RPi.GPIO` gives the real rpi-lgpio (pure Python, as installed) over the
    stand-in for lgpio (a Pi 5's gpiochip0), for this test only; skipped where
    rpi-lgpio is not installed (requirements-test.txt: not for Python 3.13 and later,
    which lgpio has no wheel for)."""
    try:
        importlib.metadata.version("rpi-lgpio")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("rpi-lgpio is not installed here")
    monkeypatch.setattr(sys, "path", [path for path in sys.path if path != str(STANDINS)])
    monkeypatch.syspath_prepend(str(STANDINS / "lgpio"))
    monkeypatch.setenv("RPI_LGPIO_REVISION", "d04170")  # a Raspberry Pi 5 Model B
    monkeypatch.setenv("RPI_LGPIO_CHIP", "0")
    _forget("RPi", "lgpio")
    import lgpio
    import RPi.GPIO

    lgpio._reset()
    yield SimpleNamespace(GPIO=RPi.GPIO, lgpio=lgpio)
    _forget("RPi", "lgpio")


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
