"""Deleting workspaces, teams, users and registries, and resetting the default registries, in
authentication mode on SQLite and PostgreSQL: who may, what refuses, what goes with what, and that the
server is left as it was (the OpenTofu provider's destroy relies on it)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import AuthWorld

API = "/api/v1"


@pytest.fixture
def people(world: AuthWorld) -> dict[str, httpx.Client]:
    """An admin, and alice who owns workspace 'vision' (no admin), bob a viewer there."""
    root = world.user("root", admin=True)
    alice, bob = world.user("alice"), world.user("bob")
    world.workspace("vision", {"alice": "owner", "bob": "viewer"})
    return {"root": world.client(root, "vision"), "alice": world.client(alice, "vision"),
            "bob": world.client(bob, "vision")}


def ok(response: httpx.Response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def refused(response: httpx.Response, status: int, field: str | None = None) -> str:
    assert response.status_code == status, response.text
    if field is not None:
        assert response.json().get("field") == field, response.text
    return str(response.json()["message"])


def test_an_owner_manages_registries_without_being_admin(people: dict[str, httpx.Client]) -> None:
    alice, bob = people["alice"], people["bob"]
    prod = ok(alice.patch(f"{API}/registries/prod", json={"protected": False, "description": "served"}))
    assert (prod["protected"], prod["description"], prod["default"]) == (False, "served", True)
    refused(bob.patch(f"{API}/registries/prod", json={"protected": True}), 403)
    reset = ok(alice.post(f"{API}/registries/prod/reset"))
    assert (reset["protected"], reset["description"]) == (True, "")
    assert ok(alice.post(f"{API}/registries/dev/reset"))["protected"] is False
    assert "reset it" in refused(alice.delete(f"{API}/registries/prod"), 409, "name")
    refused(alice.patch(f"{API}/registries/nowhere", json={"protected": True}), 404, "name")
    refused(alice.patch(f"{API}/registries/prod", json={"protected": "maybe"}), 400, "protected")

    ok(alice.post(f"{API}/registries", json={"name": "staging"}), 201)
    assert "delete it instead" in refused(alice.post(f"{API}/registries/staging/reset"), 409, "name")
    ok(alice.post(f"{API}/workspaces/vision/grants", json={"user": "bob", "resource_type": "registry",
                                                           "resource": "staging", "role": "maintainer"}), 201)
    ok(alice.post(f"{API}/models", json={"name": "staging.mnist"}), 201)
    assert "1 active models" in refused(alice.delete(f"{API}/registries/staging"), 409, "name")
    ok(alice.delete(f"{API}/models/staging.mnist"))
    refused(bob.delete(f"{API}/registries/staging"), 403)  # a grant on it does not cover deleting it
    ok(alice.delete(f"{API}/registries/staging"))
    assert [r["name"] for r in ok(alice.get(f"{API}/registries"))["registries"]] == ["dev", "prod"]
    assert ok(alice.get(f"{API}/workspaces/vision/grants"))["grants"] == []
    ok(alice.post(f"{API}/registries", json={"name": "staging"}), 201)  # the name is free again
    assert ok(alice.post(f"{API}/models", json={"name": "staging.mnist"}), 201)["latest_version"] is None
    actions = [e["action"] for e in ok(alice.get(f"{API}/events"))["events"]]
    assert {"registry.update", "registry.delete"} <= set(actions)


def test_deleting_a_workspace_takes_what_was_deleted_in_it_and_keeps_its_events(
        people: dict[str, httpx.Client]) -> None:
    root, alice = people["root"], people["alice"]
    refused(alice.delete(f"{API}/workspaces/vision"), 403)  # like creating one: admins only
    experiment = ok(alice.post(f"{API}/experiments", json={"name": "exp"}), 201)
    run = ok(alice.post(f"{API}/runs", json={"experiment_name": "exp"}), 201)["run_id"]
    ok(alice.post(f"{API}/runs/{run}/batch", json={"metrics": [{"key": "loss", "steps": [0, 1], "values": [1.0, 0.5]}],
                                                   "params": {"lr": "0.1"}, "tags": {"t": "v"}}))
    ok(alice.put(f"{API}/runs/{run}/artifacts", params={"path": "notes.txt"}, content=b"hello"), 201)
    ok(alice.post(f"{API}/runs/{run}/comments", json={"text": "looks good"}), 201)
    ok(alice.post(f"{API}/models", json={"name": "prod.mnist"}), 201)
    message = refused(root.delete(f"{API}/workspaces/vision"), 409, "workspace")
    assert "1 active experiments" in message and "1 active models" in message
    ok(alice.delete(f"{API}/experiments/{experiment['experiment_id']}"))
    ok(alice.delete(f"{API}/models/prod.mnist"))
    ok(root.delete(f"{API}/workspaces/vision"))
    refused(alice.get(f"{API}/workspaces/vision"), 404, "workspace")
    refused(root.get(f"{API}/workspaces/vision"), 404, "workspace")
    refused(root.delete(f"{API}/workspaces/vision"), 404, "workspace")
    refused(root.delete(f"{API}/workspaces/default"), 409, "workspace")
    server_events = ok(root.get(f"{API}/admin/events", params={"max_results": 1000}))["events"]
    assert "workspace.delete" in [e["action"] for e in server_events]
    assert "experiment.create" in [e["action"] for e in server_events]  # the workspace's log, kept server-wide

    ok(root.post(f"{API}/workspaces", json={"name": "vision"}), 201)  # made again: empty, with dev and prod
    again = people["root"]
    assert ok(again.get(f"{API}/experiments"))["experiments"] == []
    assert [r["name"] for r in ok(again.get(f"{API}/registries"))["registries"]] == ["dev", "prod"]
    assert ok(again.get(f"{API}/workspaces/vision/members"))["members"] == []


def test_teams_read_update_and_delete(people: dict[str, httpx.Client]) -> None:
    root, alice = people["root"], people["alice"]
    ok(root.post(f"{API}/teams", json={"name": "vision-ml"}), 201)
    ok(root.post(f"{API}/teams/vision-ml/members", json={"user": "bob"}), 201)
    assert ok(root.get(f"{API}/teams/vision-ml"))["members"] == ["bob"]
    assert ok(root.patch(f"{API}/teams/vision-ml", json={"description": "the vision team"}))["description"] \
        == "the vision team"
    refused(alice.patch(f"{API}/teams/vision-ml", json={"description": "x"}), 403)
    refused(root.get(f"{API}/teams/nobody"), 404, "team")
    ok(alice.post(f"{API}/workspaces/vision/members", json={"team": "vision-ml", "role": "owner"}), 201)
    ok(alice.delete(f"{API}/workspaces/vision/members/users/alice"))  # the team is now the only owner
    assert "last owner of workspace vision" in refused(root.delete(f"{API}/teams/vision-ml"), 409, "name")
    ok(root.post(f"{API}/workspaces/vision/members", json={"user": "alice", "role": "owner"}), 201)
    ok(root.delete(f"{API}/teams/vision-ml"))
    assert ok(root.get(f"{API}/teams"))["teams"] == []
    assert [m.get("team") for m in ok(root.get(f"{API}/workspaces/vision/members"))["members"]] == [None, None]
    refused(root.delete(f"{API}/teams/vision-ml"), 404, "name")


def test_deleting_a_service_account_ends_its_tokens_and_memberships(world: AuthWorld,
                                                                    people: dict[str, httpx.Client]) -> None:
    root, alice = people["root"], people["alice"]
    ok(root.post(f"{API}/users", json={"name": "vision-ci", "service": True}), 201)
    ok(alice.post(f"{API}/workspaces/vision/members", json={"user": "vision-ci", "role": "editor"}), 201)
    secret = ok(root.post(f"{API}/tokens", json={"name": "ci", "user": "vision-ci", "scope": "write"}), 201)["token"]
    ci = world.client(secret, "vision")
    ok(ci.get(f"{API}/experiments"))
    refused(alice.delete(f"{API}/users/vision-ci"), 403)
    ok(root.delete(f"{API}/users/vision-ci"))
    refused(ci.get(f"{API}/experiments"), 401)
    refused(root.get(f"{API}/users/vision-ci"), 404, "name")
    assert [m.get("user") for m in ok(alice.get(f"{API}/workspaces/vision/members"))["members"]] == ["alice", "bob"]
    ok(root.post(f"{API}/users", json={"name": "vision-ci", "service": True}), 201)  # the name is free again
    assert ok(root.get(f"{API}/tokens", params={"user": "vision-ci"}))["tokens"] == []

    assert "last owner of workspace vision" in refused(root.delete(f"{API}/users/alice"), 409, "name")
    assert "your own account" in refused(root.delete(f"{API}/users/root"), 409, "name")
    events = ok(root.get(f"{API}/admin/events", params={"action": "user.delete"}))["events"]
    assert [e["object_id"] for e in events] == ["vision-ci"]


def test_an_experiment_tag_can_be_deleted(people: dict[str, httpx.Client]) -> None:
    alice, bob = people["alice"], people["bob"]
    experiment = ok(alice.post(f"{API}/experiments", json={"name": "exp", "tags": {"a": "1", "b": "2"}}), 201)
    path = f"{API}/experiments/{experiment['experiment_id']}/tags"
    refused(bob.delete(path, params={"key": "a"}), 403)
    ok(alice.delete(path, params={"key": "a"}))
    refused(alice.delete(path, params={"key": "a"}), 404, "key")
    assert ok(alice.get(f"{API}/experiments/{experiment['experiment_id']}"))["tags"] == {"b": "2"}
