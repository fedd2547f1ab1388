"""Runs over the native API: summaries, param history, best-step snapshots, idempotency."""

from __future__ import annotations

import math
import uuid
from typing import Any

import httpx


def batch(api: httpx.Client, run_id: str, body: dict, key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return api.post(f"/api/v1/runs/{run_id}/batch", json=body, headers=headers)


def series(key: str, steps: list[int], values: list) -> dict:
    return {"key": key, "steps": steps, "values": values}


def test_create_and_read_run(api: httpx.Client) -> None:
    response = api.post("/api/v1/runs", json={"experiment_name": "mnist", "name": "baseline",
                                              "tags": {"framework": "sklearn"}})
    assert response.status_code == 201
    run = response.json()
    assert run["name"] == "baseline" and run["status"] == "RUNNING" and run["experiment_name"] == "mnist"
    again = api.get(f"/api/v1/runs/{run['run_id']}").json()
    assert again["tags"] == {"framework": "sklearn"}


def test_client_chosen_run_id_is_idempotent(api: httpx.Client) -> None:
    run_id = uuid.uuid4().hex
    first = api.post("/api/v1/runs", json={"run_id": run_id, "experiment_name": "e"})
    second = api.post("/api/v1/runs", json={"run_id": run_id, "experiment_name": "e"})
    assert first.status_code == second.status_code == 201
    assert second.json()["run_id"] == first.json()["run_id"]  # stored under the workspace's id for it
    other = api.post("/api/v1/runs", json={"run_id": run_id, "experiment_name": "other"})
    assert other.status_code == 409


def test_bad_create_bodies_name_what_is_wrong_and_create_nothing(api: httpx.Client) -> None:
    assert api.post("/api/v1/runs", json={"name": "kept"}).status_code == 201  # into "Default", as the bad ones
    before = api.post("/api/v1/runs/search", json={"experiment_names": ["Default"]}).json()["runs"]
    cases = [(b"", "body", "missing"), (b"[]", "body", "a dictionary"), (b"{bad", "body", "not valid JSON"),
             (b'{"tags": {"a": 1}}', "tags.a", "valid string"), (b'{"bogus": 1}', "bogus", "Extra inputs"),
             (b'{"experiment_id": -1}', "experiment_id", "from 0 to 2147483647"),
             (b'{"experiment_id": 99999999999999999999}', "experiment_id", "from 0 to 2147483647"),
             (b'{"start_time": "soon"}', "start_time", "valid integer")]
    for content, field, message in cases:
        response = api.post("/api/v1/runs", content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, content
        assert response.json()["field"] == field and message in response.json()["message"], response.json()
    assert api.post("/api/v1/runs/search", json={"experiment_names": ["Default"]}).json()["runs"] == before


def test_summaries_kept_at_ingest(api: httpx.Client, run_id: str) -> None:
    assert batch(api, run_id, {"metrics": [series("loss", [0, 1, 2, 3], [0.9, 0.2, 0.5, 0.4])]}).status_code == 200
    assert batch(api, run_id, {"metrics": [series("loss", [4, 5], [0.3, 0.6])]}).status_code == 200
    summary = api.get(f"/api/v1/runs/{run_id}").json()["metrics"]["loss"]
    assert summary["count"] == 6
    assert (summary["last"], summary["last_step"]) == (0.6, 5)
    assert (summary["min"], summary["min_step"]) == (0.2, 1)
    assert (summary["max"], summary["max_step"]) == (0.9, 0)
    assert math.isclose(summary["mean"], sum([0.9, 0.2, 0.5, 0.4, 0.3, 0.6]) / 6)
    assert summary["best"] is None and summary["goal"] is None


def test_last_follows_the_highest_step_not_arrival(api: httpx.Client, run_id: str) -> None:
    batch(api, run_id, {"metrics": [series("acc", [10], [0.8])]})
    batch(api, run_id, {"metrics": [series("acc", [3], [0.1])]})
    assert api.get(f"/api/v1/runs/{run_id}").json()["metrics"]["acc"]["last"] == 0.8


def test_goal_gives_best_and_values_at_best_step(api: httpx.Client, run_id: str) -> None:
    defined = api.post(f"/api/v1/runs/{run_id}/metrics/define", json={"key": "val_loss", "goal": "min"})
    assert defined.status_code == 200
    batch(api, run_id, {"metrics": [series("val_loss", [0, 1, 2, 3], [0.5, 0.2, 0.3, 0.4]),
                                    series("acc", [0, 1, 2, 3], [0.6, 0.9, 0.8, 0.95])]})
    run = api.get(f"/api/v1/runs/{run_id}").json()
    assert (run["metrics"]["val_loss"]["best"], run["metrics"]["val_loss"]["best_step"]) == (0.2, 1)
    assert run["at_best"]["val_loss"] == {"val_loss": 0.2, "acc": 0.9}


def test_goal_defined_after_logging_uses_existing_history(api: httpx.Client, run_id: str) -> None:
    batch(api, run_id, {"metrics": [series("score", [0, 1, 2], [1.0, 3.0, 2.0])]})
    api.post(f"/api/v1/runs/{run_id}/metrics/define", json={"key": "score", "goal": "max"})
    summary = api.get(f"/api/v1/runs/{run_id}").json()["metrics"]["score"]
    assert (summary["best"], summary["best_step"]) == (3.0, 1)


def test_non_finite_values_round_trip(api: httpx.Client, run_id: str) -> None:
    values = [1.5, "NaN", "Infinity", "-Infinity"]
    assert batch(api, run_id, {"metrics": [series("x", [0, 1, 2, 3], values)]}).status_code == 200
    history = api.get(f"/api/v1/runs/{run_id}/metrics/history", params={"key": "x"}).json()
    assert history["values"] == values
    assert history["steps"] == [0, 1, 2, 3]
    summary = api.get(f"/api/v1/runs/{run_id}").json()["metrics"]["x"]
    assert (summary["min"], summary["max"], summary["last"]) == ("-Infinity", "Infinity", "-Infinity")
    assert summary["count"] == 4


def test_nan_is_skipped_by_min_max_mean(api: httpx.Client, run_id: str) -> None:
    batch(api, run_id, {"metrics": [series("y", [0, 1, 2], [2.0, "NaN", 4.0])]})
    summary = api.get(f"/api/v1/runs/{run_id}").json()["metrics"]["y"]
    assert (summary["min"], summary["max"], summary["mean"], summary["count"]) == (2.0, 4.0, 3.0, 3)


def test_param_history_keeps_every_value(api: httpx.Client, run_id: str) -> None:
    batch(api, run_id, {"params": {"lr": 0.01, "epochs": 10}})
    batch(api, run_id, {"params": {"lr": 0.02}})
    batch(api, run_id, {"params": {"lr": 0.02}})  # same value again: no new entry
    run = api.get(f"/api/v1/runs/{run_id}").json()
    assert run["params"] == {"lr": "0.02", "epochs": "10"}
    history = api.get(f"/api/v1/runs/{run_id}/params/history", params={"key": "lr"}).json()["history"]
    assert [h["value"] for h in history] == ["0.01", "0.02"]
    assert history[0]["timestamp"] <= history[1]["timestamp"]


def test_idempotency_key_stores_a_retried_batch_once(api: httpx.Client, run_id: str) -> None:
    body = {"metrics": [series("loss", [0, 1], [0.5, 0.4])], "params": {"a": "1"}}
    first = batch(api, run_id, body, key="retry-key-0001")
    second = batch(api, run_id, body, key="retry-key-0001")
    assert first.json()["metrics"] == 2 and second.json()["replayed"] == 1
    assert api.get(f"/api/v1/runs/{run_id}").json()["metrics"]["loss"]["count"] == 2


def test_a_finished_run_still_accepts_data(api: httpx.Client, run_id: str) -> None:
    """Evaluating after training and logging the results to the training run is ordinary; the status stays."""
    finished = api.patch(f"/api/v1/runs/{run_id}", json={"status": "FINISHED"})
    assert finished.status_code == 200 and finished.json()["end_time"] is not None
    accepted = batch(api, run_id, {"metrics": [series("eval", [0], [1.0])], "params": {"split": "test"}})
    assert accepted.status_code == 200, accepted.text
    run = api.get(f"/api/v1/runs/{run_id}").json()
    assert (run["status"], run["params"], run["metrics"]["eval"]["last"]) == ("FINISHED", {"split": "test"}, 1.0)


def test_last_batch_and_status_in_one_request(api: httpx.Client, run_id: str) -> None:
    body = {"metrics": [series("loss", [0], [0.5])], "params": {"lr": 0.1}, "tags": {"k": "v"},
            "status": "FINISHED", "end_time": 1234}
    assert batch(api, run_id, body).json() == {"metrics": 1, "params": 1, "tags": 1, "replayed": 0}
    run = api.get(f"/api/v1/runs/{run_id}").json()
    assert (run["status"], run["end_time"], run["params"], run["tags"]) == ("FINISHED", 1234, {"lr": "0.1"}, {"k": "v"})
    assert run["metrics"]["loss"]["count"] == 1


def test_bad_last_batch_changes_neither_data_nor_status(api: httpx.Client, run_id: str) -> None:
    refused = batch(api, run_id, {"params": {"lr": "x" * 9000, "ok": 1}, "status": "FINISHED"})
    assert refused.status_code == 400 and "params['lr']" in refused.json()["message"]
    for body, where in (({"status": "DONE"}, "status"), ({"end_time": 5}, "end_time"),
                        ({"status": "FINISHED", "end_time": "soon"}, "end_time"), ({"state": "x"}, "state")):
        answer = batch(api, run_id, body)
        assert answer.status_code == 400 and answer.json()["field"] == where, answer.text
    run = api.get(f"/api/v1/runs/{run_id}").json()
    assert (run["status"], run["end_time"], run["params"]) == ("RUNNING", None, {})


def test_created_run_answers_like_a_read(api: httpx.Client) -> None:
    created = api.post("/api/v1/runs", json={"experiment_name": "e", "name": "n", "tags": {"b": "2", "a": "1"},
                                             "start_time": 5, "run_id": uuid.uuid4().hex}).json()
    assert created == api.get(f"/api/v1/runs/{created['run_id']}").json()


def test_deleted_run_refuses_logging_and_restores(api: httpx.Client, run_id: str) -> None:
    assert api.delete(f"/api/v1/runs/{run_id}").status_code == 200
    assert batch(api, run_id, {"params": {"a": "1"}}).status_code == 409
    assert api.post(f"/api/v1/runs/{run_id}/restore").status_code == 200
    assert batch(api, run_id, {"params": {"a": "1"}}).status_code == 200


def test_tags_set_and_delete(api: httpx.Client, run_id: str) -> None:
    api.post(f"/api/v1/runs/{run_id}/tags", json={"stage": "dev"})
    assert api.get(f"/api/v1/runs/{run_id}").json()["tags"]["stage"] == "dev"
    assert api.delete(f"/api/v1/runs/{run_id}/tags", params={"key": "stage"}).status_code == 200
    assert "stage" not in api.get(f"/api/v1/runs/{run_id}").json()["tags"]
    assert api.delete(f"/api/v1/runs/{run_id}/tags", params={"key": "stage"}).status_code == 404


def test_nested_runs(api: httpx.Client, run_id: str) -> None:
    child = api.post("/api/v1/runs", json={"experiment_name": "exp", "parent_run_id": run_id}).json()
    assert child["parent_run_id"] == run_id
    missing = api.post("/api/v1/runs", json={"experiment_name": "exp", "parent_run_id": "0" * 32})
    assert missing.status_code == 404 and missing.json()["field"] == "parent_run_id"


def test_datasets_are_references(api: httpx.Client, run_id: str) -> None:
    body = {"name": "mnist", "uri": "s3://bucket/mnist/v3", "digest": "sha256:abc", "role": "train"}
    assert api.post(f"/api/v1/runs/{run_id}/datasets", json=body).status_code == 201
    assert api.post(f"/api/v1/runs/{run_id}/datasets", json=body).status_code == 201  # same reference, once
    assert api.get(f"/api/v1/runs/{run_id}").json()["datasets"][0]["uri"] == "s3://bucket/mnist/v3"
    assert len(api.get(f"/api/v1/runs/{run_id}").json()["datasets"]) == 1


def test_history_range_and_limit(api: httpx.Client, run_id: str) -> None:
    batch(api, run_id, {"metrics": [series("m", list(range(100)), [float(i) for i in range(100)])]})
    part = api.get(f"/api/v1/runs/{run_id}/metrics/history",
                   params={"key": "m", "start_step": 10, "end_step": 19}).json()
    assert part["steps"] == list(range(10, 20))
    limited = api.get(f"/api/v1/runs/{run_id}/metrics/history", params={"key": "m", "max_points": 5}).json()
    assert limited["steps"] == [0, 1, 2, 3, 4]


def test_large_batch_is_stored(api: httpx.Client, run_id: str) -> None:
    n = 20_000
    response = batch(api, run_id, {"metrics": [series("big", list(range(n)), [i * 0.5 for i in range(n)])]})
    assert response.json()["metrics"] == n
    summary = api.get(f"/api/v1/runs/{run_id}").json()["metrics"]["big"]
    assert (summary["count"], summary["max"], summary["max_step"]) == (n, (n - 1) * 0.5, n - 1)


def test_metric_buckets_keep_spikes(api: httpx.Client, run_id: str) -> None:
    steps = list(range(10_000))
    values = [0.5] * 10_000
    values[4321] = 99.0  # a spike in the middle of a bucket
    values[10] = float("nan")
    body = {"metrics": [{"key": "loss", "steps": steps, "values": ["NaN" if math.isnan(v) else v for v in values]}]}
    assert api.post(f"/api/v1/runs/{run_id}/batch", json=body).status_code == 200
    answer = api.get(f"/api/v1/runs/{run_id}/metrics/buckets", params={"key": "loss", "buckets": 100}).json()
    assert len(answer["first_steps"]) == 100 and sum(answer["counts"]) == 10_000
    assert max(answer["max"]) == 99.0 and answer["first_steps"][:2] == [0, 100] and answer["last_steps"][-1] == 9999
    zoom = api.get(f"/api/v1/runs/{run_id}/metrics/buckets",
                   params={"key": "loss", "buckets": 10, "start_step": 4300, "end_step": 4399}).json()
    assert zoom["first_steps"] == list(range(4300, 4400, 10)) and zoom["max"][2] == 99.0
    assert api.get(f"/api/v1/runs/{run_id}/metrics/buckets", params={"key": "nope"}).status_code == 404
    assert api.get(f"/api/v1/runs/{run_id}/metrics/buckets", params={"key": "loss", "buckets": 0}).status_code == 400


def test_the_author_tag_names_the_signed_in_caller(world: Any) -> None:
    """cairn.source.user comes from the authenticated identity when the server knows the caller."""
    token = world.user("alice")
    world.workspace("team", {"alice": "editor"})
    alice = world.client(token, "team")
    made = alice.post("/api/v1/runs", json={"experiment_name": "e", "user": "mallory",
                                            "tags": {"cairn.source.user": "mallory", "cairn.source.host": "h"}})
    assert made.status_code == 201, made.text
    run_id = made.json()["run_id"]
    stored = alice.get(f"/api/v1/runs/{run_id}").json()
    assert stored["tags"]["cairn.source.user"] == "alice" and stored["user"] == "alice"
    assert stored["tags"]["cairn.source.host"] == "h"
    for answer in (alice.post(f"/api/v1/runs/{run_id}/tags", json={"cairn.source.user": "mallory"}),
                   batch(alice, run_id, {"tags": {"cairn.source.user": "mallory"}})):
        assert answer.status_code == 400 and "cairn.source.user" in answer.json()["message"], answer.text
    assert alice.get(f"/api/v1/runs/{run_id}").json()["tags"]["cairn.source.user"] == "alice"


def test_the_local_mode_keeps_the_clients_author(api: httpx.Client) -> None:
    made = api.post("/api/v1/runs", json={"experiment_name": "e", "tags": {"cairn.source.user": "me"}})
    assert made.json()["tags"]["cairn.source.user"] == "me"
