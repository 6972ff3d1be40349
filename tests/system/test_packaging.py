"""`pip install .` gives the httap command, both packages and the browser app; `make run`
installs the server alone, `make test` the tools on top, pinned for each Python."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker

from tests.helpers import ROOT, wait_for
from tests.helpers.client import Client
from tests.helpers.processes import MAKE_ENV, make


def test_the_wheel_holds_both_packages_the_app_and_the_command(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("httap-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("httap/server.py", "httap/http.py", "gpio/base.py", "gpio/sim.py"):
        assert module in names
    assert "httap/app/index.html" in names  # static/ is installed as the default documents
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "httap = httap.cli:main" in text
    metadata = next(name for name in names if name.endswith("METADATA"))
    requires = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Requires-Dist: json5" in requires and "Requires-Dist: pyserial" in requires
    # What the README's install section says a user gets, and nothing more.
    top = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top == {"httap", "gpio"}
    extra = re.compile(r'^Requires-Dist: ([\w.-]+)[^;\s]*\s*; extra == "(\w+)"', re.M)
    extras = dict(extra.findall(requires))
    assert extras == {
        "RPi.GPIO": "rpi",
        "gpiod": "gpiod",
        "paho-mqtt": "mqtt",
        "python-multipart": "files",
    }
    readme = " ".join((ROOT / "README.md").read_text().split())
    said = "two Python packages: `httap` (the server, with the browser app as `httap/app`,"
    assert said in readme and "and `gpio` (the pin backends)" in readme
    assert "with the extra `gpiod`, the `gpiod` package" in readme
    assert "with `rpi`, `RPi.GPIO`" in readme
    assert "With `mqtt`, `paho-mqtt`" in readme
    assert "With `files`, `python-multipart`" in readme


# -- make run: the server alone; make test: the tools on top ----------------------------

TEST_TOOLS = {"pytest", "hypothesis", "playwright", "ruff", "h11", "python-multipart"}


def requirements(path: Path, python: str) -> dict[str, str]:
    """The pins a requirements file gives `python` ("3.9"): name -> version, `-r` followed."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.partition("#")[0].strip()
        if line.startswith("-r "):
            pins.update(requirements(path.with_name(line[3:].strip()), python))
        elif line:
            spec, _, marker = line.partition(";")
            if marker and not Marker(marker).evaluate({"python_version": python}):
                continue
            name, version = spec.strip().split("==")
            assert name not in pins, f"{name} pinned twice for Python {python}"
            pins[name] = version
    return pins


@pytest.mark.parametrize("python", ["3.9", "3.10", "3.11", "3.12", "3.13"])
def test_each_python_gets_one_pin_per_tool(python):
    pins = requirements(ROOT / "requirements-test.txt", python)
    assert TEST_TOOLS | {"json5", "pyserial"} <= set(pins)  # each once: requirements() checks
    assert requirements(ROOT / "requirements.txt", python).keys() == {"json5", "pyserial"}


def test_this_python_runs_the_set_pinned_for_it():
    python = "{}.{}".format(*sys.version_info[:2])
    for name, version in requirements(ROOT / "requirements-test.txt", python).items():
        assert metadata.version(name) == version, name


def fresh_copy(where: Path) -> Path:
    """What a clone holds that `make run` reads: no venv, no stamps."""
    clone = where / "clone"
    clone.mkdir()
    for name in ("Makefile", "pyproject.toml", "README.md", "requirements.txt"):
        shutil.copy(ROOT / name, clone)
    shutil.copy(ROOT / "requirements-test.txt", clone)
    for name in ("httap", "gpio", "static"):
        shutil.copytree(ROOT / name, clone / name, ignore=shutil.ignore_patterns("__pycache__"))
    return clone


def test_make_run_installs_the_server_alone_and_serves_the_console(tmp_path):
    clone = fresh_copy(tmp_path)
    planned = make(clone, "run")
    assert "-m venv" in planned and "requirements.txt -e ." in planned
    for word in ("apt-get", "sudo", "requirements-test", "chromium"):
        assert word not in planned

    log = tmp_path / "make-run.log"
    with log.open("w") as out:
        run = subprocess.Popen(
            ["make", "run", "LISTEN=http://127.0.0.1:0", f"PYTHON={sys.executable}"],
            cwd=clone,
            env=MAKE_ENV,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # make and its server: one group, stopped together
        )
    try:
        started = wait_for(
            lambda: (
                re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read_text())
                or run.poll() is not None
            ),
            timeout=300,  # a venv and a pip install from the cache
            interval=0.1,
        )
        assert isinstance(started, re.Match), log.read_text()
        with socket.create_connection(("127.0.0.1", int(started[1])), timeout=5) as sock:
            client = Client(sock)
            page = client.get("/")
            assert page.status == 200 and b"console.js" in page.body  # the console
            assert client.get("/?").json()["Services"]
    finally:
        os.killpg(run.pid, signal.SIGTERM)
        run.wait(30)

    listed = subprocess.run(
        [
            str(clone / ".venv" / "bin" / "python"),
            "-c",
            "from importlib import metadata as m; print([d.metadata['Name'] for d in"
            " m.distributions()])",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    installed = {name.lower() for name in json.loads(listed.stdout.replace("'", '"'))}
    assert installed - {"pip", "setuptools", "wheel"} == {"httap", "json5", "pyserial"}

    # Layers: run again installs nothing; test adds the tools alone.
    assert make(clone, "run").splitlines() == [
        ".venv/bin/python -m httap serve --listen http://127.0.0.1:8080 --gpio sim"
    ]
    # Extras (README "MQTT", "Files"): pyproject.toml's, by this venv's installer.
    planned = make(clone, "run", "EXTRAS=mqtt,files").splitlines()
    assert "install --quiet -e '.[mqtt,files]'" in planned[0], planned
    assert planned[-1].endswith("-m httap serve --listen http://127.0.0.1:8080 --gpio sim")
    planned = make(clone, "test")
    assert "requirements-test.txt" in planned and "requirements.txt -e ." not in planned
