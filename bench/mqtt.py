"""The MQTT bridge: command -> pin -> state round trip, and the loop's timing while the
bridge connects and reconnects. Prints ONE JSON object on stdout (times in µs).

    python bench/mqtt.py [--count N] [--seconds S]

Round trip: a Mosquitto on a free loopback port (tests/helpers/broker.py), an httap
server process bridged to it, and a paho client that publishes PREFIX/ID/gpio/led/set
(1, 0, 1, ...) and times each until the pin's state message comes back, one at a time:
`round_trip_p50_us`, `round_trip_p99_us` over N commands.

Loop timing: an httap Server in this process, with a 1 kHz task, runs for S seconds
while its bridge faces a broker that is down (refused), one that black-holes
connections (a full listen backlog: SYNs unanswered), a broker whose name takes
SLOW_LOOKUP seconds to look up (`slow.example`, which this process's getaddrinfo
answers with 127.0.0.1 after that long: a resolver that is slow, without any network),
and a TLS broker (the handshake). For each:
the task's worst lateness, the same server's without a broker beside it (`baseline`,
measured just before: what the machine does to any loop), and the longest single call
of the bridge's own code in the loop (`bridge_worst_call_us`: the stall it causes;
`bridge_worst_call_cpu_us`, its CPU time, leaves out the machine's other processes).
`reconnect_max_lateness_us` is the worst lateness over the cases; each case's figures
follow as CASE_KEY (`black_hole_bridge_worst_call_cpu_us`; `CASE_connected` 1 when the
bridge was connected at the end, as it should be after the slow lookup and with TLS).
"""

from __future__ import annotations

import argparse
import functools
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # httap and tests.helpers, from this checkout

from httap import config, serialport  # noqa: E402
from httap import mqtt as bridge_module  # noqa: E402
from httap.server import Server  # noqa: E402
from tests.helpers.broker import Mosquitto, Watcher  # noqa: E402

DEV = "bench"
SLOW_NAME = "slow.example"
SLOW_LOOKUP = 3.0  # seconds


def slow_resolver(getaddrinfo):
    """getaddrinfo, but a lookup of SLOW_NAME takes SLOW_LOOKUP seconds and finds
    127.0.0.1 (asked for a numeric address only, it fails at once, as the C library's
    does: no resolver is asked)."""

    @functools.wraps(getaddrinfo)
    def resolve(host, port, family=0, type=0, proto=0, flags=0):
        if host == SLOW_NAME and not flags & socket.AI_NUMERICHOST:
            time.sleep(SLOW_LOOKUP)
            host = "127.0.0.1"
        return getaddrinfo(host, port, family, type, proto, flags)

    return resolve


socket.getaddrinfo = slow_resolver(socket.getaddrinfo)
BASE = f"httap/{DEV}"
PINS = {"led": {"gpio": 17, "mode": "out"}}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def round_trip(where: Path, count: int) -> dict:
    broker = Mosquitto(where / "plain")
    settings = {
        "id": DEV,
        "listen": ["http://127.0.0.1:0"],
        "gpio": {"backend": "sim", "pins": PINS},
        "mqtt": {"broker": broker.url, "discovery": False},
    }
    path = where / "web.json5"
    path.write_text(json.dumps(settings))
    server = subprocess.Popen(
        [sys.executable, "-m", "httap", "serve", "--config", str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        server.stdout.readline()  # listening
        watcher = Watcher(broker, f"{BASE}/gpio/led")
        watcher.wait(f"{BASE}/gpio/led", timeout=10)  # the bridge is connected
        times = []
        for index in range(count + 1):
            value = str((index + 1) % 2).encode()
            watcher.clear()
            started = time.perf_counter()
            watcher.client.publish(f"{BASE}/gpio/led/set", value)
            watcher.wait(f"{BASE}/gpio/led", value)
            if index:  # the first one wakes everything up
                times.append(time.perf_counter() - started)
        watcher.close()
    finally:
        server.terminate()
        server.wait(10)
        broker.kill()
    return {
        "round_trip_p50_us": round(percentile(times, 0.5) * 1e6, 1),
        "round_trip_p99_us": round(percentile(times, 0.99) * 1e6, 1),
        "round_trip_count": len(times),
    }


class Worst:
    """The longest single call of the functions it wraps (the bridge's code in the loop):
    `longest` in wall-clock time, `busiest` in this thread's CPU time, which leaves out
    the time the machine's other processes took the CPU during the call."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.busiest = 0.0

    def wrap(self, owner: type, name: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.longest = max(self.longest, time.perf_counter() - started)
                self.busiest = max(self.busiest, time.thread_time() - cpu)

        setattr(owner, name, timed)


WORST = Worst()
for _owner, _names in (
    (bridge_module.Bridge, ("on_event", "_attempt", "_dialed", "_hand_over", "_failed")),
    (bridge_module.Handshake, ("on_event",)),
    (serialport.Dial, ("on_event", "addresses")),
    (serialport.Dialer, ("dial", "_looked_up")),
):
    for _name in _names:
        WORST.wrap(_owner, _name)


def lateness(seconds: float, mqtt: dict, app: Path) -> dict:
    """Run a server with the 1 kHz task of `app` for `seconds`; its worst lateness."""
    settings = config.load(
        None,
        env={},
        overrides={
            "id": DEV,
            "gpio": {"backend": "sim", "pins": PINS},
            "app": str(app),
            "mqtt": mqtt,
        },
    )
    WORST.longest = WORST.busiest = 0.0
    server = Server(settings)
    loop = server.loop
    loop.call_later(seconds, loop.stop)
    loop.run()
    late = server.late  # the app's record
    connected = server.mqtt.connected if server.mqtt is not None else None
    server.close()
    runs = late[500:]  # past the start-up
    return {
        "max_lateness_us": round(max(runs) * 1e6, 1),
        "p99_lateness_us": round(percentile(runs, 0.99) * 1e6, 1),
        "bridge_worst_call_us": round(WORST.longest * 1e6, 1) if mqtt else None,
        "bridge_worst_call_cpu_us": round(WORST.busiest * 1e6, 1) if mqtt else None,
        "connected": connected,
    }


TICKER = """
def setup(server):
    server.late = []
    handle = server.every(0.001, lambda: server.late.append(handle.lateness[-1]), name="tick")
"""


def black_hole() -> tuple[socket.socket, list[socket.socket]]:
    """A port whose backlog is full: its SYNs go unanswered."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    stuck = []
    for _ in range(16):
        sock = socket.socket()
        sock.setblocking(False)
        stuck.append(sock)
        if sock.connect_ex(listener.getsockname()) != 0:
            time.sleep(0.05)
            try:
                sock.getpeername()
            except OSError:
                break
    return listener, stuck


def stalls(where: Path, seconds: float) -> dict:
    app = where / "ticker.py"
    app.write_text(TICKER)
    certificate, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        ["make", "-s", "-f", str(ROOT / "Makefile"), f"TLS_DIR={where}", str(certificate)],
        check=True,
        capture_output=True,
    )
    tls_broker = Mosquitto(where / "tls", tls=(str(certificate), str(key)))
    plain_broker = Mosquitto(where / "plain2")
    listener, stuck = black_hole()
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        refused_port = free.getsockname()[1]
    cases = {
        "refused": {"broker": f"mqtt://127.0.0.1:{refused_port}"},
        "black_hole": {"broker": f"mqtt://127.0.0.1:{listener.getsockname()[1]}"},
        "slow_dns": {"broker": f"mqtt://{SLOW_NAME}:{plain_broker.port}", "discovery": False},
        "tls_handshake": {
            "broker": f"mqtts://127.0.0.1:{tls_broker.port}",
            "ca": str(certificate),
            "discovery": False,
        },
    }
    found = {}
    try:
        for name, mqtt in cases.items():
            baseline = lateness(seconds, {}, app)
            found[name] = {
                **lateness(seconds, mqtt, app),
                "baseline_max_lateness_us": baseline["max_lateness_us"],
            }
    finally:
        tls_broker.kill()
        plain_broker.kill()
        for sock in (*stuck, listener):
            sock.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="commands timed")
    parser.add_argument("--seconds", type=float, default=7.0, help="per loop-timing case")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        where = Path(folder)
        for sub in ("plain", "plain2", "tls"):
            (where / sub).mkdir()
        figures = round_trip(where, options.count)
        cases = stalls(where, options.seconds)
    figures["reconnect_max_lateness_us"] = max(case["max_lateness_us"] for case in cases.values())
    figures["reconnect_worst_bridge_call_us"] = max(
        case["bridge_worst_call_us"] for case in cases.values()
    )
    for name, case in cases.items():  # flat, numbers only: bench/run.py lists each key
        for key, value in case.items():
            if key != "connected":
                figures[f"{name}_{key}"] = value
        figures[f"{name}_connected"] = int(case["connected"])
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
