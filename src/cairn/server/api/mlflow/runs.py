"""MLflow runs: create, get, update, delete and restore, logging, datasets, search, metric histories."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import Request

from cairn.server.api import transaction as tx
from cairn.server.api.auth import Access
from cairn.server.api.common import JSON
from cairn.server.api.mlflow.protocol import (
    integer,
    invalid,
    missing,
    mlflow_routes,
    one_pair,
    pairs,
    run_id_of,
    string_list,
    text,
    view_of,
    written,
)
from cairn.server.api.mlflow.shapes import default_experiment_id, points_out, run_info, runs_out
from cairn.server.services import datasets, mlflow, runs, search
from cairn.server.services.errors import InvalidInputError, NotFoundError
from cairn.server.services.search import decode_token, encode_token, fingerprint
from cairn.server.services.validation import MLFLOW_BATCH


@mlflow_routes("POST", "/runs/create", "run.write")
async def create_run(request: Request, access: Access, body: dict[str, Any]) -> Any:
    tags = pairs(body, "tags")
    name = text(body, "run_name", required=False) or tags.get("mlflow.runName")
    experiment_id = text(body, "experiment_id", required=False) or "0"
    start, user = integer(body, "start_time"), text(body, "user_id", required=False)

    def create(session: Any, ctx: Any) -> Any:
        experiment = mlflow.experiment_for(session, ctx, experiment_id)
        parent = runs.find_run(session, ctx, tags.get("mlflow.parentRunId"))  # a dangling id stays a tag only
        spec = runs.RunCreate(experiment_id=experiment.id, name=name, tags=tags, start_time=start, user=user,
                              parent_run_id=parent.id if parent is not None else None)
        row = runs.create_run(session, ctx, spec)
        return runs_out(session, ctx, [runs.read_run(session, ctx, row.id)])[0]
    return JSON({"run": await tx.write_async(request, access, create)})


def _run(session: Any, ctx: Any, run_id: str) -> dict[str, Any]:
    return runs_out(session, ctx, [runs.read_run(session, ctx, run_id)])[0]


@mlflow_routes("GET", "/runs/get", "run.read")
async def get_run(request: Request, access: Access, body: dict[str, Any]) -> Any:
    return JSON({"run": await tx.read_async(request, access, _run, run_id_of(body))})


@mlflow_routes("POST", "/runs/update", "run.write")
async def update_run(request: Request, access: Access, body: dict[str, Any]) -> Any:
    run_id = run_id_of(body)
    status, end_time = text(body, "status", required=False), integer(body, "end_time")
    name = text(body, "run_name", required=False)

    def update(session: Any, ctx: Any) -> Any:
        row = runs.update_run(session, ctx, run_id, status=status, end_time=end_time, name=name)
        if name is not None:
            runs.set_tags(session, ctx, run_id, {"mlflow.runName": name})
        return run_info(row, default_experiment_id(session, ctx))
    return JSON({"run_info": await tx.write_async(request, access, update)})


@mlflow_routes("POST", "/runs/delete", "run.delete")
async def delete_run(request: Request, access: Access, body: dict[str, Any]) -> Any:
    return await written(request, access, runs.set_run_lifecycle, run_id_of(body), "deleted")


@mlflow_routes("POST", "/runs/restore", "run.delete")
async def restore_run(request: Request, access: Access, body: dict[str, Any]) -> Any:
    return await written(request, access, runs.set_run_lifecycle, run_id_of(body), "active")


_SPECIAL = ("NaN", "Infinity", "-Infinity")


def _metric(metric: Any, prefix: str) -> tuple[str, Any, int, int]:
    """One MLflow ``Metric``: key, value, step (0 when absent) and timestamp (required), checked in that order
    with MLflow's messages; ``prefix`` names where it is (``metrics[3].`` in a batch)."""
    if not isinstance(metric, dict):
        raise invalid(prefix.rstrip("."), metric, "expected a metric")
    key = text(metric, "key") if not prefix else _in(prefix, text, metric, "key")
    value = metric.get("value")
    if value is None or value == "":
        raise missing(f"{prefix}value")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) or (
            isinstance(value, str) and value not in _SPECIAL and not _is_float(value)):
        raise invalid(f"{prefix}value", value, "expected a number")
    value = float(value) if isinstance(value, str) and value not in _SPECIAL else value
    timestamp = _in(prefix, integer, metric, "timestamp", required=True)
    step = _in(prefix, integer, metric, "step", 0)
    return key, value, step or 0, timestamp or 0


def _in(prefix: str, read: Any, body: dict[str, Any], name: str, *args: Any, **kwargs: Any) -> Any:
    """``read(body, name)`` with errors naming ``<prefix><name>``."""
    return read({f"{prefix}{name}": body.get(name)}, f"{prefix}{name}", *args, **kwargs)


def _is_float(text_value: str) -> bool:
    try:
        float(text_value)
    except ValueError:
        return False
    return True


def metric_batches(raw: Any) -> tuple[list[dict[str, Any]], list[mlflow.ModelMetric]]:
    """MLflow's [{key, value, timestamp, step}] -> Cairn's columnar series, in the order given; and the points
    logged against a logged model (``model_id``), which its model keeps too."""
    if not isinstance(raw, list):
        raise invalid("metrics", raw, "expected a list of metrics")
    series: dict[str, dict[str, list[Any]]] = defaultdict(lambda: {"values": [], "steps": [], "timestamps": []})
    for_models = []
    for i, item in enumerate(raw):
        key, value, step, timestamp = _metric(item, f"metrics[{i}].")
        target = series[key]
        target["values"].append(value)
        target["steps"].append(step)
        target["timestamps"].append(timestamp)
        model_id = text(item, "model_id", required=False)
        if model_id:
            for_models.append(mlflow.ModelMetric(
                model_id, key, None if value == "NaN" else float(value), timestamp, step,
                text(item, "dataset_name", required=False, default=""),
                text(item, "dataset_digest", required=False, default="")))
    return [{"key": key, **columns} for key, columns in series.items()], for_models


async def _log(request: Request, access: Access, run_id: str, batch: dict[str, Any],
               for_models: list[mlflow.ModelMetric] | None = None) -> Any:
    if not for_models:
        await tx.write_small(request, access, runs.log_batch, run_id, batch, limits=MLFLOW_BATCH)
        return JSON({})

    def log(session: Any, ctx: Any) -> None:  # the run's points and the models' in one transaction
        runs.log_batch(session, ctx, run_id, batch, limits=MLFLOW_BATCH)
        mlflow.log_model_metrics(session, ctx, run_id, for_models)
    return await written(request, access, log)


@mlflow_routes("POST", "/runs/log-batch", "run.write")
async def log_batch(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """MLflow's limits (``validation.MLFLOW_BATCH``): 1000 metrics, 100 params, 100 tags, 1000 in all."""
    run_id = run_id_of(body)
    series, for_models = metric_batches(body.get("metrics") or [])
    batch = {"metrics": series, "params": pairs(body, "params"), "tags": pairs(body, "tags")}
    return await _log(request, access, run_id, batch, for_models)


@mlflow_routes("POST", "/runs/log-metric", "run.write")
async def log_metric(request: Request, access: Access, body: dict[str, Any]) -> Any:
    run_id = run_id_of(body)
    _metric(body, "")
    series, for_models = metric_batches([body])
    return await _log(request, access, run_id, {"metrics": series}, for_models)


@mlflow_routes("POST", "/runs/log-parameter", "run.write")
async def log_param(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """Cairn keeps param history: logging another value is recorded, and the latest is what MLflow sees."""
    run_id = run_id_of(body)
    return await _log(request, access, run_id, {"params": one_pair(body)})


@mlflow_routes("POST", "/runs/set-tag", "run.write")
async def set_tag(request: Request, access: Access, body: dict[str, Any]) -> Any:
    run_id = run_id_of(body)
    key, value = text(body, "key"), text(body, "value", required=False, default="")

    def set_one(session: Any, ctx: Any) -> None:
        if key == "mlflow.runName":
            runs.update_run(session, ctx, run_id, name=value)
        runs.set_tags(session, ctx, run_id, {key: value})
    return await written(request, access, set_one)


@mlflow_routes("POST", "/runs/delete-tag", "run.write")
async def delete_tag(request: Request, access: Access, body: dict[str, Any]) -> Any:
    run_id = run_id_of(body)
    return await written(request, access, runs.delete_tag, run_id, text(body, "key"))


def _dataset(item: Any, i: int) -> tuple[dict[str, Any], dict[str, str]]:
    dataset = item.get("dataset") if isinstance(item, dict) else None
    if not isinstance(dataset, dict):
        raise InvalidInputError(f"Missing value for required parameter 'datasets[{i}].dataset'",
                                field=f"datasets[{i}]")
    return dataset, pairs(item, "tags")


@mlflow_routes("POST", "/runs/log-inputs", "run.write")
async def log_inputs(request: Request, access: Access, body: dict[str, Any]) -> Any:
    run_id, given, models = run_id_of(body), body.get("datasets") or [], body.get("models") or []
    if not isinstance(given, list):
        raise invalid("datasets", given, "expected a list")
    parsed = [_dataset(item, i) for i, item in enumerate(given)]
    model_ids = _model_refs(models, "models")

    def log(session: Any, ctx: Any) -> None:
        runs.get_run_row(session, ctx, run_id, write=True)
        mlflow.link_models(session, ctx, run_id, [(m, 0) for m, _ in model_ids], "input")
        for dataset, tags in parsed:
            details = datasets.DatasetDetails(source_type=text(dataset, "source_type", required=False, default=""),
                                              schema=text(dataset, "schema", required=False, default=""),
                                              profile=text(dataset, "profile", required=False, default=""),
                                              tags={k: v for k, v in tags.items() if k != "mlflow.data.context"})
            datasets.log_dataset(session, ctx, run_id, name=text(dataset, "name"),
                                 uri=text(dataset, "source", required=False, default=""),
                                 digest=text(dataset, "digest", required=False, default=""),
                                 role=tags.get("mlflow.data.context", ""), details=details)
    return await written(request, access, log)


def _model_refs(raw: Any, name: str) -> list[tuple[str, int]]:
    if not isinstance(raw, list):
        raise invalid(name, raw, "expected a list of {model_id}")
    refs = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise invalid(f"{name}[{i}]", item, "expected {model_id}")
        refs.append((text(item, "model_id"), integer(item, "step", 0) or 0))
    return refs


@mlflow_routes("POST", "/runs/outputs", "run.write")
async def log_outputs(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """MLflow 3 records the logged models a run produced, at a step."""
    run_id, outputs = run_id_of(body), _model_refs(body.get("models") or [], "models")
    return await written(request, access, mlflow.link_models, run_id, outputs, "output")


@mlflow_routes("POST", "/runs/log-model", "run.write")
async def log_model_json(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """MLflow 2 clients report a logged model's MLmodel here; the files are already among the run's artifacts
    and are registered from there."""
    await tx.read_async(request, access, runs.get_run_row, run_id_of(body))
    return JSON({})


@mlflow_routes("POST", "/runs/search", "run.read")
async def search_runs(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """MLflow's filter language, plus Cairn's summary suffixes (``metrics.loss.min < 0.2``)."""
    ids = string_list(body, "experiment_ids")
    view, order_by = view_of(body, "run_view_type"), tuple(string_list(body, "order_by"))
    limit = integer(body, "max_results", 1000) or 1000

    def found(session: Any, ctx: Any) -> Any:
        experiment_ids = tuple(mlflow.experiment_for(session, ctx, e, create=False).id for e in ids)
        query = search.RunQuery(experiment_ids, (), text(body, "filter", required=False), order_by, limit,
                                text(body, "page_token", required=False), view)
        page = search.search_runs(session, ctx, query)
        return {"runs": runs_out(session, ctx, page.runs), "next_page_token": page.next_page_token}
    out = await tx.read_async(request, access, found)
    if not out["next_page_token"]:
        del out["next_page_token"]
    return JSON(out)


# metric histories ---------------------------------------------------------------------------------------

@mlflow_routes("GET", "/metrics/get-history", "run.read")
async def get_metric_history(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """Every point of a metric, oldest step first; with ``max_results``, a page and a ``next_page_token``."""
    key, run_id = text(body, "metric_key"), run_id_of(body)
    limit = integer(body, "max_results")
    if limit is not None and not 1 <= limit <= 25_000:
        raise InvalidInputError(f"Invalid value {limit} for parameter 'max_results' supplied: it must be at most "
                                "25000 and at least 1", field="max_results")

    def read(session: Any, ctx: Any) -> list[Any]:
        try:
            return runs.metric_history(session, ctx, run_id, key)
        except NotFoundError as exc:
            if exc.field == "run_id":
                raise
            return []  # MLflow answers a metric a run never logged with an empty history
    points = await tx.read_async(request, access, read)
    mark = fingerprint(["history", run_id, key])
    offset = decode_token(text(body, "page_token", required=False), mark)
    out: dict[str, Any] = {"metrics": points_out(key, points[offset:offset + limit] if limit else points)}
    if limit and offset + limit < len(points):
        out["next_page_token"] = encode_token(offset + limit, mark)
    return JSON(out)


MAX_BULK_RUNS = 100


def _bulk_request(body: dict[str, Any], *, sampled: bool) -> tuple[str, list[str], int]:
    """The run ids, metric key and page size of a bulk history read, refused as MLflow refuses them."""
    what = "GetMetricHistoryBulkInterval" if sampled else "GetMetricHistoryBulk"
    run_ids = string_list(body, "run_ids" if sampled else "run_id")
    if not run_ids:
        raise missing("run_ids") if sampled else InvalidInputError(
            f"{what} request must specify at least one run_id.", field="run_id")
    if len(run_ids) > MAX_BULK_RUNS:
        raise InvalidInputError(f"{what} request must specify at most {MAX_BULK_RUNS} run_ids." if sampled else
                                f"{what} request cannot specify more than {MAX_BULK_RUNS} run_ids.", field="run_ids")
    key = text(body, "metric_key", required=False)
    if not key:
        raise missing("metric_key") if sampled else InvalidInputError(
            f"{what} request must specify a metric_key.", field="metric_key")
    limit = integer(body, "max_results", 1000 if sampled else 25_000)
    top = 2500 if sampled else 25_000
    if limit is None or not 1 <= limit <= top:
        raise InvalidInputError(f"max_results must be between 1 and {top}.", field="max_results")
    return key, run_ids, limit


async def _bulk(request: Request, access: Access, body: dict[str, Any], *, sampled: bool) -> Any:
    key, run_ids, limit = _bulk_request(body, sampled=sampled)
    start, end = integer(body, "start_step"), integer(body, "end_step")
    if (start is None) != (end is None):
        raise InvalidInputError("If either start step or end step are specified, both must be specified.",
                                field="start_step")
    if start is not None and end is not None and end < start:
        raise InvalidInputError("end_step must be greater than start_step. ", field="end_step")

    def read(session: Any, ctx: Any) -> list[Any]:
        out = []
        for run_id in run_ids if sampled else sorted(run_ids):  # MLflow answers the plain bulk read by run id
            try:
                points = runs.metric_history(session, ctx, run_id, key, start_step=start, end_step=end,
                                             max_points=limit if sampled else None)
            except NotFoundError as exc:
                if exc.field == "run_id":
                    raise
                continue  # the run has no such metric
            out.extend(points_out(key, points if sampled else points[:limit], run_id))
        return out
    return JSON({"metrics": await tx.read_async(request, access, read)})


@mlflow_routes("GET", "/metrics/get-history-bulk-interval", "run.read")
async def get_history_bulk_interval(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """Up to ``max_results`` points per run between ``start_step`` and ``end_step``, evenly sampled."""
    return await _bulk(request, access, body, sampled=True)


@mlflow_routes("GET", "/metrics/get-history-bulk", "run.read")
async def get_history_bulk(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """The histories of one metric for several runs (the MLflow UI's chart read), each cut at max_results."""
    return await _bulk(request, access, body, sampled=False)


@mlflow_routes("POST", "/experiments/search-datasets", "experiment.read")
async def search_datasets(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """The distinct datasets logged to runs of the given experiments (the MLflow UI's dataset filter)."""
    ids = string_list(body, "experiment_ids")
    if not ids:
        raise InvalidInputError("SearchDatasets request must specify at least one experiment_id.",
                                field="experiment_ids")
    if len(ids) > 20:
        raise InvalidInputError("SearchDatasets request cannot specify more than 20 experiment_ids.",
                                field="experiment_ids")

    def found(session: Any, ctx: Any) -> list[dict[str, Any]]:
        experiment_ids = [mlflow.experiment_for(session, ctx, e, create=False).id for e in ids]
        default = default_experiment_id(session, ctx)
        return [{"experiment_id": "0" if e == default else str(e), "name": n, "digest": d, "context": c}
                for e, n, d, c in datasets.distinct_datasets(session, ctx, experiment_ids)]
    return JSON({"dataset_summaries": await tx.read_async(request, access, found)})
