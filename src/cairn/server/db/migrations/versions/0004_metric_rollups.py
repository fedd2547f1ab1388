"""metric rollups: per-bucket summaries of each series, for downsampled reads

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 10:00:00.000000

Creates ``metric_rollups`` and fills it from the points already stored: the finest level from
``metric_points``, each coarser level from the one below it. The levels are written out here (not
imported) so that this migration keeps doing what it did when the code moves on.
"""

import itertools
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEVELS = (4, 6, 8, 10, 12, 14, 16, 18, 20, 22)  # bucket widths 16, 64, 256, ... 4194304 steps
# count(value) counts the points that are not NaN (NaN is stored as NULL). The sum of no numbers is 0.0;
# a NULL sum means NaN, so a NULL among the parts (count(sum) < count(*)) makes the whole NULL.
_INTO = """INSERT INTO metric_rollups (series_id, level, bucket, count, numeric_count, sum, min_value, max_value,
 first_step, last_step, first_timestamp)"""
_FROM_POINTS = """
SELECT series_id, 4, step >> 4, count(*), count(value),
       CASE WHEN count(value) = 0 THEN 0.0 ELSE sum(value) END,
       min(value), max(value), min(step), max(step), min(timestamp)
FROM metric_points GROUP BY series_id, step >> 4
"""
_FROM_LEVEL = """
SELECT series_id, {level}, bucket >> {shift}, sum(count), sum(numeric_count),
       CASE WHEN count(sum) < count(*) THEN NULL ELSE sum(sum) END,
       min(min_value), max(max_value), min(first_step), max(last_step), min(first_timestamp)
FROM metric_rollups WHERE level = {below} GROUP BY series_id, bucket >> {shift}
"""


def upgrade() -> None:
    op.create_table('metric_rollups',
    sa.Column('series_id', sa.Integer(), nullable=False),
    sa.Column('level', sa.SmallInteger(), nullable=False),
    sa.Column('bucket', sa.BigInteger(), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.Column('numeric_count', sa.BigInteger(), nullable=False),
    sa.Column('sum', sa.Float(), nullable=True),
    sa.Column('min_value', sa.Float(), nullable=True),
    sa.Column('max_value', sa.Float(), nullable=True),
    sa.Column('first_step', sa.BigInteger(), nullable=False),
    sa.Column('last_step', sa.BigInteger(), nullable=False),
    sa.Column('first_timestamp', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['series_id'], ['metric_series.id'],
                            name=op.f('fk_metric_rollups_series_id_metric_series'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('series_id', 'level', 'bucket', name=op.f('pk_metric_rollups')),
    sqlite_with_rowid=False
    )
    op.execute(_INTO + _FROM_POINTS)
    for below, level in itertools.pairwise(LEVELS):
        op.execute(_INTO + _FROM_LEVEL.format(level=level, shift=level - below, below=below))


def downgrade() -> None:
    op.drop_table('metric_rollups')
