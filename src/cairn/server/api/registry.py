"""/api/v1/registries and /api/v1/models: the model registry."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from cairn.server.api import transaction as tx
from cairn.server.api.artifacts import DirectQuery, redirect_to_blob
from cairn.server.api.auth import Access, requires
from cairn.server.api.common import BYTES, JSON, Route
from cairn.server.schemas import registry as schemas
from cairn.server.schemas.tracking import Empty, NamedUpdate, TaggedCreate
from cairn.server.services import (
    bundles,
    logged_models,
    registry as registries,  # 'registry' is a query parameter below
    removal,
    versions,
)
from cairn.server.services.errors import InvalidInputError

router = APIRouter(prefix="/api/v1", tags=["registry"], route_class=Route)
MODEL = "/models/{name}"
VERSION = "/models/{name}/versions/{version}"
TAR_BUNDLE: dict[str, Any] = {"response_class": Response, "responses": {200: {
    "content": {"application/x-tar": {}}, "description": "the bundle: bundle.json and files/"}}}


@router.get("/registries", response_model=schemas.RegistryList)
def list_registries(request: Request, access: Access = requires("registry.read")) -> Response:
    rows = tx.read(request, access, registries.list_registries)
    return JSON({"registries": [schemas.registry_out(r) for r in rows]})


@router.post("/registries", status_code=201, response_model=schemas.Registry)
def create_registry(body: schemas.RegistryCreate, request: Request,
                    access: Access = requires("registry.manage")) -> Response:
    row = tx.write(request, access, registries.create_registry, body.name, body.description, protected=body.protected)
    return JSON(schemas.registry_out(row), status_code=201)


@router.patch("/registries/{name}", response_model=schemas.Registry)
def update_registry(name: str, body: schemas.RegistryUpdate, request: Request,
                    access: Access = requires("registry.manage")) -> Response:
    row = tx.write(request, access, removal.update_registry, name, description=body.description,
                   protected=body.protected)
    return JSON(schemas.registry_out(row))


@router.post("/registries/{name}/reset", response_model=schemas.Registry)
def reset_registry(name: str, request: Request, access: Access = requires("registry.manage")) -> Response:
    """``dev`` and ``prod`` back to the settings of a new workspace (what deleting them would mean)."""
    return JSON(schemas.registry_out(tx.write(request, access, removal.reset_registry, name)))


@router.delete("/registries/{name}", response_model=Empty)
def delete_registry(name: str, request: Request, access: Access = requires("workspace.manage")) -> Response:
    """Delete a registry holding no active model (soft-deleted ones go with it). Workspace owners."""
    tx.write(request, access, removal.delete_registry, name)
    return JSON({})


@router.get("/models", response_model=schemas.ModelList)
def search_models(request: Request, registry: str | None = None, name_like: str | None = Query(None, max_length=250),
                  tag: list[str] = Query(default_factory=list, description="key=value, repeatable"),
                  include_deleted: bool = False, max_results: int = Query(100, ge=1, le=1000),
                  offset: int = Query(0, ge=0, le=2**62), access: Access = requires("model.read")) -> Response:
    tags = dict(t.partition("=")[::2] for t in tag)
    views = tx.read(request, access, registries.search_models, registry=registry, name_like=name_like, tags=tags,
                    include_deleted=include_deleted, limit=max_results, offset=offset)
    return JSON({"models": [schemas.model_out(v) for v in views]})


@router.post("/models", status_code=201, response_model=schemas.RegisteredModel)
def create_model(body: TaggedCreate, request: Request, access: Access = requires("model.write")) -> Response:
    def create(session: Any, ctx: Any) -> Any:
        registries.create_model(session, ctx, body.name, body.description, body.tags)
        return registries.get_model(session, ctx, body.name)
    return JSON(schemas.model_out(tx.write(request, access, create)), status_code=201)


@router.get(MODEL, response_model=schemas.RegisteredModel)
def get_model(name: str, request: Request, access: Access = requires("model.read")) -> Response:
    return JSON(schemas.model_out(tx.read(request, access, registries.get_model, name)))


@router.patch(MODEL, response_model=schemas.RegisteredModel)
def update_model(name: str, body: NamedUpdate, request: Request,
                 access: Access = requires("model.write")) -> Response:
    def update(session: Any, ctx: Any) -> Any:
        row = registries.update_model(session, ctx, name, new_name=body.name, description=body.description)
        return registries.get_model(session, ctx, f"{registries.split_name(name)[0]}.{row.name}")
    return JSON(schemas.model_out(tx.write(request, access, update)))


@router.delete(MODEL, response_model=Empty)
def delete_model(name: str, request: Request, access: Access = requires("model.manage")) -> Response:
    tx.write(request, access, registries.set_model_lifecycle, name, "deleted")
    return JSON({})


@router.post(MODEL + "/restore", response_model=Empty)
def restore_model(name: str, request: Request, access: Access = requires("model.manage")) -> Response:
    tx.write(request, access, registries.set_model_lifecycle, name, "active")
    return JSON({})


@router.post(MODEL + "/tags", response_model=Empty)
def set_model_tags(name: str, tags: dict[str, str], request: Request,
                   access: Access = requires("model.write")) -> Response:
    tx.write(request, access, registries.set_model_tags, name, tags)
    return JSON({})


@router.delete(MODEL + "/tags", response_model=Empty)
def delete_model_tag(name: str, request: Request, key: str = Query(max_length=250),
                     access: Access = requires("model.write")) -> Response:
    tx.write(request, access, registries.delete_model_tag, name, key)
    return JSON({})


@router.post(MODEL + "/versions", status_code=201, response_model=schemas.ModelVersion)
def create_version(name: str, body: schemas.VersionCreate, request: Request,
                   access: Access = requires("model.write")) -> Response:
    view = tx.write(request, access, versions.create_version, name, body.source, tags=body.tags,
                    aliases=body.aliases, description=body.description)
    return JSON(schemas.model_version_out(view), status_code=201)


@router.get(MODEL + "/versions", response_model=schemas.ModelVersionList)
def list_versions(name: str, request: Request, include_deleted: bool = False,
                  access: Access = requires("model.read")) -> Response:
    views = tx.read(request, access, versions.list_versions, name, include_deleted=include_deleted)
    return JSON({"versions": [schemas.model_version_out(v) for v in views]})


@router.get(VERSION, response_model=schemas.ModelVersion)
def get_version(name: str, version: str, request: Request, access: Access = requires("model.read")) -> Response:
    return JSON(schemas.model_version_out(tx.read(request, access, versions.get_version, name, version)))


@router.patch(VERSION, response_model=schemas.ModelVersion)
def update_version(name: str, version: str, body: schemas.VersionUpdate, request: Request,
                   access: Access = requires("model.write")) -> Response:
    return JSON(schemas.model_version_out(tx.write(request, access, versions.update_version, name, version,
                                             body.description)))


@router.delete(VERSION, response_model=Empty)
def delete_version(name: str, version: str, request: Request, access: Access = requires("model.manage")) -> Response:
    tx.write(request, access, versions.set_version_lifecycle, name, version, "deleted")
    return JSON({})


@router.post(VERSION + "/restore", response_model=Empty)
def restore_version(name: str, version: str, request: Request, access: Access = requires("model.manage")) -> Response:
    tx.write(request, access, versions.set_version_lifecycle, name, version, "active")
    return JSON({})


@router.post(VERSION + "/tags", response_model=Empty)
def set_version_tags(name: str, version: str, tags: dict[str, str], request: Request,
                     access: Access = requires("model.write")) -> Response:
    tx.write(request, access, versions.set_version_tags, name, version, tags)
    return JSON({})


@router.delete(VERSION + "/tags", response_model=Empty)
def delete_version_tag(name: str, version: str, request: Request, key: str = Query(max_length=250),
                       access: Access = requires("model.write")) -> Response:
    tx.write(request, access, versions.delete_version_tag, name, version, key)
    return JSON({})


@router.get(VERSION + "/files/content", **BYTES)
async def download_version_file(name: str, version: str, request: Request, path: str = Query(max_length=1024),
                                direct: bool = DirectQuery, access: Access = requires("model.read")) -> Response:
    file = await tx.read_async(request, access, versions.version_file, name, version, path)
    headers = {"X-Cairn-Digest": file.digest}
    if direct and (moved := await redirect_to_blob(request, file.digest, file.size, headers)) is not None:
        return moved
    chunks = await run_in_threadpool(request.app.state.blobs.open, file.digest)
    return StreamingResponse(chunks, media_type="application/octet-stream",
                             headers={"X-Cairn-Digest": file.digest, "Content-Length": str(file.size)})


@router.post(VERSION + "/promote", status_code=201, response_model=schemas.ModelVersion)
def promote(name: str, version: str, body: schemas.Promotion, request: Request,
            access: Access = requires("model.manage")) -> Response:
    view = tx.write(request, access, versions.promote, name, version, body.to, aliases=body.aliases,
                    note=body.note)
    return JSON(schemas.model_version_out(view), status_code=201)


@router.get(MODEL + "/aliases/{alias}", response_model=schemas.ModelVersion)
def get_alias(name: str, alias: str, request: Request, access: Access = requires("model.read")) -> Response:
    return JSON(schemas.model_version_out(tx.read(request, access, versions.get_version_by_alias, name, alias)))


@router.put(MODEL + "/aliases/{alias}", response_model=schemas.ModelVersion)
def set_alias(name: str, alias: str, body: schemas.AliasSet, request: Request,
              access: Access = requires("model.manage")) -> Response:
    view = tx.write(request, access, versions.set_alias, name, alias, body.version, body.reason)
    return JSON(schemas.model_version_out(view))


@router.delete(MODEL + "/aliases/{alias}", response_model=Empty)
def delete_alias(name: str, alias: str, request: Request, access: Access = requires("model.manage")) -> Response:
    tx.write(request, access, versions.delete_alias, name, alias)
    return JSON({})


@router.get(MODEL + "/aliases/{alias}/history", response_model=schemas.AliasHistory)
def alias_history(name: str, alias: str, request: Request, access: Access = requires("model.read")) -> Response:
    rows = tx.read(request, access, versions.alias_history, name, alias)
    return JSON({"name": name, "alias": alias, "moves": [schemas.move_out(r) for r in rows]})


@router.post(MODEL + "/aliases/{alias}/rollback", response_model=schemas.ModelVersion)
def rollback_alias(name: str, alias: str, request: Request, access: Access = requires("model.manage")) -> Response:
    return JSON(schemas.model_version_out(tx.write(request, access, versions.rollback_alias, name, alias)))


@router.post("/runs/{run_id}/logged-models", status_code=201, response_model=schemas.LoggedModel)
def log_model(run_id: str, body: schemas.LoggedModelCreate, request: Request,
              access: Access = requires("run.write")) -> Response:
    row = tx.write(request, access, logged_models.log_model, run_id, name=body.name, artifact_path=body.artifact_path,
                   manifest=body.manifest, step=body.step)
    return JSON(schemas.logged_model_out(row), status_code=201)


@router.post("/experiments/{experiment_id}/logged-models", status_code=201, response_model=schemas.LoggedModel)
def log_standalone_model(experiment_id: int, body: schemas.StandaloneModelCreate, request: Request,
                         access: Access = requires("run.write")) -> Response:
    """A model outside any run: the manifest now, its files next (PUT .../files), registered when complete."""
    row = tx.write(request, access, logged_models.create_standalone, experiment_id, name=body.name,
                   manifest=body.manifest)
    return JSON(schemas.logged_model_out(row), status_code=201)


@router.put("/logged-models/{model_id}/files", response_model=schemas.StoredFile)
async def upload_model_file(model_id: str, path: str, request: Request,
                            access: Access = requires("run.write")) -> Response:
    """One file of a model logged outside a run, as listed in its manifest."""
    await tx.read_async(request, access, lambda s, c: logged_models.get_logged_model(s, c, model_id, write=True))
    blob = await request.app.state.blobs.put_stream(request.stream())
    await tx.write_async(request, access, logged_models.put_file, model_id, path, blob)
    return JSON({"path": path, "digest": blob.digest, "size": blob.size})


@router.get("/logged-models/{model_id}", response_model=schemas.LoggedModel)
def get_logged_model(model_id: str, request: Request, access: Access = requires("run.read")) -> Response:
    return JSON(schemas.logged_model_out(tx.read(request, access, logged_models.get_logged_model, model_id)))


@router.get("/runs/{run_id}/logged-models", response_model=schemas.LoggedModelList)
def list_logged_models(run_id: str, request: Request, access: Access = requires("run.read")) -> Response:
    rows = tx.read(request, access, logged_models.list_logged_models, run_id)
    return JSON({"models": [schemas.logged_model_out(r) for r in rows]})


@router.get(VERSION + "/export", **TAR_BUNDLE)
async def export_version(name: str, version: str, request: Request,
                         access: Access = requires("model.read")) -> Response:
    """The version as a self-contained tar bundle (bundle.json + files/)."""
    view = await tx.read_async(request, access, versions.get_version, name, version)
    out = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the response generator below
    await run_in_threadpool(bundles.write_bundle, bundles.bundle_meta(view), request.app.state.blobs, out)
    size = out.tell()
    out.seek(0)

    def chunks() -> Any:
        with out:
            while chunk := out.read(1024 * 1024):
                yield chunk
    return StreamingResponse(chunks(), media_type="application/x-tar", headers={"Content-Length": str(size)})


@router.post(MODEL + "/versions/import", status_code=201,
             openapi_extra={"requestBody": {"content": {"application/x-tar": {}}}}, response_model=schemas.ModelVersion)
async def import_version(name: str, request: Request, access: Access = requires("model.write")) -> Response:
    """Register a bundle made by export as the next version of ``name``; every file's digest is checked."""
    await tx.read_async(request, access, registries.writable_registry, name)
    settings = request.app.state.settings
    limits = bundles.BundleLimits(max_members=settings.bundle_max_members, max_bytes=settings.max_upload_bytes)
    with tempfile.TemporaryDirectory() as tmp:  # the upload goes to disk (its size is bounded by BodyLimits)
        path = Path(tmp) / "bundle.tar"
        with path.open("wb") as out:
            async for chunk in request.stream():
                out.write(chunk)
        meta, files = await run_in_threadpool(bundles.read_bundle, path, request.app.state.blobs, limits)
    view = await tx.write_async(request, access, bundles.import_version, name, meta, files)
    return JSON(schemas.model_version_out(view), status_code=201)


@router.api_route("/models/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
def unknown_model_path(rest: str, access: Access = requires("model.read")) -> Response:
    """Model names and aliases never contain '/': a path that matched nothing above has one."""
    field = "alias" if "/aliases/" in f"/{rest}" else "name"
    raise InvalidInputError(f"{field}s cannot contain '/' (no endpoint matches /api/v1/models/{rest[:200]})",
                            field=field)
