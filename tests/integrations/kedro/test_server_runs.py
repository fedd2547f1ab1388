"""``kedro run`` against a live ``cairn server --auth`` (token from the environment): ParallelRunner, one run
across two invocations by a run key, and a run while the server is down followed by ``cairn sync``."""

from __future__ import annotations

import subprocess
import sys

import pytest

import cairn
from tests.integrations.kedro.checks import check_training_run, configure, only_run
from tests.integrations.kedro.conftest import Kedro, Server

pytestmark = pytest.mark.slow


def test_sequential_and_parallel_runs_against_the_server(remote: Kedro) -> None:
    configure(remote, "experiment: {name: churn-seq}\n")
    remote.run("run")
    check_training_run(remote, only_run(remote, "churn-seq"))
    configure(remote, "experiment: {name: churn-par}\n")
    remote.run("run", "--runner", "ParallelRunner")
    check_training_run(remote, only_run(remote, "churn-par"), runner="ParallelRunner")


def test_two_invocations_join_one_run_by_key(remote: Kedro) -> None:
    configure(remote, "experiment: {name: churn-keyed}\n")
    remote.run("run", "--nodes", "split,train", CAIRN_RUN_KEY="airflow-2026-12-02")
    first = only_run(remote, "churn-keyed")
    assert first.status == "FINISHED" and first.run_key == "airflow-2026-12-02"
    remote.run("run", "--nodes", "evaluate", CAIRN_RUN_KEY="airflow-2026-12-02")
    run = only_run(remote, "churn-keyed")
    assert run.id == first.id and run.tags["kedro.nodes"] == "evaluate"
    check_training_run(remote, run, one_session=False)


def test_server_down_spools_and_cairn_sync_uploads(remote: Kedro, auth_server: Server) -> None:
    configure(remote, "experiment: {name: churn-offline}\n")
    auth_server.live.stop()
    try:
        done = remote.run("run")  # the pipeline succeeds without its tracking server
        assert "could not log model" in done.stderr + done.stdout
    finally:
        auth_server.live.start()
    synced = subprocess.run([sys.executable, "-m", "cairn", "sync"], env=remote.env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert synced.returncode == 0, synced.stderr
    run = only_run(remote, "churn-offline")
    check_training_run(remote, run, model=False)  # a model needs the server when it is logged
    try:  # dev.churn exists only if another test registered into this session's server before this one
        versions = remote.client().list_model_versions("dev.churn")
    except cairn.NotFoundError:
        versions = []
    assert not [v for v in versions if v.run_id == run.id]
