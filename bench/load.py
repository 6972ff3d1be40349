"""The load and the clients, each a process on the load CPU: wrk, the lock-step client
(bench/client.py), the push client (bench/push.py); and a single request's JSON."""

from __future__ import annotations

import http.client
import json
import re
import sys
from pathlib import Path
from typing import Optional

from tools import BENCH, find_tool, run_quiet

LOAD_CPU = "1"
UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}


def wrk(
    port: int, target: str, connections: int, duration: float, script: Optional[Path] = None
) -> dict:
    """One `wrk -t1` run on the load CPU (with the Lua `script` if given): "rps" (2xx and
    3xx replies per second: wrk's rate less its non-2xx/3xx share), "requests", "p50"
    and "p99" (µs), "bad" (non-2xx/3xx replies) and "errors" (what went wrong, or "")."""
    url = f"http://127.0.0.1:{port}{target}"
    command = ["taskset", "-c", LOAD_CPU, find_tool("wrk") or "wrk", "-t1"]
    command += [f"-c{connections}", f"-d{duration:g}s", "--latency"]
    command += ["-s", str(script)] if script else []
    done = run_quiet([*command, url], timeout=duration + 30)
    out = done.stdout
    result: dict = {"errors": "", "bad": 0}
    if match := re.search(r"Requests/sec:\s+([\d.]+)", out):
        result["rps"] = float(match.group(1))
    if match := re.search(r"(\d+) requests in", out):
        result["requests"] = int(match.group(1))
    for pct in ("50", "99"):
        if match := re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M):
            result[f"p{pct}"] = float(match.group(1)) * UNITS[match.group(2)]
    problems = []
    if match := re.search(r"Socket errors: (.*)", out):
        problems.append(f"socket errors: {match.group(1).strip()}")
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        result["bad"] = int(match.group(1))
        problems.append(f"{match.group(1)} non-2xx/3xx responses")
    result["errors"] = "; ".join(problems)
    if "rps" not in result or "requests" not in result:
        problem = " ".join((out + done.stderr).split())[-200:]
        raise RuntimeError(f"wrk gave no figures (exit {done.returncode}): {problem}")
    if result["bad"]:  # an error reply is not a served request
        result["rps"] *= max(0, result["requests"] - result["bad"]) / max(1, result["requests"])
    return result


def client_json(script: str, *args: str, timeout: float = 60) -> dict:
    """Run bench/`script` with `args` on the load CPU; its last line of output, as JSON."""
    command = ["taskset", "-c", LOAD_CPU, sys.executable, str(BENCH / script), *args]
    done = run_quiet(command, timeout=timeout)
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"{script} failed: {done.stderr.strip()[-300:]}") from None
    if "error" in result:
        raise RuntimeError(result["error"])
    return result


def round_trips(port: int, target: str, count: int) -> dict:
    """The lock-step client's figures (µs): "median_us", "p99_us", ..."""
    args = ("rtt", "--port", str(port), "--target", target, "--count", str(count))
    return client_json("client.py", *args, timeout=60 + count * 0.01)


def push_latency(port: int, count: int) -> dict:
    """bench/push.py's write -> event latency (µs): "p50_us", "p99_us", "max_us"."""
    return client_json("push.py", "latency", "--port", str(port), "--count", str(count))


def request_json(port: int, target: str, method: str = "GET", body: Optional[bytes] = None) -> dict:
    """One request on a new connection; the 200 reply's JSON (RuntimeError otherwise)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, target, body=body)
        response = connection.getresponse()
        reply = response.read()
        if response.status != 200:
            raise RuntimeError(f"{method} {target}: {response.status} {reply[:200]!r}")
        return json.loads(reply)
    finally:
        connection.close()
