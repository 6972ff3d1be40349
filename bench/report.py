"""What a run reports: the text printed at its end, bench/RESULTS.md (a full run), and the
README's Performance table, which quotes RESULTS.md's rows word for word."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

from goals import judged, verdict
from load import LOAD_CPU
from quiet import OTHER_LIMIT, QUIET_WAIT
from results import SUBSCRIBERS, Results, table
from servers import (
    BARE,
    CONNS,
    NGINX_CONF,
    NOFILE,
    PUSH,
    SERVER_CPU,
    SERVERS,
    TICK,
    display_command,
)
from steps import OPTIONAL, OPTIONAL_TIMEOUT, QUICK, Mode
from tools import machine

# The README's rows of the figures table (the goals table is quoted whole).
README_FIGURES = [
    "static_rps_10",
    "gpio_rps_10",
    "write_rps_10",
    "rtt_gpio_median",
    "rtt_gpio_p99",
    "rss_idle",
    "rss_bare",
    "conn_kib",
    "cpu_static",
    "cpu_gpio",
    "late_idle_max",
    "late_p99",
    "late_max",
    "push_load_p99",
]
README_START = "<!-- bench: written by bench/run.py with bench/RESULTS.md; do not edit -->"
README_END = "<!-- /bench -->"


def goals_table(results: Results) -> str:
    rows = [
        f"| {label} | {measured} | {goal} | **{verdict(ok)}** |"
        for label, measured, goal, ok in judged(results)
    ]
    return "\n".join(["| figure | measured | goal | |", "|---|---:|---:|---|", *rows])


def report_text(results: Results) -> str:
    lines = ["", table(results, markdown=False), ""]
    if results.spread:
        lines += [table(results, markdown=False, spread=True), ""]
    lines.append("Goals (issue 14):")
    for label, measured, goal, ok in judged(results):
        lines.append(f"  {verdict(ok):4}  {label}: {measured} (goal {goal})")
    if results.notes:
        lines += ["", "Notes:", *[f"  - {note}" for note in results.notes]]
    return "\n".join(lines)


def readme_block(results: Results, started: datetime.datetime, info: dict) -> str:
    """The README's Performance figures: RESULTS.md's goals table and some of its
    figures' rows, the same text (tests/system/test_docs.py checks that)."""
    return "\n".join(
        [
            README_START,
            f"From the full run of {started:%Y-%m-%d} (httap {info.get('httap', '?')}),"
            " as [`bench/RESULTS.md`](bench/RESULTS.md) has it:",
            "",
            goals_table(results),
            "",
            table(results, markdown=True, keys=README_FIGURES),
            README_END,
        ]
    )


def update_readme(readme: Path, block: str) -> None:
    """Replace the README's block between README_START and README_END with `block`."""
    text = readme.read_text()
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme}: no {README_START} ... {README_END} block")
    readme.write_text(pattern.sub(lambda _: block, text, count=1))


def results_markdown(
    results: Results, mode: Mode, started: datetime.datetime, minutes: float, info: dict
) -> str:
    mach = machine()
    statics = "\n".join(f"- **{spec.name}**: {spec.static_note}" for spec in SERVERS)
    tickers = "\n".join(
        f"  - **{spec.name}**: {spec.ticker_note}" for spec in SERVERS if spec.lateness_path
    )
    commands = "\n".join(
        f"- {spec.name}: `{display_command(spec)}`"
        + (f"; no config file: `{display_command(spec, BARE)}`" if spec.name == "httap" else "")
        + (f"; idle connections: `{display_command(spec, CONNS)}`" if spec.name == "httap" else "")
        + (f"; 1 kHz task: `{display_command(spec, TICK)}`" if spec.lateness_path else "")
        + (f"; push: `{display_command(spec, PUSH)}`" if spec.name == "httap" else "")
        for spec in SERVERS
    )
    nginx_conf = NGINX_CONF.format(
        user="", work="TMP", nofile=NOFILE, docs="bench/docs", port="PORT"
    ).strip()
    notes = "\n".join(f"- {note}" for note in results.notes) or "- none"
    optional = ", ".join(f"bench/{script} ({tool})" for _, script, tool in OPTIONAL)
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

## Goals

The goals of issue 14, each judged on the figures below (a ratio is of two figures of
this run).

{goals_table(results)}

## Figures

Each cell is the value and, in brackets, its ratio to httap's (value / httap's value:
above 1 is more req/s, but also more µs, MiB or KiB). wrk: `-t1`, keep-alive,
{runs} per figure after a {mode.warmup:g} s warm-up per target; lock-step:
{mode.rtt_count:,} requests per target on one connection (after 200 not counted);
idle connections: {mode.idle_conns:,}.

{table(results, markdown=True)}
{spread}
## Notes from this run

{notes}

## How it was measured

- Every server runs on 127.0.0.1 on a free port, started as
  `prlimit --nofile={NOFILE}:{NOFILE} taskset -c {SERVER_CPU} COMMAND`, in its own process
  group, without HTTAP_* variables, waited for by polling its port, and killed (the
  whole group) after its figures. The load runs on CPU {LOAD_CPU}: `taskset -c {LOAD_CPU}
  wrk -t1 -cN -d{mode.duration}s --latency http://127.0.0.1:PORT/index.html` (and
  `/?gpio/4`), for N = 1, 10, 100.
- req/s and the latency p50/p99 are wrk's own figures (p50/p99 from the c=10 run);
  with several runs per figure, the run with the median req/s gives them. A reply
  that is not 2xx or 3xx does not count as served: it is taken out of req/s and noted.
- The write (httap alone; the peers have no such thing): `wrk -t1 -c10 -s
  bench/write.lua http://127.0.0.1:PORT/?gpio/led`, which POSTs 0 and 1 in turn, so
  that each write changes the simulated output: the board, the audit line (written,
  `log.level` is httap's default `info`, to the server's log file) and the event for
  subscribers (none here). bench/web.json5's `session.exclusive: "client"` lets wrk's
  connections, all from 127.0.0.1, hold the lease together; before the runs one POST
  must be answered 200.
- CPU µs per request: utime + stime of every process of the server
  (/proc/PID/stat, summed over its process group) before and after each c=10 run,
  over all runs, divided by the 2xx/3xx replies wrk reports for them.
- Lock-step round trip: `taskset -c {LOAD_CPU} python bench/client.py rtt --port PORT
  --target TARGET --count {mode.rtt_count}`: one kept-alive socket with TCP_NODELAY, one
  request at a time, each full response read before the next send; the client is
  Python, so its own time (some µs) is in every server's figure alike.
- RSS idle: VmRSS of every process of the server (nginx: master and worker) 0.5 s
  after its port opened, before any request; httap also started without a config file
  (`httap serve --gpio sim`, in an empty directory: the defaults, as `make run`). Per
  idle connection: each server is started again (httap with bench/web-1000.json5:
  `limits.connections: 4096`, which makes it use poll() rather than select(); every
  other figure uses httap's default limits); RSS after one request to each target,
  then again after {mode.idle_conns:,} connections were opened, each having sent
  `GET /?gpio/4` and read the reply; the difference over the count.
- The 1 kHz task: each server that has one is started again with it. A run records
  `now - deadline` against absolute deadlines (`start + n * 1 ms`, time.monotonic);
  a run more than 1 ms late skips the deadlines missed and keeps the phase, as
  httap's loop does. Every deadline is counted: a skipped one is late until the run
  that follows it starts, so a stall adds one sample per deadline it swallowed
  (bench/lateness.py; the same code in every server). The figures are read over HTTP
  after {mode.idle_tick:g} s idle, and after each of {mode.repeats} `wrk -t1 -c10` run(s) of
  {mode.duration} s on /index.html (after a warm-up not counted); the table shows the
  run with the median p99. The task in each server:
{tickers}
- Push (httap only, started again with bench/web-push.json5: web.json5 with
  `limits.subscribers: 128`): `taskset -c {LOAD_CPU} python bench/push.py latency --port
  PORT --count {mode.rtt_count // 2}` keeps one `GET /?events&types=gpio` stream and one
  writer, toggles the output led one write at a time and times each from the request's send to
  the whole event read at the subscriber; idle, then during a `wrk -t1 -c10` run on
  /index.html. Then `bench/push.py hold` opens {SUBSCRIBERS} streams from another
  process and reads them: the server's RSS before and after, its CPU over
  {mode.idle_tick:g} s (an open stream has the sampler read every input each
  `gpio.sample_interval`, as a long-poll does), and the latency again.
- Optional steps, run when their script exists and its tool is installed, else
  skipped with the reason printed: {optional}. Each starts what it needs, pins it
  itself, and prints one JSON object within {OPTIONAL_TIMEOUT:g} s; each of its keys is a
  row "NAME: KEY" for httap.
- "other processes": before each server starts, the harness waits (at most
  {QUIET_WAIT:g} s) until processes that are neither the harness (with wrk and its
  clients) nor a server use less than {OTHER_LIMIT:.0%} of a CPU; a step during which
  they used more is listed under the notes.

What each server does for `/index.html`:

{statics}

`/?gpio/4`: httap reads the simulated pin through its HTTaP manager (bench/web.json5,
`gpio.backend: "sim"`); every other server returns `{{"gpio":4,"mode":"in","value":0}}`
as application/json from a handler (nginx: `location = /` with `if ($args = "gpio/4")
{{ return 200 '...'; }}`). No server writes an access log.

## Commands

- `make bench` (full: this file and the README's Performance table), `make bench
  QUICK=1` (about 2.5 minutes, prints only), `make bench ONLY=nginx,uvicorn` (httap and
  those, prints only)
- `python bench/run.py [--quick] [--output FILE] [--only nginx,uvicorn]`

Each server command below runs as
`prlimit --nofile={NOFILE}:{NOFILE} taskset -c {SERVER_CPU} COMMAND`
(paths relative to the repository):

{commands}

nginx.conf (TMP is a temporary directory; as root, `user` names the owner of bench/docs):

```nginx
{nginx_conf}
```
"""
