"""Versioned run artifacts: every path keeps versions 1, 2, ...; bytes live once, by digest."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cairn.server.db.models import ArtifactVersionRow, BlobRow
from cairn.server.db.upsert import insert_ignore
from cairn.server.services import events, runs
from cairn.server.services.context import Context
from cairn.server.services.errors import InvalidStateError, NotFoundError
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
    version = ArtifactVersionRow(run_id=run_id, path=path, version=(current or 0) + 1, digest=blob.digest,
                                 size=blob.size, created_at=events.now_ms(), created_by=ctx.actor)
    session.add(version)
    session.flush()
    events.record(session, ctx, "artifact.log", "run", run_id,
                  after={"path": path, "version": version.version, "digest": blob.digest})
    return version


def _is_prefix_of_file(session: Session, run_id: str, path: str) -> bool:
    query = select(ArtifactVersionRow.id).where(
        ArtifactVersionRow.run_id == run_id,
        ArtifactVersionRow.path.startswith(path + "/", autoescape=True)).limit(1)
    return session.scalar(query) is not None


def list_artifacts(session: Session, ctx: Context, run_id: str, prefix: str = "") -> list[ArtifactEntry]:
    """Direct children of ``prefix``: files (latest version) and folders."""
    runs.get_run_row(session, ctx, run_id)
    prefix = clean_artifact_path(prefix, field="path", allow_empty=True)
    base = f"{prefix}/" if prefix else ""
    a = ArtifactVersionRow
    latest = (
        select(a.path, func.max(a.version).label("version"))
        .where(a.run_id == run_id, a.path.startswith(base, autoescape=True))
        .group_by(a.path).subquery()
    )
    query = select(a).join(latest, (a.path == latest.c.path) & (a.version == latest.c.version)).where(
        a.run_id == run_id).order_by(a.path)
    entries: dict[str, ArtifactEntry] = {}
    for row in session.scalars(query):
        head, sep, _rest = row.path[len(base):].partition("/")
        if sep:
            entries.setdefault(base + head, ArtifactEntry(base + head, True))
        else:
            entries[row.path] = ArtifactEntry(row.path, False, row.size, row.version, row.digest, row.created_at)
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
