"""metric points packed in chunks on PostgreSQL

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-02 16:00:00.000000

PostgreSQL stores a series' points a batch to a row (``metric_chunks``: steps, timestamps and values
packed as little-endian 64-bit arrays) instead of a row per point: 139 bytes a point become about 25,
and ingest no longer runs a foreign-key check per point. The table exists on both stores so the
schema is one; SQLite keeps using ``metric_points``. On PostgreSQL the upgrade packs every series'
points, 4,096 to a chunk, and empties ``metric_points``; the downgrade unpacks them back. The packing
is written out here so that this migration keeps doing what it did when the code moves on.
"""

import sys
from array import array
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHUNK = 4096
_INSERT_CHUNK = sa.text(
    "INSERT INTO metric_chunks (series_id, seq, first_step, last_step, steps, timestamps, point_values) "
    "VALUES (:series_id, :seq, :first_step, :last_step, :steps, :timestamps, :point_values)")
_INSERT_POINT = sa.text("INSERT INTO metric_points (series_id, step, seq, timestamp, value) "
                        "VALUES (:series_id, :step, :seq, :timestamp, :value)")


def _pack(code: str, items: list[Any]) -> bytes:
    packed = array(code, items)
    if sys.byteorder != "little":
        packed.byteswap()
    return packed.tobytes()


def _unpack(code: str, blob: bytes) -> list[Any]:
    packed = array(code)
    packed.frombytes(blob)
    if sys.byteorder != "little":
        packed.byteswap()
    return packed.tolist()


def upgrade() -> None:
    op.create_table('metric_chunks',
    sa.Column('series_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('first_step', sa.BigInteger(), nullable=False),
    sa.Column('last_step', sa.BigInteger(), nullable=False),
    sa.Column('steps', sa.LargeBinary(), nullable=True),
    sa.Column('timestamps', sa.LargeBinary(), nullable=False),
    sa.Column('point_values', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['series_id'], ['metric_series.id'],
                            name=op.f('fk_metric_chunks_series_id_metric_series'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('series_id', 'seq', name=op.f('pk_metric_chunks')),
    sqlite_with_rowid=False,
    )
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    series = bind.execute(sa.text("SELECT DISTINCT series_id FROM metric_points ORDER BY series_id")).scalars().all()
    for series_id in series:
        rows = bind.execute(sa.text("SELECT step, seq, timestamp, value FROM metric_points WHERE series_id = :s "
                                    "ORDER BY seq"), {"s": series_id}).all()
        for at in range(0, len(rows), _CHUNK):
            part = rows[at:at + _CHUNK]
            steps = [r[0] for r in part]
            bind.execute(_INSERT_CHUNK, {
                "series_id": series_id, "seq": part[0][1], "first_step": min(steps), "last_step": max(steps),
                "steps": _pack("q", steps), "timestamps": _pack("q", [r[2] for r in part]),
                "point_values": _pack("d", [float("nan") if r[3] is None else r[3] for r in part])})
    bind.execute(sa.text("DELETE FROM metric_points"))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        chunks = bind.execute(sa.text("SELECT series_id, seq, first_step, last_step, steps, timestamps, point_values "
                                      "FROM metric_chunks ORDER BY series_id, seq")).all()
        for series_id, seq, first, last, steps, stamps, values in chunks:
            all_steps = list(range(first, last + 1)) if steps is None else _unpack("q", bytes(steps))
            rows = [{"series_id": series_id, "step": step, "seq": seq + i, "timestamp": stamp,
                     "value": None if value != value else value}
                    for i, (step, stamp, value) in enumerate(zip(all_steps, _unpack("q", bytes(stamps)),
                                                                 _unpack("d", bytes(values)), strict=True))]
            if rows:
                bind.execute(_INSERT_POINT, rows)
    op.drop_table('metric_chunks')
