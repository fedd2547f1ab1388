"""Comments on runs and model versions: who, when, what; the author edits, the author or a
maintainer deletes (the text is kept in the event log, the comment shows as deleted)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cairn.server.authz import MAINTAINER
from cairn.server.db.models import CommentRow
from cairn.server.services import events, runs, versions
from cairn.server.services.context import Context
from cairn.server.services.errors import InvalidInputError, InvalidStateError, NotFoundError, PermissionDeniedError
from cairn.server.services.validation import check_text

MAX_COMMENT = 20_000


def _target(session: Session, ctx: Context, run_id: str | None, model: str | None, version: Any) -> tuple[str, str]:
    if run_id is not None:
        return "run", runs.get_run_row(session, ctx, run_id).id
    if model is None:
        raise InvalidInputError("name a run or a model version to comment on", field="run_id")
    row, _, _ = versions._version_row(session, ctx, model, version)
    return "model_version", str(row.id)


def _check_body(body: Any) -> str:
    check_text("text", body, MAX_COMMENT)
    if not body.strip():
        raise InvalidInputError("text must not be empty", field="text")
    return str(body)


def add_comment(session: Session, ctx: Context, text: str, *, run_id: str | None = None, model: str | None = None,
                version: Any = None) -> CommentRow:
    object_type, object_id = _target(session, ctx, run_id, model, version)
    now = events.now_ms()
    row = CommentRow(workspace_id=ctx.workspace_id, object_type=object_type, object_id=object_id, author=ctx.actor,
                     body=_check_body(text), created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    events.record(session, ctx, "comment.create", object_type, object_id, after={"comment": row.id, "text": text})
    return row


def list_comments(session: Session, ctx: Context, *, run_id: str | None = None, model: str | None = None,
                  version: Any = None, include_deleted: bool = False) -> list[CommentRow]:
    object_type, object_id = _target(session, ctx, run_id, model, version)
    query = select(CommentRow).where(CommentRow.workspace_id == ctx.workspace_id,
                                     CommentRow.object_type == object_type, CommentRow.object_id == object_id)
    if not include_deleted:
        query = query.where(CommentRow.deleted_at.is_(None))
    return list(session.scalars(query.order_by(CommentRow.id)))


def _comment(session: Session, ctx: Context, comment_id: int) -> CommentRow:
    row = session.get(CommentRow, comment_id, with_for_update=True)
    if row is None or row.workspace_id != ctx.workspace_id:
        raise NotFoundError(f"comment {comment_id} does not exist", field="comment_id")
    if row.deleted_at is not None:
        raise InvalidStateError(f"comment {comment_id} is deleted", field="comment_id")
    return row


def edit_comment(session: Session, ctx: Context, comment_id: int, text: str) -> CommentRow:
    row = _comment(session, ctx, comment_id)
    if row.author != ctx.actor:
        raise PermissionDeniedError("only the author can edit a comment", field="comment_id")
    before = row.body
    row.body, row.updated_at = _check_body(text), events.now_ms()
    events.record(session, ctx, "comment.edit", row.object_type, row.object_id,
                  before={"comment": row.id, "text": before}, after={"comment": row.id, "text": row.body})
    return row


def delete_comment(session: Session, ctx: Context, comment_id: int) -> None:
    row = _comment(session, ctx, comment_id)
    if row.author != ctx.actor and not ctx.guard.has(MAINTAINER):
        raise PermissionDeniedError("only the author or a maintainer can delete a comment", field="comment_id")
    row.deleted_at = events.now_ms()
    events.record(session, ctx, "comment.delete", row.object_type, row.object_id,
                  before={"comment": row.id, "text": row.body})
