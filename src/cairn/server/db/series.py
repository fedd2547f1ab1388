"""Fast paths for what every logging request reads and writes: the run's state it checks, the run's series
of some keys (locked for update on PostgreSQL), and their summaries written back.

A single-point log request spends most of its store time building statements; these are constants
with bound parameters, run on the driver's cursor inside the session's transaction (as
``cairn.server.db.points`` does for points).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

# The columns a summary is made of, in the order the service's SeriesState lists them.
STATE_COLUMNS = ("id", "run_id", "key", "goal", "count", "numeric_count", "sum", "last_value", "last_step",
                 "last_timestamp", "min_value", "min_step", "max_value", "max_step")
SUMMARY_COLUMNS = STATE_COLUMNS[4:]
_KEYS_PER_SELECT = 500  # bound parameters per statement stay under 999 (SQLite before 3.32)
_SELECT = ("SELECT id, run_id, key, goal, count, numeric_count, sum, last_value, last_step, last_timestamp, "
           "min_value, min_step, max_value, max_step FROM metric_series WHERE run_id = {p} AND key IN ({keys}){scope} "
           "ORDER BY key{collate}")
# for series read before their run was checked: only a run of the caller's workspace has them
_IN_WORKSPACE = " AND EXISTS (SELECT 1 FROM runs WHERE runs.id = metric_series.run_id AND runs.workspace_id = {p})"
# Keys are split into chunks in Python's order (code points), and each chunk's rows are locked in the
# database's order: the two must agree, or two requests with many keys could lock in different orders and
# deadlock. PostgreSQL's "C" collation compares UTF-8 bytes, which is code point order (the column's default
# collation may not be, e.g. en_US puts "a" before "B"); SQLite's default BINARY collation already is.
_COLLATE = {True: "", False: ' COLLATE "C"'}
_UPDATE = ("UPDATE metric_series SET count = {p}, numeric_count = {p}, sum = {p}, last_value = {p}, last_step = {p}, "
           "last_timestamp = {p}, min_value = {p}, min_step = {p}, max_value = {p}, max_step = {p} WHERE id = {p}")


_RUN_STATE = "SELECT workspace_id, experiment_id, lifecycle, status, name, end_time FROM runs WHERE id = {p}"
_SET_RUN_STATE = "UPDATE runs SET status = {p}, end_time = {p}, updated_at = {p} WHERE id = {p}"


class RunState(NamedTuple):
    workspace_id: int
    experiment_id: int
    lifecycle: str
    status: str
    name: str
    end_time: int | None


def run_state(session: Session, run_id: str) -> RunState | None:
    """What a logging request checks before it writes (and what ending a run records as its state
    before), read without building an ORM row: a primary-key seek."""
    raw, p, _ = _driver(session)
    cursor = raw.cursor()
    try:
        cursor.execute(_RUN_STATE.format(p=p), (run_id,))
        row = cursor.fetchone()
    finally:
        cursor.close()
    return None if row is None else RunState(*row)


def set_run_state(session: Session, run_id: str, status: str, end_time: int | None, updated_at: int) -> None:
    """A run's status, end time and last change, written by its primary key."""
    raw, p, _ = _driver(session)
    cursor = raw.cursor()
    try:
        cursor.execute(_SET_RUN_STATE.format(p=p), (status, end_time, updated_at, run_id))
    finally:
        cursor.close()


def _driver(session: Session) -> tuple[Any, str, bool]:
    connection = session.connection()
    sqlite = connection.dialect.name == "sqlite"
    return connection.connection.driver_connection, "?" if sqlite else "%s", sqlite


def select_series(session: Session, run_id: str, keys: Sequence[str]) -> list[tuple[Any, ...]]:
    """The rows (``STATE_COLUMNS``) of the run's series with these keys, in key order; on PostgreSQL
    each is locked for update, in key order, so two writers never wait on each other in a circle."""
    raw, p, sqlite = _driver(session)
    cursors = _send_selects(raw, p, run_id, keys, sqlite=sqlite)
    return _fetch_all(cursors)


def run_state_and_series(session: Session, run_id: str, keys: Sequence[str],
                         workspace_id: int) -> tuple[RunState | None, list[tuple[Any, ...]]]:
    """:func:`run_state` and :func:`select_series` (of the run only if it is in ``workspace_id``) together:
    on PostgreSQL the statements (and the transaction's BEGIN) are sent at once and answered in one round
    trip, not one each."""
    raw, p, sqlite = _driver(session)
    if sqlite:
        return run_state(session, run_id), select_series(session, run_id, keys)
    with raw.pipeline():  # answered when the block ends: a fetch inside it would add a round trip
        state = raw.cursor()
        state.execute(_RUN_STATE.format(p=p), (run_id,))
        cursors = _send_selects(raw, p, run_id, keys, sqlite=sqlite, workspace_id=workspace_id)
    row = state.fetchone()
    state.close()
    return (None if row is None else RunState(*row)), _fetch_all(cursors)


def _send_selects(raw: Any, p: str, run_id: str, keys: Sequence[str], *, sqlite: bool,
                  workspace_id: int | None = None) -> list[Any]:
    ordered = sorted(keys)
    scope, scoped = ("", ()) if workspace_id is None else (_IN_WORKSPACE.format(p=p), (workspace_id,))
    cursors = []
    for i in range(0, len(ordered), _KEYS_PER_SELECT):
        chunk = ordered[i:i + _KEYS_PER_SELECT]
        sql = (_SELECT.format(p=p, keys=", ".join([p] * len(chunk)), scope=scope, collate=_COLLATE[sqlite])
               + ("" if sqlite else " FOR UPDATE"))
        cursor = raw.cursor()
        cursors.append(cursor)
        cursor.execute(sql, (run_id, *chunk, *scoped))
    return cursors


def _fetch_all(cursors: list[Any]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for cursor in cursors:
        rows += cursor.fetchall()
        cursor.close()
    return rows


def update_summaries(session: Session, rows: Sequence[tuple[Any, ...]]) -> None:
    """Write summaries back: each row is the ``SUMMARY_COLUMNS`` values followed by the series id."""
    if not rows:
        return
    raw, p, _ = _driver(session)
    cursor = raw.cursor()
    try:
        cursor.executemany(_UPDATE.format(p=p), rows)
    finally:
        cursor.close()
