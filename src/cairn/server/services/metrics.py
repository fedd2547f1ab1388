"""Metric ingest and reads.

A batch arrives columnar: per key, lists of steps, values and timestamps. In the same transaction
that stores the points, the series' summary (last, min, max, count, mean, each with its step) is
brought up to date, so reading or sorting by a summary never scans points. NaN is stored as NULL
and is skipped by min, max and mean; +inf and -inf are ordinary values.

The same transaction adds the points into the series' rollups: per bucket of 2**level steps, for a
few levels, the count, sum, min, max, first and last step and earliest time. A chart of a million
points then reads at most about 4 rollup rows per bucket drawn instead of every point (see :func:`buckets`).
"""

from __future__ import annotations

import functools
import itertools
import math
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Table, case, select
from sqlalchemy.orm import Session

from cairn.server import observability
from cairn.server.db import points, series as db_series
from cairn.server.db.models import MetricSeriesRow
from cairn.server.db.upsert import insert_ignore
from cairn.server.services.errors import InvalidInputError, NotFoundError
from cairn.server.services.validation import MAX_INT64, check_int, check_key

_SPECIAL_IN: dict[str, float | None] = {
    "NaN": None, "nan": None, "Infinity": math.inf, "inf": math.inf, "-Infinity": -math.inf, "-inf": -math.inf,
}
GOALS = ("min", "max")
LEVELS = tuple(range(6, 23, 2))  # rollup bucket widths 2**level: 64, 256, 1024, ... 4194304 steps
SMALL_SERIES = 16_384  # a series with fewer points is bucketed from its raw points
_STEP_MIN, _STEP_MAX = -(2**63), 2**63 - 1


@dataclass
class SeriesBatch:
    key: str
    steps: list[int]
    values: list[float | None]  # None stands for NaN
    timestamps: list[int]


class Summary(NamedTuple):
    """A series' summary as readers see it: NaN where the stored NULL means NaN, None where there is no value."""

    last: float | None
    min: float | None
    max: float | None
    mean: float | None
    best: float | None
    best_step: int | None


def summarize(row: Any) -> Summary:
    """The one place that reads a summary row (a MetricSeriesRow or a SeriesState): a series whose last point
    is NaN has a NULL last value (SQLite cannot store NaN), and a NULL sum over numeric points is a NaN mean
    (+inf and -inf met). Min and max skip NaN; best is the min or max named by the goal. The SQL beside these
    rules, for search and sorting, is :func:`summary_column`."""
    mean = (math.nan if row.sum is None else row.sum / row.numeric_count) if row.numeric_count else None
    last = row.last_value if row.last_value is not None or not row.count else math.nan
    best, best_step = None, None
    if row.goal == "min":
        best, best_step = row.min_value, row.min_step
    elif row.goal == "max":
        best, best_step = row.max_value, row.max_step
    return Summary(last, row.min_value, row.max_value, mean, best, best_step)


def summary_column(series: Any, agg: str) -> Any:
    """The SQL expression of summary ``agg`` over an (aliased) ``metric_series`` table, as :func:`summarize`
    computes it in Python (a NaN mean or last sorts as no value)."""
    if agg == "mean":
        return series.sum / case((series.numeric_count > 0, series.numeric_count), else_=None)
    if agg == "best":
        return case((series.goal == "min", series.min_value), (series.goal == "max", series.max_value), else_=None)
    return {"last": series.last_value, "min": series.min_value, "max": series.max_value, "count": series.count}[agg]


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
    types = set(map(type, values))  # one pass in C: a generator over a 20,000-point batch costs more
    if types == {float}:
        return values
    if types <= {float, int}:
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
    if set(map(type, raw)) == {int} and min(raw) >= -MAX_INT64 and max(raw) <= MAX_INT64:
        return raw
    for i, s in enumerate(raw):
        check_int(f"{field}[{i}]", s)
    return raw


_SERIES: Table = MetricSeriesRow.__table__  # type: ignore[assignment]
_SUMMARY = db_series.SUMMARY_COLUMNS


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
assert tuple(SeriesState.__dataclass_fields__) == db_series.STATE_COLUMNS


def _state(row: Any) -> SeriesState:
    return SeriesState(*row)


def ingest(session: Session, run_id: str, batches: list[SeriesBatch], *,
           locked: list[tuple[Any, ...]] | None = None) -> int:
    """Store the points and update the summaries; returns the number of points stored.

    Rollups are kept only for series of at least ``SMALL_SERIES`` points, the only ones read from them:
    most series (a run's loss over a few hundred epochs, a metric logged once) never pay for them. The
    batch that takes a series past the threshold builds its rollups from all its stored points.
    ``locked``: the rows of the batches' series the caller already read and locked."""
    series = lock_series(session, run_id, sorted({b.key for b in batches}), locked)
    parts: list[points.PointColumns] = []
    rollups: list[points.RollupTuple] = []
    crossed: set[int] = set()
    for batch in batches:
        state = series[batch.key]
        before = state.count
        parts.append((state.id, batch.steps, before, batch.timestamps, batch.values))
        _update_summary(state, batch)
        if before < SMALL_SERIES <= state.count:
            crossed.add(state.id)
        elif state.count >= SMALL_SERIES and state.id not in crossed:
            rollups.extend(_rollup_parts(state.id, batch))
    with points.sent_together(session):  # one round trip on PostgreSQL
        if session.info.get("fast_metric_commit"):
            points.skip_commit_flush(session)
        points.insert_points(session, parts)
        for series_id in crossed:  # from all its points, this batch's too; replacing any left from before 0006
            points.build_rollups(session, series_id, LEVELS, functools.partial(_finest_rollups, series_id))
        points.upsert_rollups(session, rollups)
        db_series.update_summaries(session, [(*(getattr(st, c) for c in _SUMMARY), st.id)
                                             for st in series.values()])
    stored = sum(len(batch.values) for batch in batches)
    observability.count("cairn_points_ingested_total", stored)
    return stored


def lock_series(session: Session, run_id: str, keys: list[str],
                locked: list[tuple[Any, ...]] | None = None) -> dict[str, SeriesState]:
    """The series of these keys, created if missing, locked for update in key order (``locked``: those of
    them the caller already read so)."""
    found = _select_series(session, run_id, keys) if locked is None else _by_key(locked)
    missing = [k for k in keys if k not in found]
    if missing:
        insert_ignore(session, MetricSeriesRow, [{"run_id": run_id, "key": k} for k in missing], ["run_id", "key"])
        found.update(_select_series(session, run_id, missing))
    return found


def _select_series(session: Session, run_id: str, keys: list[str]) -> dict[str, SeriesState]:
    return _by_key(db_series.select_series(session, run_id, keys))


def _by_key(rows: list[tuple[Any, ...]]) -> dict[str, SeriesState]:
    return {row.key: row for row in map(_state, rows)}


def _update_summary(row: SeriesState, batch: SeriesBatch) -> None:
    values, steps, stamps = batch.values, batch.steps, batch.timestamps
    numeric: list[Any] = values
    try:
        batch_sum = sum(numeric)  # 0 + None raises: faster than looking for NaN (None) first
    except TypeError:
        numeric = [v for v in values if v is not None]
        batch_sum = sum(numeric)
    if numeric:
        low, high = min(numeric), max(numeric)
        if row.min_value is None or low < row.min_value:
            row.min_value, row.min_step = low, steps[values.index(low)]
        if row.max_value is None or high > row.max_value:
            row.max_value, row.max_step = high, steps[values.index(high)]
        # inf + -inf is NaN; SQLite keeps NaN as NULL, so a NULL sum with numeric points means NaN
        prior = math.nan if row.sum is None and row.numeric_count else (row.sum or 0.0)
        total = prior + batch_sum
        row.sum = None if math.isnan(total) else total
        row.numeric_count = (row.numeric_count or 0) + len(numeric)
    row.count = (row.count or 0) + len(values)
    j = _last_point(steps, stamps)
    if row.last_step is None or (steps[j], stamps[j]) >= (row.last_step, row.last_timestamp or 0):
        row.last_value, row.last_step, row.last_timestamp = values[j], steps[j], stamps[j]


def _last_point(steps: list[int], stamps: list[int]) -> int:
    """The index of the last point: highest step, then latest timestamp, then logged last."""
    top = max(steps)
    if steps.count(top) == 1:
        return steps.index(top)
    return max((i for i in range(len(steps) - 1, -1, -1) if steps[i] == top), key=stamps.__getitem__)


def _rollup_parts(series_id: int, batch: SeriesBatch) -> list[points.RollupTuple]:
    """The batch's contribution to each rollup level: the finest level from the points (in step
    order), each coarser one from the level below, a column at a time."""
    steps, values, stamps = batch.steps, batch.values, batch.timestamps
    if len(steps) == 1:  # one point (log_metric): the same part at every level
        step, value = steps[0], values[0]
        return [(series_id, level, step >> level, 1, int(value is not None), 0.0 if value is None else value,
                 value, value, step, step, stamps[0]) for level in LEVELS]
    ordered = sorted(steps)
    if ordered != steps:
        order = sorted(range(len(steps)), key=steps.__getitem__)
        steps, values, stamps = ordered, [values[i] for i in order], [stamps[i] for i in order]
    level = _Level.of_points(steps, values, stamps, LEVELS[0])
    rows = level.rows(series_id)
    for below, above in itertools.pairwise(LEVELS):
        level = level.coarser(above, above - below)
        rows += level.rows(series_id)
    return rows


def _finest_rollups(series_id: int, steps: list[int], values: list[float | None],
                    stamps: list[int]) -> list[points.RollupTuple]:
    """The finest level's rows from all of a series' points, in step order."""
    return _Level.of_points(steps, values, stamps, LEVELS[0]).rows(series_id)


def _edges(keys: list[int], shift: int) -> list[int]:
    """Where ``key >> shift`` changes in the sorted ``keys``: [0, ..., len(keys)]."""
    n = len(keys)
    if keys[-1] - keys[0] == n - 1:  # consecutive integers, or as many repeated keys as missing ones
        # For consecutive keys (keys[i] == keys[0] + i) the edges are evenly spaced. A span of n - 1 alone
        # does not prove it ([14, 15, 15, 17]), so check the keys on both sides of every edge: then each
        # part holds keys of one bucket only, and the next part starts the next bucket.
        width, low = 1 << shift, keys[0]
        first = min(n, -low % width or width)
        if (keys[first::width] == list(range(low + first, low + n, width))
                and keys[first - 1::width] == list(range(low + first - 1, low + n, width))):
            return [0, *range(first, n, width), n]
    edges, i = [0], 0
    while i < n:
        i = bisect_left(keys, ((keys[i] >> shift) + 1) << shift, i)
        edges.append(i)
    return edges


@dataclass(slots=True)
class _Level:
    """One rollup level's parts as columns. Internally a part with no number has min +inf and max -inf,
    and a NaN sum is NaN; :meth:`rows` turns both into the stored NULLs."""

    level: int
    buckets: list[int]
    counts: list[int]
    numeric: list[int]
    sums: list[float]
    mins: list[float]
    maxs: list[float]
    firsts: list[int]
    lasts: list[int]
    stamps: list[int]

    @classmethod
    def of_points(cls, steps: list[int], values: list[float | None], stamps: list[int], level: int) -> _Level:
        edges = _edges(steps, level)
        spans = list(itertools.pairwise(edges))
        chunks: list[Any] = [values[a:b] for a, b in spans]
        sums: list[float]
        try:
            sums = list(map(sum, chunks))  # 0 + None raises: faster than looking for None first
            mins, maxs = list(map(min, chunks)), list(map(max, chunks))
        except TypeError:  # NaN (None) among the values
            chunks = [[v for v in chunk if v is not None] for chunk in chunks]
            sums = [sum(chunk, 0.0) for chunk in chunks]  # 0.0, not 0, for a chunk of NaN only
            mins = [min(c, default=math.inf) for c in chunks]
            maxs = [max(c, default=-math.inf) for c in chunks]
        starts = edges[:-1]
        firsts = [steps[a] for a in starts]
        earliest = ([stamps[a] for a in starts] if stamps == sorted(stamps)
                    else [min(stamps[a:b]) for a, b in spans])
        return cls(level, [s >> level for s in firsts], [b - a for a, b in spans], list(map(len, chunks)),
                   sums, mins, maxs, firsts, [steps[b - 1] for b in edges[1:]], earliest)

    def coarser(self, level: int, shift: int) -> _Level:
        if len(self.buckets) == 1:  # one part stays one part, in the bucket that holds it
            return _Level(level, [self.buckets[0] >> shift], self.counts, self.numeric, self.sums, self.mins,
                          self.maxs, self.firsts, self.lasts, self.stamps)
        edges = _edges(self.buckets, shift)
        spans = list(itertools.pairwise(edges))

        def each(column: list[Any], merge: Any) -> list[Any]:
            return [merge(column[a:b]) for a, b in spans]

        return _Level(level, [self.buckets[a] >> shift for a in edges[:-1]], each(self.counts, sum),
                      each(self.numeric, sum), each(self.sums, sum), each(self.mins, min), each(self.maxs, max),
                      [self.firsts[a] for a in edges[:-1]], [self.lasts[b - 1] for b in edges[1:]],
                      each(self.stamps, min))

    def rows(self, series_id: int) -> list[points.RollupTuple]:
        sums: list[Any] = self.sums
        if any(map(math.isnan, sums)):  # +inf and -inf in one part
            sums = [None if math.isnan(s) else s for s in sums]
        mins: list[Any] = self.mins
        maxs: list[Any] = self.maxs
        if 0 in self.numeric:  # parts of NaN only
            mins = [v if c else None for v, c in zip(mins, self.numeric, strict=True)]
            maxs = [v if c else None for v, c in zip(maxs, self.numeric, strict=True)]
        n = len(self.buckets)
        return list(zip([series_id] * n, [self.level] * n, self.buckets, self.counts, self.numeric, sums, mins, maxs,
                        self.firsts, self.lasts, self.stamps, strict=True))


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
    found = points.values_at_step(session, run_id, step)
    return {key: (math.nan if value is None else value) for key, value in found.items()}


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
    a spike is never averaged away) and mean: what a chart needs to draw a million points honestly.

    A long series is read from its rollups: the coarsest level whose width fits in the bucket width
    the range needs, the bucket width rounded up to a multiple of that level's width and the buckets
    aligned to it, so each rollup row falls in one bucket. Where the range cuts a rollup bucket, finer
    levels and, below the finest, the raw points fill in: the answer is exact. A short series (or a
    range narrower than ``n`` finest rollups) is bucketed from its points, ``ceil(range / n)`` wide.
    """
    bounds = points.step_bounds(session, series_id, _STEP_MIN if start_step is None else start_step,
                                _STEP_MAX if end_step is None else end_step)
    if bounds is None:
        return []
    low, high = bounds
    width = -(-(high - low + 1) // n)  # ceil, in integers: no overflow, no float rounding
    levels: list[int] = []
    if width >= 1 << LEVELS[0] and (session.scalar(select(_SERIES.c.count).where(_SERIES.c.id == series_id))
                                    or 0) >= SMALL_SERIES:
        levels = [level for level in reversed(LEVELS) if 1 << level <= width]
    unit = 1 << levels[0] if levels else 1
    base = low - low % unit
    width = unit * -(-(high - base + 1) // (n * unit))
    parts = _Parts()
    for span in _plan(low, high, levels):
        if span.level is None:
            parts.add_points(points.read_point_range(session, series_id, span.first, span.last))
        else:
            parts.add_rollups(points.read_rollups(session, series_id, span.level, span.first, span.last))
    return parts.buckets(base, width)


class _Span(NamedTuple):
    level: int | None  # None: raw points, first and last are steps; else rollup buckets of this level
    first: int
    last: int


def _plan(first_step: int, last_step: int, levels: list[int]) -> list[_Span]:
    """Cover [first_step, last_step] exactly with whole rollup buckets, coarsest first, in step order;
    what no whole bucket of any level covers is read as points."""
    if first_step > last_step:
        return []
    for i, level in enumerate(levels):
        first, last = -(-first_step >> level), ((last_step + 1) >> level) - 1
        if first <= last:
            finer = levels[i + 1:]
            return [*_plan(first_step, (first << level) - 1, finer), _Span(level, first, last),
                    *_plan((last + 1) << level, last_step, finer)]
    return [_Span(None, first_step, last_step)]


class _Parts:
    """Rollup rows and points as columns in step order, merged into buckets in :meth:`buckets`."""

    def __init__(self) -> None:
        self.steps: list[int] = []  # any step of the part: all of it falls in one bucket
        self.counts: list[int] = []
        self.numeric: list[int] = []
        self.sums: list[float] = []
        self.mins: list[float] = []  # +inf where a part has no number
        self.maxs: list[float] = []  # -inf where a part has no number
        self.firsts: list[int] = []
        self.lasts: list[int] = []
        self.stamps: list[int] = []

    def add_rollups(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        _, counts, numeric, sums, mins, maxs, firsts, lasts, stamps = zip(*rows, strict=True)
        self.steps += firsts
        self.counts += counts
        self.numeric += numeric
        self.sums += [math.nan if s is None else s for s in sums] if None in sums else sums
        self.mins += [math.inf if v is None else v for v in mins] if None in mins else mins
        self.maxs += [-math.inf if v is None else v for v in maxs] if None in maxs else maxs
        self.firsts += firsts
        self.lasts += lasts
        self.stamps += stamps

    def add_points(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        steps, stamps, values = zip(*rows, strict=True)
        self.steps += steps
        self.counts += [1] * len(steps)
        if None in values:
            self.numeric += [0 if v is None else 1 for v in values]
            self.sums += [0.0 if v is None else v for v in values]
            self.mins += [math.inf if v is None else v for v in values]
            self.maxs += [-math.inf if v is None else v for v in values]
        else:
            self.numeric += [1] * len(steps)
            self.sums += values
            self.mins += values
            self.maxs += values
        self.firsts += steps
        self.lasts += steps
        self.stamps += stamps

    def buckets(self, base: int, width: int) -> list[Bucket]:
        """Bucket k holds the parts whose steps are in [base + k*width, base + (k+1)*width)."""
        out: list[Bucket] = []
        steps = self.steps
        i, n = 0, len(steps)
        while i < n:
            j = bisect_left(steps, base + ((steps[i] - base) // width + 1) * width, i)
            numeric = sum(self.numeric[i:j])
            out.append(Bucket(
                self.firsts[i], self.lasts[j - 1], sum(self.counts[i:j]),
                min(self.mins[i:j]) if numeric else None, max(self.maxs[i:j]) if numeric else None,
                sum(self.sums[i:j]) / numeric if numeric else None, min(self.stamps[i:j])))
            i = j
        return out
