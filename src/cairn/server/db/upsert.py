"""Dialect-aware INSERT ... ON CONFLICT DO NOTHING for SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignore(session: Session, model: Any, rows: list[dict[str, Any]], conflict: list[str]) -> int:
    """Insert the rows that do not collide on ``conflict``; returns how many were inserted. One cached
    statement (on the table, not the ORM class) executed for all rows: no per-call compilation. An empty
    ``conflict`` ignores a collision on any unique index (PostgreSQL raises on those not named)."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(model.__table__).on_conflict_do_nothing(index_elements=conflict or None)
    result: Any = session.execute(statement, rows[0] if len(rows) == 1 else rows,
                                  execution_options={"preserve_rowcount": True})
    return int(result.rowcount)
