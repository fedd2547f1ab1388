"""``kedro run`` on a real project, with the plugin installed: one Cairn run per pipeline run.

The embedded store (CAIRN_HOME) here; a live ``cairn server --auth`` in test_server_runs.py.
"""

from __future__ import annotations

import yaml

from cairn.integrations.kedro.config import CairnSettings
from tests.integrations.kedro.checks import check_training_run, configure, only_run
from tests.integrations.kedro.conftest import Kedro


def test_sequential_run_then_the_registered_model_from_the_catalog(embedded: Kedro) -> None:
    embedded.run("run")
    run = only_run(embedded, "churn_demo")
    check_training_run(embedded, run)
    assert run.name == "churn_demo" and run.tags["cairn.source.entrypoint"].endswith("kedro")

    embedded.run("run", "--pipeline", "score")  # RegistryModelDataset: models:/dev.churn@challenger
    scored = [r for r in embedded.client().search_runs("churn_demo") if r.id != run.id]
    assert len(scored) == 1 and scored[0].name == "score" and scored[0].status == "FINISHED"
    assert 0.5 <= embedded.client().get_run(scored[0].id).metrics["score.champion_accuracy"].last <= 1.0

    prod = embedded.run("run", "--pipeline", "score", "--env", "prod", check=False)  # prod.churn has no champion
    assert prod.returncode != 0
    failed = [r for r in embedded.client().search_runs("churn_demo") if r.id not in (run.id, scored[0].id)]
    got = embedded.client().get_run(failed[0].id)
    assert got.status == "FAILED" and got.tags["kedro.env"] == "prod"
    assert "prod.churn" in got.tags["kedro.error"]


def test_parallel_runner_writes_into_one_run(embedded: Kedro) -> None:
    done = embedded.run("run", "--runner", "ParallelRunner")
    assert "pickl" not in done.stderr.lower()
    check_training_run(embedded, only_run(embedded, "churn_demo"), runner="ParallelRunner")


def test_a_node_that_raises_fails_the_run_and_says_where(embedded: Kedro) -> None:
    done = embedded.run("run", "--params", "evaluate.fail=true", check=False)
    assert done.returncode != 0 and "evaluation refused" in done.stderr + done.stdout
    run = only_run(embedded, "churn_demo")
    assert run.status == "FAILED" and run.end_time is not None
    assert run.tags["kedro.failed_node"] == "evaluate" and run.tags["kedro.node.evaluate"] == "failed"
    assert run.tags["kedro.error"] == "ValueError: evaluation refused: the test set is stale"
    assert run.tags["kedro.node.train"] == "completed" and run.params["evaluate.fail"] == "True"
    assert "accuracy" not in run.metrics


def test_kedro_cairn_init_writes_the_defaults(embedded: Kedro) -> None:
    embedded.run("cairn", "init")
    written = embedded.project / "conf" / "base" / "cairn.yml"
    assert CairnSettings.from_dict(yaml.safe_load(written.read_text()), env={}) == CairnSettings()
    again = embedded.run("cairn", "init", check=False)
    assert again.returncode != 0 and "--force" in again.stderr + again.stdout
    configure(embedded, "experiment: {name: churn-local}\nrun: {name: nightly, tags: {owner: growth}}\n"
                        "params: {exclude: ['notes', 'evaluate.*']}\nnodes: {log_timing: false}\n")
    embedded.run("run", "--nodes", "split")
    run = only_run(embedded, "churn-local")
    assert run.name == "nightly" and run.tags["owner"] == "growth" and run.tags["kedro.nodes"] == "split"
    assert "notes" not in run.params and "evaluate.fail" not in run.params and "model.C" in run.params
    assert not any(k.startswith("kedro.node.") for k in (*run.metrics, *run.tags))
