"""Joining runs over the native API: get-or-create by run key, resuming by id, on both stores."""

from __future__ import annotations

import threading
import uuid

import httpx

from cairn.server.services.run_ids import workspace_tag
from tests.conftest import AuthWorld


def keyed(api: httpx.Client, key: str, experiment: str = "pipe", **extra: object) -> httpx.Response:
    return api.post("/api/v1/runs", json={"experiment_name": experiment, "run_key": key, **extra})


def test_a_key_gets_or_creates_one_run(api: httpx.Client) -> None:
    first = keyed(api, "nightly-2026-12-02", name="nightly", tags={"a": "1"})
    assert first.status_code == 201, first.text
    assert first.json()["created"] is True and first.json()["run_key"] == "nightly-2026-12-02"
    again = keyed(api, "nightly-2026-12-02", name="ignored", tags={"b": "2"})
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["created"] is False and body["run_id"] == first.json()["run_id"]
    assert body["name"] == "nightly" and body["tags"] == {"a": "1"}  # joining changes nothing of the run
    other_experiment = keyed(api, "nightly-2026-12-02", experiment="other")
    assert other_experiment.status_code == 201 and other_experiment.json()["run_id"] != body["run_id"]
    assert keyed(api, "another").json()["run_id"] not in (body["run_id"], other_experiment.json()["run_id"])
    assert api.get(f"/api/v1/runs/{body['run_id']}").json()["run_key"] == "nightly-2026-12-02"


def test_joining_an_ended_run_resumes_it(api: httpx.Client) -> None:
    run_id = keyed(api, "k1").json()["run_id"]
    assert api.patch(f"/api/v1/runs/{run_id}", json={"status": "FAILED"}).status_code == 200
    joined = keyed(api, "k1").json()
    assert (joined["run_id"], joined["status"], joined["end_time"]) == (run_id, "RUNNING", None)
    logged = api.post(f"/api/v1/runs/{run_id}/batch", json={"params": {"retry": "1"}})
    assert logged.status_code == 200, logged.text


def test_a_deleted_keyed_run_is_not_joined(api: httpx.Client) -> None:
    run_id = keyed(api, "gone").json()["run_id"]
    assert api.delete(f"/api/v1/runs/{run_id}").status_code == 200
    answer = keyed(api, "gone")
    assert answer.status_code == 409 and "restore it or use another key" in answer.json()["message"]
    assert api.post(f"/api/v1/runs/{run_id}/restore").status_code == 200
    assert keyed(api, "gone").json()["run_id"] == run_id


def test_bad_keys_are_refused_and_create_nothing(api: httpx.Client) -> None:
    for bad in ("", "x" * 251, 5):
        answer = keyed(api, bad)  # type: ignore[arg-type]
        assert answer.status_code == 400, (bad, answer.text)
        assert "run_key" in answer.text
    names = [e["name"] for e in api.get("/api/v1/experiments").json()["experiments"]]
    assert "pipe" not in names  # not even the experiment the refused request named


def test_the_proposed_id_is_used_unless_another_run_holds_it(api: httpx.Client) -> None:
    proposed = workspace_tag("default") + uuid.uuid4().hex[:20]  # an id of the workspace, as the SDK makes them
    first = keyed(api, "k", run_id=proposed).json()
    assert first["run_id"] == proposed
    taken = keyed(api, "k2", run_id=proposed)  # another key, the same proposal: a fresh id
    assert taken.status_code == 201 and taken.json()["run_id"] != proposed
    assert keyed(api, "k", run_id=uuid.uuid4().hex).json()["run_id"] == proposed  # the key decides


def test_resume_by_id(api: httpx.Client) -> None:
    run_id = api.post("/api/v1/runs", json={"experiment_name": "e"}).json()["run_id"]
    running = api.post(f"/api/v1/runs/{run_id}/resume")
    assert running.status_code == 200 and running.json()["status"] == "RUNNING"
    api.patch(f"/api/v1/runs/{run_id}", json={"status": "FINISHED"})
    resumed = api.post(f"/api/v1/runs/{run_id}/resume").json()
    assert (resumed["status"], resumed["end_time"]) == ("RUNNING", None)
    missing = api.post(f"/api/v1/runs/{uuid.uuid4().hex}/resume")
    assert missing.status_code == 404
    api.delete(f"/api/v1/runs/{run_id}")
    assert api.post(f"/api/v1/runs/{run_id}/resume").status_code == 409


def test_threads_racing_for_one_key_get_one_run(api: httpx.Client) -> None:
    """The server-side race (several requests at once); processes racing are in tests/client."""
    ids: list[str] = []
    errors: list[str] = []
    barrier = threading.Barrier(8)

    def join() -> None:
        barrier.wait()
        answer = keyed(api, "race", experiment="race-exp")
        (ids if answer.status_code in (200, 201) else errors).append(answer.json().get("run_id") or answer.text)

    threads = [threading.Thread(target=join) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(ids) == 8 and len(set(ids)) == 1
    runs = api.post("/api/v1/runs/search", json={"experiment_names": ["race-exp"]}).json()["runs"]
    assert [r["run_id"] for r in runs] == ids[:1]


def test_joining_needs_the_right_to_create_runs(world: AuthWorld) -> None:
    admin = world.user("admin", admin=True)
    world.user("reader")
    world.user("writer")
    world.workspace("team", {"reader": "viewer", "writer": "editor"})
    made = world.client(admin, "team").post("/api/v1/runs", json={"experiment_name": "p", "run_key": "k"})
    assert made.status_code == 201, made.text
    run_id = made.json()["run_id"]
    reader = world.client(world.token("reader", "read"), "team")
    assert reader.post("/api/v1/runs", json={"experiment_name": "p", "run_key": "k"}).status_code == 403
    assert reader.post(f"/api/v1/runs/{run_id}/resume").status_code == 403
    writer = world.client(world.token("writer", "write"), "team")
    assert writer.post("/api/v1/runs", json={"experiment_name": "p", "run_key": "k"}).json()["run_id"] == run_id
    outsider = world.client(world.token("writer", "write"), "default")
    assert outsider.post(f"/api/v1/runs/{run_id}/resume").status_code == 404  # not a member: no such workspace
