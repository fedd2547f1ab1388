"""metric rollups only for long series, from 64 steps up

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 10:00:00.000000

Downsampled reads use rollups only for series of at least 16,384 points (shorter ones are bucketed
from their points), so ingest now keeps rollups only for those: a series' first 16,383 points, most
series' whole life, skip the rollup upserts. And the finest level, 16 steps wide, is dropped: it held
three quarters of the rollup rows and most of their ingest cost, and the few ranges it served read
at most 64 points per bucket instead. The upgrade deletes those rows; the downgrade builds every
series' rollups again at the levels before (16 to 4,194,304 steps). The numbers are written out here
so that this migration keeps doing what it did when the code moves on.
"""

import itertools
from collections.abc import Sequence

from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = ("DELETE FROM metric_rollups WHERE level = 4 "
           "OR series_id IN (SELECT id FROM metric_series WHERE count < 16384)")
LEVELS_BEFORE = (4, 6, 8, 10, 12, 14, 16, 18, 20, 22)
_INTO = """INSERT INTO metric_rollups (series_id, level, bucket, count, numeric_count, sum, min_value, max_value,
 first_step, last_step, first_timestamp)"""
# count(value) counts the points that are not NaN (stored as NULL); the sum of no numbers is 0.0. A NULL
# sum means NaN, so one NULL among the parts (count(sum) < count(*)) makes the whole NULL.
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
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DELETE FROM metric_rollups")
    op.execute(_INTO + _FROM_POINTS)
    for below, level in itertools.pairwise(LEVELS_BEFORE):
        op.execute(_INTO + _FROM_LEVEL.format(level=level, shift=level - below, below=below))
