"""CairnHook: connections from the environment, each with its own identity, and the UI's Test button."""

from __future__ import annotations

import json
import os

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
