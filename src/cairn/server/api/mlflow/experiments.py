"""MLflow experiments: create, get, search, rename, delete and restore, tags."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request

from cairn.server.api import transaction as tx
from cairn.server.api.auth import Access
from cairn.server.api.common import JSON
from cairn.server.api.mlflow.protocol import (
    mlflow_routes,
    one_pair,
    page_size,
    pairs,
    string_list,
    text,
    view_of,
    written,
)
from cairn.server.api.mlflow.shapes import experiment_out, paged
from cairn.server.services import catalog, experiments, mlflow
from cairn.server.services.search import VIEW_TYPES


@mlflow_routes("POST", "/experiments/create", "experiment.write")
async def create_experiment(request: Request, access: Access, body: dict[str, Any]) -> Any:
    name, tags = text(body, "name"), pairs(body, "tags")
    location = mlflow.artifact_location(text(body, "artifact_location", required=False, default=""))
    row = await tx.write_async(request, access, experiments.create_experiment, name, "", tags,
                               artifact_location=location)
    return JSON({"experiment_id": mlflow.experiment_key(row)})


def _experiment(session: Any, ctx: Any, experiment_id: Any) -> dict[str, Any]:
    row = mlflow.experiment_for(session, ctx, experiment_id)
    return experiment_out(experiments.read_experiment(session, ctx, row))


@mlflow_routes("GET", "/experiments/get", "experiment.read")
async def get_experiment(request: Request, access: Access, body: dict[str, Any]) -> Any:
    experiment_id = text(body, "experiment_id")
    # the default experiment "0" is made on first read, so reading it may write
    transaction = tx.write_async if str(experiment_id) == "0" else tx.read_async
    out = await transaction(request, access, _experiment, experiment_id)
    return JSON({"experiment": out})


@mlflow_routes("GET", "/experiments/get-by-name", "experiment.read")
async def get_experiment_by_name(request: Request, access: Access, body: dict[str, Any]) -> Any:
    name = text(body, "experiment_name")

    def get(session: Any, ctx: Any) -> Any:
        row = experiments.get_experiment_by_name(session, ctx, name)
        return experiment_out(experiments.read_experiment(session, ctx, row))
    return JSON({"experiment": await tx.read_async(request, access, get)})


@mlflow_routes("POST", "/experiments/search", "experiment.read")
async def search_experiments(request: Request, access: Access, body: dict[str, Any]) -> Any:
    """MLflow's filter (name, times, tags) and order_by, run in the database; view_type; pages."""
    listing = catalog.Listing(text(body, "filter", required=False), tuple(string_list(body, "order_by")),
                              page_size(body, 1000, 50_000), text(body, "page_token", required=False))
    lifecycles = VIEW_TYPES[view_of(body, "view_type")]
    if not await tx.read_async(request, access, mlflow.has_default_experiment):
        await tx.write_async(request, access, mlflow.ensure_default_experiment)

    def found(session: Any, ctx: Any) -> Any:
        page = catalog.search_experiments(session, ctx, listing, lifecycles)
        return [experiment_out(v) for v in page.items], page.next_page_token
    return JSON(paged("experiments", *await tx.read_async(request, access, found)))


def _experiment_call(experiment_id: str, fn: Callable[..., Any], *args: Any,
                     **kwargs: Any) -> Callable[[Any, Any], Any]:
    """``fn`` on the experiment with this MLflow id (resolved in the transaction)."""
    return lambda session, ctx: fn(session, ctx, mlflow.experiment_for(session, ctx, experiment_id).id, *args, **kwargs)


@mlflow_routes("POST", "/experiments/update", "experiment.write")
async def update_experiment(request: Request, access: Access, body: dict[str, Any]) -> Any:
    experiment_id, new_name = text(body, "experiment_id"), text(body, "new_name", required=False)

    return await written(request, access, _experiment_call(experiment_id, experiments.update_experiment, name=new_name))


async def _experiment_lifecycle(request: Request, access: Access, body: dict[str, Any], lifecycle: str) -> Any:
    return await written(request, access, _experiment_call(text(body, "experiment_id"), experiments.set_lifecycle,
                                                           lifecycle))


@mlflow_routes("POST", "/experiments/delete", "experiment.delete")
async def delete_experiment(request: Request, access: Access, body: dict[str, Any]) -> Any:
    return await _experiment_lifecycle(request, access, body, "deleted")


@mlflow_routes("POST", "/experiments/restore", "experiment.delete")
async def restore_experiment(request: Request, access: Access, body: dict[str, Any]) -> Any:
    return await _experiment_lifecycle(request, access, body, "active")


@mlflow_routes("POST", "/experiments/set-experiment-tag", "experiment.write")
async def set_experiment_tag(request: Request, access: Access, body: dict[str, Any]) -> Any:
    experiment_id = text(body, "experiment_id")
    return await written(request, access, _experiment_call(experiment_id, experiments.set_experiment_tags,
                                                           one_pair(body)))


@mlflow_routes("POST", "/experiments/delete-experiment-tag", "experiment.write")
async def delete_experiment_tag(request: Request, access: Access, body: dict[str, Any]) -> Any:
    experiment_id, key = text(body, "experiment_id"), text(body, "key")
    return await written(request, access, _experiment_call(experiment_id, experiments.delete_experiment_tag, key))
