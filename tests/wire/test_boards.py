"""A real board's library failing, over real sockets to a real server: the real
rpi-lgpio over the stand-in for lgpio (tests/helpers/standins/lgpio), whose errors are
`lgpio.error`, a plain Exception. A refusal at start-up is one line naming the pin and
the library's words; on a request it is 500 `gpio-error` with them, and the server
goes on serving everyone else. And RPi.GPIO (its stand-in), which gives no edge
descriptor: its inputs are sampled while watched, and only then.
"""

from __future__ import annotations

import logging

import pytest

from httap.server import StartupError
from tests.helpers import wait_for
from tests.helpers.dynamic import call, check_error, encode
from tests.helpers.servers import BUTTON, PINS


def test_a_line_held_by_another_program_stops_start_up_in_one_line(make_server, rpi_lgpio):
    rpi_lgpio.lgpio._hold(17)  # the led's line
    with pytest.raises(StartupError) as refused:
        make_server(gpio__backend="rpi", gpio__pins=PINS)
    assert str(refused.value) == (
        "cannot set up the GPIO pins: GPIO 17: rpi-lgpio refused the set-up: GPIO busy"
    )


def test_a_library_error_on_a_request_is_500_in_its_words_and_the_server_serves_on(
    make_server, connect, rpi_lgpio, caplog
):
    running = make_server(gpio__backend="rpi", gpio__pins=PINS)
    client = connect(running)
    assert call(client, "GET", "/?gpio/button").json()["value"] == 1
    running.call(rpi_lgpio.lgpio._handles.clear)  # the chip's handle is gone
    body = check_error(call(client, "GET", "/?gpio/button"), 500, "gpio-error")
    assert body["message"] == f"GPIO {BUTTON}: rpi-lgpio cannot read it: unknown handle"
    assert call(connect(running), "GET", "/?ping").status == 200
    assert call(client, "GET", "/?ping").status == 200
    with caplog.at_level(logging.ERROR, logger="gpio"):
        running.stop()  # the board's cleanup fails too: logged, and the server stops
    assert "rpi-lgpio cannot clean up: unknown handle" in caplog.text


def test_on_rpi_gpio_a_watched_input_is_sampled_and_only_then(make_server, connect, standins):
    """RPi.GPIO gives no edge descriptor: the sampler reads the long-polled input, and
    stops with its last watch."""
    pins = {"sensor": {"gpio": 5, "mode": "in"}}  # floating: its wire sets its level
    running = make_server(gpio__backend="rpi", gpio__pins=pins)
    client, other = connect(running), connect(running)

    def sampled() -> int:
        return call(other, "GET", "/?stats").json()["gpio"]["sampled"]

    assert sampled() == 0
    client.send(encode("GET", "/?gpio/sensor&wait=5&value=0"))
    assert wait_for(lambda: sampled() == 1)
    running.call(lambda: standins.GPIO._set_external(5, 1))  # the wire, not a request
    assert client.read().json() == {"gpio": 5, "mode": "in", "value": 1, "timeout": False}
    assert wait_for(lambda: sampled() == 0)
