"""Migration 0011 (conventions) goes down and up again on both databases, keeping the runs it touches."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from cairn.server.db.engine import _alembic_config
from cairn.server.db.models import Base


def test_conventions_migration_downgrades_and_upgrades(store_uri: str) -> None:
    engine = create_engine(store_uri)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO experiments (workspace_id, name, description, lifecycle, created_at, "
                          "updated_at, artifact_location) VALUES (1, 'e', '', 'active', 0, 0, '')"))
        conn.execute(text('INSERT INTO runs (id, workspace_id, experiment_id, name, status, start_time, "user", '
                          "lifecycle, updated_at, compliant) SELECT 'r1', 1, id, 'r', 'RUNNING', 0, 'u', 'active', "
                          "0, true FROM experiments WHERE name = 'e'"))
    with engine.begin() as conn:
        command.downgrade(_alembic_config(conn), "0010")
    with engine.connect() as conn:
        assert "compliant" not in {c["name"] for c in inspect(conn).get_columns("runs")}
        assert not inspect(conn).has_table("conventions")
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "head")
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert conn.execute(text("SELECT name, compliant FROM runs WHERE id = 'r1'")).one() == ("r", None)
    engine.dispose()
