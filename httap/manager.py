"""The HTTaP domain: every request whose target starts with `/?`."""

from __future__ import annotations

import itertools
import json
from typing import TYPE_CHECKING

from httap import http

if TYPE_CHECKING:
    from httap.connection import Connection
    from httap.server import Server

NO_CACHE = [
    ("Cache-Control", "no-cache, no-store, must-revalidate"),
    ("Expires", "0"),
]


def json_response(status: int, value: object, session: int, headers=()) -> http.Response:
    """A dynamic reply: JSON body and the headers PROTOCOL.md requires on every one."""
    body = json.dumps(value, separators=(",", ":")).encode()
    return http.Response(
        status,
        [
            ("Content-Type", "application/json"),
            *NO_CACHE,
            ("HTTaP-Session", str(session)),
            *headers,
        ],
        body,
    )


def error(status: int, code: str, message: str, session: int, headers=()) -> http.Response:
    return json_response(status, {"error": code, "message": message}, session, headers)


class Manager:
    """Answers `/?` requests. Each connection is a session with an id never reused."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._ids = itertools.count(1)

    def connection_opened(self, connection: Connection) -> None:
        connection.session = next(self._ids)

    def connection_closed(self, connection: Connection) -> None:
        pass

    def handle(self, request: http.Request) -> http.Response:
        return error(404, "not-found", f"no such resource: {request.target}", request.session)

    def close(self) -> None:
        pass
