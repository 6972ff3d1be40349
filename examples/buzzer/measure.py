"""Measure the buzzer's achieved frequency and jitter on the sim board, idle and loaded.

    .venv/bin/python examples/buzzer/measure.py

Starts the example's server in this process (sim board, 127.0.0.1, a free port), plays
440 Hz for 2 s and reads the speaker pin's history: once with the server idle, once
while a client hammers it with page requests (wrk -t1 -c10 where it is installed, else
a Python client in another process doing lock-step GETs). The client is a separate
process so that it does not share this process's GIL with the loop.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # run from a checkout without installing

from httap import config  # noqa: E402
from httap.server import Server  # noqa: E402

FREQUENCY = 440.0
SECONDS = 2.0


def analyse(history: list, since: float, until: float, frequency: float) -> dict:
    """The achieved frequency and the period jitter of the rising edges in [since, until).

    The frequency is that of the median period: the pitch one hears. When the loop runs
    late by more than a period (the CPU taken by another process, say), the wave skips
    whole periods to keep its phase; those show in `missed` and in the jitter instead.
    """
    rises = [
        t
        for (_, before), (t, value) in zip(history, history[1:])
        if before == 0 and value == 1 and since <= t < until
    ]
    periods = [later - earlier for earlier, later in zip(rises, rises[1:])]
    if len(periods) < 2:
        return {"frequency": 0.0, "periods": len(periods)}
    nominal = 1.0 / frequency
    return {
        "frequency": round(1.0 / statistics.median(periods), 2),
        "periods": len(periods),
        "missed": sum(period > 1.5 * nominal for period in periods),
        "jitter_std_us": round(statistics.pstdev(periods) * 1e6, 1),
        "jitter_max_us": round(max(abs(p - nominal) for p in periods) * 1e6, 1),
    }


def request(port: int, method: str, target: str, body: object = None) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, target, None if body is None else json.dumps(body))
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def hammer(port: int, seconds: float, count) -> None:
    """Lock-step GETs of the page on one kept-alive connection for `seconds`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        connection.request("GET", "/")
        connection.getresponse().read()
        count.value += 1
    connection.close()


def play(server: Server, port: int, load: bool) -> dict:
    """Play FREQUENCY for SECONDS (under load or not) and analyse the pin's history."""
    speaker = server.config.gpio.pins["speaker"].gpio
    request(port, "POST", "/?buzzer", {"frequency": FREQUENCY})
    since = time.monotonic()
    if not load:
        time.sleep(SECONDS)
        requests = "none"
    elif shutil.which("wrk"):
        url = f"http://127.0.0.1:{port}/"
        wrk = ["wrk", "-t1", "-c10", f"-d{SECONDS:g}s", url]
        output = subprocess.run(wrk, capture_output=True, text=True, timeout=30).stdout
        rate = next((line for line in output.splitlines() if "Requests/sec" in line), "")
        requests = f"wrk -t1 -c10: {rate.split(':')[-1].strip()} requests/s"
    else:
        count = multiprocessing.Value("i", 0)
        client = multiprocessing.Process(target=hammer, args=(port, SECONDS, count))
        client.start()
        client.join(SECONDS + 10)
        requests = f"Python client: {count.value} lock-step GETs in {SECONDS:g} s"
    until = time.monotonic()
    request(port, "POST", "/?buzzer", {"frequency": 0})
    history = server.gpio.history(speaker)  # a copy; the wave is silent by now
    return {"load": requests, **analyse(history, since, until, FREQUENCY)}


def main() -> None:
    settings = config.load(
        str(HERE / "web.json5"), env={}, overrides={"listen": ["http://127.0.0.1:0"]}
    )
    server = Server(settings)
    port = int(server.listen()[0].rsplit(":", 1)[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for load in (False, True):
            print(json.dumps({"idle": not load, **play(server, port, load)}))
    finally:
        server.loop.call_threadsafe(server.stop)
        thread.join(15)


if __name__ == "__main__":
    main()
