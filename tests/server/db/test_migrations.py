"""The migrations build exactly the schema the ORM describes, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from cairn.server.db.engine import current_revision, head_revision
from cairn.server.db.models import Base


def test_migrated_schema_matches_models(store_uri: str) -> None:
    engine = create_engine(store_uri)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        assert conn.execute(text("SELECT name FROM workspaces")).scalars().all() == ["default"]
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_sqlite_stores_points_without_rowid(store_uri: str) -> None:
    if not store_uri.startswith("sqlite"):
        return
    engine = create_engine(store_uri)
    with engine.connect() as conn:
        sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'metric_points'")).scalar_one()
    assert "WITHOUT ROWID" in sql
    engine.dispose()


def test_head_revision_agrees_with_alembic() -> None:
    """The server reads the head from the migration file names (no alembic import when up to date)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from cairn.server.db.engine import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    assert script.get_current_head() == head_revision()
    assert [rev.revision for rev in script.walk_revisions()] == sorted(
        (p.name[:4] for p in (MIGRATIONS / "versions").glob("*.py")), reverse=True)
