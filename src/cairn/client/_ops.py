"""One write to the server (an ``Op``), as the sender queues it and as a spool file stores it (one
JSON line each), and how a refused run batch is split into its parts.

Apart from ``_spool`` (files, locks, replay) because the live sender makes and splits ops without a
spool file in sight.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

__all__ = ["ErrorFn", "Op", "ProgressFn", "RetryableError", "SendFn", "decode_op", "encode_op",
           "new_idempotency_key", "split_batch"]


def new_idempotency_key() -> str:
    """A fresh idempotency key (uuid4 hex)."""
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Op:
    """One write to the server.  The idempotency key is made once, when the op is made."""

    method: str
    path: str
    body: bytes | None
    idempotency_key: str = field(default_factory=new_idempotency_key)
    params: tuple[tuple[str, str], ...] = ()
    file: str | None = None
    run_id: str | None = None


class RetryableError(Exception):
    """Raised by a send function for connection errors, timeouts, 5xx and 429: try again later."""


SendFn = Callable[[Op], None]
ProgressFn = Callable[[int, int], None]
ErrorFn = Callable[[Op, Exception], None]


def encode_op(op: Op, file: str | None = None) -> bytes:
    """One spool line for ``op``; ``file`` (if given) replaces ``op.file``."""
    rec: dict[str, Any] = {
        "method": op.method,
        "path": op.path,
        "idempotency_key": op.idempotency_key,
        "params": [[k, v] for k, v in op.params],
        "file": op.file if file is None else file,
        "run_id": op.run_id,
        "body": None,
    }
    if op.body is not None:
        try:
            rec["body"] = op.body.decode("utf-8")
        except UnicodeDecodeError:
            rec["body_b64"] = base64.b64encode(op.body).decode("ascii")
    return orjson.dumps(rec) + b"\n"


def decode_op(line: bytes, base: Path) -> Op:
    """Parse one spool line; relative ``file`` paths are resolved against ``base``.

    Raises ValueError for anything malformed.
    """
    rec = orjson.loads(line)
    if not isinstance(rec, dict):
        raise ValueError("op line is not an object")
    try:
        return Op(
            method=_str(rec["method"]),
            path=_str(rec["path"]),
            body=_decode_body(rec),
            idempotency_key=_str(rec["idempotency_key"]),
            params=tuple((_str(k), _str(v)) for k, v in rec.get("params") or ()),
            file=None if rec.get("file") is None else str(base / _str(rec["file"])),
            run_id=None if rec.get("run_id") is None else _str(rec["run_id"]),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed op line: {exc!r}") from exc


def _decode_body(rec: dict[str, Any]) -> bytes | None:
    if rec.get("body_b64") is not None:
        return base64.b64decode(_str(rec["body_b64"]), validate=True)
    body = rec.get("body")
    return None if body is None else _str(body).encode("utf-8")


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


# --------------------------------------------------------------------------- refused batches

_BATCH_PARTS = ("metrics", "params", "tags")
_END_FIELDS = ("status", "end_time")
_MAX_KEY = 100  # what the server accepts for an Idempotency-Key


def split_batch(op: Op) -> list[Op]:
    """A refused run batch as separate requests: metrics, params, tags, then the run's end (as the run
    update, ``PATCH /api/v1/runs/<id>``).  Empty when there is nothing to gain: not a batch, or a batch
    of one part that is not the end."""
    if op.method != "POST" or not op.path.endswith("/batch") or not op.path.startswith("/api/v1/runs/"):
        return []
    try:
        body = orjson.loads(op.body or b"")
    except orjson.JSONDecodeError:
        return []
    if not isinstance(body, dict):
        return []
    end = {k: body[k] for k in _END_FIELDS if body.get(k) is not None}
    parts = [(n, "POST", op.path, {name: body[name]}) for n, name in enumerate(_BATCH_PARTS) if body.get(name)]
    if end:
        parts.append((len(_BATCH_PARTS), "PATCH", op.path.removesuffix("/batch"), end))
    if not end and len(parts) < 2:
        return []
    key = op.idempotency_key[: _MAX_KEY - 2]
    return [Op(method=method, path=path, body=orjson.dumps(part), idempotency_key=f"{key}.{n}", run_id=op.run_id)
            for n, method, path, part in parts]
