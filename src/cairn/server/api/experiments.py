"""/api/v1/experiments"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from cairn.server.api import transaction as tx
from cairn.server.api.auth import Access, requires
from cairn.server.api.common import JSON, Route
from cairn.server.schemas.tracking import (
    Empty,
    Experiment,
    ExperimentList,
    NamedUpdate,
    TaggedCreate,
    experiment_out,
)
from cairn.server.services import experiments
from cairn.server.services.validation import MAX_ID

router = APIRouter(prefix="/api/v1/experiments", tags=["experiments"], route_class=Route)
ExperimentId = Path(ge=0, le=MAX_ID)


def _read(session: Any, ctx: Any, experiment_id: int) -> dict[str, Any]:
    view = experiments.read_experiment(session, ctx, experiments.get_experiment(session, ctx, experiment_id))
    return experiment_out(view)


@router.post("", status_code=201, response_model=Experiment)
def create_experiment(body: TaggedCreate, request: Request,
                      access: Access = requires("experiment.write")) -> Response:
    def create(session: Any, ctx: Any) -> dict[str, Any]:
        row = experiments.create_experiment(session, ctx, body.name, body.description, body.tags)
        return _read(session, ctx, row.id)
    return JSON(tx.write(request, access, create), status_code=201)


@router.get("", response_model=ExperimentList)
def list_experiments(request: Request, include_deleted: bool = False, name_contains: str | None = None,
                     max_results: int = Query(1000, ge=1, le=10_000), offset: int = Query(0, ge=0, le=2**62),
                     access: Access = requires("experiment.read")) -> Response:
    views = tx.read(request, access, experiments.list_experiments, include_deleted=include_deleted,
                    name_contains=name_contains, limit=max_results, offset=offset)
    return JSON({"experiments": [experiment_out(v) for v in views]})


@router.get("/by-name", response_model=Experiment)
def get_experiment_by_name(name: str, request: Request,
                           access: Access = requires("experiment.read")) -> Response:
    def get(session: Any, ctx: Any) -> dict[str, Any]:
        return _read(session, ctx, experiments.get_experiment_by_name(session, ctx, name).id)
    return JSON(tx.read(request, access, get))


@router.get("/{experiment_id}", response_model=Experiment)
def get_experiment(request: Request, experiment_id: int = ExperimentId,
                   access: Access = requires("experiment.read")) -> Response:
    return JSON(tx.read(request, access, _read, experiment_id))


@router.patch("/{experiment_id}", response_model=Experiment)
def update_experiment(body: NamedUpdate, request: Request, experiment_id: int = ExperimentId,
                      access: Access = requires("experiment.write")) -> Response:
    def update(session: Any, ctx: Any) -> dict[str, Any]:
        experiments.update_experiment(session, ctx, experiment_id, name=body.name, description=body.description)
        return _read(session, ctx, experiment_id)
    return JSON(tx.write(request, access, update))


@router.delete("/{experiment_id}", response_model=Empty)
def delete_experiment(request: Request, experiment_id: int = ExperimentId,
                      access: Access = requires("experiment.delete")) -> Response:
    tx.write(request, access, experiments.set_lifecycle, experiment_id, "deleted")
    return JSON({})


@router.post("/{experiment_id}/restore", response_model=Empty)
def restore_experiment(request: Request, experiment_id: int = ExperimentId,
                       access: Access = requires("experiment.delete")) -> Response:
    tx.write(request, access, experiments.set_lifecycle, experiment_id, "active")
    return JSON({})


@router.post("/{experiment_id}/tags", response_model=Empty)
def set_experiment_tags(tags: dict[str, str], request: Request, experiment_id: int = ExperimentId,
                        access: Access = requires("experiment.write")) -> Response:
    tx.write(request, access, experiments.set_experiment_tags, experiment_id, tags)
    return JSON({})


@router.delete("/{experiment_id}/tags", response_model=Empty)
def delete_experiment_tag(request: Request, experiment_id: int = ExperimentId, key: str = Query(max_length=250),
                          access: Access = requires("experiment.write")) -> Response:
    tx.write(request, access, experiments.delete_experiment_tag, experiment_id, key)
    return JSON({})
