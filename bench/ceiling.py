"""Workload 10, the ceiling: the same points written straight into the database with no server, no
HTTP and no validation, the way Cairn's store lays them out, so the table shows how close Cairn gets
to what the database itself can do. SQLite: executemany in WAL mode with Cairn's pragmas, one
transaction per 100,000 points. PostgreSQL: COPY, one transaction per 100,000 points."""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

CHUNK = 100_000
_TABLE = ("CREATE TABLE points (series_id INTEGER NOT NULL, step BIGINT NOT NULL, seq BIGINT NOT NULL, "
          "timestamp BIGINT NOT NULL, value FLOAT, PRIMARY KEY (series_id, step, seq))")


def _rows(points: int) -> list[tuple[int, int, int, int, float]]:
    now = int(time.time() * 1000)
    return [(1 + i % 10, i // 10, 0, now, i * 0.001) for i in range(points)]


def sqlite_points_per_s(points: int, reps: int) -> float:
    rows = _rows(points)

    def once() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            conn = sqlite3.connect(Path(tmp) / "ceiling.db", isolation_level=None)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-65536"):
                conn.execute(f"PRAGMA {pragma}")
            conn.execute(_TABLE + " WITHOUT ROWID")
            start = time.perf_counter()
            for at in range(0, points, CHUNK):
                conn.execute("BEGIN")
                conn.executemany("INSERT INTO points VALUES (?, ?, ?, ?, ?)", rows[at:at + CHUNK])
                conn.execute("COMMIT")
            elapsed = time.perf_counter() - start
            conn.close()
            return points / elapsed

    once()
    return statistics.median(once() for _ in range(reps))


def postgres_points_per_s(url: str, points: int, reps: int) -> float:
    import psycopg

    rows = _rows(points)

    def once() -> float:
        with psycopg.connect(url) as conn:
            conn.execute("DROP TABLE IF EXISTS ceiling_points")
            conn.execute(_TABLE.replace("TABLE points", "TABLE ceiling_points"))
            conn.commit()
            start = time.perf_counter()
            for at in range(0, points, CHUNK):
                with conn.cursor() as cur, cur.copy("COPY ceiling_points FROM STDIN") as copy:
                    for row in rows[at:at + CHUNK]:
                        copy.write_row(row)
                conn.commit()
            elapsed = time.perf_counter() - start
            conn.execute("DROP TABLE ceiling_points")
            return points / elapsed

    once()
    return statistics.median(once() for _ in range(reps))
