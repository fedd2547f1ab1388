"""Conventions through the SDK, in embedded mode and against a real ``cairn server --auth`` (SQLite and
PostgreSQL): the tags the SDK fills in, refusal at the start, one warning in warn mode, ``run.compliance``,
search on ``conventions.compliant``, and a protected registry that refuses a version until it is fixed."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import cairn
from cairn.client._conventions import FRAMEWORKS
from tests.conftest import LiveServer, admin_with_workspace

X = np.array([[0.0, 0.1], [0.2, 0.0], [0.9, 1.0], [1.0, 0.8]])
Y = np.array([0, 0, 1, 1])
GIT = {"cairn.source.git.repo": "https://git.example/vision.git", "cairn.source.git.branch": "main",
       "cairn.source.git.commit": "0123abcd", "cairn.source.git.dirty": "false"}
START = {"task": "classification", "variant": "logreg"}


def start(tmp_path: Path, tags: dict[str, str] | None = None, experiment: str = "mnist") -> cairn.ActiveRun:
    return cairn.start_run(experiment=experiment, tags=START if tags is None else tags, source_dir=tmp_path)


def test_the_sdk_fills_in_what_it_knows_and_an_explicit_tag_wins(sdk_env: Path, tmp_path: Path) -> None:
    with start(tmp_path) as run:
        pass
    tags = cairn.Client().get_run(run.id).tags
    assert tags["developer"] == tags["cairn.source.user"]
    assert tags["format"] == "script"
    assert tags["framework"] in {name for _, name in FRAMEWORKS}  # sklearn at least is imported here
    with start(tmp_path, {**START, "developer": "grace", "framework": "jax", "format": "notebook"}) as run:
        run.log_model(LogisticRegression().fit(X, Y), input_example=X[:2])
    tags = cairn.Client().get_run(run.id).tags
    assert (tags["developer"], tags["framework"], tags["format"]) == ("grace", "jax", "notebook")
    with start(tmp_path) as run:
        run.log_model(LogisticRegression().fit(X, Y), input_example=X[:2])
    assert cairn.Client().get_run(run.id).tags["framework"] == "sklearn"  # the logged model's flavor


def test_enforced_required_tags_refuse_the_start_before_training(sdk_env: Path, tmp_path: Path) -> None:
    client = cairn.Client()
    client.set_conventions("enforce", preset="recommended")
    trained = []
    with pytest.raises(cairn.CairnError, match="variant"), start(tmp_path, {"task": "classification"}):
        trained.append(True)
    assert trained == []
    with start(tmp_path) as run:
        run.set_tags(GIT)
        run.log_dataset("mnist", uri="s3://data/mnist", version="3")
    assert run.compliance.compliant is True
    assert [r.id for r in client.search_runs("mnist", filter="conventions.compliant = true")] == [run.id]


def test_warn_mode_logs_one_warning_and_keeps_the_report(sdk_env: Path, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    cairn.Client().set_conventions("warn", preset="minimal")
    with caplog.at_level(logging.WARNING, logger="cairn"), cairn.start_run(experiment="mnist",
                                                                           source_dir=tmp_path) as run:
        run.log_metric("loss", 0.5)
    warned = [r.getMessage() for r in caplog.records if "conventions" in r.getMessage()]
    assert len(warned) == 1 and "dataset_reference" in warned[0] and "code_reference" in warned[0]
    report = run.compliance
    assert report.compliant is False and set(report.missing) == {"dataset_reference", "code_reference"}
    assert "MISS" in str(report)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cairn"), cairn.start_run(experiment="mnist", source_dir=tmp_path,
                                                                           tags=GIT) as run:
        run.log_dataset("mnist", uri="s3://data/mnist")
    assert [r for r in caplog.records if "conventions" in r.getMessage()] == []


def test_bad_settings_are_refused_by_name(sdk_env: Path) -> None:
    client = cairn.Client()
    with pytest.raises(cairn.CairnError, match="everything"):
        client.set_conventions("warn", preset="everything")
    with pytest.raises(cairn.CairnError, match="sometimes"):
        client.set_conventions("sometimes")
    with pytest.raises(cairn.CairnError, match="no_such_rule"):
        client.set_conventions("warn", rules={"no_such_rule": True})
    assert client.get_conventions().mode == "off"


def test_a_protected_registry_refuses_until_the_version_is_fixed(sdk_env: Path, tmp_path: Path) -> None:
    registry_refusal(tmp_path)


def registry_refusal(tmp_path: Path) -> None:
    client = cairn.Client()
    client.set_conventions("enforce", preset="recommended")
    with start(tmp_path) as run:
        run.define_metric("loss", "min")
        for step, loss in enumerate((0.9, 0.2, 0.4)):
            run.log_metrics({"loss": loss, "acc": 1 - loss}, step=step)
        model = LogisticRegression().fit(X, Y)
        with pytest.raises(cairn.CairnError) as refused:
            run.log_model(model, input_example=X[:2], registered_model_name="prod.detector")
        message = str(refused.value)
        assert "dataset_reference" in message and "repository" in message and "commit" in message
        dev = client.register_model(f"runs:/{run.id}/model", "dev.detector")  # an unprotected registry takes it
        with pytest.raises(cairn.CairnError, match="code_reference"):
            client.promote("dev.detector", dev.version, to="prod.detector")
        run.set_tags(GIT)
        run.log_dataset("mnist", uri="s3://data/mnist", version="3")
    version = client.register_model(f"runs:/{run.id}/model", "prod.detector")
    assert version.version == 1
    assert client.promote("dev.detector", dev.version, to="prod.detector").version == 2
    with start(tmp_path, {**START, **GIT}) as bare:
        bare.log_dataset("mnist", uri="s3://data/mnist")
        bare.log_model(LogisticRegression().fit(X, Y), requirements=[], input_example=X[:2])
    with pytest.raises(cairn.CairnError, match="requirements"):
        client.register_model(f"runs:/{bare.id}/model", "prod.detector")




@pytest.fixture
def auth_server(sdk_env: Path, store_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    token = admin_with_workspace(store_uri, "vision")
    live = LiveServer(tmp_path / "auth-home", store_uri, args=("--auth",)).start()
    monkeypatch.setenv("CAIRN_TRACKING_URI", live.url)
    monkeypatch.setenv("CAIRN_TOKEN", token)
    monkeypatch.setenv("CAIRN_WORKSPACE", "vision")
    yield live.url
    live.stop()


@pytest.mark.slow
def test_against_a_server_with_auth(auth_server: str, tmp_path: Path) -> None:
    with start(tmp_path) as run:
        pass
    assert cairn.Client().get_run(run.id).tags["developer"] == "root"  # the signed-in user, not the OS user
    registry_refusal(tmp_path)
    cli = subprocess.run([sys.executable, "-m", "cairn", "runs", "check", run.id], capture_output=True, text=True,
                         env=os.environ, check=False)
    assert cli.returncode == 2, cli.stderr
    assert "NOT compliant" in cli.stdout and "dataset_reference" in cli.stdout
    shown = subprocess.run([sys.executable, "-m", "cairn", "conventions", "show", "--workspace", "vision"],
                           capture_output=True, text=True, env=os.environ, check=True).stdout
    assert shown.startswith("mode enforce") and "registry_ready" in shown
