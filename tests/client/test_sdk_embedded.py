"""The SDK against the embedded store: no server, same behaviour."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import cairn


def train(tmp_path: Path) -> cairn.ActiveRun:
    plot = tmp_path / "confusion.png"
    plot.write_bytes(b"first")
    with cairn.start_run(experiment="mnist", name="baseline", tags={"framework": "sklearn"}) as run:
        run.log_params({"lr": 0.01, "epochs": 10})
        run.define_metric("val_loss", goal="min")
        for epoch in range(10):
            run.log_metrics({"loss": 1.0 / (epoch + 1), "val_loss": abs(epoch - 6) / 10 + 0.1}, step=epoch)
        run.log_artifact(plot)
        plot.write_bytes(b"second")
        run.log_artifact(plot, "plots")
        run.log_artifact(plot, "plots")
        run.log_dataset(name="mnist", uri="s3://bucket/mnist/v3", digest="sha256:abc", role="train")
        run.log_param("lr", 0.02)
    return run


def check_example(run: cairn.ActiveRun, tmp_path: Path) -> None:
    client = cairn.Client()
    r = client.get_run(run.id)
    assert r.status == "FINISHED" and r.name == "baseline" and r.tags["framework"] == "sklearn"
    val = r.metrics["val_loss"]
    assert (val.min, val.min_step, val.best, val.best_step, val.count) == (0.1, 6, 0.1, 6, 10)
    assert (val.last, val.last_step, val.max, val.max_step) == (0.4, 9, 0.7, 0)
    assert math.isclose(r.at_best["val_loss"]["loss"], 1 / 7)
    assert r.params == {"lr": "0.02", "epochs": "10"}
    assert [p.value for p in client.get_param_history(run.id, "lr")] == ["0.01", "0.02"]
    assert [p.step for p in client.get_metric_history(run.id, "loss")] == list(range(10))
    assert [v.version for v in client.list_artifact_versions(run.id, "plots/confusion.png")] == [1, 2]
    assert Path(client.download_artifact(run.id, "confusion.png", tmp_path / "dl")).read_bytes() == b"first"
    assert r.datasets[0].uri == "s3://bucket/mnist/v3"
    found = client.search_runs(experiment="mnist", filter="metrics.val_loss.min < 0.3 and params.lr = '0.02'",
                               order_by=["metrics.val_loss.min ASC"])
    assert [x.id for x in found] == [run.id]


def test_issue_example_embedded(sdk_env: Path, tmp_path: Path) -> None:
    run = train(tmp_path)
    check_example(run, tmp_path)
    assert (sdk_env / "cairn.db").exists()


def test_failure_inside_marks_run_failed(sdk_env: Path) -> None:
    with pytest.raises(RuntimeError), cairn.start_run(experiment="e") as run:
        run.log_metric("x", 1.0)
        raise RuntimeError("boom")
    assert cairn.Client().get_run(run.id).status == "FAILED"


def test_nested_runs_and_module_shortcuts(sdk_env: Path) -> None:
    with cairn.start_run(experiment="sweep") as parent:
        with cairn.start_run(name="trial-1") as child:
            cairn.log_metric("acc", 0.9)
            cairn.log_param("depth", 3)
            cairn.set_tag("kind", "trial")
        cairn.log_metrics({"best_acc": 0.9})
    got = cairn.Client().get_run(child.id)
    assert got.parent_run_id == parent.id and got.params == {"depth": "3"} and got.tags["kind"] == "trial"
    assert got.metrics["acc"].last == 0.9


def test_steps_count_per_key_when_omitted(sdk_env: Path) -> None:
    with cairn.start_run(experiment="e") as run:
        for value in (3.0, 2.0, 1.0):
            run.log_metric("loss", value)
        run.log_metric("other", 5.0)
    points = cairn.Client().get_metric_history(run.id, "loss")
    assert [(p.step, p.value) for p in points] == [(0, 3.0), (1, 2.0), (2, 1.0)]


def test_non_finite_values_round_trip(sdk_env: Path) -> None:
    with cairn.start_run(experiment="e") as run:
        run.log_metrics({"x": float("nan")}, step=0)
        run.log_metrics({"x": float("inf")}, step=1)
        run.log_metrics({"x": float("-inf")}, step=2)
    values = [p.value for p in cairn.Client().get_metric_history(run.id, "x")]
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf]


def test_bad_values_raise_at_the_call(sdk_env: Path) -> None:
    with cairn.start_run(experiment="e") as run:
        with pytest.raises(TypeError, match="must be a number"):
            run.log_metric("x", "high")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="step must be an integer"):
            run.log_metric("x", 1.0, step=1.5)  # type: ignore[arg-type]
        with pytest.raises(FileNotFoundError):
            run.log_artifact("/no/such/file")


def test_bad_artifact_path_is_refused_at_the_call(sdk_env: Path, tmp_path: Path) -> None:
    source = tmp_path / "f.txt"
    source.write_text("x")
    with cairn.start_run(experiment="e") as run, pytest.raises(cairn.InvalidRequestError, match=r"'\.\.'"):
        run.log_artifact(source, "../outside")


def test_log_artifacts_folder_and_download_tree(sdk_env: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"w")
    (folder / "sub" / "cfg.json").write_text("{}")
    with cairn.start_run(experiment="e") as run:
        run.log_artifacts(folder, "model")
    local = Path(cairn.Client().download_artifact(run.id, "model", tmp_path / "out"))
    assert (local / "weights.bin").read_bytes() == b"w" and (local / "sub" / "cfg.json").read_text() == "{}"


def test_client_writes_a_last_batch_and_the_end_in_one_call(sdk_env: Path) -> None:
    client = cairn.Client()
    run = client.create_run("direct", name="one", tags={"k": "v"})
    assert (run.name, run.tags, run.status) == ("one", {"k": "v"}, "RUNNING")
    client.log_batch(run.id, params={"lr": 0.1}, metrics=[{"key": "loss", "steps": [0], "values": [0.5]}],
                     status="FINISHED", end_time=run.start_time + 5)
    got = client.get_run(run.id)
    assert (got.status, got.end_time, got.params, got.metrics["loss"].last) == (
        "FINISHED", run.start_time + 5, {"lr": "0.1"}, 0.5)
    with pytest.raises(cairn.InvalidRequestError, match="status"):
        client.log_batch(client.create_run("direct").id, params={"a": 1}, status="DONE")


def test_an_offline_run_with_a_bad_param_keeps_its_metrics_and_end_through_cairn_sync(
    sdk_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cairn.client._run import shutdown
    from cairn.client._sync import sync_spool

    monkeypatch.setenv("CAIRN_MODE", "offline")
    with cairn.start_run(experiment="away", capture_source=False) as run:
        run.log_params({"lr": 0.1, "notes": "x" * 9000})  # over the server's limit for a param value
        run.set_tag("kind", "trial")
        for step in range(5):
            run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    shutdown()  # the process ends: its spool is left for `cairn sync`
    monkeypatch.delenv("CAIRN_MODE")
    out: list[str] = []
    sync_spool(echo=out.append)
    got = cairn.Client().get_run(run.id)
    assert (got.status, got.metrics["loss"].count, got.tags["kind"]) == ("FINISHED", 5, "trial")
    assert "notes" not in got.params
    refused = [line for line in out if "refused" in line]
    assert len(refused) == 2 and "notes" in refused[0] and "1 refused" in refused[1], out


def test_source_is_captured(sdk_env: Path) -> None:
    with cairn.start_run(experiment="e") as run:
        pass
    tags = cairn.Client().get_run(run.id).tags
    assert {"cairn.source.entrypoint", "cairn.source.user", "cairn.source.host", "cairn.source.python"} <= set(tags)


def test_source_git_state(sdk_env: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    (repo / "train.py").write_text("print(1)\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    subprocess.run([*git, "remote", "add", "origin", "https://user:secret@example.invalid/team/repo.git"], check=True)
    from cairn.client._source import git_tags

    tags = git_tags(repo)
    assert tags["cairn.source.git.branch"] == "main" and tags["cairn.source.git.dirty"] == "false"
    assert tags["cairn.source.git.repo"] == "https://example.invalid/team/repo.git"
    (repo / "train.py").write_text("print(2)\n")
    assert git_tags(repo)["cairn.source.git.dirty"] == "true"


def test_source_capture_is_reused_for_a_few_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    from cairn.client import _source

    calls: list[object] = []
    monkeypatch.setattr(_source, "git_tags", lambda cwd: calls.append(cwd) or {"cairn.source.git.dirty": "false"})
    monkeypatch.setattr(_source, "_captured", {})
    first = _source.source_tags()
    first["mutated"] = "by the caller"
    assert _source.source_tags() == {k: v for k, v in first.items() if k != "mutated"} and len(calls) == 1
    monkeypatch.setattr(_source, "SOURCE_TTL", 0.0)
    _source.source_tags()
    assert len(calls) == 2


WRITER = textwrap.dedent("""
    import sys, cairn
    with cairn.start_run(experiment="shared", name=sys.argv[1]) as run:
        for step in range(2000):
            run.log_metrics({"loss": step * 0.5}, step=step)
            if step % 500 == 0:
                run.log_params({"p" + str(step): step})
""")


def test_two_processes_write_the_same_embedded_store(sdk_env: Path, tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "CAIRN_HOME": str(sdk_env)}
    procs = [subprocess.Popen([sys.executable, str(script), name], env=env, stderr=subprocess.PIPE)
             for name in ("one", "two")]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    runs = cairn.Client().search_runs(experiment="shared", order_by=["attributes.run_name"])
    assert [r.name for r in runs] == ["one", "two"]
    assert all(r.metrics["loss"].count == 2000 and len(r.params) == 4 for r in runs)
