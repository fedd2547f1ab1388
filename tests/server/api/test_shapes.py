"""Every native answer matches the response model its route declares (what /openapi.json states): a seeded
workspace is walked through the whole native API (runs, experiments, models, versions, artifacts, reviews,
tokens, events...) and each 2xx JSON answer is validated, strictly, against its route's model. The answers
come from the fast ``*_out`` builders, so this is what keeps each builder and its shape together. SQLite and
PostgreSQL."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from cairn.server.api.routing import compile_index
from tests.conftest import AuthWorld

API = "/api/v1"
PASSWORD = "a long passphrase 42"
# answered only by a bucket store (direct uploads), or by the UI's session sign-in flow tested elsewhere
NOT_WALKED = {"POST /api/v1/runs/{run_id}/artifacts/uploads/{upload_id}/urls",
              "POST /api/v1/runs/{run_id}/artifacts/uploads/{upload_id}/complete",
              "DELETE /api/v1/runs/{run_id}/artifacts/uploads/{upload_id}"}


class ShapeChecker:
    """An httpx event hook: validates each 2xx JSON answer against its route's response model."""

    def __init__(self, app: Any) -> None:
        self.index = compile_index(app.routes)
        self.adapters: dict[Any, TypeAdapter[Any]] = {}
        self.checked: set[str] = set()
        self.wrong: list[str] = []

    def __call__(self, response: httpx.Response) -> None:
        request = response.request
        if not (200 <= response.status_code < 300 and request.url.path.startswith(API + "/")):
            return
        response.read()
        hit = self.index.find(request.method, request.url.path)
        assert hit is not None, request.url
        route = hit[0].route
        assert isinstance(route, APIRoute)
        self.checked.add(f"{request.method} {route.path}")
        if route.response_model is None:  # bytes or nothing: test_routes says which routes may
            assert not response.headers.get("content-type", "").startswith("application/json"), route.path
            return
        adapter = self.adapters.setdefault(route.response_model, TypeAdapter(route.response_model))
        try:
            adapter.validate_json(response.content, strict=True)
        except ValueError as exc:
            self.wrong.append(f"{request.method} {route.path}: {exc}")


@pytest.fixture
def checker(world: AuthWorld) -> ShapeChecker:
    return ShapeChecker(world.app)


def _client(world: AuthWorld, checker: ShapeChecker, token: str, workspace: str = "team", **kw: Any) -> httpx.Client:
    client = world.client(token, workspace, **kw)
    client.event_hooks["response"].append(checker)
    return client


def _seed_tracking(c: httpx.Client) -> tuple[str, int]:
    experiment = c.post(f"{API}/experiments", json={"name": "shapes", "tags": {"team": "a"}}).json()
    eid = experiment["experiment_id"]
    c.get(f"{API}/experiments")
    c.get(f"{API}/experiments/by-name", params={"name": "shapes"})
    c.get(f"{API}/experiments/{eid}")
    c.patch(f"{API}/experiments/{eid}", json={"description": "d"})
    c.post(f"{API}/experiments/{eid}/tags", json={"k": "v"})
    c.request("DELETE", f"{API}/experiments/{eid}/tags", params={"key": "k"})
    made = c.post(f"{API}/runs", json={"experiment_id": eid, "name": "r", "tags": {"t": "1"}})
    assert made.status_code == 201, made.text
    run_id = made.json()["run_id"]
    c.post(f"{API}/runs", json={"experiment_id": eid, "run_key": "k1"})
    c.post(f"{API}/runs", json={"experiment_id": eid, "run_key": "k1"})  # joined: 200
    c.post(f"{API}/runs/{run_id}/metrics/define", json={"key": "loss", "goal": "min"})
    batch = {"metrics": [{"key": "loss", "steps": [0, 1, 2], "values": [1.5, "NaN", 0.5], "timestamps": [1, 2, 3]},
                         {"key": "acc", "steps": [0, 1, 2], "values": [0.1, 0.2, 0.3], "timestamps": [1, 2, 3]}],
             "params": {"lr": "0.1"}, "tags": {"stage": "a"}}
    logged = c.post(f"{API}/runs/{run_id}/batch", json=batch)
    assert logged.status_code == 200, logged.text
    c.post(f"{API}/runs/{run_id}/batch", json={"params": {"lr": "0.2"}}, headers={"Idempotency-Key": "a"})
    c.post(f"{API}/runs/{run_id}/batch", json={"params": {"lr": "0.2"}}, headers={"Idempotency-Key": "a"})
    c.post(f"{API}/runs/{run_id}/datasets", json={"name": "train", "digest": "abc"})
    c.post(f"{API}/runs/{run_id}/tags", json={"x": "y"})
    c.request("DELETE", f"{API}/runs/{run_id}/tags", params={"key": "x"})
    c.get(f"{API}/runs/{run_id}")
    c.get(f"{API}/runs/{run_id}/params/history", params={"key": "lr"})
    c.get(f"{API}/runs/{run_id}/metrics/history", params={"key": "loss"})
    c.get(f"{API}/runs/{run_id}/metrics/buckets", params={"key": "loss", "buckets": 2})
    c.post(f"{API}/runs/search", json={"experiment_ids": [eid], "order_by": ["run_name"]})
    c.post(f"{API}/runs/search/check", json={"filter": "metrics.loss <"})
    c.post(f"{API}/runs/search/check", json={"filter": "metrics.loss < 1"})
    c.patch(f"{API}/runs/{run_id}", json={"status": "FINISHED", "end_time": 10})
    c.post(f"{API}/runs/{run_id}/resume")
    c.post(f"{API}/runs/{run_id}/comments", json={"text": "nice"})
    c.get(f"{API}/runs/{run_id}/comments")
    c.get(f"{API}/runs/{run_id}/compliance")
    return run_id, eid


def _seed_artifacts(c: httpx.Client, run_id: str) -> dict[str, Any]:
    payload = b"weights"
    c.put(f"{API}/runs/{run_id}/artifacts", params={"path": "models/m/w.bin"}, content=payload)
    files = b'{"files": [{"path": "a.txt", "size": 1}, {"path": "b/c.txt", "size": 2}]}\nabc'
    assert c.post(f"{API}/runs/{run_id}/artifacts/batch", content=files).status_code == 201
    c.get(f"{API}/runs/{run_id}/artifacts")
    c.get(f"{API}/runs/{run_id}/artifacts", params={"path": "b"})
    c.get(f"{API}/runs/{run_id}/artifacts/versions", params={"path": "a.txt"})
    c.get(f"{API}/runs/{run_id}/artifacts/content", params={"path": "a.txt"})
    upload = {"path": "big.bin", "size": 3, "digest": "sha256:" + hashlib.sha256(b"big").hexdigest()}
    assert c.post(f"{API}/runs/{run_id}/artifacts/uploads", json=upload).json() == {"mode": "proxy"}
    return {"flavor": "pyfunc", "files": {"w.bin": {"sha256": hashlib.sha256(payload).hexdigest(),
                                                    "size": len(payload)}}}


def _seed_registry(c: httpx.Client, run_id: str, eid: int, manifest: dict[str, Any]) -> None:
    logged = c.post(f"{API}/runs/{run_id}/logged-models",
                    json={"name": "m", "artifact_path": "models/m", "manifest": manifest}).json()
    c.get(f"{API}/logged-models/{logged['id']}")
    c.get(f"{API}/runs/{run_id}/logged-models")
    alone = c.post(f"{API}/experiments/{eid}/logged-models", json={"name": "solo", "manifest": manifest}).json()
    c.put(f"{API}/logged-models/{alone['id']}/files", params={"path": "w.bin"}, content=b"weights")
    c.get(f"{API}/registries")
    c.post(f"{API}/registries", json={"name": "staging"})
    c.patch(f"{API}/registries/staging", json={"description": "s"})
    c.post(f"{API}/registries/dev/reset")
    c.post(f"{API}/models", json={"name": "dev.churn", "tags": {"a": "b"}})
    c.get(f"{API}/models")
    c.patch(f"{API}/models/dev.churn", json={"description": "d"})
    c.post(f"{API}/models/dev.churn/tags", json={"k": "v"})
    c.request("DELETE", f"{API}/models/dev.churn/tags", params={"key": "k"})
    made = c.post(f"{API}/models/dev.churn/versions", json={"source": logged["id"], "aliases": ["champion"]})
    assert made.status_code == 201, made.text
    c.post(f"{API}/models/dev.churn/versions", json={"source": logged["id"]})
    version = f"{API}/models/dev.churn/versions/1"
    c.get(f"{API}/models/dev.churn")
    c.get(f"{API}/models/dev.churn/versions")
    c.get(version)
    c.patch(version, json={"description": "first"})
    c.post(f"{version}/tags", json={"k": "v"})
    c.request("DELETE", f"{version}/tags", params={"key": "k"})
    c.get(f"{version}/files/content", params={"path": "w.bin"})
    c.get(f"{version}/compliance")
    c.put(f"{API}/models/dev.churn/aliases/champion", json={"version": 2, "reason": "better"})
    c.get(f"{API}/models/dev.churn/aliases/champion")
    c.get(f"{API}/models/dev.churn/aliases/champion/history")
    c.post(f"{API}/models/dev.churn/aliases/champion/rollback")
    c.post(f"{version}/comments", json={"text": "ok"})
    comment = c.get(f"{version}/comments").json()["comments"][0]["id"]
    c.patch(f"{API}/comments/{comment}", json={"text": "fine"})
    c.request("DELETE", f"{API}/comments/{comment}")
    c.get(f"{version}/comments", params={"include_deleted": True})
    promoted = c.post(f"{version}/promote", json={"to": "staging.churn", "aliases": ["live"]})
    assert promoted.status_code == 201, promoted.text
    c.get(f"{API}/models/staging.churn/versions/1")  # has a source
    bundle = c.get(f"{version}/export")
    assert c.post(f"{API}/models/dev.other/versions/import", content=bundle.content).status_code == 201
    c.request("DELETE", f"{API}/models/dev.churn/aliases/champion")
    c.request("DELETE", f"{API}/models/dev.churn/versions/2")
    c.post(f"{API}/models/dev.churn/versions/2/restore")


def _seed_reviews(owner: httpx.Client, editor: httpx.Client) -> None:
    asked = editor.post(f"{API}/promotion-requests", json={"model": "dev.churn", "version": 1, "to": "prod.churn"})
    assert asked.status_code == 201, asked.text
    editor.get(f"{API}/promotion-requests")
    editor.get(f"{API}/promotion-requests/{asked.json()['id']}")
    owner.post(f"{API}/promotion-requests/{asked.json()['id']}/approve", json={"comment": "ok"})
    again = editor.post(f"{API}/promotion-requests", json={"model": "dev.churn", "version": 2, "to": "prod.churn"})
    owner.post(f"{API}/promotion-requests/{again.json()['id']}/reject", json={"comment": "no eval"})
    third = editor.post(f"{API}/promotion-requests", json={"model": "dev.churn", "version": 2, "to": "prod.other"})
    editor.post(f"{API}/promotion-requests/{third.json()['id']}/cancel")


def _seed_accounts(world: AuthWorld, admin: httpx.Client, checker: ShapeChecker) -> None:
    admin.get(f"{API}/auth/me")
    admin.get(f"{API}/auth/session")
    made = admin.post(f"{API}/tokens", json={"name": "ci", "scope": "read"}).json()
    admin.get(f"{API}/tokens")
    admin.request("DELETE", f"{API}/tokens/{made['id']}")
    admin.post(f"{API}/users", json={"name": "bob", "service": True})
    admin.get(f"{API}/users")
    admin.get(f"{API}/users/bob")
    admin.patch(f"{API}/users/bob", json={"display_name": "Bob"})
    admin.post(f"{API}/users/bob/unlock")
    admin.post(f"{API}/teams", json={"name": "ops"})
    admin.post(f"{API}/teams/ops/members", json={"user": "bob"})
    admin.get(f"{API}/teams")
    admin.get(f"{API}/teams/ops")
    admin.patch(f"{API}/teams/ops", json={"description": "o"})
    admin.get(f"{API}/workspaces")
    admin.post(f"{API}/workspaces", json={"name": "spare"})
    admin.get(f"{API}/workspaces/team")
    admin.patch(f"{API}/workspaces/team", json={"description": "t"})
    admin.post(f"{API}/workspaces/team/members", json={"team": "ops", "role": "viewer"})
    admin.post(f"{API}/workspaces/team/members", json={"user": "bob", "role": "viewer"})
    admin.patch(f"{API}/workspaces/team/members/teams/ops", json={"role": "editor"})
    admin.get(f"{API}/workspaces/team/members")
    grant = admin.post(f"{API}/workspaces/team/grants", json={"user": "bob", "resource_type": "registry",
                                                               "resource": "dev", "role": "editor"}).json()
    admin.get(f"{API}/workspaces/team/grants")
    admin.request("DELETE", f"{API}/workspaces/team/grants/{grant['id']}")
    admin.request("DELETE", f"{API}/workspaces/team/members/teams/ops")
    admin.request("DELETE", f"{API}/workspaces/team/members/users/bob")
    admin.request("DELETE", f"{API}/teams/ops/members/bob")
    admin.request("DELETE", f"{API}/teams/ops")
    admin.request("DELETE", f"{API}/users/bob")
    admin.request("DELETE", f"{API}/workspaces/spare")
    admin.get(f"{API}/events", params={"max_results": 2})
    admin.get(f"{API}/admin/events")
    browser = _client(world, checker, "", "team", https=True)
    signed_in = browser.post(f"{API}/auth/login", json={"username": "carol", "password": PASSWORD})
    assert signed_in.status_code == 200, signed_in.text
    csrf = {"X-CSRF-Token": signed_in.json()["csrf_token"]}
    browser.get(f"{API}/auth/session")
    browser.get(f"{API}/auth/me")
    changed = browser.post(f"{API}/auth/password", json={"old_password": PASSWORD, "new_password": PASSWORD + "!"},
                           headers=csrf)
    assert changed.status_code == 200, changed.text
    signed_in = browser.post(f"{API}/auth/login", json={"username": "carol", "password": PASSWORD + "!"})
    browser.post(f"{API}/auth/logout", headers={"X-CSRF-Token": signed_in.json()["csrf_token"]})
    browser.get(f"{API}/auth/session")


def _seed_removal(c: httpx.Client, run_id: str, eid: int) -> None:
    c.request("DELETE", f"{API}/runs/{run_id}")
    c.post(f"{API}/runs/{run_id}/restore")
    c.request("DELETE", f"{API}/models/dev.churn")
    c.post(f"{API}/models/dev.churn/restore")
    c.request("DELETE", f"{API}/models/dev.other")
    c.request("DELETE", f"{API}/models/staging.churn")
    c.request("DELETE", f"{API}/registries/staging")
    c.put(f"{API}/conventions", json={"mode": "warn", "preset": "minimal"})
    c.get(f"{API}/conventions/rules")
    c.get(f"{API}/conventions")
    c.put(f"{API}/conventions", json={"mode": "warn", "rules": {}, "experiment_id": eid})
    c.request("DELETE", f"{API}/conventions", params={"experiment_id": eid})
    c.request("DELETE", f"{API}/experiments/{eid}")
    c.post(f"{API}/experiments/{eid}/restore")


def test_every_answer_matches_its_declared_model(world: AuthWorld, checker: ShapeChecker) -> None:
    admin_token = world.user("root", admin=True)
    world.user("carol", password=PASSWORD)
    editor_token = world.user("eddie")
    world.workspace("team", {"root": "owner", "carol": "owner", "eddie": "editor"})
    owner, editor = _client(world, checker, admin_token), _client(world, checker, editor_token)
    run_id, eid = _seed_tracking(owner)
    _seed_registry(owner, run_id, eid, _seed_artifacts(owner, run_id))
    _seed_reviews(owner, editor)
    _seed_accounts(world, owner, checker)
    _seed_removal(owner, run_id, eid)
    assert checker.wrong == []
    declared = {f"{m} {c.path}" for c in world.app.routes if isinstance(c, APIRoute) and c.include_in_schema
                and c.path.startswith(API + "/") for m in c.methods}
    assert declared - checker.checked - NOT_WALKED == set()  # every native route answered at least once
