"""MLflow's answer shapes (its protobuf messages in JSON form), made from the services' views.

Non-finite numbers are written as protobuf's JSON writes them ("NaN", "Infinity", "-Infinity"), which
MLflow's client reads back as floats. Experiment ids are written as MLflow clients know them: ``0`` for
the workspace's Default experiment (see ``services.mlflow``).
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy.orm import Session

from cairn.server.api.mlflow.protocol import kv
from cairn.server.db.models import LoggedModelRow, RunRow
from cairn.server.services import experiments, metrics, mlflow, runs
from cairn.server.services.context import Context
from cairn.server.services.numbers import num
from cairn.server.services.registry import ModelView, VersionView, to_mlflow_name


def paged(key: str, items: list[Any], token: str | None) -> dict[str, Any]:
    """A page of a list MLflow pages: the items, and ``next_page_token`` only when there is more."""
    out: dict[str, Any] = {key: items}
    if token:
        out["next_page_token"] = token
    return out


def default_experiment_id(session: Session, ctx: Context) -> int | None:
    row = experiments.find_experiment(session, ctx, experiments.DEFAULT_EXPERIMENT)
    return row.id if row is not None else None


def _key(experiment_id: int, default_id: int | None) -> str:
    return "0" if experiment_id == default_id else str(experiment_id)


def experiment_out(view: experiments.ExperimentView) -> dict[str, Any]:
    row = view.row
    key = mlflow.experiment_key(row)
    return {"experiment_id": key, "name": row.name,
            "artifact_location": row.artifact_location or f"mlflow-artifacts:/{key}",
            "lifecycle_stage": row.lifecycle, "creation_time": row.created_at, "last_update_time": row.updated_at,
            "tags": kv(view.tags)}


def run_info(row: RunRow, default_id: int | None) -> dict[str, Any]:
    key = _key(row.experiment_id, default_id)
    return {"run_id": row.id, "run_uuid": row.id, "run_name": row.name, "experiment_id": key,
            "user_id": row.user, "status": row.status, "start_time": row.start_time, "end_time": row.end_time,
            "artifact_uri": mlflow.artifact_uri(row, experiment=key), "lifecycle_stage": row.lifecycle}


def _dataset_out(d: Any) -> dict[str, Any]:
    tags = dict(d.input_tags or {})
    if d.role:
        tags.setdefault("mlflow.data.context", d.role)
    return {"tags": kv(tags), "dataset": {"name": d.name, "digest": d.digest, "source_type": d.source_type,
                                          "source": d.uri, "schema": d.dataset_schema, "profile": d.profile}}


def runs_out(session: Session, ctx: Context, views: list[runs.RunView]) -> list[dict[str, Any]]:
    """Runs as MLflow's ``Run`` messages, with the models each used and produced."""
    default_id = default_experiment_id(session, ctx)
    links = mlflow.model_links(session, [v.row.id for v in views])
    return [run_out(v, default_id, links.get(v.row.id, [])) for v in views]


def run_out(view: runs.RunView, default_id: int | None, links: list[Any] | None = None) -> dict[str, Any]:
    tags = dict(view.tags)
    tags.setdefault("mlflow.runName", view.row.name)
    if view.row.user:
        tags.setdefault("mlflow.user", view.row.user)
    if view.row.parent_run_id:
        tags.setdefault("mlflow.parentRunId", view.row.parent_run_id)
    last = [(s, metrics.summarize(s).last) for s in view.metrics if s.count]
    metric_list = [{"key": s.key, "value": num(value), "timestamp": s.last_timestamp, "step": s.last_step}
                   for s, value in last]
    models_in = [{"model_id": f"m-{link.logged_model_id}"} for link in links or [] if link.direction == "input"]
    models_out = [{"model_id": f"m-{link.logged_model_id}", "step": link.step} for link in links or []
                  if link.direction == "output"]
    return {"info": run_info(view.row, default_id),
            "data": {"metrics": metric_list, "params": kv(view.params), "tags": kv(tags)},
            "inputs": {"dataset_inputs": [_dataset_out(d) for d in view.datasets], "model_inputs": models_in},
            "outputs": {"model_outputs": models_out}}


def points_out(key: str, points: list[tuple[int, int, float | None]], run_id: str | None = None) -> list[Any]:
    out = []
    for step, timestamp, value in points:
        point = {"key": key, "value": num(math.nan if value is None else value), "timestamp": timestamp, "step": step}
        if run_id is not None:
            point["run_id"] = run_id
        out.append(point)
    return out


def file_out(entry: Any, base: str = "") -> dict[str, Any]:
    path = entry.path[len(base):].lstrip("/") if base else entry.path
    return {"path": path, "is_dir": True} if entry.is_dir else {"path": path, "is_dir": False,
                                                                 "file_size": entry.size}


def model_version_message(view: VersionView, source: str | None = None) -> dict[str, Any]:
    """A version as MLflow's ModelVersion message."""
    row = view.row
    out = {"name": to_mlflow_name(view.registry, view.model.name), "version": str(row.version),
           "creation_timestamp": row.created_at, "last_updated_timestamp": row.updated_at,
           "user_id": row.created_by, "current_stage": row.stage, "description": row.description,
           "source": row.lineage.get("mlflow_source") or source or "", "run_id": row.run_id or "",
           "status": row.status, "status_message": "", "tags": kv(view.tags), "aliases": list(view.aliases)}
    if row.logged_model_id:
        out["model_id"] = f"m-{row.logged_model_id}"
    return out


def model_out(view: ModelView, latest: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    row = view.row
    out: dict[str, Any] = {
        "name": to_mlflow_name(view.registry, row.name), "creation_timestamp": row.created_at,
        "last_updated_timestamp": row.updated_at, "description": row.description, "tags": kv(view.tags),
        "aliases": [{"alias": a, "version": str(v)} for a, v in sorted(view.aliases.items())]}
    if latest:
        out["latest_versions"] = latest
    return out


def _model_metric_out(m: Any) -> dict[str, Any]:
    return {"key": m.key, "value": num(math.nan if m.value is None else m.value), "timestamp": m.timestamp,
            "step": m.step, "model_id": f"m-{m.logged_model_id}", "dataset_name": m.dataset_name,
            "dataset_digest": m.dataset_digest, "run_id": m.run_id}


def logged_model_out(session: Session, ctx: Context, row: LoggedModelRow) -> dict[str, Any]:
    details = mlflow.info(row)
    experiment = experiments.get_experiment(session, ctx, row.experiment_id)
    return {"info": {"model_id": f"m-{row.id}", "experiment_id": mlflow.experiment_key(experiment),
                     "name": details.get("name", row.name), "artifact_uri": mlflow.logged_model_uri(session, ctx, row),
                     "creation_timestamp_ms": row.created_at, "last_updated_timestamp_ms": row.created_at,
                     "status": details.get("status", "LOGGED_MODEL_READY"),
                     "source_run_id": row.run_id or details.get("source_run_id", ""),
                     "model_type": details.get("model_type", ""), "tags": kv(details.get("tags") or {})},
            "data": {"params": kv(details.get("params") or {}),
                     "metrics": [_model_metric_out(m) for m in mlflow.model_metrics(session, row)]}}
