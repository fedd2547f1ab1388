"""/api/v1/experiments"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request

from cairn.server.api import transaction as tx
from cairn.server.api.auth import Access, requires
from cairn.server.api.common import Route
from cairn.server.schemas.tracking import MAX_ID, ExperimentCreate, ExperimentUpdate, experiment_out
from cairn.server.services import experiments as svc

router = APIRouter(prefix="/api/v1/experiments", tags=["experiments"], route_class=Route)
ExperimentId = Path(ge=0, le=MAX_ID)


def _read(session: Any, ctx: Any, experiment_id: int) -> dict[str, Any]:
    return experiment_out(svc.read_experiment(session, ctx, svc.get_experiment(session, ctx, experiment_id)))


@router.post("", status_code=201)
def create_experiment(body: ExperimentCreate, request: Request,
                      access: Access = requires("experiment.write")) -> dict[str, Any]:
    def create(session: Any, ctx: Any) -> dict[str, Any]:
        row = svc.create_experiment(session, ctx, body.name, body.description, body.tags)
        return _read(session, ctx, row.id)
    return tx.write(request, access, create)


@router.get("")
def list_experiments(request: Request, include_deleted: bool = False, name_contains: str | None = None,
                     max_results: int = Query(1000, ge=1, le=10_000), offset: int = Query(0, ge=0, le=2**62),
                     access: Access = requires("experiment.read")) -> dict[str, Any]:
    views = tx.read(request, access, svc.list_experiments, include_deleted=include_deleted,
                    name_contains=name_contains, limit=max_results, offset=offset)
    return {"experiments": [experiment_out(v) for v in views]}


@router.get("/by-name")
def get_experiment_by_name(name: str, request: Request,
                           access: Access = requires("experiment.read")) -> dict[str, Any]:
    def get(session: Any, ctx: Any) -> dict[str, Any]:
        return _read(session, ctx, svc.get_experiment_by_name(session, ctx, name).id)
    return tx.read(request, access, get)


@router.get("/{experiment_id}")
def get_experiment(request: Request, experiment_id: int = ExperimentId,
                   access: Access = requires("experiment.read")) -> dict[str, Any]:
    return tx.read(request, access, _read, experiment_id)


@router.patch("/{experiment_id}")
def update_experiment(body: ExperimentUpdate, request: Request, experiment_id: int = ExperimentId,
                      access: Access = requires("experiment.write")) -> dict[str, Any]:
    def update(session: Any, ctx: Any) -> dict[str, Any]:
        svc.update_experiment(session, ctx, experiment_id, name=body.name, description=body.description)
        return _read(session, ctx, experiment_id)
    return tx.write(request, access, update)


@router.delete("/{experiment_id}")
def delete_experiment(request: Request, experiment_id: int = ExperimentId,
                      access: Access = requires("experiment.delete")) -> dict[str, Any]:
    tx.write(request, access, svc.set_lifecycle, experiment_id, "deleted")
    return {}


@router.post("/{experiment_id}/restore")
def restore_experiment(request: Request, experiment_id: int = ExperimentId,
                       access: Access = requires("experiment.delete")) -> dict[str, Any]:
    tx.write(request, access, svc.set_lifecycle, experiment_id, "active")
    return {}


@router.post("/{experiment_id}/tags")
def set_experiment_tags(tags: dict[str, str], request: Request, experiment_id: int = ExperimentId,
                        access: Access = requires("experiment.write")) -> dict[str, Any]:
    tx.write(request, access, svc.set_experiment_tags, experiment_id, tags)
    return {}


@router.delete("/{experiment_id}/tags")
def delete_experiment_tag(request: Request, experiment_id: int = ExperimentId, key: str = Query(max_length=250),
                          access: Access = requires("experiment.write")) -> dict[str, Any]:
    tx.write(request, access, svc.delete_experiment_tag, experiment_id, key)
    return {}
