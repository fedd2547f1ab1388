"""cairn.start_run(run_id=...) and start_run(experiment, run_key=...): several processes, one run.

Embedded (several processes on one CAIRN_HOME) and against a live server, on SQLite and PostgreSQL;
offline processes that share a key come together when synced.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import cairn
from tests.conftest import LiveServer

WORKER = textwrap.dedent("""
    import sys, cairn
    worker = sys.argv[1]
    run = cairn.start_run("racing", run_key="shared-key", name="shared", end_on_exit=False)
    run.log_metric("worker_" + worker, float(worker), step=0)
    run.log_params({"p" + worker: worker})
    run.detach()
    print(run.id, run.joined)
""")


def race(tmp_path: Path, env: dict[str, str], n: int = 6) -> list[tuple[str, bool]]:
    """``n`` processes start at once and ask for the same key."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [subprocess.Popen([sys.executable, str(script), str(i)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(n)]
    answers = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        run_id, joined = out.split()[-2:]
        answers.append((run_id, joined == "True"))
    return answers


def check_race(answers: list[tuple[str, bool]]) -> None:
    ids = {run_id for run_id, _ in answers}
    assert len(ids) == 1, answers
    assert sorted(joined for _, joined in answers) == [False] + [True] * (len(answers) - 1)
    run = cairn.Client().get_run(ids.pop())
    assert run.run_key == "shared-key" and run.status == "RUNNING" and run.name == "shared"
    assert {f"worker_{i}" for i in range(len(answers))} == set(run.metrics)
    assert {f"p{i}" for i in range(len(answers))} == set(run.params)
    assert len(cairn.Client().search_runs("racing")) == 1


def test_processes_racing_for_a_key_share_one_run_embedded(sdk_env: Path, tmp_path: Path) -> None:
    check_race(race(tmp_path, dict(os.environ)))


@pytest.fixture
def remote(sdk_env: Path, live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    monkeypatch.setenv("CAIRN_TRACKING_URI", live_server.url)
    return live_server


@pytest.mark.slow
def test_processes_racing_for_a_key_share_one_run_on_a_server(remote: LiveServer, tmp_path: Path) -> None:
    check_race(race(tmp_path, dict(os.environ)))


def test_a_joined_run_is_left_running_and_its_creator_ends_it(sdk_env: Path) -> None:
    with cairn.start_run("pipe", run_key="k") as owner:
        assert not owner.joined
        with cairn.start_run("pipe", run_key="k", nested=False) as worker:
            assert worker.joined and worker.id == owner.id
            worker.log_metric("from_worker", 1.0)
        assert cairn.Client().get_run(owner.id).status == "RUNNING"  # the worker did not end it
        owner.log_metric("from_owner", 2.0)
    run = cairn.Client().get_run(owner.id)
    assert run.status == "FINISHED" and set(run.metrics) == {"from_worker", "from_owner"}


def test_resume_by_id_reopens_an_ended_run(sdk_env: Path) -> None:
    with cairn.start_run("pipe") as first:
        first.log_metric("loss", 1.0, step=0)
    with cairn.start_run(run_id=first.id, tags={"resumed": "yes"}) as again:
        assert again.joined and again.name == first.name and again.experiment == "pipe"
        assert cairn.Client().get_run(first.id).status == "RUNNING"
        again.log_metric("loss", 0.5, step=1)
        again.finish()  # asked: a joined run ends when finish() is called
    run = cairn.Client().get_run(first.id)
    assert run.status == "FINISHED" and run.metrics["loss"].count == 2 and run.tags["resumed"] == "yes"
    with pytest.raises(cairn.NotFoundError):
        cairn.start_run(run_id="0" * 32)
    with pytest.raises(ValueError, match="not both"):
        cairn.start_run(run_id=first.id, run_key="k")


def test_an_error_in_a_joined_run_fails_it(sdk_env: Path) -> None:
    owner = cairn.start_run("pipe", run_key="fails")
    with pytest.raises(RuntimeError), cairn.start_run(run_id=owner.id):
        raise RuntimeError("node failed")
    assert cairn.Client().get_run(owner.id).status == "FAILED"
    owner.detach()


OFFLINE = textwrap.dedent("""
    import sys, cairn
    with cairn.start_run("offline-pipe", run_key="night", end_on_exit=True) as run:
        run.log_metric("part_" + sys.argv[1], 1.0)
    print(run.id)
""")


@pytest.mark.slow
def test_offline_processes_with_one_key_meet_when_synced(remote: LiveServer, tmp_path: Path) -> None:
    script = tmp_path / "offline.py"
    script.write_text(OFFLINE)
    env = {**os.environ, "CAIRN_MODE": "offline"}
    ids = set()
    for part in ("a", "b"):
        done = subprocess.run([sys.executable, str(script), part], env=env, capture_output=True, text=True,
                              timeout=120, check=True)
        ids.add(done.stdout.split()[-1])
    assert len(ids) == 1
    subprocess.run([sys.executable, "-m", "cairn", "sync"], env=dict(os.environ), capture_output=True, timeout=120,
                   check=True)
    run = cairn.Client().get_run(ids.pop())
    assert run.run_key == "night" and set(run.metrics) == {"part_a", "part_b"} and run.status == "FINISHED"


@pytest.mark.slow
def test_start_run_takes_a_token_so_one_process_logs_as_several_identities(tmp_path: Path, sdk_env: Path) -> None:
    store = f"sqlite:///{tmp_path / 'auth.db'}"
    env = {**os.environ, "CAIRN_PASSWORD": "root passphrase 1"}
    for args in (["create-user", "root", "--admin"], ["create-user", "ci", "--service"],
                 ["create-user", "trainer", "--service"], ["add-member", "default", "ci", "editor"],
                 ["add-member", "default", "trainer", "editor"]):
        done = subprocess.run([sys.executable, "-m", "cairn", "admin", "--store-uri", store, *args], env=env,
                              capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
    tokens = {}
    for user in ("ci", "trainer"):
        made = subprocess.run([sys.executable, "-m", "cairn", "admin", "--store-uri", store, "create-token", user,
                               "--name", "t", "--expires", "1d"], capture_output=True, text=True, timeout=120,
                              check=False, stdin=subprocess.DEVNULL)
        assert made.returncode == 0, made.stderr
        tokens[user] = made.stdout.strip()
    live = LiveServer(tmp_path / "home", store, args=("--auth",)).start()
    try:
        runs = {}
        for user, token in tokens.items():  # no CAIRN_TOKEN in the environment (sdk_env): only the argument
            with cairn.start_run("identities", tracking_uri=live.url, token=token) as run:
                run.log_metric("loss", 0.1, step=0)
            runs[user] = run.id
        reader = cairn.Client(live.url, token=tokens["ci"])
        assert {user: reader.get_run(run_id).user for user, run_id in runs.items()} == {"ci": "ci",
                                                                                        "trainer": "trainer"}
    finally:
        live.stop()


def _log_in_child(run: cairn.ActiveRun, value: float) -> None:
    run.log_metric("from_child", value, step=0)  # the parent's run object, in a forked child
    cairn.flush(timeout=30)


@pytest.mark.slow
def test_a_forked_child_logs_into_the_parents_run(remote: LiveServer) -> None:
    """multiprocessing's fork workers inherit the senders without their threads: the child makes its own, and
    what it logs lands in the run. (Against a server: SQLite must not be used across a fork, so the Kedro
    plugin spawns its workers in embedded mode.)"""
    import multiprocessing

    with cairn.start_run("forked") as run:
        run.log_metric("from_parent", 1.0)
        cairn.flush(timeout=30)
        child = multiprocessing.get_context("fork").Process(target=_log_in_child, args=(run, 2.0))
        child.start()
        child.join(60)
        assert child.exitcode == 0
        run.log_metric("from_parent", 3.0)
    got = cairn.Client().get_run(run.id)
    assert got.metrics["from_child"].last == 2.0 and got.metrics["from_parent"].count == 2
