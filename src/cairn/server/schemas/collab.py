"""Request models and response shapes of accounts, workspaces, promotion requests, comments and events (each
shape beside its builder: see ``tracking``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

from cairn._wire import (  # re-exported: the answers this module declares
    Comment as Comment,
    Event as Event,
    PromotionRequest as PromotionRequest,
    Token as Token,
    User as User,
    Workspace as Workspace,
)
from cairn.server.db.models import CommentRow, EventRow, TeamRow, TokenRow, UserRow, WorkspaceRow
from cairn.server.schemas.tracking import NamedCreate, Shape, Strict
from cairn.server.services.promotions import RequestView
from cairn.server.services.workspaces import Member


class Login(Strict):
    username: str = Field(max_length=256)
    password: str = Field(max_length=4096)


class PasswordChange(Strict):
    old_password: str = Field(max_length=4096)
    new_password: str = Field(max_length=4096)


class UserCreate(Strict):
    name: str
    password: str | None = Field(None, max_length=4096)
    admin: bool = False
    service: bool = False
    display_name: str = ""
    email: str = ""


class UserUpdate(Strict):
    admin: bool | None = None
    disabled: bool | None = None
    password: str | None = Field(None, max_length=4096)
    display_name: str | None = None
    email: str | None = None


class TeamUpdate(Strict):
    description: str


class TeamMember(Strict):
    user: str


class TokenCreate(Strict):
    name: str
    scope: str = "write"
    expires_in: int | None = Field(90 * 86400, description="seconds until it expires; null for never")
    user: str | None = Field(None, description="admins: make the token for this user (e.g. a service account)")


class WorkspaceCreate(NamedCreate):
    require_approval: bool = False


class WorkspaceUpdate(Strict):
    description: str | None = None
    require_approval: bool | None = None


class UserOrTeam(Strict):
    """Who a membership or a grant is for: a user or a team (the service refuses both or neither)."""

    user: str | None = None
    team: str | None = None


class MemberAdd(UserOrTeam):
    role: str


class RoleChange(Strict):
    role: str


class GrantCreate(UserOrTeam):
    resource_type: str
    resource: str
    role: str


class PromotionRequestCreate(Strict):
    model: str
    version: int | str
    to: str
    aliases: list[str] = Field(default_factory=list, max_length=100)
    comment: str = ""


class Decision(Strict):
    comment: str = ""


class CommentCreate(Strict):
    text: str


class UserList(Shape):
    users: list[User]


class SessionUser(Shape):
    """Who is signed in, in short (the local user of a server without authentication)."""

    name: str
    admin: bool


class SignedIn(Shape):
    user: User
    csrf_token: str


class SessionState(Shape):
    auth: bool
    signed_in: bool
    user: SessionUser | None = None
    scope: str | None = None
    csrf_token: str | None = Field(None, description="with a session cookie: send it as X-CSRF-Token")


class Me(Shape):
    user: User | SessionUser
    auth: bool
    scope: str
    method: str | None = Field(None, description="how the caller signed in: session, password or token")
    csrf_token: str | None = None


class Unlocked(Shape):
    user: str
    cleared: int


def user_out(row: UserRow) -> dict[str, Any]:
    return {"name": row.name, "display_name": row.display_name, "email": row.email, "admin": row.is_admin,
            "service": row.is_service, "disabled": row.disabled, "created_at": row.created_at}


class Team(Shape):
    name: str
    description: str
    members: list[str]
    created_at: int


class TeamList(Shape):
    teams: list[Team]


class TeamMembership(Shape):
    team: str
    user: str


def team_out(row: TeamRow, members: list[str]) -> dict[str, Any]:
    return {"name": row.name, "description": row.description, "members": members, "created_at": row.created_at}


@dataclass(frozen=True)
class NewToken(Token):
    token: Annotated[str, Field(description="the secret: in this answer and never again")]


class TokenList(Shape):
    tokens: list[Token]


class RevokedToken(Shape):
    id: str
    revoked_at: int | None


def token_out(row: TokenRow, user: str, secret: str | None = None) -> dict[str, Any]:
    out = {"id": row.id, "name": row.name, "user": user, "scope": row.scope, "created_at": row.created_at,
           "expires_at": row.expires_at, "revoked_at": row.revoked_at, "last_used_at": row.last_used_at}
    if secret is not None:
        out["token"] = secret
    return out


class WorkspaceList(Shape):
    workspaces: list[Workspace]


def workspace_out(row: WorkspaceRow, role: str | None = None) -> dict[str, Any]:
    return {"name": row.name, "description": row.description, "require_approval": row.require_approval,
            "created_at": row.created_at, "role": role}


class WorkspaceMember(Shape):
    """A user or a team (``kind`` says which; the key of that name holds its name) and its role."""

    user: str | None = None
    team: str | None = None
    kind: str
    role: str
    created_at: int


class MemberList(Shape):
    members: list[WorkspaceMember]


class Grant(Shape):
    """A role on one experiment or registry, for a user or a team (``services.workspaces.list_grants``)."""

    id: int
    resource_type: str
    resource: str | None
    user: str | None = None
    team: str | None = None
    role: str
    created_at: int


class GrantList(Shape):
    grants: list[Grant]


class NewGrant(Shape):
    id: int
    resource_type: str
    resource: str
    user: str | None = None
    team: str | None = None
    role: str


def member_out(member: Member) -> dict[str, Any]:
    return {member.kind: member.name, "kind": member.kind, "role": member.role, "created_at": member.created_at}


class PromotionRequestList(Shape):
    requests: list[PromotionRequest]


def request_out(view: RequestView) -> dict[str, Any]:
    row = view.row
    return {"id": row.id, "model": view.source, "version": view.source_version,
            "to": f"{view.target_registry}.{row.target_model}", "aliases": row.aliases.get("aliases", []),
            "comment": row.comment, "status": row.status, "requested_by": row.requested_by,
            "requested_at": row.requested_at, "decided_by": row.decided_by, "decided_at": row.decided_at,
            "decision_comment": row.decision_comment, "result_version": view.result_version}


class CommentList(Shape):
    comments: list[Comment]


def comment_out(row: CommentRow) -> dict[str, Any]:
    return {"id": row.id, "object_type": row.object_type, "object_id": row.object_id, "author": row.author,
            "text": row.body if row.deleted_at is None else "", "created_at": row.created_at,
            "updated_at": row.updated_at, "deleted": row.deleted_at is not None}


class EventPage(Shape):
    events: list[Event]
    next_page_token: str | None = Field(None, description="present when there may be more: pass it to continue")


def event_out(row: EventRow) -> dict[str, Any]:
    return {"id": row.id, "time": row.created_at, "actor": row.actor, "action": row.action,
            "object_type": row.object_type, "object_id": row.object_id, "before": row.before, "after": row.after,
            "client_addr": row.client_addr}


def event_page_out(rows: list[EventRow], limit: int) -> dict[str, Any]:
    """A full page says where the next one starts; a short one is the last."""
    out: dict[str, Any] = {"events": [event_out(r) for r in rows]}
    if len(rows) == limit:
        out["next_page_token"] = str(rows[-1].id)
    return out
