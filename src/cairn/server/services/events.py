"""The append-only event log: every change to metadata records who did what, before and after."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.orm import Session

from cairn.server.db.models import EventRow
from cairn.server.services.context import Context


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
    session.add(
        EventRow(
            workspace_id=ctx.workspace_id,
            actor=ctx.actor,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            before=before,
            after=after,
            created_at=now_ms(),
            client_addr=ctx.client_addr,
        )
    )
