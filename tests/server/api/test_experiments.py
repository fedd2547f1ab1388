"""Experiments over the native API."""

from __future__ import annotations

import httpx


def test_create_get_list_rename(api: httpx.Client) -> None:
    created = api.post("/api/v1/experiments", json={"name": "mnist", "description": "digits", "tags": {"t": "1"}})
    assert created.status_code == 201
    experiment_id = created.json()["experiment_id"]
    assert api.get(f"/api/v1/experiments/{experiment_id}").json()["tags"] == {"t": "1"}
    assert api.get("/api/v1/experiments/by-name", params={"name": "mnist"}).json()["experiment_id"] == experiment_id
    renamed = api.patch(f"/api/v1/experiments/{experiment_id}", json={"name": "digits"})
    assert renamed.json()["name"] == "digits"
    names = [e["name"] for e in api.get("/api/v1/experiments").json()["experiments"]]
    assert names == ["digits"]


def test_name_unique_per_workspace(api: httpx.Client) -> None:
    api.post("/api/v1/experiments", json={"name": "a"})
    duplicate = api.post("/api/v1/experiments", json={"name": "a"})
    assert duplicate.status_code == 409 and "already exists" in duplicate.json()["message"]


def test_soft_delete_and_restore(api: httpx.Client) -> None:
    experiment_id = api.post("/api/v1/experiments", json={"name": "gone"}).json()["experiment_id"]
    assert api.delete(f"/api/v1/experiments/{experiment_id}").status_code == 200
    assert api.get("/api/v1/experiments").json()["experiments"] == []
    listed = api.get("/api/v1/experiments", params={"include_deleted": True}).json()["experiments"]
    assert listed[0]["lifecycle"] == "deleted"
    refused = api.post("/api/v1/runs", json={"experiment_id": experiment_id})
    assert refused.status_code == 409
    assert api.post(f"/api/v1/experiments/{experiment_id}/restore").status_code == 200
    assert api.post("/api/v1/runs", json={"experiment_id": experiment_id}).status_code == 201


def test_run_counts_and_last_activity(api: httpx.Client) -> None:
    api.post("/api/v1/runs", json={"experiment_name": "counted"})
    api.post("/api/v1/runs", json={"experiment_name": "counted"})
    experiment = api.get("/api/v1/experiments/by-name", params={"name": "counted"}).json()
    assert experiment["run_count"] == 2 and experiment["last_activity"] is not None


def test_unknown_workspace_is_404(api: httpx.Client) -> None:
    response = api.get("/api/v1/experiments", headers={"X-Cairn-Workspace": "nope"})
    assert response.status_code == 404 and response.json()["field"] == "workspace"
