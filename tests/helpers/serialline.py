"""The far end of a serial line, for tests of serial ports: a fresh pseudo-terminal whose
slave the server opens as its device while the test plays the device on the master."""

from __future__ import annotations

import os
import select
import time
import tty


class Device:
    """The far end of a serial line: the master side of a fresh pseudo-terminal."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # bytes pass unchanged, as on a real line
        self.path = os.ttyname(self.slave)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, size: int, timeout: float = 5.0) -> bytes:
        """Read exactly `size` bytes that the server wrote to the port."""
        data = b""
        deadline = time.monotonic() + timeout
        while len(data) < size:
            left = deadline - time.monotonic()
            assert left > 0 and select.select([self.master], [], [], left)[0], data
            data += os.read(self.master, size - len(data))
        return data

    def unplug(self) -> None:
        for fd in (self.master, self.slave):
            os.close(fd)
