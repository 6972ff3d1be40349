"""Other work on the machine: how busy the CPUs are, how much CPU processes that are
neither the harness nor a server use, and waiting for them to calm down."""

from __future__ import annotations

import os
import re
import time

from results import Results
from servers import Running, proc_stats
from tools import run_quiet

OTHER_LIMIT = 0.10  # other processes using this share of a CPU during a step get a note
QUIET_WAIT = 30.0  # seconds to wait, before a server starts, for other processes to calm down


def cpu_ticks() -> list[tuple[int, int]]:
    """(busy, idle) clock ticks of each CPU so far, from /proc/stat."""
    with open("/proc/stat") as file:
        rows = [line.split() for line in file if re.match(r"cpu\d", line)]
    # user nice system idle iowait irq softirq steal; idle time is idle + iowait
    return [
        (sum(map(int, row[1:4])) + sum(map(int, row[6:9])), int(row[4]) + int(row[5]))
        for row in rows
    ]


def busy_cpus(seconds: float = 1.0) -> list[float]:
    """How busy each CPU is (0..1) over `seconds`: other work skews the figures."""
    first = cpu_ticks()
    time.sleep(seconds)
    return [
        (busy2 - busy1) / max(1, busy2 - busy1 + idle2 - idle1)
        for (busy1, idle1), (busy2, idle2) in zip(first, cpu_ticks())
    ]


def others_cpu(server_pgid: int) -> float:
    """CPU seconds used so far by every process that is neither ours nor the server's.

    Ours is this process group (make, this script, wrk, the clients). A process's reaped
    children count in it (cutime, cstime), so short-lived ones are seen through their parent.
    """
    own = os.getpgrp()
    total = 0
    for _, fields in proc_stats():
        if int(fields[2]) in (own, server_pgid):
            continue
        total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


class OtherWork:
    """How much CPU other processes used during a step, as a share of one CPU."""

    def __init__(self, server: Running) -> None:
        self.pgid = server.process.pid
        self.start = (time.monotonic(), others_cpu(self.pgid))

    def share(self) -> float:
        wall, cpu = self.start
        return max(0.0, others_cpu(self.pgid) - cpu) / max(1e-9, time.monotonic() - wall)


def wait_quiet(results: Results, name: str) -> None:
    """Before a server starts: wait (at most QUIET_WAIT s) for other processes to calm down."""
    deadline = time.monotonic() + QUIET_WAIT
    told = False
    while True:
        start, cpu = time.monotonic(), others_cpu(-1)
        time.sleep(1.0)
        share = (others_cpu(-1) - cpu) / (time.monotonic() - start)
        if share < OTHER_LIMIT:
            return
        if time.monotonic() >= deadline:
            note = f"started while other processes used {share:.0%} of a CPU"
            results.note(name, f"{note} (after waiting {QUIET_WAIT:g} s for them)")
            return
        if not told:
            print(
                f"bench: other processes use {share:.0%} of a CPU; waiting up to"
                f" {QUIET_WAIT:g} s before starting {name}",
                flush=True,
            )
            told = True


def check_quiet(results: Results, when: str) -> None:
    busy = busy_cpus()
    shown = ", ".join(f"CPU {cpu} {load:.0%}" for cpu, load in enumerate(busy))
    print(f"bench: machine load {when}: {shown}", flush=True)
    if max(busy) >= OTHER_LIMIT:
        top = run_quiet(["ps", "-eo", "pid,pcpu,args", "--sort=-pcpu"]).stdout.splitlines()
        others = "; ".join(" ".join(line.split())[:80] for line in top[1:4])
        results.note("machine", f"busy {when} ({shown}); top processes: {others}")
