"""A simulated SCPI instrument (a bench voltmeter) on a pseudo-terminal.

The server opens the pty's slave path like any serial device; this side answers on the
master. `app.py` runs it inside the server's loop. Run on its own, it prints the path to
put in `serial.scpi.port`:

    python examples/scpi/instrument.py
"""

from __future__ import annotations

import os
import random
import select
import tty
from selectors import EVENT_READ

IDENTITY = b"HTTAP,SIM-DVM-1,0001,1.0\n"


class Instrument:
    """Reads newline-terminated commands, answers queries with a newline-terminated line.

    Knows `*IDN?`, `MEAS:VOLT?` (about 5 V with a little noise) and `SYST:ERR?`; anything
    else is queued as a SCPI error, as a real instrument does, instead of an answer.
    """

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing: a plain serial line
        self.path = os.ttyname(self._slave)  # the slave stays open: the pty lives on
        os.set_blocking(self.master, False)
        self._line = b""
        self._errors: list[bytes] = []

    def answer(self, command: bytes) -> bytes:
        """The reply to one command (without its newline); b"" when there is none."""
        command = command.strip().upper()
        if command == b"*IDN?":
            return IDENTITY
        if command == b"MEAS:VOLT?":
            return b"%+.6E\n" % random.gauss(5.0, 0.002)
        if command == b"SYST:ERR?":
            return self._errors.pop(0) if self._errors else b'+0,"No error"\n'
        if command:
            self._errors.append(b'-113,"Undefined header"\n')
        return b""

    def on_event(self, mask: int) -> None:
        """The master is readable (the loop calls this): answer every complete command.
        Replies are a few bytes, which a pty always has room for."""
        try:
            self._line += os.read(self.master, 4096)
        except BlockingIOError:
            return
        *commands, self._line = self._line.split(b"\n")
        for command in commands:
            reply = self.answer(command)
            if reply:
                os.write(self.master, reply)


if __name__ == "__main__":
    instrument = Instrument()
    print(f"simulated SCPI instrument on {instrument.path}", flush=True)
    try:
        while True:
            select.select([instrument.master], [], [])
            instrument.on_event(EVENT_READ)
    except KeyboardInterrupt:
        pass
