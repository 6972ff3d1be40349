"""How late a 1 kHz task runs in httap, idle and under `wrk -t1 -c10` on a 1 KiB file.

    python bench/lateness_demo.py [--seconds 10]

Starts `httap serve --app bench/lateness_demo.py` pinned to CPU 0 (this file is also
the app), and wrk pinned to CPU 1. The figures are the ones the loop itself records
for `GET /?stats` (each deadline's lateness, the skipped ones' included), kept for the
whole series rather than the stats' sliding window. Each series runs in both loop modes.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import deque
from itertools import islice
from pathlib import Path

INTERVAL = 0.001  # 1 kHz
KEEP = 1_000_000  # samples kept per series: bounded, and far more than one series needs


def setup(server) -> None:
    """The app: the 1 kHz task, and `GET /?demo/lateness`, which reports and restarts."""
    from httap.loop import summary_us

    series: deque[float] = deque(maxlen=KEEP)  # one per deadline, skipped ones too
    handle = server.every(INTERVAL, lambda: record(), "1 kHz")
    overruns = skipped = counted = 0

    def record() -> None:
        """The lateness of the deadlines this run served: its own and those it skipped."""
        nonlocal counted
        deadlines = handle.runs + handle.skipped
        series.extend(islice(reversed(handle.lateness), deadlines - counted))
        counted = deadlines

    @server.action("demo/lateness")
    def report(request) -> dict:
        nonlocal overruns, skipped
        figures = {
            "deadlines": len(series),
            "skipped": handle.skipped - skipped,
            "overruns": handle.overruns - overruns,
        }
        figures.update(summary_us(series))
        series.clear()
        overruns, skipped = handle.overruns, handle.skipped
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of each series")
    seconds = parser.parse_args().seconds
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as docs:
        Path(docs, "index.html").write_bytes(b"x" * 1024)
        server = subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, "-m", "httap", "serve",
             "--listen", "http://127.0.0.1:0", "--documents", docs, "--gpio", "sim",
             "--app", __file__],
            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            base = re.search(r"http://127\.0\.0\.1:\d+", server.stdout.readline()).group(0)
            for mode in ("sleep", "spin"):
                post = urllib.request.Request(
                    f"{base}/?loop", json.dumps({"mode": mode}).encode(), method="POST"
                )
                urllib.request.urlopen(post).read()
                for load in ("idle", "wrk -t1 -c10"):
                    fetch(f"{base}/?demo/lateness")  # restart the series
                    if load == "idle":
                        time.sleep(seconds)
                        extra = ""
                    else:
                        extra = wrk(f"{base}/index.html", seconds)
                    figures = fetch(f"{base}/?demo/lateness")
                    print(f"{mode:5} {load:13} {json.dumps(figures)} {extra}", flush=True)
        finally:
            server.terminate()
            server.wait(15)


def fetch(url: str) -> dict:
    with urllib.request.urlopen(url) as reply:
        return json.load(reply)


def wrk(url: str, seconds: int) -> str:
    """Run wrk on CPU 1; return its requests per second."""
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", "-c10", f"-d{seconds}s", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return f"wrk: {match.group(1) if match else '?'} req/s"


if __name__ == "__main__":
    main()
