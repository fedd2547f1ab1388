"""Versioned run artifacts: every path keeps versions 1, 2, ...; bytes live once, by digest."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from cairn.server import observability
from cairn.server.db.models import ArtifactVersionRow, BlobRow
from cairn.server.db.upsert import insert_ignore
from cairn.server.services import events, runs
from cairn.server.services.context import Context
from cairn.server.services.errors import (
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    PayloadTooLargeError,
    ServiceError,
)
from cairn.server.storage.blobs import StoredBlob
from cairn.server.storage.paths import clean_artifact_path


@dataclass(frozen=True)
class ArtifactEntry:
    path: str
    is_dir: bool
    size: int | None = None
    version: int | None = None
    digest: str | None = None
    created_at: int | None = None


def record_version(session: Session, ctx: Context, run_id: str, path: str, blob: StoredBlob) -> ArtifactVersionRow:
    """Add the next version of ``path`` pointing at an already stored blob."""
    path = clean_artifact_path(path)
    row = runs.get_run_row(session, ctx, run_id, write=True)
    if row.lifecycle != "active":
        raise InvalidStateError(f"run {run_id} is deleted", field="run_id")
    insert_ignore(session, BlobRow, [{"digest": blob.digest, "size": blob.size, "created_at": events.now_ms()}],
                  ["digest"])
    runs.lock_run(session, run_id)
    current = session.scalar(select(func.max(ArtifactVersionRow.version)).where(
        ArtifactVersionRow.run_id == run_id, ArtifactVersionRow.path == path))
    if _is_prefix_of_file(session, run_id, path):
        raise InvalidStateError(f"{path!r} is a directory of this run's artifacts, not a file", field="path")
    file_above = _file_above(session, run_id, path)
    if file_above is not None:
        raise InvalidStateError(f"{path!r} would be inside {file_above!r}, which is a file of this run's artifacts",
                                field="path")
    version = ArtifactVersionRow(run_id=run_id, path=path, version=(current or 0) + 1, digest=blob.digest,
                                 size=blob.size, created_at=events.now_ms(), created_by=ctx.actor)
    session.add(version)
    session.flush()
    events.record(session, ctx, "artifact.log", "run", run_id,
                  after={"path": path, "version": version.version, "digest": blob.digest})
    observability.count("cairn_artifact_bytes_total", blob.size)
    return version


MAX_BATCH_FILES = 1000


def parse_batch(body: bytes) -> tuple[list[tuple[str, int]], int]:
    """A batch body: one JSON line ``{"files": [{"path": ..., "size": ...}, ...]}``, then the files' bytes
    one after another. Returns (path, size) per file, in order, and where the bytes start. Every path and
    size is checked here, before anything is stored."""
    end = body.find(b"\n")
    if end < 0:
        raise InvalidInputError("the body must start with a JSON line listing the files", field="files")
    try:
        manifest = orjson.loads(body[:end])
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"the files list is not valid JSON: {exc}", field="files") from exc
    items = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(items, list) or not items:
        raise InvalidInputError("files must be a non-empty list of {path, size}", field="files")
    if len(items) > MAX_BATCH_FILES:
        raise PayloadTooLargeError(f"files has {len(items)} items; the limit per request is {MAX_BATCH_FILES}",
                                   field="files")
    files = [_batch_item(i, item) for i, item in enumerate(items)]
    declared, present = sum(size for _, size in files), len(body) - end - 1
    if declared != present:
        raise InvalidInputError(f"the files list declares {declared} bytes but {present} follow it", field="files")
    return files, end + 1


def _batch_item(i: int, item: object) -> tuple[str, int]:
    if not isinstance(item, dict):
        raise InvalidInputError(f"files[{i}] must be an object with path and size", field=f"files[{i}]")
    path = clean_artifact_path(item.get("path"), field=f"files[{i}].path")
    size = item.get("size")
    if type(size) is not int or size < 0:
        raise InvalidInputError(f"files[{i}].size must be a whole number of bytes, 0 or more",
                                field=f"files[{i}].size")
    return path, size


def record_versions(session: Session, ctx: Context, run_id: str,
                    files: list[tuple[str, StoredBlob]]) -> list[ArtifactVersionRow]:
    """``record_version`` for each file in order, in the caller's one transaction: all or none. An error
    names the file by its place in the batch and its path."""
    rows = []
    for i, (path, blob) in enumerate(files):
        try:
            rows.append(record_version(session, ctx, run_id, path, blob))
        except ServiceError as exc:
            raise type(exc)(f"files[{i}] ({path!r}): {exc.message}", field=f"files[{i}].path") from exc
    return rows


def _is_prefix_of_file(session: Session, run_id: str, path: str) -> bool:
    # The whole pattern is one bound value: SQLite (case-sensitive LIKE) then seeks the (run_id, path)
    # index for the range; `startswith` sent `? || '%'`, which scanned every artifact row of the run.
    escaped = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = select(ArtifactVersionRow.id).where(
        ArtifactVersionRow.run_id == run_id,
        ArtifactVersionRow.path.like(escaped + "/%", escape="\\")).limit(1)
    return session.scalar(query) is not None


def _file_above(session: Session, run_id: str, path: str) -> str | None:
    """The file among ``path``'s parent folders, if one is a file: a path is a file or a folder, never both."""
    parts = path.split("/")
    parents = ["/".join(parts[:end]) for end in range(1, len(parts))]
    if not parents:
        return None
    return session.scalar(select(ArtifactVersionRow.path).where(
        ArtifactVersionRow.run_id == run_id, ArtifactVersionRow.path.in_(parents)).limit(1))


def list_artifacts(session: Session, ctx: Context, run_id: str, prefix: str = "") -> list[ArtifactEntry]:
    """Direct children of ``prefix``: files (latest version) and folders."""
    runs.get_run_row(session, ctx, run_id)
    prefix = clean_artifact_path(prefix, field="path", allow_empty=True)
    base = f"{prefix}/" if prefix else ""
    files = (ArtifactEntry(r.path, is_dir=False, size=r.size, version=r.version, digest=r.digest,
                           created_at=r.created_at) for r in session.scalars(latest_versions(run_id, base)))
    return children(files, base)


def latest_versions(run_id: str, base: str) -> Select[ArtifactVersionRow]:
    """The latest version of each of the run's artifacts whose path starts with ``base``, by path."""
    a = ArtifactVersionRow
    latest = (
        select(a.path, func.max(a.version).label("version"))
        .where(a.run_id == run_id, a.path.startswith(base, autoescape=True))
        .group_by(a.path).subquery()
    )
    return select(a).join(latest, (a.path == latest.c.path) & (a.version == latest.c.version)).where(
        a.run_id == run_id).order_by(a.path)


def children(files: Iterable[ArtifactEntry], base: str) -> list[ArtifactEntry]:
    """The direct children of folder ``base`` ("" or ending in "/") among ``files`` under it: files, and
    the folders that hold the deeper ones."""
    entries: dict[str, ArtifactEntry] = {}
    for entry in files:
        head, sep, _rest = entry.path[len(base):].partition("/")
        if sep:
            entries.setdefault(base + head, ArtifactEntry(base + head, is_dir=True))
        else:
            entries[entry.path] = entry
    return sorted(entries.values(), key=lambda e: e.path)


def list_versions(session: Session, ctx: Context, run_id: str, path: str) -> list[ArtifactVersionRow]:
    runs.get_run_row(session, ctx, run_id)
    path = clean_artifact_path(path)
    query = select(ArtifactVersionRow).where(
        ArtifactVersionRow.run_id == run_id, ArtifactVersionRow.path == path).order_by(ArtifactVersionRow.version)
    rows = list(session.scalars(query))
    if not rows:
        raise NotFoundError(f"run {run_id} has no artifact {path!r}", field="path")
    return rows


def get_version(session: Session, ctx: Context, run_id: str, path: str, version: int | None) -> ArtifactVersionRow:
    rows = list_versions(session, ctx, run_id, path)
    if version is None:
        return rows[-1]
    for row in rows:
        if row.version == version:
            return row
    raise NotFoundError(f"artifact {path!r} of run {run_id} has no version {version} "
                        f"(it has 1 to {rows[-1].version})", field="version")
