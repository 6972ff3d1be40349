"""Requests to the `/?` domain as exact bytes, and the checks every reply of it passes."""

from __future__ import annotations

import json

from tests.helpers.client import Client, Reply

NO_CACHE = "no-cache, no-store, must-revalidate"


def encode(method: str, target: str, body=b"", headers: str = "") -> bytes:
    """One request's exact bytes; a dict or list body is sent as JSON."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    length = f"Content-Length: {len(body)}\r\n" if body or method in ("POST", "PUT") else ""
    head = f"{method} {target} HTTP/1.1\r\nHost: test\r\n{length}{headers}\r\n"
    return head.encode() + body


def call(client: Client, method: str, target: str, body=b"", headers: str = "") -> Reply:
    client.send(encode(method, target, body, headers))
    return client.read(head_only=method == "HEAD")


def check_dynamic(reply: Reply, session: int | None = None) -> None:
    """The headers every dynamic reply carries (docs/protocol.md, "Replies in the dynamic
    domain")."""
    headers = reply.headers
    assert headers["cache-control"] == NO_CACHE, reply.raw_head
    assert headers["expires"] == "Thu, 01 Jan 1970 00:00:00 GMT", reply.raw_head
    assert headers["httap-session"].isdigit(), reply.raw_head
    if session is not None:
        assert int(headers["httap-session"]) == session
    if reply.status not in (204, 304):
        assert headers["content-type"] == "application/json", reply.raw_head
        assert int(headers["content-length"]) == len(reply.body)
        json.loads(reply.body)  # the whole body, no more, no less, is one JSON value


def check_error(reply: Reply, status: int, code: str, *words: str) -> dict:
    assert reply.status == status, (reply.raw_head, reply.body)
    check_dynamic(reply)
    value = reply.json()
    assert value["error"] == code, value
    for word in words:
        assert word in value["message"], value
    return value
