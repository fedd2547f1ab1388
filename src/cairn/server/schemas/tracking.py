"""Request models and response shapes of the tracking API."""

from __future__ import annotations

from operator import itemgetter
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from cairn.server.db.models import ArtifactVersionRow, DatasetInputRow, ParamHistoryRow
from cairn.server.services.artifacts import ArtifactEntry
from cairn.server.services.experiments import ExperimentView
from cairn.server.services.metrics import summarize
from cairn.server.services.numbers import num, nums
from cairn.server.services.runs import RunView

MAX_ID = 2**31 - 1


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExperimentCreate(Strict):
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)


class ExperimentUpdate(Strict):
    name: str | None = None
    description: str | None = None


class RunCreateBody(Strict):
    run_id: str | None = None
    experiment_id: int | None = Field(default=None, ge=0, le=MAX_ID)
    experiment_name: str | None = None
    name: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    parent_run_id: str | None = None
    start_time: int | None = None
    user: str | None = None
    run_key: str | None = None


class RunUpdate(Strict):
    status: str | None = None
    end_time: int | None = None
    name: str | None = None


class RunSearch(Strict):
    experiment_ids: list[Annotated[int, Field(ge=0, le=MAX_ID)]] = Field(default_factory=list, max_length=1000)
    experiment_names: list[str] = Field(default_factory=list, max_length=1000)
    filter: str | None = None
    order_by: list[str] = Field(default_factory=list)
    max_results: int = 1000
    page_token: str | None = None
    run_view_type: str = "active_only"


class SearchCheck(Strict):
    filter: str | None = Field(None, max_length=10_000)
    order_by: list[str] = Field(default_factory=list, max_length=20)


class MetricDefinition(Strict):
    key: str
    goal: str | None = None


class DatasetInput(Strict):
    name: str
    uri: str = ""
    digest: str = ""
    version: str = ""
    role: str = ""


def experiment_out(view: ExperimentView) -> dict[str, Any]:
    row = view.row
    return {"experiment_id": row.id, "name": row.name, "description": row.description,
            "lifecycle": row.lifecycle, "created_at": row.created_at, "updated_at": row.updated_at,
            "tags": view.tags, "run_count": view.run_count, "last_activity": view.last_activity}


def summary_out(row: Any) -> dict[str, Any]:
    """A summary from a MetricSeriesRow or a SeriesState."""
    s = summarize(row)
    return {"key": row.key, "goal": row.goal, "count": row.count, "last": num(s.last), "last_step": row.last_step,
            "last_timestamp": row.last_timestamp, "min": num(s.min), "min_step": row.min_step,
            "max": num(s.max), "max_step": row.max_step, "mean": num(s.mean), "best": num(s.best),
            "best_step": s.best_step}


def dataset_out(row: DatasetInputRow) -> dict[str, Any]:
    return {"name": row.name, "uri": row.uri, "digest": row.digest, "version": row.version, "role": row.role,
            "created_at": row.created_at}


def run_out(view: RunView) -> dict[str, Any]:
    row = view.row
    return {
        "run_id": row.id, "name": row.name, "experiment_id": row.experiment_id,
        "experiment_name": view.experiment_name, "status": row.status, "start_time": row.start_time,
        "end_time": row.end_time, "user": row.user, "parent_run_id": row.parent_run_id,
        "lifecycle": row.lifecycle, "run_key": row.run_key, "compliant": row.compliant, "tags": view.tags,
        "params": view.params,
        "metrics": {s.key: summary_out(s) for s in view.metrics},
        "datasets": [dataset_out(d) for d in view.datasets],
        "at_best": {k: {m: num(v) for m, v in vals.items()} for k, vals in view.at_best.items()},
    }


def param_history_out(rows: list[ParamHistoryRow]) -> dict[str, Any]:
    return {"key": rows[0].key, "history": [{"value": r.value, "timestamp": r.timestamp} for r in rows]}


def history_out(key: str, points: list[tuple[int, int, float | None]]) -> dict[str, Any]:
    """Columnar: steps, timestamps and values as three lists (NaN stored as None)."""
    steps = list(map(itemgetter(0), points))
    stamps = list(map(itemgetter(1), points))
    values = list(map(itemgetter(2), points))
    return {"key": key, "steps": steps, "timestamps": stamps, "values": nums(values)}


def artifact_out(entry: ArtifactEntry) -> dict[str, Any]:
    return {"path": entry.path, "is_dir": entry.is_dir, "size": entry.size, "version": entry.version,
            "digest": entry.digest, "created_at": entry.created_at}


def artifact_version_out(row: ArtifactVersionRow) -> dict[str, Any]:
    return {"path": row.path, "version": row.version, "digest": row.digest, "size": row.size,
            "created_at": row.created_at, "created_by": row.created_by}
