"""MLflow's artifact routes: the proxy under ``/api/2.0/mlflow-artifacts`` (list, download, upload), the
tracking API's ``artifacts/list``, and the MLflow UI's upload route."""

from __future__ import annotations

import mimetypes
import re
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from cairn.server.api import transaction as tx
from cairn.server.api.auth import Access, requires
from cairn.server.api.common import JSON, read_body
from cairn.server.api.mlflow.protocol import ARTIFACTS_PREFIX, artifacts_router, mlflow_routes, run_id_of, text, written
from cairn.server.api.mlflow.shapes import default_experiment_id, file_out
from cairn.server.services import artifacts, logged_models, mlflow, runs
from cairn.server.services.errors import InvalidInputError
from cairn.server.storage.blobs import StoredBlob
from cairn.server.storage.paths import clean_artifact_path

_EXPERIMENT_ONLY = re.compile(r"[0-9]{1,18}")


def _dot(path: str) -> str:
    """MLflow clients name a folder's root as "." (``download_artifacts(artifact_path=".")``)."""
    return "" if path.strip("/") in ("", ".") else path.removeprefix("./")


@mlflow_routes("GET", "/artifacts/list", "artifact.read")
async def list_artifacts(request: Request, access: Access, body: dict[str, Any]) -> Any:
    run_id, path = run_id_of(body), _dot(text(body, "path", required=False, default=""))

    def listing(session: Any, ctx: Any) -> Any:
        entries = artifacts.list_artifacts(session, ctx, run_id, path)
        run = runs.get_run_row(session, ctx, run_id)
        default = default_experiment_id(session, ctx)
        return mlflow.artifact_uri(run, experiment="0" if run.experiment_id == default else None), entries
    root, entries = await tx.read_async(request, access, listing)
    return JSON({"root_uri": root, "files": [file_out(e) for e in entries]})


def _listing(session: Any, ctx: Any, path: str) -> list[dict[str, Any]]:
    text_path = path.strip("/")
    if not text_path or _EXPERIMENT_ONLY.fullmatch(text_path) or re.fullmatch(r"[0-9]{1,18}/[0-9a-f]{32}", text_path):
        return []  # above a run's artifact root there is no file to list
    location = mlflow.locate(session, ctx, _dot_tail(path))
    if location.model is not None:
        entries = logged_models.list_files(session, location.model, location.path)
        return [file_out(e, location.path) for e in entries]
    assert location.run is not None
    entries = artifacts.list_artifacts(session, ctx, location.run.id, location.path)
    return [file_out(e, location.path) for e in entries]


def _dot_tail(path: str) -> str:
    head, sep, tail = path.strip("/").partition("/artifacts")
    return f"{head}{sep}/{_dot(tail.removeprefix('/'))}" if sep else path


@artifacts_router.get(ARTIFACTS_PREFIX + "/artifacts")
def list_proxy_artifacts(request: Request, path: str = "", access: Access = requires("artifact.read")) -> Any:
    """The direct children of ``<experiment id>/<run id>/artifacts/<path>`` (or of a logged model's folder)."""
    return JSON({"files": tx.read(request, access, _listing, path)})


@artifacts_router.get(ARTIFACTS_PREFIX + "/artifacts/{artifact_path:path}")
async def download_proxy_artifact(artifact_path: str, request: Request,
                                  access: Access = requires("artifact.read")) -> Any:
    def find(session: Any, ctx: Any) -> tuple[str, int, str]:
        location = mlflow.locate(session, ctx, artifact_path)
        if location.model is not None:
            digest, size = logged_models.file_digest(session, location.model, location.path)
            return digest, size, "1"
        assert location.run is not None
        row = artifacts.get_version(session, ctx, location.run.id, location.path, None)
        return row.digest, row.size, str(row.version)
    digest, size, version = await tx.read_async(request, access, find)
    chunks = await run_in_threadpool(request.app.state.blobs.open, digest)
    return StreamingResponse(chunks, media_type="application/octet-stream",
                             headers={"Content-Length": str(size), "X-Cairn-Version": version})


async def _store(request: Request, access: Access, artifact_path: str) -> None:
    """Uploads land in Cairn's versioned store: a second upload of a run's path is its next version."""
    location = await tx.read_async(request, access, lambda s, c: mlflow.locate(s, c, artifact_path, write=True))
    if not location.path:
        raise InvalidInputError("name a file below the artifact root", field="path")
    blob: StoredBlob = await request.app.state.blobs.put_stream(request.stream())
    if location.model is not None:
        await tx.write_async(request, access, logged_models.put_file, location.model.id, location.path, blob)
    else:
        assert location.run is not None
        await tx.write_async(request, access, artifacts.record_version, location.run.id, location.path, blob)


@artifacts_router.put(ARTIFACTS_PREFIX + "/artifacts/{artifact_path:path}")
async def upload_proxy_artifact(artifact_path: str, request: Request,
                                access: Access = requires("artifact.write")) -> Any:
    await _store(request, access, artifact_path)
    return JSON({})


@artifacts_router.delete(ARTIFACTS_PREFIX + "/artifacts/{artifact_path:path}")
def delete_proxy_artifact(artifact_path: str, request: Request, access: Access = requires("artifact.write")) -> Any:
    tx.read(request, access, lambda s, c: mlflow.locate(s, c, artifact_path, write=True))
    raise InvalidInputError("Cairn keeps every version of every artifact; they are removed with their run",
                            field="path")


@artifacts_router.post("/ajax-api/2.0/mlflow/upload-artifact")
async def upload_artifact(request: Request, run_uuid: str = "", path: str = "",
                          access: Access = requires("artifact.write")) -> Any:
    """The MLflow UI's upload: the body is the file, ``run_uuid`` and ``path`` are in the query string."""
    if not run_uuid:
        raise InvalidInputError("Request must specify run_uuid.", field="run_uuid")
    if not path:
        raise InvalidInputError("Request must specify path.", field="path")
    try:
        clean_artifact_path(path)
    except InvalidInputError:
        raise InvalidInputError(f"Invalid path: {path[:200]!r}", field="path") from None
    data = await read_body(request)
    if not data:
        raise InvalidInputError("Request must specify data.", field="body")

    def store(session: Any, ctx: Any) -> None:
        run = runs.get_run_row(session, ctx, run_uuid, write=True)
        artifacts.record_version(session, ctx, run.id, path, blob)
    blob: StoredBlob = await run_in_threadpool(request.app.state.blobs.put_bytes, data)
    return await written(request, access, store)


def _stream(request: Request, digest: str, size: int, name: str) -> Any:
    chunks = request.app.state.blobs.open(digest)
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return StreamingResponse(chunks, media_type=kind if kind.startswith("text/") else "application/octet-stream",
                             headers={"Content-Length": str(size), "X-Content-Type-Options": "nosniff"})


@artifacts_router.get("/get-artifact")
@artifacts_router.get("/ajax-api/2.0/mlflow/get-artifact")
async def get_artifact(request: Request, path: str = "", run_uuid: str = "", run_id: str = "",
                       access: Access = requires("artifact.read")) -> Any:
    """The MLflow UI's download of one run artifact (the latest version)."""
    wanted = run_uuid or run_id
    if not wanted or not path:
        raise InvalidInputError("Request must specify run_uuid and path.", field="run_uuid" if not wanted else "path")
    row = await tx.read_async(request, access, artifacts.get_version, wanted, path, None)
    return await run_in_threadpool(_stream, request, row.digest, row.size, path)


@artifacts_router.get("/ajax-api/2.0/mlflow/logged-models/{model_id}/artifacts/files")
async def get_logged_model_file(model_id: str, request: Request, artifact_file_path: str = "",
                                access: Access = requires("artifact.read")) -> Any:
    """The MLflow UI's download of one file of a logged model (another workspace's model answers 404 first)."""
    def find(session: Any, ctx: Any) -> tuple[str, int]:
        row = logged_models.get_logged_model(session, ctx, model_id.removeprefix("m-"))
        if not artifact_file_path:
            raise InvalidInputError("Request must specify artifact_file_path.", field="artifact_file_path")
        return logged_models.file_digest(session, row, artifact_file_path)
    digest, size = await tx.read_async(request, access, find)
    return await run_in_threadpool(_stream, request, digest, size, artifact_file_path)
