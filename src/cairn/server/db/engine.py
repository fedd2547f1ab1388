"""Engines, sessions and migrations for the metadata store (SQLite or PostgreSQL)."""

from __future__ import annotations

import enum
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from cairn.server.storage.blobs import private_dir

T = TypeVar("T")
MIGRATIONS = Path(__file__).with_name("migrations")
PG_MIGRATION_LOCK = 0x6361_6972  # "cair": advisory lock id held while migrating


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _configure_sqlite(engine: Engine, busy_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        _enable_wal(cur, busy_ms)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        cur.execute("PRAGMA cache_size=-65536")
        cur.execute("PRAGMA case_sensitive_like=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock up front, so two writers never deadlock on a lock upgrade.
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _enable_wal(cur: Any, busy_ms: int) -> None:
    """Put the file in WAL mode (a no-op once it is: the mode is stored in the file). Converting a new
    file takes its exclusive lock, and connections converting it together can each hold the shared lock
    the other needs: SQLite answers "locked" at once rather than wait on a cycle, so try again until the
    busy timeout is spent."""
    deadline = time.monotonic() + busy_ms / 1000
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def make_engine(url: str, *, busy_ms: int = 30_000) -> Engine:
    """``busy_ms``: how long a SQLite statement waits for another connection's lock before it fails."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_file(Path(parsed.database))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_ms / 1000})
        _configure_sqlite(engine, busy_ms)
        return engine
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(url, pool_size=8, max_overflow=16)
        _ping_idle_connections(engine)
        return engine
    raise ValueError(f"unsupported store URI {parsed.render_as_string(hide_password=True)!r}: "
                     "use sqlite:///PATH or postgresql+psycopg://...")


IDLE_PING_SECONDS = 1.0


def _ping_idle_connections(engine: Engine) -> None:
    """Check that a pooled connection is alive before use only when it sat idle for a while: SQLAlchemy's
    ``pool_pre_ping`` costs a round trip on every checkout, a tenth of a single ``log_metric``'s time. A busy
    connection that the database dropped fails its request with a 503 that clients retry, and SQLAlchemy
    then replaces every pooled connection."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # whatever the driver raises for a dead connection
            raise DisconnectionError("a pooled connection was dropped while idle") from exc
        if not alive:
            raise DisconnectionError("a pooled connection was dropped while idle")


def _private_file(path: Path) -> None:
    """The SQLite file holds password hashes: create it (and its folder) readable by this user only.
    SQLite gives its -wal and -shm files the same mode as the database file."""
    private_dir(path.parent)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class TTLCache:
    """A tiny per-process cache for lookups that rarely change (workspace name -> id)."""

    def __init__(self, ttl: float = 5.0) -> None:
        self.ttl = ttl
        self._items: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> Any:
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]

    def put(self, key: Any, value: Any) -> None:
        self._items[key] = (time.monotonic() + self.ttl, value)

    def clear(self) -> None:
        self._items.clear()


class Database:
    """The metadata store: an engine and the sessions that requests run in."""

    def __init__(self, url: str, *, fast_metric_commit: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        # PostgreSQL only (SQLite's WAL mode already commits without a flush): see Settings.metric_commit
        self._info = {"fast_metric_commit": fast_metric_commit and self.dialect == "postgresql"}
        writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(writer, expire_on_commit=False)
        # SQLite has one writer at a time, and a writer that finds the lock taken sleeps in growing steps
        # (up to 100 ms) before it looks again: with 16 clients writing at once, p99 batch latency was
        # 1.8 s. Writers of this process queue on a lock instead and start the moment the last one
        # commits. Other processes still meet SQLite's busy timeout.
        self._lock = threading.Lock() if self.dialect == "sqlite" else None
        self._writer: AbstractContextManager[Any] = self._lock or nullcontext()
        # Writes that may run on the caller's thread only if they need not wait (see write_now): their
        # connections give up at once when another process holds SQLite's write lock.
        self._now_engine = make_engine(url, busy_ms=0) if self.dialect == "sqlite" else None
        self._now = (None if self._now_engine is None else sessionmaker(
            self._now_engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False))
        self.cache = TTLCache()

    def write_now(self, fn: Callable[[Session], T]) -> T | NotNow:
        """``fn(session)`` in a write transaction on this thread, if it can start without waiting: SQLite,
        this process's writer lock free, and the database's write lock taken at once. Otherwise nothing is
        done and ``NOT_NOW`` is returned. For callers on an event loop, which must not block."""
        if self._now is None or self._lock is None or not self._lock.acquire(blocking=False):
            return NOT_NOW
        try:
            with self._now() as session, session.begin():
                try:
                    session.connection()  # BEGIN IMMEDIATE: another process's write lock fails it at once
                except OperationalError as exc:
                    raise _StoreBusyError from exc
                return fn(session)
        except _StoreBusyError:
            return NOT_NOW
        finally:
            self._lock.release()

    @contextmanager
    def session(self, *, write: bool) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any error."""
        if not write:
            with self._read() as session, session.begin():
                yield session
            return
        with self._writer, self._write(info=self._info) as session, session.begin():
            yield session

    @property
    def engines(self) -> list[Engine]:
        """Every engine this store writes through (SQLite has a second one, for write_now)."""
        return [self.engine] if self._now_engine is None else [self.engine, self._now_engine]

    def upgrade(self) -> None:
        upgrade_schema(self.engine)

    def check_schema(self) -> None:
        check_schema_known(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
        if self._now_engine is not None:
            self._now_engine.dispose()


class NotNow(enum.Enum):
    NOT_NOW = "not now"


NOT_NOW = NotNow.NOT_NOW


class _StoreBusyError(Exception):
    """The store's write lock is held by another process."""


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config  # alembic is imported only to migrate: ~11 MB a server process keeps

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def current_revision(engine: Engine) -> str | None:
    """The schema revision the store is at (None for an empty store)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def head_revision() -> str | None:
    """The newest migration's revision, read from the file names (``NNNN_*.py``, one line of history
    with each revision named by its number), so a store that is up to date needs no alembic at all.
    A test checks this against alembic's own view."""
    numbers = sorted(p.name[:4] for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
    return numbers[-1] if numbers else None


class SchemaTooNewError(RuntimeError):
    """The store was migrated by a newer Cairn: this one would misread it, or write what the newer one
    does not expect. Servers of several versions must not share one store."""


def check_schema_known(engine: Engine) -> str | None:
    """The store's revision, after refusing one newer than this code's migrations."""
    current, head = current_revision(engine), head_revision()
    if current is not None and head is not None and current > head:
        raise SchemaTooNewError(
            f"the store's schema is at revision {current}, newer than this Cairn knows ({head}): another server "
            "of a newer version migrated it. Upgrade this installation to that version before starting it.")
    return current


def upgrade_schema(engine: Engine) -> None:
    """Apply pending migrations, holding a lock so that servers starting together migrate once: each
    waits for the lock, and the ones after the first find nothing left to apply."""
    if check_schema_known(engine) == head_revision():
        return
    from alembic import command

    with _migration_lock(engine):
        if check_schema_known(engine) == head_revision():  # another server migrated while we waited
            return
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "head")


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": PG_MIGRATION_LOCK})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PG_MIGRATION_LOCK})
                conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    lock_path = f"{database}.migrate.lock"
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
