"""The model registry: registries, registered models, versions, aliases with history, promotion.

A model's full name is ``<registry>.<model>`` (``dev.mnist``); a name with no dot lives in the
workspace's default registry, ``dev``. The text before the first dot always names the registry.
Versions are numbered per model without gaps: the model row is locked while a version is added.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cairn.server.authz import MAINTAINER
from cairn.server.db.models import (
    ModelAliasRow,
    ModelVersionFileRow,
    ModelVersionRow,
    RegisteredModelRow,
    RegisteredModelTagRow,
    RegistryRow,
)
from cairn.server.db.upsert import insert_ignore
from cairn.server.services import events
from cairn.server.services.context import Context
from cairn.server.services.errors import ConflictError, InvalidInputError, InvalidStateError, NotFoundError
from cairn.server.services.tags import rename_and_describe, write_tags
from cairn.server.services.validation import (
    MAX_DESCRIPTION,
    check_text,
)

DEFAULT_REGISTRY = "dev"
_REGISTRY_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_NAME_PATTERN = 250
_MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,249}$")


@dataclass
class ModelView:
    row: RegisteredModelRow
    registry: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    latest_version: int | None = None


@dataclass
class VersionView:
    row: ModelVersionRow
    model: RegisteredModelRow
    registry: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    files: list[ModelVersionFileRow] = field(default_factory=list)
    source: dict[str, Any] | None = None  # the version it was promoted from

    @property
    def full_name(self) -> str:
        return f"{self.registry}.{self.model.name}"


def split_name(full_name: str, field_name: str = "name") -> tuple[str, str]:
    """``dev.mnist`` -> (``dev``, ``mnist``); ``mnist`` -> (``dev``, ``mnist``)."""
    if not isinstance(full_name, str) or not full_name:
        raise InvalidInputError(f"{field_name} must be a model name like 'dev.mnist'", field=field_name)
    registry, dot, model = full_name.partition(".")
    if not dot:
        registry, model = DEFAULT_REGISTRY, full_name
    check_model_name(model, field_name)
    return registry, model


def check_model_name(name: str, field_name: str = "name") -> str:
    if not _MODEL_NAME.match(name) or ".." in name:
        raise InvalidInputError(
            f"{field_name}: model name {name[:100]!r} must be 1-250 letters, digits, '_', '-' or '.', "
            "starting with a letter, digit or '_' (no '/', '@' or spaces)", field=field_name)
    return name


def check_alias(alias: Any, field_name: str = "alias") -> str:
    """Aliases must never be mistaken for a version number or break a models:/ URI."""
    if not isinstance(alias, str) or not alias:
        raise InvalidInputError(f"{field_name} must be a non-empty string", field=field_name)
    if alias.isdigit() or re.fullmatch(r"v?\d+", alias, re.IGNORECASE):
        raise InvalidInputError(f"{field_name} {alias!r} looks like a version number; aliases must not",
                                field=field_name)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-.]{0,63}", alias):
        raise InvalidInputError(
            f"{field_name} {alias[:100]!r} must start with a letter or '_' and contain only letters, digits, "
            "'_', '-' and '.' (no '/', '@' or spaces), at most 64", field=field_name)
    return alias


# registries --------------------------------------------------------------------------------------------

def list_registries(session: Session, ctx: Context) -> list[RegistryRow]:
    query = select(RegistryRow).where(RegistryRow.workspace_id == ctx.workspace_id).order_by(RegistryRow.name)
    return list(session.scalars(query))


def get_registry(session: Session, ctx: Context, name: str, field_name: str = "registry") -> RegistryRow:
    """The registry; found once per transaction (registering a version asks for it twice)."""
    seen: dict[tuple[int, str], RegistryRow] = session.info.setdefault("registries", {})
    row = seen.get((ctx.workspace_id, name)) if isinstance(name, str) else None
    if row is None and isinstance(name, str):
        row = session.scalar(select(RegistryRow).where(RegistryRow.workspace_id == ctx.workspace_id,
                                                       RegistryRow.name == name))
    if row is None:
        raise NotFoundError(f"registry {name!r} does not exist", field=field_name)
    seen[(ctx.workspace_id, name)] = row
    return row


def create_registry(session: Session, ctx: Context, name: str, description: str = "", *,
                    protected: bool = False) -> RegistryRow:
    if not isinstance(name, str) or not _REGISTRY_NAME.match(name):
        raise InvalidInputError("registry name must be 1-64 lowercase letters, digits, '_' or '-'", field="name")
    if session.scalar(select(RegistryRow.id).where(RegistryRow.workspace_id == ctx.workspace_id,
                                                   RegistryRow.name == name)) is not None:
        raise ConflictError(f"registry {name!r} already exists", field="name")
    clash = select(RegisteredModelRow.name).join(RegistryRow, RegistryRow.id == RegisteredModelRow.registry_id).where(
        RegistryRow.workspace_id == ctx.workspace_id, RegistryRow.name == DEFAULT_REGISTRY,
        RegisteredModelRow.name.startswith(name + ".", autoescape=True)).limit(1)
    if session.scalar(clash) is not None:
        raise ConflictError(f"registry {name!r} would make MLflow clients read model {session.scalar(clash)!r} of "
                            f"registry {DEFAULT_REGISTRY!r} as a model of {name!r}; rename that model first",
                            field="name")
    row = RegistryRow(workspace_id=ctx.workspace_id, name=name, protected=protected,
                      description=check_text("description", description, MAX_DESCRIPTION), created_at=events.now_ms())
    session.add(row)
    session.flush()
    events.record(session, ctx, "registry.create", "registry", row.id, after={"name": name, "protected": protected})
    return row


# MLflow's names -----------------------------------------------------------------------------------------
# MLflow has one flat namespace of model names; Cairn has registries. The mapping, both ways:
#   a model of the default registry ``dev`` is seen by its own name (``churn``, ``team.churn``);
#   a model of any other registry R is seen as ``R.<name>`` (``prod.churn``).
# An MLflow name ``R.M`` whose R is a registry of the workspace names model M of R (``dev.churn`` is
# ``churn``); any other name is a model of ``dev``, dots included. For that to be one-to-one, a model of
# ``dev`` may not be named ``R.<...>`` for a registry R, and a registry may not be created with the first
# segment of a ``dev`` model's name (:func:`_check_unambiguous`).

def to_mlflow_name(registry_name: str, name: str) -> str:
    return name if registry_name == DEFAULT_REGISTRY else f"{registry_name}.{name}"


def from_mlflow_name(session: Session, ctx: Context, name: Any, field_name: str = "name") -> str:
    """The Cairn full name (``<registry>.<model>``) of the model MLflow clients call ``name``."""
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"Missing value for required parameter '{field_name}'", field=field_name)
    head, dot, rest = name.partition(".")
    if dot and rest and session.scalar(select(RegistryRow.id).where(RegistryRow.workspace_id == ctx.workspace_id,
                                                                    RegistryRow.name == head)) is not None:
        return name
    return f"{DEFAULT_REGISTRY}.{name}"


def _check_unambiguous(session: Session, ctx: Context, registry: RegistryRow, name: str) -> None:
    """A model of the default registry must not be named like a model of another (see above)."""
    head, dot, _ = name.partition(".")
    if registry.name != DEFAULT_REGISTRY or not dot:
        return
    if session.scalar(select(RegistryRow.id).where(RegistryRow.workspace_id == ctx.workspace_id,
                                                   RegistryRow.name == head)) is not None:
        raise InvalidInputError(
            f"a model of registry {DEFAULT_REGISTRY!r} cannot be named {name!r}: MLflow clients would read it as "
            f"model {name.partition('.')[2]!r} of registry {head!r}", field="name")


# registered models -------------------------------------------------------------------------------------

def authorize_registry(ctx: Context, registry: RegistryRow) -> None:
    """The caller changes something in ``registry``: a protected registry needs a maintainer."""
    ctx.authorize("registry", registry.id, MAINTAINER if registry.protected else None)


def writable_registry(session: Session, ctx: Context, name: str) -> RegistryRow:
    """The registry named by a model's full name, checked for the caller's right to add to it."""
    row = get_registry(session, ctx, split_name(name)[0])
    authorize_registry(ctx, row)
    return row


def _model_row(session: Session, ctx: Context, full_name: str, *, lock: bool = False, write: bool = False,
               include_deleted: bool = False) -> tuple[RegisteredModelRow, RegistryRow]:
    """The model; with ``lock`` or ``write`` the caller is about to change it and must be allowed to."""
    registry_name, name = split_name(full_name)
    query = select(RegisteredModelRow, RegistryRow).join(RegistryRow, RegistryRow.id == RegisteredModelRow.registry_id)
    query = query.where(RegistryRow.workspace_id == ctx.workspace_id, RegistryRow.name == registry_name,
                        RegisteredModelRow.name == name)  # one query; the errors below tell which part is missing
    found = session.execute(query.with_for_update(of=RegisteredModelRow) if lock else query).first()
    registry = found[1] if found is not None else get_registry(session, ctx, registry_name)
    if lock or write:
        authorize_registry(ctx, registry)
    row = found[0] if found is not None else None
    if row is None or (row.lifecycle == "deleted" and not include_deleted):
        raise NotFoundError(f"model {registry.name}.{name} does not exist", field="name")
    return row, registry


def get_model(session: Session, ctx: Context, full_name: str, *, include_deleted: bool = False) -> ModelView:
    row, registry = _model_row(session, ctx, full_name, include_deleted=include_deleted)
    return model_views(session, [(row, registry.name)])[0]


def create_model(session: Session, ctx: Context, full_name: str, description: str = "",
                 tags: dict[str, str] | None = None) -> RegisteredModelRow:
    registry_name, name = split_name(full_name)
    registry = get_registry(session, ctx, registry_name)
    authorize_registry(ctx, registry)
    existing = session.scalar(select(RegisteredModelRow).where(RegisteredModelRow.registry_id == registry.id,
                                                               RegisteredModelRow.name == name))
    if existing is not None:
        state = " (deleted: restore it or choose another name)" if existing.lifecycle == "deleted" else ""
        raise ConflictError(f"model {registry.name}.{name} already exists{state}", field="name")
    return _insert_model(session, ctx, registry, name, description, tags or {})


def _insert_model(session: Session, ctx: Context, registry: RegistryRow, name: str, description: str,
                  tags: dict[str, str]) -> RegisteredModelRow:
    _check_unambiguous(session, ctx, registry, name)
    now = events.now_ms()
    insert_ignore(session, RegisteredModelRow, [{
        "workspace_id": ctx.workspace_id, "registry_id": registry.id, "name": name, "last_version": 0,
        "description": check_text("description", description, MAX_DESCRIPTION), "lifecycle": "active",
        "created_at": now, "updated_at": now}], ["registry_id", "name"])
    row = session.scalar(select(RegisteredModelRow).where(RegisteredModelRow.registry_id == registry.id,
                                                          RegisteredModelRow.name == name))
    assert row is not None
    write_tags(session, RegisteredModelTagRow, "model_id", row.id, tags)
    events.record(session, ctx, "model.create", "model", row.id, after={"name": f"{registry.name}.{name}"})
    return row


def ensure_model(session: Session, ctx: Context, full_name: str) -> tuple[RegisteredModelRow, RegistryRow]:
    """The model, created if missing, locked so a version number can be taken safely."""
    registry_name, name = split_name(full_name)
    registry = get_registry(session, ctx, registry_name)
    authorize_registry(ctx, registry)
    query = select(RegisteredModelRow).where(RegisteredModelRow.registry_id == registry.id,
                                             RegisteredModelRow.name == name).with_for_update()
    row = session.scalar(query)
    if row is None:
        _insert_model(session, ctx, registry, name, "", {})
        row = session.scalar(query)
    assert row is not None
    if row.lifecycle == "deleted":
        raise InvalidStateError(f"model {registry.name}.{name} is deleted; restore it first", field="name")
    return row, registry


def search_models(session: Session, ctx: Context, *, registry: str | None = None, name_like: str | None = None,
                  tags: dict[str, str] | None = None, include_deleted: bool = False, limit: int = 100,
                  offset: int = 0) -> list[ModelView]:
    query = select(RegisteredModelRow, RegistryRow.name).join(
        RegistryRow, RegistryRow.id == RegisteredModelRow.registry_id).where(
        RegisteredModelRow.workspace_id == ctx.workspace_id)
    if registry is not None:
        query = query.where(RegistryRow.id == get_registry(session, ctx, registry).id)
    if name_like:  # matched by the database's LIKE (linear in the name), never turned into a regex
        if len(name_like) > MAX_NAME_PATTERN:
            raise InvalidInputError(f"name_like may be at most {MAX_NAME_PATTERN} characters", field="name_like")
        query = query.where(RegisteredModelRow.name.like(name_like))
    if not include_deleted:
        query = query.where(RegisteredModelRow.lifecycle == "active")
    for key, value in (tags or {}).items():
        tag = select(RegisteredModelTagRow.model_id).where(RegisteredModelTagRow.key == key,
                                                            RegisteredModelTagRow.value == value)
        query = query.where(RegisteredModelRow.id.in_(tag))
    query = query.order_by(RegistryRow.name, RegisteredModelRow.name).limit(limit).offset(offset)
    return model_views(session, [(row, reg) for row, reg in session.execute(query)])


def model_views(session: Session, rows: list[tuple[RegisteredModelRow, str]]) -> list[ModelView]:
    views = {row.id: ModelView(row, registry) for row, registry in rows}
    ids = list(views)
    for model_id, key, value in session.execute(select(
            RegisteredModelTagRow.model_id, RegisteredModelTagRow.key, RegisteredModelTagRow.value).where(
            RegisteredModelTagRow.model_id.in_(ids))):
        views[model_id].tags[key] = value
    for model_id, alias, version in session.execute(select(
            ModelAliasRow.model_id, ModelAliasRow.alias, ModelVersionRow.version).join(
            ModelVersionRow, ModelVersionRow.id == ModelAliasRow.version_id).where(ModelAliasRow.model_id.in_(ids))):
        views[model_id].aliases[alias] = version
    latest_versions = select(ModelVersionRow.model_id, func.max(ModelVersionRow.version)).where(
        ModelVersionRow.model_id.in_(ids), ModelVersionRow.lifecycle == "active").group_by(ModelVersionRow.model_id)
    for model_id, latest in session.execute(latest_versions):
        views[model_id].latest_version = latest
    return list(views.values())


def update_model(session: Session, ctx: Context, full_name: str, *, new_name: str | None = None,
                 description: str | None = None) -> RegisteredModelRow:
    row, registry = _model_row(session, ctx, full_name, write=True)

    def claim(name: str) -> str:
        target_registry, target = split_name(name, "new_name") if "." in name else (registry.name, name)
        check_model_name(target, "new_name")
        if target_registry != registry.name:
            raise InvalidInputError("renaming cannot move a model to another registry; promote it instead",
                                    field="new_name")
        if session.scalar(select(RegisteredModelRow.id).where(RegisteredModelRow.registry_id == registry.id,
                                                              RegisteredModelRow.name == target)) is not None:
            raise ConflictError(f"model {registry.name}.{target} already exists", field="new_name")
        _check_unambiguous(session, ctx, registry, target)
        return target
    rename_and_describe(session, ctx, row, object_type="model", name=new_name, description=description,
                        claim_name=claim)
    return row


def set_model_lifecycle(session: Session, ctx: Context, full_name: str, lifecycle: str) -> None:
    row, _ = _model_row(session, ctx, full_name, write=True, include_deleted=True)
    if row.lifecycle == lifecycle:
        raise InvalidStateError(f"model {full_name} is already {lifecycle}", field="name")
    row.lifecycle, row.updated_at = lifecycle, events.now_ms()
    events.record(session, ctx, f"model.{'delete' if lifecycle == 'deleted' else 'restore'}", "model", row.id)


def set_model_tags(session: Session, ctx: Context, full_name: str, tags: dict[str, str]) -> None:
    row, _ = _model_row(session, ctx, full_name, write=True)
    write_tags(session, RegisteredModelTagRow, "model_id", row.id, tags)
    events.record(session, ctx, "model.set_tags", "model", row.id, after=dict(tags))


def delete_model_tag(session: Session, ctx: Context, full_name: str, key: str) -> None:
    row, _ = _model_row(session, ctx, full_name, write=True)
    tag = session.get(RegisteredModelTagRow, (row.id, key))
    if tag is None:
        raise NotFoundError(f"model {full_name} has no tag {key!r}", field="key")
    session.delete(tag)
    events.record(session, ctx, "model.delete_tag", "model", row.id, before={key: tag.value})
