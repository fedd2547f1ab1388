"""Metric ingest and reads.

A batch arrives columnar: per key, lists of steps, values and timestamps. In the same transaction
that stores the points, the series' summary (last, min, max, count, mean, each with its step) is
brought up to date, so reading or sorting by a summary never scans points. NaN is stored as NULL
and is skipped by min, max and mean; +inf and -inf are ordinary values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from cairn.server.db import points
from cairn.server.db.models import MetricPointRow, MetricSeriesRow
from cairn.server.db.upsert import insert_ignore
from cairn.server.services.errors import InvalidInputError, NotFoundError
from cairn.server.services.validation import MAX_INT64, check_int, check_key

_SPECIAL_IN: dict[str, float | None] = {
    "NaN": None, "nan": None, "Infinity": math.inf, "inf": math.inf, "-Infinity": -math.inf, "-inf": -math.inf,
}
GOALS = ("min", "max")


@dataclass
class SeriesBatch:
    key: str
    steps: list[int]
    values: list[float | None]  # None stands for NaN
    timestamps: list[int]


def parse_series(raw: Any, field: str, now: int) -> SeriesBatch:
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{field} must be an object with key, steps and values", field=field)
    key = check_key(f"{field}.key", raw.get("key"))
    values = _parse_values(f"{field}.values", raw.get("values"))
    steps = _parse_ints(f"{field}.steps", raw.get("steps"), len(values), default=None)
    timestamps = _parse_ints(f"{field}.timestamps", raw.get("timestamps"), len(values), default=now)
    return SeriesBatch(key, steps, values, timestamps)


def _parse_values(field: str, values: Any) -> list[float | None]:
    if not isinstance(values, list) or not values:
        raise InvalidInputError(f"{field} must be a non-empty list of numbers", field=field)
    if all(type(v) is float for v in values):
        return values
    if all(type(v) is float or type(v) is int for v in values):
        try:
            return [float(v) for v in values]
        except OverflowError as exc:
            raise InvalidInputError(f"{field} has an integer too large for a 64-bit float", field=field) from exc
    out: list[float | None] = []
    for i, v in enumerate(values):
        if type(v) is float or (type(v) is int and abs(v) < 2**1000):
            out.append(float(v))
        elif isinstance(v, str) and v in _SPECIAL_IN:
            out.append(_SPECIAL_IN[v])
        else:
            raise InvalidInputError(
                f"{field}[{i}] must be a number (or \"NaN\", \"Infinity\", \"-Infinity\"), got {v!r}",
                field=f"{field}[{i}]",
            )
    return out


def _parse_ints(field: str, raw: Any, n: int, *, default: int | None) -> list[int]:
    if raw is None and default is not None:
        return [default] * n
    if not isinstance(raw, list) or len(raw) != n:
        raise InvalidInputError(f"{field} must be a list of {n} integers, one per value", field=field)
    if all(type(s) is int for s in raw) and min(raw) >= -MAX_INT64 and max(raw) <= MAX_INT64:
        return raw
    for i, s in enumerate(raw):
        check_int(f"{field}[{i}]", s)
    return raw


_SERIES: Table = MetricSeriesRow.__table__  # type: ignore[assignment]
_SUMMARY = ("count", "numeric_count", "sum", "last_value", "last_step", "last_timestamp",
            "min_value", "min_step", "max_value", "max_step")


@dataclass(slots=True)
class SeriesState:
    """A series' definition and summary as plain values: what ingest updates and what reads show
    (cheaper than ORM rows or Row attributes)."""

    id: int
    run_id: str
    key: str
    goal: str | None
    count: int
    numeric_count: int
    sum: float | None
    last_value: float | None
    last_step: int | None
    last_timestamp: int | None
    min_value: float | None
    min_step: int | None
    max_value: float | None
    max_step: int | None


_STATE_COLUMNS = [_SERIES.c[f] for f in SeriesState.__dataclass_fields__]


def _state(row: Any) -> SeriesState:
    return SeriesState(*row)


def ingest(session: Session, run_id: str, batches: list[SeriesBatch]) -> int:
    """Store the points and update the summaries; returns the number of points stored."""
    series = lock_series(session, run_id, sorted({b.key for b in batches}))
    rows: list[points.PointTuple] = []
    for batch in batches:
        state = series[batch.key]
        n = len(batch.values)
        rows.extend(zip([state.id] * n, batch.steps, range(state.count, state.count + n),
                        batch.timestamps, batch.values, strict=True))
        _update_summary(state, batch)
    points.insert_points(session, rows)
    t = _SERIES
    session.execute(
        update(t).where(t.c.id == bindparam("sid")).values({c: bindparam(f"v_{c}") for c in _SUMMARY}),
        [{"sid": st.id, **{f"v_{c}": getattr(st, c) for c in _SUMMARY}} for st in series.values()],
    )
    return len(rows)


def lock_series(session: Session, run_id: str, keys: list[str]) -> dict[str, SeriesState]:
    """The series of these keys, created if missing, locked for update in key order."""
    found = _select_series(session, run_id, keys)
    missing = [k for k in keys if k not in found]
    if missing:
        insert_ignore(session, MetricSeriesRow, [{"run_id": run_id, "key": k} for k in missing], ["run_id", "key"])
        found.update(_select_series(session, run_id, missing))
    return found


def _select_series(session: Session, run_id: str, keys: list[str]) -> dict[str, SeriesState]:
    t = _SERIES
    query = (
        select(*_STATE_COLUMNS)
        .where(t.c.run_id == run_id, t.c.key == keys[0] if len(keys) == 1 else t.c.key.in_(keys))
        .order_by(t.c.key)
        .with_for_update()
    )
    return {row.key: row for row in map(_state, session.execute(query))}


def _update_summary(row: SeriesState, batch: SeriesBatch) -> None:
    values, steps, stamps = batch.values, batch.steps, batch.timestamps
    numeric: list[float] = [v for v in values if v is not None]
    if numeric:
        low, high = min(numeric), max(numeric)
        if row.min_value is None or low < row.min_value:
            row.min_value, row.min_step = low, steps[values.index(low)]
        if row.max_value is None or high > row.max_value:
            row.max_value, row.max_step = high, steps[values.index(high)]
        # inf + -inf is NaN; SQLite keeps NaN as NULL, so a NULL sum with numeric points means NaN
        prior = math.nan if row.sum is None and row.numeric_count else (row.sum or 0.0)
        total = prior + sum(numeric)
        row.sum = None if total != total else total
        row.numeric_count = (row.numeric_count or 0) + len(numeric)
    row.count = (row.count or 0) + len(values)
    j = max(range(len(values) - 1, -1, -1), key=lambda i: (steps[i], stamps[i]))
    if row.last_step is None or (steps[j], stamps[j]) >= (row.last_step, row.last_timestamp or 0):
        row.last_value, row.last_step, row.last_timestamp = values[j], steps[j], stamps[j]


def define_metric(session: Session, run_id: str, key: str, goal: str | None) -> MetricSeriesRow:
    check_key("key", key)
    if goal is not None and goal not in GOALS:
        raise InvalidInputError(f"goal must be 'min', 'max' or null, got {goal!r}", field="goal")
    series_id = lock_series(session, run_id, [key])[key].id
    row = session.get(MetricSeriesRow, series_id)
    assert row is not None
    row.goal = goal
    return row


def get_series(session: Session, run_id: str, key: str) -> MetricSeriesRow:
    row = session.scalar(
        select(MetricSeriesRow).where(MetricSeriesRow.run_id == run_id, MetricSeriesRow.key == key)
    )
    if row is None:
        raise NotFoundError(f"run {run_id} has no metric {key!r}", field="key")
    return row




def list_series(session: Session, run_ids: list[str]) -> dict[str, list[SeriesState]]:
    """The summaries of many runs' metrics, by run, in key order."""
    out: dict[str, list[SeriesState]] = {r: [] for r in run_ids}
    query = select(*_STATE_COLUMNS).where(_SERIES.c.run_id.in_(run_ids)).order_by(_SERIES.c.key)
    for summary in map(_state, session.execute(query)):
        out[summary.run_id].append(summary)
    return out


def values_at_step(session: Session, run_id: str, step: int) -> dict[str, float]:
    """The value of each of the run's metrics at one step (the last logged there)."""
    s, p = MetricSeriesRow, MetricPointRow
    query = (
        select(s.key, p.value)
        .join(p, p.series_id == s.id)
        .where(s.run_id == run_id, p.step == step)
        .order_by(s.key, p.seq)
    )
    return {key: (math.nan if value is None else value) for key, value in session.execute(query)}


@dataclass(frozen=True)
class Bucket:
    first_step: int
    last_step: int
    count: int
    min: float | None  # None: the bucket holds only NaN
    max: float | None
    mean: float | None
    first_timestamp: int


def buckets(session: Session, series_id: int, n: int, start_step: int | None = None,
            end_step: int | None = None) -> list[Bucket]:
    """At most ``n`` buckets of equal step width over [start_step, end_step], each with its min and max (so
    a spike is never averaged away) and mean: what a chart needs to draw a million points honestly."""
    p = MetricPointRow
    where = [p.series_id == series_id]
    if start_step is not None:
        where.append(p.step >= start_step)
    if end_step is not None:
        where.append(p.step <= end_step)
    low, high = session.execute(select(func.min(p.step), func.max(p.step)).where(*where)).one()
    if low is None:
        return []
    width = max(1, -(-(high - low + 1) // n))  # ceil, in integers: no overflow, no float rounding
    bucket = ((p.step - low) // width).label("b")  # integer division on both stores
    query = select(bucket, func.min(p.step), func.max(p.step), func.count(), func.min(p.value), func.max(p.value),
                   func.avg(p.value), func.min(p.timestamp)).where(*where).group_by(bucket).order_by(bucket)
    return [Bucket(first, last, count, lo, hi, mean, stamp)
            for _, first, last, count, lo, hi, mean, stamp in session.execute(query)]
