"""The scpi example run for real: the one command from the README starts the server and
its simulated instrument on a pseudo-terminal; a client over a real socket asks it."""

from __future__ import annotations

import re
import socket

from tests.helpers.client import Client
from tests.helpers.dynamic import call

TRANSACTION = "/?serial/scpi&until=%0A&wait=2"  # what the page sends


def test_the_simulated_instrument_answers_through_the_bridge(spawn):
    process = spawn(
        "serve", "--config", "examples/scpi/web.json5", "--listen", "http://127.0.0.1:0"
    )
    with socket.create_connection((process.host, process.port), timeout=5) as sock:
        client = Client(sock)
        assert b"<title>httap: scpi</title>" in client.get("/").body
        discovery = client.get("/?").json()
        assert "serial" in discovery["Services"] and discovery["Serial"] == ["scpi"]
        identity = call(client, "POST", TRANSACTION, b"*IDN?\n")
        assert identity.status == 200
        assert identity.headers["httap-serial-timeout"] == "0"
        assert identity.body == b"HTTAP,SIM-DVM-1,0001,1.0\n"
        for _ in range(3):
            volts = call(client, "POST", TRANSACTION, b"MEAS:VOLT?\n").body
            assert re.fullmatch(rb"[+-]\d\.\d{6}E[+-]\d\d\n", volts), volts
            assert 4.9 < float(volts) < 5.1
        # An unknown command gets no answer, as on a real instrument, but an error entry.
        silent = call(client, "POST", "/?serial/scpi&until=%0A&wait=0.2", b"VOLT:FOO?\n")
        assert silent.headers["httap-serial-timeout"] == "1" and silent.body == b""
        error = call(client, "POST", TRANSACTION, b"SYST:ERR?\n").body
        assert error == b'-113,"Undefined header"\n'
