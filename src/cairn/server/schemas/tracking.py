"""Request models and response shapes of the tracking API.

Each answer is built by a fast ``*_out`` builder (plain dicts, no validation on the hot path) and declared by the
``Shape`` model beside it, which the routes name as their response model (so /openapi.json states it); tests
validate real answers against the shapes, so a builder and its shape cannot drift apart unnoticed."""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cairn._wire import ArtifactVersion as ArtifactVersion, RunHeader  # ArtifactVersion: re-exported
from cairn.server.db.models import ArtifactVersionRow, DatasetInputRow, ParamHistoryRow
from cairn.server.services.artifacts import ArtifactEntry
from cairn.server.services.experiments import ExperimentView
from cairn.server.services.metrics import summarize
from cairn.server.services.numbers import num, nums
from cairn.server.services.runs import RunView
from cairn.server.services.validation import MAX_ID


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Shape(BaseModel):
    """A response shape: an unknown key is an error, so a key a builder adds without its shape fails the tests."""

    model_config = ConfigDict(extra="forbid")


class Empty(Shape):
    """An answer with nothing more to say: ``{}``."""


Number = float | Literal["NaN", "Infinity", "-Infinity"] | None  # what ``num`` makes of a float (JSON has no NaN)


class NamedCreate(Strict):
    """A new object known by its name, with a free-text description (teams, workspaces, registries...)."""

    name: str
    description: str = ""


class TaggedCreate(NamedCreate):
    """A new experiment or registered model: a name, a description and tags."""

    tags: dict[str, str] = Field(default_factory=dict)


class NamedUpdate(Strict):
    """Renaming an experiment or a registered model, or changing its description; what is left out stays."""

    name: str | None = None
    description: str | None = None


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


class Experiment(Shape):
    experiment_id: int
    name: str
    description: str
    lifecycle: str
    created_at: int
    updated_at: int
    tags: dict[str, str]
    run_count: int
    last_activity: int | None


class ExperimentList(Shape):
    experiments: list[Experiment]


def experiment_out(view: ExperimentView) -> dict[str, Any]:
    row = view.row
    return {"experiment_id": row.id, "name": row.name, "description": row.description,
            "lifecycle": row.lifecycle, "created_at": row.created_at, "updated_at": row.updated_at,
            "tags": view.tags, "run_count": view.run_count, "last_activity": view.last_activity}


class MetricSummary(Shape):
    key: str
    goal: str | None
    count: int
    last: Number
    last_step: int | None
    last_timestamp: int | None
    min: Number
    min_step: int | None
    max: Number
    max_step: int | None
    mean: Number
    best: Number
    best_step: int | None


def summary_out(row: Any) -> dict[str, Any]:
    """A summary from a MetricSeriesRow or a SeriesState."""
    s = summarize(row)
    return {"key": row.key, "goal": row.goal, "count": row.count, "last": num(s.last), "last_step": row.last_step,
            "last_timestamp": row.last_timestamp, "min": num(s.min), "min_step": row.min_step,
            "max": num(s.max), "max_step": row.max_step, "mean": num(s.mean), "best": num(s.best),
            "best_step": s.best_step}


class Dataset(Shape):
    name: str
    uri: str
    digest: str
    version: str
    role: str
    created_at: int


def dataset_out(row: DatasetInputRow) -> dict[str, Any]:
    return {"name": row.name, "uri": row.uri, "digest": row.digest, "version": row.version, "role": row.role,
            "created_at": row.created_at}


@dataclass(frozen=True)
class Run(RunHeader):
    compliant: bool | None
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, MetricSummary]
    datasets: list[Dataset]
    at_best: dict[str, dict[str, Number]]


@dataclass(frozen=True)
class CreatedRun(Run):
    created: Annotated[bool | None, Field(description="only with run_key: false when an existing run was joined")] \
        = None


class RunPage(Shape):
    runs: list[Run]
    next_page_token: str | None


class SearchCheckResult(Shape):
    valid: bool
    message: str | None = None
    position: int | None = None
    field: str | None = None


class BatchResult(Shape):
    """How many points, params and tags were stored; ``replayed`` 1 when the idempotency key was seen before."""

    metrics: int
    params: int
    tags: int
    replayed: int


class ParamValue(Shape):
    value: str
    timestamp: int


class ParamHistory(Shape):
    key: str
    history: list[ParamValue]


class MetricHistory(Shape):
    key: str
    steps: list[int]
    timestamps: list[int]
    values: list[Number]


class MetricBuckets(Shape):
    key: str
    first_steps: list[int]
    last_steps: list[int]
    first_timestamps: list[int]
    counts: list[int]
    min: list[Number]
    max: list[Number]
    mean: list[Number]


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


class Artifact(Shape):
    path: str
    is_dir: bool
    size: int | None
    version: int | None
    digest: str | None
    created_at: int | None


class ArtifactList(Shape):
    root: str
    files: list[Artifact]


def buckets_out(key: str, rows: list[Any]) -> dict[str, Any]:
    """Per bucket of steps: its first and last step, count, min, max and mean (NaN points counted, not averaged)."""
    return {"key": key, "first_steps": [b.first_step for b in rows], "last_steps": [b.last_step for b in rows],
            "first_timestamps": [b.first_timestamp for b in rows],
            "counts": [b.count for b in rows], "min": nums([b.min for b in rows]),
            "max": nums([b.max for b in rows]), "mean": nums([b.mean for b in rows])}


def artifact_out(entry: ArtifactEntry) -> dict[str, Any]:
    return {"path": entry.path, "is_dir": entry.is_dir, "size": entry.size, "version": entry.version,
            "digest": entry.digest, "created_at": entry.created_at}


class ArtifactVersionList(Shape):
    path: str
    versions: list[ArtifactVersion]


class ArtifactBatch(Shape):
    versions: list[ArtifactVersion]


def artifact_version_out(row: ArtifactVersionRow) -> dict[str, Any]:
    return {"path": row.path, "version": row.version, "digest": row.digest, "size": row.size,
            "created_at": row.created_at, "created_by": row.created_by}
