"""Drives Aim with its own SDK. Writes go to ``aim server`` (remote tracking, ``aim://``), the way a
team shares one Aim; Aim's SDK cannot read through that server, so reads open the server's repository
folder directly (``Repo(path)``), which is the fastest read Aim has."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import concurrent_figures, create_runs, fork_clients, main, over_budget, repeat, timed

KEYS = [f"m{i}" for i in range(10)]


def _track_steps(run: Any, points: int, budget_s: float, start: float) -> int:
    steps = points // len(KEYS)
    for step in range(steps):
        run.track({k: step * 0.001 + i for i, k in enumerate(KEYS)}, step=step)
        if step % 100 == 99 and over_budget(start, budget_s):
            return (step + 1) * len(KEYS)
    return steps * len(KEYS)


def ingest(url: str, p: dict[str, Any]) -> dict[str, Any]:
    from aim import Run

    logged: list[int] = []

    def once(_: int) -> float:
        start = time.perf_counter()
        run = Run(repo=url, experiment="bench-ingest")
        n = _track_steps(run, p["points"], p["budget_s"], start)
        run.close()  # returns once the server has every point
        logged.append(n)
        return n / (time.perf_counter() - start)

    return {"ingest_pps": repeat(once, p["reps"]), "ingest_points": logged[-1], "ingest_points_total": sum(logged)}


def overhead(url: str, p: dict[str, Any]) -> dict[str, Any]:
    from aim import Run

    def once(_: int) -> float:
        run = Run(repo=url, experiment="bench-overhead")
        start = time.perf_counter()
        n = _track_steps(run, p["points"], p["budget_s"], start)
        enqueue = time.perf_counter() - start
        run.close()
        return enqueue / n * 1e6

    return {"overhead_us": repeat(once, p["reps"])}


def latency(url: str, p: dict[str, Any]) -> dict[str, Any]:
    p["_notes"].append("Aim's SDK has no synchronous single-point call: track() only queues")
    return {}


def concurrent(url: str, p: dict[str, Any]) -> dict[str, Any]:
    """Aim's track() only queues, so there is no batch latency; the clock stops when every run is closed."""
    from aim import Run

    per_key = p["batch_points"] // len(KEYS)

    def setup(_: int) -> Any:
        return Run(repo=url, experiment="bench-concurrent")

    def work(run: Any) -> dict[str, Any]:
        start, steps = time.perf_counter(), 0
        for _ in range(p["batches"]):
            for _ in range(per_key):
                run.track({k: steps * 0.5 + i for i, k in enumerate(KEYS)}, step=steps)
                steps += 1
            if over_budget(start, p["budget_s"]):
                break
        run.close()
        return {"points": steps * len(KEYS), "latencies": []}

    return concurrent_figures(fork_clients(p["clients"], setup, work))


def _seed(repo_path: str, points: int) -> str:
    from aim import Run

    run = Run(repo=repo_path, experiment="bench-read")
    for step in range(points):
        run.track(1 / (step + 1), name="loss", step=step)
    run.close()
    return str(run.hash)


def history(url: str, p: dict[str, Any]) -> dict[str, Any]:
    from aim import Repo
    from aim.storage.context import Context

    run_hash = _seed(p["repo_path"], p["points"])
    if Repo(p["repo_path"]).get_run(run_hash) is None:
        p["_notes"].append("Repo.get_run could not find the run just written (Aim 3.29.1 here), so no read")
        return {}

    def read() -> None:
        metric = Repo(p["repo_path"]).get_run(run_hash).get_metric("loss", Context({}))
        steps, _values = metric.values.sparse_numpy()
        assert len(steps) == p["points"], len(steps)

    return {"history_s": repeat(lambda _: timed(read), p["reps"])}


def buckets(url: str, p: dict[str, Any]) -> dict[str, Any]:
    p["_notes"].append("Aim's SDK has no downsampled read (its UI samples inside its own web server)")
    return {}


def runs(url: str, p: dict[str, Any]) -> dict[str, Any]:
    from aim import Repo, Run

    experiment = f"bench-runs-{p['count']}"

    def create(_: None, i: int) -> None:
        run = Run(repo=url, experiment=experiment)
        run["hparams"] = {f"p{j}": (i + j) % 7 for j in range(10)}
        run.track({f"m{j}": ((i * 7 + j) % 100) / 100 for j in range(5)}, step=0)
        run.close()

    count, rate = create_runs(p, lambda _: None, create)
    query = f"run.experiment == '{experiment}' and run.hparams.p1 == 3"
    p["_notes"].append("Aim's run query filters on params only and cannot order; both searches run the same query")

    def search() -> int:
        return sum(1 for _ in Repo(p["repo_path"]).query_runs(query, report_mode=0).iter_runs())

    hits = search()
    if not hits:
        p["_notes"].append(f"query_runs found none of the {count} runs just written (Aim 3.29.1 here), so no search")
        return {"runs_created": count, "create_rps": rate}
    searched = repeat(lambda _: timed(search) * 1e3, p["reps"])
    return {"runs_created": count, "create_rps": rate, "search_hits": hits, "filtered_ms": searched}


def registry(url: str, p: dict[str, Any]) -> dict[str, Any]:
    p["_notes"].append("Aim has no model registry")
    return {}


def artifacts(url: str, p: dict[str, Any]) -> dict[str, Any]:
    p["_notes"].append("Aim's tracking server does not carry artifacts (they go to an object store URI)")
    return {}


if __name__ == "__main__":
    main({f.__name__: f for f in (ingest, overhead, latency, concurrent, history, buckets, runs, registry,
                                  artifacts)})
