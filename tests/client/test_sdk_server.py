"""The SDK against a real ``cairn server`` process, on SQLite and PostgreSQL; outages lose nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import cairn
from tests.client.test_sdk_embedded import check_example, train
from tests.conftest import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture
def remote(sdk_env: Path, live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    monkeypatch.setenv("CAIRN_TRACKING_URI", live_server.url)
    return live_server


def test_issue_example_against_server(remote: LiveServer, tmp_path: Path) -> None:
    run = train(tmp_path)
    check_example(run, tmp_path)


def test_killing_the_server_loses_no_accepted_point(remote: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    n = 3000
    with cairn.start_run(experiment="outage") as run:
        for step in range(n):
            run.log_metrics({"loss": float(step), "acc": step / n}, step=step)
            if step == 1000:
                cairn.flush(timeout=10)
                remote.kill()
            if step == 2000:
                remote.start()  # same port, same store
            if step % 250 == 0:
                time.sleep(0.01)
    got = cairn.Client().get_run(run.id)
    assert got.status == "FINISHED"
    assert (got.metrics["loss"].count, got.metrics["acc"].count) == (n, n)
    assert [p.step for p in cairn.Client().get_metric_history(run.id, "loss")] == list(range(n))


TRAINING = textwrap.dedent("""
    import cairn
    with cairn.start_run(experiment="away", name="spooled") as run:
        run.log_params({"lr": 0.1})
        for step in range(500):
            run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    print(run.id)
""")


def _run_training(tmp_path: Path, env: dict[str, str]) -> str:
    script = tmp_path / "train.py"
    script.write_text(TRAINING)
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def _sync(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "cairn", "sync"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_server_down_spools_and_cairn_sync_uploads(remote: LiveServer, sdk_env: Path, tmp_path: Path) -> None:
    remote.stop()
    env = {**os.environ, "CAIRN_RETRY_TIMEOUT": "1"}
    started = time.monotonic()
    run_id = _run_training(tmp_path, env)
    assert time.monotonic() - started < 60
    assert list((sdk_env / "spool").glob("*.jsonl"))
    remote.start()
    assert "synced" in _sync(env)
    got = cairn.Client().get_run(run_id)
    assert (got.status, got.params["lr"], got.metrics["loss"].count) == ("FINISHED", "0.1", 500)
    assert "nothing to sync" in _sync(env)


def test_offline_mode_then_sync(remote: LiveServer, sdk_env: Path, tmp_path: Path) -> None:
    env = {**os.environ, "CAIRN_MODE": "offline"}
    run_id = _run_training(tmp_path, env)
    with pytest.raises(cairn.NotFoundError):
        cairn.Client().get_run(run_id)
    _sync({**os.environ})
    assert cairn.Client().get_run(run_id).metrics["loss"].count == 500


def test_unreachable_server_does_not_block_start_run(sdk_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("CAIRN_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("CAIRN_RETRY_TIMEOUT", "0.5")
    started = time.monotonic()
    run = cairn.start_run(experiment="nowhere")
    for step in range(1000):
        run.log_metric("x", step, step=step)
    assert time.monotonic() - started < 5
    run.finish()
    assert list((sdk_env / "spool").glob("*.jsonl"))
