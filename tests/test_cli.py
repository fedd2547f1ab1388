"""The ``cairn`` command as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cairn


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cairn", *args], capture_output=True, text=True, timeout=120,
                          env=env or dict(os.environ), check=False)


def test_version() -> None:
    done = cli("--version")
    assert done.returncode == 0 and cairn.__version__ in done.stdout


@pytest.fixture
def logged_run(sdk_env: Path) -> str:
    with cairn.start_run(experiment="mnist", name="baseline") as run:
        run.log_params({"lr": 0.01})
        run.define_metric("val_loss", "min")
        run.log_metrics({"val_loss": 0.5}, step=0)
        run.log_metrics({"val_loss": 0.2}, step=1)
    return run.id


def test_experiments_list(logged_run: str) -> None:
    table = cli("experiments", "list")
    assert table.returncode == 0 and "mnist" in table.stdout and "RUNS" in table.stdout
    data = json.loads(cli("experiments", "list", "--json").stdout)
    assert data[0]["name"] == "mnist" and data[0]["run_count"] == 1


def test_runs_list_and_show(logged_run: str) -> None:
    table = cli("runs", "list", "--experiment", "mnist", "--filter", "metrics.val_loss.min < 0.3")
    assert table.returncode == 0 and logged_run in table.stdout
    empty = json.loads(cli("runs", "list", "-e", "mnist", "--filter", "metrics.val_loss.min < 0.1", "--json").stdout)
    assert empty == []
    shown = cli("runs", "show", logged_run)
    assert "val_loss" in shown.stdout and "lr" in shown.stdout
    data = json.loads(cli("runs", "show", logged_run, "--json").stdout)
    assert data["metrics"]["val_loss"]["best_step"] == 1


def test_errors_are_clear_and_exit_nonzero(logged_run: str) -> None:
    bad = cli("runs", "list", "-e", "mnist", "--filter", "metrics.val_loss <")
    assert bad.returncode == 1 and "position" in bad.stderr
    missing = cli("runs", "show", "0" * 32)
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_db_upgrade(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'x.db'}"
    done = cli("db", "upgrade", "--store-uri", uri)
    assert done.returncode == 0 and "revision" in done.stdout


def test_sync_with_empty_spool(sdk_env: Path) -> None:
    done = cli("sync")
    assert done.returncode == 0 and "nothing to sync" in done.stdout


@pytest.fixture
def registered(sdk_env: Path) -> str:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.array([[0.0, 1.0], [1.0, 0.0]] * 4)
    y = np.array([0, 1] * 4)
    with cairn.start_run(experiment="cli-models") as run:
        run.log_metrics({"val_loss": 0.3}, step=0)
        run.log_model(LogisticRegression().fit(x, y), registered_model_name="dev.digits", input_example=x[:2])
    return run.id


def test_models_commands(registered: str, tmp_path: Path) -> None:
    assert "dev.digits" in cli("models", "list").stdout
    assert cli("models", "alias", "dev.digits", "champion", "1").returncode == 0
    shown = cli("models", "show", "dev.digits@champion")
    assert shown.returncode == 0 and "dev.digits v1" in shown.stdout and "val_loss" in shown.stdout
    promoted = cli("models", "promote", "dev.digits", "1", "--to", "prod.digits", "--note", "good")
    assert promoted.returncode == 0 and "prod.digits v1" in promoted.stdout
    data = json.loads(cli("models", "show", "prod.digits/1", "--json").stdout)
    assert data["source"]["model"] == "dev.digits" and data["note"] == "good"
    bundle = tmp_path / "digits.tar"
    assert cli("models", "export", "models:/prod.digits/1", str(bundle)).returncode == 0
    env = {**os.environ, "CAIRN_HOME": str(tmp_path / "second-server")}
    imported = cli("models", "import", str(bundle), "--to", "prod.digits", env=env)
    assert imported.returncode == 0 and "prod.digits v1" in imported.stdout
    bad_alias = cli("models", "alias", "dev.digits", "12", "1")
    assert bad_alias.returncode == 1 and "version number" in bad_alias.stderr


def test_gc_command(registered: str, sdk_env: Path) -> None:
    cairn.Client().delete_run(registered)
    cairn.Client().delete_registered_model("dev.digits")
    done = cli("gc", "--store-uri", f"sqlite:///{sdk_env / 'cairn.db'}", "--artifact-root", str(sdk_env / "artifacts"))
    assert done.returncode == 0 and "purged 1 runs, 1 models, 1 versions" in done.stdout
    assert "bytes" in done.stdout


def test_admin_unlock_user(store_uri: str) -> None:
    """An operator lifts a sign-in lock from the command line (the store is the server's)."""
    from cairn.server.db.engine import Database
    from cairn.server.services import accounts

    made = cli("admin", "--store-uri", store_uri, "create-user", "carol",
               env={**os.environ, "CAIRN_PASSWORD": "a long passphrase 42"})
    assert made.returncode == 0, made.stderr
    db = Database(store_uri)
    policy = accounts.LoginPolicy(block_after=2, max_delay=0.0)
    try:
        for _ in range(2):
            with db.session(write=True) as session:
                accounts.verify_login(session, "carol", "wrong password", policy, "203.0.113.1")
        with pytest.raises(accounts.TooManyAttemptsError), db.session(write=False) as session:
            accounts.check_throttle(session, "carol", "203.0.113.1")
        unlocked = cli("admin", "--store-uri", store_uri, "unlock-user", "carol")
        assert unlocked.returncode == 0 and "carol unlocked" in unlocked.stdout, unlocked.stderr
        with db.session(write=False) as session:
            accounts.check_throttle(session, "carol", "203.0.113.1")
        assert cli("admin", "--store-uri", store_uri, "unlock-user", "nobody").returncode != 0
    finally:
        db.dispose()


def test_a_bad_setting_in_the_environment_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    answer = cli("server", "--port", "0", env={**os.environ, "CAIRN_HOME": str(tmp_path), "CAIRN_METRIC_COMMIT": "bogus"})
    assert answer.returncode == 2
    assert "CAIRN_METRIC_COMMIT must be 'durable' or 'fast', got 'bogus'" in answer.stderr
    assert "Traceback" not in answer.stderr
