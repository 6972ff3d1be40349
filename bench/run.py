"""`make bench`: httap against nginx, uvicorn, aiohttp, tornado and http.server.

Every server starts fresh on 127.0.0.1 (a free port the OS picks), pinned to CPU 0 with
`taskset -c 0` and a raised RLIMIT_NOFILE (`prlimit`); the load (wrk -t1, the lock-step
client, the idle connections) runs on CPU 1. Each server serves the same two targets:
`/index.html` (bench/docs/index.html, 1,024 bytes) and `/?gpio/4` (a tiny JSON reply;
for httap the real read of a simulated pin through the HTTaP manager).

    python bench/run.py [--quick] [--output FILE] [--only NAME,...]

httap alone also gets its push figures (bench/push.py): a write's latency to its event
at a subscriber of `GET /?events`, idle and under wrk, and what 100 idle subscribers cost.

The first run installs nginx-light and wrk with apt-get when they are missing, and the
peers in bench/.venv from bench/requirements.txt. A full run writes bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import http.client
import json
import os
import platform
import pwd
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import client  # noqa: E402

VENV = BENCH / ".venv"
PEER_PYTHON = VENV / "bin" / "python"
REQUIREMENTS = BENCH / "requirements.txt"
DOCS = BENCH / "docs"
PEERS = BENCH / "peers"
SERVER_CPU = "0"
LOAD_CPU = "1"
NOFILE = 16384  # descriptors for the servers and for this process (idle connections)
STATIC = "/index.html"
GPIO = "/?gpio/4"
ENDPOINTS = (("static", STATIC), ("gpio", GPIO))
CONCURRENCY = (1, 10, 100)
START_TIMEOUT = 20.0  # seconds a server gets to open its port
STOP_TIMEOUT = 5.0  # seconds a server gets to exit on SIGTERM before SIGKILL
PEER_PACKAGES = ("uvicorn", "httptools", "uvloop", "aiohttp", "tornado")


@dataclass
class Mode:
    name: str
    duration: int  # seconds of each wrk run
    warmup: int  # seconds of wrk warm-up per target before the measured runs (wrk: whole s)
    rtt_count: int  # lock-step round trips per endpoint
    idle_conns: int  # idle kept-alive connections
    idle_tick: float  # seconds the 1 kHz task is measured without load
    repeats: int  # wrk runs per figure (and 1 kHz runs); the figure is the median run


QUICK = Mode("quick", 2, warmup=1, rtt_count=2_000, idle_conns=300, idle_tick=1.0, repeats=1)
FULL = Mode("full", 5, warmup=2, rtt_count=10_000, idle_conns=1_000, idle_tick=2.0, repeats=3)
OTHER_LIMIT = 0.10  # other processes using this share of a CPU during a step get a note
QUIET_WAIT = 30.0  # seconds to wait, before a server starts, for other processes to calm down


# How a server is started: for most figures; for the idle connections; with the 1 kHz task.
# and for the push figures (an output pin to write, room for the subscribers).
MAIN, CONNS, TICK, PUSH = "main", "conns", "tick", "push"
SUBSCRIBERS = 100  # idle subscribers whose cost is measured


class StartFailed(Exception):
    """A server did not open its port."""


# -- setting up: Debian's nginx and wrk, the peers' venv ------------------------------


def run_quiet(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


def find_tool(name: str) -> Optional[str]:
    return shutil.which(name) or next(
        (path for path in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(path, os.X_OK)),
        None,
    )


def ensure_tools() -> None:
    """apt-get install nginx-light wrk when either is missing (apt-get update on failure)."""
    if find_tool("nginx") and find_tool("wrk"):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*sudo, "apt-get", "install", "-y", "-q", "nginx-light", "wrk"]
    # Debian starts a freshly installed nginx on port 80 of every address; a policy-rc.d
    # that answers 101 keeps it stopped (only for the install, only if there is none).
    policy = Path("/usr/sbin/policy-rc.d")
    own_policy = os.geteuid() == 0 and not policy.exists()
    if own_policy:
        policy.write_text("#!/bin/sh\n# written by httap's bench/run.py for apt-get\nexit 101\n")
        policy.chmod(0o755)
    try:
        print("installing nginx-light and wrk:", " ".join(install), flush=True)
        if subprocess.run(install, env=env).returncode != 0:
            subprocess.run([*sudo, "apt-get", "update", "-q"], env=env, check=True)
            subprocess.run(install, env=env, check=True)
    finally:
        if own_policy:
            policy.unlink()
    if not (find_tool("nginx") and find_tool("wrk")):
        sys.exit("bench: nginx or wrk is still missing after apt-get install")


def ensure_venv() -> None:
    """bench/.venv with bench/requirements.txt, reinstalled when the file changes."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = VENV / ".installed"
    if stamp.exists() and stamp.read_text() == digest and PEER_PYTHON.exists():
        return
    print("installing the peers in bench/.venv from bench/requirements.txt", flush=True)
    if not PEER_PYTHON.exists():
        base = getattr(sys, "_base_executable", None) or sys.executable
        subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    pip = [str(PEER_PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(digest)


def compile_httap() -> None:
    """Write httap's bytecode, as an install does (the peers in bench/.venv have theirs):
    without it every start compiles the sources in memory, which shows in RSS. This runs
    even where PYTHONDONTWRITEBYTECODE is set."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(
        [httap_python(), "-m", "compileall", "-q", str(ROOT / "httap"), str(ROOT / "gpio")],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def httap_python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


# -- processes: start, wait for the port, measure, kill the group ----------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def group_stats(pgid: int) -> tuple[int, float, int]:
    """(VmRSS KiB, utime+stime seconds, processes) summed over a process group."""
    ticks = os.sysconf("SC_CLK_TCK")
    rss = cpu = count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            with open(f"/proc/{entry}/status") as file:
                for line in file:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process went away between the two reads
        cpu += int(fields[11]) + int(fields[12])
        count += 1
    return rss, cpu / ticks, count


class Running:
    """A server started in its own process group; `with` kills the whole group."""

    def __init__(self, spec: Spec, workdir: Path, variant: str = MAIN) -> None:
        self.name = spec.name
        self.port = free_port()
        self.log_path = workdir / f"{spec.name}.log"
        limits = ["prlimit", f"--nofile={NOFILE}:{NOFILE}", "taskset", "-c", SERVER_CPU]
        self.command = [*limits, *spec.argv(workdir, self.port, variant)]
        self.cwd = spec.cwd
        self.process: Optional[subprocess.Popen] = None

    def __enter__(self) -> Running:
        log = open(self.log_path, "w")
        try:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        try:
            self._wait_for_port()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_port(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StartFailed(f"exited with status {self.process.returncode}: {self.log()}")
            if port_open(self.port):
                return
            time.sleep(0.05)
        raise StartFailed(f"port {self.port} not open after {START_TIMEOUT:g} s: {self.log()}")

    def log(self, lines: int = 5) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return ""
        return " | ".join(tail) or "(no output)"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stats(self) -> tuple[int, float, int]:
        return group_stats(self.process.pid)

    def stop(self) -> None:
        if self.process is None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, STOP_TIMEOUT)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(wait)
            except subprocess.TimeoutExpired:
                continue
            # The leader is gone; make sure nothing else of its group (nginx's worker) stays.
            if group_stats(self.process.pid)[2] == 0:
                break
            time.sleep(0.2)
        self.process = None

    def __exit__(self, *exc) -> None:
        self.stop()


# -- the servers ---------------------------------------------------------------------


@dataclass
class Spec:
    name: str
    argv: Callable[[Path, int, str], list[str]]  # (workdir, port, variant) -> command
    cwd: Path
    static_note: str
    lateness_path: Optional[str] = None  # where the 1 kHz task's figures are read
    ticker_note: str = ""


def httap_argv(workdir: Path, port: int, variant: str) -> list[str]:
    configs = {CONNS: "web-1000.json5", PUSH: "web-push.json5"}
    config = BENCH / configs.get(variant, "web.json5")
    argv = [httap_python(), "-m", "httap", "serve", "--config", str(config)]
    argv += ["--listen", f"http://127.0.0.1:{port}"]
    return argv + (["--app", str(BENCH / "app.py")] if variant == TICK else [])


NGINX_CONF = """\
# written by bench/run.py: Debian's defaults where they matter (sendfile, tcp_nopush)
daemon off;
master_process on;
worker_processes 1;
{user}pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
worker_rlimit_nofile {nofile};
events {{ worker_connections 4096; }}
http {{
    types {{ text/html html; application/json json; }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 200s;
    keepalive_requests 1000000;
    client_body_temp_path {work}/body;
    server {{
        listen 127.0.0.1:{port};
        root {docs};
        location = / {{
            default_type application/json;
            if ($args = "gpio/4") {{ return 200 '{{"gpio":4,"mode":"in","value":0}}'; }}
            return 404;
        }}
    }}
}}
"""


def nginx_argv(workdir: Path, port: int, variant: str) -> list[str]:
    user = ""
    if os.geteuid() == 0:  # the worker reads the docs as their owner, wherever the clone is
        user = f"user {pwd.getpwuid(DOCS.stat().st_uid).pw_name};\n"
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, work=workdir, nofile=NOFILE, docs=DOCS, port=port))
    nginx = find_tool("nginx") or "nginx"
    return [nginx, "-p", str(workdir), "-e", str(workdir / "nginx-error.log"), "-c", str(conf)]


def peer_argv(script: str) -> Callable[[Path, int, bool], list[str]]:
    def argv(workdir: Path, port: int, variant: str) -> list[str]:
        command = [str(PEER_PYTHON), str(PEERS / script), "--port", str(port), "--docs", str(DOCS)]
        return command + (["--tick"] if variant == TICK else [])

    return argv


SERVERS = [
    Spec(
        "httap",
        httap_argv,
        ROOT,
        "its static domain: a file up to 256 KiB is kept in memory with its response"
        " built once (ETag, Last-Modified; 304 and Range on request); the target is"
        " resolved and the file stat'ed again after 1 s",
        lateness_path="/?bench/lateness",
        ticker_note="`server.every(0.001, tick)` on the poll loop (bench/app.py)",
    ),
    Spec("nginx", nginx_argv, BENCH, "`root` with `sendfile on; tcp_nopush on;` (1 worker)"),
    Spec(
        "uvicorn",
        peer_argv("uvicorn_app.py"),
        PEERS,
        "raw ASGI app (httptools, uvloop): read once at start, served from memory with"
        " Content-Type, ETag and Last-Modified computed once",
    ),
    Spec(
        "aiohttp",
        peer_argv("aiohttp_app.py"),
        PEERS,
        "`add_static('/', docs)` (FileResponse: ETag, Last-Modified, Range, sendfile)",
        lateness_path="/bench/lateness",
        ticker_note="an asyncio task awaiting `asyncio.sleep` to absolute deadlines",
    ),
    Spec(
        "tornado",
        peer_argv("tornado_app.py"),
        PEERS,
        "`StaticFileHandler` over the docs dir (opens the file per request; ETag from"
        " a cached SHA-512 of the file, Last-Modified, Range)",
    ),
    Spec(
        "http.server",
        peer_argv("httpserver_app.py"),
        PEERS,
        "`SimpleHTTPRequestHandler` over the docs dir (Last-Modified; a thread per"
        " connection; TCP_NODELAY set on accepted sockets)",
        lateness_path="/bench/lateness",
        ticker_note="a thread sleeping to absolute deadlines (`time.sleep(deadline - now)`)",
    ),
]


def cpu_ticks() -> list[tuple[int, int]]:
    """(busy, idle) clock ticks of each CPU so far, from /proc/stat."""
    with open("/proc/stat") as file:
        rows = [line.split() for line in file if re.match(r"cpu\d", line)]
    # user nice system idle iowait irq softirq steal; idle time is idle + iowait
    return [
        (sum(map(int, row[1:4])) + sum(map(int, row[6:9])), int(row[4]) + int(row[5]))
        for row in rows
    ]


def busy_cpus(seconds: float = 1.0) -> list[float]:
    """How busy each CPU is (0..1) over `seconds`: other work skews the figures."""
    first = cpu_ticks()
    time.sleep(seconds)
    return [
        (busy2 - busy1) / max(1, busy2 - busy1 + idle2 - idle1)
        for (busy1, idle1), (busy2, idle2) in zip(first, cpu_ticks())
    ]


def others_cpu(server_pgid: int) -> float:
    """CPU seconds used so far by every process that is neither ours nor the server's.

    Ours is this process group (make, this script, wrk, the clients). A process's reaped
    children count in it (cutime, cstime), so short-lived ones are seen through their parent.
    """
    own = os.getpgrp()
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in (own, server_pgid):
            continue
        total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


class OtherWork:
    """How much CPU other processes used during a step, as a share of one CPU."""

    def __init__(self, server: Running) -> None:
        self.pgid = server.process.pid
        self.start = (time.monotonic(), others_cpu(self.pgid))

    def share(self) -> float:
        wall, cpu = self.start
        return max(0.0, others_cpu(self.pgid) - cpu) / max(1e-9, time.monotonic() - wall)


def wait_quiet(results: Results, name: str) -> None:
    """Before a server starts: wait (at most QUIET_WAIT s) for other processes to calm down."""
    deadline = time.monotonic() + QUIET_WAIT
    told = False
    while True:
        start, cpu = time.monotonic(), others_cpu(-1)
        time.sleep(1.0)
        share = (others_cpu(-1) - cpu) / (time.monotonic() - start)
        if share < OTHER_LIMIT:
            return
        if time.monotonic() >= deadline:
            note = f"started while other processes used {share:.0%} of a CPU"
            results.note(name, f"{note} (after waiting {QUIET_WAIT:g} s for them)")
            return
        if not told:
            print(
                f"bench: other processes use {share:.0%} of a CPU; waiting up to"
                f" {QUIET_WAIT:g} s before starting {name}",
                flush=True,
            )
            told = True


def check_quiet(results: Results, when: str) -> None:
    busy = busy_cpus()
    shown = ", ".join(f"CPU {cpu} {load:.0%}" for cpu, load in enumerate(busy))
    print(f"bench: machine load {when}: {shown}", flush=True)
    if max(busy) >= OTHER_LIMIT:
        top = run_quiet(["ps", "-eo", "pid,pcpu,args", "--sort=-pcpu"]).stdout.splitlines()
        others = "; ".join(" ".join(line.split())[:80] for line in top[1:4])
        results.note("machine", f"busy {when} ({shown}); top processes: {others}")


# -- measurements ---------------------------------------------------------------------

UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}


def wrk(port: int, target: str, connections: int, duration: float) -> dict:
    """One wrk run on CPU 1: req/s, requests, latency p50/p99 (µs), errors."""
    url = f"http://127.0.0.1:{port}{target}"
    command = ["taskset", "-c", LOAD_CPU, find_tool("wrk") or "wrk", "-t1"]
    command += [f"-c{connections}", f"-d{duration:g}s", "--latency", url]
    done = run_quiet(command, timeout=duration + 30)
    out = done.stdout
    result: dict = {"errors": ""}
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
        problems.append(f"{match.group(1)} non-2xx/3xx responses")
    result["errors"] = "; ".join(problems)
    if "rps" not in result or "requests" not in result:
        problem = " ".join((out + done.stderr).split())[-200:]
        raise RuntimeError(f"wrk gave no figures (exit {done.returncode}): {problem}")
    return result


def round_trips(port: int, target: str, count: int) -> dict:
    """The lock-step client (bench/client.py) in its own process on CPU 1."""
    command = ["taskset", "-c", LOAD_CPU, sys.executable, str(BENCH / "client.py"), "rtt"]
    command += ["--port", str(port), "--target", target, "--count", str(count)]
    done = run_quiet(command, timeout=60 + count * 0.01)
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"the client failed: {done.stderr.strip()[-300:]}") from None
    if "error" in result:
        raise RuntimeError(result["error"])
    return result


def push_latency(port: int, count: int) -> dict:
    """bench/push.py's write -> event latency, in its own process on CPU 1."""
    command = ["taskset", "-c", LOAD_CPU, sys.executable, str(BENCH / "push.py"), "latency"]
    done = run_quiet([*command, "--port", str(port), "--count", str(count)], timeout=60)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"the push client failed: {done.stderr.strip()[-300:]}") from None


def get_json(port: int, target: str) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {target}: {response.status} {body[:200]!r}")
        return json.loads(body)
    finally:
        connection.close()


class Progress:
    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.started = time.monotonic()

    def step(self, what: str) -> None:
        self.done += 1
        print(f"[{self.done}/{self.total}] {what} ...", end=" ", flush=True)

    def result(self, text: str) -> None:
        print(text, flush=True)

    def skip(self, count: int, why: str) -> None:
        if count > 0:
            print(f"[{self.done + 1}-{self.done + count}/{self.total}] skipped: {why}", flush=True)
        self.done += count


@dataclass
class Results:
    figures: dict = field(default_factory=dict)  # server -> key -> value
    spread: dict = field(default_factory=dict)  # server -> key -> (lowest, highest) of runs
    notes: list = field(default_factory=list)  # what went wrong or looked odd

    def set(self, server: str, key: str, value: float) -> None:
        self.figures.setdefault(server, {})[key] = value

    def get(self, server: str, key: str) -> Optional[float]:
        return self.figures.get(server, {}).get(key)

    def note(self, server: str, text: str, echo: bool = True) -> None:
        text = " ".join(text.split())[:300]  # one line, whatever wrk or a log said
        self.notes.append(f"{server}: {text}")
        if echo:
            print(f"  ! {server}: {text}", flush=True)


MAIN_STEPS = 1 + len(ENDPOINTS) + len(ENDPOINTS) * len(CONCURRENCY)


def report_result(
    progress: Progress, results: Results, name: str, label: str, text: str, other: float
) -> None:
    """A figure's progress line, and a note in RESULTS.md when other work disturbed it."""
    if other >= OTHER_LIMIT:
        text += f" [other processes: {other:.0%} of a CPU]"
        results.note(name, f"{label}: other processes used {other:.0%} of a CPU", echo=False)
    progress.result(text)


@contextmanager
def reported(progress: Progress, results: Results, name: str, label: str) -> Iterator[None]:
    """One server's step: a failure is a progress line and a note, never the end of the run."""
    try:
        yield
    except StartFailed as err:
        progress.result("failed to start")
        results.note(name, f"{label}: failed to start: {err}")
    except Exception as err:
        progress.result("failed")
        results.note(name, f"{label}: {type(err).__name__}: {err}")


def measure_server(
    spec: Spec, mode: Mode, progress: Progress, results: Results, workdir: Path
) -> None:
    """Start `spec` fresh: RSS idle, the round trips and the wrk figures; kill it after."""
    name = spec.name
    left = MAIN_STEPS
    wait_quiet(results, name)
    with reported(progress, results, name, "start"):
        progress.step(f"{name} start, RSS idle")
        left -= 1
        with Running(spec, workdir) as server:
            time.sleep(0.5)
            rss, _, processes = server.stats()
            results.set(name, "rss_idle", rss / 1024)
            progress.result(f"port {server.port}, {rss / 1024:.1f} MiB in {processes} process(es)")

            def measure(label: str, action: Callable[[], str]) -> None:
                nonlocal left
                progress.step(f"{name} {label}")
                left -= 1
                if not server.alive():
                    progress.result("server gone")
                    return
                with reported(progress, results, name, label):
                    watch = OtherWork(server)
                    text = action()
                    report_result(progress, results, name, label, text, watch.share())

            for endpoint, target in ENDPOINTS:

                def rtt(endpoint: str = endpoint, target: str = target) -> str:
                    got = round_trips(server.port, target, mode.rtt_count)
                    results.set(name, f"rtt_{endpoint}_median", got["median_us"])
                    results.set(name, f"rtt_{endpoint}_p99", got["p99_us"])
                    return f"median {got['median_us']:.1f} µs, p99 {got['p99_us']:.1f} µs"

                measure(f"lock-step {target} x{mode.rtt_count:,}", rtt)

            for endpoint, target in ENDPOINTS:
                try:
                    wrk(server.port, target, 10, mode.warmup)
                except Exception as err:
                    results.note(name, f"warm-up {target}: {err}")
                for connections in CONCURRENCY:

                    def load(endpoint=endpoint, target=target, connections=connections) -> str:
                        runs, cpu, requests = [], 0.0, 0
                        for _ in range(mode.repeats):
                            _, cpu_before, _ = server.stats()
                            runs.append(wrk(server.port, target, connections, mode.duration))
                            cpu += server.stats()[1] - cpu_before
                            requests += runs[-1]["requests"]
                            if runs[-1]["errors"]:
                                note = f"{target} c={connections}: {runs[-1]['errors']}"
                                results.note(name, note)
                        got = sorted(runs, key=lambda run: run["rps"])[len(runs) // 2]
                        key = f"{endpoint}_rps_{connections}"
                        results.set(name, key, got["rps"])
                        text = f"{got['rps']:,.0f} req/s"
                        if len(runs) > 1:
                            spread = (min(r["rps"] for r in runs), max(r["rps"] for r in runs))
                            results.spread.setdefault(name, {})[key] = spread
                            text += f" (median; {spread[0]:,.0f} to {spread[1]:,.0f})"
                        if connections == 10:
                            per_request = cpu * 1e6 / max(1, requests)
                            results.set(name, f"{endpoint}_p50", got.get("p50"))
                            results.set(name, f"{endpoint}_p99", got.get("p99"))
                            results.set(name, f"cpu_{endpoint}", per_request)
                            text += f", p50 {got.get('p50', 0):.0f} µs, p99"
                            text += f" {got.get('p99', 0):.0f} µs, {per_request:.1f} CPU µs/req"
                        return text

                    runs = f"{mode.duration} s"
                    if mode.repeats > 1:
                        runs = f"{mode.repeats} x {runs}"
                    measure(f"{target} c={connections}, {runs}", load)
            if not server.alive():
                results.note(name, f"the server died: {server.log()}")
    progress.skip(left, f"{name} not measured")


def measure_connections(
    spec: Spec, mode: Mode, progress: Progress, results: Results, workdir: Path
) -> None:
    """A fresh start: RSS after one request per target, then with the idle connections."""
    name = spec.name
    wait_quiet(results, name)
    progress.step(f"{name} {mode.idle_conns:,} idle kept-alive connections, fresh start")
    label = "idle connections"
    with reported(progress, results, name, label), Running(spec, workdir, CONNS) as server:
        watch = OtherWork(server)
        time.sleep(0.5)
        for _, target in ENDPOINTS:  # whatever is loaded lazily is loaded now
            client.open_idle(server.port, target, 1)[0].close()
        time.sleep(0.3)
        before = server.stats()[0]
        sockets = client.open_idle(server.port, GPIO, mode.idle_conns)
        try:
            time.sleep(0.5)
            after = server.stats()[0]
        finally:
            for sock in sockets:
                sock.close()
        per_conn = (after - before) / mode.idle_conns
        results.set(name, "conn_kib", per_conn)
        text = f"{before / 1024:.1f} -> {after / 1024:.1f} MiB, {per_conn:.2f} KiB each"
        report_result(progress, results, name, label, text, watch.share())


def measure_lateness(
    spec: Spec, mode: Mode, progress: Progress, results: Results, workdir: Path
) -> None:
    """A fresh start with the 1 kHz task: its lateness idle, then under wrk -c10 static."""
    name = spec.name
    wait_quiet(results, name)
    runs = f"{mode.repeats} x {mode.duration} s" if mode.repeats > 1 else f"{mode.duration} s"
    progress.step(f"{name} 1 kHz task, idle {mode.idle_tick:g} s, then static c=10 {runs}")
    with reported(progress, results, name, "1 kHz run"), Running(spec, workdir, TICK) as server:
        path = spec.lateness_path
        watch = OtherWork(server)
        time.sleep(0.5)
        get_json(server.port, path)  # start a new series
        time.sleep(mode.idle_tick)
        idle = get_json(server.port, path)
        wrk(server.port, STATIC, 10, mode.warmup)
        loaded = []
        for _ in range(mode.repeats):
            get_json(server.port, path)
            got = wrk(server.port, STATIC, 10, mode.duration)
            loaded.append({**get_json(server.port, path), "rps": got["rps"]})
            if got["errors"]:
                results.note(name, f"1 kHz run: {got['errors']}")
        other = watch.share()
        loaded.sort(key=lambda run: run["p99_us"])
        median = loaded[len(loaded) // 2]
        for key in ("p50", "p99", "max"):
            results.set(name, f"late_{key}", median[f"{key}_us"])
        results.set(name, "late_missed", median["missed"])
        results.set(name, "late_idle_p99", idle["p99_us"])
        results.set(name, "late_idle_max", idle["max_us"])
        text = (
            f"idle p99 {idle['p99_us']:.0f} µs; loaded ({median['rps']:,.0f} req/s)"
            f" p50 {median['p50_us']:.0f}, p99 {median['p99_us']:.0f},"
            f" max {median['max_us']:.0f} µs, {median['missed']} ticks missed"
            f" of {median['ticks'] + median['missed']}"
        )
        if len(loaded) > 1:
            spread = (loaded[0]["p99_us"], loaded[-1]["p99_us"])
            results.spread.setdefault(name, {})["late_p99"] = spread
            text += f" (median run by p99; p99 {spread[0]:,.0f} to {spread[1]:,.0f})"
        report_result(progress, results, name, "1 kHz run", text, other)


def measure_push(
    spec: Spec, mode: Mode, progress: Progress, results: Results, workdir: Path
) -> None:
    """httap's event stream, on a fresh start: a write's latency to its event at a
    subscriber, idle and under wrk -c10 on static; then SUBSCRIBERS idle subscribers
    (held by another process): the server's RSS and CPU with them, and the latency."""
    name = spec.name
    count = mode.rtt_count // 2
    wait_quiet(results, name)
    progress.step(f"{name} push: write -> event x{count:,}, idle, static c=10, {SUBSCRIBERS} idle")
    with reported(progress, results, name, "push"), Running(spec, workdir, PUSH) as server:
        watch = OtherWork(server)
        time.sleep(0.5)
        idle = push_latency(server.port, count)
        loaded: list[dict] = []
        load = threading.Thread(
            target=lambda: loaded.append(wrk(server.port, STATIC, 10, mode.duration))
        )
        load.start()
        time.sleep(0.5)  # wrk's connections are busy
        under = push_latency(server.port, count)
        load.join()
        rss = server.stats()[0]
        hold = ["taskset", "-c", LOAD_CPU, sys.executable, str(BENCH / "push.py"), "hold"]
        holder = subprocess.Popen(
            [*hold, "--port", str(server.port), "--count", str(SUBSCRIBERS)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            if holder.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{SUBSCRIBERS} subscribers could not be opened")
            time.sleep(0.5)
            rss_held, cpu_before, _ = server.stats()
            time.sleep(mode.idle_tick)
            cpu_held = (server.stats()[1] - cpu_before) / mode.idle_tick
            many = push_latency(server.port, count)
        finally:
            holder.kill()
            holder.wait()
        per_subscriber = (rss_held - rss) / SUBSCRIBERS
        figures = {
            "push_p50": idle["p50_us"],
            "push_p99": idle["p99_us"],
            "push_load_p50": under["p50_us"],
            "push_load_p99": under["p99_us"],
            "push_subscriber_kib": per_subscriber,
            "push_idle_cpu": cpu_held * 100,
            "push_many_p50": many["p50_us"],
            "push_many_p99": many["p99_us"],
        }
        for key, value in figures.items():
            results.set(name, key, value)
        text = (
            f"idle p50 {idle['p50_us']:.0f}, p99 {idle['p99_us']:.0f} µs; under static c=10"
            f" ({loaded[0]['rps'] if loaded else 0:,.0f} req/s) p50 {under['p50_us']:.0f},"
            f" p99 {under['p99_us']:.0f} µs; {SUBSCRIBERS} idle subscribers:"
            f" {per_subscriber:.1f} KiB each, {cpu_held * 100:.1f} % CPU, p50"
            f" {many['p50_us']:.0f}, p99 {many['p99_us']:.0f} µs"
        )
        report_result(progress, results, name, "push", text, watch.share())


# -- the report -------------------------------------------------------------------------

# key, label, format of the value
FIGURES = [
    ("static_rps_1", "static req/s, c=1", "{:,.0f}"),
    ("static_rps_10", "static req/s, c=10", "{:,.0f}"),
    ("static_rps_100", "static req/s, c=100", "{:,.0f}"),
    ("gpio_rps_1", "/?gpio/4 req/s, c=1", "{:,.0f}"),
    ("gpio_rps_10", "/?gpio/4 req/s, c=10", "{:,.0f}"),
    ("gpio_rps_100", "/?gpio/4 req/s, c=100", "{:,.0f}"),
    ("static_p50", "static wrk p50 µs, c=10", "{:,.0f}"),
    ("static_p99", "static wrk p99 µs, c=10", "{:,.0f}"),
    ("gpio_p50", "/?gpio/4 wrk p50 µs, c=10", "{:,.0f}"),
    ("gpio_p99", "/?gpio/4 wrk p99 µs, c=10", "{:,.0f}"),
    ("rtt_static_median", "lock-step static median µs", "{:,.1f}"),
    ("rtt_static_p99", "lock-step static p99 µs", "{:,.1f}"),
    ("rtt_gpio_median", "lock-step /?gpio/4 median µs", "{:,.1f}"),
    ("rtt_gpio_p99", "lock-step /?gpio/4 p99 µs", "{:,.1f}"),
    ("rss_idle", "RSS idle MiB", "{:,.1f}"),
    ("conn_kib", "KiB per idle connection", "{:,.2f}"),
    ("cpu_static", "CPU µs/req, static c=10", "{:,.1f}"),
    ("cpu_gpio", "CPU µs/req, /?gpio/4 c=10", "{:,.1f}"),
    ("late_idle_p99", "1 kHz idle: p99 µs", "{:,.0f}"),
    ("late_idle_max", "1 kHz idle: max µs", "{:,.0f}"),
    ("late_p50", "1 kHz under load: p50 µs", "{:,.0f}"),
    ("late_p99", "1 kHz under load: p99 µs", "{:,.0f}"),
    ("late_max", "1 kHz under load: max µs", "{:,.0f}"),
    ("late_missed", "1 kHz under load: ticks missed", "{:,.0f}"),
    ("push_p50", "push, write -> event idle: p50 µs", "{:,.0f}"),
    ("push_p99", "push, write -> event idle: p99 µs", "{:,.0f}"),
    ("push_load_p50", "push under static c=10: p50 µs", "{:,.0f}"),
    ("push_load_p99", "push under static c=10: p99 µs", "{:,.0f}"),
    ("push_subscriber_kib", f"push: KiB per idle subscriber ({SUBSCRIBERS})", "{:,.1f}"),
    ("push_idle_cpu", f"push: % CPU with {SUBSCRIBERS} idle subscribers", "{:,.1f}"),
    ("push_many_p50", f"push with {SUBSCRIBERS} subscribers: p50 µs", "{:,.0f}"),
    ("push_many_p99", f"push with {SUBSCRIBERS} subscribers: p99 µs", "{:,.0f}"),
]


def cell(results: Results, server: str, key: str, fmt: str) -> str:
    value = results.get(server, key)
    if value is None:
        return "-"
    text = fmt.format(value)
    base = results.get("httap", key)
    if server != "httap" and base and key != "late_missed":
        text += f" ({value / base:.2f}x)"
    return text


def spread_cell(results: Results, server: str, key: str, fmt: str) -> str:
    low, high = results.spread.get(server, {}).get(key, (None, None))
    return "-" if low is None else f"{fmt.format(low)} to {fmt.format(high)}"


def table(results: Results, markdown: bool, spread: bool = False) -> str:
    """The figures (or with `spread`, the lowest and highest of the repeated runs)."""
    names = [spec.name for spec in SERVERS]
    rows = [["" if not spread else "lowest to highest run", *names]]
    for key, label, fmt in FIGURES:
        if spread:
            row = [label, *[spread_cell(results, name, key, fmt) for name in names]]
        else:
            row = [label, *[cell(results, name, key, fmt) for name in names]]
        if any(value != "-" for value in row[1:]):
            rows.append(row)
    if len(rows) == 1:
        return ""
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|---" + "|---:" * len(names) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            text.ljust(width) if i == 0 else text.rjust(width)
            for i, (text, width) in enumerate(zip(row, widths))
        ).rstrip()
        for row in rows
    )


def targets(results: Results) -> list[tuple[str, str, Optional[bool]]]:
    """(target, measured, PASS True / MISS False / None when a figure is missing)."""
    get = results.get
    out = []

    def ratio(
        label: str, num: Optional[float], den: Optional[float], ok: Callable, unit: str
    ) -> None:
        if num is None or den is None or den == 0:
            out.append((label, "not measured", None))
        else:
            value = num / den
            out.append((label, f"{value:.2f}x {unit}", bool(ok(value))))

    def absolute(label: str, value: Optional[float], limit: float, unit: str) -> None:
        if value is None:
            out.append((label, "not measured", None))
        else:
            out.append((label, f"{value:,.1f} {unit}", value <= limit))

    ratio(
        "1 KiB static file, c=10: httap >= 1.0x nginx",
        get("httap", "static_rps_10"),
        get("nginx", "static_rps_10"),
        lambda r: r >= 1.0,
        "nginx",
    )
    ratio(
        "/?gpio/4, c=10: httap >= 2x uvicorn",
        get("httap", "gpio_rps_10"),
        get("uvicorn", "gpio_rps_10"),
        lambda r: r >= 2.0,
        "uvicorn",
    )
    for endpoint, target in ENDPOINTS:
        ratio(
            f"lock-step median round trip ({target}): httap <= 1.25x nginx",
            get("httap", f"rtt_{endpoint}_median"),
            get("nginx", f"rtt_{endpoint}_median"),
            lambda r: r <= 1.25,
            "nginx",
        )
    absolute("memory: RSS idle <= 16 MiB", get("httap", "rss_idle"), 16, "MiB")
    absolute("memory: <= 2 KiB per idle kept-alive connection", get("httap", "conn_kib"), 2, "KiB")
    absolute("1 kHz task under load: p99 lateness <= 250 µs", get("httap", "late_p99"), 250, "µs")
    absolute("1 kHz task under load: max lateness <= 2 ms", get("httap", "late_max"), 2000, "µs")
    absolute(
        "push under load: p99 write -> event <= 1 ms", get("httap", "push_load_p99"), 1000, "µs"
    )
    threaded, ours = get("http.server", "late_p99"), get("httap", "late_p99")
    ratio(
        "1 kHz task under load: p99 >= 10x better than the threaded http.server",
        threaded,
        ours,
        lambda r: r >= 10,
        "better",
    )
    return out


def verdict(ok: Optional[bool]) -> str:
    return "PASS" if ok else ("MISS" if ok is False else "n/a")


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": f"{platform.system()} {platform.release()}",
        "os": platform.freedesktop_os_release().get("PRETTY_NAME", "?")
        if hasattr(platform, "freedesktop_os_release")
        else "?",
    }


def httap_revision() -> str:
    """The commit of the httap under test, and whether its files differ from it."""
    head = run_quiet(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]).stdout.strip()
    if not head:
        return "not a git checkout"
    changed = run_quiet(["git", "-C", str(ROOT), "status", "--porcelain", "--", "httap", "gpio"])
    return f"git {head}" + (", with uncommitted changes" if changed.stdout.strip() else "")


def versions() -> dict:
    nginx = run_quiet([find_tool("nginx") or "nginx", "-v"])
    wrk_out = run_quiet([find_tool("wrk") or "wrk", "-v"])
    got = {
        "Python": platform.python_version(),
        "nginx": (nginx.stderr or nginx.stdout).strip().rpartition("nginx/")[2],
        "wrk": (wrk_out.stdout or wrk_out.stderr).strip().split(" [")[0].removeprefix("wrk "),
    }
    httap = run_quiet([httap_python(), "-c", "import httap; print(httap.__version__)"])
    got["httap"] = f"{httap.stdout.strip() or '?'} ({httap_revision()})"
    script = (
        "import importlib.metadata as m, json, platform; "
        f"print(json.dumps({{'peers Python': platform.python_version(), "
        f"**{{n: m.version(n) for n in {list(PEER_PACKAGES)!r}}}}}))"
    )
    peers = run_quiet([str(PEER_PYTHON), "-c", script])
    try:
        got.update(json.loads(peers.stdout))
    except ValueError:
        got["peers"] = f"unknown ({peers.stderr.strip()[-200:]})"
    return got


def report_text(results: Results) -> str:
    lines = ["", table(results, markdown=False), ""]
    if results.spread:
        lines += [table(results, markdown=False, spread=True), ""]
    lines.append("Targets:")
    for label, measured, ok in targets(results):
        lines.append(f"  {verdict(ok):4}  {label}: {measured}")
    if results.notes:
        lines += ["", "Notes:", *[f"  - {note}" for note in results.notes]]
    return "\n".join(lines)


def results_markdown(
    results: Results, mode: Mode, started: datetime.datetime, minutes: float, info: dict
) -> str:
    mach = machine()
    target_rows = "\n".join(
        f"| {label} | {measured} | **{verdict(ok)}** |" for label, measured, ok in targets(results)
    )
    statics = "\n".join(f"- **{spec.name}**: {spec.static_note}" for spec in SERVERS)
    tickers = "\n".join(
        f"- **{spec.name}**: {spec.ticker_note}" for spec in SERVERS if spec.lateness_path
    )
    commands = "\n".join(
        f"- {spec.name}: `{display_command(spec)}`"
        + (f"; idle connections: `{display_command(spec, CONNS)}`" if spec.name == "httap" else "")
        + (f"; 1 kHz task: `{display_command(spec, TICK)}`" if spec.lateness_path else "")
        + (f"; push: `{display_command(spec, PUSH)}`" if spec.name == "httap" else "")
        for spec in SERVERS
    )
    nginx_conf = NGINX_CONF.format(
        user="", work="TMP", nofile=NOFILE, docs="bench/docs", port="PORT"
    ).strip()
    notes = "\n".join(f"- {note}" for note in results.notes) or "- none"
    runs = f"{mode.duration} s"
    spread = ""
    if mode.repeats > 1:
        runs = f"{mode.repeats} runs of {mode.duration} s (the median run's figures)"
        spread = (
            "\nThe same figures' lowest and highest of the runs (req/s; 1 kHz p99: µs), which"
            " shows how much this machine moves from one run to the next:\n\n"
            + table(results, markdown=True, spread=True)
            + "\n"
        )
    return f"""# httap benchmark results

Written by `bench/run.py` from a {mode.name} run (`make bench{" QUICK=1" if mode is QUICK else ""}`)
that started {started:%Y-%m-%d %H:%M} UTC and took {minutes:.1f} minutes.
Every figure in one run, every server started fresh, back to back.

## Machine and versions

- {mach["nproc"]} CPUs: {mach["cpu"]}; {mach["kernel"]}; {mach["os"]}
- {", ".join(f"{name} {version}" for name, version in info.items())}

## Figures

Each cell is the value and, in brackets, its ratio to httap's (value / httap's value:
above 1 is more req/s, but also more µs, MiB or KiB). wrk: `-t1`, keep-alive,
{runs} per figure after a {mode.warmup:g} s warm-up per target; lock-step:
{mode.rtt_count:,} requests per target on one connection (after 200 not counted);
idle connections: {mode.idle_conns:,}.

{table(results, markdown=True)}
{spread}
## Targets

| target | measured | |
|---|---:|---|
{target_rows}

## Notes from this run

{notes}

## How it was measured

- Every server runs on 127.0.0.1 on a free port, started as
  `prlimit --nofile={NOFILE}:{NOFILE} taskset -c {SERVER_CPU} COMMAND`, in its own process
  group, waited for by polling its port, and killed (the whole group) after its figures.
  The load runs on CPU {LOAD_CPU}: `taskset -c {LOAD_CPU} wrk -t1 -cN -d{mode.duration}s --latency
  http://127.0.0.1:PORT/index.html` (and `/?gpio/4`), for N = 1, 10, 100.
- req/s and the latency p50/p99 are wrk's own figures (p50/p99 from the c=10 run);
  with several runs per figure, the run with the median req/s gives them.
- CPU µs per request: utime + stime of every process of the server
  (/proc/PID/stat, summed over its process group) before and after each c=10 run,
  over all runs, divided by the requests wrk reports for them.
- Lock-step round trip: `taskset -c {LOAD_CPU} python bench/client.py rtt --port PORT
  --target TARGET --count {mode.rtt_count}`: one kept-alive socket with TCP_NODELAY, one
  request at a time, each full response read before the next send; the client is
  Python, so its own time (some µs) is in every server's figure alike.
- RSS idle: VmRSS of every process of the server (nginx: master and worker) 0.5 s
  after its port opened, before any request. Per idle connection: each server is
  started again (httap with bench/web-1000.json5: `limits.connections: 4096`, which
  makes it use poll() rather than select(); every other figure uses httap's default
  limits); RSS after one request to each target, then again after
  {mode.idle_conns:,} connections were opened, each having sent `GET /?gpio/4` and read
  the reply; the difference over the count.
- The 1 kHz task: each server that has one is started again with it. It records
  `now - deadline` against absolute deadlines (`start + n * 1 ms`, time.monotonic);
  a tick more than 1 ms late skips the ticks missed and keeps the phase, as httap's
  loop does (bench/lateness.py; the same code in every server). The figures are read
  over HTTP after {mode.idle_tick:g} s idle, and after each of {mode.repeats} `wrk -t1 -c10`
  run(s) of {mode.duration} s on /index.html (after a warm-up not counted); the table
  shows the run with the median p99. Missed ticks are not in the percentiles (the
  late tick that caused them is).
- Push (httap only, started again with bench/web-push.json5: an output GPIO 17 and
  `limits.subscribers: 128`): `taskset -c {LOAD_CPU} python bench/push.py latency --port
  PORT --count {mode.rtt_count // 2}` keeps one `GET /?events&types=gpio` stream and one
  writer, toggles GPIO 17 one write at a time and times each from the request's send to
  the whole event read at the subscriber; idle, then during a `wrk -t1 -c10` run on
  /index.html. Then `bench/push.py hold` opens {SUBSCRIBERS} streams from another
  process and reads them: the server's RSS before and after, its CPU over
  {mode.idle_tick:g} s (an open stream has the sampler read every input each
  `gpio.sample_interval`, as a long-poll does), and the latency again.
- "other processes": before each server starts, the harness waits (at most
  {QUIET_WAIT:g} s) until processes that are neither the harness (with wrk and its
  clients) nor a server use less than {OTHER_LIMIT:.0%} of a CPU; a step during which
  they used more is listed under the notes.
{tickers}

What each server does for `/index.html`:

{statics}

`/?gpio/4`: httap reads the simulated pin through its HTTaP manager (bench/web.json5,
`gpio.backend: "sim"`); every other server returns `{{"gpio":4,"mode":"in","value":0}}`
as application/json from a handler (nginx: `location = /` with `if ($args = "gpio/4")
{{ return 200 '...'; }}`). No server writes an access log.

## Commands

- `make bench` (full: this file) or `make bench QUICK=1` (about 2 minutes, prints only)
- `python bench/run.py [--quick] [--output FILE] [--only httap,nginx]`

Each server command below runs as
`prlimit --nofile={NOFILE}:{NOFILE} taskset -c {SERVER_CPU} COMMAND`
(paths relative to the repository):

{commands}

nginx.conf (TMP is a temporary directory; as root, `user` names the owner of bench/docs):

```nginx
{nginx_conf}
```
"""


def display_command(spec: Spec, variant: str = MAIN) -> str:
    """The server's command as the report shows it: relative paths, PORT for the port."""
    if spec.name == "nginx":
        return "nginx -p TMP -e TMP/nginx-error.log -c TMP/nginx.conf"
    names = {str(PEER_PYTHON): "bench/.venv/bin/python", httap_python(): "python"}
    shown = []
    for arg in spec.argv(Path("TMP"), 0, variant):
        arg = "PORT" if arg == "0" else arg.replace("127.0.0.1:0", "127.0.0.1:PORT")
        shown.append(names.get(arg, arg).replace(str(ROOT) + "/", ""))
    return " ".join(shown)


# -- main -------------------------------------------------------------------------------


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 2 minutes, prints only")
    parser.add_argument("--output", help="write the Markdown report here (full run: RESULTS.md)")
    parser.add_argument("--only", help="comma-separated server names (httap is always in)")
    args = parser.parse_args()
    mode = QUICK if args.quick else FULL
    output = args.output or (None if args.quick else str(BENCH / "RESULTS.md"))
    servers = SERVERS
    if args.only:
        wanted = {"httap", *args.only.split(",")}
        servers = [spec for spec in SERVERS if spec.name in wanted]

    # SIGTERM (make killed, CI stopping) unwinds like Ctrl-C, so every server is killed.
    signal.signal(signal.SIGTERM, interrupt)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted_files = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted_files), hard))
    if (os.cpu_count() or 1) < 2:
        print("bench: warning: fewer than 2 CPUs; server and load share one", flush=True)
    elif hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(LOAD_CPU)})  # this process and its clients stay off CPU 0

    ensure_tools()
    ensure_venv()
    compile_httap()
    info = versions()
    revision = httap_revision()
    started = datetime.datetime.now(datetime.timezone.utc)
    print(
        f"bench: {mode.name} run; wrk {mode.duration} s per run, {mode.rtt_count:,} round"
        f" trips, {mode.idle_conns:,} idle connections; servers on CPU {SERVER_CPU}, load on"
        f" CPU {LOAD_CPU}",
        flush=True,
    )
    total = (MAIN_STEPS + 1) * len(servers) + sum(1 for spec in servers if spec.lateness_path)
    total += 1  # httap's push figures
    progress = Progress(total)
    results = Results()
    check_quiet(results, "before the run")
    with tempfile.TemporaryDirectory(prefix="httap-bench-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)  # nginx's worker writes nothing here but must traverse it
        try:
            for spec in servers:
                measure_server(spec, mode, progress, results, workdir)
            for spec in servers:
                measure_connections(spec, mode, progress, results, workdir)
            for spec in servers:
                if spec.lateness_path:
                    measure_lateness(spec, mode, progress, results, workdir)
            httap = next(spec for spec in servers if spec.name == "httap")
            measure_push(httap, mode, progress, results, workdir)
        except KeyboardInterrupt:
            print("\nbench: interrupted; every server was stopped", flush=True)
            return 130
    minutes = (time.monotonic() - progress.started) / 60
    check_quiet(results, "after the run")
    if httap_revision() != revision:
        results.note("httap", f"its files changed during the run: {revision} -> {httap_revision()}")
    print(report_text(results))
    print(f"\nbench: {mode.name} run took {minutes:.1f} minutes", flush=True)
    if output:
        Path(output).write_text(results_markdown(results, mode, started, minutes, info))
        print(f"bench: wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
