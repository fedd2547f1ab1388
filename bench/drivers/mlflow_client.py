"""Drives an MLflow-protocol server (MLflow, FastTrackML, or Cairn's MLflow API) with the ``mlflow``
client installed in the running interpreter: ``log_batch`` with 1,000 metrics where it batches."""

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
BATCH = 1000  # MLflow's limit of metrics per log_batch


def _client(url: str) -> Any:
    os.environ["MLFLOW_TRACKING_URI"] = url
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(url)
    return MlflowClient(url)


def _experiment(client: Any, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return str(found.experiment_id if found else client.create_experiment(name))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _log_steps(client: Any, run_id: str, first: int, steps: int, keys: list[str]) -> int:
    from mlflow.entities import Metric

    now = _now_ms()
    batch = [Metric(k, first * 0.5 + s + i, now, first + s) for s in range(steps) for i, k in enumerate(keys)]
    for at in range(0, len(batch), BATCH):
        client.log_batch(run_id, metrics=batch[at:at + BATCH])
    return len(batch)


def ingest(url: str, p: dict[str, Any]) -> dict[str, Any]:
    client = _client(url)
    experiment = _experiment(client, "bench-ingest")
    logged: list[int] = []

    def once(_: int) -> float:
        run_id = client.create_run(experiment).info.run_id
        n, step, start = 0, 0, time.perf_counter()
        per_call = BATCH // len(KEYS)
        while n < p["points"] and not over_budget(start, p["budget_s"]):
            n += _log_steps(client, run_id, step, per_call, KEYS)
            step += per_call
        logged.append(n)
        return n / (time.perf_counter() - start)

    return {"ingest_pps": repeat(once, p["reps"]), "ingest_points": logged[-1], "ingest_points_total": sum(logged)}


def overhead(url: str, p: dict[str, Any]) -> dict[str, Any]:
    """``mlflow.log_metrics(..., synchronous=False)``: MLflow's queue that does not block training."""
    import mlflow

    _client(url)
    mlflow.set_experiment("bench-overhead")

    def once(_: int) -> float:
        with mlflow.start_run():
            steps = p["points"] // len(KEYS)
            start = time.perf_counter()
            for step in range(steps):
                mlflow.log_metrics({k: step * 0.001 + i for i, k in enumerate(KEYS)}, step=step, synchronous=False)
            enqueue = time.perf_counter() - start
            mlflow.flush_async_logging()
        return enqueue / (steps * len(KEYS)) * 1e6

    return {"overhead_us": repeat(once, p["reps"])}


def latency(url: str, p: dict[str, Any]) -> dict[str, Any]:
    client = _client(url)
    run_id = client.create_run(_experiment(client, "bench-latency")).info.run_id
    for i in range(50):
        client.log_metric(run_id, "x", float(i), step=i)
    samples = []
    for i in range(p["calls"]):
        start = time.perf_counter()
        client.log_metric(run_id, "x", float(i), step=50 + i)
        samples.append(time.perf_counter() - start)
    return {"latency_p50_ms": percentile(samples, 0.5) * 1e3, "latency_p99_ms": percentile(samples, 0.99) * 1e3}


def concurrent(url: str, p: dict[str, Any]) -> dict[str, Any]:
    _client(url)
    per_key = p["batch_points"] // len(KEYS)

    def setup(_: int) -> tuple[Any, str]:
        client = _client(url)
        try:
            experiment = _experiment(client, "bench-concurrent")
        except Exception:
            experiment = _experiment(client, "bench-concurrent")
        return client, client.create_run(experiment).info.run_id

    def work(state: tuple[Any, str]) -> dict[str, Any]:
        client, run_id = state
        latencies, start = [], time.perf_counter()
        for b in range(p["batches"]):
            t0 = time.perf_counter()
            _log_steps(client, run_id, b * per_key, per_key, KEYS)
            latencies.append(time.perf_counter() - t0)
            if over_budget(start, p["budget_s"]):
                break
        return {"points": len(latencies) * per_key * len(KEYS), "latencies": latencies}

    return concurrent_figures(fork_clients(p["clients"], setup, work))


def _seed(client: Any, p: dict[str, Any]) -> tuple[str, int]:
    """A run with one long metric; a slow server stops at the seeding budget and is read over what it has."""
    run_id = client.create_run(_experiment(client, "bench-read")).info.run_id
    start, points = time.perf_counter(), p["points"]
    for first in range(0, p["points"], BATCH):
        _log_steps(client, run_id, first, min(BATCH, p["points"] - first), ["loss"])
        if over_budget(start, p["seed_budget_s"]):
            points = first + min(BATCH, p["points"] - first)
            p["_notes"].append(f"seeded {points:,} of {p['points']:,} points within the "
                               f"{p['seed_budget_s']:.0f} s budget; read over those")
            break
    return str(run_id), points


def history(url: str, p: dict[str, Any]) -> dict[str, Any]:
    client = _client(url)
    run_id, points = _seed(client, p)
    got = len(client.get_metric_history(run_id, "loss"))
    if got != points:
        p["_notes"].append(f"get_metric_history returned {got:,} of {points:,} points")
    return {"history_s": repeat(lambda _: timed(lambda: client.get_metric_history(run_id, "loss")), p["reps"])}


def buckets(url: str, p: dict[str, Any]) -> dict[str, Any]:
    """MLflow has no aggregated read; its charts use get-history-bulk-interval, which samples points."""
    import requests

    client = _client(url)
    run_id, _points = _seed(client, p)
    session = requests.Session()
    endpoint = f"{url}/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"
    query = {"run_ids": run_id, "metric_key": "loss", "max_results": p["buckets"]}
    first = session.get(endpoint, params=query, timeout=120)
    if first.status_code != 200:
        p["_notes"].append(f"get-history-bulk-interval answered {first.status_code}")
        return {}

    def read() -> None:
        session.get(endpoint, params=query, timeout=120).raise_for_status()

    return {"buckets_ms": repeat(lambda _: timed(read) * 1e3, p["reps"])}


def _forget_connections() -> None:
    """A forked client must not share its parent's kept-alive connections (MLflow caches its session)."""
    from mlflow.utils import request_utils

    request_utils._cached_get_request_session.cache_clear()


def runs(url: str, p: dict[str, Any]) -> dict[str, Any]:
    import mlflow

    client = _client(url)
    experiment = _experiment(client, f"bench-runs-{p['count']}")

    def create(_: None, i: int) -> None:
        with mlflow.start_run(experiment_id=experiment, run_name=f"r{i}"):
            mlflow.log_params({f"p{j}": (i + j) % 7 for j in range(10)})
            mlflow.log_metrics({f"m{j}": ((i * 7 + j) % 100) / 100 for j in range(5)}, step=0)

    count, rate = create_runs(p, lambda _: _forget_connections(), create)
    filtered = {"experiment_ids": [experiment], "filter_string": "metrics.m0 < 0.5 and params.p1 = '3'",
                "order_by": ["metrics.m2 DESC"], "max_results": 100}
    ordered = {"experiment_ids": [experiment], "order_by": ["metrics.m1 ASC"], "max_results": 100}
    hits = len(client.search_runs(**filtered))
    return {
        "runs_created": count, "create_rps": rate, "search_hits": hits,
        "filtered_ms": repeat(lambda _: timed(lambda: client.search_runs(**filtered)) * 1e3, p["reps"]),
        "ordered_ms": repeat(lambda _: timed(lambda: client.search_runs(**ordered)) * 1e3, p["reps"]),
    }


def _log_tiny_model() -> tuple[str, str, str | None]:
    import mlflow

    class Constant(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
        def predict(self, context: Any, model_input: Any) -> Any:
            return model_input

    mlflow.set_experiment("bench-registry")
    with mlflow.start_run() as run:
        try:
            info = mlflow.pyfunc.log_model(name="model", python_model=Constant())
        except TypeError:  # MLflow 2 names it artifact_path
            info = mlflow.pyfunc.log_model(artifact_path="model", python_model=Constant())
    return info.model_uri, run.info.run_id, getattr(info, "model_id", None)


def registry(url: str, p: dict[str, Any]) -> dict[str, Any]:
    client = _client(url)
    try:
        client.create_registered_model("bench")
    except Exception as exc:
        p["_notes"].append(f"no model registry: {str(exc).splitlines()[0][:120]}")
        return {}
    source, run_id, model_id = _log_tiny_model()
    extra = {"model_id": model_id} if model_id else {}  # MLflow 3 registers logged models by id
    client.create_model_version("bench", source, run_id, **extra)  # warm-up
    start = time.perf_counter()
    for _ in range(p["versions"]):
        client.create_model_version("bench", source, run_id, **extra)
    register = (time.perf_counter() - start) / p["versions"]
    client.set_registered_model_alias("bench", "champion", str(p["versions"] // 2))
    alias = repeat(lambda _: timed(lambda: client.get_model_version_by_alias("bench", "champion")), 50)
    return {"register_ms": register * 1e3, "alias_ms": alias * 1e3}


def artifacts(url: str, p: dict[str, Any]) -> dict[str, Any]:
    if not p.get("served", True):
        p["_notes"].append("artifacts are not served: the client writes to the server's file system itself")
        return {}
    client = _client(url)
    root = scratch()
    run_id = client.create_run(_experiment(client, "bench-artifacts")).info.run_id
    big = make_big_file(root, p["big_mb"])
    small = make_files(root, p["small_files"], p["small_size"])
    up = timed(lambda: client.log_artifact(run_id, str(big)))
    down = timed(lambda: client.download_artifacts(run_id, big.name, str(root / "down")))
    up_small = timed(lambda: client.log_artifacts(run_id, str(small), "small"))
    down_small = timed(lambda: client.download_artifacts(run_id, "small", str(root / "down-small")))
    assert len(list((root / "down-small" / "small").iterdir())) == p["small_files"]
    return {"big_up_mbps": p["big_mb"] / up, "big_down_mbps": p["big_mb"] / down,
            "small_up_fps": p["small_files"] / up_small, "small_down_fps": p["small_files"] / down_small}


if __name__ == "__main__":
    main({f.__name__: f for f in (ingest, overhead, latency, concurrent, history, buckets, runs, registry,
                                  artifacts)})
