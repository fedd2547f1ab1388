"""PostgreSQL's metric points, packed: one ``metric_chunks`` row per series per batch (split past
``CHUNK_POINTS``), its steps, timestamps and values as little-endian 64-bit arrays in ``bytea`` columns.

A row per point costs PostgreSQL a 24-byte tuple header, a line pointer and a B-tree entry (about 139 bytes
a point in all), and COPY into it ran the foreign-key trigger once per point: 62% of ingest time went to
the server processing COPY. A chunk costs those once per batch, so a point costs its 24 bytes of data (16
when its steps run consecutively: the steps column is then NULL, ``first_step`` + i). A range read fetches
the chunks whose [first_step, last_step] meets it and unpacks them in C (``array``). SQLite keeps a row per
point (``metric_points``, without rowid): its B-tree stores about 33 bytes a point at near its own ceiling.
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import Any

CHUNK_POINTS = 4096  # a range read unpacks whole chunks: this bounds what it unpacks beyond the range
_LITTLE = sys.byteorder == "little"
_NAN = float("nan")
_INSERT = ("INSERT INTO metric_chunks (series_id, seq, first_step, last_step, steps, timestamps, point_values) "
           "VALUES (%s, %s, %s, %s, %b, %b, %b)")
_RANGE = ("SELECT first_step, last_step, steps, timestamps, point_values FROM metric_chunks WHERE series_id = %s "
          "AND last_step >= %s AND first_step <= %s ORDER BY seq")
_BOUNDS = ("SELECT first_step, last_step, CASE WHEN first_step < %s OR last_step > %s THEN steps END FROM "
           "metric_chunks WHERE series_id = %s AND last_step >= %s AND first_step <= %s")
_AT_STEP = ("SELECT s.key, c.first_step, c.steps, c.point_values FROM metric_series s JOIN metric_chunks c "
            "ON c.series_id = s.id WHERE s.run_id = %s AND c.first_step <= %s AND c.last_step >= %s "
            "ORDER BY s.key, c.seq")
Points = tuple[list[int], list[int], list[float | None]]


def pack(code: str, items: Sequence[Any]) -> bytes:
    packed = array(code, items)
    if not _LITTLE:
        packed.byteswap()
    return packed.tobytes()


def unpack(code: str, blob: bytes) -> list[Any]:
    packed = array(code)
    packed.frombytes(blob)
    if not _LITTLE:
        packed.byteswap()
    return packed.tolist()


def _pack_values(values: Sequence[float | None]) -> bytes:
    try:
        return pack("d", values)
    except TypeError:  # None (NaN) among the values
        return pack("d", [_NAN if v is None else v for v in values])


def _unpack_values(blob: bytes) -> list[float | None]:
    values: list[Any] = unpack("d", blob)
    total = sum(values)
    if total != total:  # a NaN among them (or +inf with -inf): find them one by one
        values = [None if v != v else v for v in values]
    return values


def chunk_rows(series_id: int, steps: Sequence[int], seq: int, stamps: Sequence[int],
               values: Sequence[float | None]) -> list[tuple[Any, ...]]:
    """The rows that store one series' part of a batch, ``CHUNK_POINTS`` points at most each."""
    rows = []
    for at in range(0, len(steps), CHUNK_POINTS):
        part = steps[at:at + CHUNK_POINTS]
        n, first = len(part), part[0]
        consecutive = part[-1] - first == n - 1 and list(part) == list(range(first, first + n))
        rows.append((series_id, seq + at, min(part), max(part), None if consecutive else pack("q", part),
                     pack("q", stamps[at:at + CHUNK_POINTS]), _pack_values(values[at:at + CHUNK_POINTS])))
    return rows


def insert(raw: Any, rows: list[tuple[Any, ...]]) -> None:
    """One statement per chunk, sent together (psycopg pipelines ``executemany``)."""
    with raw.cursor() as cursor:
        cursor.executemany(_INSERT, rows)


def _steps(first: int, last: int, blob: bytes | None) -> list[int]:
    return list(range(first, last + 1)) if blob is None else unpack("q", blob)


def read_range(raw: Any, series_id: int, low: int, high: int) -> list[tuple[int, int, float | None]]:
    """(step, timestamp, value) of the points with low <= step <= high, in step order, then logging order."""
    steps: list[int] = []
    stamps: list[int] = []
    values: list[float | None] = []
    with raw.cursor(binary=True) as cursor:
        cursor.execute(_RANGE, (series_id, low, high))
        for first, last, step_blob, stamp_blob, value_blob in cursor:  # in logging order
            steps += _steps(first, last, step_blob)
            stamps += unpack("q", stamp_blob)
            values += _unpack_values(value_blob)
    if steps != sorted(steps):  # a stable sort keeps the logging order among equal steps
        order = sorted(range(len(steps)), key=steps.__getitem__)
        steps, stamps, values = [steps[i] for i in order], [stamps[i] for i in order], [values[i] for i in order]
    a, b = bisect_left(steps, low), bisect_right(steps, high)
    return list(zip(steps[a:b], stamps[a:b], values[a:b], strict=True))


def step_bounds(raw: Any, series_id: int, low: int, high: int) -> tuple[int, int] | None:
    """The first and last step logged in [low, high]: a chunk inside the range answers from its bounds,
    only a chunk across an end of the range is unpacked."""
    found: list[int] = []
    with raw.cursor(binary=True) as cursor:
        cursor.execute(_BOUNDS, (low, high, series_id, low, high))
        for first, last, blob in cursor:
            if low <= first and last <= high:
                found += (first, last)
            elif blob is None:  # consecutive steps: the range holds the overlap
                found += (max(first, low), min(last, high))
            else:
                found += [s for s in unpack("q", blob) if low <= s <= high]
    return (min(found), max(found)) if found else None


def values_at_step(raw: Any, run_id: str, step: int) -> dict[str, float | None]:
    """The value each of the run's metrics was last logged with at ``step``."""
    out: dict[str, float | None] = {}
    with raw.cursor(binary=True) as cursor:
        cursor.execute(_AT_STEP, (run_id, step, step))
        for key, first, step_blob, value_blob in cursor:  # in key, then logging order: the last one wins
            at = [step - first] if step_blob is None else [
                i for i, s in enumerate(unpack("q", step_blob)) if s == step]
            if at:
                value = struct.unpack_from("<d", value_blob, 8 * at[-1])[0]
                out[key] = None if value != value else value
    return out
