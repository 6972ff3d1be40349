"""The goals of issue 14, judged on the figures of one run: measured, goal, PASS or MISS.

A goal is a figure of one server (`of`), or the ratio of two figures of the same run
(`of` over `to`), held against a limit: at least (`>=`) or at most (`<=`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from results import Results

Figure = tuple  # (server, key of results.FIGURES)


@dataclass(frozen=True)
class Goal:
    label: str
    of: Figure
    op: str  # ">=" or "<="
    limit: float
    unit: str  # of the limit and of the measured value: "x nginx", "µs", "MiB", ...
    to: Optional[Figure] = None  # the ratio's denominator; None: `of` itself is judged
    fmt: str = "{:,.1f}"  # of the figures shown beside a ratio, or of the value itself

    def goal(self) -> str:
        limit = f"{self.limit:,.2f}".rstrip("0").rstrip(".")
        return f"{'≥' if self.op == '>=' else '≤'} {limit}{self._unit()}"

    def _unit(self) -> str:
        return self.unit if self.unit.startswith("x") else f" {self.unit}"

    def judge(self, results: Results) -> tuple[str, Optional[bool]]:
        """(the measured value as shown, True PASS / False MISS / None not measured)."""
        value = results.get(*self.of)
        if value is None:
            return "not measured", None
        shown = f"{self.fmt.format(value)}{self._unit()}"
        if self.to is not None:
            base = results.get(*self.to)
            if not base:
                return "not measured", None
            shown = f"{value / base:.2f}{self._unit()} ({self.fmt.format(value)} / "
            shown += f"{self.fmt.format(base)})"
            value /= base
        return shown, value >= self.limit if self.op == ">=" else value <= self.limit


GOALS = [
    Goal(
        "`/?gpio/4` read, c=10: req/s against uvicorn",
        ("httap", "gpio_rps_10"),
        ">=",
        2.0,
        "x uvicorn",
        to=("uvicorn", "gpio_rps_10"),
        fmt="{:,.0f}",
    ),
    Goal(
        "server CPU per `/?gpio/4` read against per 1 KiB file (c=10)",
        ("httap", "cpu_gpio"),
        "<=",
        1.0,
        "x the file's",
        to=("httap", "cpu_static"),
    ),
    Goal(
        "1 KiB static file, c=10: req/s against nginx",
        ("httap", "static_rps_10"),
        ">=",
        1.0,
        "x nginx",
        to=("nginx", "static_rps_10"),
        fmt="{:,.0f}",
    ),
    Goal(
        "lock-step `/?gpio/4` round trip: median against nginx",
        ("httap", "rtt_gpio_median"),
        "<=",
        1.15,
        "x nginx",
        to=("nginx", "rtt_gpio_median"),
    ),
    Goal(
        "lock-step `/?gpio/4` round trip: p99 against nginx",
        ("httap", "rtt_gpio_p99"),
        "<=",
        1.25,
        "x nginx",
        to=("nginx", "rtt_gpio_p99"),
    ),
    Goal(
        "`POST /?gpio/led` write, c=10: req/s against the `/?gpio/4` read",
        ("httap", "write_rps_10"),
        ">=",
        0.8,
        "x the read",
        to=("httap", "gpio_rps_10"),
        fmt="{:,.0f}",
    ),
    Goal("RSS idle, bench/web.json5", ("httap", "rss_idle"), "<=", 16, "MiB"),
    Goal("RSS idle, no config file", ("httap", "rss_bare"), "<=", 16, "MiB"),
    Goal("per idle kept-alive connection", ("httap", "conn_kib"), "<=", 1.5, "KiB", fmt="{:,.2f}"),
    Goal("1 kHz task under wrk -c10 static: p99 lateness", ("httap", "late_p99"), "<=", 100, "µs"),
    Goal("1 kHz task under wrk -c10 static: max lateness", ("httap", "late_max"), "<=", 1000, "µs"),
    Goal(
        "1 kHz task under wrk -c10 static: p99 of a thread beside http.server against httap",
        ("http.server", "late_p99"),
        ">=",
        15,
        "x better",
        to=("httap", "late_p99"),
        fmt="{:,.0f}",
    ),
    Goal("1 kHz task idle: p99 lateness", ("httap", "late_idle_p99"), "<=", 100, "µs"),
    Goal("1 kHz task idle: max lateness", ("httap", "late_idle_max"), "<=", 1000, "µs"),
    Goal(
        "push under wrk -c10 static: p99 write -> event",
        ("httap", "push_load_p99"),
        "<=",
        1000,
        "µs",
    ),
]


def judged(results: Results) -> list[tuple[str, str, str, Optional[bool]]]:
    """(label, measured, goal, PASS True / MISS False / None) for every goal."""
    out = []
    for goal in GOALS:
        measured, ok = goal.judge(results)
        out.append((goal.label, measured, goal.goal(), ok))
    return out


def verdict(ok: Optional[bool]) -> str:
    return "PASS" if ok else ("MISS" if ok is False else "n/a")
