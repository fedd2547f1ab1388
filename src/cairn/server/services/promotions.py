"""Promotion requests: one person asks for a version to be promoted into a (protected) registry, a
different person with the maintainer role there approves or rejects it, with a comment. The request,
the decision and the version it produced are all kept, and each step is an event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cairn.server.authz import MAINTAINER
from cairn.server.db.models import ModelVersionRow, PromotionRequestRow, RegisteredModelRow, RegistryRow
from cairn.server.services import events, registry, versions
from cairn.server.services.context import Context
from cairn.server.services.errors import (
    ConflictError,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    PermissionDeniedError,
)
from cairn.server.services.registry import VersionView, check_alias
from cairn.server.services.tenancy import referenced
from cairn.server.services.validation import MAX_DESCRIPTION, check_text

STATUSES = ("pending", "approved", "rejected", "cancelled")


@dataclass
class RequestView:
    row: PromotionRequestRow
    source: str  # registry.model
    source_version: int
    target_registry: str
    result_version: int | None


def request_promotion(session: Session, ctx: Context, full_name: str, version: Any, to: str, *,
                      aliases: list[str] | None = None, comment: str = "") -> RequestView:
    source, model, reg = versions._version_row(session, ctx, full_name, version)
    target_registry, target_name = registry.split_name(to, "to")
    if target_registry == reg.name:
        raise InvalidInputError(f"cannot promote within registry {reg.name!r}; choose another registry", field="to")
    target = registry.get_registry(session, ctx, target_registry, "to")
    ctx.authorize("registry", target.id)
    aliases = list(aliases or [])
    for alias in aliases:
        check_alias(alias)
    pending = session.scalar(select(PromotionRequestRow.id).where(
        PromotionRequestRow.source_version_id == source.id, PromotionRequestRow.target_registry_id == target.id,
        PromotionRequestRow.target_model == target_name, PromotionRequestRow.status == "pending"))
    if pending is not None:
        raise ConflictError(f"request {pending} to promote this version to {to} is already pending",
                            field="version")
    row = PromotionRequestRow(
        workspace_id=ctx.workspace_id, source_version_id=source.id, target_registry_id=target.id,
        target_model=target_name, aliases={"aliases": aliases},
        comment=check_text("comment", comment, MAX_DESCRIPTION), status="pending", requested_by=ctx.actor,
        requested_at=events.now_ms(), decision_comment="")
    session.add(row)
    session.flush()
    events.record(session, ctx, "promotion.request", "promotion_request", row.id,
                  after={"from": f"{reg.name}.{model.name}/{source.version}", "to": f"{target.name}.{target_name}",
                         "aliases": aliases, "comment": row.comment})
    return _view(session, row)


def _row(session: Session, ctx: Context, request_id: int, *, lock: bool = False) -> PromotionRequestRow:
    query = select(PromotionRequestRow).where(PromotionRequestRow.id == request_id,
                                              PromotionRequestRow.workspace_id == ctx.workspace_id)
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFoundError(f"promotion request {request_id} does not exist", field="request_id")
    return row


def _pending(session: Session, ctx: Context, request_id: int) -> PromotionRequestRow:
    row = _row(session, ctx, request_id, lock=True)
    if row.status != "pending":
        raise InvalidStateError(f"promotion request {request_id} is {row.status}, no longer pending",
                                field="request_id")
    return row


def _decide(session: Session, ctx: Context, request_id: int, comment: str) -> PromotionRequestRow:
    row = _pending(session, ctx, request_id)
    if row.requested_by == ctx.actor and ctx.guard.enforced:  # the local single-user mode has one person
        raise PermissionDeniedError("you cannot decide on your own promotion request; another maintainer must",
                                    field="request_id")
    ctx.authorize("registry", row.target_registry_id, MAINTAINER)
    row.decided_by, row.decided_at = ctx.actor, events.now_ms()
    row.decision_comment = check_text("comment", comment, MAX_DESCRIPTION)
    return row


def approve(session: Session, ctx: Context, request_id: int, comment: str = "") -> RequestView:
    row = _decide(session, ctx, request_id, comment)
    source = referenced(session, ModelVersionRow, row.source_version_id)
    model = referenced(session, RegisteredModelRow, source.model_id) if source is not None else None
    if source is None or model is None or source.lifecycle != "active" or model.lifecycle != "active":
        raise InvalidStateError("the version this request would promote has been deleted", field="request_id")
    source_registry = referenced(session, RegistryRow, model.registry_id)
    target_registry = referenced(session, RegistryRow, row.target_registry_id)
    assert source_registry is not None
    assert target_registry is not None
    result: VersionView = versions.promote(
        session, ctx, f"{source_registry.name}.{model.name}", source.version,
        f"{target_registry.name}.{row.target_model}", aliases=list(row.aliases.get("aliases", [])),
        note=row.comment or f"promotion request {row.id}", approved=True)
    row.status, row.result_version_id = "approved", result.row.id
    events.record(session, ctx, "promotion.approve", "promotion_request", row.id,
                  before={"status": "pending"},
                  after={"status": "approved", "comment": row.decision_comment, "result": result.full_name
                         + f"/{result.row.version}", "requested_by": row.requested_by})
    return _view(session, row)


def reject(session: Session, ctx: Context, request_id: int, comment: str) -> RequestView:
    if not isinstance(comment, str) or not comment.strip():
        raise InvalidInputError("say why the request is rejected: comment must not be empty", field="comment")
    row = _decide(session, ctx, request_id, comment)
    row.status = "rejected"
    events.record(session, ctx, "promotion.reject", "promotion_request", row.id, before={"status": "pending"},
                  after={"status": "rejected", "comment": row.decision_comment, "requested_by": row.requested_by})
    return _view(session, row)


def cancel(session: Session, ctx: Context, request_id: int) -> RequestView:
    row = _pending(session, ctx, request_id)
    if row.requested_by != ctx.actor and not ctx.guard.has(MAINTAINER):
        raise PermissionDeniedError("only the requester or a maintainer can cancel a request", field="request_id")
    ctx.authorize("registry", row.target_registry_id)
    row.status, row.decided_by, row.decided_at = "cancelled", ctx.actor, events.now_ms()
    events.record(session, ctx, "promotion.cancel", "promotion_request", row.id, before={"status": "pending"},
                  after={"status": "cancelled"})
    return _view(session, row)


def get_request(session: Session, ctx: Context, request_id: int) -> RequestView:
    return _view(session, _row(session, ctx, request_id))


def list_requests(session: Session, ctx: Context, status: str | None = None, limit: int = 100,
                  offset: int = 0) -> list[RequestView]:
    query = select(PromotionRequestRow).where(PromotionRequestRow.workspace_id == ctx.workspace_id)
    if status is not None:
        if status not in STATUSES:
            raise InvalidInputError(f"status must be one of {', '.join(STATUSES)}", field="status")
        query = query.where(PromotionRequestRow.status == status)
    rows = session.scalars(query.order_by(PromotionRequestRow.id.desc()).limit(limit).offset(offset))
    return [_view(session, row) for row in rows]


def _view(session: Session, row: PromotionRequestRow) -> RequestView:
    source = referenced(session, ModelVersionRow, row.source_version_id)
    assert source is not None
    model = referenced(session, RegisteredModelRow, source.model_id)
    assert model is not None
    source_registry = referenced(session, RegistryRow, model.registry_id)
    target_registry = referenced(session, RegistryRow, row.target_registry_id)
    assert source_registry is not None
    assert target_registry is not None
    result = referenced(session, ModelVersionRow, row.result_version_id) if row.result_version_id else None
    return RequestView(row, f"{source_registry.name}.{model.name}", source.version, target_registry.name,
                       result.version if result is not None else None)
