"""conventions a workspace (or one experiment) requires, and each run's compliance flag

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-02 15:30:00.000000

``conventions`` holds one row per workspace (``experiment_id`` 0) and per experiment that overrides it.
``runs.compliant`` is the run's standing under the conventions in force (NULL: none are), kept up to date
by the writes that can change it so that a search on ``conventions.compliant`` reads one column.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'conventions',
        sa.Column('workspace_id', sa.Integer(), nullable=False),
        sa.Column('experiment_id', sa.Integer(), nullable=False),
        sa.Column('mode', sa.String(length=16), nullable=False),
        sa.Column('rules', sa.JSON(), nullable=False),
        sa.Column('updated_by', sa.String(length=250), nullable=False),
        sa.Column('updated_at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'],
                                name=op.f('fk_conventions_workspace_id_workspaces')),
        sa.PrimaryKeyConstraint('workspace_id', 'experiment_id', name=op.f('pk_conventions')),
    )
    op.add_column('runs', sa.Column('compliant', sa.Boolean(), nullable=True))


def downgrade() -> None:
    # in place (SQLite 3.35+, PostgreSQL): a batch rebuild would drop the runs that other tables refer to
    op.execute("ALTER TABLE runs DROP COLUMN compliant")
    op.drop_table('conventions')
