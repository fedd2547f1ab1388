"""/api/v1/promotion-requests and comments on runs and model versions."""

from __future__ import annotations

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from cairn.server.api import transaction as tx
from cairn.server.api.auth import Access, requires
from cairn.server.api.common import JSON, Route
from cairn.server.schemas import collab as schemas
from cairn.server.schemas.tracking import Empty
from cairn.server.services import comments, promotions
from cairn.server.services.validation import MAX_ID

router = APIRouter(prefix="/api/v1", tags=["review"], route_class=Route)
REQUEST = "/promotion-requests/{request_id}"
RequestId = Path(ge=1, le=MAX_ID)
CommentId = Path(ge=1, le=MAX_ID)


@router.post("/promotion-requests", status_code=201, response_model=schemas.PromotionRequest)
def request_promotion(body: schemas.PromotionRequestCreate, request: Request,
                      access: Access = requires("promotion.request")) -> Response:
    view = tx.write(request, access, promotions.request_promotion, body.model, body.version, body.to,
                    aliases=body.aliases, comment=body.comment)
    return JSON(schemas.request_out(view), status_code=201)


@router.get("/promotion-requests", response_model=schemas.PromotionRequestList)
def list_requests(request: Request, status: str | None = None, max_results: int = Query(100, ge=1, le=1000),
                  offset: int = Query(0, ge=0, le=2**62), access: Access = requires("promotion.read")) -> Response:
    views = tx.read(request, access, promotions.list_requests, status, max_results, offset)
    return JSON({"requests": [schemas.request_out(v) for v in views]})


@router.get(REQUEST, response_model=schemas.PromotionRequest)
def get_request(request: Request, request_id: int = RequestId, access: Access = requires("promotion.read")) -> Response:
    return JSON(schemas.request_out(tx.read(request, access, promotions.get_request, request_id)))


@router.post(REQUEST + "/approve", response_model=schemas.PromotionRequest)
def approve(body: schemas.Decision, request: Request, request_id: int = RequestId,
            access: Access = requires("promotion.decide")) -> Response:
    """Approve and carry out the promotion (as the approver); the request keeps the version it made."""
    return JSON(schemas.request_out(tx.write(request, access, promotions.approve, request_id, body.comment)))


@router.post(REQUEST + "/reject", response_model=schemas.PromotionRequest)
def reject(body: schemas.Decision, request: Request, request_id: int = RequestId,
           access: Access = requires("promotion.decide")) -> Response:
    return JSON(schemas.request_out(tx.write(request, access, promotions.reject, request_id, body.comment)))


@router.post(REQUEST + "/cancel", response_model=schemas.PromotionRequest)
def cancel(request: Request, request_id: int = RequestId, access: Access = requires("promotion.request")) -> Response:
    return JSON(schemas.request_out(tx.write(request, access, promotions.cancel, request_id)))


# comments ---------------------------------------------------------------------------------------------

@router.get("/runs/{run_id}/comments", response_model=schemas.CommentList)
def list_run_comments(run_id: str, request: Request, include_deleted: bool = False,
                      access: Access = requires("comment.read")) -> Response:
    rows = tx.read(request, access, comments.list_comments, run_id=run_id, include_deleted=include_deleted)
    return JSON({"comments": [schemas.comment_out(r) for r in rows]})


@router.post("/runs/{run_id}/comments", status_code=201, response_model=schemas.Comment)
def add_run_comment(run_id: str, body: schemas.CommentCreate, request: Request,
                    access: Access = requires("comment.write")) -> Response:
    row = tx.write(request, access, comments.add_comment, body.text, run_id=run_id)
    return JSON(schemas.comment_out(row), status_code=201)


@router.get("/models/{name}/versions/{version}/comments", response_model=schemas.CommentList)
def list_version_comments(name: str, version: str, request: Request, include_deleted: bool = False,
                          access: Access = requires("comment.read")) -> Response:
    rows = tx.read(request, access, comments.list_comments, model=name, version=version,
                   include_deleted=include_deleted)
    return JSON({"comments": [schemas.comment_out(r) for r in rows]})


@router.post("/models/{name}/versions/{version}/comments", status_code=201, response_model=schemas.Comment)
def add_version_comment(name: str, version: str, body: schemas.CommentCreate, request: Request,
                        access: Access = requires("comment.write")) -> Response:
    row = tx.write(request, access, comments.add_comment, body.text, model=name, version=version)
    return JSON(schemas.comment_out(row), status_code=201)


@router.patch("/comments/{comment_id}", response_model=schemas.Comment)
def edit_comment(body: schemas.CommentCreate, request: Request, comment_id: int = CommentId,
                 access: Access = requires("comment.write")) -> Response:
    return JSON(schemas.comment_out(tx.write(request, access, comments.edit_comment, comment_id, body.text)))


@router.delete("/comments/{comment_id}", response_model=Empty)
def delete_comment(request: Request, comment_id: int = CommentId,
                   access: Access = requires("comment.write")) -> Response:
    tx.write(request, access, comments.delete_comment, comment_id)
    return JSON({})
