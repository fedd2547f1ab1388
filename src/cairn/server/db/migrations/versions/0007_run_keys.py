"""run keys: a run may carry a key, unique in its experiment

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 12:30:00.000000

Several processes (Kedro's invocations, an orchestrator's tasks) that ask for "the run with key K in
experiment E" must all get the same run, even when they ask at the same moment. The unique index makes
that a rule of the store: the second insert of a key finds the first and does nothing. A plain column
(not part of the primary key), so runs without a key are unaffected; NULLs never collide in a unique
index on SQLite or PostgreSQL. SQLite adds a nullable column in place, with no table rebuild.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("run_key", sa.String(250), nullable=True))
    op.create_index("ix_runs_experiment_key", "runs", ["experiment_id", "run_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_runs_experiment_key", table_name="runs")
    # in place (SQLite 3.35+, PostgreSQL): a batch rebuild would drop the runs that other tables refer to
    op.execute("ALTER TABLE runs DROP COLUMN run_key")
