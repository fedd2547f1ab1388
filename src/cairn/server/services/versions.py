"""Logged models, model versions, aliases (with their history) and promotion."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cairn.server.db.models import (
    AliasMoveRow,
    ModelAliasRow,
    ModelVersionFileRow,
    ModelVersionRow,
    ModelVersionTagRow,
    RegisteredModelRow,
    RegistryRow,
    RunRow,
    WorkspaceRow,
)
from cairn.server.services import conventions, events, logged_models, registry, runs
from cairn.server.services.context import Context
from cairn.server.services.errors import (
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    PermissionDeniedError,
)
from cairn.server.services.metrics import summarize
from cairn.server.services.numbers import num
from cairn.server.services.registry import VersionView, check_alias
from cairn.server.services.tags import write_tags
from cairn.server.services.tenancy import referenced
from cairn.server.services.validation import MAX_DESCRIPTION, MAX_ID, check_text
from cairn.server.storage.paths import clean_artifact_path

# versions ----------------------------------------------------------------------------------------------

def create_version(session: Session, ctx: Context, full_name: str, source: str, *,
                   tags: dict[str, str] | None = None, aliases: list[str] | None = None,
                   description: str = "") -> VersionView:
    """Register a logged model as the next version of ``full_name`` (the model is created if needed)."""
    registry.writable_registry(session, ctx, full_name)
    logged = logged_models.resolve_logged_model(session, ctx, source)
    if logged.run_id is None and logged.flavor != logged_models.MLFLOW_FLAVOR:  # MLflow's list files at finalize
        logged_models.check_complete(session, logged)
    for alias in aliases or []:
        check_alias(alias)
    run = logged_models.run_of(session, logged)
    files = {f"{path}": (f"sha256:{info['sha256']}", info["size"]) for path, info in logged.manifest["files"].items()}
    lineage: dict[str, Any] = _run_lineage(session, ctx, run) if run is not None else {
        "experiment_id": logged.experiment_id}
    lineage.update({"logged_model_id": logged.id, "logged_model_name": logged.name,
                    "step": None if logged.step < 0 else logged.step})
    row = add_version(session, ctx, full_name, run_id=logged.run_id, logged_model_id=logged.id,
                       source_version_id=None,
                       manifest=logged.manifest, lineage=lineage, files=files, description=description)
    return finish_version(session, ctx, full_name, row, tags or {}, aliases or [])


def _run_lineage(session: Session, ctx: Context, run: RunRow) -> dict[str, Any]:
    view = runs.read_run(session, ctx, run.id)  # with the metrics at each goal's best step
    return {
        "run_id": run.id, "run_name": run.name, "experiment_id": run.experiment_id,
        "metrics": {s.key: _summary_record(s) for s in view.metrics},
        "params": view.params,
        "datasets": [{f: getattr(d, f) for f in _DATASET_FIELDS} for d in view.datasets],
        "source": {k: v for k, v in view.tags.items() if k.startswith("cairn.source.")},
        "at_best": {k: {m: num(v) for m, v in values.items()} for k, values in view.at_best.items()},
    }


# every way a version is made (register, promote, import) passes through here, naming each part
_DATASET_FIELDS = ("name", "uri", "digest", "version", "role", "created_at")
_SERIES_FIELDS = ("key", "goal", "count", "last_step", "last_timestamp", "min_step", "max_step")


def _summary_record(series: Any) -> dict[str, Any]:
    """A metric's summary as the lineage stores it: a record of the store's, not an API answer."""
    s = summarize(series)
    values = {"last": s.last, "min": s.min, "max": s.max, "mean": s.mean, "best": s.best}
    return {**{f: getattr(series, f) for f in _SERIES_FIELDS}, **{k: num(v) for k, v in values.items()},
            "best_step": s.best_step}


def add_version(session: Session, ctx: Context, full_name: str, *, run_id: str | None, logged_model_id: str | None,  # noqa: PLR0913
                 source_version_id: int | None, manifest: dict[str, Any], lineage: dict[str, Any],
                 files: dict[str, tuple[str, int]], description: str, note: str = "",
                 approved: bool = False) -> ModelVersionRow:
    model, reg = registry.ensure_model(session, ctx, full_name)
    check_approval(session, ctx, reg, approved=approved)
    conventions.check_version(session, ctx, reg.protected, run_id, manifest, lineage)
    model.last_version += 1
    now = events.now_ms()
    row = ModelVersionRow(model_id=model.id, version=model.last_version, run_id=run_id,
                          logged_model_id=logged_model_id, source_version_id=source_version_id,
                          flavor=str(manifest.get("flavor", "")), manifest=manifest, lineage=lineage,
                          description=check_text("description", description, MAX_DESCRIPTION),
                          note=check_text("note", note, MAX_DESCRIPTION), status="READY", lifecycle="active",
                          created_by=ctx.actor, created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    session.add_all(ModelVersionFileRow(version_id=row.id, path=path, digest=digest, size=size)
                    for path, (digest, size) in files.items())
    model.updated_at = now
    return row


def finish_version(session: Session, ctx: Context, full_name: str, row: ModelVersionRow,
                    tags: dict[str, str], aliases: list[str]) -> VersionView:
    """Tag the new version and point its aliases at it; its view is made from what was written (only its
    files are read back, in the store's order)."""
    write_tags(session, ModelVersionTagRow, "version_id", row.id, tags)
    model = referenced(session, RegisteredModelRow, row.model_id)
    assert model is not None
    for alias in aliases:
        _point_alias(session, ctx, model, row, check_alias(alias), "")
    events.record(session, ctx, "model_version.create", "model_version", row.id,
                  after={"model": full_name, "version": row.version, "source_version_id": row.source_version_id})
    view = VersionView(row, model, registry.split_name(full_name)[0], tags=dict(tags), aliases=sorted(set(aliases)))
    view.files = list(session.scalars(select(ModelVersionFileRow).where(
        ModelVersionFileRow.version_id == row.id).order_by(ModelVersionFileRow.path)))
    if row.source_version_id is not None:
        view.source = _source_of(session, row.source_version_id)
    return view


def _version_row(session: Session, ctx: Context, full_name: str, version: Any, *, include_deleted: bool = False,
                 lock: bool = False, write: bool = False) -> tuple[ModelVersionRow, RegisteredModelRow, RegistryRow]:
    model, reg = registry._model_row(session, ctx, full_name, lock=lock, write=write)
    number = _version_number(version)
    row = session.scalar(select(ModelVersionRow).where(ModelVersionRow.model_id == model.id,
                                                       ModelVersionRow.version == number))
    if row is None or (row.lifecycle == "deleted" and not include_deleted):
        raise NotFoundError(f"model {reg.name}.{model.name} has no version {number}", field="version")
    return row, model, reg


def _version_number(version: Any) -> int:
    if isinstance(version, str) and re.fullmatch(r"[0-9]{1,10}", version):
        version = int(version)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_ID:
        raise InvalidInputError(f"version must be a positive integer, got {version!r}", field="version")
    return version


def get_version(session: Session, ctx: Context, full_name: str, version: Any, *,
                include_deleted: bool = False) -> VersionView:
    row, model, reg = _version_row(session, ctx, full_name, version, include_deleted=include_deleted)
    return version_views(session, [row], model, reg.name)[0]


def get_version_by_alias(session: Session, ctx: Context, full_name: str, alias: str) -> VersionView:
    model, reg = registry._model_row(session, ctx, full_name)
    check_alias(alias)
    row = session.scalar(select(ModelVersionRow).join(ModelAliasRow, ModelAliasRow.version_id == ModelVersionRow.id)
                         .where(ModelAliasRow.model_id == model.id, ModelAliasRow.alias == alias))
    if row is None:
        raise NotFoundError(f"model {reg.name}.{model.name} has no alias {alias!r}", field="alias")
    return version_views(session, [row], model, reg.name)[0]


def list_versions(session: Session, ctx: Context, full_name: str, *,
                  include_deleted: bool = False) -> list[VersionView]:
    model, reg = registry._model_row(session, ctx, full_name)
    query = select(ModelVersionRow).where(ModelVersionRow.model_id == model.id)
    if not include_deleted:
        query = query.where(ModelVersionRow.lifecycle == "active")
    return version_views(session, list(session.scalars(query.order_by(ModelVersionRow.version))), model, reg.name)


def version_views(session: Session, rows: list[ModelVersionRow], model: RegisteredModelRow,
                   registry_name: str) -> list[VersionView]:
    views = {r.id: VersionView(r, model, registry_name) for r in rows}
    ids = list(views)
    for tag in session.scalars(select(ModelVersionTagRow).where(ModelVersionTagRow.version_id.in_(ids))):
        views[tag.version_id].tags[tag.key] = tag.value
    for alias in session.scalars(select(ModelAliasRow).where(ModelAliasRow.version_id.in_(ids))):
        views[alias.version_id].aliases.append(alias.alias)
    for view in views.values():
        view.aliases.sort()
    for file in session.scalars(select(ModelVersionFileRow).where(
            ModelVersionFileRow.version_id.in_(ids)).order_by(ModelVersionFileRow.path)):
        views[file.version_id].files.append(file)
    for view in views.values():
        if view.row.source_version_id is not None:
            view.source = _source_of(session, view.row.source_version_id)
    return [views[i] for i in ids]


def _source_of(session: Session, version_id: int) -> dict[str, Any] | None:
    query = select(ModelVersionRow.version, RegisteredModelRow.name, RegistryRow.name, ModelVersionRow.run_id).join(
        RegisteredModelRow, RegisteredModelRow.id == ModelVersionRow.model_id).join(
        RegistryRow, RegistryRow.id == RegisteredModelRow.registry_id).where(ModelVersionRow.id == version_id)
    found = session.execute(query).first()
    if found is None:
        return None
    version, model, reg, run_id = found
    return {"model": f"{reg}.{model}", "version": version, "run_id": run_id}


def update_version(session: Session, ctx: Context, full_name: str, version: Any, description: str) -> VersionView:
    row, _, _ = _version_row(session, ctx, full_name, version, write=True)
    before = row.description
    row.description = check_text("description", description, MAX_DESCRIPTION)
    row.updated_at = events.now_ms()
    events.record(session, ctx, "model_version.update", "model_version", row.id,
                  before={"description": before}, after={"description": row.description})
    return get_version(session, ctx, full_name, version)


def set_version_lifecycle(session: Session, ctx: Context, full_name: str, version: Any, lifecycle: str) -> None:
    row, model, _ = _version_row(session, ctx, full_name, version, include_deleted=True, write=True)
    if row.lifecycle == lifecycle:
        raise InvalidStateError(f"version {row.version} of {full_name} is already {lifecycle}", field="version")
    if lifecycle == "deleted":
        for alias in session.scalars(select(ModelAliasRow).where(ModelAliasRow.version_id == row.id)):
            _move(session, ctx, model, alias.alias, from_version=row.version, to_version=None,
                  reason="version deleted")
            session.delete(alias)
    row.lifecycle, row.updated_at = lifecycle, events.now_ms()
    events.record(session, ctx, f"model_version.{'delete' if lifecycle == 'deleted' else 'restore'}",
                  "model_version", row.id, after={"model": full_name, "version": row.version})


def set_version_tags(session: Session, ctx: Context, full_name: str, version: Any, tags: dict[str, str]) -> None:
    row, _, _ = _version_row(session, ctx, full_name, version, write=True)
    write_tags(session, ModelVersionTagRow, "version_id", row.id, tags)
    events.record(session, ctx, "model_version.set_tags", "model_version", row.id, after=dict(tags))


def delete_version_tag(session: Session, ctx: Context, full_name: str, version: Any, key: str) -> None:
    row, _, _ = _version_row(session, ctx, full_name, version, write=True)
    tag = session.get(ModelVersionTagRow, (row.id, key))
    if tag is None:
        raise NotFoundError(f"version {row.version} of {full_name} has no tag {key!r}", field="key")
    session.delete(tag)
    events.record(session, ctx, "model_version.delete_tag", "model_version", row.id, before={key: tag.value})


def version_file(session: Session, ctx: Context, full_name: str, version: Any, path: str) -> ModelVersionFileRow:
    row, _, _ = _version_row(session, ctx, full_name, version)
    file = session.get(ModelVersionFileRow, (row.id, clean_artifact_path(path)))
    if file is None:
        raise NotFoundError(f"version {row.version} of {full_name} has no file {path!r}", field="path")
    return file


# aliases -----------------------------------------------------------------------------------------------

def set_alias(session: Session, ctx: Context, full_name: str, alias: str, version: Any,
              reason: str = "") -> VersionView:
    """Point ``alias`` at ``version``, taking it off the version it was on; the move is kept forever."""
    check_alias(alias)
    row, model, _ = _version_row(session, ctx, full_name, version, lock=True)
    _point_alias(session, ctx, model, row, alias, reason)
    return get_version(session, ctx, full_name, row.version)


def _point_alias(session: Session, ctx: Context, model: RegisteredModelRow, row: ModelVersionRow, alias: str,
                 reason: str) -> None:
    current = session.get(ModelAliasRow, (model.id, alias))
    previous = None
    if current is not None:
        old = referenced(session, ModelVersionRow, current.version_id)
        previous = old.version if old is not None else None
        if current.version_id == row.id:
            return
        current.version_id, current.updated_at = row.id, events.now_ms()
    else:
        session.add(ModelAliasRow(model_id=model.id, alias=alias, version_id=row.id, updated_at=events.now_ms()))
    _move(session, ctx, model, alias, from_version=previous, to_version=row.version, reason=reason)


def _move(session: Session, ctx: Context, model: RegisteredModelRow, alias: str, *, from_version: int | None,
          to_version: int | None, reason: str) -> None:
    session.add(AliasMoveRow(model_id=model.id, alias=alias, from_version=from_version, to_version=to_version,
                             actor=ctx.actor, reason=check_text("reason", reason, MAX_DESCRIPTION),
                             created_at=events.now_ms()))
    events.record(session, ctx, "alias.move", "model", model.id,
                  before={"alias": alias, "version": from_version}, after={"alias": alias, "version": to_version})


def delete_alias(session: Session, ctx: Context, full_name: str, alias: str) -> None:
    check_alias(alias)
    model, _ = registry._model_row(session, ctx, full_name, lock=True)
    current = session.get(ModelAliasRow, (model.id, alias))
    if current is None:
        raise NotFoundError(f"model {full_name} has no alias {alias!r}", field="alias")
    old = referenced(session, ModelVersionRow, current.version_id)
    session.delete(current)
    _move(session, ctx, model, alias, from_version=old.version if old else None, to_version=None,
          reason="alias deleted")


def alias_history(session: Session, ctx: Context, full_name: str, alias: str) -> list[AliasMoveRow]:
    check_alias(alias)
    model, _ = registry._model_row(session, ctx, full_name)
    query = select(AliasMoveRow).where(AliasMoveRow.model_id == model.id, AliasMoveRow.alias == alias)
    rows = list(session.scalars(query.order_by(AliasMoveRow.id)))
    if not rows:
        raise NotFoundError(f"model {full_name} never had an alias {alias!r}", field="alias")
    return rows


def rollback_alias(session: Session, ctx: Context, full_name: str, alias: str) -> VersionView:
    """Move ``alias`` back to the version it pointed at before its last move."""
    history = alias_history(session, ctx, full_name, alias)
    previous = history[-1].from_version
    if previous is None:
        raise InvalidStateError(f"alias {alias!r} of {full_name} has no earlier version to roll back to",
                                field="alias")
    return set_alias(session, ctx, full_name, alias, previous, reason=f"rollback from {history[-1].to_version}")


# promotion ---------------------------------------------------------------------------------------------

def check_approval(session: Session, ctx: Context, target: RegistryRow, *, approved: bool) -> None:
    """New versions in a protected registry of a workspace that requires approval come only from an
    approved promotion request."""
    if not target.protected or approved:
        return
    workspace = session.get(WorkspaceRow, ctx.workspace_id)
    if workspace is not None and workspace.require_approval:
        raise PermissionDeniedError(
            f"registry {target.name!r} is protected and workspace {ctx.workspace!r} requires approval: request a "
            "promotion into it (request_promotion) for a second person to approve", field="to")


def promote(session: Session, ctx: Context, full_name: str, version: Any, to: str, *,
            aliases: list[str] | None = None, note: str = "", approved: bool = False) -> VersionView:
    """Copy a version into another registry as a new version there, recording where it came from.
    Promoting the same source version to the same model again returns the version made the first time."""
    source, model, reg = _version_row(session, ctx, full_name, version)
    target_registry, target_name = registry.split_name(to, "to")
    if target_registry == reg.name:
        raise InvalidInputError(f"cannot promote within registry {reg.name!r}; choose another registry",
                                field="to")
    check_approval(session, ctx, registry.get_registry(session, ctx, target_registry, "to"), approved=approved)
    for alias in aliases or []:
        check_alias(alias)
    target_full = f"{target_registry}.{target_name}"
    target_model, _ = registry.ensure_model(session, ctx, target_full)
    existing = session.scalar(select(ModelVersionRow).where(ModelVersionRow.model_id == target_model.id,
                                                            ModelVersionRow.source_version_id == source.id,
                                                            ModelVersionRow.lifecycle == "active"))
    if existing is not None:
        for alias in aliases or []:
            set_alias(session, ctx, target_full, alias, existing.version)
        return get_version(session, ctx, target_full, existing.version)
    files = {f.path: (f.digest, f.size) for f in session.scalars(
        select(ModelVersionFileRow).where(ModelVersionFileRow.version_id == source.id))}
    lineage = {**source.lineage, "promoted_from": {"model": f"{reg.name}.{model.name}", "version": source.version,
                                                    "by": ctx.actor, "at": events.now_ms(), "note": note}}
    row = add_version(session, ctx, target_full, run_id=source.run_id, logged_model_id=source.logged_model_id,
                       source_version_id=source.id, manifest=source.manifest, lineage=lineage, files=files,
                       description=source.description, note=note, approved=approved)
    events.record(session, ctx, "model_version.promote", "model_version", row.id,
                  after={"from": f"{reg.name}.{model.name}/{source.version}", "to": f"{target_full}/{row.version}",
                         "note": note})
    return finish_version(session, ctx, target_full, row, {}, aliases or [])
