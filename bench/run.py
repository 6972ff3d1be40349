"""`make bench`: httap against nginx, uvicorn, aiohttp, tornado and http.server, judged
on the goals of issue 14 (bench/goals.py), every figure from one run.

    python bench/run.py [--quick] [--output FILE] [--only NAME,...]

Every server starts fresh on 127.0.0.1 (a free port the OS picks), pinned to CPU 0 with
`taskset -c 0` and a raised RLIMIT_NOFILE (`prlimit`); the load (wrk -t1, the lock-step
client, the idle connections) runs on CPU 1. Each server serves `/index.html` (1,024
bytes) and `/?gpio/4` (for httap the real read of a simulated pin); httap also serves
`POST /?gpio/led`, is started without a config file for its RSS, and has its push
figures (bench/push.py). Optional steps for later issues (bench/mqtt.py) run when their
script and tool are there.

The first run installs nginx-light and wrk with apt-get when they are missing, and the
peers in bench/.venv from bench/requirements.txt. A full run of every server (no
--quick, --only or --output) writes bench/RESULTS.md and the README's Performance table.

The modules, one job each: tools (what runs: install, versions), servers (how each
server starts and is stopped), load (wrk and the clients), quiet (other work on the
machine), steps (the measurements), results (the figures and their tables), goals
(PASS or MISS), report (the text, RESULTS.md, the README's table).
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

import steps
from load import LOAD_CPU
from quiet import check_quiet
from report import readme_block, report_text, results_markdown, update_readme
from results import Results
from servers import NOFILE, SERVER_CPU, SERVERS
from tools import (
    BENCH,
    ROOT,
    compile_httap,
    ensure_tools,
    ensure_venv,
    httap_revision,
    versions,
)


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 2.5 minutes, prints only")
    parser.add_argument("--output", help="write the Markdown report here, not RESULTS.md")
    parser.add_argument("--only", help="comma-separated server names (httap is always in)")
    args = parser.parse_args()
    mode = steps.QUICK if args.quick else steps.FULL
    # A full run of every server writes bench/RESULTS.md and the README's table.
    complete = not args.quick and not args.only and not args.output
    output = str(BENCH / "RESULTS.md") if complete else args.output
    servers = SERVERS
    if args.only:
        wanted = {"httap", *args.only.split(",")}
        servers = [spec for spec in SERVERS if spec.name in wanted]

    # SIGTERM (make killed, CI stopping) unwinds like Ctrl-C, so every server is killed.
    signal.signal(signal.SIGTERM, interrupt)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted_files = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted_files), hard))
    if (os.cpu_count() or 1) < 2:
        print("bench: warning: fewer than 2 CPUs; server and load share one", flush=True)
    elif hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(LOAD_CPU)})  # this process and its clients stay off CPU 0

    ensure_tools()
    ensure_venv()
    compile_httap()
    info = versions()
    revision = httap_revision()
    started = datetime.datetime.now(datetime.timezone.utc)
    print(
        f"bench: {mode.name} run; wrk {mode.duration} s per run, {mode.rtt_count:,} round"
        f" trips, {mode.idle_conns:,} idle connections; servers on CPU {SERVER_CPU}, load on"
        f" CPU {LOAD_CPU}",
        flush=True,
    )
    httap = next(spec for spec in servers if spec.name == "httap")
    total = sum(steps.main_steps(spec) + 1 for spec in servers)  # + the idle connections
    total += sum(1 for spec in servers if spec.lateness_path)
    total += 2 + len(steps.OPTIONAL)  # httap without a config file, push; optional steps
    progress = steps.Progress(total)
    results = Results()
    check_quiet(results, "before the run")
    with tempfile.TemporaryDirectory(prefix="httap-bench-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)  # nginx's worker writes nothing here but must traverse it
        try:
            for spec in servers:
                steps.measure_server(spec, mode, progress, results, workdir)
            steps.measure_bare(httap, progress, results, workdir)
            for spec in servers:
                steps.measure_connections(spec, mode, progress, results, workdir)
            for spec in servers:
                if spec.lateness_path:
                    steps.measure_lateness(spec, mode, progress, results, workdir)
            steps.measure_push(httap, mode, progress, results, workdir)
            for name, script, tool in steps.OPTIONAL:
                steps.measure_optional(name, script, tool, progress, results)
        except KeyboardInterrupt:
            print("\nbench: interrupted; every server was stopped", flush=True)
            return 130
    minutes = (time.monotonic() - progress.started) / 60
    check_quiet(results, "after the run")
    if httap_revision() != revision:
        results.note("httap", f"its files changed during the run: {revision} -> {httap_revision()}")
    print(report_text(results))
    print(f"\nbench: {mode.name} run took {minutes:.1f} minutes", flush=True)
    if output:
        Path(output).write_text(results_markdown(results, mode, started, minutes, info))
        print(f"bench: wrote {output}")
    if complete:
        update_readme(ROOT / "README.md", readme_block(results, started, info))
        print("bench: wrote the Performance table of README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
