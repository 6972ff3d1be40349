"""examples/fleet: three servers from its three configs and one Mosquitto, driven by
examples/fleet/drive.py through the broker alone."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.helpers import ROOT
from tests.helpers.servers import values

FLEET = ROOT / "examples" / "fleet"


def test_drive_py_drives_all_three_through_the_broker(make_server, mosquitto):
    broker = mosquitto()
    servers = [
        make_server(
            config_file=str(FLEET / f"lab{n}.json5"),
            listen=["http://127.0.0.1:0"],
            **{"mqtt.broker": broker.url},
        )
        for n in (1, 2, 3)
    ]
    assert [running.config.id for running in servers] == ["lab1", "lab2", "lab3"]
    done = subprocess.run(
        [sys.executable, str(FLEET / "drive.py"), "--broker", broker.url, "--rounds", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "online: lab1, lab2, lab3"
    timed = [
        line
        for line in lines
        if re.fullmatch(r"round \d lab\d: led on [\d.]+ ms, off [\d.]+ ms", line)
    ]
    assert len(timed) == 6, done.stdout
    for running in servers:
        assert values(running, 17)[-4:] == [1, 0, 1, 0]  # two rounds of on, off
