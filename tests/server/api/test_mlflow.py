"""The unmodified ``mlflow`` client against a real ``cairn server``, on SQLite and PostgreSQL, with
authentication off and on: tracking, nested runs, artifacts, search, metric history, an sklearn model
registered, aliased and loaded back by alias, and MLflow's error codes for bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression

from tests.conftest import LiveServer

# the mlflow client warns about its own choices (type hints, pip inference); those are not Cairn's to fix
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning"), pytest.mark.filterwarnings("ignore::DeprecationWarning")]
X = np.array([[0.0, 0.1], [0.2, 0.0], [0.9, 1.0], [1.0, 0.8], [0.1, 0.3], [0.8, 0.9]])
Y = np.array([0, 0, 1, 1, 0, 1])
PASSWORD = "root passphrase 1"


@pytest.fixture(autouse=True)
def mlflow_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME",
                 "MLFLOW_TRACKING_PASSWORD", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.chdir(tmp_path)
    yield
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_workspace(None)


@pytest.fixture
def server(store_uri: str, tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "server-home", store_uri).start()
    mlflow.set_tracking_uri(live.url)
    yield live
    live.stop()


def train_and_register(name: str) -> tuple[str, Any]:
    mlflow.set_experiment("mnist")
    with mlflow.start_run(run_name="sk") as run:
        mlflow.log_param("C", 1.0)
        mlflow.log_metric("acc", 0.9)
        info = mlflow.sklearn.log_model(LogisticRegression().fit(X, Y), name="model", registered_model_name=name,
                                        input_example=X[:2])
    return run.info.run_id, info


def test_tracking_with_the_mlflow_client(server: LiveServer, tmp_path: Path) -> None:
    experiment_id = mlflow.set_experiment("mnist").experiment_id
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_params({"lr": 0.01, "layers": 3})
        for step, loss in enumerate([0.9, 0.5, 0.2, 0.3]):
            mlflow.log_metrics({"loss": loss, "acc": 1 - loss}, step=step)
        mlflow.set_tags({"team": "vision"})
        (tmp_path / "notes.txt").write_text("hello")
        mlflow.log_artifact(str(tmp_path / "notes.txt"))
        (tmp_path / "plots").mkdir()
        (tmp_path / "plots" / "a.csv").write_text("1,2")
        mlflow.log_artifacts(str(tmp_path / "plots"), artifact_path="plots")
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("loss", 0.1)
        mlflow.log_param("lr", 0.02)  # a changed param: Cairn keeps the history, MLflow sees the latest
    client = MlflowClient()
    run = client.get_run(parent.info.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "parent"
    assert run.data.params == {"lr": "0.02", "layers": "3"}
    assert run.data.metrics["loss"] == 0.3 and run.data.tags["team"] == "vision"
    assert client.get_run(child.info.run_id).data.tags["mlflow.parentRunId"] == parent.info.run_id
    history = client.get_metric_history(parent.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.9), (1, 0.5), (2, 0.2), (3, 0.3)]
    assert sorted(a.path for a in client.list_artifacts(parent.info.run_id)) == ["notes.txt", "plots"]
    local = mlflow.artifacts.download_artifacts(run_id=parent.info.run_id, artifact_path="plots",
                                                dst_path=str(tmp_path / "down"))
    assert (Path(local) / "a.csv").read_text() == "1,2"
    # 1,000 metrics in one log_batch
    batch_run = client.create_run(experiment_id)
    client.log_batch(batch_run.info.run_id, metrics=[Metric(f"m{i}", i * 0.5, 1_700_000_000_000, 0)
                                                     for i in range(1000)],
                     params=[Param("p", "1")], tags=[RunTag("t", "x")])
    client.set_terminated(batch_run.info.run_id)
    assert len(client.get_run(batch_run.info.run_id).data.metrics) == 1000
    # search: MLflow's filters and ordering, and Cairn's summary suffixes
    found = mlflow.search_runs([experiment_id], filter_string="metrics.loss < 0.35", order_by=["metrics.loss ASC"],
                               output_format="list")
    assert [r.info.run_name for r in found] == ["child", "parent"]
    best = mlflow.search_runs([experiment_id], filter_string="metrics.loss.min < 0.25 and params.lr = '0.02'",
                              output_format="list")
    assert [r.info.run_id for r in best] == [parent.info.run_id]
    assert mlflow.search_experiments(filter_string="name = 'mnist'")[0].experiment_id == experiment_id


def test_models_registered_aliased_and_loaded_by_alias(server: LiveServer) -> None:
    run_id, _info = train_and_register("churn")
    client = MlflowClient()
    client.set_registered_model_alias("churn", "champion", "1")
    version = client.get_model_version_by_alias("churn", "champion")
    assert (version.version, version.run_id) == ("1", run_id)
    model = mlflow.pyfunc.load_model("models:/churn@champion")
    assert list(model.predict(X)) == list(LogisticRegression().fit(X, Y).predict(X))
    assert client.get_registered_model("churn").aliases == {"champion": "1"}
    assert [m.name for m in client.search_registered_models()] == ["churn"]
    loaded = mlflow.sklearn.load_model("models:/churn/1")
    assert loaded.predict(X[:1])[0] in (0, 1)
    # Cairn's native view of the same model: it is dev.churn, with lineage to the run
    native = httpx.get(f"{server.url}/api/v1/models/dev.churn/versions/1").json()
    assert native["run_id"] == run_id and native["flavor"] == "mlflow"


def test_mlflow_error_codes(server: LiveServer) -> None:
    client = MlflowClient()
    with pytest.raises(MlflowException) as missing:
        client.get_run("0" * 32)
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    client.create_experiment("dup")
    with pytest.raises(MlflowException) as duplicate:
        client.create_experiment("dup")
    assert duplicate.value.error_code == "RESOURCE_ALREADY_EXISTS"
    with pytest.raises(MlflowException) as bad:
        client.log_metric(client.create_run("0").info.run_id, "", 1.0)
    assert bad.value.error_code == "INVALID_PARAMETER_VALUE"
    unknown = httpx.post(f"{server.url}/api/2.0/mlflow/nothing/here", json={})
    assert (unknown.status_code, unknown.json()["error_code"]) == (404, "ENDPOINT_NOT_FOUND")
    run = client.create_run("0")
    experiment = run.info.experiment_id
    base = f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run.info.run_id}/artifacts"
    for trick in ("../../x", "%2e%2e/x", "a/%2E%2E/%2E%2E/x", "a\\..\\x", "/etc/passwd", "a/%2e/b", "a;b/../../x", "a%23/..%2f..%2fx"):
        answer = httpx.put(f"{base}/{trick}", content=b"x")
        assert answer.status_code in (400, 404), (trick, answer.status_code)
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == []


def test_with_a_token_and_two_workspaces(store_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**os.environ, "CAIRN_PASSWORD": PASSWORD}
    run_cli = [sys.executable, "-m", "cairn", "admin", "--store-uri", store_uri]
    subprocess.run([*run_cli, "create-user", "root", "--admin"], env=env, check=True, capture_output=True)
    for workspace in ("vision", "nlp"):
        subprocess.run([*run_cli, "create-workspace", workspace, "--owner", "root"], env=env, check=True,
                       capture_output=True)
    token = subprocess.run([*run_cli, "create-token", "root", "--name", "ml", "--scope", "write"], env=env,
                           check=True, capture_output=True, text=True).stdout.strip()
    live = LiveServer(tmp_path / "auth-home", store_uri, args=("--auth",)).start()
    try:
        mlflow.set_tracking_uri(live.url)
        with pytest.raises(MlflowException):
            MlflowClient().search_experiments()  # no credentials
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
        mlflow.set_workspace("vision")
        run_id, _ = train_and_register("detector")
        assert mlflow.pyfunc.load_model("models:/detector/1").predict(X[:1]) is not None
        # authorship comes from the credentials, whatever the client claims
        client = MlflowClient()
        spoofed = client.create_run(client.get_experiment_by_name("mnist").experiment_id,
                                    tags={"mlflow.user": "mallory"})
        for change in (lambda: client.set_tag(spoofed.info.run_id, "mlflow.user", "mallory"),
                       lambda: client.log_batch(spoofed.info.run_id, tags=[RunTag("mlflow.user", "mallory")])):
            with pytest.raises(MlflowException, match="cannot name someone else"):
                change()
        seen = client.get_run(spoofed.info.run_id)
        assert (seen.info.user_id, seen.data.tags["mlflow.user"]) == ("root", "root")
        mlflow.set_workspace("nlp")
        with pytest.raises(MlflowException) as other:
            MlflowClient().get_run(run_id)
        assert other.value.error_code == "RESOURCE_DOES_NOT_EXIST"
        assert MlflowClient().search_registered_models() == []
        # a workspace in the tracking URI, for clients that cannot send the header
        mlflow.set_workspace(None)
        mlflow.set_tracking_uri(f"{live.url}/w/vision")
        assert MlflowClient().get_run(run_id).info.run_id == run_id
        monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "root")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
        assert MlflowClient().get_run(run_id).data.params == {"C": "1.0"}
    finally:
        live.stop()
