"""/api/v1/promotion-requests and comments on runs and model versions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request

from cairn.server.api import transaction as tx
from cairn.server.api.auth import Access, requires
from cairn.server.api.common import JSON, Route
from cairn.server.schemas import collab as schemas
from cairn.server.services import comments, promotions

router = APIRouter(prefix="/api/v1", tags=["review"], route_class=Route)
REQUEST = "/promotion-requests/{request_id}"
RequestId = Path(ge=1, le=2**31 - 1)
CommentId = Path(ge=1, le=2**31 - 1)


@router.post("/promotion-requests", status_code=201)
def request_promotion(body: schemas.PromotionRequestCreate, request: Request,
                      access: Access = requires("promotion.request")) -> Any:
    view = tx.write(request, access, promotions.request_promotion, body.model, body.version, body.to,
                    aliases=body.aliases, comment=body.comment)
    return JSON(schemas.request_out(view), status_code=201)


@router.get("/promotion-requests")
def list_requests(request: Request, status: str | None = None, max_results: int = Query(100, ge=1, le=1000),
                  offset: int = Query(0, ge=0, le=2**62), access: Access = requires("promotion.read")) -> Any:
    views = tx.read(request, access, promotions.list_requests, status, max_results, offset)
    return JSON({"requests": [schemas.request_out(v) for v in views]})


@router.get(REQUEST)
def get_request(request: Request, request_id: int = RequestId, access: Access = requires("promotion.read")) -> Any:
    return JSON(schemas.request_out(tx.read(request, access, promotions.get_request, request_id)))


@router.post(REQUEST + "/approve")
def approve(body: schemas.Decision, request: Request, request_id: int = RequestId,
            access: Access = requires("promotion.decide")) -> Any:
    """Approve and carry out the promotion (as the approver); the request keeps the version it made."""
    return JSON(schemas.request_out(tx.write(request, access, promotions.approve, request_id, body.comment)))


@router.post(REQUEST + "/reject")
def reject(body: schemas.Decision, request: Request, request_id: int = RequestId,
           access: Access = requires("promotion.decide")) -> Any:
    return JSON(schemas.request_out(tx.write(request, access, promotions.reject, request_id, body.comment)))


@router.post(REQUEST + "/cancel")
def cancel(request: Request, request_id: int = RequestId, access: Access = requires("promotion.request")) -> Any:
    return JSON(schemas.request_out(tx.write(request, access, promotions.cancel, request_id)))


# comments ---------------------------------------------------------------------------------------------

@router.get("/runs/{run_id}/comments")
def list_run_comments(run_id: str, request: Request, include_deleted: bool = False,
                      access: Access = requires("comment.read")) -> Any:
    rows = tx.read(request, access, comments.list_comments, run_id=run_id, include_deleted=include_deleted)
    return JSON({"comments": [schemas.comment_out(r) for r in rows]})


@router.post("/runs/{run_id}/comments", status_code=201)
def add_run_comment(run_id: str, body: schemas.CommentCreate, request: Request,
                    access: Access = requires("comment.write")) -> Any:
    row = tx.write(request, access, comments.add_comment, body.text, run_id=run_id)
    return JSON(schemas.comment_out(row), status_code=201)


@router.get("/models/{name}/versions/{version}/comments")
def list_version_comments(name: str, version: str, request: Request, include_deleted: bool = False,
                          access: Access = requires("comment.read")) -> Any:
    rows = tx.read(request, access, comments.list_comments, model=name, version=version,
                   include_deleted=include_deleted)
    return JSON({"comments": [schemas.comment_out(r) for r in rows]})


@router.post("/models/{name}/versions/{version}/comments", status_code=201)
def add_version_comment(name: str, version: str, body: schemas.CommentCreate, request: Request,
                        access: Access = requires("comment.write")) -> Any:
    row = tx.write(request, access, comments.add_comment, body.text, model=name, version=version)
    return JSON(schemas.comment_out(row), status_code=201)


@router.patch("/comments/{comment_id}")
def edit_comment(body: schemas.CommentCreate, request: Request, comment_id: int = CommentId,
                 access: Access = requires("comment.write")) -> Any:
    return JSON(schemas.comment_out(tx.write(request, access, comments.edit_comment, comment_id, body.text)))


@router.delete("/comments/{comment_id}")
def delete_comment(request: Request, comment_id: int = CommentId, access: Access = requires("comment.write")) -> Any:
    tx.write(request, access, comments.delete_comment, comment_id)
    return JSON({})
