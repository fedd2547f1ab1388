"""Removing what an administrator or a workspace owner set up: workspaces, teams, users (and service
accounts), registries, and giving a default registry back its default settings.

These are the operations tools that manage Cairn as code (the OpenTofu provider) need so that tearing
a set-up down leaves the server as it was. Each refuses what would lose live work or lock people out
(a workspace that still holds active experiments or models, the last owner of a workspace, the last
admin) and says what to do first; what is already soft-deleted goes with its container. The audit
log stays append-only: a deleted workspace's events are kept as server-wide events.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from cairn.server.db.models import (
    CommentRow,
    EventRow,
    ExperimentRow,
    GrantRow,
    IdempotencyKeyRow,
    MemberRow,
    ModelVersionRow,
    PromotionRequestRow,
    RegisteredModelRow,
    RegistryRow,
    RunRow,
    SessionRow,
    TeamMemberRow,
    TeamRow,
    TokenRow,
    UserRow,
    WorkspaceRow,
)
from cairn.server.services import accounts, events
from cairn.server.services.context import Context
from cairn.server.services.errors import InvalidStateError
from cairn.server.services.registry import get_registry
from cairn.server.services.tags import describe_and_set
from cairn.server.services.validation import check_text
from cairn.server.services.workspaces import DEFAULT_REGISTRIES, get_workspace

PROTECTED_WORKSPACE = "default"  # the local user's workspace of embedded mode; always there


def _count(session: Session, query: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


# workspaces ----------------------------------------------------------------------------------------------

def delete_workspace(session: Session, actor: str, name: str, client_addr: str = "") -> None:
    """Delete a workspace that holds no active experiment or model, with everything soft-deleted in it."""
    row = get_workspace(session, name)
    if row.name == PROTECTED_WORKSPACE:
        raise InvalidStateError("the default workspace cannot be deleted", field="workspace")
    live = {
        "experiments": _count(session, select(ExperimentRow.id).where(
            ExperimentRow.workspace_id == row.id, ExperimentRow.lifecycle == "active")),
        "models": _count(session, select(RegisteredModelRow.id).where(
            RegisteredModelRow.workspace_id == row.id, RegisteredModelRow.lifecycle == "active")),
    }
    if any(live.values()):
        held = ", ".join(f"{n} active {kind}" for kind, n in live.items() if n)
        raise InvalidStateError(f"workspace {name} still holds {held}; delete them first", field="workspace")
    _purge_workspace(session, row.id)
    session.execute(update(EventRow).where(EventRow.workspace_id == row.id).values(workspace_id=None))
    session.delete(row)
    events.record_global(session, actor, client_addr, "workspace.delete", "workspace", name)


def _purge_workspace(session: Session, workspace_id: int) -> None:
    """Every row of the workspace, children before parents (bulk deletes; the store cascades the rest)."""
    models = select(RegisteredModelRow.id).where(RegisteredModelRow.workspace_id == workspace_id)
    for model in (CommentRow, PromotionRequestRow, GrantRow, MemberRow, IdempotencyKeyRow):
        session.execute(delete(model).where(model.workspace_id == workspace_id))
    session.execute(delete(ModelVersionRow).where(ModelVersionRow.model_id.in_(models)))
    session.execute(delete(RegisteredModelRow).where(RegisteredModelRow.workspace_id == workspace_id))
    session.execute(delete(RegistryRow).where(RegistryRow.workspace_id == workspace_id))
    session.execute(delete(RunRow).where(RunRow.workspace_id == workspace_id))
    session.execute(delete(ExperimentRow).where(ExperimentRow.workspace_id == workspace_id))


# registries ----------------------------------------------------------------------------------------------

def _default_protection(name: str) -> bool | None:
    return dict(DEFAULT_REGISTRIES).get(name)


def update_registry(session: Session, ctx: Context, name: str, *, description: str | None = None,
                    protected: bool | None = None) -> RegistryRow:
    row = get_registry(session, ctx, name, "name")
    ctx.authorize("registry", row.id)
    describe_and_set(session, ctx, row, object_type="registry", object_id=row.id, description=description,
                     flags={"protected": protected})
    return row


def reset_registry(session: Session, ctx: Context, name: str) -> RegistryRow:
    """Give ``dev`` or ``prod`` back the settings every new workspace starts with."""
    protected = _default_protection(name)
    if protected is None:
        raise InvalidStateError(f"registry {name!r} is not one every workspace has (dev, prod): delete it instead",
                                field="name")
    return update_registry(session, ctx, name, description="", protected=protected)


def delete_registry(session: Session, ctx: Context, name: str) -> None:
    """Delete a registry of the workspace's own making that holds no active model."""
    row = get_registry(session, ctx, name, "name")
    if _default_protection(row.name) is not None:
        raise InvalidStateError(f"every workspace has registry {row.name!r}; reset it to its default settings "
                                "instead (POST .../reset)", field="name")
    models = select(RegisteredModelRow.id).where(RegisteredModelRow.registry_id == row.id)
    active = _count(session, models.where(RegisteredModelRow.lifecycle == "active"))
    if active:
        raise InvalidStateError(f"registry {row.name!r} still holds {active} active models; delete them first",
                                field="name")
    versions = select(ModelVersionRow.id).where(ModelVersionRow.model_id.in_(models))
    session.execute(delete(PromotionRequestRow).where(
        (PromotionRequestRow.target_registry_id == row.id) | PromotionRequestRow.source_version_id.in_(versions)
        | PromotionRequestRow.result_version_id.in_(versions)))
    session.execute(delete(ModelVersionRow).where(ModelVersionRow.id.in_(versions)))
    session.execute(delete(RegisteredModelRow).where(RegisteredModelRow.registry_id == row.id))
    session.execute(delete(GrantRow).where(GrantRow.resource_type == "registry", GrantRow.resource_id == row.id))
    session.delete(row)
    session.info.get("registries", {}).pop((ctx.workspace_id, row.name), None)
    events.record(session, ctx, "registry.delete", "registry", row.id, before={"name": row.name})


# teams and users -----------------------------------------------------------------------------------------

def _check_not_last_owner(session: Session, kind: str, principal_id: int, name: str) -> None:
    """Refuse to remove a user or team that is the only owner of some workspace."""
    owned = select(MemberRow.workspace_id).where(MemberRow.principal_kind == kind,
                                                  MemberRow.principal_id == principal_id, MemberRow.role == "owner")
    for workspace_id, workspace in session.execute(select(WorkspaceRow.id, WorkspaceRow.name).where(
            WorkspaceRow.id.in_(owned))):
        owners = _count(session, select(MemberRow.id).where(MemberRow.workspace_id == workspace_id,
                                                            MemberRow.role == "owner"))
        if owners <= 1:
            raise InvalidStateError(f"{kind} {name} is the last owner of workspace {workspace}; make another owner "
                                    "first", field="name")


def _drop_principal(session: Session, kind: str, principal_id: int) -> None:
    for model in (MemberRow, GrantRow):
        session.execute(delete(model).where(model.principal_kind == kind, model.principal_id == principal_id))


def update_team(session: Session, actor: str, name: str, description: str, client_addr: str = "") -> TeamRow:
    row = accounts.get_team(session, name, "name")
    before = {"description": row.description}
    row.description = check_text("description", description, 4000)
    events.record_global(session, actor, client_addr, "team.update", "team", name, before=before,
                         after={"description": row.description})
    return row


def delete_team(session: Session, actor: str, name: str, client_addr: str = "") -> None:
    """Delete a team, its memberships in workspaces and its grants; its users stay."""
    row = accounts.get_team(session, name, "name")
    _check_not_last_owner(session, "team", row.id, name)
    _drop_principal(session, "team", row.id)
    session.execute(delete(TeamMemberRow).where(TeamMemberRow.team_id == row.id))
    session.delete(row)
    events.record_global(session, actor, client_addr, "team.delete", "team", name)


def delete_user(session: Session, actor: str, name: str, client_addr: str = "") -> None:
    """Delete a user or service account with its tokens, sessions, memberships and grants. What they did
    stays in the audit log under their name. Disabling (PATCH) keeps the account for later."""
    row = accounts.get_user(session, name, "name")
    if name == actor:
        raise InvalidStateError("you cannot delete your own account; another admin can", field="name")
    if row.is_admin and not row.disabled:
        others = session.scalar(select(UserRow.id).where(UserRow.is_admin, ~UserRow.disabled, UserRow.id != row.id)
                                .limit(1))
        if others is None:
            raise InvalidStateError(f"{name} is the last active admin; make another admin first", field="name")
    _check_not_last_owner(session, "user", row.id, name)
    _drop_principal(session, "user", row.id)
    for model in (TeamMemberRow, TokenRow, SessionRow):
        session.execute(delete(model).where(model.user_id == row.id))
    session.delete(row)
    events.record_global(session, actor, client_addr, "user.delete", "user", name,
                         before={"admin": row.is_admin, "service": row.is_service})
