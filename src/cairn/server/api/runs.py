"""/api/v1/runs: runs, batched logging, params, metrics, tags, datasets."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cairn.server.api import transaction as tx
from cairn.server.api.auth import Access, requires
from cairn.server.api.common import JSON, Route, read_json
from cairn.server.schemas import tracking as schemas
from cairn.server.services import datasets, filters, runs, search
from cairn.server.services.errors import ServiceError

router = APIRouter(prefix="/api/v1/runs", tags=["runs"], route_class=Route)
# the batch body is read by the service itself (columnar metrics, checked there): its OpenAPI entry says its shape
BATCH_BODY: dict[str, Any] = {"requestBody": {"content": {"application/json": {"schema": {
    "type": "object", "properties": {
        "metrics": {"type": "array", "items": {"type": "object", "properties": {
            "key": {"type": "string"}, "steps": {"type": "array", "items": {"type": "integer"}},
            "values": {"type": "array", "items": {}}, "timestamps": {"type": "array", "items": {"type": "integer"}}}}},
        "params": {"type": "object"}, "tags": {"type": "object"},
        "status": {"type": "string"}, "end_time": {"type": "integer"}}}}}}}


def _read(session: Any, ctx: Any, run_id: str) -> dict[str, Any]:
    return schemas.run_out(runs.read_run(session, ctx, run_id))


@router.post("", status_code=201, response_model=schemas.CreatedRun, responses={200: {
    "model": schemas.CreatedRun, "description": "an existing run, joined by its run_key"}})
async def create_run(spec: runs.RunCreate, request: Request, access: Access = requires("run.write")) -> Response:
    """The new run (201), answered like a read. With ``run_key`` the answer also says whether the run was
    ``created``; an existing run found by its key (joined) answers 200."""
    def create(session: Any, ctx: Any, spec: runs.RunCreate) -> dict[str, Any]:
        view, created = runs.create_run_view(session, ctx, spec)
        return {**schemas.run_out(view), "created": created} if spec.run_key is not None else schemas.run_out(view)
    answer = await tx.write_small(request, access, create, spec)
    return JSON(answer, status_code=200 if answer.get("created") is False else 201)


@router.post("/search", response_model=schemas.RunPage)
def search_runs(body: schemas.RunSearch, request: Request, access: Access = requires("run.read")) -> Response:
    query = search.RunQuery(tuple(body.experiment_ids), tuple(body.experiment_names), body.filter,
                            tuple(body.order_by), body.max_results, body.page_token, body.run_view_type)
    page = tx.read(request, access, search.search_runs, query)
    return JSON({"runs": [schemas.run_out(v) for v in page.runs], "next_page_token": page.next_page_token})


@router.post("/search/check", response_model=schemas.SearchCheckResult)
def check_search(body: schemas.SearchCheck, request: Request, access: Access = requires("run.read")) -> Response:
    """Is this filter (and ordering) valid? Always 200: ``{valid}`` or ``{valid: false, message, position}``, so
    a search box can show the error where it is while the user types."""
    try:
        filters.check_query(body.filter, tuple(body.order_by))
    except ServiceError as exc:
        return JSON({"valid": False, "message": exc.message, "position": exc.position, "field": exc.field})
    return JSON({"valid": True})


@router.get("/{run_id}", response_model=schemas.Run)
def get_run(run_id: str, request: Request, access: Access = requires("run.read")) -> Response:
    return JSON(tx.read(request, access, _read, run_id))


@router.patch("/{run_id}", response_model=schemas.Run)
def update_run(run_id: str, body: schemas.RunUpdate, request: Request,
               access: Access = requires("run.write")) -> Response:
    def update(session: Any, ctx: Any) -> dict[str, Any]:
        runs.update_run(session, ctx, run_id, status=body.status, end_time=body.end_time, name=body.name)
        return _read(session, ctx, run_id)
    return JSON(tx.write(request, access, update))


@router.post("/{run_id}/resume", response_model=schemas.Run)
def resume_run(run_id: str, request: Request, access: Access = requires("run.write")) -> Response:
    """Resume a run: an ended run is RUNNING again; a running one is unchanged. Answers the run."""
    return JSON(schemas.run_out(tx.write(request, access, runs.resume_run, run_id)))


@router.delete("/{run_id}", response_model=schemas.Empty)
def delete_run(run_id: str, request: Request, access: Access = requires("run.delete")) -> Response:
    tx.write(request, access, runs.set_run_lifecycle, run_id, "deleted")
    return JSON({})


@router.post("/{run_id}/restore", response_model=schemas.Empty)
def restore_run(run_id: str, request: Request, access: Access = requires("run.delete")) -> Response:
    tx.write(request, access, runs.set_run_lifecycle, run_id, "active")
    return JSON({})


@router.post("/{run_id}/batch", response_model=schemas.BatchResult, openapi_extra=BATCH_BODY)
async def log_batch(run_id: str, request: Request, access: Access = requires("run.write")) -> Response:
    """Metrics (columnar), params and tags, and optionally the run's new status, all or nothing. Honors the
    Idempotency-Key header."""
    body = await read_json(request)
    key = request.headers.get("idempotency-key")
    return JSON(await tx.write_small(request, access, runs.log_batch, run_id, body, key))


@router.post("/{run_id}/tags", response_model=schemas.Empty)
def set_tags(run_id: str, tags: dict[str, str], request: Request,
             access: Access = requires("run.write")) -> Response:
    tx.write(request, access, runs.set_tags, run_id, tags)
    return JSON({})


@router.delete("/{run_id}/tags", response_model=schemas.Empty)
def delete_tag(run_id: str, request: Request, key: str = Query(max_length=250),
               access: Access = requires("run.write")) -> Response:
    tx.write(request, access, runs.delete_tag, run_id, key)
    return JSON({})


@router.get("/{run_id}/params/history", response_model=schemas.ParamHistory)
def get_param_history(run_id: str, request: Request, key: str = Query(max_length=250),
                      access: Access = requires("run.read")) -> Response:
    return JSON(schemas.param_history_out(tx.read(request, access, runs.param_history, run_id, key)))


@router.post("/{run_id}/metrics/define", response_model=schemas.MetricSummary)
def define_metric(run_id: str, body: schemas.MetricDefinition, request: Request,
                  access: Access = requires("run.write")) -> Response:
    row = tx.write(request, access, runs.define_metric, run_id, body.key, body.goal)
    return JSON(schemas.summary_out(row))


@router.get("/{run_id}/metrics/history", response_model=schemas.MetricHistory)
def get_metric_history(run_id: str, request: Request, key: str = Query(max_length=250),
                       start_step: int | None = Query(None, ge=-(2**63) + 1, le=2**63 - 1),
                       end_step: int | None = Query(None, ge=-(2**63) + 1, le=2**63 - 1),
                       max_points: int | None = Query(None, ge=1, le=2**62),
                       access: Access = requires("run.read")) -> Response:
    points = tx.read(request, access, runs.metric_history, run_id, key, start_step=start_step,
                     end_step=end_step, max_points=max_points)
    return JSON(schemas.history_out(key, points))


@router.get("/{run_id}/metrics/buckets", response_model=schemas.MetricBuckets)
def get_metric_buckets(run_id: str, request: Request, key: str = Query(max_length=250),
                       buckets: int = Query(1000, ge=1, le=10_000),
                       start_step: int | None = Query(None, ge=-(2**63) + 1, le=2**63 - 1),
                       end_step: int | None = Query(None, ge=-(2**63) + 1, le=2**63 - 1),
                       access: Access = requires("run.read")) -> Response:
    """A downsampled history for charts: per bucket of steps, its first and last step, count, min, max and
    mean (NaN points are counted, not averaged)."""
    rows = tx.read(request, access, runs.metric_buckets, run_id, key, buckets, start_step=start_step,
                   end_step=end_step)
    return JSON(schemas.buckets_out(key, rows))


@router.post("/{run_id}/datasets", status_code=201, response_model=schemas.Dataset)
def log_dataset(run_id: str, body: schemas.DatasetInput, request: Request,
                access: Access = requires("run.write")) -> Response:
    row = tx.write(request, access, datasets.log_dataset, run_id, **body.model_dump())
    return JSON(schemas.dataset_out(row), status_code=201)
