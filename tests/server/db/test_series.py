"""Metric series rows are locked in one order everywhere: Python's, by code point."""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cairn.server.db import series as db_series
from cairn.server.db.models import KEY_LEN
from cairn.server.services import metrics


def test_series_rows_come_in_code_point_order_across_chunks(app: Any, run_id: str) -> None:
    """More keys than one statement takes, differing in case, accents and punctuation: the rows (on PostgreSQL
    locked in the order they come) follow ``sorted()`` even when the column's collation does not, as
    en-US's does not ("a" < "B"); otherwise two requests could lock shared keys in different orders."""
    db = app.state.db
    keys = [f"{c}{i:03d}" for i in range(300) for c in ("a", "B", "_", "é", "Z")]
    random.Random(1).shuffle(keys)
    assert len(keys) > 2 * db_series._KEYS_PER_SELECT
    session = Session(db.engine)
    try:
        if session.connection().dialect.name == "postgresql":  # rolled back below, with the rest
            session.execute(text(f'ALTER TABLE metric_series ALTER COLUMN key TYPE varchar({KEY_LEN}) '
                                 'COLLATE "en-US-x-icu"'))
            assert session.execute(text("SELECT 'a' < 'B' COLLATE \"en-US-x-icu\"")).scalar_one()
        metrics.lock_series(session, run_id, sorted(keys))
        rows = db_series.select_series(session, run_id, keys)
        assert [row[2] for row in rows] == sorted(keys)
    finally:
        session.rollback()
        session.close()
