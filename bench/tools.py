"""What the benchmark runs with: Debian's nginx and wrk, the peers' venv, httap's bytecode,
and the versions and the machine the report names."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = BENCH / ".venv"
PEER_PYTHON = VENV / "bin" / "python"
REQUIREMENTS = BENCH / "requirements.txt"
PEER_PACKAGES = ("uvicorn", "httptools", "uvloop", "aiohttp", "tornado")


def run_quiet(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


def find_tool(name: str) -> Optional[str]:
    """The path of the program `name` (PATH, then /usr/sbin and /usr/bin), or None."""
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
    """The repository's .venv Python when there is one, else this one."""
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def machine() -> dict:
    """{"nproc", "cpu", "kernel", "os"} of this machine."""
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
    """Name -> version of Python, nginx, wrk, httap and the peers' packages."""
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
