"""Logged models: a saved model's manifest and where its files are.

A model logged by a run keeps its files among the run's artifacts under its ``artifact_path``. A model
logged outside any run (MLflow 3's ``log_model`` with no active run) belongs to its experiment and keeps
its files in ``logged_model_files``. Every logged model, whichever client made it, is created by
:func:`record_logged_model`, which also records the event.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cairn.server.db.models import ArtifactVersionRow, BlobRow, LoggedModelFileRow, LoggedModelRow, RunRow
from cairn.server.db.upsert import insert_ignore
from cairn.server.services import artifacts, conventions, events, experiments, runs
from cairn.server.services.context import Context
from cairn.server.services.errors import ConflictError, InvalidInputError, NotFoundError
from cairn.server.services.validation import check_int, check_key
from cairn.server.storage.blobs import StoredBlob
from cairn.server.storage.paths import clean_artifact_path

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MODEL_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_MODEL_FILES = 10_000
MLFLOW_FLAVOR = "mlflow"  # a model in MLflow's format, logged through MLflow's API


@dataclass(frozen=True)
class NewModel:
    """What a logged model is made of; ``run_id`` None for a model outside any run."""

    experiment_id: int
    run_id: str | None
    name: str
    flavor: str
    manifest: dict[str, Any]
    artifact_path: str = ""
    step: int = -1


def is_size(value: Any) -> bool:
    return type(value) is int and 0 <= value < 2**63


def record_logged_model(session: Session, ctx: Context, new: NewModel) -> LoggedModelRow:
    """Create a logged model and record its event; a run may hold one model of a name per step."""
    model_id = uuid.uuid4().hex
    taken = session.scalar(select(LoggedModelRow.id).where(
        LoggedModelRow.run_id == new.run_id, LoggedModelRow.name == new.name,
        LoggedModelRow.step == new.step)) if new.run_id is not None else None
    if taken is not None:
        raise ConflictError(f"run {new.run_id} already has a model {new.name!r} at this step; pass step= for "
                            "checkpoints", field="name")
    row = LoggedModelRow(id=model_id, run_id=new.run_id, workspace_id=ctx.workspace_id,
                         experiment_id=new.experiment_id, name=new.name, step=new.step,
                         artifact_path=new.artifact_path or f"models/m-{model_id}", flavor=new.flavor,
                         manifest=new.manifest, created_at=events.now_ms())
    session.add(row)
    session.flush()
    owner = ("run", new.run_id) if new.run_id is not None else ("experiment", str(new.experiment_id))
    events.record(session, ctx, f"{owner[0]}.log_model", owner[0], owner[1],
                  after={"name": new.name, "logged_model_id": row.id, "flavor": new.flavor})
    if new.run_id is not None:
        conventions.refresh(session, new.run_id, ctx.workspace_id, new.experiment_id)
    return row


def unique_name(session: Session, run_id: str | None, name: str) -> str:
    """``name``, or ``name-<8 hex>`` when the run already has a model of that name (MLflow allows repeats)."""
    if run_id is None or session.scalar(select(LoggedModelRow.id).where(
            LoggedModelRow.run_id == run_id, LoggedModelRow.name == name, LoggedModelRow.step == -1)) is None:
        return name
    return f"{name}-{uuid.uuid4().hex[:8]}"


def log_model(session: Session, ctx: Context, run_id: str, *, name: str, artifact_path: str,
              manifest: Any, step: int | None = None) -> LoggedModelRow:
    """Record a model whose files the run already uploaded under ``artifact_path``; every file the
    manifest lists must be there with the digest the manifest gives."""
    run = runs.writable_run(session, ctx, run_id)
    check_key("name", name)
    if "/" in name:
        raise InvalidInputError(f"model name {name!r} must not contain '/'", field="name")
    base = clean_artifact_path(artifact_path, field="artifact_path")
    files = manifest_files(manifest)
    stored = latest_artifacts(session, run_id, base)
    for path, info in files.items():
        found = stored.get(f"{base}/{path}")
        if found is None or found != (f"sha256:{info['sha256']}", info["size"]):
            state = "is missing" if found is None else "has another digest or size than the manifest says"
            raise InvalidInputError(f"model file {base}/{path} {state}", field=f"manifest.files[{path!r}]")
    step_value = -1 if step is None else check_int("step", step)
    return record_logged_model(session, ctx, NewModel(run.experiment_id, run_id, name, str(manifest["flavor"]),
                                                      manifest, base, step_value))


def create_standalone(session: Session, ctx: Context, experiment_id: int, *, name: str,
                      manifest: Any) -> LoggedModelRow:
    """A model of an experiment, logged outside any run: its manifest first, then its files
    (:func:`put_file`), each checked against the manifest; it can be registered once all are there."""
    experiment = experiments.get_experiment(session, ctx, experiment_id)
    ctx.authorize("experiment", experiment.id)
    check_key("name", name)
    if "/" in name:
        raise InvalidInputError(f"model name {name!r} must not contain '/'", field="name")
    manifest_files(manifest)
    return record_logged_model(session, ctx, NewModel(experiment.id, None, name, str(manifest["flavor"]), manifest))


def check_complete(session: Session, row: LoggedModelRow) -> None:
    """Every file the manifest lists is stored, with its digest and size (a run's models are checked when
    they are logged; a model outside a run when it is registered)."""
    stored = stored_files(session, row)
    for path, info in manifest_files(row.manifest).items():
        if stored.get(path) != (f"sha256:{info['sha256']}", info["size"]):
            state = "was not uploaded" if path not in stored else "has another digest or size than the manifest"
            raise InvalidInputError(f"file {path!r} of logged model {row.id} {state}", field="source")


def manifest_files(manifest: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(manifest, dict) or not isinstance(manifest.get("flavor"), str):
        raise InvalidInputError("manifest must be an object with a flavor and files", field="manifest")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files or len(files) > MAX_MODEL_FILES:
        raise InvalidInputError(f"manifest.files must list 1 to {MAX_MODEL_FILES} files", field="manifest.files")
    for path, info in files.items():
        clean_artifact_path(path, field=f"manifest.files[{path!r}]")
        if not isinstance(info, dict) or not _SHA256.match(str(info.get("sha256", ""))) or \
                not is_size(info.get("size")):
            raise InvalidInputError(f"manifest.files[{path!r}] needs a sha256 (64 hex) and a size",
                                    field=f"manifest.files[{path!r}]")
    return files


def latest_artifacts(session: Session, run_id: str, base: str) -> dict[str, tuple[str, int]]:
    """The latest version of each of the run's artifacts under ``base/``: path -> (digest, size)."""
    a = ArtifactVersionRow
    latest = select(a.path, func.max(a.version).label("v")).where(
        a.run_id == run_id, a.path.startswith(base + "/", autoescape=True)).group_by(a.path).subquery()
    query = select(a.path, a.digest, a.size).join(
        latest, (a.path == latest.c.path) & (a.version == latest.c.v)).where(a.run_id == run_id)
    return {str(path): (str(digest), int(size)) for path, digest, size in session.execute(query)}


def list_logged_models(session: Session, ctx: Context, run_id: str) -> list[LoggedModelRow]:
    runs.get_run_row(session, ctx, run_id)
    query = select(LoggedModelRow).where(LoggedModelRow.run_id == run_id).order_by(
        LoggedModelRow.name, LoggedModelRow.step)
    return list(session.scalars(query))


def get_logged_model(session: Session, ctx: Context, model_id: Any, *, field_name: str = "model_id",
                     write: bool = False) -> LoggedModelRow:
    """A logged model of this workspace by id; another workspace's answers like a missing one."""
    row = session.get(LoggedModelRow, model_id) if isinstance(model_id, str) and _MODEL_ID.match(model_id) else None
    if row is None or row.workspace_id != ctx.workspace_id:
        raise NotFoundError(f"Logged model with ID '{str(model_id)[:80]}' not found", field=field_name)
    if write:
        ctx.authorize("experiment", row.experiment_id)
    return row


def resolve_logged_model(session: Session, ctx: Context, source: str) -> LoggedModelRow:
    """``runs:/<run_id>/<name>`` (the latest checkpoint of that name), ``runs:/<run_id>/<name>/<step>``,
    or a logged model id."""
    if not isinstance(source, str) or not source:
        raise InvalidInputError("source must be 'runs:/<run_id>/<model name>' or a logged model id", field="source")
    if not source.startswith("runs:/"):
        return get_logged_model(session, ctx, source, field_name="source")
    run_id, _, rest = source.removeprefix("runs:/").partition("/")
    name, _, step = rest.partition("/")
    runs.get_run_row(session, ctx, run_id, field_name="source")
    query = select(LoggedModelRow).where(LoggedModelRow.run_id == run_id, LoggedModelRow.name == name)
    if step:
        if not re.fullmatch(r"-?[0-9]{1,18}", step):
            raise InvalidInputError(f"source step {step!r} is not an integer", field="source")
        query = query.where(LoggedModelRow.step == int(step))
    row = session.scalar(query.order_by(LoggedModelRow.step.desc(), LoggedModelRow.created_at.desc()).limit(1))
    if row is None:
        raise NotFoundError(f"no logged model at {source!r}", field="source")
    return row


def run_of(session: Session, row: LoggedModelRow) -> RunRow | None:
    return session.get(RunRow, row.run_id) if row.run_id is not None else None


def experiment_of(session: Session, ctx: Context, row: LoggedModelRow) -> Any:
    return experiments.get_experiment(session, ctx, row.experiment_id)


# files of a model outside a run --------------------------------------------------------------------------

def put_file(session: Session, ctx: Context, model_id: str, path: str, blob: StoredBlob) -> None:
    """Store (or replace) a file of a logged model made outside a run. A model whose manifest lists its
    files (Cairn's own) takes only those files, with those digests; an MLflow model lists them when it is
    finalized."""
    row = get_logged_model(session, ctx, model_id, write=True)
    if row.run_id is not None:
        raise InvalidInputError(f"logged model {row.id} keeps its files among its run's artifacts", field="model_id")
    path = clean_artifact_path(path)
    listed = (row.manifest.get("files") or {}).get(path) if row.flavor != MLFLOW_FLAVOR else None
    if row.flavor != MLFLOW_FLAVOR and (listed is None or (f"sha256:{listed['sha256']}", listed["size"]) !=
                                   (blob.digest, blob.size)):
        raise InvalidInputError(f"file {path!r} is not in logged model {row.id}'s manifest with this digest and size",
                                field="path")
    now = events.now_ms()
    insert_ignore(session, BlobRow, [{"digest": blob.digest, "size": blob.size, "created_at": now}], ["digest"])
    existing = session.get(LoggedModelFileRow, (row.id, path))
    if existing is None:
        session.add(LoggedModelFileRow(logged_model_id=row.id, path=path, digest=blob.digest, size=blob.size,
                                       created_at=now))
    else:
        existing.digest, existing.size, existing.created_at = blob.digest, blob.size, now
    session.flush()


def stored_files(session: Session, row: LoggedModelRow) -> dict[str, tuple[str, int]]:
    """The model's files as stored now: path (relative to the model) -> (digest, size)."""
    if row.run_id is not None:
        base = row.artifact_path
        return {path[len(base) + 1:]: found for path, found in latest_artifacts(session, row.run_id, base).items()}
    query = select(LoggedModelFileRow.path, LoggedModelFileRow.digest, LoggedModelFileRow.size).where(
        LoggedModelFileRow.logged_model_id == row.id)
    return {str(path): (str(digest), int(size)) for path, digest, size in session.execute(query)}


def refresh_manifest_files(session: Session, row: LoggedModelRow, *, allow_empty: bool = False) -> None:
    """The files stored now under the model become its manifest's file list (digest and size). MLflow lets a
    logged model be finalized with no files (``allow_empty``)."""
    files = {path: {"sha256": digest.removeprefix("sha256:"), "size": size}
             for path, (digest, size) in stored_files(session, row).items()}
    if not files and not allow_empty:
        raise InvalidInputError(f"no files were uploaded for logged model m-{row.id}", field="source")
    row.manifest = {**row.manifest, "files": files}


def list_files(session: Session, row: LoggedModelRow, prefix: str = "") -> list[artifacts.ArtifactEntry]:
    """Direct children of ``prefix`` among the model's files (paths relative to the model)."""
    prefix = clean_artifact_path(prefix, field="path", allow_empty=True)
    base = f"{prefix}/" if prefix else ""
    files = (artifacts.ArtifactEntry(path, False, size, 1, digest) for path, (digest, size)
             in stored_files(session, row).items() if path.startswith(base))
    return artifacts.children(files, base)


def file_digest(session: Session, row: LoggedModelRow, path: str) -> tuple[str, int]:
    found = stored_files(session, row).get(clean_artifact_path(path))
    if found is None:
        raise NotFoundError(f"logged model m-{row.id} has no file {path!r}", field="path")
    return found
