"""Operations: /ready says what cannot be reached, Prometheus /metrics (summed over worker processes),
and JSON log lines."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from cairn._embedded import ASGIBridge
from cairn.server.app import create_app
from cairn.server.observability import log_config
from cairn.server.settings import Settings
from tests.conftest import LiveServer


def test_ready_when_the_store_and_artifacts_are_reachable(api: httpx.Client) -> None:
    assert api.get("/ready").json() == {"status": "ready"}
    assert api.get("/metrics").status_code == 404  # off unless asked for


@pytest.mark.s3
@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)
def test_not_ready_names_the_bucket_it_cannot_use(store_uri: str, tmp_path: Path, s3_endpoint: str) -> None:
    app = create_app(Settings(home=tmp_path, store_uri=store_uri, artifact_root="s3://no-such-bucket/cairn",
                              allowed_hosts=["testserver"]))
    with httpx.Client(transport=ASGIBridge(app), base_url="http://testserver") as client:
        answer = client.get("/ready")
    app.state.db.dispose()
    assert answer.status_code == 503
    assert answer.json()["status"] == "unavailable" and "no-such-bucket" in answer.json()["artifacts"]
    assert "database" not in answer.json()


def scrape(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics").text
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


@pytest.mark.slow
def test_metrics_count_requests_of_every_worker(store_uri: str, tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "home", store_uri, workers=2, args=("--metrics",)).start()
    try:
        with httpx.Client(base_url=server.url) as client:
            run_id = client.post("/api/v1/runs", json={"experiment_name": "m"}).json()["run_id"]
            for step in range(20):  # new connections: the kernel spreads them over both workers
                answer = httpx.post(f"{server.url}/api/v1/runs/{run_id}/batch",
                                    json={"metrics": [{"key": "x", "steps": [step], "values": [1.0]}]})
                assert answer.status_code == 200
        batch = 'cairn_http_requests_total{method="POST",route="/api/v1/runs/{run_id}/batch",status="200"}'
        deadline = time.monotonic() + 30
        metrics: dict[str, Any] = scrape(server.url)
        while metrics.get(batch, 0) < 20 and time.monotonic() < deadline:  # workers publish once a second
            time.sleep(0.1)
            metrics = scrape(server.url)
        assert metrics[batch] == 20
        assert metrics["cairn_points_ingested_total"] == 20
        assert metrics['cairn_http_request_seconds_count{route="/api/v1/runs/{run_id}/batch"}'] == 20
        assert metrics.get('cairn_db_rows_written_total{table="runs"}', 0) >= 1
        assert "cairn_db_pool_connections" in metrics
    finally:
        server.stop()


def test_json_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.StringIO()
    config = log_config(json_lines=True)
    config["handlers"]["main"]["stream"] = stream
    logging.config.dictConfig(config)
    try:
        logger = logging.getLogger("cairn.server")
        logger.warning("store unavailable: %s", "timeout")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("request failed")
    finally:
        logging.config.dictConfig(log_config(json_lines=False))
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (first["level"], first["logger"], first["message"]) == ("warning", "cairn.server", "store unavailable: timeout")
    assert first["time"].endswith("Z") and "ValueError: boom" in second["exception"]
