"""Drives a Cairn server with Cairn's own SDK (``cairn``), from the project's virtual environment."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import (
    concurrent_figures,
    create_runs,
    fork_clients,
    main,
    make_big_file,
    make_files,
    over_budget,
    percentile,
    repeat,
    scratch,
    timed,
)

KEYS = [f"m{i}" for i in range(10)]


def _connect(url: str) -> Any:
    os.environ["CAIRN_TRACKING_URI"] = url
    os.environ.setdefault("CAIRN_HOME", str(scratch()))
    import cairn

    return cairn


def _log_steps(cairn: Any, points: int, budget_s: float) -> tuple[int, float, float]:
    """Log ``points`` points, 10 keys a step, through a run's background sender. Returns the points
    logged, the time spent inside the SDK calls and the time until the server had them all."""
    run = cairn.start_run(experiment="bench-ingest", capture_source=False)
    start = time.perf_counter()
    steps = points // len(KEYS)
    for step in range(steps):
        run.log_metrics({k: step * 0.001 + i for i, k in enumerate(KEYS)}, step=step)
        if step % 1000 == 999 and over_budget(start, budget_s):
            steps = step + 1
            break
    enqueue = time.perf_counter() - start
    cairn.flush()
    total = time.perf_counter() - start
    run.finish()
    return steps * len(KEYS), enqueue, total


def ingest(url: str, p: dict[str, Any]) -> dict[str, Any]:
    cairn = _connect(url)
    logged: list[int] = []

    def once(_: int) -> float:
        n, _enqueue, total = _log_steps(cairn, p["points"], p["budget_s"])
        logged.append(n)
        return n / total

    return {"ingest_pps": repeat(once, p["reps"]), "ingest_points": logged[-1], "ingest_points_total": sum(logged)}


def overhead(url: str, p: dict[str, Any]) -> dict[str, Any]:
    cairn = _connect(url)

    def once(_: int) -> float:
        n, enqueue, _total = _log_steps(cairn, p["points"], p["budget_s"])
        return enqueue / n * 1e6

    return {"overhead_us": repeat(once, p["reps"])}


def latency(url: str, p: dict[str, Any]) -> dict[str, Any]:
    cairn = _connect(url)
    client = cairn.Client()
    run = client.create_run("bench-latency")
    for i in range(50):
        client.log_metric(run.id, "x", float(i), step=i)
    samples = []
    for i in range(p["calls"]):
        start = time.perf_counter()
        client.log_metric(run.id, "x", float(i), step=50 + i)
        samples.append(time.perf_counter() - start)
    return {"latency_p50_ms": percentile(samples, 0.5) * 1e3, "latency_p99_ms": percentile(samples, 0.99) * 1e3}


def concurrent(url: str, p: dict[str, Any]) -> dict[str, Any]:
    cairn = _connect(url)
    per_key = p["batch_points"] // len(KEYS)

    def setup(_: int) -> tuple[Any, str]:
        client = cairn.Client()
        return client, client.create_run("bench-concurrent").id

    def work(state: tuple[Any, str]) -> dict[str, Any]:
        client, run_id = state
        latencies, start = [], time.perf_counter()
        for b in range(p["batches"]):
            steps = list(range(b * per_key, (b + 1) * per_key))
            body = [{"key": k, "steps": steps, "values": [s * 0.5 + i for s in steps]} for i, k in enumerate(KEYS)]
            t0 = time.perf_counter()
            client.log_batch(run_id, metrics=body)
            latencies.append(time.perf_counter() - t0)
            if over_budget(start, p["budget_s"]):
                break
        return {"points": len(latencies) * per_key * len(KEYS), "latencies": latencies}

    return concurrent_figures(fork_clients(p["clients"], setup, work))


def _seed(client: Any, points: int) -> str:
    run = client.create_run("bench-read")
    chunk = 100_000
    for first in range(0, points, chunk):
        steps = list(range(first, min(points, first + chunk)))
        client.log_batch(run.id, metrics=[{"key": "loss", "steps": steps, "values": [1 / (s + 1) for s in steps]}])
    return str(run.id)


def history(url: str, p: dict[str, Any]) -> dict[str, Any]:
    client = _connect(url).Client()
    run_id = _seed(client, p["points"])
    assert len(client.get_metric_history(run_id, "loss")) == p["points"]
    return {"history_s": repeat(lambda _: timed(lambda: client.get_metric_history(run_id, "loss")), p["reps"])}


def buckets(url: str, p: dict[str, Any]) -> dict[str, Any]:
    import httpx

    client = _connect(url).Client()
    run_id = _seed(client, p["points"])
    http = httpx.Client(base_url=url, timeout=60)
    query = {"key": "loss", "buckets": p["buckets"]}

    def read() -> None:
        answer = http.get(f"/api/v1/runs/{run_id}/metrics/buckets", params=query)
        answer.raise_for_status()
        assert sum(answer.json()["counts"]) == p["points"]

    return {"buckets_ms": repeat(lambda _: timed(read) * 1e3, p["reps"])}


def runs(url: str, p: dict[str, Any]) -> dict[str, Any]:
    cairn = _connect(url)
    experiment = f"bench-runs-{p['count']}"

    def create(_: None, i: int) -> None:
        with cairn.start_run(experiment=experiment, name=f"r{i}", capture_source=False) as run:
            run.log_params({f"p{j}": (i + j) % 7 for j in range(10)})
            run.log_metrics({f"m{j}": ((i * 7 + j) % 100) / 100 for j in range(5)}, step=0)

    count, rate = create_runs(p, lambda _: None, create)
    client = cairn.Client()
    filtered = {"experiment": experiment, "filter": "metrics.m0 < 0.5 and params.p1 = '3'",
                "order_by": ["metrics.m2 DESC"], "max_results": 100}
    ordered = {"experiment": experiment, "order_by": ["metrics.m1 ASC"], "max_results": 100}
    hits = len(client.search_runs(**filtered))
    return {
        "runs_created": count, "create_rps": rate, "search_hits": hits,
        "filtered_ms": repeat(lambda _: timed(lambda: client.search_runs(**filtered)) * 1e3, p["reps"]),
        "ordered_ms": repeat(lambda _: timed(lambda: client.search_runs(**ordered)) * 1e3, p["reps"]),
    }


class _Constant:
    def predict(self, data: Any) -> Any:
        return data


def registry(url: str, p: dict[str, Any]) -> dict[str, Any]:
    cairn = _connect(url)
    client = cairn.Client()
    with cairn.start_run(experiment="bench-registry", capture_source=False) as run:
        logged = run.log_model(_Constant(), name="model")
    client.register_model(logged.id, "dev.bench")  # warm-up
    start = time.perf_counter()
    for _ in range(p["versions"]):
        client.register_model(logged.id, "dev.bench")
    register = (time.perf_counter() - start) / p["versions"]
    client.set_alias("dev.bench", "champion", p["versions"] // 2)
    alias = repeat(lambda _: timed(lambda: client.get_model_version_by_alias("dev.bench", "champion")), 50)
    return {"register_ms": register * 1e3, "alias_ms": alias * 1e3}


def artifacts(url: str, p: dict[str, Any]) -> dict[str, Any]:
    client = _connect(url).Client()
    root = scratch()
    run = client.create_run("bench-artifacts")
    big = make_big_file(root, p["big_mb"])
    small = make_files(root, p["small_files"], p["small_size"])
    up = timed(lambda: client.upload_artifact(run.id, big, "big.bin"))
    down = timed(lambda: client.download_artifact(run.id, "big.bin", root / "down"))
    files = sorted(small.iterdir())
    up_small = timed(lambda: client.upload_artifacts(run.id, small, "small"))  # as mlflow's log_artifacts
    down_small = timed(lambda: client.download_artifact(run.id, "small", root / "down-small"))
    assert len(list((root / "down-small" / "small").iterdir())) == len(files)
    return {"big_up_mbps": p["big_mb"] / up, "big_down_mbps": p["big_mb"] / down,
            "small_up_fps": len(files) / up_small, "small_down_fps": len(files) / down_small}


if __name__ == "__main__":
    main({f.__name__: f for f in (ingest, overhead, latency, concurrent, history, buckets, runs, registry,
                                  artifacts)})
