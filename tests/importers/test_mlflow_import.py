"""``cairn import mlflow`` against a real ``mlflow server`` (SQLite backend, proxied artifacts) started on a
free loopback port, into a real ``cairn server`` on SQLite and PostgreSQL: everything arrives, metric
histories point for point, and running it again copies nothing twice."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression

import cairn
from cairn.client._ids import stored_run_id
from tests.conftest import LiveServer, free_port

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning"), pytest.mark.filterwarnings("ignore::DeprecationWarning")]
X = np.array([[0.0], [1.0], [0.1], [0.9]])
Y = np.array([0, 1, 0, 1])


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server, filled with what teams have: experiments, nested runs, long metric
    histories (with NaN), params, tags, datasets, artifacts, a deleted run, and a registered model."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "art")],
        stdout=log, stderr=log, cwd=root, env={**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.3)
        if process.poll() is not None:
            raise RuntimeError((root / "server.log").read_text()[-3000:])
    else:
        process.terminate()  # with its workers, not left running after the test gave up on it
        process.wait(30)
        raise RuntimeError("mlflow server did not start in 90 s")
    try:
        fill(url, root)
        yield url
    finally:
        process.terminate()
        process.wait(20)
        log.close()


def fill(url: str, root: Path) -> None:
    mlflow.set_tracking_uri(url)
    mlflow.set_experiment("churn")
    with mlflow.start_run(run_name="sweep") as parent:
        mlflow.log_params({"search": "grid"})
        for lr in (0.1, 0.01):
            with mlflow.start_run(run_name=f"lr={lr}", nested=True):
                mlflow.log_param("lr", lr)
                for step in range(1500):
                    mlflow.log_metric("loss", 1.0 / (step + 1) + lr, step=step, timestamp=1_700_000_000_000 + step)
                mlflow.log_metric("odd", math.nan, step=0)
                mlflow.set_tag("team", "growth")
        (root / "report.txt").write_text("sweep report")
        mlflow.log_artifact(str(root / "report.txt"), artifact_path="reports")
        dataset = mlflow.data.from_numpy(X, source="s3://bucket/churn.npy", name="churn-train")
        mlflow.log_input(dataset, context="training")
        info = mlflow.sklearn.log_model(LogisticRegression().fit(X, Y), name="model",
                                        registered_model_name="churn-model")
    MlflowClient().set_registered_model_alias("churn-model", "champion", "1")
    MlflowClient().update_registered_model("churn-model", description="predicts churn")
    with mlflow.start_run(run_name="failed") as failed:
        mlflow.log_metric("loss", 9.0)
    MlflowClient().set_terminated(failed.info.run_id, "FAILED")
    with mlflow.start_run(run_name="junk") as junk:
        pass
    MlflowClient().delete_run(junk.info.run_id)
    assert parent.info.run_id and info.model_id


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cairn", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env}, check=False, stdin=subprocess.DEVNULL)


def test_import_everything_and_again(mlflow_server: str, store_uri: str, tmp_path: Path, sdk_env: Path) -> None:
    target = LiveServer(tmp_path / "cairn-home", store_uri).start()
    try:
        env = {"CAIRN_TRACKING_URI": target.url, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
        first = cli("import", "mlflow", "--from", mlflow_server, "--models", "--json", env=env)
        assert first.returncode == 0, first.stderr[-3000:]
        summary = json.loads(first.stdout)
        assert summary["runs_imported"] == 4 and summary["versions_imported"] == 1, summary
        assert [why for _, why in summary["runs_skipped"]] == ["deleted in MLflow"]
        source = MlflowClient(tracking_uri=mlflow_server)
        client = cairn.Client(target.url)
        experiment = client.get_experiment_by_name("churn")
        assert experiment is not None
        for mlflow_run in source.search_runs([source.get_experiment_by_name("churn").experiment_id]):
            run = client.get_run(cairn_id(mlflow_run.info.run_id))
            assert run.tags["cairn.import.run_id"] == mlflow_run.info.run_id
            assert (run.name, run.status, run.start_time, run.end_time) == (
                mlflow_run.info.run_name, mlflow_run.info.status, mlflow_run.info.start_time, mlflow_run.info.end_time)
            assert run.params == mlflow_run.data.params
            parent = mlflow_run.data.tags.get("mlflow.parentRunId")
            assert run.parent_run_id == (cairn_id(parent) if parent else None)
            for key in mlflow_run.data.metrics:
                theirs = [(m.step, m.timestamp, m.value) for m in source.get_metric_history(mlflow_run.info.run_id, key)]
                ours = [(p.step, p.timestamp, p.value) for p in client.get_metric_history(run.id, key)]
                assert len(ours) == len(theirs)
                for (s1, t1, v1), (s2, t2, v2) in zip(sorted(ours), sorted(theirs), strict=True):
                    assert (s1, t1) == (s2, t2) and (v1 == v2 or (math.isnan(v1) and math.isnan(v2)))
        sweep = next(r for r in source.search_runs([experiment_id_of(source)]) if r.info.run_name == "sweep")
        ours = client.get_run(cairn_id(sweep.info.run_id))
        assert [d.name for d in ours.datasets] == ["churn-train"]
        assert any(a.path == "reports" for a in client.list_artifacts(cairn_id(sweep.info.run_id)))
        version = client.get_model_version_by_alias("dev.churn-model", "champion")
        assert version.version == 1 and version.run_id == cairn_id(sweep.info.run_id)
        assert client.get_registered_model("dev.churn-model").description == "predicts churn"
        downloaded = client.download_model("models:/dev.churn-model@champion", tmp_path / "model")
        assert (Path(downloaded) / "MLmodel").exists()
        loaded = client.load_model("models:/dev.churn-model@champion")  # MLflow's format, through mlflow.pyfunc
        assert loaded.flavor == "mlflow"
        assert np.array_equal(loaded.predict(X), LogisticRegression().fit(X, Y).predict(X))
        # again: nothing is copied twice
        again = cli("import", "mlflow", "--from", mlflow_server, "--models", "--json", env=env)
        assert again.returncode == 0, again.stderr[-3000:]
        second = json.loads(again.stdout)
        assert (second["runs_imported"], second["metric_points"], second["artifact_files"],
                second["versions_imported"]) == (0, 0, 0, 0), second
        assert len(client.list_model_versions("dev.churn-model")) == 1
        # an interrupted run resumes without duplicating points
        child = next(r for r in source.search_runs([experiment_id_of(source)]) if r.info.run_name == "lr=0.1")
        client.delete_tag(cairn_id(child.info.run_id), "cairn.import.done")
        resumed = json.loads(cli("import", "mlflow", "--from", mlflow_server, "--json", env=env).stdout)
        assert resumed["runs_imported"] == 1
        assert len(client.get_metric_history(cairn_id(child.info.run_id), "loss")) == 1500
        human = cli("import", "mlflow", "--from", mlflow_server, "-e", "churn", env=env)
        assert human.returncode == 0 and "runs: 0 imported" in human.stdout
        missing = cli("import", "mlflow", "--from", mlflow_server, "-e", "nope", env=env)
        assert missing.returncode == 1 and "no active experiment named nope" in missing.stderr
    finally:
        target.stop()


def cairn_id(mlflow_run_id: str) -> str:
    """The id an imported run is stored under in the workspace ``default`` (run ids are per workspace)."""
    return stored_run_id("default", mlflow_run_id)


def experiment_id_of(source: MlflowClient) -> str:
    return str(source.get_experiment_by_name("churn").experiment_id)


def test_import_from_a_local_sqlite_store(tmp_path: Path, sdk_env: Path) -> None:
    """No MLflow server: its database and artifact folder on disk, into the embedded Cairn store."""
    store = f"sqlite:///{tmp_path / 'local.db'}"
    source = MlflowClient(tracking_uri=store)
    experiment_id = source.create_experiment("local", artifact_location=(tmp_path / "artifacts").as_uri())
    run = source.create_run(experiment_id, run_name="offline")
    for step in range(20):
        source.log_metric(run.info.run_id, "loss", 1 / (step + 1), step=step, timestamp=1_700_000_000_000 + step)
    (tmp_path / "weights.bin").write_bytes(b"\x00\x01")
    source.log_artifact(run.info.run_id, str(tmp_path / "weights.bin"))
    source.set_terminated(run.info.run_id)
    done = cli("import", "mlflow", "--from", store, "--json", env={"CAIRN_HOME": str(sdk_env)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["metric_points"] == 20
    client = cairn.Client()
    assert [p.value for p in client.get_metric_history(cairn_id(run.info.run_id), "loss")][:2] == [1.0, 0.5]
    assert [a.path for a in client.list_artifacts(cairn_id(run.info.run_id))] == ["weights.bin"]


def test_clear_errors_for_a_wrong_source(tmp_path: Path, sdk_env: Path) -> None:
    env = {"CAIRN_HOME": str(sdk_env), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    typo = cli("import", "mlflow", "--from", f"sqlite:///{tmp_path / 'typo.db'}", env=env)
    assert typo.returncode == 1 and "no MLflow database" in typo.stderr and not (tmp_path / "typo.db").exists()
    down = cli("import", "mlflow", "--from", f"http://127.0.0.1:{free_port()}", env=env)
    assert down.returncode == 1 and down.stderr.startswith("error:") and "Traceback" not in down.stderr
