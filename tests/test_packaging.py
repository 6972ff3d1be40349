"""`pip install .` must give the httap command, both packages and the browser app."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from tests.conftest import ROOT


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
