"""The worst loop stall while serial ports flap: how late a 1 kHz task runs meanwhile.

    python bench/serial_flap.py [--seconds 30]

Runs a server in this process with a 1 kHz task and five ports that keep failing: a
device path that is absent, a pseudo-terminal that appears and disappears (closed
under the server's feet, then replugged), `socket://` to a port that drops connects
(a full accept queue: the SYNs go unanswered), to one that refuses them, and to
`localhost` on one that refuses (a name, looked up off the loop). Prints the task's
lateness over the whole run (median, p99, max, in microseconds) and how many attempts
to open the ports failed; then the same series without the ports, for comparison.
Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from httap import config
from httap.loop import summary_us
from httap.server import Server

INTERVAL = 0.001  # 1 kHz
FLAP = 0.25  # seconds the pty stays plugged, then unplugged


class Failures(logging.Handler):
    """Counts the failed attempts to open a port that httap.serial reports."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.count += "connecting to" not in message and "open on" not in message


def black_hole() -> tuple[int, list[socket.socket]]:
    """A port whose accept queue is full: connects to it are never answered."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    held = [listener]
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        held.append(filler)
    return listener.getsockname()[1], held


def refused() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def flap_pty(link: Path, done: threading.Event) -> None:
    """Plug a fresh pty at `link`, then close it and remove the link, until `done`."""
    while not done.is_set():
        master, slave = os.openpty()
        fresh = link.with_name("fresh")
        fresh.symlink_to(os.ttyname(slave))
        os.replace(fresh, link)
        done.wait(FLAP)
        link.unlink()
        os.close(master)
        os.close(slave)
        done.wait(FLAP)


def series(seconds: float, ports: dict) -> tuple[dict, int]:
    """Run a server with `ports` for `seconds`; the 1 kHz task's lateness figures."""
    settings = config.load(
        None,
        env={},
        overrides={"listen": ["http://127.0.0.1:0"], "gpio.backend": "sim", "serial": ports},
    )
    server = Server(settings)
    server.listen()
    late: deque[float] = deque(maxlen=10_000_000)  # one per deadline, skipped ones too
    task = server.every(INTERVAL, lambda: late.extend(fresh()), "1 kHz")
    counted = 0

    def fresh() -> Iterator[float]:
        """The lateness of the deadlines this run served: its own and those it skipped."""
        nonlocal counted
        deadlines = task.runs + task.skipped
        new, counted = deadlines - counted, deadlines
        return islice(reversed(task.lateness), new)

    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    time.sleep(seconds)
    server.loop.call_threadsafe(lambda: server.stop(grace=0.5))
    thread.join()
    return {"deadlines": len(late), **summary_us(late)}, task.overruns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30, help="length of each series")
    seconds = parser.parse_args().seconds
    failures = Failures()
    log = logging.getLogger("httap.serial")
    log.addHandler(failures)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    hole, held = black_hole()
    done = threading.Event()
    with tempfile.TemporaryDirectory() as where:
        link = Path(where, "ttyUSB0")
        flapper = threading.Thread(target=flap_pty, args=(link, done))
        flapper.start()
        ports = {
            "absent": {"port": str(Path(where, "absent"))},
            "pty": {"port": str(link)},
            "dropped": {"port": f"socket://127.0.0.1:{hole}"},
            "refused": {"port": f"socket://127.0.0.1:{refused()}"},
            "named": {"port": f"socket://localhost:{refused()}"},
        }
        try:
            flapping, overruns = series(seconds, ports)
        finally:
            done.set()
            flapper.join()
    for sock in held:
        sock.close()
    print(f"ports flapping, {seconds:g} s: {flapping}, overruns {overruns},")
    print(f"  {failures.count} failed attempts to open or ports lost")
    quiet, overruns = series(seconds, {})
    print(f"no ports, {seconds:g} s: {quiet}, overruns {overruns}")


if __name__ == "__main__":
    main()
