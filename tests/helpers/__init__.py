"""What the tests share, in one place: tests import helpers from here, never from another
test module (fixtures live in the conftest.py files).

- this module: the checkout's ROOT, waiting for a condition, descriptors, a free port;
- `client`: a raw-socket HTTP/1.1 client that sends exact bytes and reads replies;
- `dynamic`: requests to the `/?` domain, and the checks every reply of it passes;
- `servers`: a real Server in a thread of this process, and its simulated board;
- `processes`: programs run as children: `python -m httap`, make, curl;
- `readme`: the README's commands and configuration, as the tests run them;
- `slowloris`: connections that send a byte a second;
- `serialline`: the far end of a serial line, a pseudo-terminal the test plays;
- `sysfs`: a PWM sysfs tree laid out as Linux lays it out, and the kernel's export;
- `standins/`: RPi.GPIO and gpiod stand-ins (the `standins` fixture puts them first).
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from httap.loop import Loop

ROOT = Path(__file__).resolve().parents[2]  # the checkout: tests/helpers/ is two below
HELLO = b"hello, world\n"


def open_fds() -> int:
    """Descriptors open in this process (a leak shows up as a larger count)."""
    return len(os.listdir("/proc/self/fd"))


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.01):
    """Poll `predicate` until it is true or `timeout` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 where nobody listens (a connect is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_for(loop: Loop, seconds: float) -> None:
    """Run `loop` for `seconds`, then return."""
    loop.call_later(seconds, loop.stop)
    loop.run()
