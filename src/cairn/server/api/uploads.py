"""/api/v1/runs/{run_id}/artifacts/uploads: direct uploads into the bucket, through presigned URLs.

1. ``POST .../uploads`` with {path, size, digest}: the plan (one URL, or a URL per part), or
   ``{"mode": "proxy"}`` when the store cannot take direct uploads (send the file with PUT as before).
2. The client PUTs the bytes to the URLs (asking ``POST .../uploads/{id}/urls`` again if they expired).
3. ``POST .../uploads/{id}/complete``: the server checks the bytes' SHA-256 in the store and records the
   version, or removes the object and refuses it. ``DELETE .../uploads/{id}`` gives up.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from cairn.server.api import transaction as tx
from cairn.server.api.auth import Access, requires
from cairn.server.api.common import JSON
from cairn.server.schemas.tracking import ArtifactVersion, artifact_version_out
from cairn.server.services import artifacts, runs, uploads
from cairn.server.services.errors import InvalidInputError
from cairn.server.storage.paths import clean_artifact_path

router = APIRouter(prefix="/api/v1/runs/{run_id}/artifacts/uploads", tags=["artifacts"])


class UploadCreate(BaseModel):
    path: str = Field(max_length=1024, description="path inside the run")
    size: int = Field(ge=0, description="bytes")
    digest: str = Field(max_length=100, description="sha256:<hex> of the whole file")


class UploadUrls(BaseModel):
    multipart_id: str | None = Field(None, max_length=1024)
    part_numbers: list[int] = Field(default_factory=list, max_length=10000)


class UploadedPart(BaseModel):
    part_number: int = Field(ge=1, le=10000)
    etag: str = Field(max_length=200)


class UploadComplete(BaseModel):
    path: str = Field(max_length=1024)
    size: int = Field(ge=0)
    digest: str = Field(max_length=100)
    multipart_id: str | None = Field(None, max_length=1024)
    parts: list[UploadedPart] = Field(default_factory=list, max_length=10000)


class ProxyUpload(BaseModel):
    """The store takes no direct uploads: PUT the file to the run's artifacts instead."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["proxy"]


class SingleUpload(BaseModel):
    """PUT the whole file to ``url``. (These shapes describe ``UploadPlan.to_json`` and ``upload_urls``.)"""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["single"]
    upload_id: str
    url: str


class PartUrl(BaseModel):
    model_config = ConfigDict(extra="forbid")
    part_number: int
    url: str


class MultipartUpload(BaseModel):
    """PUT each part (``part_size`` bytes, the last one shorter) to its URL, then complete with the ETags."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["multipart"]
    upload_id: str
    multipart_id: str
    part_size: int
    parts: list[PartUrl]


class FreshUrl(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str


class FreshPartUrls(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parts: list[PartUrl]


async def _writable_run(request: Request, access: Access, run_id: str) -> None:
    await tx.read_async(request, access, partial(runs.get_run_row, write=True), run_id)


@router.post("", response_model=ProxyUpload | SingleUpload | MultipartUpload)
async def begin_upload(run_id: str, body: UploadCreate, request: Request,
                       access: Access = requires("artifact.write")) -> Response:
    """Plan a direct upload of one file; nothing is recorded until it is completed."""
    clean_artifact_path(body.path)
    uploads.check_size(body.size)
    uploads.check_claimed_digest(body.digest)
    await _writable_run(request, access, run_id)
    store = request.app.state.blobs
    if not store.direct:
        return JSON({"mode": "proxy"})
    plan = await run_in_threadpool(uploads.plan_upload, store, body.size)
    return JSON(plan.to_json())


@router.post("/{upload_id}/urls", response_model=FreshUrl | FreshPartUrls)
async def refresh_upload_urls(run_id: str, upload_id: str, body: UploadUrls, request: Request,
                              access: Access = requires("artifact.write")) -> Response:
    """New URLs for an upload under way: its first ones expired, or a part is sent again."""
    await _writable_run(request, access, run_id)
    store = _direct_store(request)
    return JSON(await run_in_threadpool(uploads.upload_urls, store, upload_id, body.multipart_id, body.part_numbers))


@router.post("/{upload_id}/complete", status_code=201, response_model=ArtifactVersion)
async def complete_upload(run_id: str, upload_id: str, body: UploadComplete, request: Request,
                          access: Access = requires("artifact.write")) -> Response:
    """Check the uploaded bytes against the claimed digest and size, then record the next version."""
    path = clean_artifact_path(body.path)
    uploads.check_claimed_digest(body.digest)
    await _writable_run(request, access, run_id)
    store = _direct_store(request)
    blob = await run_in_threadpool(partial(
        uploads.finish_upload, store, upload_id, multipart_id=body.multipart_id,
        parts=[(p.part_number, p.etag) for p in body.parts], digest=body.digest, size=body.size))
    row = await tx.write_async(request, access, artifacts.record_version, run_id, path, blob)
    return JSON(artifact_version_out(row), status_code=201)


@router.delete("/{upload_id}", status_code=204, response_class=Response)
async def abort_upload(run_id: str, upload_id: str, request: Request,
                       multipart_id: str | None = Query(None, max_length=1024),
                       access: Access = requires("artifact.write")) -> Response:
    await _writable_run(request, access, run_id)
    await run_in_threadpool(uploads.abort_upload, _direct_store(request), upload_id, multipart_id)
    return Response(status_code=204)


def _direct_store(request: Request) -> Any:
    store = request.app.state.blobs
    if not store.direct:
        raise InvalidInputError("this server's artifact store takes uploads through the server only: "
                                        "PUT the file to /api/v1/runs/{run_id}/artifacts", field="upload_id")
    return store
