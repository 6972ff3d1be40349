"""A PWM sysfs tree in a folder, laid out as Linux lays out /sys, and the kernel's side of it.

The tree (Documentation/ABI/testing/sysfs-class-pwm): class/pwm/pwmchipN is a link to
devices/.../<device>/pwm/pwmchipN, which holds `export`, `unexport`, `npwm` and the link
`device` to its device's folder. `Kernel` does what Linux does when a channel's number
is written to `export`: a moment later (a thread here, as the kernel's side is not the
server's), pwmN/ appears with `period`, `duty_cycle`, `enable` (0) and `polarity`
("normal"). As sysfs does, an attribute is read as its first line: the server writes
whole values at offset 0, each ending with a newline.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

# (device folder under devices/, chip name, channels), as the kernels name them.
PI4 = [("platform/soc/fe20c000.pwm", "pwmchip0", 2)]
# A Pi 5 on Linux 6.6: the fan's PWM (RP1's PWM1) is pwmchip0, the GPIO one pwmchip2.
PI5 = [
    ("platform/axi/1000120000.pcie/1f0009c000.pwm", "pwmchip0", 4),
    ("platform/axi/1000120000.pcie/1f00098000.pwm", "pwmchip2", 4),
]
EXPORT_DELAY = 0.02  # seconds between an export and its folder, as udev's work takes time


class PwmSysfs:
    """The tree of `chips` under `root`; `pwm_root` is its /sys/class/pwm."""

    def __init__(self, root: Path, chips: list[tuple[str, str, int]]) -> None:
        self.root = root
        self.pwm_root = root / "class" / "pwm"
        self.pwm_root.mkdir(parents=True)
        self.chips: dict[str, Path] = {}
        for device, name, npwm in chips:
            chip = root / "devices" / device / "pwm" / name
            chip.mkdir(parents=True)
            for attribute in ("export", "unexport"):
                (chip / attribute).write_text("")
            (chip / "npwm").write_text(f"{npwm}\n")
            (chip / "device").symlink_to(Path("../../..") / os.path.basename(device))
            (self.pwm_root / name).symlink_to(os.path.relpath(chip, self.pwm_root))
            self.chips[name] = self.pwm_root / name

    def export(self, chip: str, channel: int, **values: str) -> Path:
        """Make pwmN/ as the kernel does on an export, with `values` in place of its
        defaults (period and duty_cycle 0, enable 0, polarity normal)."""
        folder = self.chips[chip] / f"pwm{channel}"
        folder.mkdir()
        defaults = {"period": "0", "duty_cycle": "0", "enable": "0", "polarity": "normal"}
        for name, value in {**defaults, **values}.items():
            (folder / name).write_text(f"{value}\n")
        return folder

    def value(self, chip: str, channel: int, name: str) -> str:
        """An attribute of a channel as sysfs gives it: its first line."""
        return (self.chips[chip] / f"pwm{channel}" / name).read_text().split("\n")[0]

    def values(self, chip: str, channel: int) -> dict[str, str]:
        """period, duty_cycle, enable and polarity of a channel."""
        names = ("period", "duty_cycle", "enable", "polarity")
        return {name: self.value(chip, channel, name) for name in names}


class Kernel:
    """The kernel's side of `sysfs`: each channel number written to a chip's `export`
    becomes its pwmN/ EXPORT_DELAY seconds later. A context manager: the thread runs
    inside it."""

    def __init__(self, sysfs: PwmSysfs) -> None:
        self.sysfs = sysfs
        self.stopping = threading.Event()
        self.exports: list[tuple[str, int]] = []  # (chip, channel), in order
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Kernel:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(5)

    def _run(self) -> None:
        while not self.stopping.wait(0.002):
            for name, chip in self.sysfs.chips.items():
                written = (chip / "export").read_text()
                if not written:
                    continue
                (chip / "export").write_text("")
                channel = int(written)
                self.exports.append((name, channel))
                self.stopping.wait(EXPORT_DELAY)
                self.sysfs.export(name, channel)
