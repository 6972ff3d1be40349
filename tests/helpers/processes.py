"""Programs the tests run as children: `python -m httap` serving (Process, which the `spawn`
fixture starts) or run to its end (httap()), make, and curl."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tests.helpers.client import Client, Reply

# The environment without the variables under test, so the caller's shell cannot leak in.
CLEAN_ENV = {key: value for key, value in os.environ.items() if not key.startswith("HTTAP_")}
# make's own variables, which a `make test` around this suite would pass down.
MAKE_ENV = {
    key: value for key, value in os.environ.items() if not key.startswith(("MAKE", "MFLAGS"))
}
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


class Process:
    """`python -m httap ...` as a child process; the first line of stdout gives the URL.
    Its stderr is a pipe, or appended to the file `log` (a pipe nobody reads fills up)."""

    def __init__(
        self,
        args: list[str],
        cwd: Path | None = None,
        env: dict | None = None,
        log: Path | None = None,
    ) -> None:
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with open(log, "ab") if log else contextlib.nullcontext(subprocess.PIPE) as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "httap", *args],
                cwd=cwd or ROOT,
                env=full_env,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self.banner = self.proc.stdout.readline()
        match = re.search(r"https?://\[?([0-9.:a-f]+)\]?:(\d+)", self.banner)
        if not match:
            self.proc.kill()
            said = log.read_text() if log else self.proc.stderr.read()
            raise AssertionError(f"no start-up line: {self.banner!r} {said}")
        self.host, self.port = match.group(1), int(match.group(2))

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 15) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc.stdout.close()
        if self.proc.stderr:
            self.proc.stderr.close()


def fetch(process: Process, target: str = "/hello.txt") -> Reply:
    """GET `target` from a serving `process`, on a connection of its own."""
    sock = socket.create_connection((process.host, process.port), timeout=5)
    client = Client(sock)
    try:
        return client.get(target)
    finally:
        client.close()


def stop(process: Process) -> str:
    """SIGTERM, a clean exit; the log the process wrote."""
    process.signal(signal.SIGTERM)
    assert process.wait() == 0
    log = process.proc.stderr.read()
    assert "Traceback" not in log
    return log


def httap(
    *args: str,
    cwd: Path | None = None,
    env: dict | None = None,
    timeout: float = 20,
    input: str | None = None,
):
    """Run `python -m httap ARGS` to its end, `input` on its stdin; returns the
    CompletedProcess (text)."""
    return subprocess.run(
        [sys.executable, "-m", "httap", *args],
        input=input,
        cwd=cwd or ROOT,
        env={**CLEAN_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line_error(done, *parts: str) -> str:
    """A refusal: status 2, no traceback, one line on stderr naming each of `parts`."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    line = done.stderr
    assert line.endswith("\n") and line.count("\n") == 1, line
    for part in parts:
        assert part in line, (part, line)
    return line


def make(where: Path, *args: str) -> str:
    """`make -n ARGS` in `where` with this Python: the commands make would run, none run."""
    done = subprocess.run(
        ["make", "-n", *args, f"PYTHON={sys.executable}"],
        cwd=where,
        env=MAKE_ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def curl(running, command: str) -> str:
    """Run a README curl command against `running` (its address put in); its output."""
    base = f"http://127.0.0.1:{running.port}"
    command = re.sub(r"http://(pi|127\.0\.0\.1):8080", base, command)
    args = shlex.split(command, comments=True)
    assert args[0] == "curl", command
    done = subprocess.run(
        [args[0], "-sS", *args[1:]], capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout


def without(tmp_path: Path, *modules: str) -> dict:
    """The environment of a child in which `modules` are not installed: a sitecustomize
    puts None in sys.modules for each, so `import` raises ModuleNotFoundError and
    importlib.util.find_spec answers None, as for a library that is absent."""
    site = tmp_path / "without"
    site.mkdir()
    names = ", ".join(repr(name) for name in modules)
    (site / "sitecustomize.py").write_text(
        f"import sys\nsys.modules.update(dict.fromkeys([{names}]))\n"
    )
    return {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
