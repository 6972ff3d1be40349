"""What `/?serial/NAME` means (docs/protocol.md, "Serial"); the port's mechanics
(buffer, ordered jobs, reopening) are serialport.py's.

- `GET` reads the bytes received so far, or waits for some: `&until=BYTES` (up to and
  including them), `&count=N`, `&wait=S` (up to S seconds, WAIT; the port's `timeout`
  by default).
- `POST` writes the body; with any of those parameters it then reads a reply the same way.
- Bytes that were read come back as application/octet-stream, with HTTaP-Serial-Timeout
  (1: the wait ran out first) and HTTaP-Serial-Dropped (bytes the buffer lost); a write
  alone answers {"written": N}; a port that is down answers 503 `port-unavailable`.
- A write takes the lease; a read needs that nobody else holds it (the dispatch's lease
  column): the bytes it takes may be the holder's reply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import parse_qsl

from httap import http
from httap.config import WAIT, Range
from httap.manager.room import Answer, Change, param
from httap.reply import Pending

if TYPE_CHECKING:  # serialport.py is loaded by the server only when ports are configured
    from httap.serialport import Job, SerialPort

PARAMS = {"wait", "until", "count"}


class Serial:
    """The `/?serial` room over the configured `ports` (name -> SerialPort)."""

    def __init__(self, ports: Mapping[str, SerialPort]) -> None:
        self.ports = ports

    def find(self, name: Optional[str]) -> SerialPort:
        """The port `/?serial/NAME` names; 404 listing the ports otherwise."""
        name = name or ""
        port = self.ports.get(name)
        if port is None:
            names = ", ".join(sorted(self.ports)) or "none are configured"
            raise http.HTTPError(
                404,
                "not-found",
                f"no serial port {name!r}; the ports are: {names} (serial.NAME in web.json5)",
            )
        return port

    def port(self, request: http.Request, port: SerialPort) -> Change:
        """A read or a write, checked, as a Change the lease must allow."""
        job = self._job(request, port)
        if request.method == "POST":
            refused = f"writing to serial port {port.name} is refused"
        else:
            refused = (
                f"reading serial port {port.name} is refused: a read takes the bytes that"
                " may be the holder's reply, so only the holder reads a port while it drives"
            )

        def submit() -> Pending:
            pending = Pending()
            pending.on_cancel(lambda: port.cancel(job))
            port.submit(job, lambda done: pending.resolve(_reply(port, done)))
            return pending

        return Change(refused, submit)

    @staticmethod
    def _job(request: http.Request, port: SerialPort) -> Job:
        params = request.params
        unknown = set(params) - PARAMS
        if unknown:
            raise http.HTTPError(
                400, "bad-param", f"unknown parameter {min(unknown)!r}; use wait, until, count"
            )
        until = None
        # Neither `until` nor `count` can be longer than what the port keeps.
        kept = Range(1, port.config.buffer, "a whole number of bytes", integer=True)
        buffer = f" (serial.{port.name}.buffer)"
        if "until" in params:
            # Bytes, not text: decoded again as Latin-1 so that %FF is the byte 0xFF.
            query = request.target.partition("&")[2]
            raw = dict(parse_qsl(query, keep_blank_values=True, encoding="latin-1"))
            until = raw["until"].encode("latin-1")
            if not kept.holds(len(until)):
                raise http.HTTPError(
                    400, "bad-value", f"until is from 1 to {kept.high} bytes, e.g. %0A{buffer}"
                )
        count = param(request, "count", kept, None, buffer)
        wait = param(request, "wait", WAIT, port.config.timeout or 0.0)
        from httap.serialport import Job  # loaded already: a port exists

        if request.method == "GET":
            return Job(b"", True, until, count, wait)
        return Job(request.body, bool(params), until, count, wait)


def _reply(port: SerialPort, job: Job) -> Any:
    """What a finished job answers."""
    if job.error is not None:
        written = f" ({job.written} of {len(job.data)} bytes were written)" if job.data else ""
        return Answer(
            503,
            {
                "error": "port-unavailable",
                "message": f"serial port {port.name} ({port.url}) is unavailable:"
                f" {job.error}{written}; the server keeps trying to open it",
            },
            (("Retry-After", str(math.ceil(port.delay))),),
        )
    if not job.reads:
        return {"written": job.written}
    return Answer(
        200,
        job.received,
        (
            ("HTTaP-Serial-Timeout", "1" if job.timed_out else "0"),
            ("HTTaP-Serial-Dropped", str(job.dropped)),
        ),
    )
