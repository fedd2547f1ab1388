"""MLflow's multipart upload protocol, so that ``mlflow.log_artifact`` of a large file goes to the bucket.

The MLflow client asks ``/api/2.0/mlflow-artifacts/mpu/create/<experiment>/<run>/artifacts/<dir>`` with
``{path: <its local file>, num_parts}``, PUTs each part to the presigned URL it gets, then calls
``mpu/complete`` with the parts' ETags (or ``mpu/abort``). The file lands at ``<dir>/<basename of path>``,
as with MLflow's own S3 store. The client claims no digest: the server learns the SHA-256 from the store
when completing (``services.uploads.finish_upload``), the same step the native direct uploads use.

MLflow's one upload id carries both of ours: ``<upload id>.<the bucket's multipart upload id>``.
``server-info`` (in ``mlflow.py``) announces multipart uploads only when the artifact store is a bucket.
"""

from __future__ import annotations

import posixpath
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cairn.server.api import transaction as tx
from cairn.server.api.auth import Access, requires
from cairn.server.api.common import JSON
from cairn.server.services import artifacts, mlflow, uploads
from cairn.server.services.errors import InvalidInputError
from cairn.server.storage.paths import clean_artifact_path

router = APIRouter(prefix="/api/2.0/mlflow-artifacts/mpu", tags=["mlflow"])
UNSUPPORTED = "Multipart upload is not supported for the current artifact repository"  # the client's fallback cue


class MpuCreate(BaseModel):
    path: str = Field(max_length=4096, description="the client's local file; only its name is used")
    num_parts: int = Field(1, ge=1, le=10000)


class MpuPart(BaseModel):
    part_number: int = Field(ge=1, le=10000)
    etag: str | None = Field(None, max_length=200)
    url: str | None = Field(None, max_length=8192)


class MpuComplete(BaseModel):
    path: str = Field(max_length=4096)
    upload_id: str = Field(max_length=1100)
    parts: list[MpuPart] = Field(default_factory=list, max_length=10000)


class MpuAbort(BaseModel):
    path: str = Field(max_length=4096)
    upload_id: str = Field(max_length=1100)


async def _target(request: Request, access: Access, artifact_path: str, local_name: str) -> tuple[str, str]:
    """(run id, path inside the run) of the file the client uploads, checked as writable."""
    location = await tx.read_async(request, access, lambda s, c: mlflow.locate(s, c, artifact_path, write=True))
    if location.run is None:
        raise InvalidInputError("multipart uploads go into a run's artifacts; a file of a logged model made outside "
                                "a run is uploaded whole", field="path")
    name = posixpath.basename(local_name.replace("\\", "/"))
    path = clean_artifact_path(f"{location.path}/{name}" if location.path else name)
    return location.run.id, path


def _split(upload_id: str) -> tuple[str, str]:
    ours, dot, multipart_id = upload_id.partition(".")
    if not dot or not multipart_id:
        raise InvalidInputError(f"upload_id {upload_id[:80]!r} is not one this server gave", field="upload_id")
    return ours, multipart_id


@router.post("/create/{artifact_path:path}")
async def create_multipart_upload(artifact_path: str, body: MpuCreate, request: Request,
                                  access: Access = requires("artifact.write")) -> Any:
    await _target(request, access, artifact_path, body.path)
    store = request.app.state.blobs
    if not store.direct:
        return JSONResponse({"error_code": "NOT_IMPLEMENTED", "message": UNSUPPORTED}, status_code=501)
    plan = await run_in_threadpool(partial(uploads.plan_upload, store, 0, parts=body.num_parts))
    credentials = [{"url": url, "part_number": number, "headers": {}} for number, url in plan.parts]
    return JSON({"upload_id": f"{plan.upload_id}.{plan.multipart_id}", "credentials": credentials})


@router.post("/complete/{artifact_path:path}")
async def complete_multipart_upload(artifact_path: str, body: MpuComplete, request: Request,
                                    access: Access = requires("artifact.write")) -> Any:
    """The store computes the SHA-256 of what arrived; the version is recorded under it."""
    run_id, path = await _target(request, access, artifact_path, body.path)
    ours, multipart_id = _split(body.upload_id)
    parts = [(p.part_number, p.etag or "") for p in body.parts]
    blob = await run_in_threadpool(partial(uploads.finish_upload, request.app.state.blobs, ours,
                                           multipart_id=multipart_id, parts=parts))
    await tx.write_async(request, access, artifacts.record_version, run_id, path, blob)
    return JSON({})


@router.post("/abort/{artifact_path:path}")
async def abort_multipart_upload(artifact_path: str, body: MpuAbort, request: Request,
                                 access: Access = requires("artifact.write")) -> Any:
    await _target(request, access, artifact_path, body.path)
    ours, multipart_id = _split(body.upload_id)
    await run_in_threadpool(uploads.abort_upload, request.app.state.blobs, ours, multipart_id)
    return JSON({})
