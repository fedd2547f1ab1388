"""The unmodified ``mlflow`` client's multipart uploads against a server whose artifacts are in a bucket
(moto_server): the parts go to the bucket, the server records the version under the SHA-256 the store
computed, and server-info announces multipart uploads only for a bucket."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pytest

from tests.client.test_direct_transfers import io_counts
from tests.conftest import LiveServer

pytestmark = [pytest.mark.slow, pytest.mark.s3, pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True),
              pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::FutureWarning")]
MB = 1024 * 1024


@pytest.fixture
def server(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[LiveServer]:
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", str(MB))
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", str(5 * MB))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(live_server.url)
    yield live_server
    while mlflow.active_run():
        mlflow.end_run()


@pytest.mark.parametrize("artifact_root", ["s3"], indirect=True)
def test_mlflow_log_artifact_goes_to_the_bucket_in_parts(server: LiveServer, tmp_path: Path) -> None:
    info = httpx.get(f"{server.url}/api/3.0/mlflow/server-info").json()
    assert info["multipart_uploads_enabled"] is True
    data = os.urandom(12 * MB)  # three parts of 5 MB, 5 MB and 2 MB
    (tmp_path / "weights.bin").write_bytes(data)
    assert server.process is not None
    before, _ = io_counts(server.process.pid)
    mlflow.set_experiment("mpu")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(tmp_path / "weights.bin"), artifact_path="model")
    after, _ = io_counts(server.process.pid)
    assert after - before < 4 * MB, f"the server read {(after - before) / MB:.1f} MB"
    versions = httpx.get(f"{server.url}/api/v1/runs/{run.info.run_id}/artifacts/versions",
                         params={"path": "model/weights.bin"}).json()["versions"]
    assert [(v["version"], v["digest"]) for v in versions] == [(1, "sha256:" + hashlib.sha256(data).hexdigest())]
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="model/weights.bin",
                                                dst_path=str(tmp_path / "out"))
    assert Path(local).read_bytes() == data


@pytest.mark.parametrize("artifact_root", ["s3"], indirect=True)
def test_a_bad_multipart_request_is_a_clear_4xx(server: LiveServer) -> None:
    run_id = httpx.post(f"{server.url}/api/v1/runs", json={"experiment_name": "mpu"}).json()["run_id"]
    experiment = httpx.get(f"{server.url}/api/v1/runs/{run_id}").json()["experiment_id"]
    base = f"{server.url}/api/2.0/mlflow-artifacts/mpu"
    target = f"{experiment}/{run_id}/artifacts/model"
    bad_id = httpx.post(f"{base}/complete/{target}", json={"path": "/x/w.bin", "upload_id": "nope", "parts": []})
    assert bad_id.status_code == 400 and bad_id.json()["field"] == "upload_id"
    escape = httpx.post(f"{base}/create/{target}", json={"path": "/x/..", "num_parts": 1})
    assert escape.status_code == 400
    missing = httpx.post(f"{base}/create/1/{'0' * 32}/artifacts", json={"path": "/x/w.bin", "num_parts": 1})
    assert missing.status_code == 404


@pytest.mark.parametrize("artifact_root", ["local"], indirect=True)
def test_a_local_store_announces_no_multipart_and_refuses_it_as_mlflow_expects(server: LiveServer) -> None:
    info = httpx.get(f"{server.url}/api/3.0/mlflow/server-info").json()
    assert info["multipart_uploads_enabled"] is False
    run_id = httpx.post(f"{server.url}/api/v1/runs", json={"experiment_name": "mpu"}).json()["run_id"]
    experiment = httpx.get(f"{server.url}/api/v1/runs/{run_id}").json()["experiment_id"]
    refused = httpx.post(f"{server.url}/api/2.0/mlflow-artifacts/mpu/create/{experiment}/{run_id}/artifacts",
                         json={"path": "/x/w.bin", "num_parts": 2})
    assert refused.status_code == 501
    assert refused.json()["message"].startswith("Multipart upload is not supported")
