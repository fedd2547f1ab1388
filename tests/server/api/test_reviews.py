"""Protected registries, promotion requests with a second person's approval, comments and the audit
trail they leave, in authentication mode on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from tests.conftest import AuthWorld

API = "/api/v1"


def registered(client: httpx.Client, model: str = "dev.churn") -> int:
    run_id = client.post(f"{API}/runs", json={"experiment_name": "e"}).json()["run_id"]
    payload = b"weights"
    client.put(f"{API}/runs/{run_id}/artifacts", params={"path": "models/m/w.bin"}, content=payload)
    manifest = {"flavor": "pyfunc", "files": {"w.bin": {"sha256": hashlib.sha256(payload).hexdigest(),
                                                        "size": len(payload)}}}
    logged = client.post(f"{API}/runs/{run_id}/logged-models",
                         json={"name": "m", "artifact_path": "models/m", "manifest": manifest}).json()
    version = client.post(f"{API}/models/{model}/versions", json={"source": logged["id"]})
    assert version.status_code == 201, version.text
    return int(version.json()["version"])


@pytest.fixture
def people(world: AuthWorld) -> dict[str, httpx.Client]:
    names = {"olga": "owner", "mia": "maintainer", "max": "maintainer", "eddie": "editor", "vic": "viewer"}
    tokens = {name: world.user(name) for name in names}
    world.workspace("team", names, require_approval=True)
    return {name: world.client(token, "team") for name, token in tokens.items()}


def test_promotion_into_protected_registry_needs_a_second_persons_approval(people: dict[str, httpx.Client]) -> None:
    mia, max_, eddie, olga = people["mia"], people["max"], people["eddie"], people["olga"]
    registered(eddie)
    direct = mia.post(f"{API}/models/dev.churn/versions/1/promote", json={"to": "prod.churn"})
    assert direct.status_code == 403 and "request_promotion" in direct.json()["message"]
    assert eddie.post(f"{API}/models/prod.churn/versions", json={"source": "x"}).status_code == 403
    request = eddie.post(f"{API}/promotion-requests", json={"model": "dev.churn", "version": 1, "to": "prod.churn",
                                                            "aliases": ["champion"], "comment": "beats v0 by 3%"})
    assert request.status_code == 201, request.text
    request_id = request.json()["id"]
    again = eddie.post(f"{API}/promotion-requests", json={"model": "dev.churn", "version": 1, "to": "prod.churn"})
    assert again.status_code == 409
    assert eddie.post(f"{API}/promotion-requests/{request_id}/approve", json={}).status_code == 403  # own request
    assert people["vic"].post(f"{API}/promotion-requests/{request_id}/approve", json={}).status_code == 403
    approved = max_.post(f"{API}/promotion-requests/{request_id}/approve", json={"comment": "checked the eval"})
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert (body["status"], body["decided_by"], body["result_version"]) == ("approved", "max", 1)
    assert max_.post(f"{API}/promotion-requests/{request_id}/approve", json={}).status_code == 409  # not pending
    prod = mia.get(f"{API}/models/prod.churn/aliases/champion").json()
    assert (prod["version"], prod["created_by"]) == (1, "max")
    assert prod["source"]["model"] == "dev.churn"
    # the audit log keeps the request, the decision and the result
    log = olga.get(f"{API}/events", params={"since": "1h"}).json()["events"]
    actions = [e["action"] for e in log]
    for action in ("promotion.request", "model_version.promote", "alias.move", "promotion.approve"):
        assert action in actions
    decision = next(e for e in log if e["action"] == "promotion.approve")
    assert decision["actor"] == "max" and decision["after"]["requested_by"] == "eddie"
    assert decision["after"]["result"] == "prod.churn/1" and decision["after"]["comment"] == "checked the eval"
    assert [e["action"] for e in olga.get(f"{API}/events", params={"action": "promotion.*"}).json()["events"]] == [
        "promotion.request", "promotion.approve"]


def test_reject_needs_a_comment_and_the_right_role(people: dict[str, httpx.Client]) -> None:
    registered(people["eddie"])
    request_id = people["eddie"].post(f"{API}/promotion-requests", json={
        "model": "dev.churn", "version": 1, "to": "prod.churn"}).json()["id"]
    assert people["mia"].post(f"{API}/promotion-requests/{request_id}/reject", json={}).status_code == 400
    rejected = people["mia"].post(f"{API}/promotion-requests/{request_id}/reject", json={"comment": "no eval"})
    assert rejected.json()["status"] == "rejected"
    assert people["max"].post(f"{API}/promotion-requests/{request_id}/approve", json={}).status_code == 409
    assert people["mia"].get(f"{API}/models/prod.churn").status_code == 404
    assert [r["status"] for r in people["vic"].get(f"{API}/promotion-requests").json()["requests"]] == ["rejected"]
    assert people["vic"].get(f"{API}/promotion-requests", params={"status": "odd"}).status_code == 400


def test_protected_registry_aliases_need_a_maintainer(world: AuthWorld, people: dict[str, httpx.Client]) -> None:
    olga = people["olga"]
    assert olga.patch(f"{API}/workspaces/team", json={"require_approval": False}).status_code == 200
    registered(people["eddie"])
    assert people["eddie"].post(f"{API}/models/dev.churn/versions/1/promote", json={"to": "prod.churn"}).status_code \
        == 403
    assert people["mia"].post(f"{API}/models/dev.churn/versions/1/promote", json={"to": "prod.churn"}).status_code \
        == 201
    assert people["eddie"].put(f"{API}/models/prod.churn/aliases/live", json={"version": 1}).status_code == 403
    assert people["mia"].put(f"{API}/models/prod.churn/aliases/live", json={"version": 1}).status_code == 200


def test_a_grant_on_one_registry_raises_the_role_there_only(world: AuthWorld,
                                                            people: dict[str, httpx.Client]) -> None:
    olga, eddie = people["olga"], people["eddie"]
    assert olga.patch(f"{API}/workspaces/team", json={"require_approval": False}).status_code == 200
    assert olga.post(f"{API}/registries", json={"name": "staging"}).status_code == 201
    registered(eddie)
    grant = olga.post(f"{API}/workspaces/team/grants", json={"user": "eddie", "resource_type": "registry",
                                                               "resource": "staging", "role": "maintainer"})
    assert grant.status_code == 201, grant.text
    assert eddie.post(f"{API}/models/dev.churn/versions/1/promote", json={"to": "staging.churn"}).status_code == 201
    assert eddie.put(f"{API}/models/staging.churn/aliases/live", json={"version": 1}).status_code == 200
    assert eddie.put(f"{API}/models/dev.churn/aliases/live", json={"version": 1}).status_code == 403
    assert eddie.post(f"{API}/models/dev.churn/versions/1/promote", json={"to": "prod.churn"}).status_code == 403
    assert olga.delete(f"{API}/workspaces/team/grants/{grant.json()['id']}").status_code == 200
    assert eddie.put(f"{API}/models/staging.churn/aliases/live", json={"version": 1}).status_code == 403
    not_member = olga.post(f"{API}/workspaces/team/grants", json={"user": "root", "resource_type": "registry",
                                                                    "resource": "staging", "role": "editor"})
    assert (not_member.status_code, not_member.json()["field"]) == (404, "user")  # no user of that name


def test_a_grant_on_one_experiment(world: AuthWorld, people: dict[str, httpx.Client]) -> None:
    olga, vic = people["olga"], people["vic"]
    olga.post(f"{API}/experiments", json={"name": "open"})
    olga.post(f"{API}/experiments", json={"name": "closed"})
    assert olga.post(f"{API}/workspaces/team/grants", json={"user": "vic", "resource_type": "experiment",
                                                             "resource": "open", "role": "editor"}).status_code == 201
    assert vic.post(f"{API}/runs", json={"experiment_name": "open"}).status_code == 201
    assert vic.post(f"{API}/runs", json={"experiment_name": "closed"}).status_code == 403
    assert vic.post(f"{API}/experiments", json={"name": "new"}).status_code == 403
    assert sorted(e["name"] for e in olga.get(f"{API}/experiments").json()["experiments"]) == ["closed", "open"]


def test_comments_on_runs_and_versions(people: dict[str, httpx.Client]) -> None:
    eddie, mia, vic = people["eddie"], people["mia"], people["vic"]
    registered(eddie)
    run_id = eddie.post(f"{API}/runs", json={"experiment_name": "e"}).json()["run_id"]
    note = eddie.post(f"{API}/runs/{run_id}/comments", json={"text": "lr too high?"})
    assert note.status_code == 201 and note.json()["author"] == "eddie"
    assert vic.post(f"{API}/runs/{run_id}/comments", json={"text": "hi"}).status_code == 403
    assert eddie.post(f"{API}/runs/{run_id}/comments", json={"text": "  "}).status_code == 400
    comment_id = note.json()["id"]
    assert mia.patch(f"{API}/comments/{comment_id}", json={"text": "mine now"}).status_code == 403
    assert eddie.patch(f"{API}/comments/{comment_id}", json={"text": "lr 0.1 too high?"}).json()["text"] == \
        "lr 0.1 too high?"
    on_version = mia.post(f"{API}/models/dev.churn/versions/1/comments", json={"text": "ship it"})
    assert on_version.status_code == 201
    assert [c["text"] for c in vic.get(f"{API}/models/dev.churn/versions/1/comments").json()["comments"]] == [
        "ship it"]
    assert eddie.delete(f"{API}/comments/{on_version.json()['id']}").status_code == 403
    assert mia.delete(f"{API}/comments/{comment_id}").status_code == 200  # maintainers may delete
    assert vic.get(f"{API}/runs/{run_id}/comments").json()["comments"] == []
    kept = vic.get(f"{API}/runs/{run_id}/comments", params={"include_deleted": True}).json()["comments"]
    assert kept[0]["deleted"] and kept[0]["text"] == ""
    edits = people["olga"].get(f"{API}/events", params={"action": "comment.*"}).json()["events"]
    assert [e["action"] for e in edits] == ["comment.create", "comment.edit", "comment.create", "comment.delete"]
    assert edits[1]["before"]["text"] == "lr too high?"


def test_local_mode_can_require_approval_and_approve_alone(api: httpx.Client) -> None:
    assert api.patch(f"{API}/workspaces/default", json={"require_approval": True}).status_code == 200
    registered(api)
    assert api.post(f"{API}/models/dev.churn/versions/1/promote", json={"to": "prod.churn"}).status_code == 403
    request_id = api.post(f"{API}/promotion-requests", json={"model": "dev.churn", "version": 1,
                                                               "to": "prod.churn"}).json()["id"]
    approved = api.post(f"{API}/promotion-requests/{request_id}/approve", json={})
    assert approved.status_code == 200 and approved.json()["result_version"] == 1


def test_a_requester_with_only_a_grant_can_cancel(world: AuthWorld, people: dict[str, httpx.Client]) -> None:
    olga, vic = people["olga"], people["vic"]
    registered(people["eddie"])
    assert olga.post(f"{API}/workspaces/team/grants", json={"user": "vic", "resource_type": "registry",
                                                             "resource": "prod", "role": "editor"}).status_code == 201
    request = vic.post(f"{API}/promotion-requests", json={"model": "dev.churn", "version": 1, "to": "prod.churn"})
    assert request.status_code == 201, request.text
    cancelled = vic.post(f"{API}/promotion-requests/{request.json()['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


def test_a_member_through_a_team_is_granted_through_the_team(world: AuthWorld,
                                                             people: dict[str, httpx.Client]) -> None:
    """A grant goes to a direct member (it dies with that membership): a user who belongs only through a
    team is refused one of their own; the team can hold it."""
    admin = world.client(world.user("root", admin=True))
    world.user("tess")
    admin.post(f"{API}/teams", json={"name": "ops"})
    admin.post(f"{API}/teams/ops/members", json={"user": "tess"})
    olga = people["olga"]
    assert olga.post(f"{API}/workspaces/team/members", json={"team": "ops", "role": "viewer"}).status_code == 201
    refused = olga.post(f"{API}/workspaces/team/grants", json={"user": "tess", "resource_type": "registry",
                                                                "resource": "prod", "role": "maintainer"})
    assert refused.status_code == 400 and "direct member" in refused.json()["message"], refused.text
    grant = olga.post(f"{API}/workspaces/team/grants", json={"team": "ops", "resource_type": "registry",
                                                              "resource": "prod", "role": "maintainer"})
    assert grant.status_code == 201, grant.text


def test_every_change_to_a_run_is_an_event(api: httpx.Client) -> None:
    run_id = api.post(f"{API}/runs", json={"experiment_name": "e", "tags": {"team": "a"}}).json()["run_id"]
    api.post(f"{API}/runs/{run_id}/batch", json={"params": {"lr": "0.1"}, "tags": {"stage": "x"}})
    api.post(f"{API}/runs/{run_id}/batch", json={"params": {"lr": "0.2"}})
    api.post(f"{API}/runs/{run_id}/tags", json={"note": "y"})
    api.post(f"{API}/runs/{run_id}/datasets", json={"name": "mnist", "digest": "d1"})
    api.post(f"{API}/runs/{run_id}/datasets", json={"name": "mnist", "digest": "d1"})  # the same again: no event
    log = [(e["action"], e["after"]) for e in api.get(f"{API}/events", params={"object_id": run_id}).json()["events"]]
    assert [a for a, _ in log] == ["run.create", "run.log_params", "run.set_tags", "run.params_changed",
                                   "run.set_tags", "run.log_dataset"]
    assert log[0][1]["tags"] == {"team": "a"} and log[3][1] == {"lr": "0.2"}
