"""Run ids the SDK makes. Each workspace owns its own part of the id space (the first 12 hex characters are
the workspace's tag), so an id made here is stored as it is; the server maps any other proposal into the
workspace's part (``cairn.server.services.run_ids``), and the SDK follows the id it answers."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid

import orjson

from cairn.client._spool import Op

TAG_LEN = 12
_RUNS = "/api/v1/runs"


def workspace_tag(workspace: str) -> str:
    return hashlib.sha256(f"cairn-workspace\x00{workspace}".encode()).hexdigest()[:TAG_LEN]


def new_run_id(workspace: str) -> str:
    """A fresh run id of ``workspace`` (80 random bits after its tag)."""
    return workspace_tag(workspace) + uuid.uuid4().hex[: 32 - TAG_LEN]


def follow(op: Op, renamed: dict[str, str]) -> Op:
    """``op`` sent to the id the server answered for its run, when that differs from the id the op was
    written with (a spool written by an older SDK, or under another name of the workspace)."""
    if not renamed:
        return op
    if op.method == "POST" and op.path == _RUNS and op.body:
        body = orjson.loads(op.body)
        if isinstance(body, dict) and body.get("parent_run_id") in renamed:
            return dataclasses.replace(op, body=orjson.dumps({**body, "parent_run_id": renamed[body["parent_run_id"]]}))
        return op
    new = renamed.get(op.run_id or "")
    old = f"{_RUNS}/{op.run_id}"
    if new is None or not (op.path == old or op.path.startswith(old + "/")):
        return op
    return dataclasses.replace(op, path=f"{_RUNS}/{new}{op.path[len(old):]}", run_id=new)


def note_created(op: Op, answer: object, renamed: dict[str, str]) -> None:
    """Remember the id the server stored a run under when it is not the one the op proposed."""
    if op.method == "POST" and op.path == _RUNS and op.run_id and isinstance(answer, dict):
        stored = answer.get("run_id")
        if isinstance(stored, str) and stored != op.run_id:
            renamed[op.run_id] = stored


def stored_run_id(workspace: str, proposed: str) -> str:
    """The id the server stores a run proposed as ``proposed`` under (when no run of the workspace holds
    ``proposed`` itself): the proposal if it carries the workspace's tag, else an id derived from it."""
    tag = workspace_tag(workspace)
    digest = hashlib.sha256(f"cairn-run-id\x00{workspace}\x00{proposed}".encode()).hexdigest()
    return proposed if proposed.startswith(tag) else tag + digest[: 32 - TAG_LEN]
