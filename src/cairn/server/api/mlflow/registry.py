"""MLflow's model registry: registered models, versions, aliases, stages, searches.

Names travel through ``registry.from_mlflow_name`` / ``to_mlflow_name`` (one mapping, documented there):
a model of ``dev`` is seen by its own name, a model of registry R as ``R.<name>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request

from cairn.server.api import transaction as tx
from cairn.server.api.auth import Access
from cairn.server.api.common import JSON
from cairn.server.api.mlflow.protocol import mlflow_routes, one_pair, page_size, pairs, string_list, text, written
from cairn.server.api.mlflow.shapes import model_out, model_version_message, paged
from cairn.server.services import catalog, mlflow, registry as registry_svc, versions
from cairn.server.services.errors import InvalidInputError


def _name(session: Any, ctx: Any, body: dict[str, Any], field: str = "name") -> str:
    return registry_svc.from_mlflow_name(session, ctx, body.get(field), field)


def _model_call(body: dict[str, Any], fn: Callable[..., Any], *args: Any) -> Callable[[Any, Any], Any]:
    """``fn`` on the registered model the body names (MLflow's name, resolved in the transaction)."""
    return lambda session, ctx: fn(session, ctx, _name(session, ctx, body), *args)


def _tag_routes(path: str, name: str, call: Callable[..., Any], set_tags: Callable[..., Any],
                delete_tag: Callable[..., Any]) -> None:
    """MLflow's set-tag and delete-tag routes of a registered model or a model version: the object is found
    by ``call`` from the body, the same way for both."""
    async def set_tag(request: Request, access: Access, body: dict[str, Any]) -> Any:
        return await written(request, access, call(body, set_tags, one_pair(body)))

    async def delete(request: Request, access: Access, body: dict[str, Any]) -> Any:
        return await written(request, access, call(body, delete_tag, text(body, "key")))
    set_tag.__name__, delete.__name__ = f"set_{name}_tag", f"delete_{name}_tag"
    mlflow_routes("POST", f"{path}/set-tag", "model.write")(set_tag)
    mlflow_routes("DELETE", f"{path}/delete-tag", "model.write")(delete)


def _model_view(session: Any, ctx: Any, full_name: str) -> dict[str, Any]:
    view = registry_svc.get_model(session, ctx, full_name)
    latest = [model_version_message(v) for v in mlflow.latest_versions(session, ctx, full_name, [])]
    return model_out(view, latest)


def _listing(body: dict[str, Any], default: int, limit: int) -> catalog.Listing:
    return catalog.Listing(text(body, "filter", required=False), tuple(string_list(body, "order_by")),
                           page_size(body, default, limit), text(body, "page_token", required=False))


@mlflow_routes("POST", "/registered-models/create", "model.write")
async def create_registered_model(request: Request, access: Access, body: dict[str, Any]) -> Any:
    tags, description = pairs(body, "tags"), text(body, "description", required=False, default="")

    def create(session: Any, ctx: Any) -> Any:
        full_name = _name(session, ctx, body)
        registry_svc.create_model(session, ctx, full_name, description, tags)
        return _model_view(session, ctx, full_name)
    return JSON({"registered_model": await tx.write_async(request, access, create)})


@mlflow_routes("GET", "/registered-models/get", "model.read")
async def get_registered_model(request: Request, access: Access, body: dict[str, Any]) -> Any:
    def get(session: Any, ctx: Any) -> Any:
        return _model_view(session, ctx, _name(session, ctx, body))
    return JSON({"registered_model": await tx.read_async(request, access, get)})


@mlflow_routes("POST", "/registered-models/rename", "model.write")
async def rename_registered_model(request: Request, access: Access, body: dict[str, Any]) -> Any:
    text(body, "new_name")

    def rename(session: Any, ctx: Any) -> Any:
        full_name, new_full = _name(session, ctx, body), _name(session, ctx, body, "new_name")
        registry_svc.update_model(session, ctx, full_name, new_name=new_full)
        return _model_view(session, ctx, new_full)
    return JSON({"registered_model": await tx.write_async(request, access, rename)})


@mlflow_routes("PATCH", "/registered-models/update", "model.write")
async def update_registered_model(request: Request, access: Access, body: dict[str, Any]) -> Any:
    description = text(body, "description", required=False, default="")

    def update(session: Any, ctx: Any) -> Any:
        full_name = _name(session, ctx, body)
        registry_svc.update_model(session, ctx, full_name, description=description)
        return _model_view(session, ctx, full_name)
    return JSON({"registered_model": await tx.write_async(request, access, update)})


@mlflow_routes("DELETE", "/registered-models/delete", "model.manage")
async def delete_registered_model(request: Request, access: Access, body: dict[str, Any]) -> Any:
    return await written(request, access, _model_call(body, registry_svc.set_model_lifecycle, "deleted"))


@mlflow_routes("GET", "/registered-models/search", "model.read")
async def search_registered_models(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """Filter on ``name`` (as MLflow clients see it) and ``tags.<key>``; order by name or timestamps."""
    listing = _listing(body, 100, 1000)

    def found(session: Any, ctx: Any) -> Any:
        page = catalog.search_models(session, ctx, listing)
        out = []
        for view in page.items:
            latest = mlflow.latest_versions(session, ctx, f"{view.registry}.{view.row.name}", [])
            out.append(model_out(view, [model_version_message(v) for v in latest]))
        return out, page.next_page_token
    return JSON(paged("registered_models", *await tx.read_async(request, access, found)))


_tag_routes("/registered-models", "registered_model", _model_call,
            registry_svc.set_model_tags, registry_svc.delete_model_tag)


@mlflow_routes("POST", "/registered-models/alias", "model.manage")
async def set_alias(request: Request, access: Access, body: dict[str, Any]) -> Any:
    alias, version = text(body, "alias"), text(body, "version")
    return await written(request, access, _model_call(body, versions.set_alias, alias, version))


@mlflow_routes("DELETE", "/registered-models/alias", "model.manage")
async def delete_alias(request: Request, access: Access, body: dict[str, Any]) -> Any:
    return await written(request, access, _model_call(body, versions.delete_alias, text(body, "alias")))


@mlflow_routes("GET", "/registered-models/alias", "model.read")
async def get_alias(request: Request, access: Access, body: dict[str, Any]) -> Any:
    alias = text(body, "alias")

    def get(session: Any, ctx: Any) -> Any:
        return model_version_message(versions.get_version_by_alias(session, ctx, _name(session, ctx, body), alias))
    return JSON({"model_version": await tx.read_async(request, access, get)})


async def _latest(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """The latest version in each stage asked for (every stage when none is)."""
    stages = string_list(body, "stages")

    def latest(session: Any, ctx: Any) -> list[Any]:
        latest = mlflow.latest_versions(session, ctx, _name(session, ctx, body), stages)
        return [model_version_message(v) for v in latest]
    return JSON({"model_versions": await tx.read_async(request, access, latest)})


@mlflow_routes("POST", "/registered-models/get-latest-versions", "model.read")
async def get_latest_versions(request: Request, access: Access, body: dict[str, Any]) -> Any:
    return await _latest(request, access, body)


@mlflow_routes("GET", "/registered-models/get-latest-versions", "model.read")
async def get_latest_versions_get(request: Request, access: Access, body: dict[str, Any]) -> Any:
    return await _latest(request, access, body)


# model versions ------------------------------------------------------------------------------------------

@mlflow_routes("POST", "/model-versions/create", "model.write")
async def create_model_version(request: Request, access: Access, body: dict[str, Any]) -> Any:
    source, run_id = text(body, "source", required=False), text(body, "run_id", required=False)
    model_id, tags = text(body, "model_id", required=False), pairs(body, "tags")
    description = text(body, "description", required=False, default="")

    def create(session: Any, ctx: Any) -> Any:
        view = mlflow.create_version(session, ctx, _name(session, ctx, body), source=source, run_id=run_id,
                                  model_id=model_id, tags=tags, description=description)
        return model_version_message(view)
    return JSON({"model_version": await tx.write_async(request, access, create)})


def _version_call(body: dict[str, Any], fn: Any, *args: Any, **kwargs: Any) -> Any:
    version = text(body, "version")

    def run(session: Any, ctx: Any) -> Any:
        return fn(session, ctx, _name(session, ctx, body), version, *args, **kwargs)
    return run


@mlflow_routes("GET", "/model-versions/get", "model.read")
async def get_model_version(request: Request, access: Access, body: dict[str, Any]) -> Any:
    view = await tx.read_async(request, access, _version_call(body, versions.get_version))
    return JSON({"model_version": model_version_message(view)})


@mlflow_routes("PATCH", "/model-versions/update", "model.write")
async def update_model_version(request: Request, access: Access, body: dict[str, Any]) -> Any:
    description = text(body, "description", required=False, default="")
    view = await tx.write_async(request, access, _version_call(body, versions.update_version, description))
    return JSON({"model_version": model_version_message(view)})


@mlflow_routes("DELETE", "/model-versions/delete", "model.manage")
async def delete_model_version(request: Request, access: Access, body: dict[str, Any]) -> Any:
    return await written(request, access, _version_call(body, versions.set_version_lifecycle, "deleted"))


@mlflow_routes("GET", "/model-versions/search", "model.read")
async def search_model_versions(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """Filter on ``name``, ``version_number``, ``run_id``, ``source_path``, ``current_stage`` and tags;
    order by name, version_number or timestamps (``version_number DESC`` with one result: the latest)."""
    listing = _listing(body, 10_000, 200_000)

    def found(session: Any, ctx: Any) -> Any:
        page = catalog.search_versions(session, ctx, listing)
        return [model_version_message(v) for v in page.items], page.next_page_token
    return JSON(paged("model_versions", *await tx.read_async(request, access, found)))


_tag_routes("/model-versions", "model_version", _version_call, versions.set_version_tags, versions.delete_version_tag)


@mlflow_routes("GET", "/model-versions/get-download-uri", "model.read")
async def get_download_uri(request: Request, access: Access, body: dict[str, Any]) -> Any:
    def uri(session: Any, ctx: Any, full_name: str, version: str) -> str:
        return mlflow.download_uri(session, ctx, versions.get_version(session, ctx, full_name, version))
    return JSON({"artifact_uri": await tx.read_async(request, access, _version_call(body, uri))})


@mlflow_routes("POST", "/model-versions/transition-stage", "model.manage")
async def transition_stage(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """Stages are kept per version; Staging and Production also move the aliases ``staging`` and
    ``production``, so every transition is in the alias history (see ``services.mlflow``)."""
    stage = text(body, "stage")
    archive = body.get("archive_existing_versions", False)
    if not isinstance(archive, bool) and archive not in ("true", "false"):
        raise InvalidInputError("archive_existing_versions must be true or false", field="archive_existing_versions")
    view = await tx.write_async(request, access, _version_call(body, mlflow.transition_stage, stage,
                                                               archive_existing=archive in (True, "true")))
    return JSON({"model_version": model_version_message(view)})
