"""Connections that send a request a byte a second (slowloris), while a well-behaved client
takes its turns: what the server must survive without starving anyone."""

from __future__ import annotations

import select
import socket
import time
from typing import Callable, NamedTuple


class Slowloris(NamedTuple):
    """What `slowloris` saw: how long each connection lasted, what each got before its
    close, and how long each of the well-behaved client's turns took meanwhile."""

    lasted: list[float]
    answers: list[bytes]
    latencies: list[float]


def slowloris(
    connect: Callable[[], socket.socket],
    payload: bytes,
    count: int,
    seconds: float,
    meanwhile: Callable[[], None],
) -> Slowloris:
    """Open `count` connections that send `payload` a byte a second each, and run
    `meanwhile()` (another client's requests) on every turn, until the server has
    closed them all or `seconds` have passed; then close what is left."""
    slow: dict[socket.socket, float] = {}
    for _ in range(count):
        sock = connect()
        sock.sendall(payload[:1])
        slow[sock] = time.monotonic()
    seen = Slowloris([], [], [])
    sent, last_byte = 1, time.monotonic()
    deadline = time.monotonic() + seconds
    while slow and time.monotonic() < deadline:
        ready, _, _ = select.select(list(slow), [], [], 0.05)
        for sock in ready:
            seen.lasted.append(time.monotonic() - slow.pop(sock))
            try:
                seen.answers.append(sock.recv(4096))
            except ConnectionResetError:
                seen.answers.append(b"")
            sock.close()
        if time.monotonic() - last_byte >= 1:  # one more byte a second each
            last_byte = time.monotonic()
            for sock in slow:
                try:
                    sock.send(payload[sent : sent + 1])
                except OSError:
                    pass
            sent += 1
        began = time.monotonic()
        meanwhile()
        seen.latencies.append(time.monotonic() - began)
    for sock in slow:
        sock.close()
    return seen
