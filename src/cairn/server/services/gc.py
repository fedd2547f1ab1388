"""Garbage collection: purge what was soft-deleted, then free blobs nothing refers to any more.

A blob is kept while any artifact version or model version file names its digest. Rows are deleted
in a write transaction that re-checks references; files (or bucket objects) are removed only after it
commits. In a bucket, uploads begun more than an hour ago and never finished are removed too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Select, delete, exists, func, select

from cairn.server.db.engine import Database
from cairn.server.db.models import (
    ArtifactVersionRow,
    BlobRow,
    LoggedModelFileRow,
    ModelVersionFileRow,
    ModelVersionRow,
    RegisteredModelRow,
    RunRow,
)
from cairn.server.storage.blobs import BlobStore

Progress = Callable[[int, int], None]
ORPHAN_GRACE_SECONDS = 3600


@dataclass
class GcReport:
    runs: int = 0
    models: int = 0
    versions: int = 0
    blobs: int = 0
    bytes_freed: int = 0
    orphan_files: int = 0
    stale_uploads: int = 0


def collect(db: Database, blobs: BlobStore, *, dry_run: bool = False,
            progress: Progress | None = None) -> GcReport:
    report = GcReport()
    with db.session(write=True) as session:
        report.runs = session.scalar(select(func.count()).where(RunRow.lifecycle == "deleted")) or 0
        report.models = session.scalar(select(func.count()).where(RegisteredModelRow.lifecycle == "deleted")) or 0
        dead_versions = select(ModelVersionRow.id).where(
            (ModelVersionRow.lifecycle == "deleted") | ModelVersionRow.model_id.in_(
                select(RegisteredModelRow.id).where(RegisteredModelRow.lifecycle == "deleted")))
        report.versions = session.scalar(select(func.count()).select_from(dead_versions.subquery())) or 0
        if not dry_run:
            session.execute(delete(ModelVersionRow).where(ModelVersionRow.id.in_(dead_versions)))
            session.execute(delete(RegisteredModelRow).where(RegisteredModelRow.lifecycle == "deleted"))
            session.execute(delete(RunRow).where(RunRow.lifecycle == "deleted"))
    freed = _free_blobs(db, blobs, dry_run=dry_run, progress=progress)
    report.blobs, report.bytes_freed = len(freed), sum(size for _, size in freed)
    if not dry_run:
        report.orphan_files = _remove_orphan_files(db, blobs)
        report.stale_uploads = blobs.clean_uploads(time.time() - ORPHAN_GRACE_SECONDS)
    return report


def _unreferenced(*, dry_run: bool) -> Select[str, int]:
    """Blobs nothing refers to. A dry run has purged nothing, so it counts only live references (what
    would remain after the purge); a real run counts every reference, so an object soft-deleted since
    the purge keeps its bytes and can still be restored."""
    artifact = exists().where(ArtifactVersionRow.digest == BlobRow.digest)
    file = exists().where(ModelVersionFileRow.digest == BlobRow.digest)
    if dry_run:
        artifact = artifact.where(ArtifactVersionRow.run_id == RunRow.id, RunRow.lifecycle == "active")
        file = file.where(ModelVersionFileRow.version_id == ModelVersionRow.id, ModelVersionRow.lifecycle == "active",
                          ModelVersionRow.model_id == RegisteredModelRow.id, RegisteredModelRow.lifecycle == "active")
    model_file = exists().where(LoggedModelFileRow.digest == BlobRow.digest)  # models logged outside a run
    return select(BlobRow.digest, BlobRow.size).where(~artifact, ~file, ~model_file)


def _free_blobs(db: Database, blobs: BlobStore, *, dry_run: bool,
                progress: Progress | None) -> list[tuple[str, int]]:
    with db.session(write=not dry_run) as session:
        candidates = [(str(d), int(s)) for d, s in session.execute(_unreferenced(dry_run=dry_run))]
        if not dry_run and candidates:
            session.execute(delete(BlobRow).where(BlobRow.digest.in_([d for d, _ in candidates])))
    if dry_run:
        return candidates
    for done, (digest, _size) in enumerate(candidates, 1):
        blobs.delete(digest)
        if progress is not None:
            progress(done, len(candidates))
    return candidates


def _remove_orphan_files(db: Database, blobs: BlobStore) -> int:
    """Blobs with no row (a crash between storing the bytes and committing), older than an hour."""
    found = blobs.blobs(older_than=time.time() - ORPHAN_GRACE_SECONDS)
    if not found:
        return 0
    known: set[str] = set()
    listed = sorted(found)
    with db.session(write=False) as session:
        for start in range(0, len(listed), 500):
            known.update(session.scalars(select(BlobRow.digest).where(BlobRow.digest.in_(listed[start:start + 500]))))
    removed = found - known
    for digest in removed:
        blobs.delete(digest)
    return len(removed)
