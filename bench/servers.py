"""The servers under test: how each is started, what it serves, and a running one's
process group (started fresh, waited for by its port, measured, killed as a group).

Every server serves the same two targets: `/index.html` (bench/docs/index.html, 1,024
bytes) and `/?gpio/4` (a tiny JSON reply; for httap the real read of a simulated pin
through the HTTaP manager). httap alone also serves `POST /?gpio/led`, a write.
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from tools import BENCH, PEER_PYTHON, ROOT, find_tool, httap_python

DOCS = BENCH / "docs"
PEERS = BENCH / "peers"
SERVER_CPU = "0"
NOFILE = 16384  # descriptors for the servers and for the harness (idle connections)
STATIC = "/index.html"
GPIO = "/?gpio/4"
WRITE = "/?gpio/led"  # httap only: bench/write.lua POSTs 0 and 1 in turn
WRITE_SCRIPT = BENCH / "write.lua"
ENDPOINTS = (("static", STATIC), ("gpio", GPIO))
START_TIMEOUT = 20.0  # seconds a server gets to open its port
STOP_TIMEOUT = 5.0  # seconds a server gets to exit on SIGTERM before SIGKILL

# How a server is started: for most figures; without a config file (httap: the RSS
# idle a user's first `httap serve` gets); for the idle connections; with the 1 kHz
# task; for the push figures (room for the subscribers).
MAIN, BARE, CONNS, TICK, PUSH = "main", "bare", "conns", "tick", "push"


class StartFailed(Exception):
    """A server did not open its port."""


@dataclass
class Spec:
    name: str
    argv: Callable[[Path, int, str], list[str]]  # (workdir, port, variant) -> command
    cwd: Path
    static_note: str
    lateness_path: Optional[str] = None  # where the 1 kHz task's figures are read
    ticker_note: str = ""
    writes: bool = False  # serves POST /?gpio/led (httap: bench/web.json5's output "led")


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


def proc_stats() -> Iterator[tuple[str, list[str]]]:
    """Each process's /proc entry (its pid) and the fields of its /proc/PID/stat after
    the command name (proc(5): [2] the process group, [11:15] utime stime cutime cstime
    in clock ticks); a process that went away meanwhile is left out."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        yield entry, fields


def group_stats(pgid: int) -> tuple[int, float, int]:
    """(VmRSS KiB, utime+stime seconds, processes) summed over a process group."""
    ticks = os.sysconf("SC_CLK_TCK")
    rss = cpu = count = 0
    for entry, fields in proc_stats():
        if int(fields[2]) != pgid:
            continue
        try:
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
    """A server started in its own process group; `with` kills the whole group. It runs
    without the harness's HTTAP_* variables, and without a config file from its working
    directory (BARE runs in the empty `workdir`)."""

    def __init__(self, spec: Spec, workdir: Path, variant: str = MAIN) -> None:
        self.name = spec.name
        self.port = free_port()
        self.log_path = workdir / f"{spec.name}-{variant}.log"
        limits = ["prlimit", f"--nofile={NOFILE}:{NOFILE}", "taskset", "-c", SERVER_CPU]
        self.command = [*limits, *spec.argv(workdir, self.port, variant)]
        self.cwd = workdir if variant == BARE else spec.cwd
        self.process: Optional[subprocess.Popen] = None

    def __enter__(self) -> Running:
        env = {key: value for key, value in os.environ.items() if not key.startswith("HTTAP_")}
        log = open(self.log_path, "w")
        try:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=env,
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


def httap_argv(workdir: Path, port: int, variant: str) -> list[str]:
    argv = [httap_python(), "-m", "httap", "serve"]
    if variant == BARE:  # what `make run` starts: the defaults and the simulated board
        return [*argv, "--gpio", "sim", "--listen", f"http://127.0.0.1:{port}"]
    configs = {CONNS: "web-1000.json5", PUSH: "web-push.json5"}
    config = BENCH / configs.get(variant, "web.json5")
    argv += ["--config", str(config), "--listen", f"http://127.0.0.1:{port}"]
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


def peer_argv(script: str) -> Callable[[Path, int, str], list[str]]:
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
        writes=True,
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
