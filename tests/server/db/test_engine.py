"""The store engine: write_now on the caller's thread, SQLite files and their WAL switch, pooled PostgreSQL connections."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from cairn.server.db import engine as engine_module
from cairn.server.db.engine import NOT_NOW, Database, sqlite_url


def count_workspaces(session: object) -> int:
    return int(session.execute(text("SELECT count(*) FROM workspaces")).scalar_one())  # type: ignore[attr-defined]


def test_write_now_runs_at_once_or_not_at_all(store_uri: str) -> None:
    db = Database(store_uri)
    try:
        if db.dialect != "sqlite":  # network round trips: never on an event loop
            assert db.write_now(count_workspaces) is NOT_NOW
            return
        assert db.write_now(count_workspaces) == 1

        # this process's writer is busy: not now
        inside, leave = threading.Event(), threading.Event()

        def hold() -> None:
            with db.session(write=True) as session:
                session.execute(text("SELECT 1"))
                inside.set()
                leave.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        assert inside.wait(10)
        assert db.write_now(count_workspaces) is NOT_NOW
        leave.set()
        holder.join()

        # another process (here: another connection) holds SQLite's write lock: not now, and without waiting
        other = sqlite3.connect(make_url(store_uri).database or "", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        started = time.perf_counter()
        assert db.write_now(count_workspaces) is NOT_NOW
        assert time.perf_counter() - started < 1.0
        other.execute("ROLLBACK")
        other.close()
        assert db.write_now(count_workspaces) == 1

        # an error in the work rolls back and frees the writer
        def fail(session: object) -> None:
            session.execute(text("UPDATE workspaces SET name = 'changed'"))  # type: ignore[attr-defined]
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            db.write_now(fail)
        with db.session(write=False) as session:
            assert session.execute(text("SELECT name FROM workspaces")).scalar_one() == "default"
        assert db.write_now(count_workspaces) == 1
    finally:
        db.dispose()


def test_a_new_sqlite_store_is_readable_by_its_user_only(tmp_path: Path) -> None:
    """The SQLite file holds password hashes."""
    path = tmp_path / "home" / "cairn.db"
    db = Database(sqlite_url(path))
    db.upgrade()
    with db.session(write=True) as session:
        session.execute(text("SELECT 1"))
    db.dispose()
    assert path.parent.stat().st_mode & 0o777 == 0o700
    for made in path.parent.iterdir():
        assert made.stat().st_mode & 0o777 == 0o600, made


def test_connections_opening_a_new_sqlite_file_together_all_succeed(tmp_path: Path) -> None:
    """The first connections to a new file each try to switch it to WAL, which needs the file's
    exclusive lock: SQLite answers "locked" at once to one of two that wait on each other, whatever the
    busy timeout, so servers started together on a new store once failed about one time in ten."""
    for attempt in range(30):
        engines = [Database(sqlite_url(tmp_path / f"new{attempt}.db")).engine for _ in range(4)]
        barrier, errors = threading.Barrier(len(engines)), list[Exception]()

        def connect(engine: Any, barrier: threading.Barrier, errors: list[Exception]) -> None:
            barrier.wait(30)
            try:
                with engine.connect() as conn:
                    assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=connect, args=(engine, barrier, errors)) for engine in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        for engine in engines:
            engine.dispose()
        assert errors == [], f"attempt {attempt}"


@pytest.mark.parametrize("fast", [False, True])
def test_fast_metric_commit_is_opt_in_and_only_for_metric_batches(store_uri: str, run_id: str, fast: bool) -> None:
    """CAIRN_METRIC_COMMIT=fast lets a PostgreSQL transaction that stores points commit before its WAL
    is flushed; nothing else, and nothing by default, does."""
    from cairn.server.services import metrics

    db = Database(store_uri, fast_metric_commit=fast)
    try:
        if db.dialect == "sqlite":  # WAL mode with synchronous=NORMAL already commits without a flush
            return
        with db.session(write=True) as session:
            assert session.execute(text("SHOW synchronous_commit")).scalar_one() == "on"
            metrics.ingest(session, run_id, [metrics.SeriesBatch("loss", [1], [0.5], [7])])
            assert session.execute(text("SHOW synchronous_commit")).scalar_one() == ("off" if fast else "on")
        with db.session(write=False) as session:
            assert session.execute(text("SHOW synchronous_commit")).scalar_one() == "on"
            assert metrics.list_series(session, [run_id])[run_id][0].count == 1
    finally:
        db.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("store_uri", ["postgresql"], indirect=True)
def test_a_pooled_connection_the_database_dropped_while_idle_is_replaced(store_uri: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """No ping on every checkout (a round trip per request): a connection is checked only after it sat idle."""
    db, killer = Database(store_uri), create_engine(store_uri)

    def backend() -> int:
        with db.session(write=False) as session:
            return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())

    def drop(pid: int) -> None:
        with killer.begin() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    try:
        first = backend()
        drop(first)  # just used: not checked, so the next request fails (a 503 its client retries) ...
        with pytest.raises(OperationalError):
            backend()
        second = backend()  # ... and the pool has replaced the connection
        assert second != first
        drop(second)
        monkeypatch.setattr(engine_module, "IDLE_PING_SECONDS", 0.0)  # as if it had sat idle
        third = backend()  # checked before use, replaced, and the request never sees it
        assert third not in (first, second)
    finally:
        db.dispose()
        killer.dispose()
