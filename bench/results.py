"""The figures of one run (server -> key -> value), its notes, and their tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from servers import SERVERS

SUBSCRIBERS = 100  # idle subscribers whose cost the push step measures

# key, label, format of the value
FIGURES = [
    ("static_rps_1", "static req/s, c=1", "{:,.0f}"),
    ("static_rps_10", "static req/s, c=10", "{:,.0f}"),
    ("static_rps_100", "static req/s, c=100", "{:,.0f}"),
    ("gpio_rps_1", "/?gpio/4 req/s, c=1", "{:,.0f}"),
    ("gpio_rps_10", "/?gpio/4 req/s, c=10", "{:,.0f}"),
    ("gpio_rps_100", "/?gpio/4 req/s, c=100", "{:,.0f}"),
    ("write_rps_10", "POST /?gpio/led req/s, c=10", "{:,.0f}"),
    ("static_p50", "static wrk p50 µs, c=10", "{:,.0f}"),
    ("static_p99", "static wrk p99 µs, c=10", "{:,.0f}"),
    ("gpio_p50", "/?gpio/4 wrk p50 µs, c=10", "{:,.0f}"),
    ("gpio_p99", "/?gpio/4 wrk p99 µs, c=10", "{:,.0f}"),
    ("write_p50", "POST /?gpio/led wrk p50 µs, c=10", "{:,.0f}"),
    ("write_p99", "POST /?gpio/led wrk p99 µs, c=10", "{:,.0f}"),
    ("rtt_static_median", "lock-step static median µs", "{:,.1f}"),
    ("rtt_static_p99", "lock-step static p99 µs", "{:,.1f}"),
    ("rtt_gpio_median", "lock-step /?gpio/4 median µs", "{:,.1f}"),
    ("rtt_gpio_p99", "lock-step /?gpio/4 p99 µs", "{:,.1f}"),
    ("rss_idle", "RSS idle MiB", "{:,.1f}"),
    ("rss_bare", "RSS idle MiB, no config file", "{:,.1f}"),
    ("conn_kib", "KiB per idle connection", "{:,.2f}"),
    ("cpu_static", "CPU µs/req, static c=10", "{:,.1f}"),
    ("cpu_gpio", "CPU µs/req, /?gpio/4 c=10", "{:,.1f}"),
    ("cpu_write", "CPU µs/req, POST /?gpio/led c=10", "{:,.1f}"),
    ("late_idle_p99", "1 kHz idle: p99 µs", "{:,.0f}"),
    ("late_idle_max", "1 kHz idle: max µs", "{:,.0f}"),
    ("late_idle_skipped", "1 kHz idle: deadlines skipped", "{:,.0f}"),
    ("late_p50", "1 kHz under load: p50 µs", "{:,.0f}"),
    ("late_p99", "1 kHz under load: p99 µs", "{:,.0f}"),
    ("late_max", "1 kHz under load: max µs", "{:,.0f}"),
    ("late_skipped", "1 kHz under load: deadlines skipped", "{:,.0f}"),
    ("push_p50", "push, write -> event idle: p50 µs", "{:,.0f}"),
    ("push_p99", "push, write -> event idle: p99 µs", "{:,.0f}"),
    ("push_load_p50", "push under static c=10: p50 µs", "{:,.0f}"),
    ("push_load_p99", "push under static c=10: p99 µs", "{:,.0f}"),
    ("push_subscriber_kib", f"push: KiB per idle subscriber ({SUBSCRIBERS})", "{:,.1f}"),
    ("push_idle_cpu", f"push: % CPU with {SUBSCRIBERS} idle subscribers", "{:,.1f}"),
    ("push_many_p50", f"push with {SUBSCRIBERS} subscribers: p50 µs", "{:,.0f}"),
    ("push_many_p99", f"push with {SUBSCRIBERS} subscribers: p99 µs", "{:,.0f}"),
]
COUNTS = {"late_idle_skipped", "late_skipped"}  # no ratio to httap's: a count, often 0


@dataclass
class Results:
    figures: dict = field(default_factory=dict)  # server -> key -> value
    spread: dict = field(default_factory=dict)  # server -> key -> (lowest, highest) of runs
    notes: list = field(default_factory=list)  # what went wrong or looked odd
    extra: list = field(default_factory=list)  # (key, label, format): optional steps' rows

    def set(self, server: str, key: str, value: Union[float, str]) -> None:
        self.figures.setdefault(server, {})[key] = value

    def get(self, server: str, key: str) -> Optional[Union[float, str]]:
        return self.figures.get(server, {}).get(key)

    def note(self, server: str, text: str, echo: bool = True) -> None:
        text = " ".join(text.split())[:300]  # one line, whatever wrk or a log said
        self.notes.append(f"{server}: {text}")
        if echo:
            print(f"  ! {server}: {text}", flush=True)


def cell(results: Results, server: str, key: str, fmt: str) -> str:
    value = results.get(server, key)
    if value is None:
        return "-"
    text = fmt.format(value)
    base = results.get("httap", key)
    if server != "httap" and base and key not in COUNTS:
        text += f" ({value / base:.2f}x)"
    return text


def spread_cell(results: Results, server: str, key: str, fmt: str) -> str:
    low, high = results.spread.get(server, {}).get(key, (None, None))
    return "-" if low is None else f"{fmt.format(low)} to {fmt.format(high)}"


def table(
    results: Results, markdown: bool, spread: bool = False, keys: Optional[list] = None
) -> str:
    """The figures (or with `spread`, the lowest and highest of the repeated runs): every
    row with a value, or only those of `keys`; every row of a Markdown table is the same
    text whichever rows are chosen."""
    names = [spec.name for spec in SERVERS]
    rows = [["" if not spread else "lowest to highest run", *names]]
    for key, label, fmt in FIGURES + results.extra:
        if keys is not None and key not in keys:
            continue
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
