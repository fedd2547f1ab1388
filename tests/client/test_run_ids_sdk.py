"""Run ids through the SDK: the ids it makes are of its workspace and kept as they are; a spool written with
other ids (by an older SDK) is synced to the ids the server answers, parents and children included."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson

import cairn
from cairn.client._ids import stored_run_id, workspace_tag
from cairn.client._run import keyed_run_id
from cairn.client._spool import Op, SpoolWriter
from cairn.client._sync import sync_spool
from cairn.server.services import run_ids


def test_the_sdk_makes_ids_of_its_workspace_and_the_server_keeps_them(sdk_env: Path) -> None:
    assert workspace_tag("ml") == run_ids.workspace_tag("ml") != workspace_tag("nlp")
    proposed = uuid.uuid4().hex
    assert stored_run_id("ml", proposed) == run_ids.stored_run_id("ml", proposed)
    assert keyed_run_id("ml", "e", "k").startswith(workspace_tag("ml"))
    with cairn.start_run("e") as run:
        run.log_metric("loss", 0.5)
    assert run.id.startswith(workspace_tag("default"))
    stored = cairn.Client().get_run(run.id)
    assert stored.id == run.id and stored.metrics["loss"].last == 0.5


def op(method: str, path: str, body: dict, run_id: str) -> Op:
    return Op(method=method, path=path, body=orjson.dumps(body), run_id=run_id)


def test_an_old_spool_follows_the_ids_the_server_answers(sdk_env: Path) -> None:
    parent, child = uuid.uuid4().hex, uuid.uuid4().hex  # ids of no workspace, as SDKs made them before
    writer = SpoolWriter(sdk_env / "spool", f"embedded:{sdk_env}", "default")
    writer.append([
        op("POST", "/api/v1/runs", {"run_id": parent, "experiment_name": "old", "name": "parent"}, parent),
        op("POST", f"/api/v1/runs/{parent}/batch",
           {"metrics": [{"key": "loss", "steps": [0, 1], "values": [0.5, 0.25]}], "params": {"lr": "0.1"}}, parent),
        op("POST", "/api/v1/runs", {"run_id": child, "experiment_name": "old", "name": "child",
                                    "parent_run_id": parent}, child),
        op("PATCH", f"/api/v1/runs/{child}", {"status": "FINISHED"}, child),
        op("PATCH", f"/api/v1/runs/{parent}", {"status": "FAILED"}, parent),
    ])
    writer.close()
    lines: list[str] = []
    assert sync_spool(echo=lines.append) == 5, lines
    assert not any("refused" in line for line in lines[:-1]), lines
    runs = {r.name: r for r in cairn.Client().search_runs("old")}
    assert runs["parent"].id == stored_run_id("default", parent) != parent
    assert runs["parent"].status == "FAILED" and runs["parent"].params == {"lr": "0.1"}
    assert runs["parent"].metrics["loss"].min == 0.25
    assert runs["child"].parent_run_id == runs["parent"].id and runs["child"].status == "FINISHED"
