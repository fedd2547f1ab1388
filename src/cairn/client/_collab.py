"""Collaboration calls of ``cairn.Client``: workspaces and members, users and teams, API tokens,
promotion requests with approval, comments, and the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from cairn._wire import (  # re-exported: the answers this module declares
    Comment as Comment,
    Event as Event,
    PromotionRequest as PromotionRequest,
    Token as ListedToken,
    User as User,
    Workspace as Workspace,
)
from cairn.client._transport import WORKSPACE_HEADER, Transport


@dataclass(frozen=True)
class Member:
    kind: str  # user | team
    name: str
    role: str

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Member:
        return cls(d["kind"], d[d["kind"]], d["role"])


@dataclass(frozen=True)
class Token(ListedToken):
    """An API token. ``token`` holds the secret only in the answer to ``create_token``."""

    token: str | None = field(default=None, repr=False)


def duration_seconds(value: int | float | timedelta | str | None) -> int | None:
    """``expires_in``: seconds, a timedelta, a string like ``90d``/``12h``, or None / "never"."""
    if value is None or value == "never":
        return None
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    if isinstance(value, str):
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
        text = value.strip()
        if len(text) >= 2 and text[:-1].isdigit() and text[-1] in units:
            return int(text[:-1]) * units[text[-1]]
        raise ValueError(f"expires_in {value!r}: use seconds, a timedelta, or a string like 90d, 12h, 30m")
    return int(value)


def time_param(value: int | datetime | timedelta | str | None) -> str | None:
    """``since``/``until``: epoch ms, a datetime, a timedelta back from now, or a string ('7d', ISO-8601)."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return str(int((datetime.now().timestamp() - value.total_seconds()) * 1000))
    if isinstance(value, datetime):
        return str(int(value.timestamp() * 1000))
    return str(value)


def _segment(text: str) -> str:
    return quote(str(text), safe="")


class CollabMixin:
    _t: Transport

    # who am I ----------------------------------------------------------------------------------------
    def whoami(self) -> dict[str, Any]:
        return dict(self._t.request("GET", "/api/v1/auth/me"))

    # workspaces --------------------------------------------------------------------------------------
    def create_workspace(self, name: str, *, description: str = "", require_approval: bool = False) -> Workspace:
        """A new workspace with a ``dev`` registry and a protected ``prod`` one (server admins)."""
        body = {"name": name, "description": description, "require_approval": require_approval}
        return Workspace.from_json(self._t.request("POST", "/api/v1/workspaces", json=body))

    def list_workspaces(self) -> list[Workspace]:
        return [Workspace.from_json(w) for w in self._t.request("GET", "/api/v1/workspaces")["workspaces"]]

    def get_workspace(self, name: str) -> Workspace:
        return Workspace.from_json(self._t.request("GET", f"/api/v1/workspaces/{_segment(name)}"))

    def update_workspace(self, name: str, *, description: str | None = None,
                         require_approval: bool | None = None) -> Workspace:
        body = {k: v for k, v in {"description": description, "require_approval": require_approval}.items()
                if v is not None}
        return Workspace.from_json(self._t.request("PATCH", f"/api/v1/workspaces/{_segment(name)}", json=body))

    def delete_workspace(self, name: str) -> None:
        """Delete a workspace holding no active experiment or model (server admins); what was soft-deleted in it
        goes with it, its audit events stay as server-wide events."""
        self._t.request("DELETE", f"/api/v1/workspaces/{_segment(name)}")

    def add_member(self, workspace: str, user: str | None = None, role: str = "viewer", *,
                   team: str | None = None) -> Member:
        """Give a user (or, with ``team=``, a team) a role in ``workspace``: viewer, editor, maintainer, owner."""
        body = {"user": user, "team": team, "role": role}
        return Member.from_json(self._t.request("POST", f"/api/v1/workspaces/{_segment(workspace)}/members",
                                                json={k: v for k, v in body.items() if v is not None}))

    def set_member_role(self, workspace: str, user: str | None = None, role: str = "viewer", *,
                        team: str | None = None) -> Member:
        kind, name = ("teams", team) if team is not None else ("users", user)
        path = f"/api/v1/workspaces/{_segment(workspace)}/members/{kind}/{_segment(str(name))}"
        return Member.from_json(self._t.request("PATCH", path, json={"role": role}))

    def remove_member(self, workspace: str, user: str | None = None, *, team: str | None = None) -> None:
        kind, name = ("teams", team) if team is not None else ("users", user)
        self._t.request("DELETE", f"/api/v1/workspaces/{_segment(workspace)}/members/{kind}/{_segment(str(name))}")

    def list_members(self, workspace: str) -> list[Member]:
        data = self._t.request("GET", f"/api/v1/workspaces/{_segment(workspace)}/members")
        return [Member.from_json(m) for m in data["members"]]

    def grant(self, workspace: str, resource_type: str, resource: str, role: str, *, user: str | None = None,
              team: str | None = None) -> int:
        """Give a member a higher role on one experiment or registry; returns the grant's id."""
        body = {"resource_type": resource_type, "resource": resource, "role": role, "user": user, "team": team}
        data = self._t.request("POST", f"/api/v1/workspaces/{_segment(workspace)}/grants",
                               json={k: v for k, v in body.items() if v is not None})
        return int(data["id"])

    def list_grants(self, workspace: str) -> list[dict[str, Any]]:
        return list(self._t.request("GET", f"/api/v1/workspaces/{_segment(workspace)}/grants")["grants"])

    def revoke_grant(self, workspace: str, grant_id: int) -> None:
        self._t.request("DELETE", f"/api/v1/workspaces/{_segment(workspace)}/grants/{int(grant_id)}")

    # users and teams (server admins) -----------------------------------------------------------------
    def create_user(self, name: str, password: str | None = None, *, admin: bool = False, service: bool = False,
                    display_name: str = "", email: str = "") -> User:
        body = {"name": name, "password": password, "admin": admin, "service": service,
                "display_name": display_name, "email": email}
        return User.from_json(self._t.request("POST", "/api/v1/users", json=body))

    def list_users(self) -> list[User]:
        return [User.from_json(u) for u in self._t.request("GET", "/api/v1/users")["users"]]

    def delete_user(self, name: str) -> None:
        """Delete a user or service account with its tokens, memberships and grants (``update_user(name,
        disabled=True)`` keeps it instead)."""
        self._t.request("DELETE", f"/api/v1/users/{_segment(name)}")

    def update_user(self, name: str, **changes: Any) -> User:
        """Change ``admin``, ``disabled``, ``password``, ``display_name`` or ``email``."""
        return User.from_json(self._t.request("PATCH", f"/api/v1/users/{_segment(name)}", json=changes))

    def create_team(self, name: str, description: str = "") -> None:
        self._t.request("POST", "/api/v1/teams", json={"name": name, "description": description})

    def update_team(self, name: str, description: str) -> None:
        self._t.request("PATCH", f"/api/v1/teams/{_segment(name)}", json={"description": description})

    def delete_team(self, name: str) -> None:
        """Delete a team with its workspace memberships and grants; its users stay."""
        self._t.request("DELETE", f"/api/v1/teams/{_segment(name)}")

    def add_team_member(self, team: str, user: str) -> None:
        self._t.request("POST", f"/api/v1/teams/{_segment(team)}/members", json={"user": user})

    def remove_team_member(self, team: str, user: str) -> None:
        self._t.request("DELETE", f"/api/v1/teams/{_segment(team)}/members/{_segment(user)}")

    # tokens ------------------------------------------------------------------------------------------
    def create_token(self, name: str, *, scope: str = "write",
                     expires_in: int | float | timedelta | str | None = "90d", user: str | None = None) -> Token:
        """A new API token for you (or, for an admin, for ``user``). ``.token`` is the secret: it is shown
        this once and cannot be read again."""
        body = {"name": name, "scope": scope, "expires_in": duration_seconds(expires_in), "user": user}
        return Token.from_json(self._t.request("POST", "/api/v1/tokens", json=body))

    def list_tokens(self, user: str | None = None) -> list[Token]:
        params = {"user": user} if user else None
        return [Token.from_json(t) for t in self._t.request("GET", "/api/v1/tokens", params=params)["tokens"]]

    def revoke_token(self, token_id: str) -> None:
        """Revoke a token: it fails from its very next request, on every server process."""
        self._t.request("DELETE", f"/api/v1/tokens/{_segment(token_id)}")

    # audit -------------------------------------------------------------------------------------------
    def list_events(self, workspace: str | None = None, since: int | datetime | timedelta | str | None = None, *,
                    until: int | datetime | timedelta | str | None = None, actor: str | None = None,
                    action: str | None = None, object_type: str | None = None, object_id: str | None = None,
                    max_results: int | None = None) -> list[Event]:
        """The audit log of ``workspace`` (default: the client's), oldest first. Owners only.
        ``action`` may end in ``.*`` (``promotion.*``)."""
        return list(self.iter_events(workspace, since, until=until, actor=actor, action=action,
                                     object_type=object_type, object_id=object_id, max_results=max_results))

    def list_server_events(self, since: int | datetime | timedelta | str | None = None, *,
                           until: int | datetime | timedelta | str | None = None, actor: str | None = None,
                           action: str | None = None, max_results: int = 1000) -> list[Event]:
        """Server-wide events (sign-ins and their failures, users, teams, tokens). Server admins only."""
        params = {"since": time_param(since), "until": time_param(until), "actor": actor, "action": action,
                  "max_results": max_results}
        data = self._t.request("GET", "/api/v1/admin/events", params={k: v for k, v in params.items() if v is not None})
        return [Event.from_json(e) for e in data["events"]]

    def iter_events(self, workspace: str | None = None, since: int | datetime | timedelta | str | None = None, *,
                    until: int | datetime | timedelta | str | None = None, actor: str | None = None,
                    action: str | None = None, object_type: str | None = None, object_id: str | None = None,
                    max_results: int | None = None) -> Iterator[Event]:
        params: dict[str, Any] = {"since": time_param(since), "until": time_param(until), "actor": actor,
                                  "action": action, "object_type": object_type, "object_id": object_id,
                                  "max_results": 1000}
        params = {k: v for k, v in params.items() if v is not None}
        headers = {WORKSPACE_HEADER: workspace} if workspace else None
        count = 0
        while True:
            data = self._t.request("GET", "/api/v1/events", params=params, headers=headers)
            for event in data["events"]:
                if max_results is not None and count >= max_results:
                    return
                count += 1
                yield Event.from_json(event)
            if not data.get("next_page_token"):
                return
            params["page_token"] = data["next_page_token"]

    # promotion requests ------------------------------------------------------------------------------
    def request_promotion(self, name: str, version: int | str, to: str, *, aliases: list[str] | None = None,
                          comment: str = "") -> PromotionRequest:
        """Ask for version ``version`` of ``name`` to be promoted to ``to`` (e.g. ``prod.mnist``); another
        maintainer approves it with ``approve(request.id)``."""
        body = {"model": name, "version": version, "to": to, "aliases": list(aliases or []), "comment": comment}
        return PromotionRequest.from_json(self._t.request("POST", "/api/v1/promotion-requests", json=body))

    def list_promotion_requests(self, status: str | None = None) -> list[PromotionRequest]:
        params = {"status": status} if status else None
        data = self._t.request("GET", "/api/v1/promotion-requests", params=params)
        return [PromotionRequest.from_json(r) for r in data["requests"]]

    def get_promotion_request(self, request_id: int) -> PromotionRequest:
        return PromotionRequest.from_json(self._t.request("GET", f"/api/v1/promotion-requests/{int(request_id)}"))

    def approve(self, request_id: int, comment: str = "") -> PromotionRequest:
        """Approve a pending request (not your own) and carry out the promotion."""
        return PromotionRequest.from_json(self._t.request(
            "POST", f"/api/v1/promotion-requests/{int(request_id)}/approve", json={"comment": comment}))

    def reject(self, request_id: int, comment: str) -> PromotionRequest:
        return PromotionRequest.from_json(self._t.request(
            "POST", f"/api/v1/promotion-requests/{int(request_id)}/reject", json={"comment": comment}))

    def cancel_promotion_request(self, request_id: int) -> PromotionRequest:
        return PromotionRequest.from_json(self._t.request(
            "POST", f"/api/v1/promotion-requests/{int(request_id)}/cancel"))

    # comments ----------------------------------------------------------------------------------------
    def add_comment(self, target: Any = None, text: str | None = None, *, run_id: str | None = None,
                    model: str | None = None, version: int | str | None = None) -> Comment:
        """Comment on a run or a model version: ``add_comment(run_id, "text")``, ``add_comment(run, "text")``,
        ``add_comment(model_version, "text")`` or ``add_comment(text=..., model="dev.mnist", version=3)``."""
        if text is None:
            raise ValueError("text is required")
        path = self._comments_path(target, run_id, model, version)
        return Comment.from_json(self._t.request("POST", path, json={"text": text}))

    def list_comments(self, target: Any = None, *, run_id: str | None = None, model: str | None = None,
                      version: int | str | None = None, include_deleted: bool = False) -> list[Comment]:
        path = self._comments_path(target, run_id, model, version)
        data = self._t.request("GET", path, params={"include_deleted": include_deleted})
        return [Comment.from_json(c) for c in data["comments"]]

    def edit_comment(self, comment_id: int, text: str) -> Comment:
        return Comment.from_json(self._t.request("PATCH", f"/api/v1/comments/{int(comment_id)}", json={"text": text}))

    def delete_comment(self, comment_id: int) -> None:
        self._t.request("DELETE", f"/api/v1/comments/{int(comment_id)}")

    @staticmethod
    def _comments_path(target: Any, run_id: str | None, model: str | None, version: int | str | None) -> str:
        if target is not None:
            if isinstance(target, str):
                run_id = target
            elif hasattr(target, "version") and hasattr(target, "name") and not hasattr(target, "experiment_id"):
                model, version = target.name, target.version
            else:
                run_id = target.id
        if run_id is not None:
            return f"/api/v1/runs/{_segment(run_id)}/comments"
        if model is None or version is None:
            raise ValueError("name a run (run_id) or a model version (model and version)")
        return f"/api/v1/models/{_segment(model)}/versions/{_segment(str(version))}/comments"
