"""Fast paths for metric points: bulk insert (executemany on SQLite, COPY on PostgreSQL) and reads.

These are the only statements written as SQL text; they are constants with bound parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cairn.server.db.models import MetricPointRow

PointTuple = tuple[int, int, int, int, float | None]
_SQLITE_INSERT = "INSERT INTO metric_points (series_id, step, seq, timestamp, value) VALUES (?, ?, ?, ?, ?)"
_PG_COPY = "COPY metric_points (series_id, step, seq, timestamp, value) FROM STDIN"


def insert_points(session: Session, rows: Sequence[PointTuple]) -> None:
    if not rows:
        return
    connection = session.connection()
    raw: Any = connection.connection.driver_connection
    if connection.dialect.name == "sqlite":
        cursor = raw.cursor()
        try:
            cursor.executemany(_SQLITE_INSERT, rows)
        finally:
            cursor.close()
        return
    with raw.cursor() as cursor, cursor.copy(_PG_COPY) as copy:
        for row in rows:
            copy.write_row(row)


def read_points(
    session: Session, series_id: int, start_step: int | None, end_step: int | None, limit: int | None
) -> list[tuple[int, int, float | None]]:
    """(step, timestamp, value) in step order, then logging order. Read through the driver's cursor:
    a 100,000-point history is one range scan and should not pay for ORM row objects."""
    p = MetricPointRow
    query = select(p.step, p.timestamp, p.value).where(p.series_id == series_id)
    if start_step is not None:
        query = query.where(p.step >= start_step)
    if end_step is not None:
        query = query.where(p.step <= end_step)
    query = query.order_by(p.step, p.seq)
    if limit is not None:
        query = query.limit(limit)
    connection = session.connection()
    compiled = query.compile(dialect=connection.dialect)
    raw: Any = connection.connection.driver_connection
    cursor = raw.cursor()
    try:
        params = compiled.params if connection.dialect.name == "postgresql" else tuple(
            compiled.params[name] for name in compiled.positiontup or ())
        cursor.execute(str(compiled), params)
        rows: list[tuple[int, int, float | None]] = cursor.fetchall()
    finally:
        cursor.close()
    return rows
