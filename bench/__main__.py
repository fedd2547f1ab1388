"""``python -m bench``: start each tracker with a fresh store, run the same workloads against it with
its own best client, and print one table with absolute figures and Cairn's ratio to each peer."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import ceiling, report, systems
from bench.systems import SYSTEMS, Server, System

WORKLOADS = ["ingest", "latency", "overhead", "concurrent", "history", "buckets", "runs", "registry", "artifacts",
             "ceiling"]
DEFAULT_POSTGRES = "postgresql://cairn:cairn@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Sizes:
    name: str
    reps: int
    ingest_points: int
    overhead_points: int
    budget_s: float  # how long a throughput workload may run before it stops and reports what it did
    latency_calls: int
    clients: int
    client_batches: int
    history_points: int
    bucket_points: int
    run_counts: tuple[int, ...]
    runs_budget_s: float
    seed_budget_s: float  # how long a slow server may take to be given the long metric the reads read
    versions: int
    big_mb: int
    small_files: int


QUICK = Sizes("quick", reps=3, ingest_points=200_000, overhead_points=100_000, budget_s=2, latency_calls=200,
              clients=16, client_batches=5, history_points=20_000, bucket_points=100_000, run_counts=(300,),
              runs_budget_s=4, seed_budget_s=8, versions=30, big_mb=32, small_files=200)
FULL = Sizes("full", reps=3, ingest_points=1_000_000, overhead_points=1_000_000, budget_s=20, latency_calls=2000,
             clients=16, client_batches=50, history_points=100_000, bucket_points=1_000_000,
             run_counts=(2_000, 100_000), runs_budget_s=150, seed_budget_s=180, versions=1_000, big_mb=1024,
             small_files=10_000)

# Clients whose queues drain slowly get fewer points where the work is queued first and drained after
# (a time budget cannot stop a drain that has already been queued).
QUEUED_POINTS = {"mlflow_client": {"quick": 2_000, "full": 20_000}, "aim_sdk": {"quick": 1_000, "full": 10_000}}


RUN_CLIENTS = 4  # runs are made by 4 clients side by side, as several training jobs would


def runs_budget(system: System, count: int, sizes: Sizes) -> float:
    """Cairn's own SDK makes every run of the largest workload, because its search target is stated over
    100,000 runs; every other column stops at the budget (at their rates 100,000 runs take hours)."""
    if system.name == "cairn" and count == max(sizes.run_counts):
        return 4 * 3600.0
    return sizes.runs_budget_s


def params_for(workload: str, system: System, sizes: Sizes) -> list[dict[str, Any]]:
    queued = QUEUED_POINTS.get(system.driver, {}).get(sizes.name)
    if workload == "ingest":
        points = min(sizes.ingest_points, queued) if system.driver == "aim_sdk" and queued else sizes.ingest_points
        return [{"points": points, "reps": sizes.reps, "budget_s": sizes.budget_s}]
    if workload == "overhead":
        points = min(sizes.overhead_points, queued) if queued else sizes.overhead_points
        return [{"points": points, "reps": sizes.reps, "budget_s": sizes.budget_s}]
    if workload == "latency":
        return [{"calls": sizes.latency_calls}]
    if workload == "concurrent":
        batch_points = 100 if system.driver == "aim_sdk" else 1000  # Aim: 16 clients x 100 points a batch
        return [{"clients": sizes.clients, "batches": sizes.client_batches, "batch_points": batch_points,
                 "budget_s": sizes.budget_s * 2}]
    if workload == "history":
        return [{"points": sizes.history_points, "reps": sizes.reps, "seed_budget_s": sizes.seed_budget_s}]
    if workload == "buckets":
        return [{"points": sizes.bucket_points, "buckets": 1000, "reps": max(5, sizes.reps),
                 "seed_budget_s": sizes.seed_budget_s}]
    if workload == "runs":
        return [{"count": n, "reps": max(5, sizes.reps), "clients": RUN_CLIENTS,
                 "budget_s": runs_budget(system, n, sizes)} for n in sizes.run_counts]
    if workload == "registry":
        return [{"versions": sizes.versions}]
    if workload == "artifacts":
        return [{"big_mb": sizes.big_mb, "small_files": sizes.small_files, "small_size": 2048,
                 "served": system.server != "fasttrackml"}]
    raise ValueError(workload)


class Runner:
    def __init__(self, sizes: Sizes, root: Path, verbose: bool) -> None:
        self.sizes, self.root, self.verbose = sizes, root, verbose
        self.failed: list[str] = []

    def driver(self, system: System, server: Server, workload: str, params: dict[str, Any]) -> dict[str, Any]:
        python = sys.executable if system.client_env is None else str(systems.peer_bin(system.client_env, "python"))
        script = Path(__file__).parent / "drivers" / f"{system.driver}.py"
        if server.repo is not None:
            params = {**params, "repo_path": str(server.repo)}
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "CAIRN_HOME": str(self.root / "client-home"),
               "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "PYTHONPATH": ""}
        done = subprocess.run([python, str(script), workload, "--url", server.url, "--params", json.dumps(params)],
                              capture_output=True, text=True, env=env, timeout=3600, check=False)
        if self.verbose or done.returncode:
            sys.stderr.write(done.stderr[-4000:])
        if done.returncode:
            raise RuntimeError(f"{system.name} {workload} failed: {done.stderr.strip().splitlines()[-1:]}")
        answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return answer

    def system(self, system: System, workloads: list[str], admin_url: str | None) -> tuple[dict[str, Any], list[str]]:
        figures: dict[str, Any] = {}
        notes: list[str] = []
        print(f"\n{system.label}", flush=True)
        try:
            server = systems.start(system.server, self.root, admin_url)
        except RuntimeError as exc:
            self.failed.append(f"{system.name}/server")
            print(f"    FAILED {exc}", flush=True)
            return figures, [f"FAILED: {str(exc).splitlines()[0]}"]
        try:
            time.sleep(1.0)
            figures["idle_mb"] = server.pss_mb()
            for workload in workloads:
                for params in params_for(workload, system, self.sizes):
                    started = time.perf_counter()
                    try:
                        got = self.run_one(system, server, workload, params)
                    except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
                        self.failed.append(f"{system.name}/{workload}")
                        notes.append(f"{workload}: FAILED {exc}")
                        print(f"    {workload}: FAILED {exc}", flush=True)
                        continue
                    figures.update(got["figures"])
                    notes += [f"{workload}: {n}" for n in got["notes"]]
                    shown = ", ".join(f"{k}={report.fmt(v)}" for k, v in got["figures"].items())
                    print(f"    {workload} ({time.perf_counter() - started:.0f} s): {shown or 'n/a'}", flush=True)
            figures["after_mb"] = server.pss_mb()
        finally:
            server.stop()
            if server.postgres and admin_url:
                systems.drop_database(admin_url, server.postgres)
        return figures, notes

    def run_one(self, system: System, server: Server, workload: str, params: dict[str, Any]) -> dict[str, Any]:
        before = server.store_bytes() if workload == "ingest" else 0
        got = self.driver(system, server, workload, params)
        found = got["figures"]
        if workload == "ingest" and found.get("ingest_points_total"):
            found["bytes_per_point"] = (server.store_bytes() - before) / found.pop("ingest_points_total")
        if workload == "runs":
            n = params["count"]
            for key in ("create_rps", "filtered_ms", "ordered_ms"):
                if key in found:
                    found[f"runs{n}_{key}"] = found.pop(key)
            created, hits = found.pop("runs_created", n), found.pop("search_hits", None)
            if created < n:
                got["notes"].append(f"runs: {created:,} of {n:,} runs created within the {params['budget_s']:.0f} s "
                                    "budget; its searches ran over those")
            if hits is not None:
                got["notes"].append(f"runs: the filtered search over {created:,} runs found {hits} runs")
        found.pop("ingest_points", None)
        return got


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem / 2**20, 1),
            "os": platform.platform(), "python": platform.python_version(), "sqlite": sqlite3.sqlite_version}


def versions(selected: list[System]) -> dict[str, str]:
    out = {"cairn": metadata.version("cairn-ml")}
    for peer in sorted({s.client_env for s in selected if s.client_env}):
        out[peer] = systems.peer_version(peer)
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: the whole table in a few minutes")
    parser.add_argument("--postgres", nargs="?", const=os.environ.get("CAIRN_BENCH_POSTGRES_URL", DEFAULT_POSTGRES),
                        metavar="ADMIN_URL", help="PostgreSQL stores: a fresh database per server, made through "
                        f"this URL (default $CAIRN_BENCH_POSTGRES_URL or {DEFAULT_POSTGRES})")
    parser.add_argument("--only", help=f"comma-separated workloads out of: {', '.join(WORKLOADS)}")
    parser.add_argument("--systems", default=",".join(s.name for s in SYSTEMS),
                        help="comma-separated systems (default: all): " + ", ".join(s.name for s in SYSTEMS))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results",
                        help="folder for the JSON and markdown results (default bench/results)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the drivers' progress")
    args = parser.parse_args(argv)
    args.workloads = args.only.split(",") if args.only else WORKLOADS
    unknown = set(args.workloads) - set(WORKLOADS)
    by_name = {s.name: s for s in SYSTEMS}
    args.selected = [by_name[n] for n in args.systems.split(",") if n in by_name]
    unknown |= set(args.systems.split(",")) - set(by_name)
    if unknown:
        parser.error(f"unknown workload or system: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    store = "PostgreSQL" if args.postgres else "SQLite"
    started = time.perf_counter()
    for peer in sorted({s.client_env for s in args.selected if s.client_env}):
        systems.ensure_peer(peer)
    info = {"machine": machine(), "versions": versions(args.selected), "store": store, "sizes": sizes.__dict__,
            "command": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(f"benchmark: {sizes.name} sizes, {store} stores, {info['machine']['cores']} cores, "
          f"{info['machine']['cpu']}; " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()), flush=True)
    results: dict[str, dict[str, Any]] = {}
    notes: dict[str, list[str]] = {}
    server_workloads = [w for w in args.workloads if w != "ceiling"]
    with tempfile.TemporaryDirectory(prefix="cairn-bench-") as tmp:
        runner = Runner(sizes, Path(tmp), args.verbose)
        for system in args.selected:
            if server_workloads:
                results[system.name], notes[system.name] = runner.system(system, server_workloads, args.postgres)
                args.out.mkdir(parents=True, exist_ok=True)  # so far, in case a long run is cut short
                (args.out / "partial.json").write_text(json.dumps({**info, "results": results, "notes": notes}))
    if "ceiling" in args.workloads:
        print("\nthe database alone", flush=True)
        if args.postgres:
            raw = ceiling.postgres_points_per_s(systems.plain(args.postgres), sizes.ingest_points, sizes.reps)
        else:
            raw = ceiling.sqlite_points_per_s(sizes.ingest_points, sizes.reps)
        results["database"] = {"raw_pps": raw}
        print(f"    raw inserts: {report.fmt(raw)} points/s", flush=True)
        if results.get("cairn", {}).get("ingest_pps"):
            results["cairn"]["ceiling_pct"] = results["cairn"]["ingest_pps"] / raw * 100
    return finish(args, info, results, notes, runner.failed, time.perf_counter() - started)


def finish(args: argparse.Namespace, info: dict[str, Any], results: dict[str, dict[str, Any]],
           notes: dict[str, list[str]], failed: list[str], elapsed: float) -> int:
    labels = {s.name: s.label for s in args.selected}
    if "database" in results:
        labels["database"] = f"{info['store']} alone"
    peers = [s.name for s in args.selected if s.server != "cairn"]
    figs = report.figures(list(QUICK.run_counts if args.quick else FULL.run_counts))
    header, body = report.rows(results, labels, figs, peers, with_targets=info["store"] == "SQLite")
    print("\n" + report.text_table(header, body))
    for name, items in notes.items():
        for note in items:
            print(f"  {labels[name]}: {note}")
    missed = [row[0] for row in body if row[-1] == "MISSED"]
    print(f"\n{len(body)} figures in {elapsed / 60:.1f} min; Cairn's targets missed: {', '.join(missed) or 'none'}"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{'quick' if args.quick else 'full'}-{info['store'].lower()}"
    payload = {**info, "elapsed_s": round(elapsed), "results": results, "notes": notes, "failed": failed,
               "missed": missed}
    (args.out / f"{stem}.json").write_text(json.dumps(payload, indent=2))
    lines = [f"Run {info['date']} with `{info['command']}` in {elapsed / 60:.1f} min.", "",
             report.markdown_table(header, body), ""]
    lines += [f"- {labels[name]}: {note}" for name, items in notes.items() for note in items]
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"written: {args.out / (stem + '.json')}, {args.out / (stem + '.md')}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
