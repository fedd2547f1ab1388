"""MLflow clients get MLflow's answers: the pinned ``mlflow`` client against a live ``cairn server`` on SQLite
and PostgreSQL, one test per behaviour that real MLflow code relies on (and that Cairn once answered
differently): logging after a run ends, non-finite values, ordering and filtering of every search, logged
models outside runs, dotted model names, stages, MLflow's limits and pages, the endpoints its client and UI
call, typed errors, and features outside Cairn answered without disturbing training code."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import pytest
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression

from tests.conftest import STORES, LiveServer, _truncate_postgres

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]
M = "/api/2.0/mlflow"
X = np.array([[0.0, 0.1], [0.2, 0.0], [0.9, 1.0], [1.0, 0.8]])
Y = np.array([0, 0, 1, 1])


@pytest.fixture(scope="module", params=STORES)
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server per store for the module: each test makes its own experiments and models."""
    home = tmp_path_factory.mktemp("conformance")
    if request.param == "sqlite":
        uri = f"sqlite:///{home / 'cairn.db'}"
    else:
        uri = request.getfixturevalue("postgres_url")
        _truncate_postgres(uri)
    server = LiveServer(home / "server", uri).start()
    yield server
    server.stop()


@pytest.fixture
def client(live: LiveServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[MlflowClient]:
    for name in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                 "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(live.url)
    yield MlflowClient(live.url)
    while mlflow.active_run():
        mlflow.end_run()


def unique(prefix: str) -> str:
    return f"{prefix}{time.monotonic_ns()}"


def test_a_finished_run_accepts_metrics_params_and_batches(client: MlflowClient) -> None:
    experiment = client.create_experiment(unique("finished"))
    run_id = client.create_run(experiment).info.run_id
    for status in ("FINISHED", "FAILED", "KILLED"):
        client.set_terminated(run_id, status)
        client.log_metric(run_id, f"eval_{status}", 0.5)
        client.log_param(run_id, f"p_{status}", "1")
        client.log_batch(run_id, metrics=[Metric("batch", 1.0, 1, 0)], params=[Param(f"q_{status}", "2")])
        assert client.get_run(run_id).info.status == status
    data = client.get_run(run_id).data
    assert data.metrics["eval_KILLED"] == 0.5 and data.params["q_FAILED"] == "2"
    client.delete_run(run_id)
    with pytest.raises(MlflowException, match="deleted"):
        client.log_metric(run_id, "late", 1.0)


def test_nan_and_infinities_read_back_everywhere(client: MlflowClient) -> None:
    experiment = client.create_experiment(unique("nan"))
    run_id = client.create_run(experiment).info.run_id
    client.log_batch(run_id, metrics=[Metric("nan", math.nan, 1, 0), Metric("inf", math.inf, 1, 0),
                                      Metric("ninf", -math.inf, 1, 0), Metric("mixed", 1.0, 1, 0),
                                      Metric("mixed", math.nan, 2, 1)])
    for run in (client.get_run(run_id), client.search_runs([experiment])[0]):
        metrics = run.data.metrics
        assert math.isnan(metrics["nan"]) and metrics["inf"] == math.inf and metrics["ninf"] == -math.inf
        assert math.isnan(metrics["mixed"])
    history = client.get_metric_history(run_id, "mixed")
    assert history[0].value == 1.0 and math.isnan(history[1].value)
    assert client.get_metric_history(run_id, "inf")[0].value == math.inf


def test_registry_searches_honour_order_by_and_filters(client: MlflowClient) -> None:
    prefix = unique("ord")
    names = [f"{prefix}-{c}" for c in "abc"]
    experiment = client.create_experiment(prefix)
    run_id = client.create_run(experiment).info.run_id
    model = mlflow.sklearn.log_model(LogisticRegression().fit(X, Y), name="m", run_id=run_id)
    for name in names:
        client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(names[0], model.model_uri, run_id=run_id)
    found = client.search_registered_models(f"name LIKE '{prefix}-%'", order_by=["name DESC"])
    assert [m.name for m in found] == names[::-1]
    latest = client.search_model_versions(f"name = '{names[0]}'", order_by=["version_number DESC"], max_results=1)
    assert [v.version for v in latest] == ["3"]
    assert [v.version for v in client.search_model_versions(f"name = '{names[0]}' and version_number <= 2",
                                                            order_by=["version_number ASC"])] == ["1", "2"]
    experiments = client.search_experiments(filter_string=f"name LIKE '{prefix}%'", order_by=["name ASC"])
    assert [e.name for e in experiments] == [prefix]
    with pytest.raises(MlflowException, match=r"unknown attribute .owner."):
        client.search_registered_models(order_by=["owner ASC"])


def test_logged_models_search_applies_filter_and_order(client: MlflowClient) -> None:
    experiment = client.create_experiment(unique("logged"))
    for name in ("alpha", "beta", "gamma"):
        client.create_logged_model(experiment, name=name, params={"kind": name[0]})
    found = client.search_logged_models([experiment], filter_string="name != 'beta'",
                                        order_by=[{"field_name": "name", "ascending": False}])
    assert [m.name for m in found] == ["gamma", "alpha"]
    assert [m.name for m in client.search_logged_models([experiment], filter_string="params.kind = 'b'")] == ["beta"]


def test_a_model_logged_without_a_run_registers_and_loads(client: MlflowClient) -> None:
    mlflow.set_experiment(unique("runless"))
    name = unique("runless-model")
    info = mlflow.sklearn.log_model(LogisticRegression().fit(X, Y), name="model", registered_model_name=name)
    assert mlflow.active_run() is None and info.run_id is None
    version = client.get_model_version(name, "1")
    assert version.source == f"models:/{info.model_id}"
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/1")
    assert list(loaded.predict(X)) == list(Y)


def test_dotted_names_map_to_one_model_each(client: MlflowClient, live: LiveServer) -> None:
    suffix = unique("")
    dotted, prod = f"team.churn{suffix}", f"prod.churn{suffix}"
    client.create_registered_model(dotted)
    client.create_registered_model(prod)
    assert client.get_registered_model(dotted).name == dotted
    listed = {m.name for m in client.search_registered_models(f"name LIKE '%churn{suffix}'")}
    assert listed == {dotted, prod}
    native = httpx.get(f"{live.url}/api/v1/models/prod.churn{suffix}")
    assert native.status_code == 200 and native.json()["registry"] == "prod"
    assert httpx.get(f"{live.url}/api/v1/models/dev.team.churn{suffix}").status_code == 200
    with pytest.raises(MlflowException, match="registry 'prod'"):  # a dev model named like a prod one
        client.create_registered_model(f"dev.prod.x{suffix}")


def test_stages_work_and_move_aliases(client: MlflowClient) -> None:
    experiment = client.create_experiment(unique("stages"))
    run_id = client.create_run(experiment).info.run_id
    model = mlflow.sklearn.log_model(LogisticRegression().fit(X, Y), name="m", run_id=run_id)
    name = unique("staged")
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, model.model_uri, run_id=run_id)
    client.transition_model_version_stage(name, "1", "Production")
    moved = client.transition_model_version_stage(name, "2", "Production", archive_existing_versions=True)
    assert moved.current_stage == "Production"
    assert client.get_model_version(name, "1").current_stage == "Archived"
    assert [v.version for v in client.get_latest_versions(name, stages=["Production"])] == ["2"]
    assert [v.version for v in client.search_model_versions(f"name = '{name}' and current_stage = 'Archived'")] \
        == ["1"]
    assert client.get_model_version_by_alias(name, "production").version == "2"


def test_limits_and_pages_are_mlflows(client: MlflowClient, live: LiveServer) -> None:
    experiment = client.create_experiment(unique("limits"))
    run_id = client.create_run(experiment).info.run_id
    assert len(client.search_runs([experiment], max_results=50_000)) == 1
    client.log_batch(run_id, metrics=[Metric("m", float(i), 1, i) for i in range(1000)])
    too_many = httpx.post(f"{live.url}{M}/runs/log-batch", json={
        "run_id": run_id, "metrics": [{"key": "m", "value": 1, "timestamp": 1, "step": i} for i in range(1001)]})
    assert too_many.status_code == 400 and "at most 1000" in too_many.json()["message"]
    mixed = httpx.post(f"{live.url}{M}/runs/log-batch", json={
        "run_id": run_id, "metrics": [{"key": "n", "value": 1, "timestamp": 1, "step": i} for i in range(950)],
        "params": [{"key": f"p{i}", "value": "1"} for i in range(60)]})
    assert mixed.status_code == 400 and "1000 metrics, params and tags in total" in mixed.json()["message"]
    params = httpx.post(f"{live.url}{M}/runs/log-batch", json={
        "run_id": run_id, "params": [{"key": f"p{i}", "value": "1"} for i in range(101)]})
    assert params.status_code == 400 and "at most 100 params" in params.json()["message"]
    page = httpx.get(f"{live.url}/ajax-api/2.0/mlflow/metrics/get-history",
                     params={"run_id": run_id, "metric_key": "m", "max_results": 400}).json()
    assert len(page["metrics"]) == 400 and page["next_page_token"]
    rest = httpx.get(f"{live.url}/ajax-api/2.0/mlflow/metrics/get-history",
                     params={"run_id": run_id, "metric_key": "m", "max_results": 700,
                             "page_token": page["next_page_token"]}).json()
    assert [p["step"] for p in rest["metrics"]] == list(range(400, 1000)) and "next_page_token" not in rest


def test_endpoints_mlflow_clients_and_ui_call(client: MlflowClient, live: LiveServer, tmp_path: Path) -> None:
    assert client.get_experiment("0").name == "Default"
    name = unique("ends")
    experiment = client.create_experiment(name, artifact_location="s3://bucket/somewhere", tags={"a": "1"})
    assert client.get_experiment(experiment).artifact_location == "s3://bucket/somewhere"
    client.delete_experiment_tag(experiment, "a")
    assert "a" not in client.get_experiment(experiment).tags
    run = client.create_run(experiment, tags={"mlflow.parentRunId": "f" * 32})
    run_id = run.info.run_id
    assert client.get_run(run_id).data.tags["mlflow.parentRunId"] == "f" * 32
    client.log_metric(run_id, "loss", 0.5, step=3)
    bulk = httpx.get(f"{live.url}/ajax-api/2.0/mlflow/metrics/get-history-bulk",
                     params={"run_id": run_id, "metric_key": "loss"}).json()
    assert [(p["run_id"], p["step"]) for p in bulk["metrics"]] == [(run_id, 3)]
    upload = httpx.post(f"{live.url}/ajax-api/2.0/mlflow/upload-artifact", params={"run_uuid": run_id,
                                                                                    "path": "notes/a.txt"},
                        content=b"hello")
    assert upload.status_code == 200
    local = client.download_artifacts(run_id, ".", str(tmp_path / "down"))
    assert (Path(local) / "notes" / "a.txt").read_bytes() == b"hello"
    dataset = mlflow.data.from_numpy(X, source="s3://data/x.npy", name="xs")
    mlflow.set_experiment(experiment_id=experiment)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_input(dataset, context="training", tags={"split": "a"})
    logged = client.get_run(run_id).inputs.dataset_inputs[0]
    entity = dataset._to_mlflow_entity()
    assert (logged.dataset.source_type, logged.dataset.schema) == (entity.source_type, entity.schema)
    assert {t.key: t.value for t in logged.tags} == {"mlflow.data.context": "training", "split": "a"}
    summaries = httpx.post(f"{live.url}/ajax-api/2.0/mlflow/experiments/search-datasets",
                           json={"experiment_ids": [experiment]}).json()["dataset_summaries"]
    assert [(s["name"], s["context"]) for s in summaries] == [("xs", "training")]


def test_typed_fields_and_mlflow_messages(live: LiveServer) -> None:
    def post(path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{live.url}{M}{path}", json=body)
    assert post("/runs/update", {"run_id": 31, "status": "FINISHED"}).json()["error_code"] == \
        "INVALID_PARAMETER_VALUE"
    assert post("/experiments/create", {"name": 123}).status_code == 400
    missing = httpx.get(f"{live.url}{M}/runs/get", params={"run_id": "0" * 32})
    assert missing.status_code == 404 and f"Run with id={'0' * 32} not found" in missing.json()["message"]


def test_features_outside_cairn_never_break_training(client: MlflowClient, live: LiveServer) -> None:
    @mlflow.trace
    def predict(x: int) -> int:
        return x + 1

    mlflow.set_experiment(unique("traced"))
    assert predict(1) == 2
    mlflow.flush_trace_async_logging()  # the export is refused now, not retried at exit against a stopped server
    answer = httpx.post(f"{live.url}/api/3.0/mlflow/traces", json={})
    assert answer.status_code == 501 and "not supported by Cairn" in answer.json()["message"]


def test_a_pathological_like_pattern_is_answered_at_once(client: MlflowClient, live: LiveServer) -> None:
    """Patterns are matched by the database, not compiled into a backtracking regular expression."""
    for i in range(20):
        client.create_experiment(unique("a" * 40 + str(i)))
    started = time.perf_counter()
    found = client.search_experiments(filter_string="name LIKE '%%%%%%%%%%%%%%%%!'")
    assert found == [] and time.perf_counter() - started < 2.0
