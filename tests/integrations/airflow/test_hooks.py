"""CairnHook: connections from the environment, each with its own identity, and the UI's Test button."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cairn.integrations.airflow import CairnHook
from tests.integrations.airflow.conftest import World

pytestmark = pytest.mark.slow


def test_each_connection_gets_its_own_client_and_no_environment_changes(world: World) -> None:
    before = {k: v for k, v in os.environ.items() if k.startswith("CAIRN_")}
    ci = CairnHook().get_conn()
    deployer = CairnHook(cairn_conn_id="cairn_deploy").get_conn()  # the URI form: host, port, scheme extra
    assert ci.whoami()["user"]["name"] == "ci" and deployer.whoami()["user"]["name"] == "deployer"
    assert ci.config.tracking_uri == deployer.config.tracking_uri == world.url
    assert ci.config.workspace == deployer.config.workspace == "ml"
    assert {k: v for k, v in os.environ.items() if k.startswith("CAIRN_")} == before


def test_the_test_button(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = CairnHook().test_connection()
    assert ok and message == f"connected to {world.url} as ci, workspace 'ml' as editor"

    monkeypatch.setenv("AIRFLOW_CONN_CAIRN_BAD", json.dumps(
        {"conn_type": "cairn", "host": world.url, "password": "cairn_not_a_token", "extra": {"workspace": "ml"}}))
    ok, message = CairnHook("cairn_bad").test_connection()
    assert not ok and message.startswith("401")

    monkeypatch.setenv("AIRFLOW_CONN_CAIRN_ELSEWHERE", json.dumps(
        {"conn_type": "cairn", "host": world.url, "password": world.ci_token, "extra": {"workspace": "nope"}}))
    ok, message = CairnHook("cairn_elsewhere").test_connection()
    assert not ok and message.startswith("404")


def test_airflows_own_connection_test_uses_the_hook(world: World) -> None:
    """``airflow connections test`` runs what the UI's Test button runs (enabled by core.test_connection)."""
    bad = json.dumps({"conn_type": "cairn", "host": world.url, "password": "cairn_wrong", "extra": {"workspace": "ml"}})
    env = {**os.environ, "AIRFLOW__CORE__TEST_CONNECTION": "Enabled", "AIRFLOW_CONN_CAIRN_BAD": bad}

    def airflow_test(conn_id: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "airflow", "connections", "test", conn_id], env=env,
                              capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL)

    good = airflow_test("cairn_default")
    assert good.returncode == 0 and "Connection success!" in good.stdout, good.stdout[-2000:] + good.stderr[-2000:]
    refused = airflow_test("cairn_bad")
    assert "Connection failed!" in refused.stdout and "401" in refused.stdout, refused.stdout[-2000:]
