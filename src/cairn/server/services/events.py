"""The append-only event log: every change to metadata records who did what, before and after."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from cairn.server.db.models import EventRow
from cairn.server.services.context import Context
from cairn.server.services.errors import InvalidInputError


def now_ms() -> int:
    return int(time.time() * 1000)


def record(
    session: Session,
    ctx: Context,
    action: str,
    object_type: str,
    object_id: str | int,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    _add(session, ctx.workspace_id, ctx.actor, ctx.client_addr, action, object_type=object_type, object_id=object_id,
         before=before, after=after)


def record_global(session: Session, actor: str, client_addr: str, action: str, object_type: str,
                  object_id: str | int, *, before: dict[str, Any] | None = None,
                  after: dict[str, Any] | None = None) -> None:
    """A server-wide change (accounts, tokens, sign-ins): kept with no workspace, read by admins."""
    _add(session, None, actor, client_addr, action, object_type=object_type, object_id=object_id, before=before,
         after=after)


def _add(session: Session, workspace_id: int | None, actor: str, client_addr: str, action: str, *, object_type: str,
         object_id: str | int, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
    # a plain insert, not an ORM object: most writes record an event, and a flush of one more object costs
    # more than the statement (events are never read back in the transaction that writes them)
    session.execute(insert(_EVENTS), {
        "workspace_id": workspace_id, "actor": actor, "action": action, "object_type": object_type,
        "object_id": str(object_id), "before": before, "after": after, "created_at": now_ms(),
        "client_addr": client_addr[:64]})


_EVENTS: Table = EventRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class EventQuery:
    since: int | None = None
    until: int | None = None
    actor: str | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    after_id: int = 0
    limit: int = 100


def list_events(session: Session, workspace_id: int | None, query: EventQuery) -> list[EventRow]:
    """Events of one workspace (or the server-wide ones, for None), oldest first, from ``after_id`` on."""
    statement = select(EventRow).where(
        EventRow.workspace_id.is_(None) if workspace_id is None else EventRow.workspace_id == workspace_id,
        EventRow.id > query.after_id)
    if query.since is not None:
        statement = statement.where(EventRow.created_at >= query.since)
    if query.until is not None:
        statement = statement.where(EventRow.created_at < query.until)
    for column, value in ((EventRow.actor, query.actor), (EventRow.object_type, query.object_type),
                          (EventRow.object_id, query.object_id)):
        if value is not None:
            statement = statement.where(column == value)
    if query.action is not None:
        prefix = query.action.endswith(".*")
        statement = statement.where(EventRow.action.startswith(query.action[:-1], autoescape=True) if prefix
                                    else EventRow.action == query.action)
    return list(session.scalars(statement.order_by(EventRow.id).limit(query.limit)))


_DURATION = re.compile(r"^(\d{1,9})([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, field: str = "duration") -> int:
    """``90d``, ``12h``, ``30m``, ``45s``, ``2w`` -> seconds."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise InvalidInputError(f"{field} must look like 30m, 12h, 7d or 2w, got {str(text)[:40]!r}", field=field)
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_time(text: str | None, field: str) -> int | None:
    """A point in time from a client: milliseconds since the epoch, an ISO-8601 date or time, or a
    duration back from now (``7d``)."""
    if text is None or text == "":
        return None
    text = text.strip()
    if text.isascii() and text.isdigit() and len(text) <= 15:
        return int(text)
    if _DURATION.match(text):
        return now_ms() - parse_duration(text, field) * 1000
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(f"{field} must be epoch milliseconds, an ISO-8601 time or a duration like 7d",
                                field=field) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
