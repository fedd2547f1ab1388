"""Tenant isolation on one server, on SQLite and PostgreSQL: a user who is not a member of workspace
beta gets, for every object of beta, by any id, on every method, the same answer as for an object
that does not exist; listings, searches and counts never include beta's objects; bodies cannot
choose the workspace or the owner."""

from __future__ import annotations

import hashlib
import re

import httpx
import pytest

from tests.conftest import AuthWorld, all_routes, declared_actions

API = "/api/v1"


def populate(client: httpx.Client) -> dict[str, str]:
    """An experiment, a run with metrics, an artifact, a registered version with an alias, comments, a
    promotion request and a grant; returns their ids as path values."""
    run = client.post(f"{API}/runs", json={"experiment_name": "secret-exp"}).json()
    run_id = run["run_id"]
    batch = {"metrics": [{"key": "loss", "values": [0.5, 0.4], "steps": [0, 1]}], "params": {"lr": "0.1"}}
    assert client.post(f"{API}/runs/{run_id}/batch", json=batch).status_code == 200
    payload = b"secret-weights"
    assert client.put(f"{API}/runs/{run_id}/artifacts", params={"path": "models/m/w.bin"},
                      content=payload).status_code == 201
    manifest = {"flavor": "pyfunc", "files": {"w.bin": {"sha256": hashlib.sha256(payload).hexdigest(),
                                                        "size": len(payload)}}}
    logged = client.post(f"{API}/runs/{run_id}/logged-models",
                         json={"name": "m", "artifact_path": "models/m", "manifest": manifest})
    assert logged.status_code == 201, logged.text
    version = client.post(f"{API}/models/dev.secret/versions", json={"source": logged.json()["id"],
                                                                     "aliases": ["champion"]})
    assert version.status_code == 201, version.text
    comment = client.post(f"{API}/runs/{run_id}/comments", json={"text": "private note"})
    assert comment.status_code == 201, comment.text
    request = client.post(f"{API}/promotion-requests", json={"model": "dev.secret", "version": 1,
                                                              "to": "prod.secret"})
    assert request.status_code == 201, request.text
    grant = client.post(f"{API}/workspaces/beta/grants", json={"user": "b-user", "resource_type": "registry",
                                                                "resource": "prod", "role": "maintainer"})
    assert grant.status_code == 201, grant.text
    token = client.post(f"{API}/tokens", json={"name": "b-ci", "scope": "read"})
    return {"run_id": run_id, "experiment_id": str(run["experiment_id"]), "name": "dev.secret", "version": "1",
            "alias": "champion", "workspace": "beta", "kind": "users", "grant_id": str(grant.json()["id"]),
            "request_id": str(request.json()["id"]), "comment_id": str(comment.json()["id"]),
            "token_id": token.json()["id"], "user": "b-user", "team": "nobody", "rest": "a/b",
            "logged_model": logged.json()["id"], "model_id": f"m-{logged.json()['id']}", "tag_key": "k",
            "artifact_path": f"{run['experiment_id']}/{run_id}/artifacts/models/m/w.bin", "upload_id": "0" * 32}


MISSING = {"run_id": "f" * 32, "experiment_id": "999999", "name": "dev.nothing", "version": "1",
           "alias": "nothing", "workspace": "nowhere", "kind": "users", "grant_id": "999999",
           "request_id": "999999", "comment_id": "999999", "token_id": "0000000000000000", "user": "nobody",
           "team": "nobody", "rest": "a/b", "model_id": "m-" + "f" * 32, "tag_key": "k",
           "artifact_path": f"1/{'f' * 32}/artifacts/models/m/w.bin", "upload_id": "0" * 32}
QUERY = {"path": "models/m/w.bin", "key": "loss", "name": "secret-exp"}


@pytest.fixture
def tenants(world: AuthWorld) -> tuple[httpx.Client, httpx.Client, dict[str, str]]:
    a_token, b_token = world.user("a-user"), world.user("b-user")
    world.workspace("alpha", {"a-user": "owner"})
    world.workspace("beta", {"b-user": "owner"})
    b = world.client(b_token, "beta")
    return world.client(a_token, "alpha"), b, populate(b)


def fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)(?::path)?\}", lambda m: values[m.group(1)], path)


def answer(response: httpx.Response) -> tuple[int, str | None]:
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    return response.status_code, body.get("error_code") if isinstance(body, dict) else None


def beta_events(b: httpx.Client) -> int:
    return len(b.get(f"{API}/events", params={"max_results": 1000}).json()["events"])


def test_every_object_of_another_workspace_answers_like_a_missing_one(
        world: AuthWorld, tenants: tuple[httpx.Client, httpx.Client, dict[str, str]]) -> None:
    a, b, ids = tenants
    before = beta_events(b)
    leaks = []
    checked = 0
    for path, methods, dependant in all_routes(world.app):
        actions = declared_actions(dependant)
        if "{" not in path or not actions or actions[0].startswith("admin") or actions[0] == "public":
            continue
        for method in sorted(methods):
            body = None if method in ("GET", "DELETE") else {"text": "x", "role": "viewer", "tags": {},
                                                              "version": 1, "comment": "x"}
            for workspace in ("alpha", "beta"):
                headers = {"X-Cairn-Workspace": workspace}
                theirs = a.request(method, fill(path, ids), params=QUERY, json=body, headers=headers)
                missing = a.request(method, fill(path, MISSING), params=QUERY, json=body, headers=headers)
                checked += 1
                if answer(theirs) != answer(missing) or theirs.status_code in (200, 201):
                    leaks.append(f"{method} {path} as {workspace}: {answer(theirs)} vs missing {answer(missing)}")
                if method == "GET" and theirs.status_code != 404 and "{rest" not in path:
                    leaks.append(f"{method} {path} as {workspace}: {theirs.status_code}, not 404")
    assert checked > 100
    assert leaks == []
    assert beta_events(b) == before  # nothing was written in beta


def test_valid_writes_to_another_workspace_are_404(tenants: tuple[httpx.Client, httpx.Client, dict[str, str]]) -> None:
    a, b, ids = tenants
    run = f"{API}/runs/{ids['run_id']}"
    attempts = [
        a.patch(run, json={"status": "FINISHED"}),
        a.post(f"{run}/batch", json={"metrics": [{"key": "loss", "values": [9.9], "steps": [5]}]}),
        a.post(f"{run}/tags", json={"owned": "yes"}),
        a.put(f"{run}/artifacts", params={"path": "x.txt"}, content=b"x"),
        a.post(f"{run}/comments", json={"text": "hello"}),
        a.put(f"{API}/models/dev.secret/aliases/champion", json={"version": 1}),
        a.post(f"{API}/promotion-requests/{ids['request_id']}/approve", json={"comment": "ok"}),
        a.patch(f"{API}/comments/{ids['comment_id']}", json={"text": "edited"}),
        a.delete(f"{API}/experiments/{ids['experiment_id']}"),
        a.post(f"{API}/workspaces/beta/members", json={"user": "a-user", "role": "owner"}),
        a.delete(f"{API}/tokens/{ids['token_id']}"),
        a.post(f"{API}/models/dev.stolen/versions", json={"source": ids["logged_model"]}),
        a.post(f"{API}/models/dev.stolen/versions", json={"source": f"runs:/{ids['run_id']}/m"}),
    ]
    assert [r.status_code for r in attempts] == [404] * len(attempts)
    missing = a.post(f"{API}/models/dev.stolen/versions", json={"source": "0" * 32}).json()
    assert attempts[-2].json() == {**missing, "message": missing["message"].replace("0" * 32, ids["logged_model"])}
    assert b.get(run).json()["status"] == "RUNNING"
    assert [m["user"] for m in b.get(f"{API}/workspaces/beta/members").json()["members"]] == ["b-user"]


def test_listings_and_searches_never_include_another_workspace(
        tenants: tuple[httpx.Client, httpx.Client, dict[str, str]]) -> None:
    a, b, ids = tenants
    a.post(f"{API}/runs", json={"experiment_name": "mine"})
    assert [e["name"] for e in a.get(f"{API}/experiments").json()["experiments"]] == ["mine"]
    found = a.post(f"{API}/runs/search", json={"filter": "params.lr = '0.1'"}).json()
    assert found["runs"] == []
    assert a.post(f"{API}/runs/search", json={"experiment_ids": [int(ids["experiment_id"])]}).status_code == 404
    assert a.get(f"{API}/models").json()["models"] == []
    assert a.get(f"{API}/promotion-requests").json()["requests"] == []
    assert all(e["object_id"] != ids["run_id"] for e in a.get(f"{API}/events").json()["events"])
    assert [w["name"] for w in a.get(f"{API}/workspaces").json()["workspaces"]] == ["alpha"]
    assert [t["name"] for t in a.get(f"{API}/tokens").json()["tokens"]] == ["t-write"]
    assert len(b.post(f"{API}/runs/search", json={}).json()["runs"]) == 1


def test_bodies_cannot_choose_workspace_owner_or_admin(world: AuthWorld,
                                                       tenants: tuple[httpx.Client, httpx.Client, dict[str, str]]) -> None:
    a, _, _ = tenants
    for path, body in [(f"{API}/runs", {"experiment_name": "e", "workspace_id": 2}),
                       (f"{API}/experiments", {"name": "e2", "workspace": "beta"}),
                       (f"{API}/models", {"name": "dev.x", "owner": "b-user"}),
                       (f"{API}/workspaces/alpha/members", {"user": "a-user", "role": "owner", "admin": True})]:
        response = a.post(path, json=body)
        assert response.status_code == 400, (path, response.text)
    run = a.post(f"{API}/runs", json={"experiment_name": "e", "user": "b-user"}).json()
    assert run["user"] == "a-user"  # the run's user is whoever is signed in
    assert a.post(f"{API}/users", json={"name": "sneaky", "service": True, "admin": True}).status_code == 403
