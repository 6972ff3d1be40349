"""What `/?serial/NAME` means (httap/manager/serial.py), on a port that is not open."""

from __future__ import annotations

import pytest

from httap import config
from httap.manager import params
from httap.manager.room import Change
from httap.reply import Pending
from httap.serialport import SerialPort
from tests.helpers.domain import ManualLoop, answer, build, request


@pytest.fixture
def manager():
    manual_loop = ManualLoop()
    scope = {"port": "/dev/none", "buffer": 64}
    settings = config.load(None, env={}, overrides={"serial": {"scope": scope}})
    return build(manual_loop, {"scope": SerialPort("scope", settings.serial["scope"], manual_loop)})


def test_an_unknown_port_is_404_listing_the_ports(manager):
    status, body = answer(manager.handle(request("GET", "/?serial/printer")))
    assert (status, body["error"]) == (404, "not-found")
    assert "no serial port 'printer'; the ports are: scope" in body["message"]


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("&speed=9", "unknown parameter 'speed'; use wait, until, count"),
        ("&count=0", "count is a whole number of bytes from 1 to 64 (serial.scope.buffer)"),
        ("&count=65", "from 1 to 64"),
        ("&until=", "until is from 1 to 64 bytes"),
        ("&until=" + "A" * 65, "until is from 1 to 64 bytes"),
        ("&wait=-1", "wait is a number of seconds"),
    ],
)
def test_the_parameters_are_checked(manager, query, words):
    status, body = answer(manager.handle(request("GET", "/?serial/scope" + query)))
    assert (status, body["error"]) == (400, "bad-value" if "unknown" not in words else "bad-param")
    assert words in body["message"]


def test_a_read_and_a_write_are_changes_saying_what_the_lease_refuses(manager):
    port = manager.serial.ports["scope"]
    asked = request("GET", "/?serial/scope&until=%0A")
    asked.params = params("until=%0A")  # as the dispatch reads them
    read = manager.serial.port(asked, port)
    written = request("POST", "/?serial/scope", b"*IDN?\n")
    written.params = {}
    write = manager.serial.port(written, port)
    assert isinstance(read, Change) and isinstance(write, Change)
    assert read.refused.startswith("reading serial port scope is refused: a read takes")
    assert write.refused == "writing to serial port scope is refused"


def test_a_port_that_is_down_answers_503_with_retry_after(manager):
    reply = manager.handle(request("POST", "/?serial/scope", b"*IDN?\n"))
    assert isinstance(reply, Pending) and reply.resolved
    response = reply.response()
    status, body = answer(response)
    assert (status, body["error"]) == (503, "port-unavailable")
    assert "serial port scope (/dev/none) is unavailable" in body["message"]
    assert "(0 of 6 bytes were written)" in body["message"]
    assert int(response.header("retry-after")) >= 1
