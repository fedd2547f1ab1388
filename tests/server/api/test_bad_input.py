"""Every error a client can cause answers 4xx naming the field, and nothing is partly written."""

from __future__ import annotations

import httpx
import pytest

MISSING_RUN = "0123456789abcdef0123456789abcdef"


def run_state(api: httpx.Client, run_id: str) -> dict:
    return api.get(f"/api/v1/runs/{run_id}").json()


def post_batch(api: httpx.Client, run_id: str, body: object) -> httpx.Response:
    return api.post(f"/api/v1/runs/{run_id}/batch", json=body)


@pytest.mark.parametrize(("path", "says"), [
    (f"/api/v1/runs/{MISSING_RUN}", f"Run with id={MISSING_RUN} not found"),  # MLflow's wording, which code matches
    ("/api/v1/runs/not-a-run-id", "Run with id=not-a-run-id not found"), ("/api/v1/runs/%00", "not found"),
    ("/api/v1/experiments/999", "experiment 999 does not exist"),
])
def test_unknown_objects_are_404(api: httpx.Client, path: str, says: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    assert says in response.json()["message"]


def test_logging_to_unknown_run_is_404(api: httpx.Client) -> None:
    assert post_batch(api, MISSING_RUN, {"params": {"a": "1"}}).status_code == 404


@pytest.mark.parametrize(("key", "reason"), [
    ("", "must not be empty"),
    ("k" * 251, "the limit is 250"),
    ("a/../b", "'..'"),
    ("..", "'..'"),
    ("bad\x00key", "control character"),
    ("a\\b", "backslash"),
    ("/abs", "start or end with '/'"),
])
def test_bad_keys_are_refused_and_nothing_is_written(api: httpx.Client, run_id: str, key: str, reason: str) -> None:
    body = {"metrics": [{"key": "good", "steps": [0], "values": [1.0]}, {"key": key, "steps": [0], "values": [1.0]}],
            "params": {"p": "1"}}
    response = post_batch(api, run_id, body)
    assert response.status_code == 400
    assert reason in response.json()["message"] and "metrics[1].key" in response.json()["field"]
    state = run_state(api, run_id)
    assert state["metrics"] == {} and state["params"] == {}


@pytest.mark.parametrize(("item", "field"), [
    ({"key": "m", "steps": [0, 1], "values": [1.0, "abc"]}, "metrics[0].values[1]"),
    ({"key": "m", "steps": [0], "values": [True]}, "metrics[0].values[0]"),
    ({"key": "m", "steps": [0.5], "values": [1.0]}, "metrics[0].steps[0]"),
    ({"key": "m", "steps": ["1"], "values": [1.0]}, "metrics[0].steps[0]"),
    ({"key": "m", "steps": [2**63], "values": [1.0]}, "metrics[0].steps[0]"),
    ({"key": "m", "steps": [0, 1], "values": [1.0]}, "metrics[0].steps"),
    ({"key": "m", "values": [1.0]}, "metrics[0].steps"),
    ({"key": "m", "steps": [], "values": []}, "metrics[0].values"),
    ({"key": "m", "steps": [0], "values": [1.0], "timestamps": ["x"]}, "metrics[0].timestamps[0]"),
    ("not an object", "metrics[0]"),
])
def test_bad_metric_points(api: httpx.Client, run_id: str, item: object, field: str) -> None:
    response = post_batch(api, run_id, {"metrics": [{"key": "ok", "steps": [0], "values": [1]}, item]})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field.replace("[0]", "[1]", 1)
    assert run_state(api, run_id)["metrics"] == {}


def test_param_value_over_limit(api: httpx.Client, run_id: str) -> None:
    response = post_batch(api, run_id, {"params": {"p": "x" * 8001}})
    assert response.status_code == 400 and "8000" in response.json()["message"]


def test_oversized_batch_is_413(api: httpx.Client, run_id: str) -> None:
    n = 100_001
    response = post_batch(api, run_id, {"metrics": [{"key": "m", "steps": list(range(n)), "values": [0.0] * n}]})
    assert response.status_code == 413
    assert "100000" in response.json()["message"]


def test_body_over_byte_limit_is_413(api: httpx.Client, run_id: str, app: object) -> None:
    app.state.settings.max_request_bytes = 1000  # type: ignore[attr-defined]
    response = api.post(f"/api/v1/runs/{run_id}/batch", content=b"{" + b" " * 2000 + b"}")
    assert response.status_code == 413


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"'])
def test_malformed_bodies(api: httpx.Client, run_id: str, body: bytes) -> None:
    response = api.post(f"/api/v1/runs/{run_id}/batch", content=body)
    assert response.status_code == 400
    assert response.json()["field"] == "body"


def test_unknown_batch_field(api: httpx.Client, run_id: str) -> None:
    response = post_batch(api, run_id, {"metric": []})
    assert response.status_code == 400 and response.json()["field"] == "metric"


def test_bad_idempotency_key(api: httpx.Client, run_id: str) -> None:
    response = api.post(f"/api/v1/runs/{run_id}/batch", json={"params": {"a": "1"}},
                        headers={"Idempotency-Key": "short"})
    assert response.status_code == 400 and response.json()["field"] == "Idempotency-Key"


@pytest.mark.parametrize(("filter_", "position"), [
    ("metrics.loss <", 14), ("params.lr = 'unterminated", 12), ("metrics.loss > 1 and", 20), ("nope.x = 1", 0),
])
def test_malformed_filter_gives_position(api: httpx.Client, run_id: str, filter_: str, position: int) -> None:
    response = api.post("/api/v1/runs/search", json={"filter": filter_})
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "filter" and body["position"] == position
    assert f"position {position}" in body["message"]


def test_bad_order_by(api: httpx.Client) -> None:
    response = api.post("/api/v1/runs/search", json={"order_by": ["metrics.loss sideways"]})
    assert response.status_code == 400 and response.json()["field"] == "order_by"


@pytest.mark.parametrize("body", [
    {"status": "DONE"}, {"name": ""}, {"end_time": "soon"}, {"owner": "me"},
])
def test_bad_run_updates(api: httpx.Client, run_id: str, body: dict) -> None:
    response = api.patch(f"/api/v1/runs/{run_id}", json=body)
    assert response.status_code == 400
    assert run_state(api, run_id)["status"] == "RUNNING"


@pytest.mark.parametrize("body", [
    {"experiment_name": ""}, {"experiment_name": "x" * 300}, {"run_id": "ABC"}, {"experiment_id": 2**40},
    {"experiment_id": "one"}, {"workspace_id": 2},
])
def test_bad_run_creation(api: httpx.Client, body: dict) -> None:
    assert api.post("/api/v1/runs", json=body).status_code == 400


def test_bad_experiment_id_in_path(api: httpx.Client) -> None:
    assert api.get("/api/v1/experiments/abc").status_code == 400
    assert api.get(f"/api/v1/experiments/{2**40}").status_code == 400


def test_bad_search_arguments(api: httpx.Client) -> None:
    assert api.post("/api/v1/runs/search", json={"max_results": 0}).status_code == 400
    assert api.post("/api/v1/runs/search", json={"run_view_type": "weird"}).status_code == 400
    assert api.post("/api/v1/runs/search", json={"page_token": "garbage!!"}).status_code == 400
    assert api.post("/api/v1/runs/search", json={"experiment_names": ["missing"]}).status_code == 404


def test_nul_in_query_values_is_4xx(api: httpx.Client, run_id: str) -> None:
    history = api.get(f"/api/v1/runs/{run_id}/params/history", params={"key": "a\x00b"})
    by_name = api.get("/api/v1/experiments/by-name", params={"name": "a\x00b"})
    search = api.post("/api/v1/runs/search", json={"filter": "params.a = 'x\x00'"})
    # refused before the store sees them, so SQLite and PostgreSQL answer alike
    assert (history.status_code, history.json()["field"]) == (400, "key")
    assert (by_name.status_code, by_name.json()["field"]) == (400, "name")
    assert search.status_code == 400 and "NUL" in search.json()["message"]


def test_bad_goal(api: httpx.Client, run_id: str) -> None:
    response = api.post(f"/api/v1/runs/{run_id}/metrics/define", json={"key": "m", "goal": "lowest"})
    assert response.status_code == 400 and response.json()["field"] == "goal"
