"""cairn.Client: read runs, experiments, metrics and artifacts; direct (synchronous) writes."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import orjson

from cairn._wire import ArtifactVersion
from cairn.client._collab import CollabMixin
from cairn.client._config import Config
from cairn.client._conventions import ConventionsMixin
from cairn.client._errors import APIError, CairnError, NotFoundError, TransportError
from cairn.client._models import (
    ArtifactInfo,
    Experiment,
    MetricHistory,
    ParamEntry,
    Run,
    RunList,
    floats,
)
from cairn.client._objects import Progress, file_digest, put_range, upload_parts
from cairn.client._registry import RegistryMixin
from cairn.client._transport import Transport, open_transport

_transports: dict[tuple[str, str, str | None], Transport] = {}
_inherited: list[Transport] = []
T = TypeVar("T")
FILE_THREADS = 4  # requests at once in upload_artifacts and a folder's download_artifact
BATCH_FILE_BYTES = 1024 * 1024  # files up to this size go up together, in one request (one transaction)
BATCH_FILES = 200
BATCH_BYTES = 8 * 1024 * 1024


def shared_transport(config: Config) -> Transport:
    """One connection pool per (target, workspace, token) in this process."""
    key = (config.target, config.workspace, config.token)
    if key not in _transports:
        _transports[key] = open_transport(config.tracking_uri, str(config.home), config.workspace, config.token)
    return _transports[key]


def forget_transports() -> None:
    """Stop using this process's connections without closing them (a forked child: they are the parent's).
    They are kept referenced, never collected: an embedded transport holds SQLite connections, and closing
    one inherited across a fork drops the locks the child's own connections hold."""
    _inherited.extend(_transports.values())
    _transports.clear()


def close_transports() -> None:
    while _transports:
        _transports.popitem()[1].close()


class Client(RegistryMixin, CollabMixin, ConventionsMixin):
    """Reads and direct writes against the configured tracking store.

    ``Client()`` uses CAIRN_TRACKING_URI (unset: the embedded store under CAIRN_HOME), CAIRN_TOKEN
    and CAIRN_WORKSPACE; each can be given here instead.
    """

    def __init__(self, tracking_uri: str | None = None, *, token: str | None = None,
                 workspace: str | None = None) -> None:
        self.config = Config.from_env(tracking_uri, token, workspace)
        self._t = shared_transport(self.config)

    # experiments -----------------------------------------------------------------------------------
    def create_experiment(self, name: str, description: str = "", tags: dict[str, str] | None = None) -> Experiment:
        body = {"name": name, "description": description, "tags": tags or {}}
        return Experiment.from_json(self._t.request("POST", "/api/v1/experiments", json=body))

    def get_experiment(self, experiment_id: int) -> Experiment:
        return Experiment.from_json(self._t.request("GET", f"/api/v1/experiments/{int(experiment_id)}"))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """The experiment with this name, or None if there is none."""
        try:
            data = self._t.request("GET", "/api/v1/experiments/by-name", params={"name": name})
        except NotFoundError:
            return None
        return Experiment.from_json(data)

    def list_experiments(self, *, include_deleted: bool = False, name_contains: str | None = None,
                         max_results: int = 1000) -> list[Experiment]:
        params: dict[str, Any] = {"include_deleted": include_deleted, "max_results": max_results}
        if name_contains:
            params["name_contains"] = name_contains
        data = self._t.request("GET", "/api/v1/experiments", params=params)
        return [Experiment.from_json(e) for e in data["experiments"]]

    def update_experiment(self, experiment_id: int, *, name: str | None = None,
                          description: str | None = None) -> Experiment:
        body = {k: v for k, v in {"name": name, "description": description}.items() if v is not None}
        return Experiment.from_json(self._t.request("PATCH", f"/api/v1/experiments/{int(experiment_id)}", json=body))

    def delete_experiment(self, experiment_id: int) -> None:
        self._t.request("DELETE", f"/api/v1/experiments/{int(experiment_id)}")

    def restore_experiment(self, experiment_id: int) -> None:
        self._t.request("POST", f"/api/v1/experiments/{int(experiment_id)}/restore")

    def set_experiment_tags(self, experiment_id: int, tags: dict[str, str]) -> None:
        self._t.request("POST", f"/api/v1/experiments/{int(experiment_id)}/tags", json=tags)

    def delete_experiment_tag(self, experiment_id: int, key: str) -> None:
        self._t.request("DELETE", f"/api/v1/experiments/{int(experiment_id)}/tags", params={"key": key})

    # runs -------------------------------------------------------------------------------------------
    def get_run(self, run_id: str) -> Run:
        return Run.from_json(self._t.request("GET", f"/api/v1/runs/{run_id}"))

    def search_runs(self, experiment: str | int | Sequence[str | int] | None = None, filter: str | None = None,
                    order_by: Sequence[str] | None = None, max_results: int = 1000,
                    page_token: str | None = None, view: str = "active_only") -> RunList:
        """Runs matching ``filter`` (MLflow's language plus summary suffixes), one page at a time."""
        experiments = [experiment] if isinstance(experiment, str | int) else list(experiment or [])
        body = {
            "experiment_ids": [e for e in experiments if isinstance(e, int)],
            "experiment_names": [e for e in experiments if isinstance(e, str)],
            "filter": filter, "order_by": list(order_by or []), "max_results": max_results,
            "page_token": page_token, "run_view_type": view,
        }
        data = self._t.request("POST", "/api/v1/runs/search", json=body)
        runs = RunList(Run.from_json(r) for r in data["runs"])
        runs.next_page_token = data.get("next_page_token")
        return runs

    def create_run(self, experiment: str | int | None = None, *, name: str | None = None,
                   tags: dict[str, str] | None = None, parent_run_id: str | None = None,
                   run_key: str | None = None) -> Run:
        """With ``run_key``, the run with that key in the experiment if there is one (resumed if it had
        ended), else a new run carrying the key."""
        body: dict[str, Any] = {"name": name, "tags": tags or {}, "parent_run_id": parent_run_id}
        if run_key is not None:
            body["run_key"] = run_key
        body["experiment_id" if isinstance(experiment, int) else "experiment_name"] = experiment
        return Run.from_json(self._t.request("POST", "/api/v1/runs", json=body))

    def update_run(self, run_id: str, *, status: str | None = None, name: str | None = None,
                   end_time: int | None = None) -> Run:
        body = {k: v for k, v in {"status": status, "name": name, "end_time": end_time}.items() if v is not None}
        return Run.from_json(self._t.request("PATCH", f"/api/v1/runs/{run_id}", json=body))

    def set_terminated(self, run_id: str, status: str = "FINISHED") -> Run:
        return self.update_run(run_id, status=status)

    def delete_run(self, run_id: str) -> None:
        self._t.request("DELETE", f"/api/v1/runs/{run_id}")

    def restore_run(self, run_id: str) -> None:
        self._t.request("POST", f"/api/v1/runs/{run_id}/restore")

    def log_batch(self, run_id: str, *, metrics: list[dict[str, Any]] | None = None,
                  params: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
                  status: str | None = None, end_time: int | None = None) -> None:
        """Synchronous, all-or-nothing write. ``metrics`` items: {key, steps, values[, timestamps]}. With
        ``status`` (e.g. "FINISHED") the run also ends, in the same request: both or neither happen."""
        body: dict[str, Any] = {"metrics": metrics or [], "params": params or {}, "tags": tags or {}}
        if status is not None:
            body["status"] = status
        if end_time is not None:
            body["end_time"] = end_time
        self._t.request("POST", f"/api/v1/runs/{run_id}/batch", json=body)

    def log_metric(self, run_id: str, key: str, value: float, step: int = 0, timestamp: int | None = None) -> None:
        item: dict[str, Any] = {"key": key, "steps": [step], "values": [_json_number(value)]}
        if timestamp is not None:
            item["timestamps"] = [timestamp]
        self.log_batch(run_id, metrics=[item])

    def log_param(self, run_id: str, key: str, value: Any) -> None:
        self.log_batch(run_id, params={key: value})

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self._t.request("POST", f"/api/v1/runs/{run_id}/tags", json={key: value})

    def delete_tag(self, run_id: str, key: str) -> None:
        self._t.request("DELETE", f"/api/v1/runs/{run_id}/tags", params={"key": key})

    def define_metric(self, run_id: str, key: str, goal: str | None) -> None:
        self._t.request("POST", f"/api/v1/runs/{run_id}/metrics/define", json={"key": key, "goal": goal})

    def get_metric_history(self, run_id: str, key: str, *, start_step: int | None = None,
                           end_step: int | None = None, max_points: int | None = None) -> MetricHistory:
        params = {k: v for k, v in {"key": key, "start_step": start_step, "end_step": end_step,
                                    "max_points": max_points}.items() if v is not None}
        data = self._t.request("GET", f"/api/v1/runs/{run_id}/metrics/history", params=params)
        return MetricHistory(key, data["steps"], floats(data["values"]), data["timestamps"])

    def get_param_history(self, run_id: str, key: str) -> list[ParamEntry]:
        data = self._t.request("GET", f"/api/v1/runs/{run_id}/params/history", params={"key": key})
        return [ParamEntry(h["value"], h["timestamp"]) for h in data["history"]]

    # artifacts --------------------------------------------------------------------------------------
    def list_artifacts(self, run_id: str, path: str = "") -> list[ArtifactInfo]:
        data = self._t.request("GET", f"/api/v1/runs/{run_id}/artifacts", params={"path": path})
        return [ArtifactInfo(f["path"], f["is_dir"], f.get("size"), f.get("version"), f.get("digest"))
                for f in data["files"]]

    def list_artifact_versions(self, run_id: str, path: str) -> list[ArtifactVersion]:
        data = self._t.request("GET", f"/api/v1/runs/{run_id}/artifacts/versions", params={"path": path})
        return [ArtifactVersion.from_json(v) for v in data["versions"]]

    def upload_artifact(self, run_id: str, local_path: str | os.PathLike[str], path: str) -> ArtifactVersion:
        """Store one file as the next version of ``path`` inside the run (synchronous)."""
        return upload_file(self._t, run_id, Path(local_path), path)

    def upload_artifacts(self, run_id: str, local_dir: str | os.PathLike[str],
                         artifact_path: str | None = None) -> list[ArtifactVersion]:
        """Store every file under ``local_dir``, keeping its layout, inside the folder ``artifact_path`` of
        the run (its root by default), each as the next version of its path; returns the versions in the
        order of the files' paths. Small files go up together, up to 200 a request, each request all or
        nothing; larger files one a request; several requests at once, each on its own connection.

        If a request fails, those already done stay stored, those not yet started are not sent, and the
        error (of the first failed request, in path order) names its file or files."""
        jobs = folder_uploads(Path(local_dir), artifact_path)
        units = upload_units(jobs)
        done = run_many(self._t, [(describe_unit(unit), partial(upload_unit, self._t, run_id, unit)) for unit in units])
        order = {path: i for i, (_, path) in enumerate(jobs)}  # a unit's versions come in its files' order
        placed = [(order[path], version) for unit, versions in zip(units, done, strict=True)
                  for (_, path), version in zip(unit, versions, strict=True)]
        return [version for _, version in sorted(placed, key=lambda item: item[0])]

    def download_artifact(self, run_id: str, path: str, dst: str | os.PathLike[str],
                          version: int | None = None) -> str:
        """Download a file (a given version, latest by default) or a whole folder into ``dst``;
        returns the local path. Every file's sha256 is checked against the server's digest. A folder's
        files are fetched several at once."""
        target_dir = Path(dst)
        entries = self.list_artifacts(run_id, _parent(path))
        match = next((e for e in entries if e.path == path.strip("/")), None)
        if match is not None and match.is_dir:
            if version is not None:
                raise CairnError(f"{path!r} is a folder; version applies to files only")
            return self._download_tree(run_id, path.strip("/"), target_dir)
        local = target_dir / Path(path).name
        self._download_file(run_id, path, local, version)
        return str(local)

    def _download_tree(self, run_id: str, folder: str, target_dir: Path) -> str:
        base = target_dir / Path(folder).name
        files: list[tuple[str, Path]] = []
        stack = [folder]
        while stack:
            current = stack.pop()
            for entry in self.list_artifacts(run_id, current):
                if entry.is_dir:
                    stack.append(entry.path)
                else:
                    files.append((entry.path, base / entry.path[len(folder) + 1:]))
        base.mkdir(parents=True, exist_ok=True)
        for folder_path in sorted({local.parent for _, local in files}):
            folder_path.mkdir(parents=True, exist_ok=True)
        run_many(self._t, [(f"downloading {path!r} to {local}", partial(self._download_file, run_id, path, local, None))
                           for path, local in files])
        return str(base)

    def _download_file(self, run_id: str, path: str, local: Path, version: int | None) -> None:
        params: dict[str, Any] = {"path": path}
        if version is not None:
            params["version"] = version
        local.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=f".{local.name}.")
        try:
            hasher = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                def write(piece: memoryview) -> None:
                    hasher.update(piece)
                    out.write(piece)

                headers = self._t.download_to(f"/api/v1/runs/{run_id}/artifacts/content", params, write)
            expected = headers.get("x-cairn-digest", "")
            if expected and expected != f"sha256:{hasher.hexdigest()}":
                raise CairnError(f"downloaded {path!r} does not match its digest {expected}")
            os.replace(tmp, local)
        finally:
            Path(tmp).unlink(missing_ok=True)


DIRECT_MIN = 1024 * 1024  # bytes: a larger file goes straight to the bucket when the server has one


def upload_file(transport: Transport, run_id: str, local_path: Path, path: str) -> ArtifactVersion:
    """One file as the next version of ``path``: straight into the server's bucket when it has one and the
    file is past ``DIRECT_MIN`` (fewer round trips through the server are cheaper below), else as the body
    of one request to the server."""
    if transport.concurrent and transport.direct_uploads is not False and local_path.stat().st_size > DIRECT_MIN:
        version = _upload_direct(transport, run_id, local_path, path)
        if version is not None:
            return version
    data = transport.upload_file("PUT", f"/api/v1/runs/{run_id}/artifacts", {"path": path}, local_path)
    return ArtifactVersion.from_json(data)


def _upload_direct(transport: Transport, run_id: str, local_path: Path, path: str) -> ArtifactVersion | None:
    """None if the server's store takes uploads through the server only (remembered for this transport)."""
    size, digest = local_path.stat().st_size, file_digest(local_path)
    base = f"/api/v1/runs/{run_id}/artifacts/uploads"
    plan = transport.request("POST", base, json={"path": path, "size": size, "digest": digest})
    if plan["mode"] == "proxy":
        transport.direct_uploads = False
        return None
    upload_id, multipart_id = plan["upload_id"], plan.get("multipart_id")
    progress = Progress(f"uploading {local_path.name}", size)
    try:
        if multipart_id is None:
            def fresh() -> str:
                return str(transport.request("POST", f"{base}/{upload_id}/urls", json={})["url"])
            put_range(local_path, 0, size, plan["url"], fresh, progress)
            parts: list[dict[str, Any]] = []
        else:
            def fresh_part(number: int) -> str:
                answer = transport.request("POST", f"{base}/{upload_id}/urls",
                                           json={"multipart_id": multipart_id, "part_numbers": [number]})
                return str(answer["parts"][0]["url"])
            parts = upload_parts(local_path, plan, fresh_part, progress)
        done = transport.request("POST", f"{base}/{upload_id}/complete", json={
            "path": path, "size": size, "digest": digest, "multipart_id": multipart_id, "parts": parts},
            timeout=verify_timeout(size))
    except BaseException:
        _abandon(transport, base, upload_id, multipart_id)
        raise
    finally:
        progress.close()
    return ArtifactVersion.from_json(done)


def verify_timeout(size: int) -> float:
    """How long completing an upload of ``size`` bytes may take: the server has the bucket checksum the
    whole object (a copy in the bucket, or a read where the bucket cannot), well under 5 MB/s nowhere."""
    return 60.0 + size / 5_000_000


def _abandon(transport: Transport, base: str, upload_id: str, multipart_id: str | None) -> None:
    """Best effort: free what was uploaded (cairn gc removes what is left after an hour anyway)."""
    with contextlib.suppress(CairnError):
        transport.request("DELETE", f"{base}/{upload_id}",
                          params={"multipart_id": multipart_id} if multipart_id else None)


def folder_uploads(root: Path, artifact_path: str | None) -> list[tuple[Path, str]]:
    """(file, artifact path) for every file under ``root``, in path order."""
    if not root.is_dir():
        raise NotADirectoryError(f"no such folder: {root}")
    base = (artifact_path or "").strip("/")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return [(f, f"{base}/{f.relative_to(root).as_posix()}" if base else f.relative_to(root).as_posix())
            for f in files]


def upload_batch(transport: Transport, run_id: str, files: list[tuple[Path, str]]) -> list[ArtifactVersion]:
    """Several files in one request (one transaction on the server: all stored, or none)."""
    contents = [local.read_bytes() for local, _ in files]
    listing = [{"path": path, "size": len(data)} for (_, path), data in zip(files, contents, strict=True)]
    body = b"".join([orjson.dumps({"files": listing}), b"\n", *contents])
    data = transport.request("POST", f"/api/v1/runs/{run_id}/artifacts/batch", content=body,
                             headers={"Content-Type": "application/x-cairn-files"})
    return [ArtifactVersion.from_json(v) for v in data["versions"]]


def upload_unit(transport: Transport, run_id: str, unit: list[tuple[Path, str]]) -> list[ArtifactVersion]:
    if len(unit) == 1:
        return [upload_file(transport, run_id, *unit[0])]
    return upload_batch(transport, run_id, unit)


def upload_units(jobs: list[tuple[Path, str]]) -> list[list[tuple[Path, str]]]:
    """The jobs, in order, as requests: a file past ``BATCH_FILE_BYTES`` alone, the others together, up to
    ``BATCH_FILES`` files and ``BATCH_BYTES`` bytes a request."""
    units: list[list[tuple[Path, str]]] = []
    batch: list[tuple[Path, str]] = []
    size = 0
    for job in jobs:
        file_size = job[0].stat().st_size
        if file_size > BATCH_FILE_BYTES:
            units.append([job])
            continue
        if batch and (len(batch) >= BATCH_FILES or size + file_size > BATCH_BYTES):
            units.append(batch)
            batch, size = [], 0
        batch.append(job)
        size += file_size
    if batch:
        units.append(batch)
    return units


def describe_unit(unit: list[tuple[Path, str]]) -> str:
    if len(unit) == 1:
        return f"uploading {unit[0][0]} as {unit[0][1]!r}"
    return f"uploading {len(unit)} files ({unit[0][1]!r} to {unit[-1][1]!r})"


def run_many(transport: Transport, jobs: Sequence[tuple[str, Callable[[], T]]]) -> list[T]:
    """Every job's function, in threads when the transport gives each its own connection. The first failure
    in job order is raised once the running jobs end (jobs not started are dropped), as the same kind of
    error with a message that starts with the job's description."""
    if not transport.concurrent or len(jobs) < 2:
        results = []
        for what, work in jobs:
            try:
                results.append(work())
            except CairnError as exc:
                raise _naming(exc, what) from exc
        return results
    pool = ThreadPoolExecutor(min(FILE_THREADS, len(jobs)), thread_name_prefix="cairn-files")
    try:
        futures = [pool.submit(work) for _, work in jobs]
        wait(futures, return_when=FIRST_EXCEPTION)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # a failure, or Ctrl-C: drop the rest, let the running end
    for (what, _), future in zip(jobs, futures, strict=True):
        error = _error_of(future)
        if error is not None:
            if isinstance(error, CairnError):
                raise _naming(error, what) from error
            raise error
    return [f.result() for f in futures]


def _error_of(future: Future[Any]) -> BaseException | None:
    return None if future.cancelled() else future.exception()


def _naming(error: CairnError, what: str) -> CairnError:
    if isinstance(error, APIError):
        return type(error)(error.status, f"{what}: {error.message}", error.code, error.field, error.position)
    if isinstance(error, TransportError):
        return TransportError(f"{what}: {error}")
    return CairnError(f"{what}: {error}")


def _parent(path: str) -> str:
    return path.strip("/").rpartition("/")[0]


def _json_number(value: float) -> float | str:
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return value
