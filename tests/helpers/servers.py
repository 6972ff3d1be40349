"""A real Server on 127.0.0.1 with its loop in a thread of this process (the `make_server`
fixture starts them), and what tests read of its simulated board."""

from __future__ import annotations

import re
import socket
import threading

from httap import config
from httap.loop import Loop
from httap.server import Server

# The board most `/?gpio` tests declare.
LED, BUTTON, BUZZER = 17, 4, 18
PINS = {
    "led": {"gpio": LED, "mode": "out", "safe": 0},
    "button": {"gpio": BUTTON, "mode": "in", "pull": "up"},
    "buzzer": {"gpio": BUZZER, "mode": "pwm"},
}


class RunningServer:
    """A real Server on 127.0.0.1 with an OS-picked port, its loop in a thread."""

    def __init__(
        self, overrides: dict, config_file: str | None = None, loop: Loop | None = None
    ) -> None:
        settings = {"listen": ["http://127.0.0.1:0"], **overrides}
        self.config = config.load(config_file, env={}, overrides=settings)
        self.server = Server(self.config, loop)
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


def history(running: RunningServer, number: int) -> list[tuple[float, int]]:
    """The sim board's (time, value) history of GPIO `number`."""
    return running.call(lambda: running.server.gpio.history(number))


def values(running: RunningServer, number: int) -> list[int]:
    return [value for _, value in history(running, number)]


def read_pin(running: RunningServer, number: int) -> int:
    return running.call(lambda: running.server.gpio.read(number))
