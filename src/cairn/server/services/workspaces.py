"""Workspaces, their members (users and teams) with roles, and roles granted on one resource.

A workspace's objects are visible only to its members (and server admins); to anyone else the
workspace does not exist. A user's role is the highest of their own membership and their teams'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from cairn.server.authz import RESOURCE_TYPES, ROLES, Guard, higher
from cairn.server.db.models import (
    ExperimentRow,
    GrantRow,
    MemberRow,
    RegistryRow,
    TeamMemberRow,
    TeamRow,
    UserRow,
    WorkspaceRow,
)
from cairn.server.services import accounts, events
from cairn.server.services.accounts import Identity
from cairn.server.services.context import Context
from cairn.server.services.errors import ConflictError, InvalidInputError, InvalidStateError, NotFoundError
from cairn.server.services.tags import describe_and_set
from cairn.server.services.validation import MAX_DESCRIPTION, check_text

_WORKSPACE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
DEFAULT_REGISTRIES = (("dev", False), ("prod", True))


@dataclass(frozen=True)
class Member:
    kind: str  # user | team
    name: str
    role: str
    created_at: int


def check_role(role: Any, field: str = "role") -> str:
    if role not in ROLES:
        raise InvalidInputError(f"role {role!r} is not one of {', '.join(ROLES)}", field=field)
    return str(role)


def get_workspace(session: Session, name: Any) -> WorkspaceRow:
    row = session.scalar(select(WorkspaceRow).where(WorkspaceRow.name == name)) if isinstance(name, str) else None
    if row is None:
        raise NotFoundError(f"workspace {name!r} does not exist", field="workspace")
    return row


def create_workspace(session: Session, actor: str, name: str, description: str = "", *,
                     require_approval: bool = False, client_addr: str = "") -> WorkspaceRow:
    if not isinstance(name, str) or not _WORKSPACE_NAME.match(name):
        raise InvalidInputError("workspace name must be 1-64 lowercase letters, digits, '_' or '-'", field="name")
    if session.scalar(select(WorkspaceRow.id).where(WorkspaceRow.name == name)) is not None:
        raise ConflictError(f"workspace {name!r} already exists", field="name")
    now = events.now_ms()
    row = WorkspaceRow(name=name, description=check_text("description", description, MAX_DESCRIPTION),
                       require_approval=require_approval, created_at=now)
    session.add(row)
    session.flush()
    for registry, protected in DEFAULT_REGISTRIES:
        session.add(RegistryRow(workspace_id=row.id, name=registry, description="", protected=protected,
                                created_at=now))
    ctx = Context(row.id, name, actor, client_addr)
    events.record(session, ctx, "workspace.create", "workspace", name,
                  after={"require_approval": require_approval})
    return row


def update_workspace(session: Session, ctx: Context, *, description: str | None = None,
                     require_approval: bool | None = None) -> WorkspaceRow:
    row = session.get(WorkspaceRow, ctx.workspace_id)
    assert row is not None
    describe_and_set(session, ctx, row, object_type="workspace", object_id=row.name, description=description,
                     flags={"require_approval": require_approval})
    return row


def _teams_of(user: Any) -> Any:
    """The ids of the user's teams, as a subquery."""
    return select(TeamMemberRow.team_id).where(TeamMemberRow.user_id == user).scalar_subquery()


def _principal_clause(model: Any, user: Any) -> Any:
    """Rows (memberships, grants) held by the user directly or through one of their teams."""
    return or_((model.principal_kind == "user") & (model.principal_id == user),
               (model.principal_kind == "team") & model.principal_id.in_(_teams_of(user)))


def list_workspaces(session: Session, identity: Identity | None) -> list[tuple[WorkspaceRow, str | None]]:
    """The workspaces the caller may see, with their role in each (None for an admin who is no member)."""
    rows = list(session.scalars(select(WorkspaceRow).order_by(WorkspaceRow.name)))
    if identity is None:
        return [(row, "owner") for row in rows]
    roles: dict[int, str | None] = {}
    for workspace_id, role in session.execute(select(MemberRow.workspace_id, MemberRow.role).where(
            _principal_clause(MemberRow, identity.user_id))):
        roles[workspace_id] = higher(roles.get(workspace_id), role)
    return [(row, roles.get(row.id)) for row in rows if identity.is_admin or row.id in roles]


# Built once: this runs on every authenticated request, and building SQLAlchemy expressions costs more
# than running them. The workspace with each role the user holds there (own or a team's), then grants.
_ROLES_IN = select(WorkspaceRow.id, MemberRow.role).outerjoin(
    MemberRow, (MemberRow.workspace_id == WorkspaceRow.id)
    & _principal_clause(MemberRow, bindparam("user_id"))).where(WorkspaceRow.name == bindparam("name"))
# A grant counts only while the membership it was given under stands: a user's grant while the user is a
# direct member, a team's while the team is a member. (Removing a membership also deletes its grants;
# this keeps grants left by older versions, or by a race, from ever counting.)
_HELD_BY_MEMBER = select(MemberRow.id).where(
    MemberRow.workspace_id == GrantRow.workspace_id, MemberRow.principal_kind == GrantRow.principal_kind,
    MemberRow.principal_id == GrantRow.principal_id).exists()
_GRANTS_IN = select(GrantRow.resource_type, GrantRow.resource_id, GrantRow.role).where(
    GrantRow.workspace_id == bindparam("workspace_id"), _principal_clause(GrantRow, bindparam("user_id")),
    _HELD_BY_MEMBER)


def default_workspace_of(session: Session, identity: Identity, fallback: str) -> str:
    """Where a caller who names no workspace works: ``fallback`` (``default``) if they belong to it, else the
    first of their workspaces by name."""
    names = list(session.scalars(select(WorkspaceRow.name).join(
        MemberRow, MemberRow.workspace_id == WorkspaceRow.id).where(
        _principal_clause(MemberRow, identity.user_id)).order_by(WorkspaceRow.name)))
    return fallback if fallback in names or not names or identity.is_admin else names[0]


def guard_for(session: Session, identity: Identity, workspace: str) -> tuple[int, Guard]:
    """The id of ``workspace`` and the caller's standing there. Not a member: it does not exist for them."""
    found = session.execute(_ROLES_IN, {"user_id": identity.user_id, "name": workspace}).all()
    if found and identity.is_admin:
        return found[0][0], Guard(identity.name, "owner", admin=True)
    role: str | None = None
    for _, member_role in found:
        role = higher(role, member_role)
    if not found or role is None:
        raise NotFoundError(f"workspace {workspace!r} does not exist", field="workspace")
    workspace_id = found[0][0]
    grants: dict[tuple[str, int], str] = {}
    for resource_type, resource_id, grant_role in session.execute(
            _GRANTS_IN, {"workspace_id": workspace_id, "user_id": identity.user_id}):
        key = (resource_type, resource_id)
        grants[key] = higher(grants.get(key), grant_role) or grant_role
    return workspace_id, Guard(identity.name, role, grants)


# members ------------------------------------------------------------------------------------------------

def _principal(session: Session, user: str | None, team: str | None) -> tuple[str, int, str]:
    if (user is None) == (team is None):
        raise InvalidInputError("name exactly one of user or team", field="user")
    if user is not None:
        return "user", accounts.get_user(session, user).id, user
    assert team is not None
    return "team", accounts.get_team(session, team).id, team


def list_members(session: Session, ctx: Context) -> list[Member]:
    users = select(MemberRow.principal_kind, UserRow.name, MemberRow.role, MemberRow.created_at).join(
        UserRow, (MemberRow.principal_kind == "user") & (UserRow.id == MemberRow.principal_id))
    teams = select(MemberRow.principal_kind, TeamRow.name, MemberRow.role, MemberRow.created_at).join(
        TeamRow, (MemberRow.principal_kind == "team") & (TeamRow.id == MemberRow.principal_id))
    found = [Member(*r) for q in (users, teams) for r in session.execute(q.where(
        MemberRow.workspace_id == ctx.workspace_id))]
    return sorted(found, key=lambda m: (m.kind != "user", m.name))


def _membership(session: Session, ctx: Context, kind: str, principal_id: int, *, lock: bool = False) -> Any:
    query = select(MemberRow).where(MemberRow.workspace_id == ctx.workspace_id, MemberRow.principal_kind == kind,
                                    MemberRow.principal_id == principal_id)
    return session.scalar(query.with_for_update() if lock else query)


def add_member(session: Session, ctx: Context, role: str, *, user: str | None = None,
               team: str | None = None) -> Member:
    check_role(role)
    kind, principal_id, name = _principal(session, user, team)
    if _membership(session, ctx, kind, principal_id) is not None:
        raise ConflictError(f"{kind} {name} is already a member of {ctx.workspace}; change their role instead",
                            field=kind)
    now = events.now_ms()
    session.add(MemberRow(workspace_id=ctx.workspace_id, principal_kind=kind, principal_id=principal_id, role=role,
                          created_at=now))
    events.record(session, ctx, "member.add", kind, name, after={"role": role})
    return Member(kind, name, role, now)


def _owner_count(session: Session, ctx: Context) -> int:
    rows = session.scalars(select(MemberRow.id).where(MemberRow.workspace_id == ctx.workspace_id,
                                                       MemberRow.role == "owner").with_for_update())
    return len(list(rows))


def set_member_role(session: Session, ctx: Context, role: str, *, user: str | None = None,
                    team: str | None = None) -> Member:
    check_role(role)
    kind, principal_id, name = _principal(session, user, team)
    row = _membership(session, ctx, kind, principal_id, lock=True)
    if row is None:
        raise NotFoundError(f"{kind} {name} is not a member of {ctx.workspace}", field=kind)
    if row.role == "owner" and role != "owner" and _owner_count(session, ctx) <= 1:
        raise InvalidStateError(f"{name} is the last owner of {ctx.workspace}; make another owner first", field=kind)
    before = row.role
    row.role = role
    events.record(session, ctx, "member.set_role", kind, name, before={"role": before}, after={"role": role})
    return Member(kind, name, role, row.created_at)


def remove_member(session: Session, ctx: Context, *, user: str | None = None, team: str | None = None) -> None:
    kind, principal_id, name = _principal(session, user, team)
    row = _membership(session, ctx, kind, principal_id, lock=True)
    if row is None:
        raise NotFoundError(f"{kind} {name} is not a member of {ctx.workspace}", field=kind)
    if row.role == "owner" and _owner_count(session, ctx) <= 1:
        raise InvalidStateError(f"{name} is the last owner of {ctx.workspace}; make another owner first", field=kind)
    session.delete(row)
    for grant in session.scalars(select(GrantRow).where(GrantRow.workspace_id == ctx.workspace_id,
                                                        GrantRow.principal_kind == kind,
                                                        GrantRow.principal_id == principal_id)):
        session.delete(grant)
    events.record(session, ctx, "member.remove", kind, name, before={"role": row.role})


# grants on one resource -------------------------------------------------------------------------------

def _resource(session: Session, ctx: Context, resource_type: str, resource: Any) -> tuple[int, str]:
    if resource_type not in RESOURCE_TYPES:
        raise InvalidInputError(f"resource_type must be one of {', '.join(RESOURCE_TYPES)}", field="resource_type")
    model: Any = ExperimentRow if resource_type == "experiment" else RegistryRow
    row = session.scalar(select(model).where(model.workspace_id == ctx.workspace_id, model.name == resource)) \
        if isinstance(resource, str) else None
    if row is None:
        raise NotFoundError(f"{resource_type} {resource!r} does not exist", field="resource")
    return row.id, row.name


def grant(session: Session, ctx: Context, resource_type: str, resource: str, role: str, *,
          user: str | None = None, team: str | None = None) -> GrantRow:
    check_role(role)
    if role == "owner":
        raise InvalidInputError("owner is a workspace role; grant at most maintainer on one resource", field="role")
    resource_id, resource_name = _resource(session, ctx, resource_type, resource)
    kind, principal_id, name = _principal(session, user, team)
    if _membership(session, ctx, kind, principal_id) is None:  # direct members only, not members by a team
        raise InvalidInputError(
            f"{kind} {name} is not a direct member of {ctx.workspace}; add them as a member first (a grant "
            "lasts as long as that membership)", field=kind)
    existing = session.scalar(select(GrantRow).where(
        GrantRow.resource_type == resource_type, GrantRow.resource_id == resource_id,
        GrantRow.principal_kind == kind, GrantRow.principal_id == principal_id))
    if existing is not None:
        raise ConflictError(f"{kind} {name} already has a role on {resource_type} {resource_name}", field=kind)
    row = GrantRow(workspace_id=ctx.workspace_id, resource_type=resource_type, resource_id=resource_id,
                   principal_kind=kind, principal_id=principal_id, role=role, created_at=events.now_ms())
    session.add(row)
    session.flush()
    events.record(session, ctx, "grant.add", resource_type, resource_name, after={kind: name, "role": role})
    return row


def list_grants(session: Session, ctx: Context) -> list[dict[str, Any]]:
    rows = list(session.scalars(select(GrantRow).where(GrantRow.workspace_id == ctx.workspace_id)
                                .order_by(GrantRow.id)))
    names = {("user", i): n for i, n in session.execute(select(UserRow.id, UserRow.name))}
    names.update({("team", i): n for i, n in session.execute(select(TeamRow.id, TeamRow.name))})
    resources = {("experiment", i): n for i, n in session.execute(
        select(ExperimentRow.id, ExperimentRow.name).where(ExperimentRow.workspace_id == ctx.workspace_id))}
    resources.update({("registry", i): n for i, n in session.execute(
        select(RegistryRow.id, RegistryRow.name).where(RegistryRow.workspace_id == ctx.workspace_id))})
    return [{"id": r.id, "resource_type": r.resource_type, "resource": resources.get((r.resource_type, r.resource_id)),
             r.principal_kind: names.get((r.principal_kind, r.principal_id)), "role": r.role,
             "created_at": r.created_at} for r in rows]


def revoke_grant(session: Session, ctx: Context, grant_id: int) -> None:
    row = session.get(GrantRow, grant_id)
    if row is None or row.workspace_id != ctx.workspace_id:
        raise NotFoundError(f"grant {grant_id} does not exist", field="grant_id")
    session.delete(row)
    events.record(session, ctx, "grant.remove", row.resource_type, row.resource_id,
                  before={"principal": f"{row.principal_kind}:{row.principal_id}", "role": row.role})
