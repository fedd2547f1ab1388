"""/api/v1/runs/{run_id}/artifacts: versioned artifacts, streamed in and out."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from cairn.server.api import transaction as tx
from cairn.server.api.auth import Access, requires
from cairn.server.api.common import BYTES, JSON, Route, read_body
from cairn.server.schemas import tracking as schemas
from cairn.server.schemas.tracking import artifact_out, artifact_version_out
from cairn.server.services import artifacts, runs
from cairn.server.services.validation import MAX_ID
from cairn.server.storage.paths import clean_artifact_path

router = APIRouter(prefix="/api/v1/runs/{run_id}/artifacts", tags=["artifacts"], route_class=Route)
PathQuery = Query(max_length=1024, description="path inside the run, e.g. plots/confusion.png")


@router.put("", status_code=201, response_model=schemas.ArtifactVersion,
            openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}}})
async def upload_artifact(run_id: str, request: Request, path: str = PathQuery,
                          access: Access = requires("artifact.write")) -> Response:
    """Store the request body as the next version of ``path``."""
    clean = clean_artifact_path(path)
    if _declared_size(request) <= SMALL_BODY:
        # a small file (most of a folder upload): read it, then check, store and record in one worker-thread
        # hop; the run is checked before any byte is stored, as below
        body = await request.body()
        row = await run_in_threadpool(_store_small, request, access, run_id, clean, body)
        return JSON(artifact_version_out(row), status_code=201)
    # refuse before reading the body; the run is named as the one being written (grants apply)
    await tx.read_async(request, access, partial(runs.get_run_row, write=True), run_id)
    blob = await request.app.state.blobs.put_stream(request.stream())
    row = await tx.write_async(request, access, artifacts.record_version, run_id, clean, blob)
    return JSON(artifact_version_out(row), status_code=201)


SMALL_BODY = 1024 * 1024  # bytes: a body up to this, with its Content-Length declared, is read whole


def _declared_size(request: Request) -> int:
    declared = request.headers.get("content-length")
    return int(declared) if declared is not None and declared.isdigit() and len(declared) < 19 else SMALL_BODY + 1


def _store_small(request: Request, access: Access, run_id: str, path: str, body: bytes) -> Any:
    tx.read(request, access, partial(runs.get_run_row, write=True), run_id)
    blob = request.app.state.blobs.put_bytes(body)  # outside any transaction: the fsyncs hold no lock
    return tx.write(request, access, artifacts.record_version, run_id, path, blob)


@router.post("/batch", status_code=201, response_model=schemas.ArtifactBatch,
             openapi_extra={"requestBody": {"content": {"application/x-cairn-files": {}}}})
async def upload_artifact_batch(run_id: str, request: Request, access: Access = requires("artifact.write")) -> Response:
    """Store several files in one request, each as the next version of its path, all or none. The body is
    one JSON line ``{"files": [{"path": "a/b.txt", "size": 12}, ...]}`` and then the files' bytes in that
    order. Meant for many small files (a folder upload): one request and one transaction for all."""
    # refuse before reading the body, as a single upload does
    await tx.read_async(request, access, partial(runs.get_run_row, write=True), run_id)
    body = await read_body(request)
    files, start = artifacts.parse_batch(body)
    rows = await run_in_threadpool(_store_batch, request, access, run_id, files, memoryview(body)[start:])
    return JSON({"versions": [artifact_version_out(r) for r in rows]}, status_code=201)


_BLOB_WRITERS = ThreadPoolExecutor(8, thread_name_prefix="cairn-blobs")


def _store_batch(request: Request, access: Access, run_id: str, files: list[tuple[str, int]],
                 data: memoryview) -> Any:
    """Store the blobs, then record every version in one transaction. The blobs are written several at once
    and outside any transaction: each costs two fsyncs, which the file system commits together."""
    starts = [0]
    for _, size in files:
        starts.append(starts[-1] + size)
    parts = [bytes(data[starts[i]:starts[i + 1]]) for i in range(len(files))]
    blobs = list(_BLOB_WRITERS.map(request.app.state.blobs.put_bytes, parts))
    stored = [(path, blob) for (path, _), blob in zip(files, blobs, strict=True)]
    return tx.write(request, access, artifacts.record_versions, run_id, stored)


@router.get("", response_model=schemas.ArtifactList)
def list_artifacts(run_id: str, request: Request, path: str = Query("", max_length=1024),
                   access: Access = requires("artifact.read")) -> Response:
    entries = tx.read(request, access, artifacts.list_artifacts, run_id, path)
    return JSON({"root": path, "files": [artifact_out(e) for e in entries]})


@router.get("/versions", response_model=schemas.ArtifactVersionList)
def list_artifact_versions(run_id: str, request: Request, path: str = PathQuery,
                           access: Access = requires("artifact.read")) -> Response:
    rows = tx.read(request, access, artifacts.list_versions, run_id, path)
    return JSON({"path": path, "versions": [artifact_version_out(r) for r in rows]})


DirectQuery = Query(default=False, description="with a bucket store: answer 307 to a presigned URL of the bucket for a "
                                       "file over 1 MiB, so the bytes do not pass through the server")


@router.get("/content", **BYTES)
async def download_artifact(run_id: str, request: Request, path: str = PathQuery,
                            version: int | None = Query(None, ge=1, le=MAX_ID), direct: bool = DirectQuery,
                            access: Access = requires("artifact.read")) -> Response:
    row, data = await run_in_threadpool(_find_content, request, access, run_id, path, version)
    headers = {"X-Cairn-Version": str(row.version), "X-Cairn-Digest": row.digest,
               "Content-Length": str(row.size)}
    if direct and (moved := await redirect_to_blob(request, row.digest, row.size, headers)) is not None:
        return moved
    if data is not None:
        return Response(data, media_type="application/octet-stream", headers=headers)
    chunks = request.app.state.blobs.open(row.digest)  # a generator: the file opens in the first read's thread
    return StreamingResponse(chunks, media_type="application/octet-stream", headers=headers)


def _find_content(request: Request, access: Access, run_id: str, path: str,
                  version: int | None) -> tuple[Any, bytes | None]:
    """The version, and its bytes if it is small (one answer, no streaming, in the same thread hop)."""
    row = tx.read(request, access, artifacts.get_version, run_id, path, version)
    return row, request.app.state.blobs.read_bytes(row.digest) if row.size <= SMALL_BODY else None


async def redirect_to_blob(request: Request, digest: str, size: int, headers: dict[str, str]) -> Response | None:
    """A 307 to a presigned URL of the blob, for a file past SMALL_BODY in a bucket store; else None (the
    bytes come through the server). A small file is one answer either way, and one round trip is cheaper."""
    store = request.app.state.blobs
    if not store.direct or size <= SMALL_BODY:
        return None
    url = await run_in_threadpool(store.download_url, digest)
    moved = {key: value for key, value in headers.items() if key != "Content-Length"}
    return Response(status_code=307, headers={**moved, "X-Cairn-Size": str(size), "Location": url})
