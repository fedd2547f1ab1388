"""Who may do what: workspaces, teams and their members, workspace members with roles, grants on one
experiment or registry, service accounts and their API tokens."""

from __future__ import annotations

import time
from typing import Any, ClassVar, NamedTuple

from tf.iface import CreateContext, DeleteContext, ImportContext, UpdateContext

from cairn.integrations.opentofu.api import q
from cairn.integrations.opentofu.base import (
    Base,
    State,
    attr,
    imported,
    keep_null,
    known,
    requires_exactly_one,
    split_id,
)
from cairn.integrations.opentofu.kinds import BOOL, NUMBER, STRING, STRING_LIST

DAY_SECONDS = 86400


class Setting(NamedTuple):
    """A setting of a :class:`_Named` object: its attribute's type and description, and the server's default."""

    kind: Any
    description: str
    default: Any


class _Named(Base):
    """An object of the whole server known by its name (``collection/<name>``), with a few settings that
    ``update`` changes in place: each an attribute with the server's default for it."""

    import_keys, import_shape = ("name",), "<name>"
    collection: ClassVar[str]
    name_rule: ClassVar[str]  # what a name may be, the ``name`` attribute's description
    settings: ClassVar[dict[str, Setting]]  # attribute -> its type, description and the server's default
    made_with: ClassVar[dict[str, Any]] = {}  # more fields of the create request, which found objects have too

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """The attributes are the name and the settings table, each setting optional: one declaration each."""
        if "settings" in cls.__dict__:
            cls.attributes = [attr("name", STRING, cls.name_rule, required=True, requires_replace=True),
                              *(attr(k, s.kind, s.description, optional=True) for k, s in cls.settings.items())]
        super().__init_subclass__(**kwargs)

    def _state(self, prior: State, found: dict[str, Any]) -> State:
        return self.full({"id": found["name"], "name": found["name"],
                          **{k: keep_null(prior.get(k), found[k], s.default) for k, s in self.settings.items()}})

    def _body(self, planned: State) -> dict[str, Any]:
        return {k: planned.get(k) or s.default for k, s in self.settings.items()}

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        body = {"name": planned["name"], **self.made_with, **self._body(planned)}
        return self.attempt(ctx.diagnostics, "create", lambda: self._state(planned, self.api.post(self.collection,
                                                                                                   body)))

    def found(self, current: State) -> State | None:
        found = self.api.find(f"{self.collection}/{q(current['name'])}")
        if found is None or any(found.get(k) != v for k, v in self.made_with.items()):
            return None
        return self._state(current, found)

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        return self.attempt(ctx.diagnostics, "update", lambda: self._state(
            planned, self.api.patch(f"{self.collection}/{q(current['name'])}", self._body(planned))))

    def delete(self, ctx: DeleteContext, current: State) -> None:
        self.attempt(ctx.diagnostics, "delete", lambda: self.api.delete(f"{self.collection}/{q(current['name'])}"))


class Workspace(_Named):
    type_name, what = "workspace", "the workspace"
    description = "A workspace: a team's experiments and registries, with its members. Creating and " \
                  "deleting one needs a server admin; its owner can change it."
    name_rule, collection = "1-64 lowercase letters, digits, '_' or '-'.", "/workspaces"
    settings = {"description": Setting(STRING, "Free text.", default=""),
                "require_approval": Setting(BOOL, "Promotions into protected registries need a second person's "
                                                  "approval.", default=False)}


class Team(_Named):
    type_name, what = "team", "the team"
    description = "A team of users, which can be a member of workspaces. Needs a server admin."
    name_rule, collection = "The team's name.", "/teams"
    settings = {"description": Setting(STRING, "Free text.", default="")}


class TeamMember(Base):
    type_name, what = "team_member", "the team member"
    import_keys, import_shape = ("team", "user"), "<team>/<user>"
    description = "A user in a team. Needs a server admin."
    attributes = [
        attr("team", STRING, "The team.", required=True, requires_replace=True),
        attr("user", STRING, "The user (or service account).", required=True, requires_replace=True),
    ]

    def found(self, current: State) -> State | None:
        team = self.api.find(f"/teams/{q(current['team'])}")
        if team is None or current["user"] not in team["members"]:
            return None
        return self.full({"id": f"{team['name']}/{current['user']}", "team": team["name"], "user": current["user"]})

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        def add() -> State | None:
            self.api.post(f"/teams/{q(planned['team'])}/members", {"user": planned["user"]})
            return self.full({**planned, "id": f"{planned['team']}/{planned['user']}"})
        return self.attempt(ctx.diagnostics, "add", add)

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        return planned  # every attribute replaces

    def delete(self, ctx: DeleteContext, current: State) -> None:
        self.attempt(ctx.diagnostics, "remove", lambda: self.api.delete(
            f"/teams/{q(current['team'])}/members/{q(current['user'])}"))


class WorkspaceMember(Base):
    type_name, what = "workspace_member", "the workspace member"
    import_shape = "<workspace>/user/<name> or <workspace>/team/<name>"
    description = "A user's or a team's role in a workspace. Needs the workspace's owner (or an admin)."
    fields = {"kind": "user"}
    attributes = [
        attr("user", STRING, "The user or service account (or set team).", optional=True, requires_replace=True),
        attr("team", STRING, "The team (or set user).", optional=True, requires_replace=True),
        attr("role", STRING, "viewer, editor, maintainer or owner.", required=True),
    ]

    def check(self, config: State) -> list[tuple[str, str]]:
        return requires_exactly_one(config, ("user", "team"))

    @staticmethod
    def _who(state: State) -> tuple[str, str]:
        return ("user", state["user"]) if known(state.get("user")) else ("team", state["team"])

    def found(self, current: State) -> State | None:
        workspace = self.workspace(current)
        kind, name = self._who(current)
        members = self.api.find(f"/workspaces/{q(workspace)}/members")
        match = [m for m in (members or {}).get("members", []) if m.get(kind) == name]
        if not match:
            return None
        return self.full({"id": f"{workspace}/{kind}/{name}", "workspace": workspace, kind: name,
                          "role": match[0]["role"]})

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        def add() -> State | None:
            workspace = self.workspace(planned)
            kind, name = self._who(planned)
            self.api.post(f"/workspaces/{q(workspace)}/members", {kind: name, "role": planned["role"]})
            return self.full({**planned, "workspace": workspace, "id": f"{workspace}/{kind}/{name}"})
        return self.attempt(ctx.diagnostics, "add", add)

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        def change() -> State | None:
            kind, name = self._who(current)
            path = f"/workspaces/{q(self.workspace(current))}/members/{kind}s/{q(name)}"
            self.api.patch(path, {"role": planned["role"]})
            return planned
        return self.attempt(ctx.diagnostics, "change the role of", change)

    def delete(self, ctx: DeleteContext, current: State) -> None:
        kind, name = self._who(current)
        self.attempt(ctx.diagnostics, "remove", lambda: self.api.delete(
            f"/workspaces/{q(self.workspace(current))}/members/{kind}s/{q(name)}"))

    def import_(self, ctx: ImportContext, import_id: str) -> State | None:
        def find() -> State | None:
            workspace, kind, name = split_id(import_id, 3, self.import_shape)
            if kind not in ("user", "team"):
                raise ValueError(f"the import id {import_id!r}: the middle part must be 'user' or 'team'")
            return self.found({"workspace": workspace, kind: name})
        return imported(self, ctx, import_id, find)


class Grant(Base):
    type_name, what = "grant", "the grant"
    import_keys, import_shape = ("id",), "<workspace>/<grant id>"
    description = "A role on one experiment or registry for a member of the workspace. Changing anything " \
                  "replaces it. Needs the workspace's owner."
    fields = {"kind": "user"}
    attributes = [
        attr("user", STRING, "The user (or set team).", optional=True, requires_replace=True),
        attr("team", STRING, "The team (or set user).", optional=True, requires_replace=True),
        attr("resource_type", STRING, "experiment or registry.", required=True, requires_replace=True),
        attr("resource", STRING, "The experiment's or registry's name.", required=True, requires_replace=True),
        attr("role", STRING, "viewer, editor or maintainer.", required=True, requires_replace=True),
    ]

    def check(self, config: State) -> list[tuple[str, str]]:
        return requires_exactly_one(config, ("user", "team"))

    def found(self, current: State) -> State | None:
        workspace, grant_id = split_id(current["id"], 2, self.import_shape)
        grants = self.api.find(f"/workspaces/{q(workspace)}/grants")
        match = [g for g in (grants or {}).get("grants", []) if str(g["id"]) == grant_id]
        if not match:
            return None
        found = match[0]
        return self.full({"id": f"{workspace}/{grant_id}", "workspace": workspace, "user": found.get("user"),
                          "team": found.get("team"), "resource_type": found["resource_type"],
                          "resource": found["resource"], "role": found["role"]})

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        def add() -> State | None:
            workspace = self.workspace(planned)
            body = {k: planned[k] for k in ("user", "team", "resource_type", "resource", "role") if known(planned[k])}
            made = self.api.post(f"/workspaces/{q(workspace)}/grants", body)
            return self.full({**planned, "workspace": workspace, "id": f"{workspace}/{made['id']}"})
        return self.attempt(ctx.diagnostics, "grant", add)

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        return planned  # every attribute replaces

    def delete(self, ctx: DeleteContext, current: State) -> None:
        workspace, grant_id = current["id"].rsplit("/", 1)
        path = f"/workspaces/{q(workspace)}/grants/{q(grant_id)}"
        self.attempt(ctx.diagnostics, "revoke", lambda: self.api.delete(path))


class ServiceAccount(_Named):
    type_name, what = "service_account", "the service account"
    description = "An account for a machine (a CI pipeline): no password, reached with API tokens. " \
                  "Needs a server admin. Destroying it deletes it with its tokens."
    name_rule, collection, made_with = "1-64 letters, digits, '.', '_', '@' or '-'.", "/users", {"service": True}
    settings = {"display_name": Setting(STRING, "Shown instead of the name.", default="")}


class ApiToken(Base):
    type_name, what = "api_token", "the API token"
    import_keys, import_shape = ("id",), "<owner>/<token id>"
    description = "An API token. Its secret is known only to the apply that creates it (sensitive; an " \
                  "imported token has none). Changing anything makes a new token; destroying revokes it."
    fields = {"scope": "scopes", "user": "owner", "expires_in": "expires_in_days"}
    attributes = [
        attr("owner", STRING, "Whose token: a service account or user (an admin may make tokens for others); "
                              "the caller when left out.", optional=True, computed=True, requires_replace=True),
        attr("name", STRING, "A label for the token.", optional=True, computed=True, requires_replace=True),
        attr("scopes", STRING_LIST, "One scope: read, write or admin (each includes the ones before).",
             required=True, requires_replace=True),
        attr("expires_in_days", NUMBER, "Days until it expires; the server's default (90) when left out.",
             optional=True, requires_replace=True),
        attr("expires_at", NUMBER, "When it expires, in milliseconds since the epoch (null: never).",
             computed=True),
        attr("secret", STRING, "The token itself: known only after the apply that creates it.", computed=True,
             sensitive=True),
    ]

    def check(self, config: State) -> list[tuple[str, str]]:
        scopes = config.get("scopes")
        if isinstance(scopes, list) and len(scopes) != 1:
            return [("scopes", f"a Cairn token carries exactly one scope (read, write or admin; each includes the "
                               f"ones before), got {len(scopes)}")]
        return []

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        def make() -> State | None:
            body: dict[str, Any] = {"name": planned.get("name") if known(planned.get("name")) else "terraform",
                                    "scope": planned["scopes"][0]}
            if known(planned.get("owner")):
                body["user"] = planned["owner"]
            if known(planned.get("expires_in_days")):
                body["expires_in"] = int(planned["expires_in_days"] * DAY_SECONDS)
            made = self.api.post("/tokens", body)
            return self.full({**planned, "id": f"{made['user']}/{made['id']}", "owner": made["user"],
                              "name": made["name"], "expires_at": made["expires_at"], "secret": made["token"]})
        return self.attempt(ctx.diagnostics, "create", make)

    def found(self, current: State) -> State | None:
        owner, token_id = split_id(current["id"], 2, self.import_shape)
        listed = self.api.find("/tokens", params={"user": owner})  # None: the owner was deleted
        found = [t for t in (listed or {}).get("tokens", []) if t["id"] == token_id]
        if not found or found[0]["revoked_at"] is not None or _expired(found[0]["expires_at"]):
            return None
        token = found[0]
        days = current["expires_in_days"] if "expires_in_days" in current else _days(token)  # imported: derived
        return self.full({**current, "id": f"{owner}/{token_id}", "owner": owner, "name": token["name"],
                          "scopes": [token["scope"]], "expires_at": token["expires_at"], "expires_in_days": days})

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        return planned  # every attribute replaces

    def delete(self, ctx: DeleteContext, current: State) -> None:
        token_id = current["id"].split("/", 1)[1]
        self.attempt(ctx.diagnostics, "revoke", lambda: self.api.delete(f"/tokens/{q(token_id)}"))


def _days(token: dict[str, Any]) -> int | None:
    if token["expires_at"] is None:
        return None
    return round(int(token["expires_at"] - token["created_at"]) / (DAY_SECONDS * 1000))


def _expired(expires_at: int | None) -> bool:
    return expires_at is not None and expires_at <= time.time() * 1000


RESOURCES = [Workspace, Team, TeamMember, WorkspaceMember, Grant, ServiceAccount, ApiToken]
