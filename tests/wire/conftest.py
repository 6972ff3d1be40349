"""Fixtures of the socket-level tests: a server over a few files, and clients that are
closed at the end."""

from __future__ import annotations

import os

import pytest

from tests.helpers.client import Client


@pytest.fixture
def server(make_server, tmp_path):
    """A server over a documents directory holding a 1 KiB index.html and a few files."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.html").write_bytes(b"<!doctype html>" + b"x" * (1024 - 15))
    (docs / "hello.txt").write_bytes(b"hello, world\n")
    (docs / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    return make_server(documents=str(docs))


@pytest.fixture
def connect():
    """Open clients (from a source address if given); all are closed at the end."""
    opened: list[Client] = []

    def open_client(running, source: str | None = None, timeout: float = 5.0) -> Client:
        client = Client(running.connect(source=source, timeout=timeout))
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()
