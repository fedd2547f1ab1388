"""Conventions seen by the unmodified ``mlflow`` client against ``cairn server --auth``, on SQLite and
PostgreSQL: refused at create_run with MLflow's error format when required tags are missing (and accepted
with them), each run rule in warn mode through MLflow's own calls, and a protected registry that refuses a
non-compliant version until it is fixed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression

from tests.conftest import LiveServer, admin_with_workspace

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]
X = np.array([[0.0, 0.1], [0.2, 0.0], [0.9, 1.0], [1.0, 0.8]])
Y = np.array([0, 0, 1, 1])
TAGS = {"developer": "ada", "format": "script", "framework": "sklearn", "task": "classification", "variant": "lr"}
GIT = {"mlflow.source.git.repoURL": "https://git.example/v.git", "mlflow.source.git.branch": "main",
       "mlflow.source.git.commit": "0123abcd"}


class Server:
    def __init__(self, url: str, token: str) -> None:
        self.api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}",
                                                       "X-Cairn-Workspace": "vision"})

    def conventions(self, **body: Any) -> None:
        answer = self.api.put("/api/v1/conventions", json=body)
        assert answer.status_code == 200, answer.text

    def compliance(self, run_id: str) -> dict[str, Any]:
        return dict(self.api.get(f"/api/v1/runs/{run_id}/compliance").json())


@pytest.fixture
def server(store_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                 "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.chdir(tmp_path)
    token = admin_with_workspace(store_uri, "vision")
    live = LiveServer(tmp_path / "auth-home", store_uri, args=("--auth",)).start()
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    mlflow.set_tracking_uri(live.url)
    mlflow.set_workspace("vision")
    mlflow.set_experiment("mnist")
    server = Server(live.url, token)
    yield server
    server.api.close()
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_workspace(None)
    live.stop()


def test_enforced_required_tags_refuse_create_run_in_mlflow_format(server: Server) -> None:
    server.conventions(mode="enforce", rules={"required_tags": True})
    with pytest.raises(MlflowException) as refused:
        mlflow.start_run(tags={"task": "classification"})
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    assert all(t in refused.value.message for t in ("developer", "format", "framework", "variant"))
    assert mlflow.active_run() is None
    with mlflow.start_run(tags=TAGS) as run:
        mlflow.log_metric("loss", 0.1)
    assert server.compliance(run.info.run_id)["compliant"] is True


def test_warn_mode_rules_through_mlflow_calls(server: Server) -> None:
    server.conventions(mode="warn", preset="recommended", rules={"registry_ready": False})
    with mlflow.start_run(tags={"task": "classification"}) as run:
        run_id = run.info.run_id
        report = server.compliance(run_id)
        missing = {r["rule"]: r["missing"] for r in report["rules"] if not r["met"]}
        assert missing["required_tags"] == ["developer", "format", "framework", "variant"]
        assert set(missing) == {"required_tags", "dataset_reference", "code_reference"}
        mlflow.set_tags({**TAGS, **GIT})
        mlflow.log_input(mlflow.data.from_numpy(X, source="s3://data/mnist", name="mnist"), context="training")
        assert server.compliance(run_id)["compliant"] is True
        mlflow.sklearn.log_model(LogisticRegression().fit(X, Y), name="model")
        mlflow.sklearn.log_model(LogisticRegression().fit(X, Y), name="second")
    report = server.compliance(run_id)
    assert [r["rule"] for r in report["rules"] if not r["met"]] == ["one_model"]
    with mlflow.start_run(tags={**TAGS, "task": "detection"}) as other:
        pass
    rules = {r["rule"]: r for r in server.compliance(other.info.run_id)["rules"]}
    assert rules["consistent_experiment"]["met"] is False and "classification" in rules["consistent_experiment"][
        "message"]
    found = MlflowClient().search_runs([run.info.experiment_id], "conventions.compliant = false")
    assert {r.info.run_id for r in found} == {run_id, other.info.run_id}


def test_a_protected_registry_refuses_a_non_compliant_version(server: Server) -> None:
    server.conventions(mode="enforce", preset="minimal", rules={"registry_ready": True})
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(LogisticRegression().fit(X, Y), name="model", input_example=X[:2])
    with pytest.raises(MlflowException) as refused:
        mlflow.register_model(info.model_uri, "prod.detector")
    assert "dataset_reference" in refused.value.message and "code_reference" in refused.value.message
    client = MlflowClient()
    for key, value in GIT.items():
        client.set_tag(run.info.run_id, key, value)
    client.log_inputs(run.info.run_id, [_dataset_input()])
    assert mlflow.register_model(info.model_uri, "prod.detector").version == "1"


def _dataset_input() -> Any:
    from mlflow.entities import DatasetInput, InputTag

    dataset = mlflow.data.from_numpy(X, source="s3://data/mnist", name="mnist")._to_mlflow_entity()
    return DatasetInput(dataset, [InputTag("mlflow.data.context", "training")])
