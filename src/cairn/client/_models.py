"""What the SDK returns: plain dataclasses built from the API's JSON."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Self, overload

from cairn._wire import RunHeader

_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        return _SPECIAL[value]
    return float(value)


def floats(values: list[Any]) -> list[float]:
    """JSON values to floats ("NaN", "Infinity", "-Infinity" included), fast when all are numbers."""
    if all(type(v) is float for v in values):
        return values
    return [as_float(v) for v in values]


def as_float(value: Any) -> float:
    result = number(value)
    return math.nan if result is None else result


@dataclass(frozen=True)
class MetricSummary:
    key: str
    count: int
    last: float | None
    last_step: int | None
    min: float | None
    min_step: int | None
    max: float | None
    max_step: int | None
    mean: float | None
    goal: str | None = None
    best: float | None = None
    best_step: int | None = None
    last_timestamp: int | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MetricSummary:
        return cls(d["key"], d["count"], number(d["last"]), d["last_step"], number(d["min"]), d["min_step"],
                   number(d["max"]), d["max_step"], number(d["mean"]), d.get("goal"), number(d.get("best")),
                   d.get("best_step"), d.get("last_timestamp"))


@dataclass(frozen=True)
class Dataset:
    name: str
    uri: str
    digest: str
    version: str
    role: str


@dataclass(frozen=True)
class Run(RunHeader):
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, MetricSummary]
    datasets: list[Dataset] = field(default_factory=list)
    at_best: dict[str, dict[str, float]] = field(default_factory=dict)
    """For each metric with a goal: every metric's value at that metric's best step."""

    @property
    def id(self) -> str:
        return self.run_id

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Self:
        return cls(
            d["run_id"], d["name"], d["experiment_id"], d["experiment_name"], d["status"], d["start_time"],
            d["end_time"], d["user"], d["parent_run_id"], d["lifecycle"], d["run_key"],
            dict(d["params"]), dict(d["tags"]), {k: MetricSummary.from_json(v) for k, v in d["metrics"].items()},
            [Dataset(x["name"], x["uri"], x["digest"], x["version"], x["role"]) for x in d["datasets"]],
            {k: {m: as_float(v) for m, v in vals.items()} for k, vals in d["at_best"].items()},
        )


@dataclass(frozen=True)
class Experiment:
    id: int
    name: str
    description: str
    lifecycle: str
    tags: dict[str, str]
    run_count: int
    created_at: int
    last_activity: int | None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Experiment:
        return cls(d["experiment_id"], d["name"], d.get("description", ""), d.get("lifecycle", "active"),
                   dict(d.get("tags", {})), d.get("run_count", 0), d.get("created_at", 0), d.get("last_activity"))


class MetricPoint(NamedTuple):
    step: int
    value: float
    timestamp: int


class MetricHistory(Sequence[MetricPoint]):
    """A metric's points, kept columnar: ``steps``, ``values`` and ``timestamps`` are plain lists (ready
    for numpy); indexing or iterating gives MetricPoint tuples, made only when asked for."""

    def __init__(self, key: str, steps: list[int], values: list[float], timestamps: list[int]) -> None:
        self.key, self.steps, self.values, self.timestamps = key, steps, values, timestamps

    def __len__(self) -> int:
        return len(self.steps)

    @overload
    def __getitem__(self, index: int) -> MetricPoint: ...
    @overload
    def __getitem__(self, index: slice) -> list[MetricPoint]: ...

    def __getitem__(self, index: int | slice) -> MetricPoint | list[MetricPoint]:
        if isinstance(index, slice):
            return list(map(MetricPoint, self.steps[index], self.values[index], self.timestamps[index]))
        return MetricPoint(self.steps[index], self.values[index], self.timestamps[index])

    def __iter__(self) -> Iterator[MetricPoint]:
        return map(MetricPoint, self.steps, self.values, self.timestamps)

    def __repr__(self) -> str:
        return f"<MetricHistory {self.key!r}: {len(self)} points>"


@dataclass(frozen=True)
class ParamEntry:
    value: str
    timestamp: int


@dataclass(frozen=True)
class ArtifactInfo:
    """A file or a folder of a run's artifacts."""

    path: str
    is_dir: bool
    size: int | None = None  # of a file's latest version; None for a folder
    version: int | None = None
    digest: str | None = None  # "sha256:<hex>"


class RunList(list[Run]):
    """A page of runs; ``next_page_token`` fetches the next page (None on the last)."""

    next_page_token: str | None = None
