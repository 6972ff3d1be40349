"""The steps of a run: each starts a server fresh, measures, and kills it. A step that
fails is a progress line and a note, never the end of the run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import client
from load import LOAD_CPU, push_latency, request_json, round_trips, wrk
from quiet import OTHER_LIMIT, OtherWork, wait_quiet
from results import SUBSCRIBERS, Results
from servers import (
    BARE,
    CONNS,
    ENDPOINTS,
    GPIO,
    PUSH,
    STATIC,
    TICK,
    WRITE,
    WRITE_SCRIPT,
    Running,
    Spec,
    StartFailed,
)
from tools import BENCH, ROOT, find_tool, httap_python

CONCURRENCY = (1, 10, 100)
# Steps for later issues, run when their script exists and its tool is installed: (name,
# script in bench/, tool). The script starts what it needs, pins it itself, and prints
# one JSON object on its last line of output; each of its keys is a row for httap.
OPTIONAL = [("mqtt", "mqtt.py", "mosquitto")]
OPTIONAL_TIMEOUT = 120.0  # seconds an optional script may take: the full run stays under 15 min


@dataclass
class Mode:
    name: str
    duration: int  # seconds of each wrk run
    warmup: int  # seconds of wrk warm-up per target before the measured runs (wrk: whole s)
    rtt_count: int  # lock-step round trips per endpoint
    idle_conns: int  # idle kept-alive connections
    idle_tick: float  # seconds the 1 kHz task is measured without load
    repeats: int  # wrk runs per figure (and 1 kHz runs); the figure is the median run

    def runs(self) -> str:
        """The wrk runs of one figure, as the progress lines say it: "3 x 5 s"."""
        return f"{self.repeats} x {self.duration} s" if self.repeats > 1 else f"{self.duration} s"


QUICK = Mode("quick", 2, warmup=1, rtt_count=2_000, idle_conns=300, idle_tick=1.0, repeats=1)
FULL = Mode("full", 5, warmup=2, rtt_count=10_000, idle_conns=1_000, idle_tick=2.0, repeats=3)


class Progress:
    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.started = time.monotonic()

    def step(self, what: str) -> None:
        self.done += 1
        print(f"[{self.done}/{self.total}] {what} ...", end=" ", flush=True)

    def result(self, text: str) -> None:
        print(text, flush=True)

    def skip(self, count: int, why: str) -> None:
        if count > 0:
            print(f"[{self.done + 1}-{self.done + count}/{self.total}] skipped: {why}", flush=True)
        self.done += count


def loads(spec: Spec) -> list[tuple[str, str, Optional[Path], tuple[int, ...]]]:
    """(endpoint, target, wrk script, concurrencies) of the wrk runs on `spec`."""
    got = [(endpoint, target, None, CONCURRENCY) for endpoint, target in ENDPOINTS]
    return got + ([("write", WRITE, WRITE_SCRIPT, (10,))] if spec.writes else [])


def main_steps(spec: Spec) -> int:
    """The progress steps of measure_server: start, lock-step runs, wrk runs."""
    return 1 + len(ENDPOINTS) + sum(len(load[3]) for load in loads(spec))


def report_result(
    progress: Progress, results: Results, name: str, label: str, text: str, other: float
) -> None:
    """A figure's progress line, and a note in RESULTS.md when other work disturbed it."""
    if other >= OTHER_LIMIT:
        text += f" [other processes: {other:.0%} of a CPU]"
        results.note(name, f"{label}: other processes used {other:.0%} of a CPU", echo=False)
    progress.result(text)


@contextmanager
def reported(progress: Progress, results: Results, name: str, label: str) -> Iterator[None]:
    """One server's step: a failure is a progress line and a note, never the end of the run."""
    try:
        yield
    except StartFailed as err:
        progress.result("failed to start")
        results.note(name, f"{label}: failed to start: {err}")
    except Exception as err:
        progress.result("failed")
        results.note(name, f"{label}: {type(err).__name__}: {err}")


def wrk_figures(
    server: Running,
    results: Results,
    mode: Mode,
    endpoint: str,
    target: str,
    script: Optional[Path],
    connections: int,
) -> str:
    """`mode.repeats` wrk runs; the median run's req/s (c=10: its latency and the CPU
    per request over all runs) into `results`; the progress text."""
    name = server.name
    runs, cpu, requests = [], 0.0, 0
    for _ in range(mode.repeats):
        _, cpu_before, _ = server.stats()
        runs.append(wrk(server.port, target, connections, mode.duration, script))
        cpu += server.stats()[1] - cpu_before
        requests += runs[-1]["requests"] - runs[-1]["bad"]
        if runs[-1]["errors"]:
            results.note(name, f"{target} c={connections}: {runs[-1]['errors']}")
    got = sorted(runs, key=lambda run: run["rps"])[len(runs) // 2]
    key = f"{endpoint}_rps_{connections}"
    results.set(name, key, got["rps"])
    text = f"{got['rps']:,.0f} req/s"
    if len(runs) > 1:
        spread = (min(r["rps"] for r in runs), max(r["rps"] for r in runs))
        results.spread.setdefault(name, {})[key] = spread
        text += f" (median; {spread[0]:,.0f} to {spread[1]:,.0f})"
    if connections == 10:
        per_request = cpu * 1e6 / max(1, requests)
        results.set(name, f"{endpoint}_p50", got.get("p50"))
        results.set(name, f"{endpoint}_p99", got.get("p99"))
        results.set(name, f"cpu_{endpoint}", per_request)
        text += f", p50 {got.get('p50', 0):.0f} µs, p99"
        text += f" {got.get('p99', 0):.0f} µs, {per_request:.1f} CPU µs/req"
    return text


def measure_server(
    spec: Spec, mode: Mode, progress: Progress, results: Results, workdir: Path
) -> None:
    """Start `spec` fresh: RSS idle, the round trips and the wrk figures; kill it after."""
    name = spec.name
    left = main_steps(spec)
    wait_quiet(results, name)
    with reported(progress, results, name, "start"):
        progress.step(f"{name} start, RSS idle")
        left -= 1
        with Running(spec, workdir) as server:
            time.sleep(0.5)
            rss, _, processes = server.stats()
            results.set(name, "rss_idle", rss / 1024)
            progress.result(f"port {server.port}, {rss / 1024:.1f} MiB in {processes} process(es)")

            def measure(label: str, action: Callable[[], str]) -> None:
                nonlocal left
                progress.step(f"{name} {label}")
                left -= 1
                if not server.alive():
                    progress.result("server gone")
                    return
                with reported(progress, results, name, label):
                    watch = OtherWork(server)
                    text = action()
                    report_result(progress, results, name, label, text, watch.share())

            for endpoint, target in ENDPOINTS:

                def rtt(endpoint: str = endpoint, target: str = target) -> str:
                    got = round_trips(server.port, target, mode.rtt_count)
                    results.set(name, f"rtt_{endpoint}_median", got["median_us"])
                    results.set(name, f"rtt_{endpoint}_p99", got["p99_us"])
                    return f"median {got['median_us']:.1f} µs, p99 {got['p99_us']:.1f} µs"

                measure(f"lock-step {target} x{mode.rtt_count:,}", rtt)

            runs = mode.runs()
            for endpoint, target, script, concurrencies in loads(spec):
                method = "POST" if script else "GET"
                try:
                    if script:  # a write must be answered 200, or its rate means nothing
                        request_json(server.port, target, "POST", b"1")
                    wrk(server.port, target, 10, mode.warmup, script)
                except Exception as err:
                    results.note(name, f"warm-up {method} {target}: {err}")
                for connections in concurrencies:

                    def load(args=(endpoint, target, script, connections)) -> str:
                        return wrk_figures(server, results, mode, *args)

                    label = f"{target} c={connections}, {runs}"
                    measure(f"POST {label}" if script else label, load)
            if not server.alive():
                results.note(name, f"the server died: {server.log()}")
    progress.skip(left, f"{name} not measured")


def measure_bare(spec: Spec, progress: Progress, results: Results, workdir: Path) -> None:
    """httap started without a config file (the defaults, the simulated board): RSS idle."""
    name = spec.name
    wait_quiet(results, name)
    progress.step(f"{name} start without a config file, RSS idle")
    with reported(progress, results, name, "no config"), Running(spec, workdir, BARE) as server:
        time.sleep(0.5)
        rss = server.stats()[0]
        results.set(name, "rss_bare", rss / 1024)
        progress.result(f"port {server.port}, {rss / 1024:.1f} MiB")


def measure_connections(
    spec: Spec, mode: Mode, progress: Progress, results: Results, workdir: Path
) -> None:
    """A fresh start: RSS after one request per target, then with the idle connections."""
    name = spec.name
    wait_quiet(results, name)
    progress.step(f"{name} {mode.idle_conns:,} idle kept-alive connections, fresh start")
    label = "idle connections"
    with reported(progress, results, name, label), Running(spec, workdir, CONNS) as server:
        watch = OtherWork(server)
        time.sleep(0.5)
        for _, target in ENDPOINTS:  # whatever is loaded lazily is loaded now
            client.open_idle(server.port, target, 1)[0].close()
        time.sleep(0.3)
        before = server.stats()[0]
        sockets = client.open_idle(server.port, GPIO, mode.idle_conns)
        try:
            time.sleep(0.5)
            after = server.stats()[0]
        finally:
            for sock in sockets:
                sock.close()
        per_conn = (after - before) / mode.idle_conns
        results.set(name, "conn_kib", per_conn)
        text = f"{before / 1024:.1f} -> {after / 1024:.1f} MiB, {per_conn:.2f} KiB each"
        report_result(progress, results, name, label, text, watch.share())


def measure_lateness(
    spec: Spec, mode: Mode, progress: Progress, results: Results, workdir: Path
) -> None:
    """A fresh start with the 1 kHz task: its lateness idle, then under wrk -c10 static
    (every deadline counted, the skipped ones too: bench/lateness.py)."""
    name = spec.name
    wait_quiet(results, name)
    progress.step(f"{name} 1 kHz task, idle {mode.idle_tick:g} s, then static c=10 {mode.runs()}")
    with reported(progress, results, name, "1 kHz run"), Running(spec, workdir, TICK) as server:
        path = spec.lateness_path
        watch = OtherWork(server)
        time.sleep(0.5)
        request_json(server.port, path)  # start a new series
        time.sleep(mode.idle_tick)
        idle = request_json(server.port, path)
        wrk(server.port, STATIC, 10, mode.warmup)
        loaded = []
        for _ in range(mode.repeats):
            request_json(server.port, path)
            got = wrk(server.port, STATIC, 10, mode.duration)
            loaded.append({**request_json(server.port, path), "rps": got["rps"]})
            if got["errors"]:
                results.note(name, f"1 kHz run: {got['errors']}")
        other = watch.share()
        loaded.sort(key=lambda run: run["p99_us"])
        median = loaded[len(loaded) // 2]
        for key in ("p50", "p99", "max"):
            results.set(name, f"late_{key}", median[f"{key}_us"])
        results.set(name, "late_skipped", median["skipped"])
        results.set(name, "late_idle_p99", idle["p99_us"])
        results.set(name, "late_idle_max", idle["max_us"])
        results.set(name, "late_idle_skipped", idle["skipped"])
        text = (
            f"idle p99 {idle['p99_us']:.0f}, max {idle['max_us']:.0f} µs, {idle['skipped']}"
            f" of {idle['deadlines']} deadlines skipped; loaded ({median['rps']:,.0f} req/s)"
            f" p50 {median['p50_us']:.0f}, p99 {median['p99_us']:.0f},"
            f" max {median['max_us']:.0f} µs, {median['skipped']} of {median['deadlines']}"
            " deadlines skipped"
        )
        if len(loaded) > 1:
            spread = (loaded[0]["p99_us"], loaded[-1]["p99_us"])
            results.spread.setdefault(name, {})["late_p99"] = spread
            text += f" (median run by p99; p99 {spread[0]:,.0f} to {spread[1]:,.0f})"
        report_result(progress, results, name, "1 kHz run", text, other)


def measure_push(
    spec: Spec, mode: Mode, progress: Progress, results: Results, workdir: Path
) -> None:
    """httap's event stream, on a fresh start: a write's latency to its event at a
    subscriber, idle and under wrk -c10 on static; then SUBSCRIBERS idle subscribers
    (held by another process): the server's RSS and CPU with them, and the latency."""
    name = spec.name
    count = mode.rtt_count // 2
    wait_quiet(results, name)
    progress.step(f"{name} push: write -> event x{count:,}, idle, static c=10, {SUBSCRIBERS} idle")
    with reported(progress, results, name, "push"), Running(spec, workdir, PUSH) as server:
        watch = OtherWork(server)
        time.sleep(0.5)
        idle = push_latency(server.port, count)
        loaded: list[dict] = []
        load = threading.Thread(
            target=lambda: loaded.append(wrk(server.port, STATIC, 10, mode.duration))
        )
        load.start()
        time.sleep(0.5)  # wrk's connections are busy
        under = push_latency(server.port, count)
        load.join()
        rss = server.stats()[0]
        hold = ["taskset", "-c", LOAD_CPU, sys.executable, str(BENCH / "push.py"), "hold"]
        holder = subprocess.Popen(
            [*hold, "--port", str(server.port), "--count", str(SUBSCRIBERS)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            if holder.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{SUBSCRIBERS} subscribers could not be opened")
            time.sleep(0.5)
            rss_held, cpu_before, _ = server.stats()
            time.sleep(mode.idle_tick)
            cpu_held = (server.stats()[1] - cpu_before) / mode.idle_tick
            many = push_latency(server.port, count)
        finally:
            holder.kill()
            holder.wait()
        per_subscriber = (rss_held - rss) / SUBSCRIBERS
        figures = {
            "push_p50": idle["p50_us"],
            "push_p99": idle["p99_us"],
            "push_load_p50": under["p50_us"],
            "push_load_p99": under["p99_us"],
            "push_subscriber_kib": per_subscriber,
            "push_idle_cpu": cpu_held * 100,
            "push_many_p50": many["p50_us"],
            "push_many_p99": many["p99_us"],
        }
        for key, value in figures.items():
            results.set(name, key, value)
        text = (
            f"idle p50 {idle['p50_us']:.0f}, p99 {idle['p99_us']:.0f} µs; under static c=10"
            f" ({loaded[0]['rps'] if loaded else 0:,.0f} req/s) p50 {under['p50_us']:.0f},"
            f" p99 {under['p99_us']:.0f} µs; {SUBSCRIBERS} idle subscribers:"
            f" {per_subscriber:.1f} KiB each, {cpu_held * 100:.1f} % CPU, p50"
            f" {many['p50_us']:.0f}, p99 {many['p99_us']:.0f} µs"
        )
        report_result(progress, results, name, "push", text, watch.share())


def measure_optional(
    name: str, script: str, tool: str, progress: Progress, results: Results
) -> None:
    """bench/`script`, when it exists and `tool` is installed (else skipped, saying why):
    each key of the JSON object it prints last becomes the row "`name`: KEY" for httap."""
    path = BENCH / script
    label = f"bench/{script}"
    skip = None
    if not path.exists():
        skip = f"{label} does not exist"
    elif not find_tool(tool):
        skip = f"{tool} is not installed"
    else:
        wait_quiet(results, name)
    progress.step(f"httap {name}: {label}")
    if skip:
        progress.result(f"skipped: {skip}")
        return
    with reported(progress, results, "httap", label):
        every_cpu = f"0-{(os.cpu_count() or 1) - 1}"  # not only the harness's load CPU
        command = ["taskset", "-c", every_cpu, httap_python(), str(path)]
        # Its own process group: on a timeout, whatever it started is killed with it.
        script_run = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = script_run.communicate(timeout=OPTIONAL_TIMEOUT)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(script_run.pid, signal.SIGKILL)
            script_run.wait()
        try:
            got = json.loads(out.strip().splitlines()[-1])
        except (IndexError, ValueError):
            problem = (err or out).strip()[-300:]
            raise RuntimeError(f"exit {script_run.returncode}, no JSON object: {problem}") from None
        if not isinstance(got, dict):
            raise RuntimeError(f"printed {type(got).__name__}, not a JSON object")
        for key, value in got.items():
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            shown = value if number or isinstance(value, str) else json.dumps(value)
            results.set("httap", f"{name}.{key}", shown)
            results.extra.append((f"{name}.{key}", f"{name}: {key}", "{:,.1f}" if number else "{}"))
        progress.result(", ".join(f"{key} {value}" for key, value in got.items()) or "nothing")
