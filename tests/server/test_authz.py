"""The role matrix: every endpoint, called as each role with a token, is allowed or refused exactly as
the permission table in cairn.server.authz says; read tokens are refused every change. Runs on SQLite
and PostgreSQL, in authentication mode."""

from __future__ import annotations

import re
from typing import Any

import pytest

from cairn.server.authz import PERMISSIONS, SCOPE_RANK, at_least
from tests.conftest import AuthWorld, all_routes, declared_actions

PATH_VALUES = {"run_id": "0" * 32, "experiment_id": "999999", "name": "dev.nothing", "version": "1",
               "alias": "champion", "workspace": "team", "kind": "users", "grant_id": "999999",
               "request_id": "999999", "comment_id": "999999", "token_id": "nope", "user": "nobody",
               "team": "nobody", "rest": "a/b", "model_id": "m-" + "0" * 32, "tag_key": "k",
               "artifact_path": f"1/{'0' * 32}/artifacts/x.txt", "upload_id": "0" * 32}
QUERY = {"path": "x.txt", "key": "k", "name": "nothing"}
ROLES = ["viewer", "editor", "maintainer", "owner"]


def endpoints(app: Any) -> list[tuple[str, str, str]]:
    """(method, concrete path, action) for every route that declares an action."""
    found = []
    for route_path, methods, dependant in all_routes(app):
        actions = declared_actions(dependant)
        if not actions:
            continue
        path = re.sub(r"\{(\w+)(?::path)?\}", lambda m: PATH_VALUES[m.group(1)], route_path)
        found.extend((method, path, actions[0]) for method in sorted(methods))
    return found


def call(client: Any, method: str, path: str) -> Any:
    body = None if method in ("GET", "DELETE") else {}
    return client.request(method, path, params=QUERY, json=body)


def expected_allowed(role: str, action: str, scope: str = "write") -> bool:
    permission = PERMISSIONS[action]
    if permission.public:
        return True
    if SCOPE_RANK[scope] < SCOPE_RANK[permission.scope]:
        return False
    if permission.admin:
        return role == "admin"
    return role == "admin" or at_least(role, permission.role)


@pytest.fixture
def team(world: AuthWorld) -> dict[str, str]:
    """A token per role in workspace 'team', and an admin's."""
    tokens = {role: world.user(f"{role}-user") for role in ROLES}
    tokens["admin"] = world.user("root", admin=True)
    world.workspace("team", {f"{role}-user": role for role in ROLES})
    return tokens


@pytest.mark.parametrize("role", [*ROLES, "admin"])
def test_every_endpoint_allows_or_refuses_each_role_as_the_table_says(world: AuthWorld, team: dict[str, str],
                                                                      role: str) -> None:
    client = world.client(team[role], "team")
    routes = endpoints(world.app)
    assert len(routes) > 60
    wrong = []
    for method, path, action in routes:
        response = call(client, method, path)
        allowed = expected_allowed(role, action, "admin" if role == "admin" else "write")
        if allowed and response.status_code in (401, 403):
            wrong.append(f"{role} refused {method} {path} ({action}): {response.status_code} {response.text[:120]}")
        if not allowed and response.status_code != 403:
            wrong.append(f"{role} not refused {method} {path} ({action}): {response.status_code}")
    assert wrong == []


def test_spot_checks_of_the_table(world: AuthWorld, team: dict[str, str]) -> None:
    """A few rules written out by hand, so the matrix is not only checked against itself."""
    viewer, editor, maintainer, owner = (world.client(team[r], "team") for r in ROLES)
    assert viewer.post("/api/v1/runs", json={"experiment_name": "e"}).status_code == 403
    run = editor.post("/api/v1/runs", json={"experiment_name": "e"})
    assert run.status_code == 201
    run_id = run.json()["run_id"]
    assert editor.delete(f"/api/v1/runs/{run_id}").status_code == 403
    assert maintainer.delete(f"/api/v1/runs/{run_id}").status_code == 200
    assert editor.post("/api/v1/registries", json={"name": "staging"}).status_code == 403
    assert maintainer.post("/api/v1/registries", json={"name": "staging"}).status_code == 201
    assert maintainer.patch("/api/v1/workspaces/team", json={"require_approval": True}).status_code == 403
    assert owner.patch("/api/v1/workspaces/team", json={"require_approval": True}).status_code == 200
    assert maintainer.get("/api/v1/events").status_code == 403
    assert owner.get("/api/v1/events").status_code == 200
    assert owner.post("/api/v1/users", json={"name": "x", "service": True}).status_code == 403
    assert viewer.get(f"/api/v1/runs/{run_id}").status_code == 200


def test_read_tokens_are_refused_every_change(world: AuthWorld, team: dict[str, str]) -> None:
    client = world.client(world.token("owner-user", "read"), "team")
    wrong = []
    for method, path, action in endpoints(world.app):
        response = call(client, method, path)
        if expected_allowed("owner", action, "read") == (response.status_code == 403):
            wrong.append(f"{method} {path} ({action}): {response.status_code}")
    assert wrong == []
    refused = client.post("/api/v1/runs", json={"experiment_name": "e"})
    assert refused.status_code == 403
    assert "scope is read" in refused.json()["message"]


def test_without_credentials_only_public_routes_answer(world: AuthWorld, team: dict[str, str]) -> None:
    client = world.client(None, "team")
    wrong = []
    for method, path, action in endpoints(world.app):
        status = call(client, method, path).status_code
        if (status == 401) == PERMISSIONS[action].public:
            wrong.append(f"{method} {path} ({action}): {status}")
    assert wrong == []
    answer = client.get("/api/v1/experiments")
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")  # Basic would make browsers prompt and cache
    assert answer.json()["error_code"] == "UNAUTHENTICATED"
