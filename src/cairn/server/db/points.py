"""Fast paths for metric points and their rollups: bulk insert (executemany on SQLite, packed chunks
on PostgreSQL: ``cairn.server.db.chunks``), rollup upserts that merge into existing buckets, and range
reads through the driver.

These are the only statements written as SQL text; they are constants with bound parameters.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import chain, pairwise
from typing import Any

from sqlalchemy.orm import Session

from cairn.server.db import chunks

# (series_id, steps, seq of the first point, timestamps, values)
PointColumns = tuple[int, Sequence[int], int, Sequence[int], Sequence[float | None]]
_POINT_INTO = "INSERT INTO metric_points (series_id, step, seq, timestamp, value) VALUES "

# (series_id, level, bucket, count, numeric_count, sum, min, max, first_step, last_step, first_timestamp)
RollupTuple = tuple[int, int, int, int, int, float | None, float | None, float | None, int, int, int]
# the finest rollup level's rows of a series from its points: (steps, values, timestamps) -> rows
FinestLevel = Callable[[list[int], list[float | None], list[int]], list[RollupTuple]]
_ROLLUP_INTO = ("INSERT INTO metric_rollups (series_id, level, bucket, count, numeric_count, sum, min_value, "
                "max_value, first_step, last_step, first_timestamp) VALUES ")
# Merging a part into a stored bucket: a NULL sum means NaN and stays NULL (NULL + x); a NULL min/max
# means "no number yet". SQLite's two-argument min() is NULL if either side is, hence the coalesce;
# PostgreSQL's LEAST/GREATEST skip NULLs.
_SQLITE_MERGE = """ ON CONFLICT (series_id, level, bucket) DO UPDATE SET
 count = count + excluded.count, numeric_count = numeric_count + excluded.numeric_count,
 sum = sum + excluded.sum,
 min_value = coalesce(min(min_value, excluded.min_value), min_value, excluded.min_value),
 max_value = coalesce(max(max_value, excluded.max_value), max_value, excluded.max_value),
 first_step = min(first_step, excluded.first_step), last_step = max(last_step, excluded.last_step),
 first_timestamp = min(first_timestamp, excluded.first_timestamp)"""
# PostgreSQL: one statement for all the parts, as arrays (a statement per row costs a round trip each).
_PG_ROLLUP = """INSERT INTO metric_rollups (series_id, level, bucket, count, numeric_count, sum, min_value,
 max_value, first_step, last_step, first_timestamp)
SELECT * FROM unnest(%s::integer[], %s::smallint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::float8[],
 %s::float8[], %s::float8[], %s::bigint[], %s::bigint[], %s::bigint[])
ON CONFLICT (series_id, level, bucket) DO UPDATE SET
 count = metric_rollups.count + excluded.count,
 numeric_count = metric_rollups.numeric_count + excluded.numeric_count,
 sum = metric_rollups.sum + excluded.sum,
 min_value = LEAST(metric_rollups.min_value, excluded.min_value),
 max_value = GREATEST(metric_rollups.max_value, excluded.max_value),
 first_step = LEAST(metric_rollups.first_step, excluded.first_step),
 last_step = GREATEST(metric_rollups.last_step, excluded.last_step),
 first_timestamp = LEAST(metric_rollups.first_timestamp, excluded.first_timestamp)"""
# SQLite runs one statement of many rows faster than one statement per row: 1,000 rows a statement inserted
# points 1.6x as fast as one, and 1.35x as fast as 160 (WAL, 2 cores). SQLite before 3.32 takes at most 999
# bound parameters a statement.
_SQLITE_ROWS = 1000
_SQLITE_PARAMS = 32_766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


class _SqliteInsert:
    """One INSERT as two prepared statements: ``per`` rows at a time, and one row at a time. Rows come
    as one flat list of their values, row after row."""

    def __init__(self, into: str, width: int, suffix: str = "") -> None:
        row = "(" + ", ".join(["?"] * width) + ")"
        per = min(_SQLITE_ROWS, _SQLITE_PARAMS // width)
        self.width, self.per = width, per
        self.many = into + ", ".join([row] * per) + suffix
        self.one = into + row + suffix

    def run(self, raw: Any, flat: list[Any]) -> None:
        width, size = self.width, self.width * self.per
        full = len(flat) - len(flat) % size
        cursor = raw.cursor()
        try:
            if full:
                cursor.executemany(self.many, [flat[i:i + size] for i in range(0, full, size)])
            if full < len(flat):
                cursor.executemany(self.one, [flat[i:i + width] for i in range(full, len(flat), width)])
        finally:
            cursor.close()


_SQLITE_POINTS = _SqliteInsert(_POINT_INTO, 5)
_SQLITE_ROLLUPS = _SqliteInsert(_ROLLUP_INTO, 11, _SQLITE_MERGE)
_ROLLUP_RANGE = ("SELECT bucket, count, numeric_count, sum, min_value, max_value, first_step, last_step, "
                 "first_timestamp FROM metric_rollups WHERE series_id = {p} AND level = {p} AND bucket >= {p} "
                 "AND bucket <= {p} ORDER BY bucket")
_POINT_RANGE = ("SELECT step, timestamp, value FROM metric_points WHERE series_id = {p} AND step >= {p} "
                "AND step <= {p} ORDER BY step, seq")
_LOWEST_STEP = ("SELECT step FROM metric_points WHERE series_id = {p} AND step >= {p} AND step <= {p} "
                "ORDER BY step ASC LIMIT 1")
_HIGHEST_STEP = _LOWEST_STEP.replace("ASC", "DESC")
_AT_STEP = ("SELECT s.key, p.value FROM metric_series s JOIN metric_points p ON p.series_id = s.id "
            "WHERE s.run_id = {p} AND p.step = {p} ORDER BY s.key, p.seq")
_STEP_MIN, _STEP_MAX = -(2**63), 2**63 - 1
_DELETE_ROLLUPS = "DELETE FROM metric_rollups WHERE series_id = {p}"
# count(value) counts the points that are not NaN (stored as NULL); the sum of no numbers is 0.0. A NULL sum
# means NaN, so one NULL among the parts (count(sum) < count(*)) makes the whole NULL.
_BUILD_FINEST = _ROLLUP_INTO.replace(" VALUES ", " ") + """
SELECT series_id, {level}, step >> {level}, count(*), count(value),
 CASE WHEN count(value) = 0 THEN 0.0 ELSE sum(value) END, min(value), max(value), min(step), max(step),
 min(timestamp)
FROM metric_points WHERE series_id = {p} GROUP BY series_id, step >> {level}"""
_BUILD_LEVEL = _ROLLUP_INTO.replace(" VALUES ", " ") + """
SELECT series_id, {level}, bucket >> {shift}, sum(count), sum(numeric_count),
 CASE WHEN count(sum) < count(*) THEN NULL ELSE sum(sum) END, min(min_value), max(max_value), min(first_step),
 max(last_step), min(first_timestamp)
FROM metric_rollups WHERE series_id = {p} AND level = {below} GROUP BY series_id, bucket >> {shift}"""


def insert_points(session: Session, parts: Sequence[PointColumns]) -> None:
    """Store points given as columns, a part per series: (series_id, steps, seq of the first point,
    timestamps, values)."""
    if not parts:
        return
    connection = session.connection()
    raw: Any = connection.connection.driver_connection
    if connection.dialect.name == "sqlite":
        _SQLITE_POINTS.run(raw, _interleave(parts))
        return
    chunks.insert(raw, [row for part in parts for row in chunks.chunk_rows(*part)])


def _interleave(parts: Sequence[PointColumns]) -> list[Any]:
    """The parts' points as one flat list, row after row: each column is put in place by one slice
    assignment (in C), with no tuple per point."""
    flat: list[Any] = [None] * (5 * sum(len(part[1]) for part in parts))
    at = 0
    for series_id, steps, seq, stamps, values in parts:
        n = len(steps)
        if len(stamps) != n or len(values) != n:
            raise ValueError("a part's columns differ in length")
        end = at + 5 * n
        flat[at:end:5] = [series_id] * n
        flat[at + 1:end:5] = steps
        flat[at + 2:end:5] = range(seq, seq + n)
        flat[at + 3:end:5] = stamps
        flat[at + 4:end:5] = values
        at = end
    return flat


def upsert_rollups(session: Session, rows: Sequence[RollupTuple]) -> None:
    """Add these parts into the stored rollup buckets (creating the buckets that are new). The caller
    holds the series' locks, so parts of one series are never merged by two transactions at once."""
    if not rows:
        return
    connection = session.connection()
    raw: Any = connection.connection.driver_connection
    if connection.dialect.name == "sqlite":
        _SQLITE_ROLLUPS.run(raw, list(chain.from_iterable(rows)))  # parts of one bucket merge in order
        return
    if len({row[:3] for row in rows}) < len(rows):  # PostgreSQL updates a row at most once per statement
        rows = _merge_parts(rows)
    with raw.cursor() as cursor:
        cursor.execute(_PG_ROLLUP, [list(column) for column in zip(*rows, strict=True)])


def build_rollups(session: Session, series_id: int, levels: Sequence[int], finest: FinestLevel) -> None:
    """The series' rollups, replacing any it has, built from its stored points: the finest level by the
    database on SQLite, by ``finest(steps, values, timestamps)`` from the unpacked points on PostgreSQL;
    each coarser one from the level below, by the database."""
    connection = session.connection()
    raw: Any = connection.connection.driver_connection
    sqlite = connection.dialect.name == "sqlite"
    p = "?" if sqlite else "%s"
    cursor = raw.cursor()
    try:
        cursor.execute(_DELETE_ROLLUPS.format(p=p), (series_id,))
        if sqlite:
            cursor.execute(_BUILD_FINEST.format(p=p, level=int(levels[0])), (series_id,))
        else:
            steps, stamps, values = zip(*chunks.read_range(raw, series_id, _STEP_MIN, _STEP_MAX), strict=True)
            upsert_rollups(session, finest(list(steps), list(values), list(stamps)))
        for below, level in pairwise(levels):
            cursor.execute(_BUILD_LEVEL.format(p=p, level=int(level), below=int(below), shift=int(level - below)),
                           (series_id,))
    finally:
        cursor.close()


def _merge_parts(rows: Sequence[RollupTuple]) -> list[RollupTuple]:
    """One part per (series, level, bucket): parts of the same bucket added together, as the upsert would."""
    merged: dict[tuple[int, int, int], RollupTuple] = {}
    for row in rows:
        key = (row[0], row[1], row[2])
        old = merged.get(key)
        if old is None:
            merged[key] = row
            continue
        total = None if old[5] is None or row[5] is None else old[5] + row[5]
        lows = [v for v in (old[6], row[6]) if v is not None]
        highs = [v for v in (old[7], row[7]) if v is not None]
        merged[key] = (*key, old[3] + row[3], old[4] + row[4], total, min(lows, default=None),
                       max(highs, default=None), min(old[8], row[8]), max(old[9], row[9]), min(old[10], row[10]))
    return list(merged.values())


@contextmanager
def sent_together(session: Session) -> Iterator[None]:
    """Writes made in this block whose answers are not read are sent to PostgreSQL together and
    answered in one round trip (a psycopg pipeline), where each would otherwise wait for its own; a
    failure among them is raised when the block ends. Nothing changes on SQLite, which has no round trips."""
    raw = _postgres(session)
    if raw is None:
        yield
        return
    with raw.pipeline():
        yield


def skip_commit_flush(session: Session) -> None:
    """This transaction (PostgreSQL) commits without waiting for its WAL to reach the disk: opt-in."""
    raw = _postgres(session)
    if raw is not None:
        raw.execute("SET LOCAL synchronous_commit = off")


def _postgres(session: Session) -> Any:
    """The driver connection on PostgreSQL, where points are stored packed; None on SQLite."""
    connection = session.connection()
    return None if connection.dialect.name == "sqlite" else connection.connection.driver_connection


def values_at_step(session: Session, run_id: str, step: int) -> dict[str, float | None]:
    """The value each of the run's metrics was last logged with at ``step`` (None: NaN)."""
    raw = _postgres(session)
    if raw is not None:
        return chunks.values_at_step(raw, run_id, step)
    return dict(_fetch(session, _AT_STEP, (run_id, step)))


def _fetch(session: Session, sql: str, params: tuple[Any, ...]) -> list[Any]:
    connection = session.connection()
    raw: Any = connection.connection.driver_connection
    cursor = raw.cursor()
    try:
        cursor.execute(sql.format(p="?" if connection.dialect.name == "sqlite" else "%s"), params)
        rows: list[Any] = cursor.fetchall()
    finally:
        cursor.close()
    return rows


def step_bounds(session: Session, series_id: int, start_step: int, end_step: int) -> tuple[int, int] | None:
    """The first and last step logged in [start_step, end_step]: two index seeks, not a scan."""
    raw = _postgres(session)
    if raw is not None:
        return chunks.step_bounds(raw, series_id, start_step, end_step)
    params = (series_id, start_step, end_step)
    low = _fetch(session, _LOWEST_STEP, params)
    if not low:
        return None
    high = _fetch(session, _HIGHEST_STEP, params)
    return int(low[0][0]), int(high[0][0])


def read_rollups(session: Session, series_id: int, level: int, first: int, last: int) -> list[tuple[Any, ...]]:
    """(bucket, count, numeric_count, sum, min, max, first_step, last_step, first_timestamp) of the
    buckets ``first`` to ``last`` of one level, in bucket order."""
    return _fetch(session, _ROLLUP_RANGE, (series_id, level, first, last))


def read_point_range(session: Session, series_id: int, first_step: int, last_step: int) -> list[tuple[Any, ...]]:
    """(step, timestamp, value) of the points in [first_step, last_step], in step order."""
    raw = _postgres(session)
    if raw is not None:
        return list(chunks.read_range(raw, series_id, first_step, last_step))
    return _fetch(session, _POINT_RANGE, (series_id, first_step, last_step))


def read_points(
    session: Session, series_id: int, start_step: int | None, end_step: int | None, limit: int | None
) -> list[tuple[int, int, float | None]]:
    """(step, timestamp, value) in step order, then logging order. Read through the driver's cursor:
    a 100,000-point history is one range scan and should not pay for ORM row objects."""
    low = _STEP_MIN if start_step is None else start_step
    high = _STEP_MAX if end_step is None else end_step
    raw = _postgres(session)
    if raw is not None:
        found = chunks.read_range(raw, series_id, low, high)
        return found if limit is None else found[:limit]
    if limit is None:
        return _fetch(session, _POINT_RANGE, (series_id, low, high))
    return _fetch(session, _POINT_RANGE + " LIMIT {p}", (series_id, low, high, limit))
