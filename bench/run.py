"""Cairn's tracking benchmark: one machine, one run, one table.

    python bench/run.py [--quick] [--postgres URL] [--json results.json]

Starts ``cairn server`` on a free loopback port with a fresh store, drives it with Cairn's own SDK
and prints absolute figures next to the targets of issue 2. Medians of repeated measurements where a
workload is short. (Peers such as MLflow are added side by side by the peer benchmark.)
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


@dataclass
class Result:
    name: str
    value: float
    unit: str
    target: str = ""
    ok: bool | None = None
    note: str = ""


@dataclass
class Sizes:
    ingest_points: int
    latency_calls: int
    history_points: int
    runs: int
    search_repeats: int
    versions: int


QUICK = Sizes(ingest_points=300_000, latency_calls=1000, history_points=100_000, runs=500, search_repeats=10,
              versions=200)
FULL = Sizes(ingest_points=1_000_000, latency_calls=3000, history_points=100_000, runs=2000, search_repeats=30,
             versions=1000)


@dataclass
class Bench:
    url: str
    pid: int
    home: Path
    results: list[Result] = field(default_factory=list)

    def add(self, result: Result) -> None:
        self.results.append(result)
        mark = {True: "ok", False: "MISSED", None: ""}[result.ok]
        print(f"  {result.name:<44} {result.value:>14,.3f} {result.unit:<10} {result.target:<14} {mark}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(home: Path, store_uri: str | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "cairn", "server", "--host", "127.0.0.1", "--port", str(port)]
    if store_uri:
        command += ["--store-uri", store_uri]
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(command, env={**os.environ, "CAIRN_HOME": str(home)}, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"server did not start; see {home / 'server.log'}")


def pss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    kb = next(int(line.split()[1]) for line in text.splitlines() if line.startswith("Pss:"))
    return kb / 1024


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_ingest(b: Bench, n: int) -> None:
    import cairn

    keys = [f"m{i}" for i in range(10)]
    steps = n // len(keys)
    run = cairn.start_run(experiment="bench-ingest", capture_source=False)
    start = time.perf_counter()
    for step in range(steps):
        run.log_metrics({k: step * 0.001 + i for i, k in enumerate(keys)}, step=step)
    enqueue = time.perf_counter() - start
    cairn.flush()
    total = time.perf_counter() - start
    run.finish()
    b.add(Result("ingest through the SDK (points/s)", n / total, "points/s", ">= 250,000", n / total >= 250_000))
    b.add(Result("SDK call overhead (µs per point)", enqueue / n * 1e6, "µs", "<= 5", enqueue / n * 1e6 <= 5))


def bench_latency(b: Bench, calls: int) -> None:
    import cairn

    client = cairn.Client()
    run = client.create_run("bench-latency")
    for i in range(50):  # warm-up
        client.log_metric(run.id, "x", float(i), step=i)
    samples = []
    for i in range(calls):
        start = time.perf_counter()
        client.log_metric(run.id, "x", float(i), step=50 + i)
        samples.append(time.perf_counter() - start)
    samples.sort()
    p50, p99 = samples[len(samples) // 2] * 1000, samples[int(len(samples) * 0.99)] * 1000
    b.add(Result("log_metric round trip p50", p50, "ms", "<= 1 ms", p50 <= 1.0))
    b.add(Result("log_metric round trip p99", p99, "ms"))


def bench_history(b: Bench, n: int) -> None:
    import cairn

    client = cairn.Client()
    run = client.create_run("bench-history")
    chunk = 50_000
    for start in range(0, n, chunk):
        steps = list(range(start, min(n, start + chunk)))
        client.log_batch(run.id, metrics=[{"key": "loss", "steps": steps, "values": [s * 1e-5 for s in steps]}])
    times = [timed(lambda: client.get_metric_history(run.id, "loss")) for _ in range(5)]
    assert len(client.get_metric_history(run.id, "loss")) == n
    median = statistics.median(times)
    b.add(Result(f"read a {n:,}-point history", median, "s", "<= 0.25 s", median <= 0.25))


def bench_runs_and_search(b: Bench, runs: int, repeats: int) -> None:
    import cairn

    start = time.perf_counter()
    for i in range(runs):
        with cairn.start_run(experiment="bench-search", name=f"r{i}", capture_source=False) as run:
            run.log_params({f"p{j}": (i + j) % 7 for j in range(10)})
            run.log_metrics({f"m{j}": ((i * 7 + j) % 100) / 100 for j in range(5)}, step=0)
    elapsed = time.perf_counter() - start
    b.add(Result(f"create {runs:,} runs (10 params, 5 metrics)", runs / elapsed, "runs/s"))
    client = cairn.Client()
    query = {"experiment": "bench-search", "filter": "metrics.m0.min < 0.5 and params.p1 = '3'",
             "order_by": ["metrics.m2.max DESC"], "max_results": 100}
    found = client.search_runs(**query)  # type: ignore[arg-type]
    times = [timed(lambda: client.search_runs(**query)) for _ in range(repeats)]  # type: ignore[arg-type]
    median = statistics.median(times) * 1000
    b.add(Result(f"filtered search over {runs:,} runs ({len(found)} hits)", median, "ms", "<= 20 ms", median <= 20))


class _Constant:
    """A tiny model for the registry workload (pickled by reference from this module)."""

    def predict(self, data: Any) -> Any:
        return data


def bench_registry(b: Bench, versions: int) -> None:
    import cairn

    client = cairn.Client()
    with cairn.start_run(experiment="bench-registry", capture_source=False) as run:
        logged = run.log_model(_Constant(), name="model")
    start = time.perf_counter()
    for _ in range(versions):
        client.register_model(logged.id, "dev.bench")
    elapsed = time.perf_counter() - start
    b.add(Result(f"register {versions:,} model versions", elapsed / versions * 1000, "ms each"))
    client.set_alias("dev.bench", "champion", versions)
    times = [timed(lambda: client.get_model_version_by_alias("dev.bench", "champion")) for _ in range(50)]
    b.add(Result("resolve an alias (median)", statistics.median(times) * 1000, "ms"))


def bench_disk(b: Bench, points: int, store_uri: str | None) -> None:
    if store_uri:
        b.add(Result("bytes on disk per point", 0, "n/a", note="PostgreSQL: see pg_total_relation_size"))
        return
    size = sum(p.stat().st_size for p in b.home.glob("cairn.db*"))
    b.add(Result("bytes on disk per point (whole store)", size / points, "bytes"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes; finishes in about a minute")
    parser.add_argument("--postgres", metavar="URL", help="use this PostgreSQL database (it is written to)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="cairn-bench-") as tmp:
        home = Path(tmp) / "server"
        home.mkdir()
        proc, url = start_server(home, args.postgres)
        os.environ.update({"CAIRN_TRACKING_URI": url, "CAIRN_HOME": str(Path(tmp) / "client")})
        bench = Bench(url, proc.pid, home)
        print(f"cairn benchmark: {'quick' if args.quick else 'full'} sizes, store "
              f"{'PostgreSQL' if args.postgres else 'SQLite'}, {os.cpu_count()} cores\n")
        print(f"  {'workload':<44} {'value':>14} {'unit':<10} {'target':<14}")
        try:
            time.sleep(1.0)
            idle = pss_mb(proc.pid)
            bench.add(Result("server memory, idle (PSS)", idle, "MB", "<= 100 MB", idle <= 100))
            bench_ingest(bench, sizes.ingest_points)
            bench_latency(bench, sizes.latency_calls)
            bench_history(bench, sizes.history_points)
            bench_runs_and_search(bench, sizes.runs, sizes.search_repeats)
            bench_registry(bench, sizes.versions)
            total_points = sizes.ingest_points + sizes.history_points + sizes.latency_calls + 50 + sizes.runs * 5
            bench_disk(bench, total_points, args.postgres)
            bench.add(Result("server memory after the suite (PSS)", pss_mb(proc.pid), "MB"))
        finally:
            proc.terminate()
            proc.wait(10)
        missed = [r.name for r in bench.results if r.ok is False]
        print(f"\n{len(bench.results)} figures, {len(missed)} targets missed" + (f": {missed}" if missed else ""))
        if args.json:
            Path(args.json).write_text(json.dumps([r.__dict__ for r in bench.results], indent=2))


if __name__ == "__main__":
    main()
