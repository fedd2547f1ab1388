"""Request models and response shapes of the registry API (each shape beside its builder: see ``tracking``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from cairn._wire import (  # re-exported: the answers this module declares
    AliasMove as AliasMove,
    LoggedModel as LoggedModel,
    RegisteredModel as RegisteredModel,
    Registry as Registry,
)
from cairn.server.db.models import AliasMoveRow, LoggedModelRow, RegistryRow
from cairn.server.schemas.tracking import NamedCreate, Shape, Strict
from cairn.server.services.registry import ModelView, VersionView
from cairn.server.services.workspaces import DEFAULT_REGISTRIES

DEFAULT_REGISTRY_NAMES = {name for name, _ in DEFAULT_REGISTRIES}


class RegistryCreate(NamedCreate):
    protected: bool = False


class RegistryUpdate(Strict):
    description: str | None = None
    protected: bool | None = None


class VersionCreate(Strict):
    source: str
    tags: dict[str, str] = Field(default_factory=dict)
    aliases: list[str] = Field(default_factory=list, max_length=100)
    description: str = ""


class VersionUpdate(Strict):
    description: str


class AliasSet(Strict):
    version: int
    reason: str = ""


class Promotion(Strict):
    to: str
    aliases: list[str] = Field(default_factory=list, max_length=100)
    note: str = ""


class LoggedModelCreate(Strict):
    name: str
    artifact_path: str
    manifest: dict[str, Any]
    step: int | None = None


class StandaloneModelCreate(Strict):
    name: str
    manifest: dict[str, Any]


class RegistryList(Shape):
    registries: list[Registry]


def registry_out(row: RegistryRow) -> dict[str, Any]:
    return {"name": row.name, "description": row.description, "protected": row.protected,
            "default": row.name in DEFAULT_REGISTRY_NAMES, "created_at": row.created_at}


class ModelList(Shape):
    models: list[RegisteredModel]


def model_out(view: ModelView) -> dict[str, Any]:
    row = view.row
    return {"name": f"{view.registry}.{row.name}", "registry": view.registry, "model": row.name,
            "description": row.description, "lifecycle": row.lifecycle, "tags": view.tags,
            "aliases": view.aliases, "latest_version": view.latest_version,
            "created_at": row.created_at, "updated_at": row.updated_at}


class StoredFile(Shape):
    path: str
    digest: str
    size: int


class VersionSource(Shape):
    """The version this one was promoted from."""

    model: str
    version: int
    run_id: str | None


class ModelVersion(Shape):
    name: str
    version: int
    run_id: str | None
    logged_model_id: str | None
    flavor: str
    manifest: dict[str, Any]
    lineage: dict[str, Any]
    source: VersionSource | None
    description: str
    status: str
    lifecycle: str
    note: str
    tags: dict[str, str]
    aliases: list[str]
    created_by: str
    created_at: int
    files: list[StoredFile]


class ModelVersionList(Shape):
    versions: list[ModelVersion]


def model_version_out(view: VersionView) -> dict[str, Any]:
    row = view.row
    return {"name": view.full_name, "version": row.version, "run_id": row.run_id,
            "logged_model_id": row.logged_model_id, "flavor": row.flavor, "manifest": row.manifest,
            "lineage": row.lineage, "source": view.source, "description": row.description,
            "status": row.status, "lifecycle": row.lifecycle, "note": row.note, "tags": view.tags,
            "aliases": sorted(view.aliases), "created_by": row.created_by, "created_at": row.created_at,
            "files": [{"path": f.path, "digest": f.digest, "size": f.size} for f in view.files]}


class AliasHistory(Shape):
    name: str
    alias: str
    moves: list[AliasMove]


def move_out(row: AliasMoveRow) -> dict[str, Any]:
    return {"alias": row.alias, "from_version": row.from_version, "to_version": row.to_version,
            "actor": row.actor, "reason": row.reason, "time": row.created_at}


class LoggedModelList(Shape):
    models: list[LoggedModel]


def logged_model_out(row: LoggedModelRow) -> dict[str, Any]:
    return {"id": row.id, "run_id": row.run_id, "name": row.name, "step": None if row.step < 0 else row.step,
            "artifact_path": row.artifact_path, "flavor": row.flavor, "manifest": row.manifest,
            "created_at": row.created_at, "experiment_id": row.experiment_id,
            "uri": f"runs:/{row.run_id}/{row.name}" if row.run_id else row.id}
