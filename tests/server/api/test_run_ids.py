"""Client-chosen run ids leak nothing across workspaces (on SQLite and PostgreSQL): proposing an id another
workspace uses is answered exactly like proposing an unused one, and the run made works fully while
neither workspace sees the other's run."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from cairn.server.services.run_ids import workspace_tag
from tests.conftest import AuthWorld

API = "/api/v1"


@pytest.fixture
def pair(world: AuthWorld) -> tuple[httpx.Client, httpx.Client]:
    a_token, b_token = world.user("a-user"), world.user("b-user")
    world.workspace("alpha", {"a-user": "owner"})
    world.workspace("beta", {"b-user": "owner"})
    return world.client(a_token, "alpha"), world.client(b_token, "beta")


def shape(value: Any) -> Any:
    """The body's shape: its keys and the types of their values, all the way down."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def comparable(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("run_id", "experiment_id", "experiment_name")}


def test_a_run_id_of_another_workspace_answers_like_an_unused_one(
        pair: tuple[httpx.Client, httpx.Client]) -> None:
    a, b = pair
    theirs = b.post(f"{API}/runs", json={"run_id": uuid.uuid4().hex, "experiment_name": "secret",
                                          "tags": {"k": "v"}}).json()["run_id"]
    unused = uuid.uuid4().hex
    for extra in ({}, {"run_key": "k"}):
        same = {"name": "n", "start_time": 1, **extra}
        taken = a.post(f"{API}/runs", json={"run_id": theirs, "experiment_name": "e", **same})
        fresh = a.post(f"{API}/runs", json={"run_id": unused, "experiment_name": "f", **same})
        assert taken.status_code == fresh.status_code == 201, (taken.text, fresh.text)
        assert shape(taken.json()) == shape(fresh.json())
        assert comparable(taken.json()) == comparable(fresh.json())
        for answer in (taken.json(), fresh.json()):
            assert answer["run_id"].startswith(workspace_tag("alpha")) and answer["run_id"] != theirs
        unused = uuid.uuid4().hex
    resumed, missing = a.post(f"{API}/runs/{theirs}/resume"), a.post(f"{API}/runs/{unused}/resume")
    assert resumed.status_code == missing.status_code == 404
    assert shape(resumed.json()) == shape(missing.json())
    assert resumed.json()["message"].replace(theirs, unused) == missing.json()["message"]
    kept = b.get(f"{API}/runs/{theirs}").json()
    assert kept["experiment_name"] == "secret" and kept["tags"] == {"k": "v"}


def test_the_same_proposal_in_one_workspace_keeps_its_meaning(pair: tuple[httpx.Client, httpx.Client]) -> None:
    a, _ = pair
    proposed = uuid.uuid4().hex  # not of alpha's ids: stored under alpha's id for it, the same every time
    first = a.post(f"{API}/runs", json={"run_id": proposed, "experiment_name": "e"})
    again = a.post(f"{API}/runs", json={"run_id": proposed, "experiment_name": "e"})
    assert first.status_code == again.status_code == 201 and first.json()["run_id"] == again.json()["run_id"]
    stored = first.json()["run_id"]
    assert a.post(f"{API}/runs", json={"run_id": stored, "experiment_name": "e"}).json()["run_id"] == stored
    other = a.post(f"{API}/runs", json={"run_id": proposed, "experiment_name": "other"})
    assert other.status_code == 409 and other.json()["field"] == "run_id"
    own = workspace_tag("alpha") + uuid.uuid4().hex[:20]  # one of alpha's ids (as the SDK makes them) is kept
    assert a.post(f"{API}/runs", json={"run_id": own, "experiment_name": "e"}).json()["run_id"] == own


def test_both_workspaces_runs_work_and_stay_apart(pair: tuple[httpx.Client, httpx.Client]) -> None:
    a, b = pair
    theirs = b.post(f"{API}/runs", json={"run_id": uuid.uuid4().hex, "experiment_name": "e"}).json()["run_id"]
    mine = a.post(f"{API}/runs", json={"run_id": theirs, "experiment_name": "e"}).json()["run_id"]
    for client, run_id, value in ((a, mine, 0.1), (b, theirs, 0.9)):
        batch = {"metrics": [{"key": "loss", "steps": [0, 1], "values": [value, value / 2]}],
                 "params": {"lr": str(value)}, "tags": {"owner": run_id}}
        assert client.post(f"{API}/runs/{run_id}/batch", json=batch).status_code == 200
        assert client.put(f"{API}/runs/{run_id}/artifacts", params={"path": "out/w.bin"},
                          content=str(value).encode()).status_code == 201
        assert client.patch(f"{API}/runs/{run_id}", json={"status": "FINISHED"}).status_code == 200
    for client, run_id, other, value in ((a, mine, theirs, 0.1), (b, theirs, mine, 0.9)):
        run = client.get(f"{API}/runs/{run_id}").json()
        assert run["params"] == {"lr": str(value)} and run["metrics"]["loss"]["min"] == value / 2
        assert run["tags"] == {"owner": run_id} and run["status"] == "FINISHED"
        history = client.get(f"{API}/runs/{run_id}/metrics/history", params={"key": "loss"}).json()
        assert history["values"] == [value, value / 2]
        content = client.get(f"{API}/runs/{run_id}/artifacts/content", params={"path": "out/w.bin"})
        assert content.content == str(value).encode()
        found = client.post(f"{API}/runs/search", json={"experiment_names": ["e"], "filter": "params.lr != 'x'"})
        assert [r["run_id"] for r in found.json()["runs"]] == [run_id]
        assert client.get(f"{API}/runs/{other}").status_code == 404
        assert other not in client.get(f"{API}/events", params={"max_results": 1000}).text
