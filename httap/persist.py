"""Outputs that survive a restart: the last setting of each `persist: true` pin, in a file.

Rules of this file:
- It hears the change source (`Pins.subscribe`) like any other listener, and keeps a
  persisted pin's last level, {"value": 0 or 1}, or its wave's setting, {"pwm":
  {"frequency": HZ, "duty": 0..1}}. Whatever set it counts (a request, the app, a safe
  value on link loss or at a stop), except a pulse: its end restores the level before it.
- Writes are batched on the loop's timers (no sleep, no thread): at most one per
  `gpio.persist_interval` seconds, never inside the request that made the change, and
  one at a clean stop (`close`). The file is replaced whole: a temporary file beside it,
  written and fsync()ed, renamed over it (rename(2) is atomic), then the directory is
  fsync()ed, so that a power cut leaves the old file or the new one, never half of one.
- At start-up `restore` puts the kept settings in the declarations, in place of
  `initial` (and of `frequency` and `duty` for a wave). A missing file is INFO (the
  first run has none yet); an unreadable or corrupt one, or an entry that no longer
  fits its pin, a WARNING; never a refusal to start: those pins start as declared.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from typing import Any, Optional

from httap.config import PWM_DUTY, PWM_FREQUENCY, Config, GpioConfig, PinConfig
from httap.pins import PULSE, Change, Pins

log = logging.getLogger("httap.persist")

STATE_NAME = "httap-state.json"


def state_path(config: Config, env: Optional[Mapping[str, str]] = None) -> str:
    """Where the kept settings live: `gpio.state_file`; else STATE_NAME in the first
    folder of $STATE_DIRECTORY (which systemd sets for StateDirectory=, writable under
    ProtectSystem=strict); else beside the config file; else in the working directory."""
    if config.gpio.state_file is not None:
        return config.gpio.state_file
    env = os.environ if env is None else env
    if env.get("STATE_DIRECTORY"):
        return os.path.join(env["STATE_DIRECTORY"].split(":")[0], STATE_NAME)
    folder = os.path.dirname(config.source) if config.source else os.getcwd()
    return os.path.join(folder, STATE_NAME)


class Persist:
    """The kept settings of the pins declared with `persist: true` in `gpio` (a
    GpioConfig), in the file `path`, written on `loop`'s timers. Without such a pin it
    reads and writes nothing."""

    def __init__(self, path: str, gpio: GpioConfig, loop: Any) -> None:
        self.path = path
        self.loop = loop
        self.interval = gpio.persist_interval
        self.declared = {name: pin for name, pin in gpio.pins.items() if pin.persist}
        self.saved: dict[str, dict] = self._load() if self.declared else {}  # the file's
        self.values = dict(self.saved)  # what the file should hold
        self.timer: Any = None
        self.written = -math.inf  # when the file was last written, on the loop's clock

    # -- start-up ----------------------------------------------------------------------

    def _load(self) -> dict[str, dict]:
        """The file's entries that fit their pins; a WARNING for the rest, or for a file
        that is unreadable or not what this module writes; INFO for a missing one."""
        names = ", ".join(self.declared)
        try:
            with open(self.path, "rb") as file:
                data = json.loads(file.read())
        except FileNotFoundError:
            log.info(  # the first run: not a problem
                "state file %s is not there (yet): pins %s start as declared", self.path, names
            )
            return {}
        except (OSError, ValueError) as err:
            reason = getattr(err, "strerror", None) or f"not JSON: {err}"
            log.warning("state file %s: %s; pins %s start as declared", self.path, reason, names)
            return {}
        entries = data.get("pins") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            log.warning(
                'state file %s: not {"pins": {...}}; pins %s start as declared', self.path, names
            )
            return {}
        kept = {}
        for name, pin in self.declared.items():
            if name not in entries:
                continue
            entry = entries[name]
            if fits(entry, pin):
                kept[name] = entry
            else:
                log.warning(
                    "state file %s: the entry of pin %s does not fit it (GPIO %d, mode %s):"
                    " %.80s; it starts as declared",
                    self.path,
                    name,
                    pin.gpio,
                    pin.mode,
                    json.dumps(entry),
                )
        return kept

    def restore(self, declared: Mapping[str, PinConfig]) -> dict[str, PinConfig]:
        """`declared` with the kept settings in place of what the pins start with."""
        restored = dict(declared)
        for name, entry in self.saved.items():
            pin = declared[name]
            if "value" in entry:
                level = entry["value"]
                duty = float(level) if pin.mode == "pwm" else pin.duty  # a wave held steady
                restored[name] = pin._replace(initial=level, duty=duty)
            else:
                wave = entry["pwm"]
                restored[name] = pin._replace(frequency=wave["frequency"], duty=wave["duty"])
        return restored

    def follow(self, pins: Pins) -> None:
        """Hear `pins`' changes from now on."""
        if self.declared:
            pins.subscribe(self.heard)

    # -- running -----------------------------------------------------------------------

    def heard(self, change: Change) -> None:
        """A change of a pin: a persisted pin's new setting is written when the interval
        since the last write is over (in a later step of the loop, at the soonest)."""
        pin = change.pin
        if pin.name not in self.declared or change.kind == PULSE:
            return
        if change.level is not None:
            entry: dict = {"gpio": pin.gpio, "value": change.level}
        else:
            entry = {
                "gpio": pin.gpio,
                "pwm": {"frequency": pin.wave.frequency, "duty": pin.wave.duty},
            }
        self.values[pin.name] = entry
        if self.timer is None and self.values != self.saved:
            due = max(self.loop.clock(), self.written + self.interval)
            self.timer = self.loop.call_at(due, self.flush)

    def flush(self) -> None:
        """Write the file now if what it should hold has changed. A failure is a WARNING
        (the settings stay in memory; the next change tries again)."""
        self.timer = None
        if self.values == self.saved:
            return
        self.written = self.loop.clock()
        values = dict(self.values)
        try:
            replace(self.path, json.dumps({"pins": values}, indent=1).encode() + b"\n")
        except OSError as err:
            log.warning(
                "cannot write the state file %s: %s (under systemd, StateDirectory= makes"
                " a writable one)",
                self.path,
                err.strerror,
            )
            return
        self.saved = values

    def close(self) -> None:
        """The server stops: the last write, now."""
        if self.timer is not None:
            self.timer.cancel()
        self.flush()


def fits(entry: Any, pin: PinConfig) -> bool:
    """Whether a kept entry can be `pin`'s: {"gpio": its GPIO, "value": 0 or 1} for an
    output, or for a "pwm" pin {"gpio", "pwm": {"frequency", "duty"}} in range."""
    if not isinstance(entry, dict) or entry.get("gpio") != pin.gpio or len(entry) != 2:
        return False
    if "value" in entry:
        return entry["value"] in (0, 1) and type(entry["value"]) is int
    wave = entry.get("pwm")
    return (
        pin.mode == "pwm"
        and isinstance(wave, dict)
        and set(wave) == {"frequency", "duty"}
        and PWM_FREQUENCY.holds(wave["frequency"])
        and PWM_DUTY.holds(wave["duty"])
    )


def replace(path: str, data: bytes) -> None:
    """Replace the file at `path` with `data` atomically: a temporary file in the same
    folder, fsync, rename over (POSIX rename(2)), fsync of the folder. OSError if any
    step fails (the old file is then left whole)."""
    temporary = f"{path}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    folder = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
