"""Kernel edge events in the loop (httap/watches.py), over real sockets to a real server
on the simulated board, whose inputs give their edges on a pipe as libgpiod's line
requests give them on their descriptor: the same path as on a Pi 5.

An edge made by the input's wire (not by a request) reaches a long-poll and an event
stream through that descriptor, timed by the board's own stamp of the edge, not by when
the loop noticed it; edges faster than the loop reads them overflow the kernel's 16,
and the lost ones are counted in /?stats.
"""

from __future__ import annotations

import time

import pytest

from tests.helpers.client import Client
from tests.helpers.dynamic import call, encode
from tests.helpers.servers import BUTTON, PINS, history
from tests.helpers.sse import Sse


@pytest.fixture
def running(make_server):
    return make_server(gpio__backend="sim", gpio__pins=PINS)


def edges(client: Client) -> dict:
    """What /?stats says of the inputs' edges."""
    return call(client, "GET", "/?stats").json()["gpio"]


def wire(running, *levels: int) -> None:
    """The button's wire goes through `levels`, all in one step of the loop (faster than
    the loop reads the edges)."""

    def drive() -> None:
        for level in levels:
            running.server.gpio.drive(BUTTON, level)

    running.call(drive)


def test_an_edge_reaches_a_long_poll_and_a_stream_through_its_descriptor(running, connect):
    other = connect(running)
    assert edges(other) == {"edges": 0, "lost": 0, "sampled": 0}
    stream = Sse(running.connect())
    stream.next()  # the state
    client = connect(running)
    client.send(encode("GET", "/?gpio/button&wait=5&value=1"))
    time.sleep(0.2)
    assert edges(other)["sampled"] == 0  # watched, yet not sampled: the kernel tells
    wire(running, 0)
    reply = client.read()
    assert reply.json() == {"gpio": BUTTON, "mode": "in", "value": 0, "timeout": False}
    event = stream.next()
    assert (event.event, event.data["pin"], event.data["value"], event.data["cause"]) == (
        "gpio",
        "button",
        0,
        "input",
    )
    board = running.server.gpio
    when = history(running, BUTTON)[-1][0]  # the edge's stamp on the board's clock
    assert event.data["time"] == pytest.approx(board.wall(round(when * 1e9)), abs=1e-6)
    assert edges(other) == {"edges": 1, "lost": 0, "sampled": 0}
    stream.close()


def test_edges_lost_in_the_kernel_are_counted_and_the_rest_arrive_in_order(running, connect):
    stream = Sse(running.connect())
    stream.next()
    wire(running, *[n % 2 for n in range(20)])  # 20 edges: the kernel keeps the last 16
    events = stream.take(16)
    assert [event.data["value"] for event in events] == [0, 1] * 8
    ids = [event.id for event in events]
    assert ids == sorted(ids)
    assert stream.quiet(0.2) == []
    assert edges(connect(running)) == {"edges": 16, "lost": 4, "sampled": 0}
    stream.close()
