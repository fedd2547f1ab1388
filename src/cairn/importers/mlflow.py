"""``cairn import mlflow``: copy experiments, runs and registered models out of an MLflow tracking
server (or a local ``mlruns`` folder or database) into Cairn, through Cairn's client.

Safe to run again and to resume after an interruption:
- a run is stored under an id of the workspace derived from its MLflow id (the same on every attempt;
  MLflow's id itself for runs imported before ids were per workspace), and creating it again returns it;
- metric chunks are sent with idempotency keys, so a chunk is stored once;
- an artifact whose path already holds the same bytes is not uploaded again;
- a finished run is tagged ``cairn.import.done`` and skipped next time;
- a model version is tagged with its MLflow name and version and skipped next time.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cairn.client._client import Client, upload_file
from cairn.client._errors import CairnError, ConflictError, NotFoundError
from cairn.client._ids import stored_run_id

DONE_TAG = "cairn.import.done"
SOURCE_TAG = "cairn.import.source"
RUN_TAG = "cairn.import.run_id"  # the MLflow run id, as runs are stored under ids of their workspace
VERSION_TAG = "mlflow.import.version"
HOLDER_EXPERIMENT = "mlflow-import"
METRIC_CHUNK = 10_000
PARAM_CHUNK = 100


@dataclass
class Summary:
    experiments_created: int = 0
    experiments_existing: int = 0
    runs_imported: int = 0
    runs_skipped: list[tuple[str, str]] = field(default_factory=list)  # (run id, why)
    metric_points: int = 0
    artifact_files: int = 0
    artifact_bytes: int = 0
    artifacts_unchanged: int = 0
    versions_imported: int = 0
    versions_skipped: list[tuple[str, str]] = field(default_factory=list)  # (name/version, why)

    def lines(self) -> list[str]:
        out = [f"experiments: {self.experiments_created} created, {self.experiments_existing} already there",
               f"runs: {self.runs_imported} imported, {len(self.runs_skipped)} skipped",
               f"metric points: {self.metric_points}",
               f"artifacts: {self.artifact_files} files ({self.artifact_bytes} bytes) uploaded, "
               f"{self.artifacts_unchanged} already there",
               f"model versions: {self.versions_imported} imported, {len(self.versions_skipped)} skipped"]
        reasons: dict[str, int] = {}
        for _, why in self.runs_skipped + self.versions_skipped:
            reasons[why] = reasons.get(why, 0) + 1
        out.extend(f"  skipped {count}: {why}" for why, count in sorted(reasons.items()))
        return out


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError as exc:
        raise CairnError("reading an MLflow store needs the mlflow client: pip install 'cairn-ml[mlflow]'") from exc
    return mlflow


class MlflowImporter:
    def __init__(self, source_uri: str, target: Client, *, progress: Callable[[str], None] | None = None) -> None:
        self.mlflow = _mlflow()
        if source_uri.startswith("sqlite:///") and not Path(source_uri.removeprefix("sqlite:///")).exists():
            raise CairnError(f"there is no MLflow database at {source_uri.removeprefix('sqlite:///')}")
        self.source_uri = source_uri
        self.source_label = _without_credentials(source_uri)
        self.src = self.mlflow.tracking.MlflowClient(tracking_uri=source_uri)
        self.dst = target
        self.summary = Summary()
        self.progress = progress or (lambda _message: None)
        self._experiments: dict[str, int] = {}  # MLflow experiment id -> Cairn experiment id
        self._registries: set[str] | None = None  # the target workspace's registry names, read once

    # experiments and runs ------------------------------------------------------------------------------
    def experiments(self, names: list[str] | None) -> list[Any]:
        from mlflow.entities import ViewType

        found = self.src.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=50_000)
        if names:
            missing = set(names) - {e.name for e in found}
            if missing:
                raise CairnError(f"the MLflow store has no active experiment named {', '.join(sorted(missing))}")
            found = [e for e in found if e.name in names]
        return list(found)

    def runs_of(self, experiment: Any) -> list[Any]:
        from mlflow.entities import ViewType

        runs: list[Any] = []
        token = None
        while True:
            page = self.src.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL, max_results=1000,
                                        order_by=["attributes.start_time ASC"], page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                break
        ids = {r.info.run_id for r in runs}
        parents_first: list[Any] = []
        placed: set[str] = set()

        def place(run: Any) -> None:
            if run.info.run_id in placed:
                return
            parent = run.data.tags.get("mlflow.parentRunId")
            if parent in ids and parent not in placed:
                place(next(r for r in runs if r.info.run_id == parent))
            placed.add(run.info.run_id)
            parents_first.append(run)
        for run in runs:
            place(run)
        return parents_first

    def target_experiment(self, experiment: Any) -> int:
        if experiment.experiment_id not in self._experiments:
            existing = self.dst.get_experiment_by_name(experiment.name)
            if existing is None:
                tags = {k: v for k, v in experiment.tags.items() if not k.startswith("mlflow.")}
                existing = self.dst.create_experiment(experiment.name, tags=tags)
                self.summary.experiments_created += 1
            else:
                self.summary.experiments_existing += 1
            self._experiments[experiment.experiment_id] = existing.id
        return self._experiments[experiment.experiment_id]

    def import_run(self, run: Any, experiment_id: int) -> None:
        info = run.info
        if info.lifecycle_stage == "deleted":
            self.summary.runs_skipped.append((info.run_id, "deleted in MLflow"))
            return
        t = self.dst._t
        tags = {k: v for k, v in run.data.tags.items() if k != "mlflow.parentRunId"}
        parent = run.data.tags.get("mlflow.parentRunId")
        body = {"run_id": info.run_id, "experiment_id": experiment_id, "name": info.run_name or None,
                "tags": {**tags, SOURCE_TAG: self.source_label, RUN_TAG: info.run_id}, "start_time": info.start_time,
                "user": info.user_id or None, "parent_run_id": self._target_id(parent) if parent else None}
        try:
            created = t.request("POST", "/api/v1/runs", json=body)
        except ConflictError:
            self.summary.runs_skipped.append((info.run_id, "its id is taken in Cairn by another experiment"))
            return
        run_id = created["run_id"]
        if created.get("tags", {}).get(DONE_TAG) == "1":
            self.summary.runs_skipped.append((info.run_id, "imported before"))
            return
        if created.get("status") != "RUNNING":
            self.dst.update_run(run_id, status="RUNNING")  # an interrupted import: resume it
        params = list(run.data.params.items())
        for start in range(0, len(params), PARAM_CHUNK):
            self.dst.log_batch(run_id, params=dict(params[start:start + PARAM_CHUNK]))
        for key in run.data.metrics:
            self._metric(info.run_id, run_id, key)
        for item in run.inputs.dataset_inputs if run.inputs else []:
            context = next((tag.value for tag in item.tags if tag.key == "mlflow.data.context"), "")
            t.request("POST", f"/api/v1/runs/{run_id}/datasets", json={
                "name": item.dataset.name, "uri": item.dataset.source or "", "digest": item.dataset.digest or "",
                "role": context})
        self._artifacts(info.run_id, run_id)
        status = info.status if info.status in ("FINISHED", "FAILED", "KILLED") else "KILLED"
        t.request("PATCH", f"/api/v1/runs/{run_id}", json={"status": status, **(
            {"end_time": info.end_time} if info.end_time else {})})
        self.dst.set_tag(run_id, DONE_TAG, "1")
        self.summary.runs_imported += 1

    def _target_id(self, mlflow_run_id: str) -> str | None:
        """The Cairn id of an imported MLflow run, or None if it was not imported."""
        workspace = self.dst.config.workspace
        for run_id in (mlflow_run_id, stored_run_id(workspace, mlflow_run_id)):
            if self._exists(run_id):
                return run_id
        return None

    def _exists(self, run_id: str) -> bool:
        try:
            self.dst.get_run(run_id)
        except NotFoundError:
            return False
        return True

    def _metric(self, source_id: str, run_id: str, key: str) -> None:
        history = self.src.get_metric_history(source_id, key)
        for index, start in enumerate(range(0, len(history), METRIC_CHUNK)):
            chunk = history[start:start + METRIC_CHUNK]
            series = {"key": key, "steps": [m.step for m in chunk], "timestamps": [m.timestamp for m in chunk],
                      "values": [_json_value(m.value) for m in chunk]}
            self.dst._t.request("POST", f"/api/v1/runs/{run_id}/batch", json={"metrics": [series]},
                                headers={"Idempotency-Key": f"mlflow-import:{run_id}:{_digest(key)}:{index}"})
            self.summary.metric_points += len(chunk)

    def _artifacts(self, source_id: str, run_id: str) -> None:
        existing = {a.path: a.digest for a in self._walk_target(run_id, "")}
        with tempfile.TemporaryDirectory() as tmp:
            for path in self._walk_source(source_id, None):
                local = Path(self.mlflow.artifacts.download_artifacts(
                    run_id=source_id, artifact_path=path, dst_path=tmp, tracking_uri=self.source_uri))
                digest = f"sha256:{hashlib.sha256(local.read_bytes()).hexdigest()}"
                if existing.get(path) == digest:
                    self.summary.artifacts_unchanged += 1
                else:
                    upload_file(self.dst._t, run_id, local, path)
                    self.summary.artifact_files += 1
                    self.summary.artifact_bytes += local.stat().st_size
                local.unlink()

    def _walk_source(self, run_id: str, path: str | None) -> Iterator[str]:
        for item in self.src.list_artifacts(run_id, path):
            if item.is_dir:
                yield from self._walk_source(run_id, item.path)
            else:
                yield item.path

    def _walk_target(self, run_id: str, path: str) -> Iterator[Any]:
        for item in self.dst.list_artifacts(run_id, path):
            if item.is_dir:
                yield from self._walk_target(run_id, item.path)
            else:
                yield item

    # registered models -------------------------------------------------------------------------------
    def import_models(self) -> None:
        for model in self._registered_models():
            try:
                self._model(model)
            except CairnError as exc:
                self.summary.versions_skipped.append((model.name, f"model not imported: {exc}"))

    def _registered_models(self) -> Iterator[Any]:
        token = None
        while True:
            page = self.src.search_registered_models(max_results=1000, page_token=token)
            yield from page
            token = page.token
            if not token:
                return

    def _model(self, model: Any) -> None:
        if self._registries is None:
            self._registries = {r.name for r in self.dst.list_registries()}
        target = target_name(model.name, self._registries)
        quoted = model.name.replace("'", "\\'")
        versions = sorted(self.src.search_model_versions(f"name='{quoted}'"), key=lambda v: int(v.version))
        mapping: dict[str, int] = {}
        for version in versions:
            label = f"{model.name}/{version.version}"
            try:
                mapping[version.version] = self._version(target, model, version)
            except CairnError as exc:
                self.summary.versions_skipped.append((label, str(exc)))
        for alias, version in (model.aliases or {}).items():
            if str(version) in mapping:
                self.dst.set_alias(target, alias, mapping[str(version)], reason="imported from MLflow")
        if model.description:
            self.dst.update_registered_model(target, description=model.description)
        wanted = {k: v for k, v in model.tags.items() if not k.startswith("mlflow.")}
        for key, value in wanted.items():
            self.dst.set_registered_model_tag(target, key, value)

    def _version(self, target: str, model: Any, version: Any) -> int:
        label = f"{model.name}/{version.version}"
        try:
            for known in self.dst.list_model_versions(target):
                if known.tags.get(VERSION_TAG) == label:
                    self.summary.versions_skipped.append((label, "imported before"))
                    return known.version
        except NotFoundError:
            pass
        imported = self._target_id(version.run_id) if version.run_id else None
        holder = imported is None
        run_id = self._holder(label) if imported is None else imported
        logged_name = f"mlflow-{_safe(model.name)}-v{version.version}"
        folder = f"models/{logged_name}"
        known = self.dst._t.request("GET", f"/api/v1/runs/{run_id}/logged-models")["models"]
        earlier = next((m for m in known if m["name"] == logged_name), None)
        if earlier is not None:  # an interrupted attempt recorded it; register it now
            return self._register(target, earlier["id"], version, label)
        existing = {a.path: a.digest for a in self._walk_target(run_id, folder)} if self._has(run_id, folder) else {}
        files: dict[str, Any] = {}
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(self.mlflow.artifacts.download_artifacts(
                f"models:/{model.name}/{version.version}", dst_path=tmp, tracking_uri=self.source_uri))
            for path in sorted(p for p in local.rglob("*") if p.is_file()):
                relative = path.relative_to(local).as_posix()
                data = path.read_bytes()
                files[relative] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                if existing.get(f"{folder}/{relative}") != f"sha256:{files[relative]['sha256']}":
                    upload_file(self.dst._t, run_id, path, f"{folder}/{relative}")
        before = self.dst.get_run(run_id)
        reopened = before.status != "RUNNING"
        if reopened:  # a logged model is recorded on a running run; the run is closed again as it was
            self.dst.update_run(run_id, status="RUNNING")
        try:
            logged = self.dst._t.request("POST", f"/api/v1/runs/{run_id}/logged-models", json={
                "name": logged_name, "artifact_path": folder,
                "manifest": {"flavor": "mlflow", "format": 1, "files": files}})
        finally:
            if reopened:
                self.dst.update_run(run_id, status=before.status, end_time=before.end_time)
            elif holder:
                self.dst.update_run(run_id, status="FINISHED")
        return self._register(target, logged["id"], version, label)

    def _register(self, target: str, logged_id: str, version: Any, label: str) -> int:
        tags = {**version.tags, VERSION_TAG: label}
        created = self.dst.register_model(logged_id, target, tags=tags, description=version.description or "")
        self.summary.versions_imported += 1
        return created.version

    def _has(self, run_id: str, folder: str) -> bool:
        parent = folder.rpartition("/")[0]
        return any(a.path == folder for a in self.dst.list_artifacts(run_id, parent))

    def _holder(self, label: str) -> str:
        """A run to hold a version whose MLflow run was not imported (or is gone); the same run on every
        attempt, so reruns leave nothing behind."""
        run_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{self.source_label}#{label}").hex
        created = self.dst._t.request("POST", "/api/v1/runs", json={
            "run_id": run_id, "experiment_name": HOLDER_EXPERIMENT, "name": f"model {label}",
            "tags": {SOURCE_TAG: self.source_label}})
        return str(created["run_id"])


def target_name(name: str, registries: set[str]) -> str:
    """The Cairn model an MLflow client would see as ``name`` (the mapping of docs/migrating-from-mlflow.md):
    ``R.M`` for a registry R of the workspace, otherwise a model of ``dev`` named ``name``, dots included."""
    head, dot, rest = name.partition(".")
    return name if dot and rest and head in registries else f"dev.{name}"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:100]


def _without_credentials(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=host))
    return uri


def _json_value(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
