"""A run's write buffer while it fills and once sealed: columnar metrics, params, tags and the run's end,
and how a sealed buffer becomes one ``POST /api/v1/runs/<id>/batch`` op.

Kept apart from ``_sender``: that module decides when and where a write goes (queue, retry, spool), this
one what a write is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeGuard

import orjson

from cairn.client._ops import Op

__all__ = ["Batch", "Item", "count_points", "differs", "materialize", "merged", "metrics_only"]

_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}

Column = tuple[list[int], list[float], list[int]]


class Batch:
    """A run's buffer (columnar metrics, params, tags, its end): open while it fills, then sealed
    into the queue."""

    __slots__ = ("columns", "end", "params", "points", "run_id", "tags")

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.columns: dict[str, Column] = {}
        self.params: dict[str, Any] = {}
        self.tags: dict[str, str] = {}
        self.end: dict[str, Any] | None = None
        self.points = 0


Item = Op | Batch


def count_points(item: Item) -> int:
    return item.points if isinstance(item, Batch) else 1


def metrics_only(item: Item) -> TypeGuard[Batch]:
    return isinstance(item, Batch) and not item.params and not item.tags and item.end is None


def merged(items: list[Item]) -> Batch:
    """Buffers of one run's metrics as one, each key's points in the order they were logged."""
    batches = [item for item in items if isinstance(item, Batch)]
    out = Batch(batches[0].run_id)
    columns = out.columns
    for batch in batches:
        for key, (steps, values, stamps) in batch.columns.items():
            held = columns.get(key)
            if held is None:
                columns[key] = (list(steps), list(values), list(stamps))
            else:
                held[0].extend(steps)
                held[1].extend(values)
                held[2].extend(stamps)
        out.points += batch.points
    return out


def differs(held: Any, value: Any) -> bool:
    """Another value for a buffered key (1, 1.0 and True are three: the server stores them as text)."""
    return type(held) is not type(value) or held != value


def materialize(item: Item, record: Callable[[str], None]) -> Op | None:
    """The op that sends ``item``; None if nothing of it can be sent (each loss told to ``record``)."""
    if isinstance(item, Op):
        return item
    body: dict[str, Any] = {}
    metrics = _encode_metrics(item, record)
    if metrics:
        body["metrics"] = metrics
    if item.params:
        body["params"] = item.params
    if item.tags:
        body["tags"] = item.tags
    if item.end:
        body.update(item.end)
    if not body:
        return None
    try:
        data = orjson.dumps(body)
    except TypeError as exc:
        record(f"batch of run {item.run_id} ({item.points} points and items) dropped: {exc}")
        return None
    return Op(method="POST", path=f"/api/v1/runs/{item.run_id}/batch", body=data, run_id=item.run_id)


def _encode_metrics(item: Batch, record: Callable[[str], None]) -> list[dict[str, Any]]:
    metrics = []
    for key, (steps, values, stamps) in item.columns.items():
        try:
            encoded = _json_values(values)
        except (TypeError, ValueError) as exc:
            record(f"metric {key!r} of run {item.run_id}: {len(values)} points dropped: {exc}")
            continue
        metrics.append({"key": key, "steps": steps, "values": encoded, "timestamps": stamps})
    return metrics


def _json_values(values: list[float]) -> list[float] | list[float | str]:
    """Values as JSON can carry them; raises TypeError/ValueError for a non-number."""
    if all(type(v) is float for v in values) and math.isfinite(sum(values)):
        return values  # fast path: plain finite floats (a sum that overflows takes the slow path)
    out: list[float | str] = []
    for value in values:
        f = float(value)
        out.append(f if math.isfinite(f) else _NON_FINITE.get(f, "NaN"))
    return out
