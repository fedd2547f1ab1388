"""MLflow 3 logged models: create (in a run or outside any), get, finalize, search, tags, params, files."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from cairn.server.api import transaction as tx
from cairn.server.api.auth import Access
from cairn.server.api.common import JSON
from cairn.server.api.mlflow.protocol import mlflow_routes, page_size, pairs, string_list, text, written
from cairn.server.api.mlflow.shapes import file_out, logged_model_out, paged
from cairn.server.services import catalog, logged_models, mlflow
from cairn.server.services.errors import InvalidInputError


def _model_id(request: Request) -> str:
    return str(request.path_params.get("model_id", "")).removeprefix("m-")


@mlflow_routes("POST", "/logged-models", "run.write")
async def create_logged_model(request: Request, access: Access, body: dict[str, Any]) -> Any:
    def create(session: Any, ctx: Any) -> Any:
        row = mlflow.create_logged_model(
            session, ctx, experiment_id=text(body, "experiment_id"), name=text(body, "name", required=False),
            source_run_id=text(body, "source_run_id", required=False),
            model_type=text(body, "model_type", required=False, default=""), tags=pairs(body, "tags"),
            params=pairs(body, "params"))
        return logged_model_out(session, ctx, row)
    return JSON({"model": await tx.write_async(request, access, create)})


def _out(session: Any, ctx: Any, model_id: str) -> dict[str, Any]:
    return logged_model_out(session, ctx, logged_models.get_logged_model(session, ctx, model_id))


@mlflow_routes("GET", "/logged-models/{model_id}", "run.read")
async def get_logged_model(request: Request, access: Access, body: dict[str, Any]) -> Any:
    return JSON({"model": await tx.read_async(request, access, _out, _model_id(request))})


@mlflow_routes("PATCH", "/logged-models/{model_id}", "run.write")
async def finalize_logged_model(request: Request, access: Access, body: dict[str, Any]) -> Any:
    status = text(body, "status")

    def finalize(session: Any, ctx: Any) -> Any:
        return logged_model_out(session, ctx, mlflow.finalize_logged_model(session, ctx, _model_id(request), status))
    return JSON({"model": await tx.write_async(request, access, finalize)})


@mlflow_routes("DELETE", "/logged-models/{model_id}", "run.delete")
async def delete_logged_model(request: Request, access: Access, body: dict[str, Any]) -> Any:
    return await written(request, access, mlflow.delete_logged_model, _model_id(request))


def _order_by(raw: Any) -> tuple[str, ...]:
    """MLflow sends [{field_name, ascending}] here (strings elsewhere); both become order-by clauses."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidInputError("order_by must be a list", field="order_by")
    clauses = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            clauses.append(item)
        elif isinstance(item, dict) and isinstance(item.get("field_name"), str):
            if item.get("dataset_name") or item.get("dataset_digest"):
                raise InvalidInputError("ordering logged models by a dataset's metrics is not supported by Cairn",
                                        field=f"order_by[{i}]")
            clauses.append(f"{item['field_name']} {'ASC' if item.get('ascending', True) else 'DESC'}")
        else:
            raise InvalidInputError(f"order_by[{i}] needs a field_name", field=f"order_by[{i}]")
    return tuple(clauses)


def _datasets(raw: Any) -> list[tuple[str, str | None]]:
    """[{dataset_name, dataset_digest?}]: models with metrics measured on one of these datasets."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidInputError("datasets must be a list of {dataset_name, dataset_digest}", field="datasets")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise InvalidInputError(f"datasets[{i}] needs a dataset_name", field=f"datasets[{i}]")
        out.append((text(item, "dataset_name"), text(item, "dataset_digest", required=False)))
    return out


@mlflow_routes("POST", "/logged-models/search", "run.read")
async def search_logged_models(request: Request, access: Access, body: dict[str, Any]) -> Any:
    ids, datasets = string_list(body, "experiment_ids"), _datasets(body.get("datasets"))
    listing = catalog.Listing(text(body, "filter", required=False), _order_by(body.get("order_by")),
                              page_size(body, 100, 1000), text(body, "page_token", required=False))

    def found(session: Any, ctx: Any) -> Any:
        experiment_ids = [mlflow.experiment_for(session, ctx, e, create=False).id for e in ids]
        page = catalog.search_logged_models(session, ctx, experiment_ids, listing, datasets)
        return [logged_model_out(session, ctx, row) for row in page.items], page.next_page_token
    return JSON(paged("models", *await tx.read_async(request, access, found)))


@mlflow_routes("PATCH", "/logged-models/{model_id}/tags", "run.write")
async def set_logged_model_tags(request: Request, access: Access, body: dict[str, Any]) -> Any:
    return await written(request, access, mlflow.set_logged_model_tags, _model_id(request), pairs(body, "tags"))


@mlflow_routes("DELETE", "/logged-models/{model_id}/tags/{tag_key}", "run.write")
async def delete_logged_model_tag(request: Request, access: Access, body: dict[str, Any]) -> Any:
    key = str(request.path_params.get("tag_key", ""))
    return await written(request, access, mlflow.delete_logged_model_tag, _model_id(request), key)


@mlflow_routes("POST", "/logged-models/{model_id}/params", "run.write")
async def log_logged_model_params(request: Request, access: Access, body: dict[str, Any]) -> Any:
    return await written(request, access, mlflow.log_logged_model_params, _model_id(request), pairs(body, "params"))


@mlflow_routes("GET", "/logged-models/{model_id}/artifacts/directories", "artifact.read")
async def list_logged_model_artifacts(request: Request, access: Access, body: dict[str, Any]) -> Any:
    sub = text(body, "artifact_directory_path", required=False, default="")

    def listing(session: Any, ctx: Any) -> Any:
        row = logged_models.get_logged_model(session, ctx, _model_id(request))
        return [file_out(e) for e in logged_models.list_files(session, row, sub)]
    return JSON({"root_uri": "", "files": await tx.read_async(request, access, listing)})

