"""The provider end to end: DAG files in the DAGs folder, run with ``dag.test()`` against a live
``cairn server --auth``, checked in Cairn (runs, tags, versions, alias history, promotion requests) and in
Airflow (task states, XCom values)."""

from __future__ import annotations

import importlib.util
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session

import cairn
from tests.integrations.airflow import dags
from tests.integrations.airflow.conftest import DAGS, World

pytestmark = pytest.mark.slow


def load_dag(template: str, **names: str) -> Any:
    """Write a DAG file into the DAGs folder and load it as Airflow would parse it."""
    dag_id = names["DAG_ID"]
    path = DAGS / f"{dag_id}.py"
    path.write_text(dags.render(template, **names))
    spec = importlib.util.spec_from_file_location(f"dagfile_{dag_id}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag_object


def dag_run_of(dag: Any, **conf: Any) -> tuple[Any, dict[str, str], Callable[[str], Any]]:
    """Run the DAG with dag.test(); returns the DagRun, task states and an XCom reader."""
    dag_run = dag.test(run_conf=conf or None)
    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dag.dag_id, DagRun.run_id == dag_run.run_id).one()
        tis = run.get_task_instances(session=session)
        states = {ti.task_id: str(ti.state) for ti in tis}
        by_id = {ti.task_id: ti for ti in tis}

    assert set(by_id) == set(dag.task_ids)

    def xcom(task_id: str, key: str = "return_value") -> Any:
        query = XComModel.get_many(run_id=dag_run.run_id, key=key, task_ids=task_id, dag_ids=dag.dag_id)
        with create_session() as inner:
            row = inner.execute(query).scalars().first()
            return None if row is None else XComModel.deserialize_value(row)
    return dag_run, states, xcom


def deferrals(dag_id: str) -> int:
    """How many task instances of the DAG have deferred to a trigger so far."""
    with create_session() as session:
        return session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id,
                                                  TaskInstance.trigger_id.is_not(None)).count()


def decide_when_requested(reviewer: cairn.Client, model: str, dag_id: str, *, approve: bool,
                          comment: str) -> threading.Thread:
    """A second person, in another thread, decides the promotion request once the DAG has opened it and the
    approval sensor is waiting for it in a trigger (so the decision really comes while the sensor waits)."""
    before = deferrals(dag_id)

    def review() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pending = [r for r in reviewer.list_promotion_requests(status="pending") if r.model == f"dev.{model}"]
            if pending and deferrals(dag_id) > before:
                if approve:
                    reviewer.approve(pending[0].id, comment=comment)
                else:
                    reviewer.reject(pending[0].id, comment=comment)
                return
            time.sleep(0.2)
        for request in reviewer.list_promotion_requests(status="pending"):  # never a hung DAG: fail it
            if request.model == f"dev.{model}":
                reviewer.cancel_promotion_request(request.id)

    thread = threading.Thread(target=review, daemon=True)
    thread.start()
    return thread


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:6]}"


def test_retrain_gate_promote_approve_deploy(world: World) -> None:
    model, experiment = unique("churn"), unique("retrain")
    dag = load_dag(dags.RETRAIN, DAG_ID=unique("retrain_churn"), MODEL=model, EXPERIMENT=experiment)
    reviewer = decide_when_requested(world.bob, model, dag.dag_id, approve=True, comment="eval report checked")
    dag_run, states, xcom = dag_run_of(dag, val_auc=0.91)
    reviewer.join(5)

    assert str(dag_run.state) == "success", states
    assert states == {"train": "success", "beats_champion": "success", "promote": "success", "approved": "success",
                      "deploy": "success", "keep_champion": "skipped", "end_run": "success"}
    assert str(xcom("train")) == "1"  # the task returned "1"; XCom gives JSON back
    assert xcom("beats_champion", "comparison")["branch"] == "promote"
    assert xcom("beats_champion", "comparison")["baseline"] is None  # no champion yet: the first one wins
    promoted = xcom("promote")
    assert promoted["action"] == "requested" and promoted["version"] is None
    approval = xcom("approved")
    assert approval == {"request_id": promoted["request_id"], "status": "approved", "model": f"prod.{model}",
                        "version": 1, "decided_by": "bob", "comment": "eval report checked"}
    assert xcom("deploy") == {"model": f"prod.{model}", "alias": "serving", "version": 1, "previous_version": None}

    client = world.client()
    [run] = client.search_runs(experiment)
    assert run.status == "FINISHED" and run.user == "ci"
    assert run.run_key == f"airflow:{dag.dag_id}/{dag_run.run_id}"
    assert run.tags["airflow.dag_id"] == dag.dag_id and run.tags["airflow.dag_run_id"] == dag_run.run_id
    assert run.tags["airflow.logical_date"].startswith(str(dag_run.logical_date.date()))
    assert (run.tags["airflow.task_id"], run.tags["airflow.try_number"]) == ("train", "1")
    assert run.tags["airflow.attempt.train.1"] == "success"
    assert run.metrics["val_auc"].best == pytest.approx(0.91)
    request = client.get_promotion_request(promoted["request_id"])
    assert (request.status, request.requested_by, request.decided_by) == ("approved", "ci", "bob")
    assert request.comment.startswith("weekly retrain ") and request.aliases == ["champion"]
    champion = client.get_model_version_by_alias(f"prod.{model}", "champion")
    assert (champion.version, champion.run_id, champion.created_by) == (1, run.id, "bob")
    assert [(m.from_version, m.to_version, m.actor) for m in client.get_alias_history(f"prod.{model}", "serving")] \
        == [(None, 1, "deployer")]
    assert client.get_alias_history(f"prod.{model}", "serving")[0].reason == f"deployed by {dag.dag_id}"
    assert client.get_model_version_by_alias(f"dev.{model}", "challenger").run_id == run.id


def test_a_rejected_promotion_fails_the_sensor_with_the_reviewers_comment(world: World) -> None:
    model, experiment = unique("fraud"), unique("retrain")
    dag = load_dag(dags.RETRAIN, DAG_ID=unique("retrain_fraud"), MODEL=model, EXPERIMENT=experiment)
    reviewer = decide_when_requested(world.bob, model, dag.dag_id, approve=False, comment="the holdout set leaked")
    dag_run, states, xcom = dag_run_of(dag, val_auc=0.8)
    reviewer.join(5)

    assert str(dag_run.state) == "failed"
    assert states["promote"] == "success" and states["approved"] == "failed"
    assert states["deploy"] == "upstream_failed" and states["end_run"] == "success"
    request = world.client().get_promotion_request(xcom("promote")["request_id"])
    assert (request.status, request.decided_by, request.decision_comment) == ("rejected", "bob",
                                                                               "the holdout set leaked")
    with pytest.raises(cairn.NotFoundError):
        world.client().get_registered_model(f"prod.{model}")
    [run] = world.client().search_runs(experiment)
    assert run.status == "FINISHED"  # the end task (a teardown) ran all the same


def test_the_gate_branches_both_ways(world: World) -> None:
    model, experiment = unique("gate"), unique("retrain")
    client = world.client()
    dag = load_dag(dags.RETRAIN, DAG_ID=unique("retrain_gate"), MODEL=model, EXPERIMENT=experiment)
    reviewer = decide_when_requested(world.bob, model, dag.dag_id, approve=True, comment="ok")
    dag_run, states, xcom = dag_run_of(dag, val_auc=0.90)
    reviewer.join(5)
    assert states["deploy"] == "success"

    # no better than the champion by min_delta (0.002): keep it, promote nothing
    dag_run, states, xcom = dag_run_of(dag, val_auc=0.901)
    assert str(dag_run.state) == "success"
    comparison = xcom("beats_champion", "comparison")
    assert comparison["branch"] == "keep_champion"
    assert comparison["candidate"] == pytest.approx(0.901) and comparison["baseline"] == pytest.approx(0.90)
    assert comparison["better"] is False
    assert (states["promote"], states["approved"], states["deploy"]) == ("skipped", "skipped", "skipped")
    assert states["keep_champion"] == "success" and xcom("keep_champion") == "champion kept"
    assert client.get_model_version_by_alias(f"prod.{model}", "champion").version == 1

    # better by more than min_delta: promote (approved by bob), and the champion moves
    reviewer = decide_when_requested(world.bob, model, dag.dag_id, approve=True, comment="better")
    dag_run, states, xcom = dag_run_of(dag, val_auc=0.95)
    reviewer.join(5)
    assert xcom("beats_champion", "comparison")["branch"] == "promote" and states["keep_champion"] == "skipped"
    assert xcom("promote")["source_version"] == 3
    assert client.get_model_version_by_alias(f"prod.{model}", "champion").version == 2
    assert [(m.from_version, m.to_version) for m in client.get_alias_history(f"prod.{model}", "champion")] \
        == [(None, 1), (1, 2)]
    assert len(client.search_runs(experiment)) == 3  # one run per DAG run


def test_a_retried_task_joins_the_same_run(world: World) -> None:
    experiment = unique("flaky")
    dag = load_dag(dags.RETRY, DAG_ID=unique("flaky"), EXPERIMENT=experiment)
    _, states, xcom = dag_run_of(dag)
    assert states == {"train": "success", "evaluate": "success"}, states
    [run] = world.client().search_runs(experiment)
    assert xcom("train") == xcom("evaluate") == run.id == xcom("train", "cairn_run_id")
    assert run.status == "FINISHED"  # ended by the last task (end=True)
    assert run.tags["airflow.attempt.train.1"] == "failed: RuntimeError"
    assert run.tags["airflow.attempt.train.2"] == "success"
    assert run.tags["airflow.attempt.evaluate.1"] == "success"
    history = world.client().get_metric_history(run.id, "loss")
    assert list(history.steps) == [1, 2] and list(history.values) == [1.0, 0.5]  # both attempts, one run


def test_model_version_sensors_poke_defer_and_soft_fail(world: World) -> None:
    model = unique("watched")
    client = world.client()
    with cairn.start_run(unique("watch"), tracking_uri=world.url, token=world.ci_token, workspace="ml") as run:
        first = run.log_model(dags_scorer(), registered_model_name=f"dev.{model}", aliases=["champion"])
    assert first.version == 1

    def publish() -> None:
        time.sleep(1.0)
        with cairn.start_run(unique("watch"), tracking_uri=world.url, token=world.ci_token, workspace="ml") as again:
            again.log_model(dags_scorer(), registered_model_name=f"dev.{model}", aliases=["champion"])

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    dag = load_dag(dags.WAIT_FOR_VERSION, DAG_ID=unique("wait_for_version"), MODEL=model)
    _, states, xcom = dag_run_of(dag)
    thread.join(10)
    assert states == {"poke": "success", "deferred": "success", "gives_up": "skipped"}
    assert xcom("poke") == {"model": f"dev.{model}", "version": 2, "alias": None}
    assert xcom("deferred") == {"model": f"dev.{model}", "version": 2, "alias": "champion"}
    assert client.get_model_version_by_alias(f"dev.{model}", "champion").version == 2


class _Scorer:
    def predict(self, rows: list[Any]) -> list[float]:
        return [0.5 for _ in rows]


def dags_scorer() -> _Scorer:
    return _Scorer()


def test_register_promote_directly_and_soft_fail(world: World) -> None:
    model, experiment = unique("plain"), unique("register")
    world.root.create_registry("staging")  # unprotected: promotion needs no approval there
    dag = load_dag(dags.REGISTER_AND_PROMOTE, DAG_ID=unique("register"), MODEL=model, EXPERIMENT=experiment)
    reviewer = decide_when_requested(world.bob, model, dag.dag_id, approve=False, comment="not this one")
    _, states, xcom = dag_run_of(dag)
    reviewer.join(5)

    assert states == {"train": "success", "register": "success", "to_staging": "success",
                      "nothing_to_approve": "success", "forced_into_prod": "failed", "ask_prod": "success",
                      "soft_approval": "skipped"}, states
    [run] = world.client().search_runs(experiment)
    assert xcom("register") == {"model": f"dev.{model}", "version": 1, "uri": f"models:/dev.{model}/1",
                                "run_id": run.id, "aliases": ["candidate"]}
    assert xcom("to_staging") == {"action": "promoted", "request_id": None, "model": f"staging.{model}", "version": 1,
                                  "source_model": f"dev.{model}", "source_version": 1}
    assert xcom("nothing_to_approve") == {"request_id": None, "status": "promoted", "model": f"staging.{model}",
                                          "version": 1}
    client = world.client()
    assert client.get_model_version(f"dev.{model}", 1).tags == {"dag": dag.dag_id}
    staged = client.get_model_version(f"staging.{model}", 1)
    assert (staged.run_id, staged.created_by, staged.note) == (run.id, "deployer", "no approval needed")
    assert client.get_promotion_request(xcom("ask_prod")["request_id"]).status == "rejected"
    with pytest.raises(cairn.NotFoundError):
        client.get_registered_model(f"prod.{model}")  # mode="direct" was refused: prod requires approval
