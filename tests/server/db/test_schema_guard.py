"""Several servers on one store: migrations run once when they start together, and a server refuses a
store that a newer Cairn migrated (on SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cairn.server.app import create_app
from cairn.server.db.engine import Database, SchemaTooNewError, current_revision, head_revision
from cairn.server.settings import Settings


@pytest.fixture
def empty_store(store_uri: str, tmp_path: Path) -> Iterator[str]:
    """A store with no schema yet: a new SQLite file, or a new PostgreSQL schema (dropped afterwards)."""
    if store_uri.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    schema = f"fresh_{uuid.uuid4().hex[:8]}"
    engine = create_engine(store_uri)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = make_url(store_uri).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


def test_servers_starting_together_migrate_once(empty_store: str) -> None:
    databases = [Database(empty_store) for _ in range(4)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(databases))

    def start(db: Database) -> None:
        try:
            barrier.wait(30)
            db.upgrade()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(db,)) for db in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    try:
        assert errors == []
        assert current_revision(databases[0].engine) == head_revision()
        with databases[0].engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
            assert conn.execute(text("SELECT count(*) FROM workspaces WHERE name = 'default'")).scalar_one() == 1
    finally:
        for db in databases:
            db.dispose()


def test_a_store_migrated_by_a_newer_cairn_is_refused(store_uri: str, tmp_path: Path) -> None:
    db = Database(store_uri)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    try:
        with pytest.raises(SchemaTooNewError, match="9999"):
            db.upgrade()
        with pytest.raises(SchemaTooNewError):  # a worker process, which does not migrate, checks too
            create_app(Settings(home=tmp_path / "home", store_uri=store_uri), migrate=False)
        started = subprocess.run([sys.executable, "-m", "cairn", "server", "--port", "1", "--store-uri", store_uri],
                                 capture_output=True, text=True, timeout=120,
                                 env={**os.environ, "CAIRN_HOME": str(tmp_path)})
        assert started.returncode == 2, started.stderr
        assert "newer than this Cairn knows" in started.stderr
    finally:
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head_revision()})
        db.dispose()
