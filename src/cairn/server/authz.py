"""The permission table, in one place: which role each action needs, of which kind, on which resource.

Roles rank ``viewer < editor < maintainer < owner`` inside a workspace; a server admin has every
role everywhere. A role may also be granted on one experiment or one registry: it raises the caller's
role for that resource only. Token scopes cap what a credential may do whatever the role:
``read`` allows reading, ``write`` also changes, ``admin`` also server administration.

Every route declares one action (see ``cairn.server.api.auth.requires``). When the caller's
workspace role already covers the action, the route runs. When only a grant could cover it, the call
runs with a pending :class:`Guard`; the service must name the resource it changes
(``ctx.authorize("experiment", id)``) and a call that never does is refused and rolled back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cairn.server.services.errors import PermissionDeniedError

ROLES = ("viewer", "editor", "maintainer", "owner")
RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}
SCOPES = ("read", "write", "admin")
SCOPE_RANK = {scope: rank for rank, scope in enumerate(SCOPES, start=1)}
RESOURCE_TYPES = ("experiment", "registry")


@dataclass(frozen=True)
class Permission:
    role: str | None  # the least workspace role; None: not a workspace action
    scope: str  # the least token scope
    resource: str | None = None  # the resource type a grant on which can stand in for the role
    admin: bool = False  # server administrators only
    public: bool = False  # no credentials needed


def _p(role: str | None, scope: str, resource: str | None = None, **flags: bool) -> Permission:
    return Permission(role, scope, resource, **flags)


PERMISSIONS: dict[str, Permission] = {
    # tracking
    "experiment.read": _p("viewer", "read"),
    "experiment.write": _p("editor", "write", "experiment"),
    "experiment.delete": _p("maintainer", "write", "experiment"),
    "run.read": _p("viewer", "read"),
    "run.write": _p("editor", "write", "experiment"),
    "run.delete": _p("maintainer", "write", "experiment"),
    "artifact.read": _p("viewer", "read"),
    "artifact.write": _p("editor", "write", "experiment"),
    # registry
    "registry.read": _p("viewer", "read"),
    "registry.manage": _p("maintainer", "write", "registry"),
    "model.read": _p("viewer", "read"),
    "model.write": _p("editor", "write", "registry"),
    "model.manage": _p("maintainer", "write", "registry"),
    "promotion.read": _p("viewer", "read"),
    "promotion.request": _p("editor", "write", "registry"),
    "promotion.decide": _p("maintainer", "write", "registry"),
    # collaboration inside a workspace
    "comment.read": _p("viewer", "read"),
    "comment.write": _p("editor", "write"),
    "workspace.read": _p("viewer", "read"),
    "workspace.manage": _p("owner", "write"),
    "audit.read": _p("owner", "read"),
    "conventions.read": _p("viewer", "read"),
    "conventions.manage": _p("maintainer", "write", "experiment"),
    # the caller's own account: any signed-in user
    "account.self": _p(None, "read"),
    "account.write": _p(None, "write"),
    # server administration
    "admin.read": _p(None, "admin", admin=True),
    "admin.manage": _p(None, "admin", admin=True),
    # no credentials
    "public": _p(None, "read", public=True),
}
ACTIONS = set(PERMISSIONS)
PUBLIC_PATHS = {"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/assets"}
WORKSPACE_HEADER = "X-Cairn-Workspace"
MAINTAINER = "maintainer"


def at_least(role: str | None, needed: str | None) -> bool:
    return needed is None or (role is not None and RANK[role] >= RANK[needed])


def higher(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if RANK[a] >= RANK[b] else b


@dataclass
class Guard:
    """The caller's standing in one workspace for one call, and the check the services make.

    ``role`` is the workspace role (None for no membership), ``grants`` maps (resource type,
    resource id) to a granted role. ``pending`` is set when only a grant can cover the call: every
    resource the call changes must then carry that role, and at least one must be named.
    """

    actor: str
    role: str | None
    grants: dict[tuple[str, int], str] = field(default_factory=dict)
    admin: bool = False
    pending: str | None = None
    resource_type: str | None = None
    satisfied: bool = False
    enforced: bool = True  # False in the local single-user mode, where clients may name the run's user

    def role_on(self, resource_type: str, resource_id: int) -> str | None:
        if self.admin:
            return "owner"
        return higher(self.role, self.grants.get((resource_type, resource_id)))

    def authorize(self, resource_type: str, resource_id: int, needed: str | None = None) -> None:
        """The caller changes this resource: they must hold the pending role (and ``needed``) on it."""
        want = higher(self.pending, needed)
        have = self.role_on(resource_type, resource_id)
        if not at_least(have, want):
            raise PermissionDeniedError(
                f"{self.actor} needs the {want} role on this {resource_type} (has {have or 'no role'})")
        if self.pending is not None and self.resource_type == resource_type:
            self.satisfied = True

    def check_done(self) -> None:
        """After the call: a role that only a grant could give must have been shown on a resource."""
        if self.pending is not None and not self.satisfied:
            raise PermissionDeniedError(f"{self.actor} needs the {self.pending} role in this workspace "
                                        f"(a grant on one {self.resource_type} does not cover this)")

    def has(self, needed: str) -> bool:
        return self.admin or at_least(self.role, needed)


def unrestricted(actor: str) -> Guard:
    """The guard of the local single-user mode and of operator commands: every role everywhere."""
    return Guard(actor, "owner", admin=True, enforced=False)
