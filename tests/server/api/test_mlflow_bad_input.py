"""MLflow's REST API with bad input, on SQLite and PostgreSQL: the error codes MLflow uses, never a 500,
and hostile artifact paths refused on every artifact endpoint."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

M = "/api/2.0/mlflow"
ART = "/api/2.0/mlflow-artifacts/artifacts"


@pytest.fixture
def run(api: httpx.Client) -> dict[str, Any]:
    created = api.post(f"{M}/runs/create", json={"experiment_id": "0", "run_name": "r"})
    assert created.status_code == 200, created.text
    return dict(created.json()["run"]["info"])


def code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json().get("error_code", "")


def test_the_ajax_alias_answers_the_same(api: httpx.Client, run: dict[str, Any]) -> None:
    plain = api.get(f"{M}/runs/get", params={"run_id": run["run_id"]}).json()
    ajax = api.get("/ajax-api/2.0/mlflow/runs/get", params={"run_id": run["run_id"]}).json()
    assert plain == ajax and plain["run"]["info"]["run_name"] == "r"


@pytest.mark.parametrize(("method", "path", "body", "expected"), [
    ("GET", "/runs/get", {}, (400, "INVALID_PARAMETER_VALUE")),
    ("GET", "/runs/get", {"run_id": "0" * 32}, (404, "RESOURCE_DOES_NOT_EXIST")),
    ("GET", "/runs/get", {"run_id": "../../etc"}, (404, "RESOURCE_DOES_NOT_EXIST")),
    ("GET", "/experiments/get", {"experiment_id": "abc"}, (400, "INVALID_PARAMETER_VALUE")),
    ("GET", "/experiments/get", {"experiment_id": "424242"}, (404, "RESOURCE_DOES_NOT_EXIST")),
    ("GET", "/experiments/get-by-name", {"experiment_name": "nope"}, (404, "RESOURCE_DOES_NOT_EXIST")),
    ("POST", "/experiments/create", {}, (400, "INVALID_PARAMETER_VALUE")),
    ("POST", "/experiments/create", {"name": "x", "tags": "nope"}, (400, "INVALID_PARAMETER_VALUE")),
    ("POST", "/experiments/search", {"filter": "tags.x = 1"}, (400, "INVALID_PARAMETER_VALUE")),
    ("POST", "/experiments/search", {"max_results": "lots"}, (400, "INVALID_PARAMETER_VALUE")),
    ("POST", "/runs/search", {"filter": "metrics.loss <<< 1"}, (400, "INVALID_PARAMETER_VALUE")),
    ("POST", "/runs/search", {"experiment_ids": "0"}, (400, "INVALID_PARAMETER_VALUE")),
    ("POST", "/runs/search", {"run_view_type": "SOME"}, (400, "INVALID_PARAMETER_VALUE")),
    ("GET", "/registered-models/get", {"name": "nope"}, (404, "RESOURCE_DOES_NOT_EXIST")),
    ("GET", "/registered-models/get", {"name": "a/b"}, (400, "INVALID_PARAMETER_VALUE")),
    ("GET", "/registered-models/search", {"filter": "owner = 'x'"}, (400, "INVALID_PARAMETER_VALUE")),
    ("GET", "/model-versions/search", {"filter": "name = 'x' OR 1=1"}, (400, "INVALID_PARAMETER_VALUE")),
    ("GET", "/model-versions/get", {"name": "nope", "version": "1"}, (404, "RESOURCE_DOES_NOT_EXIST")),
    ("POST", "/model-versions/create", {"name": "m", "source": "/etc/passwd"}, (400, "INVALID_PARAMETER_VALUE")),
    ("POST", "/model-versions/create", {"name": "m", "source": "runs:/" + "0" * 32 + "/model"},
     (404, "RESOURCE_DOES_NOT_EXIST")),
    ("POST", "/model-versions/transition-stage", {"name": "m", "version": "1", "stage": "Production"},
     (404, "RESOURCE_DOES_NOT_EXIST")),
    ("POST", "/model-versions/transition-stage", {"name": "m", "version": "1", "stage": "Live"},
     (400, "INVALID_PARAMETER_VALUE")),
    ("GET", "/logged-models/not-a-model", {}, (404, "RESOURCE_DOES_NOT_EXIST")),
    ("POST", "/logged-models", {"experiment_id": "abc", "name": "m"}, (400, "INVALID_PARAMETER_VALUE")),
    ("POST", "/runs/get", {"run_id": 31}, (405, "ENDPOINT_NOT_FOUND")),
    ("POST", "/runs/update", {"run_id": 31, "status": "FINISHED"}, (400, "INVALID_PARAMETER_VALUE")),
    ("POST", "/registered-models/create", {"name": 123}, (400, "INVALID_PARAMETER_VALUE")),
    ("GET", "/metrics/get-history-bulk-interval", {"metric_key": "x"}, (400, "INVALID_PARAMETER_VALUE")),
    ("POST", "/nothing/here", {}, (404, "ENDPOINT_NOT_FOUND")),
])
def test_mlflow_error_codes(api: httpx.Client, method: str, path: str, body: dict[str, Any],
                            expected: tuple[int, str]) -> None:
    response = api.get(M + path, params=body) if method == "GET" else api.request(method, M + path, json=body)
    assert code(response) == expected, response.text


def test_run_writes_with_bad_values(api: httpx.Client, run: dict[str, Any]) -> None:
    run_id = run["run_id"]
    bad = [
        ("/runs/log-metric", {"run_id": run_id, "key": "loss", "value": "abc", "timestamp": 1, "step": 0}),
        ("/runs/log-metric", {"run_id": run_id, "key": "loss", "timestamp": 1}),
        ("/runs/log-metric", {"run_id": run_id, "key": "loss", "value": 1, "step": "x"}),
        ("/runs/log-metric", {"run_id": run_id, "key": "../x", "value": 1}),
        ("/runs/log-batch", {"run_id": run_id, "metrics": [{"key": f"m{i}", "value": 1, "timestamp": 1, "step": 0}
                                                            for i in range(1001)]}),
        ("/runs/log-batch", {"run_id": run_id, "metrics": "all"}),
        ("/runs/log-batch", {"run_id": run_id, "params": [{"value": "no key"}]}),
        ("/runs/log-parameter", {"run_id": run_id, "value": "v"}),
        ("/runs/set-tag", {"run_id": run_id, "key": "", "value": "v"}),
        ("/runs/update", {"run_id": run_id, "status": "DANCING"}),
        ("/runs/log-inputs", {"run_id": run_id, "datasets": [{"nothing": 1}]}),
    ]
    for path, body in bad:
        response = api.post(M + path, json=body)
        assert code(response) == (400, "INVALID_PARAMETER_VALUE"), (path, response.text)
    assert api.post(M + "/runs/log-batch", content=b"{not json", headers={"Content-Type": "application/json"}
                    ).status_code == 400
    after = api.get(f"{M}/runs/get", params={"run_id": run_id}).json()["run"]["data"]
    assert after.get("metrics", []) == [] and after.get("params", []) == []  # nothing partly written


def test_hostile_artifact_paths_are_refused_everywhere(api: httpx.Client, run: dict[str, Any]) -> None:
    base = f"{run['experiment_id']}/{run['run_id']}/artifacts"
    tricks = ["../x", "a/../../x", "%2e%2e/x", "a/%2E%2E/%2e%2E/x", "..%2fx", "a%5c..%5cx", "/abs", "a/%2e/b",
              "a%00b", "a;/../../x", "a%23%2f..%2fx"]
    for trick in tricks:
        for method in ("GET", "PUT", "DELETE"):
            response = api.request(method, f"{ART}/{base}/{trick}", content=b"x" if method == "PUT" else None)
            assert response.status_code in (400, 404), (method, trick, response.status_code)
        listed = api.get(ART, params={"path": f"{base}/{trick}"})
        assert listed.status_code in (400, 404), (trick, listed.status_code)
        assert api.get(f"{M}/artifacts/list", params={"run_id": run["run_id"], "path": trick}).status_code in (400, 404)
    assert api.get(f"{M}/artifacts/list", params={"run_id": run["run_id"]}).json()["files"] == []
    other = api.put(f"{ART}/999/{run['run_id']}/artifacts/x.txt", content=b"x")  # the wrong experiment
    assert other.status_code == 404
    assert api.put(f"{ART}/{base}/ok/file.txt", content=b"fine").status_code == 200
    assert api.get(f"{ART}/{base}/ok/file.txt").content == b"fine"
    assert api.delete(f"{ART}/{base}/ok/file.txt").status_code == 400


def test_wrong_method_and_no_500_for_odd_bodies(api: httpx.Client, run: dict[str, Any]) -> None:
    assert api.get(f"{M}/runs/create").status_code == 405
    for body in ([], "text", 42, None, {"run_id": 5}, {"run_id": ["a"]}, {"run_id": {"x": 1}}):
        for path in ("/runs/update", "/runs/log-batch", "/runs/set-tag", "/experiments/create",
                     "/registered-models/create", "/model-versions/create", "/registered-models/alias"):
            response = api.post(M + path, json=body)
            assert response.status_code < 500, (path, body, response.text)
