"""The access log and the trace: what each request asked and what it was answered.

Both are off by default, and then the server holds no `Logs` at all: a connection's
only cost is one `is None` check per request and per response. Both methods take plain
values (a request, a client address, a session), never a connection. (The audit of hardware
changes is always on; it is written where the changes are made, in pins.py.)
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from httap.config import LogConfig

if TYPE_CHECKING:
    from httap import http
    from httap.session import Session

access_log = logging.getLogger("httap.access")
trace_log = logging.getLogger("httap.trace")


class Logs:
    """Writes the access lines (to `httap.access` or to a file) and the traced heads."""

    def __init__(self, config: LogConfig) -> None:
        self.trace = config.trace
        self.file = None
        self.access: Optional[Callable[[str], Any]] = None
        if isinstance(config.access, str):
            # Opened at start-up, before privileges are dropped: the file may be root's.
            self.file = open(config.access, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
            self.access = lambda line: self.file.write(line + "\n")
        elif config.access:
            self.access = access_log.info
            access_log.setLevel(logging.INFO)  # asked for: shown whatever log.level says
        if self.trace:
            trace_log.setLevel(logging.INFO)

    @classmethod
    def open(cls, config: LogConfig) -> Optional[Logs]:
        """The logs the configuration asks for; None when it asks for none."""
        return cls(config) if config.access or config.trace else None

    def request(self, request: http.Request) -> float:
        """A request is about to run: trace its head (with `request.session`'s id);
        return when it started (time.perf_counter())."""
        if self.trace:
            session = request.session.id if request.session is not None else "-"
            lines = [f"{request.method} {request.target} {request.version}"]
            lines += [f"{name}: {value}" for name, value in request.headers.items()]
            trace_log.info(_block(f"s={session} >", lines))
        return time.perf_counter()

    def response(
        self,
        client: tuple,
        session: Optional[Session],
        request: Optional[http.Request],
        status: int,
        head: bytes,
        sent: int,
        started: Optional[float],
    ) -> None:
        """A response is queued on the connection from `client` (address, port) whose
        session is `session` (None: it has none, refused at once). `request` None is a
        protocol error answered before any request could be read; `sent` is the body's
        length in bytes, `started` when the request started (`request`'s return), None
        if unknown."""
        tag: Any = "-" if session is None else session.id
        if self.trace:
            lines = head.decode("latin-1").split("\r\n")[:-2]  # the head ends with a blank line
            trace_log.info(_block(f"s={tag} <", lines))
        if self.access is None:
            return
        if request is None:
            line = '"-"'
        else:
            target = request.target.replace("\\", "\\\\").replace('"', '\\"')
            line = f'"{request.method} {target} {request.version}"'
        now = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
        user = (request.user if request is not None else None) or "-"
        duration = "-" if started is None else f"{time.perf_counter() - started:.6f}"
        self.access(
            f"{client[0]} - {user} [{now}] {line} {status} {sent or '-'} s={tag} {duration}"
        )

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _block(prefix: str, lines: list[str]) -> str:
    """One log record for a whole head, each line prefixed so that grep finds them all."""
    return "\n".join(f"{prefix} {line}" for line in lines)
