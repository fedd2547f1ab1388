"""MLflow's REST protocol, so that the unmodified ``mlflow`` client works against Cairn.

Served under ``/api/2.0/mlflow`` and ``/ajax-api/2.0/mlflow``, with artifacts through MLflow's proxy
at ``/api/2.0/mlflow-artifacts/artifacts``. Every route is a thin adapter over the same services as
the native API (same permissions, isolation and validation); only the shapes differ. Bodies are read
leniently (MLflow clients send fields Cairn does not use), values strictly.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from cairn.server.api import direct
from cairn.server.api.auth import Access, requires
from cairn.server.api.common import JSON, call, call_async, call_small_write, read_json
from cairn.server.schemas.encoding import num
from cairn.server.services import artifacts as artifact_svc
from cairn.server.services import experiments, runs, search, versions
from cairn.server.services import mlflow as svc
from cairn.server.services import registry as registry_svc
from cairn.server.services.errors import InvalidInputError, NotFoundError
from cairn.server.services.events import now_ms
from cairn.server.services.registry import DEFAULT_REGISTRY, ModelView, VersionView
from cairn.server.services.validation import MAX_BATCH_ITEMS

PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
ARTIFACTS_PREFIX = "/api/2.0/mlflow-artifacts"
router = APIRouter(tags=["mlflow"])
artifacts_router = APIRouter(prefix=ARTIFACTS_PREFIX, tags=["mlflow"])
info_router = APIRouter(tags=["mlflow"])
VIEW = {"ACTIVE_ONLY": "active_only", "DELETED_ONLY": "deleted_only", "ALL": "all", None: "active_only"}
STAGE_NONE = "None"


# reading MLflow bodies ---------------------------------------------------------------------------------

async def body_of(request: Request) -> dict[str, Any]:
    """The JSON body, or the query string for GET (MLflow clients send GET parameters there)."""
    if request.method == "GET":
        params: dict[str, Any] = {}
        for key, value in request.query_params.multi_items():
            params.setdefault(key, []).append(value)
        return {k: v[0] if len(v) == 1 else v for k, v in params.items()}
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidInputError("the request body must be a JSON object", field="body")
    return body


def text(body: dict[str, Any], name: str, *, required: bool = True, default: str | None = None) -> Any:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise InvalidInputError(f"Missing value for required parameter '{name}'", field=name)
        return default
    if not isinstance(value, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise InvalidInputError(f"Invalid value for parameter '{name}': expected a string", field=name)
    return value


def integer(body: dict[str, Any], name: str, default: int | None = None) -> int | None:
    value = body.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not re.fullmatch(r"-?[0-9]{1,19}", str(value)):
        raise InvalidInputError(f"Invalid value for parameter '{name}': expected an integer", field=name)
    result = int(value)
    if not -(2**63) <= result < 2**63:
        raise InvalidInputError(f"Invalid value for parameter '{name}': out of range", field=name)
    return result


def pairs(body: dict[str, Any], name: str) -> dict[str, str]:
    """[{key, value}, ...] -> {key: value}."""
    raw = body.get(name) or []
    if not isinstance(raw, list) or not all(isinstance(p, dict) and isinstance(p.get("key"), str) for p in raw):
        raise InvalidInputError(f"'{name}' must be a list of {{key, value}}", field=name)
    return {p["key"]: "" if p.get("value") is None else str(p.get("value")) for p in raw}


def kv(mapping: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": v} for k, v in mapping.items()]


def run_id_of(body: dict[str, Any]) -> str:
    return str(text(body, "run_id", required=False) or text(body, "run_uuid"))


def mlflow_routes(method: str, path: str, action: str) -> Callable[[Any], Any]:
    """Register ``fn(request, access, body)`` under both MLflow prefixes."""

    def register(fn: Any) -> Any:
        async def endpoint(request: Request, access: Access = requires(action)) -> Any:
            return await fn(request, access, await body_of(request))
        endpoint.__name__ = fn.__name__
        endpoint.__doc__ = fn.__doc__
        async def direct_endpoint(request: Request, access: Access, **_path: str) -> Any:  # read as request.path_params
            return await fn(request, access, await body_of(request))
        for prefix in PREFIXES:
            router.add_api_route(prefix + path, endpoint, methods=[method], name=f"mlflow_{fn.__name__}",
                                 include_in_schema=prefix == PREFIXES[0])
            direct.ROUTES.add(method, prefix + path, action, direct_endpoint)
        return fn
    return register


# shapes ------------------------------------------------------------------------------------------------

def experiment_out(view: experiments.ExperimentView) -> dict[str, Any]:
    row = view.row
    return {"experiment_id": str(row.id), "name": row.name, "artifact_location": f"mlflow-artifacts:/{row.id}",
            "lifecycle_stage": row.lifecycle, "creation_time": row.created_at, "last_update_time": row.updated_at,
            "tags": kv(view.tags)}


def run_info(row: Any) -> dict[str, Any]:
    return {"run_id": row.id, "run_uuid": row.id, "run_name": row.name, "experiment_id": str(row.experiment_id),
            "user_id": row.user, "status": row.status, "start_time": row.start_time, "end_time": row.end_time,
            "artifact_uri": svc.artifact_uri(row), "lifecycle_stage": row.lifecycle}


def run_out(view: runs.RunView) -> dict[str, Any]:
    tags = dict(view.tags)
    tags.setdefault("mlflow.runName", view.row.name)
    if view.row.user:
        tags.setdefault("mlflow.user", view.row.user)
    if view.row.parent_run_id:
        tags.setdefault("mlflow.parentRunId", view.row.parent_run_id)
    metrics = [{"key": s.key, "value": num(s.last_value), "timestamp": s.last_timestamp, "step": s.last_step}
               for s in view.metrics if s.count]
    datasets = [{"tags": [{"key": "mlflow.data.context", "value": d.role}] if d.role else [],
                 "dataset": {"name": d.name, "digest": d.digest, "source_type": "", "source": d.uri,
                             "schema": "", "profile": ""}} for d in view.datasets]
    return {"info": run_info(view.row), "data": {"metrics": metrics, "params": kv(view.params), "tags": kv(tags)},
            "inputs": {"dataset_inputs": datasets}}


def model_name(registry: str, name: str) -> str:
    """MLflow sees models of the default registry by their bare name, others as ``registry.model``."""
    return name if registry == DEFAULT_REGISTRY else f"{registry}.{name}"


def version_out(view: VersionView, download: str | None = None) -> dict[str, Any]:
    row = view.row
    out = {"name": model_name(view.registry, view.model.name), "version": str(row.version),
           "creation_timestamp": row.created_at, "last_updated_timestamp": row.updated_at,
           "user_id": row.created_by, "current_stage": STAGE_NONE, "description": row.description,
           "source": row.lineage.get("mlflow_source") or download or "", "run_id": row.run_id or "",
           "status": row.status, "status_message": "", "tags": kv(view.tags), "aliases": list(view.aliases)}
    if row.logged_model_id:
        out["model_id"] = f"m-{row.logged_model_id}"
    return out


def model_out(view: ModelView, latest: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    row = view.row
    out: dict[str, Any] = {
        "name": model_name(view.registry, row.name), "creation_timestamp": row.created_at,
        "last_updated_timestamp": row.updated_at, "description": row.description, "tags": kv(view.tags),
        "aliases": [{"alias": a, "version": str(v)} for a, v in sorted(view.aliases.items())]}
    if latest:
        out["latest_versions"] = latest
    return out


def logged_model_out(model: svc.MlflowModel) -> dict[str, Any]:
    info = model.info
    return {"info": {"model_id": model.model_id, "experiment_id": str(model.run.experiment_id),
                     "name": info.get("name", model.row.name),
                     "artifact_uri": svc.artifact_uri(model.run, model.row.artifact_path),
                     "creation_timestamp_ms": model.row.created_at, "last_updated_timestamp_ms": model.row.created_at,
                     "status": info.get("status", "LOGGED_MODEL_READY"), "source_run_id": model.run.id,
                     "model_type": info.get("model_type", ""), "tags": kv(info.get("tags") or {}),
                     "params": kv(info.get("params") or {})},
            "data": {"metrics": []}}


# experiments -------------------------------------------------------------------------------------------

@mlflow_routes("POST", "/experiments/create", "experiment.write")
async def create_experiment(request: Request, access: Access, body: dict[str, Any]) -> Any:
    name, tags = text(body, "name"), pairs(body, "tags")
    row = await call_async(request, access, True, experiments.create_experiment, name, "", tags)
    return JSON({"experiment_id": str(row.id)})


def _experiment(session: Any, ctx: Any, experiment_id: Any) -> dict[str, Any]:
    row = svc.experiment_for(session, ctx, experiment_id)
    return experiment_out(experiments.read_experiment(session, ctx, row))


@mlflow_routes("GET", "/experiments/get", "experiment.read")
async def get_experiment(request: Request, access: Access, body: dict[str, Any]) -> Any:
    out = await call_async(request, access, False, _experiment, text(body, "experiment_id"))
    return JSON({"experiment": out})


@mlflow_routes("GET", "/experiments/get-by-name", "experiment.read")
async def get_experiment_by_name(request: Request, access: Access, body: dict[str, Any]) -> Any:
    name = text(body, "experiment_name")

    def get(session: Any, ctx: Any) -> Any:
        row = experiments.get_experiment_by_name(session, ctx, name)
        return experiment_out(experiments.read_experiment(session, ctx, row))
    return JSON({"experiment": await call_async(request, access, False, get)})


@mlflow_routes("POST", "/experiments/search", "experiment.read")
async def search_experiments(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """Filters on the name (``name = 'x'``, ``name LIKE '%x%'``) and tags, joined by AND; view_type; pages."""
    limit = integer(body, "max_results", 1000) or 1000
    offset = integer(body, "page_token", 0) or 0
    if not 1 <= limit <= 50_000 or offset < 0:
        raise InvalidInputError("max_results must be between 1 and 50000", field="max_results")
    view = VIEW.get(body.get("view_type"))
    if view is None:
        raise InvalidInputError("view_type must be ACTIVE_ONLY, DELETED_ONLY or ALL", field="view_type")
    clauses = svc.parse_filter(body.get("filter"), ("name",))

    def found(session: Any, ctx: Any) -> list[Any]:
        views = experiments.list_experiments(session, ctx, include_deleted=view != "active_only", limit=50_000)
        wanted = [v for v in views if (view != "deleted_only" or v.row.lifecycle == "deleted")
                  and svc.filter_matches(clauses, {"name": v.row.name}, v.tags)]
        return [experiment_out(v) for v in wanted]
    rows = await call_async(request, access, False, found)
    page = rows[offset:offset + limit]
    out: dict[str, Any] = {"experiments": page}
    if offset + limit < len(rows):
        out["next_page_token"] = str(offset + limit)
    return JSON(out)


@mlflow_routes("POST", "/experiments/update", "experiment.write")
async def update_experiment(request: Request, access: Access, body: dict[str, Any]) -> Any:
    experiment_id, new_name = text(body, "experiment_id"), text(body, "new_name", required=False)

    def update(session: Any, ctx: Any) -> None:
        experiments.update_experiment(session, ctx, svc.experiment_for(session, ctx, experiment_id).id, name=new_name)
    await call_async(request, access, True, update)
    return JSON({})


async def _experiment_lifecycle(request: Request, access: Access, body: dict[str, Any], lifecycle: str) -> Any:
    experiment_id = text(body, "experiment_id")

    def change(session: Any, ctx: Any) -> None:
        experiments.set_lifecycle(session, ctx, svc.experiment_for(session, ctx, experiment_id).id, lifecycle)
    await call_async(request, access, True, change)
    return JSON({})


@mlflow_routes("POST", "/experiments/delete", "experiment.delete")
async def delete_experiment(request: Request, access: Access, body: dict[str, Any]) -> Any:
    return await _experiment_lifecycle(request, access, body, "deleted")


@mlflow_routes("POST", "/experiments/restore", "experiment.delete")
async def restore_experiment(request: Request, access: Access, body: dict[str, Any]) -> Any:
    return await _experiment_lifecycle(request, access, body, "active")


@mlflow_routes("POST", "/experiments/set-experiment-tag", "experiment.write")
async def set_experiment_tag(request: Request, access: Access, body: dict[str, Any]) -> Any:
    experiment_id, key, value = text(body, "experiment_id"), text(body, "key"), text(body, "value", required=False)

    def set_tag(session: Any, ctx: Any) -> None:
        row = svc.experiment_for(session, ctx, experiment_id)
        experiments.set_experiment_tags(session, ctx, row.id, {key: value or ""})
    await call_async(request, access, True, set_tag)
    return JSON({})


# runs --------------------------------------------------------------------------------------------------

@mlflow_routes("POST", "/runs/create", "run.write")
async def create_run(request: Request, access: Access, body: dict[str, Any]) -> Any:
    tags = pairs(body, "tags")
    name = text(body, "run_name", required=False) or tags.get("mlflow.runName")
    parent = tags.get("mlflow.parentRunId") or None
    experiment_id = text(body, "experiment_id", required=False) or "0"

    def create(session: Any, ctx: Any) -> Any:
        experiment = svc.experiment_for(session, ctx, experiment_id)
        spec = runs.RunCreate(experiment_id=experiment.id, name=name, tags=tags, parent_run_id=parent,
                              start_time=integer(body, "start_time"), user=text(body, "user_id", required=False))
        row = runs.create_run(session, ctx, spec)
        return run_out(runs.read_run(session, ctx, row.id))
    return JSON({"run": await call_async(request, access, True, create)})


@mlflow_routes("GET", "/runs/get", "run.read")
async def get_run(request: Request, access: Access, body: dict[str, Any]) -> Any:
    view = await call_async(request, access, False, runs.read_run, run_id_of(body))
    return JSON({"run": run_out(view)})


@mlflow_routes("POST", "/runs/update", "run.write")
async def update_run(request: Request, access: Access, body: dict[str, Any]) -> Any:
    run_id = run_id_of(body)
    status, end_time = text(body, "status", required=False), integer(body, "end_time")
    name = text(body, "run_name", required=False)

    def update(session: Any, ctx: Any) -> Any:
        return run_info(runs.update_run(session, ctx, run_id, status=status, end_time=end_time, name=name))
    return JSON({"run_info": await call_async(request, access, True, update)})


@mlflow_routes("POST", "/runs/delete", "run.delete")
async def delete_run(request: Request, access: Access, body: dict[str, Any]) -> Any:
    await call_async(request, access, True, runs.set_run_lifecycle, run_id_of(body), "deleted")
    return JSON({})


@mlflow_routes("POST", "/runs/restore", "run.delete")
async def restore_run(request: Request, access: Access, body: dict[str, Any]) -> Any:
    await call_async(request, access, True, runs.set_run_lifecycle, run_id_of(body), "active")
    return JSON({})


def metric_batches(raw: Any) -> list[dict[str, Any]]:
    """MLflow's [{key, value, timestamp, step}] -> Cairn's columnar series, in the order given."""
    if not isinstance(raw, list):
        raise InvalidInputError("metrics must be a list of {key, value, timestamp, step}", field="metrics")
    series: dict[str, dict[str, list[Any]]] = defaultdict(lambda: {"values": [], "steps": [], "timestamps": []})
    for i, metric in enumerate(raw):
        if not isinstance(metric, dict) or not isinstance(metric.get("key"), str):
            raise InvalidInputError(f"metrics[{i}] needs a key", field=f"metrics[{i}]")
        value = metric.get("value")
        if isinstance(value, str) and value not in ("NaN", "Infinity", "-Infinity"):
            raw_text = value
            try:
                value = float(raw_text)
            except ValueError:
                raise InvalidInputError(f"metrics[{i}].value {raw_text[:40]!r} is not a number",
                                        field=f"metrics[{i}].value") from None
        target = series[metric["key"]]
        target["values"].append(value)
        target["steps"].append(integer(metric, "step", 0))
        target["timestamps"].append(integer(metric, "timestamp", None) or now_ms())
    return [{"key": key, **columns} for key, columns in series.items()]


async def _log(request: Request, access: Access, run_id: str, batch: dict[str, Any]) -> Any:
    await call_small_write(request, access, runs.log_batch, run_id, batch)
    return JSON({})


@mlflow_routes("POST", "/runs/log-batch", "run.write")
async def log_batch(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """MLflow's limits: 1000 metrics, 100 params, 100 tags per call."""
    metrics, params, tags = body.get("metrics") or [], pairs(body, "params"), pairs(body, "tags")
    if isinstance(metrics, list) and len(metrics) > MAX_BATCH_ITEMS:
        raise InvalidInputError(f"A batch logging request can contain at most {MAX_BATCH_ITEMS} metrics",
                                field="metrics")
    for name, given in (("params", params), ("tags", tags)):
        if len(given) > 100:
            raise InvalidInputError(f"A batch logging request can contain at most 100 {name}", field=name)
    return await _log(request, access, run_id_of(body), {"metrics": metric_batches(metrics), "params": params,
                                                          "tags": tags})


@mlflow_routes("POST", "/runs/log-metric", "run.write")
async def log_metric(request: Request, access: Access, body: dict[str, Any]) -> Any:
    metric = {"key": text(body, "key"), "value": body.get("value"), "step": body.get("step"),
              "timestamp": body.get("timestamp")}
    if metric["value"] is None:
        raise InvalidInputError("Missing value for required parameter 'value'", field="value")
    return await _log(request, access, run_id_of(body), {"metrics": metric_batches([metric])})


@mlflow_routes("POST", "/runs/log-parameter", "run.write")
async def log_param(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """Cairn keeps param history: logging another value is recorded, and the latest is what MLflow sees."""
    params = {text(body, "key"): text(body, "value", required=False, default="")}
    return await _log(request, access, run_id_of(body), {"params": params})


@mlflow_routes("POST", "/runs/set-tag", "run.write")
async def set_tag(request: Request, access: Access, body: dict[str, Any]) -> Any:
    key, value, run_id = text(body, "key"), text(body, "value", required=False, default=""), run_id_of(body)

    def set_one(session: Any, ctx: Any) -> None:
        if key == "mlflow.runName":
            runs.update_run(session, ctx, run_id, name=value)
        runs.set_tags(session, ctx, run_id, {key: value})
    await call_async(request, access, True, set_one)
    return JSON({})


@mlflow_routes("POST", "/runs/delete-tag", "run.write")
async def delete_tag(request: Request, access: Access, body: dict[str, Any]) -> Any:
    await call_async(request, access, True, runs.delete_tag, run_id_of(body), text(body, "key"))
    return JSON({})


@mlflow_routes("POST", "/runs/log-inputs", "run.write")
async def log_inputs(request: Request, access: Access, body: dict[str, Any]) -> Any:
    run_id, datasets = run_id_of(body), body.get("datasets") or []
    if not isinstance(datasets, list):
        raise InvalidInputError("datasets must be a list", field="datasets")

    def log(session: Any, ctx: Any) -> None:
        for i, item in enumerate(datasets):
            dataset = item.get("dataset") if isinstance(item, dict) else None
            if not isinstance(dataset, dict):
                raise InvalidInputError(f"datasets[{i}].dataset is required", field=f"datasets[{i}]")
            context = pairs(item, "tags").get("mlflow.data.context", "")
            runs.log_dataset(session, ctx, run_id, name=text(dataset, "name"), uri=str(dataset.get("source") or ""),
                             digest=str(dataset.get("digest") or ""), role=context)
    await call_async(request, access, True, log)
    return JSON({})


@mlflow_routes("POST", "/runs/outputs", "run.write")
async def log_outputs(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """MLflow 3 links logged models to their run; in Cairn a logged model always belongs to its run."""
    run_id = run_id_of(body)
    await call_async(request, access, False, runs.get_run_row, run_id)
    return JSON({})


@mlflow_routes("POST", "/runs/log-model", "run.write")
async def log_model_json(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """MLflow 2 clients report a logged model's MLmodel here; the files are already among the run's artifacts
    and are registered from there."""
    await call_async(request, access, False, runs.get_run_row, run_id_of(body))
    return JSON({})


@mlflow_routes("POST", "/runs/search", "run.read")
async def search_runs(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """MLflow's filter language, plus Cairn's summary suffixes (``metrics.loss.min < 0.2``)."""
    ids = body.get("experiment_ids") or []
    if not isinstance(ids, list):
        raise InvalidInputError("experiment_ids must be a list", field="experiment_ids")
    view = VIEW.get(body.get("run_view_type"))
    if view is None:
        raise InvalidInputError("run_view_type must be ACTIVE_ONLY, DELETED_ONLY or ALL", field="run_view_type")
    order_by = body.get("order_by") or []
    if not isinstance(order_by, list):
        raise InvalidInputError("order_by must be a list", field="order_by")

    def found(session: Any, ctx: Any) -> Any:
        experiment_ids = tuple(svc.experiment_for(session, ctx, e).id for e in ids)
        query = search.RunQuery(experiment_ids, (), body.get("filter") or None, tuple(order_by),
                                integer(body, "max_results", 1000) or 1000, body.get("page_token") or None, view)
        page = search.search_runs(session, ctx, query)
        return {"runs": [run_out(v) for v in page.runs], "next_page_token": page.next_page_token}
    out = await call_async(request, access, False, found)
    if not out["next_page_token"]:
        del out["next_page_token"]
    return JSON(out)


def _points_out(key: str, points: list[tuple[int, int, float | None]], run_id: str | None = None) -> list[Any]:
    out = []
    for step, timestamp, value in points:
        point = {"key": key, "value": num(math.nan if value is None else value), "timestamp": timestamp, "step": step}
        if run_id is not None:
            point["run_id"] = run_id
        out.append(point)
    return out


@mlflow_routes("GET", "/metrics/get-history", "run.read")
async def get_metric_history(request: Request, access: Access, body: dict[str, Any]) -> Any:
    key, run_id = text(body, "metric_key"), run_id_of(body)
    points = await call_async(request, access, False, runs.metric_history, run_id, key)
    return JSON({"metrics": _points_out(key, points)})


@mlflow_routes("GET", "/metrics/get-history-bulk-interval", "run.read")
async def get_history_bulk_interval(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """Up to ``max_results`` points per run between ``start_step`` and ``end_step``, evenly sampled."""
    key = text(body, "metric_key")
    run_ids = body.get("run_ids") or []
    run_ids = [run_ids] if isinstance(run_ids, str) else run_ids
    if not run_ids or len(run_ids) > 100:
        raise InvalidInputError("run_ids must name 1 to 100 runs", field="run_ids")
    limit = integer(body, "max_results", 1000) or 1000
    if not 1 <= limit <= 10_000:
        raise InvalidInputError("max_results must be between 1 and 10000", field="max_results")
    start, end = integer(body, "start_step"), integer(body, "end_step")

    def read(session: Any, ctx: Any) -> list[Any]:
        out = []
        for run_id in run_ids:
            try:
                points = runs.metric_history(session, ctx, str(run_id), key, start_step=start, end_step=end,
                                             max_points=limit)
            except NotFoundError as exc:
                if exc.field == "run_id":
                    raise
                continue  # the run has no such metric
            out.extend(_points_out(key, points, str(run_id)))
        return out
    return JSON({"metrics": await call_async(request, access, False, read)})


@mlflow_routes("GET", "/artifacts/list", "artifact.read")
async def list_artifacts(request: Request, access: Access, body: dict[str, Any]) -> Any:
    run_id, path = run_id_of(body), text(body, "path", required=False, default="")

    def listing(session: Any, ctx: Any) -> Any:
        entries = artifact_svc.list_artifacts(session, ctx, run_id, path)
        run = runs.get_run_row(session, ctx, run_id)
        return svc.artifact_uri(run), entries
    root, entries = await call_async(request, access, False, listing)
    return JSON({"root_uri": root, "files": [_file_out(e) for e in entries]})


def _file_out(entry: Any, base: str = "") -> dict[str, Any]:
    path = entry.path[len(base):].lstrip("/") if base else entry.path
    return {"path": path, "is_dir": True} if entry.is_dir else {"path": path, "is_dir": False,
                                                                 "file_size": entry.size}


# MLflow 3 logged models ------------------------------------------------------------------------------

@mlflow_routes("POST", "/logged-models", "run.write")
async def create_logged_model(request: Request, access: Access, body: dict[str, Any]) -> Any:
    def create(session: Any, ctx: Any) -> Any:
        return logged_model_out(svc.create_logged_model(
            session, ctx, experiment_id=text(body, "experiment_id"), name=text(body, "name", required=False),
            source_run_id=text(body, "source_run_id", required=False),
            model_type=text(body, "model_type", required=False, default=""), tags=pairs(body, "tags"),
            params=pairs(body, "params")))
    return JSON({"model": await call_async(request, access, True, create)})


def _model_id(request: Request) -> str:
    return str(request.path_params.get("model_id", ""))


@mlflow_routes("GET", "/logged-models/{model_id}", "run.read")
async def get_logged_model(request: Request, access: Access, body: dict[str, Any]) -> Any:
    model = await call_async(request, access, False, svc.get_logged_model, _model_id(request))
    return JSON({"model": logged_model_out(model)})


@mlflow_routes("PATCH", "/logged-models/{model_id}", "run.write")
async def finalize_logged_model(request: Request, access: Access, body: dict[str, Any]) -> Any:
    status = text(body, "status")
    model = await call_async(request, access, True, svc.finalize_logged_model, _model_id(request), status)
    return JSON({"model": logged_model_out(model)})


@mlflow_routes("DELETE", "/logged-models/{model_id}", "run.delete")
async def delete_logged_model(request: Request, access: Access, body: dict[str, Any]) -> Any:
    raise InvalidInputError("Cairn keeps logged models with their run; delete the run instead", field="model_id")


@mlflow_routes("POST", "/logged-models/search", "run.read")
async def search_logged_models(request: Request, access: Access, body: dict[str, Any]) -> Any:
    ids = body.get("experiment_ids") or []
    if not isinstance(ids, list):
        raise InvalidInputError("experiment_ids must be a list", field="experiment_ids")
    limit, offset = integer(body, "max_results", 100) or 100, integer(body, "page_token", 0) or 0
    if not 1 <= limit <= 1000 or offset < 0:
        raise InvalidInputError("max_results must be between 1 and 1000", field="max_results")
    models = await call_async(request, access, False, svc.search_logged_models, ids, limit + 1, offset)
    out: dict[str, Any] = {"models": [logged_model_out(m) for m in models[:limit]]}
    if len(models) > limit:
        out["next_page_token"] = str(offset + limit)
    return JSON(out)


@mlflow_routes("PATCH", "/logged-models/{model_id}/tags", "run.write")
async def set_logged_model_tags(request: Request, access: Access, body: dict[str, Any]) -> Any:
    await call_async(request, access, True, svc.set_logged_model_tags, _model_id(request), pairs(body, "tags"))
    return JSON({})


@mlflow_routes("DELETE", "/logged-models/{model_id}/tags/{tag_key}", "run.write")
async def delete_logged_model_tag(request: Request, access: Access, body: dict[str, Any]) -> Any:
    key = str(request.path_params.get("tag_key", ""))
    await call_async(request, access, True, svc.delete_logged_model_tag, _model_id(request), key)
    return JSON({})


@mlflow_routes("POST", "/logged-models/{model_id}/params", "run.write")
async def log_logged_model_params(request: Request, access: Access, body: dict[str, Any]) -> Any:
    await call_async(request, access, True, svc.log_logged_model_params, _model_id(request), pairs(body, "params"))
    return JSON({})


@mlflow_routes("GET", "/logged-models/{model_id}/artifacts/directories", "artifact.read")
async def list_logged_model_artifacts(request: Request, access: Access, body: dict[str, Any]) -> Any:
    sub = text(body, "artifact_directory_path", required=False, default="")

    def listing(session: Any, ctx: Any) -> Any:
        model = svc.get_logged_model(session, ctx, _model_id(request))
        base = model.row.artifact_path
        entries = artifact_svc.list_artifacts(session, ctx, model.run.id, f"{base}/{sub}".rstrip("/"))
        return [_file_out(e, base) for e in entries]
    return JSON({"root_uri": "", "files": await call_async(request, access, False, listing)})


# model registry ----------------------------------------------------------------------------------------

def _full(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidInputError("Missing value for required parameter 'name'", field="name")
    return name


def _version_view(session: Any, ctx: Any, name: str, version: Any) -> dict[str, Any]:
    view = versions.get_version(session, ctx, name, version)
    return version_out(view)


def _model_view(session: Any, ctx: Any, name: str) -> dict[str, Any]:
    view = registry_svc.get_model(session, ctx, name)
    latest = [version_out(v) for v in versions.list_versions(session, ctx, name)[-1:]]
    return model_out(view, latest)


@mlflow_routes("POST", "/registered-models/create", "model.write")
async def create_registered_model(request: Request, access: Access, body: dict[str, Any]) -> Any:
    name, tags = _full(body.get("name")), pairs(body, "tags")
    description = text(body, "description", required=False, default="")

    def create(session: Any, ctx: Any) -> Any:
        registry_svc.create_model(session, ctx, name, description, tags)
        return _model_view(session, ctx, name)
    return JSON({"registered_model": await call_async(request, access, True, create)})


@mlflow_routes("GET", "/registered-models/get", "model.read")
async def get_registered_model(request: Request, access: Access, body: dict[str, Any]) -> Any:
    return JSON({"registered_model": await call_async(request, access, False, _model_view, _full(body.get("name")))})


@mlflow_routes("POST", "/registered-models/rename", "model.write")
async def rename_registered_model(request: Request, access: Access, body: dict[str, Any]) -> Any:
    name, new_name = _full(body.get("name")), text(body, "new_name")

    def rename(session: Any, ctx: Any) -> Any:
        row = registry_svc.update_model(session, ctx, name, new_name=new_name)
        return _model_view(session, ctx, f"{registry_svc.split_name(name)[0]}.{row.name}")
    return JSON({"registered_model": await call_async(request, access, True, rename)})


@mlflow_routes("PATCH", "/registered-models/update", "model.write")
async def update_registered_model(request: Request, access: Access, body: dict[str, Any]) -> Any:
    name, description = _full(body.get("name")), text(body, "description", required=False, default="")

    def update(session: Any, ctx: Any) -> Any:
        registry_svc.update_model(session, ctx, name, description=description)
        return _model_view(session, ctx, name)
    return JSON({"registered_model": await call_async(request, access, True, update)})


@mlflow_routes("DELETE", "/registered-models/delete", "model.manage")
async def delete_registered_model(request: Request, access: Access, body: dict[str, Any]) -> Any:
    await call_async(request, access, True, registry_svc.set_model_lifecycle, _full(body.get("name")), "deleted")
    return JSON({})


@mlflow_routes("GET", "/registered-models/search", "model.read")
async def search_registered_models(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """Filters: ``name`` (=, LIKE, ILIKE; ``prod.%`` names another registry) and ``tag.<key>``, joined by AND."""
    limit, offset = integer(body, "max_results", 100) or 100, integer(body, "page_token", 0) or 0
    if not 1 <= limit <= 1000 or offset < 0:
        raise InvalidInputError("max_results must be between 1 and 1000", field="max_results")
    clauses = svc.parse_filter(body.get("filter"), ("name",))

    def found(session: Any, ctx: Any) -> list[Any]:
        views = registry_svc.search_models(session, ctx, limit=100_000)
        return [model_out(v) for v in views
                if svc.filter_matches(clauses, {"name": model_name(v.registry, v.row.name)}, v.tags)]
    rows = await call_async(request, access, False, found)
    out: dict[str, Any] = {"registered_models": rows[offset:offset + limit]}
    if offset + limit < len(rows):
        out["next_page_token"] = str(offset + limit)
    return JSON(out)


@mlflow_routes("POST", "/registered-models/set-tag", "model.write")
async def set_registered_model_tag(request: Request, access: Access, body: dict[str, Any]) -> Any:
    tags = {text(body, "key"): text(body, "value", required=False, default="")}
    await call_async(request, access, True, registry_svc.set_model_tags, _full(body.get("name")), tags)
    return JSON({})


@mlflow_routes("DELETE", "/registered-models/delete-tag", "model.write")
async def delete_registered_model_tag(request: Request, access: Access, body: dict[str, Any]) -> Any:
    await call_async(request, access, True, registry_svc.delete_model_tag, _full(body.get("name")), text(body, "key"))
    return JSON({})


@mlflow_routes("POST", "/registered-models/alias", "model.manage")
async def set_alias(request: Request, access: Access, body: dict[str, Any]) -> Any:
    name, alias, version = _full(body.get("name")), text(body, "alias"), text(body, "version")
    await call_async(request, access, True, versions.set_alias, name, alias, version)
    return JSON({})


@mlflow_routes("DELETE", "/registered-models/alias", "model.manage")
async def delete_alias(request: Request, access: Access, body: dict[str, Any]) -> Any:
    await call_async(request, access, True, versions.delete_alias, _full(body.get("name")), text(body, "alias"))
    return JSON({})


@mlflow_routes("GET", "/registered-models/alias", "model.read")
async def get_alias(request: Request, access: Access, body: dict[str, Any]) -> Any:
    name, alias = _full(body.get("name")), text(body, "alias")
    view = await call_async(request, access, False, versions.get_version_by_alias, name, alias)
    return JSON({"model_version": version_out(view)})


async def _latest(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """Stages are not a Cairn concept (aliases are): the latest version is answered for stage "None" or none."""
    name = _full(body.get("name"))
    stages = body.get("stages") or []
    stages = [stages] if isinstance(stages, str) else stages

    def latest(session: Any, ctx: Any) -> list[Any]:
        found = versions.list_versions(session, ctx, name)
        if stages and STAGE_NONE.lower() not in [str(s).lower() for s in stages]:
            return []
        return [version_out(v) for v in found[-1:]]
    return JSON({"model_versions": await call_async(request, access, False, latest)})


@mlflow_routes("POST", "/registered-models/get-latest-versions", "model.read")
async def get_latest_versions(request: Request, access: Access, body: dict[str, Any]) -> Any:
    return await _latest(request, access, body)


@mlflow_routes("GET", "/registered-models/get-latest-versions", "model.read")
async def get_latest_versions_get(request: Request, access: Access, body: dict[str, Any]) -> Any:
    return await _latest(request, access, body)


@mlflow_routes("POST", "/model-versions/create", "model.write")
async def create_model_version(request: Request, access: Access, body: dict[str, Any]) -> Any:
    name = _full(body.get("name"))

    def create(session: Any, ctx: Any) -> Any:
        view = svc.create_version(session, ctx, name, source=text(body, "source", required=False),
                                  run_id=text(body, "run_id", required=False),
                                  model_id=text(body, "model_id", required=False), tags=pairs(body, "tags"),
                                  description=text(body, "description", required=False, default=""))
        return version_out(view)
    return JSON({"model_version": await call_async(request, access, True, create)})


@mlflow_routes("GET", "/model-versions/get", "model.read")
async def get_model_version(request: Request, access: Access, body: dict[str, Any]) -> Any:
    out = await call_async(request, access, False, _version_view, _full(body.get("name")), text(body, "version"))
    return JSON({"model_version": out})


@mlflow_routes("PATCH", "/model-versions/update", "model.write")
async def update_model_version(request: Request, access: Access, body: dict[str, Any]) -> Any:
    name, version = _full(body.get("name")), text(body, "version")
    description = text(body, "description", required=False, default="")
    view = await call_async(request, access, True, versions.update_version, name, version, description)
    return JSON({"model_version": version_out(view)})


@mlflow_routes("DELETE", "/model-versions/delete", "model.manage")
async def delete_model_version(request: Request, access: Access, body: dict[str, Any]) -> Any:
    name, version = _full(body.get("name")), text(body, "version")
    await call_async(request, access, True, versions.set_version_lifecycle, name, version, "deleted")
    return JSON({})


@mlflow_routes("GET", "/model-versions/search", "model.read")
async def search_model_versions(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """Filters: ``name``, ``run_id``, ``version`` and ``tag.<key>``, joined by AND."""
    clauses = svc.parse_filter(body.get("filter"), ("name", "run_id", "version"))
    limit = integer(body, "max_results", 10_000) or 10_000

    def found(session: Any, ctx: Any) -> list[Any]:
        out = []
        for model in registry_svc.search_models(session, ctx, limit=100_000):
            name = model_name(model.registry, model.row.name)
            if not svc.filter_matches([c for c in clauses if c.field == "name"], {"name": name}, {}):
                continue
            for view in versions.list_versions(session, ctx, f"{model.registry}.{model.row.name}"):
                fields = {"name": name, "run_id": view.row.run_id, "version": str(view.row.version)}
                if svc.filter_matches(clauses, fields, view.tags):
                    out.append(version_out(view))
        return out[:limit]
    return JSON({"model_versions": await call_async(request, access, False, found)})


@mlflow_routes("POST", "/model-versions/set-tag", "model.write")
async def set_model_version_tag(request: Request, access: Access, body: dict[str, Any]) -> Any:
    name, version = _full(body.get("name")), text(body, "version")
    tags = {text(body, "key"): text(body, "value", required=False, default="")}
    await call_async(request, access, True, versions.set_version_tags, name, version, tags)
    return JSON({})


@mlflow_routes("DELETE", "/model-versions/delete-tag", "model.write")
async def delete_model_version_tag(request: Request, access: Access, body: dict[str, Any]) -> Any:
    name, version = _full(body.get("name")), text(body, "version")
    await call_async(request, access, True, versions.delete_version_tag, name, version, text(body, "key"))
    return JSON({})


@mlflow_routes("GET", "/model-versions/get-download-uri", "model.read")
async def get_download_uri(request: Request, access: Access, body: dict[str, Any]) -> Any:
    name, version = _full(body.get("name")), text(body, "version")

    def uri(session: Any, ctx: Any) -> str:
        return svc.download_uri(session, ctx, versions.get_version(session, ctx, name, version))
    return JSON({"artifact_uri": await call_async(request, access, False, uri)})


@mlflow_routes("POST", "/model-versions/transition-stage", "model.manage")
async def transition_stage(request: Request, access: Access, body: dict[str, Any]) -> Any:
    raise InvalidInputError("Cairn has no model stages (MLflow deprecated them too): set an alias instead, e.g. "
                            "client.set_registered_model_alias(name, 'champion', version)", field="stage")


# mlflow-artifacts proxy ----------------------------------------------------------------------------------

@artifacts_router.get("/artifacts")
def list_proxy_artifacts(request: Request, path: str = "", access: Access = requires("artifact.read")) -> Any:
    """The direct children of ``<experiment id>/<run id>/artifacts/<path>``."""
    def listing(session: Any, ctx: Any) -> list[Any]:
        if not path.strip("/") or re.fullmatch(r"[0-9]{1,18}(/[0-9a-f]{32})?/?", path.strip("/")):
            return []  # above a run's artifact root there is nothing to list file by file
        location = svc.locate(session, ctx, path)
        entries = artifact_svc.list_artifacts(session, ctx, location.run.id, location.path)
        return [_file_out(e, location.path) for e in entries]
    return JSON({"files": call(request, access, False, listing)})


@artifacts_router.get("/artifacts/{artifact_path:path}")
async def download_proxy_artifact(artifact_path: str, request: Request,
                                  access: Access = requires("artifact.read")) -> Any:
    def find(session: Any, ctx: Any) -> Any:
        location = svc.locate(session, ctx, artifact_path)
        return artifact_svc.get_version(session, ctx, location.run.id, location.path, None)
    row = await call_async(request, access, False, find)
    chunks = await run_in_threadpool(request.app.state.blobs.open, row.digest)
    return StreamingResponse(chunks, media_type="application/octet-stream",
                             headers={"Content-Length": str(row.size), "X-Cairn-Version": str(row.version)})


@artifacts_router.put("/artifacts/{artifact_path:path}")
async def upload_proxy_artifact(artifact_path: str, request: Request,
                                access: Access = requires("artifact.write")) -> Any:
    """Uploads land in Cairn's versioned store: a second upload of a path is its next version."""
    location = await call_async(request, access, False, lambda s, c: svc.locate(s, c, artifact_path, write=True))
    if not location.path:
        raise InvalidInputError("name a file below the run's artifact root", field="path")
    blob = await request.app.state.blobs.put_stream(request.stream())
    await call_async(request, access, True, artifact_svc.record_version, location.run.id, location.path, blob)
    return JSON({})


@artifacts_router.delete("/artifacts/{artifact_path:path}")
def delete_proxy_artifact(artifact_path: str, request: Request, access: Access = requires("artifact.write")) -> Any:
    call(request, access, False, lambda s, c: svc.locate(s, c, artifact_path, write=True))
    raise InvalidInputError("Cairn keeps every version of every artifact; they are removed with their run",
                            field="path")


# capabilities --------------------------------------------------------------------------------------------

@info_router.get("/api/3.0/mlflow/server-info")
@info_router.get("/ajax-api/3.0/mlflow/server-info")
def server_info(request: Request, access: Access = requires("public")) -> Any:
    """What MLflow clients ask before using workspaces; public, as in MLflow, and says nothing private."""
    return JSON({"store_type": "SqlStore", "workspaces_enabled": True, "trace_archival_enabled": False,
                 "multipart_uploads_enabled": request.app.state.blobs.direct, "multipart_downloads_enabled": False,
                 "features_enabled": []})
