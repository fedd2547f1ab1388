"""search indexes: metric summaries, params and tags by (key, value, run_id)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 12:00:00.000000

A search over many runs reads runs in the order of a metric's summary, and finds the runs whose param
or tag has a value, from these indexes instead of visiting every run (see services/search.py). The
params and tags ones are partial: values up to 200 characters (a PostgreSQL b-tree entry must fit in
a third of a page; a value may be 8,000 characters).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SHORT = sa.text("length(value) <= 200")


def upgrade() -> None:
    for summary in ("last", "min", "max"):
        op.create_index(f"ix_metric_series_key_{summary}", "metric_series", ["key", f"{summary}_value", "run_id"])
    for table in ("params", "run_tags"):
        op.create_index(f"ix_{table}_key_value", table, ["key", "value", "run_id"], sqlite_where=_SHORT,
                        postgresql_where=_SHORT)


def downgrade() -> None:
    for table in ("run_tags", "params"):
        op.drop_index(f"ix_{table}_key_value", table_name=table)
    for summary in ("max", "min", "last"):
        op.drop_index(f"ix_metric_series_key_{summary}", table_name="metric_series")
