"""What MLflow clients need that Cairn's own API does not say the same way: experiment ``0``, the
``mlflow-artifacts:`` layout, MLflow 3 logged models (created before their files, with or without a run),
registering a version from an MLflow ``source`` URI, and stages.

Artifacts of runs live at ``mlflow-artifacts:/<experiment id>/<run id>/artifacts/<path>``; a logged model's
files at ``.../<run id>/artifacts/models/m-<id>/`` when a run made it, and at
``mlflow-artifacts:/<experiment id>/models/m-<id>/artifacts/`` when it was logged outside any run.
MLflow's ``Default`` experiment is each workspace's experiment named ``Default``: it answers to id ``0``
and MLflow clients see it as ``0``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cairn.server.db.models import (
    ExperimentRow,
    LoggedModelMetricRow,
    LoggedModelRow,
    ModelVersionRow,
    RunModelLinkRow,
    RunRow,
)
from cairn.server.services import events, experiments, logged_models, registry, runs, versions
from cairn.server.services.context import Context
from cairn.server.services.errors import InvalidInputError, NotFoundError
from cairn.server.services.logged_models import MLFLOW_FLAVOR, NewModel
from cairn.server.services.registry import VersionView
from cairn.server.services.tenancy import referenced
from cairn.server.services.validation import MAX_ID, MAX_KEY, check_key, check_text
from cairn.server.storage.paths import clean_artifact_path

RUN_PATH = re.compile(r"^([0-9]{1,18})/([0-9a-f]{32})/artifacts(?:/(.*))?$")
MODEL_PATH = re.compile(r"^([0-9]{1,18})/models/m-([0-9a-f]{32})/artifacts(?:/(.*))?$")
RUN_SOURCE = re.compile(r"^runs:/([0-9a-f]{32})(?:/(.*))?$")
MODELS_SOURCE = re.compile(r"^models:/(m-[0-9a-f]{32})/?$")
ARTIFACTS_SOURCE = re.compile(r"^mlflow-artifacts:/+(.*)$")
STAGES = {"none": "None", "staging": "Staging", "production": "Production", "archived": "Archived"}


# experiments ------------------------------------------------------------------------------------------

def experiment_for(session: Session, ctx: Context, experiment_id: Any, *, create: bool = True) -> ExperimentRow:
    """An MLflow experiment id: digits, with "0" meaning the workspace's ``Default`` experiment."""
    text = str(experiment_id) if isinstance(experiment_id, (str, int)) and not isinstance(experiment_id, bool) else ""
    if not re.fullmatch(r"[0-9]{1,18}", text):
        raise InvalidInputError(f"Invalid value {str(experiment_id)[:40]!r} for parameter 'experiment_id': it is "
                                "not an experiment id", field="experiment_id")
    if int(text) == 0:
        if create:
            ensure_default_experiment(session, ctx)
        return experiments.get_experiment_by_name(session, ctx, experiments.DEFAULT_EXPERIMENT)
    if int(text) > MAX_ID:
        raise NotFoundError(f"No Experiment with id={text} exists", field="experiment_id")
    return experiments.get_experiment(session, ctx, int(text))


def experiment_key(row: ExperimentRow | None, experiment_id: int | None = None) -> str:
    """The id MLflow clients see: ``0`` for the Default experiment."""
    if row is not None and row.name == experiments.DEFAULT_EXPERIMENT:
        return "0"
    return str(row.id if row is not None else experiment_id)


def artifact_location(given: str) -> str:
    """An experiment's artifact location as MLflow keeps it: a relative local path is made absolute (against
    the server's working folder); anything with a scheme is kept as given. Cairn stores the bytes itself."""
    if not given or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", given) or os.path.isabs(given):
        return given
    return os.path.abspath(given)


def has_default_experiment(session: Session, ctx: Context) -> bool:
    return experiments.find_experiment(session, ctx, experiments.DEFAULT_EXPERIMENT) is not None


def ensure_default_experiment(session: Session, ctx: Context) -> None:
    """MLflow's servers start with a Default experiment; Cairn makes it when an MLflow client first looks."""
    if not has_default_experiment(session, ctx):
        experiments.get_or_create_experiment(session, ctx, experiments.DEFAULT_EXPERIMENT)


# mlflow-artifacts paths --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ArtifactLocation:
    """A run's artifact (``run``) or a file of a logged model made outside a run (``model``)."""

    run: RunRow | None
    model: LoggedModelRow | None
    path: str  # relative to the run's artifact root or the model's; "" for the root


def _experiment_matches(session: Session, ctx: Context, given: str, experiment_id: int) -> bool:
    if int(given) == experiment_id:
        return True
    return int(given) == 0 and experiments.get_experiment(session, ctx, experiment_id).name == \
        experiments.DEFAULT_EXPERIMENT


def locate(session: Session, ctx: Context, raw: str, *, write: bool = False) -> ArtifactLocation:
    """``<experiment id>/<run id>/artifacts/<path>`` or ``<experiment id>/models/m-<id>/artifacts/<path>``
    to what it names, the path checked like any path."""
    if not isinstance(raw, str) or "\\" in raw or "\x00" in raw:
        raise InvalidInputError("artifact path has a backslash or NUL", field="path")
    text = raw.strip("/")
    run_match, model_match = RUN_PATH.match(text), MODEL_PATH.match(text)
    if run_match is not None:
        run = runs.get_run_row(session, ctx, run_match.group(2), field_name="path", write=write)
        if _experiment_matches(session, ctx, run_match.group(1), run.experiment_id):
            return ArtifactLocation(run, None, _clean(run_match.group(3)))
    elif model_match is not None:
        model = logged_models.get_logged_model(session, ctx, model_match.group(2), field_name="path", write=write)
        if _experiment_matches(session, ctx, model_match.group(1), model.experiment_id):
            return ArtifactLocation(None, model, _clean(model_match.group(3)))
    raise NotFoundError(f"no artifact at {raw[:200]!r}: paths look like <experiment id>/<run id>/artifacts/...",
                        field="path")


def _clean(rest: str | None) -> str:
    return clean_artifact_path(rest, allow_empty=True) if rest else ""


def artifact_uri(run: RunRow, path: str = "", experiment: str | None = None) -> str:
    base = f"mlflow-artifacts:/{experiment or run.experiment_id}/{run.id}/artifacts"
    return f"{base}/{path}" if path else base


def logged_model_uri(session: Session, ctx: Context, row: LoggedModelRow) -> str:
    experiment = experiment_key(experiments.get_experiment(session, ctx, row.experiment_id))
    run = logged_models.run_of(session, row)
    if run is not None:
        return artifact_uri(run, row.artifact_path, experiment)
    return f"mlflow-artifacts:/{experiment}/models/m-{row.id}/artifacts"


# MLflow 3 logged models ------------------------------------------------------------------------------

def info(row: LoggedModelRow) -> dict[str, Any]:
    return dict(row.manifest.get("mlflow") or {})


def create_logged_model(session: Session, ctx: Context, *, experiment_id: Any, name: str | None,
                        source_run_id: str | None, model_type: str = "", tags: dict[str, str] | None = None,
                        params: dict[str, str] | None = None) -> LoggedModelRow:
    """An MLflow logged model, in its run or outside any run; its files are uploaded afterwards. A source run
    id that names no run of the workspace is kept as given, as MLflow keeps it, and the model stands alone."""
    run = runs.find_run(session, ctx, source_run_id) if source_run_id else None
    if run is not None:  # the model belongs to its run's experiment (the client may name another, active one)
        runs.writable_run(session, ctx, run.id)
        experiment = experiments.get_experiment(session, ctx, run.experiment_id)
    else:
        experiment = experiment_for(session, ctx, experiment_id)
        ctx.authorize("experiment", experiment.id)
    run_id = run.id if run is not None else None
    name = check_key("name", name) if name else runs.generated_name()
    details = {"name": name, "status": "LOGGED_MODEL_PENDING", "model_type": model_type or "",
               "tags": dict(tags or {}), "params": dict(params or {}), "source_run_id": source_run_id or ""}
    manifest = {"flavor": MLFLOW_FLAVOR, "format": 1, "files": {}, "mlflow": details}
    new = NewModel(experiment.id, run_id, logged_models.unique_name(session, run_id, name), MLFLOW_FLAVOR, manifest)
    row = logged_models.record_logged_model(session, ctx, new)
    if run_id is not None:
        row.artifact_path = f"models/m-{row.id}"
    return row


def _update_info(row: LoggedModelRow, **changes: Any) -> None:
    manifest = dict(row.manifest)
    details = dict(manifest.get("mlflow") or {})
    for key, value in changes.items():
        details[key] = {**details.get(key, {}), **value} if isinstance(value, dict) else value
    manifest["mlflow"] = details
    row.manifest = manifest


def set_logged_model_tags(session: Session, ctx: Context, model_id: str, tags: dict[str, str]) -> None:
    _update_info(logged_models.get_logged_model(session, ctx, model_id, write=True), tags=tags)


def delete_logged_model_tag(session: Session, ctx: Context, model_id: str, key: str) -> None:
    row = logged_models.get_logged_model(session, ctx, model_id, write=True)
    current = dict(info(row).get("tags") or {})
    if key not in current:
        raise NotFoundError(f"No tag with key {key!r} found for logged model m-{model_id}", field="tag_key")
    del current[key]
    manifest = dict(row.manifest)
    manifest["mlflow"] = {**info(row), "tags": current}
    row.manifest = manifest


def log_logged_model_params(session: Session, ctx: Context, model_id: str, params: dict[str, str]) -> None:
    _update_info(logged_models.get_logged_model(session, ctx, model_id, write=True), params=params)


def finalize_logged_model(session: Session, ctx: Context, model_id: str, status: str) -> LoggedModelRow:
    if status not in ("LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED"):
        raise InvalidInputError("status must be LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED", field="status")
    row = logged_models.get_logged_model(session, ctx, model_id, write=True)
    if status == "LOGGED_MODEL_READY":
        logged_models.refresh_manifest_files(session, row, allow_empty=True)
    _update_info(row, status=status)
    return row


def delete_logged_model(session: Session, ctx: Context, model_id: str) -> None:
    """A logged model outside any run can be deleted (its versions keep their files); a run's models go
    with their run."""
    row = logged_models.get_logged_model(session, ctx, model_id, write=True)
    if row.run_id is not None:
        raise InvalidInputError("Cairn keeps a run's logged models with the run; delete the run instead",
                                field="model_id")
    session.delete(row)
    events.record(session, ctx, "experiment.delete_logged_model", "experiment", str(row.experiment_id),
                  before={"logged_model_id": row.id, "name": row.name})


# registering a version from an MLflow source ---------------------------------------------------------

def create_version(session: Session, ctx: Context, full_name: str, *, source: str | None, run_id: str | None,
                   model_id: str | None, tags: dict[str, str], description: str) -> VersionView:
    """Register what an MLflow client points at: a logged model (``model_id`` or ``models:/m-...``) or a
    model folder among a run's artifacts (``runs:/<run>/<path>`` or ``mlflow-artifacts:/...``)."""
    logged = _logged_model_for(session, ctx, source, run_id, model_id)
    version = versions.create_version(session, ctx, full_name, logged.id, tags=tags, description=description)
    version.row.lineage = {**version.row.lineage, "mlflow_source": source or f"models:/m-{logged.id}"}
    _note_registration(logged, registry.to_mlflow_name(version.registry, version.model.name), version.row.version)
    return version


def _note_registration(row: LoggedModelRow, name: str, version: int) -> None:
    """MLflow tags a logged model with the versions registered from it (``mlflow.modelVersions``)."""
    tags = dict(info(row).get("tags") or {})
    try:
        seen = json.loads(tags.get("mlflow.modelVersions") or "[]")
    except ValueError:
        seen = []
    seen = [*(seen if isinstance(seen, list) else []), {"name": name, "version": version}]
    _update_info(row, tags={"mlflow.modelVersions": json.dumps(seen)})


def _logged_model_for(session: Session, ctx: Context, source: str | None, run_id: str | None,
                      model_id: str | None) -> LoggedModelRow:
    source = source or ""
    check_text("source", source, 4096)
    models_match = MODELS_SOURCE.match(source)
    if model_id or models_match:
        wanted = (model_id or (models_match.group(1) if models_match else "")).removeprefix("m-")
        row = logged_models.get_logged_model(session, ctx, wanted)
        if not row.manifest.get("files"):
            logged_models.refresh_manifest_files(session, row, allow_empty=True)
        return row
    run_match, artifacts_match = RUN_SOURCE.match(source), ARTIFACTS_SOURCE.match(source)
    if run_match:
        run, path = runs.get_run_row(session, ctx, run_match.group(1), field_name="source"), run_match.group(2) or ""
    elif artifacts_match:
        location = locate(session, ctx, artifacts_match.group(1))
        if location.model is not None:
            return location.model
        assert location.run is not None
        run, path = location.run, location.path
    else:
        raise InvalidInputError("source must be runs:/<run id>/<path>, models:/m-<id> or an mlflow-artifacts: URI "
                                "of this server", field="source")
    if run_id and run_id != run.id:
        raise InvalidInputError("run_id is not the run the source points at", field="run_id")
    return _folder_model(session, ctx, run, clean_artifact_path(path, field="source"))


def _folder_model(session: Session, ctx: Context, run: RunRow, path: str) -> LoggedModelRow:
    """The logged model of a model folder among a run's artifacts (made on first registration)."""
    existing = session.scalar(select(LoggedModelRow).where(LoggedModelRow.run_id == run.id,
                                                           LoggedModelRow.artifact_path == path))
    if existing is not None:
        return existing
    name = path.rsplit("/", 1)[-1][:MAX_KEY]
    manifest = {"flavor": MLFLOW_FLAVOR, "format": 1, "files": {},
                "mlflow": {"name": name, "status": "LOGGED_MODEL_READY"}}
    row = logged_models.record_logged_model(session, ctx, NewModel(
        run.experiment_id, run.id, logged_models.unique_name(session, run.id, name), MLFLOW_FLAVOR, manifest, path))
    logged_models.refresh_manifest_files(session, row)
    return row


def download_uri(session: Session, ctx: Context, version: VersionView) -> str:
    """Where an MLflow client downloads a version's files from: its logged model's files."""
    logged = referenced(session, LoggedModelRow, version.row.logged_model_id) if version.row.logged_model_id else None
    if logged is None or logged.workspace_id != ctx.workspace_id:
        return f"models:/{registry.to_mlflow_name(version.registry, version.model.name)}/{version.row.version}"
    return logged_model_uri(session, ctx, logged)


# stages -----------------------------------------------------------------------------------------------

def stage_name(stage: Any) -> str:
    """MLflow's stage names, case as MLflow writes them."""
    found = STAGES.get(str(stage).lower()) if isinstance(stage, str) else None
    if found is None:
        raise InvalidInputError(f"Invalid Model Version stage: {str(stage)[:40]}. Value must be one of None, "
                                "Staging, Production, Archived.", field="stage")
    return found


def transition_stage(session: Session, ctx: Context, full_name: str, version: Any, stage: Any, *,
                     archive_existing: bool) -> VersionView:
    """Move a version to a stage. Staging and Production are also aliases (``staging``, ``production``)
    that follow the latest transition, so the move is in the alias history; with ``archive_existing``
    the other versions in that stage move to Archived."""
    target = stage_name(stage)
    view = versions.get_version(session, ctx, full_name, version)
    registry.writable_registry(session, ctx, full_name)
    if archive_existing and target in ("Staging", "Production"):
        others = select(ModelVersionRow).where(ModelVersionRow.model_id == view.model.id,
                                               ModelVersionRow.stage == target, ModelVersionRow.id != view.row.id)
        for other in session.scalars(others):
            other.stage, other.updated_at = "Archived", events.now_ms()
    before = view.row.stage
    view.row.stage, view.row.updated_at = target, events.now_ms()
    alias = target.lower()
    if target in ("Staging", "Production"):
        versions.set_alias(session, ctx, full_name, alias, view.row.version)
    for old in ("staging", "production"):
        if old != alias and old in view.aliases:
            versions.delete_alias(session, ctx, full_name, old)
    events.record(session, ctx, "model_version.transition_stage", "model", view.model.id,
                  before={"version": view.row.version, "stage": before},
                  after={"version": view.row.version, "stage": target})
    return versions.get_version(session, ctx, full_name, view.row.version)


def latest_versions(session: Session, ctx: Context, full_name: str, stages: list[str]) -> list[VersionView]:
    """The latest version in each stage asked for (every stage when none is)."""
    wanted = [stage_name(s) for s in stages] if stages else list(STAGES.values())
    found = versions.list_versions(session, ctx, full_name)
    latest: dict[str, VersionView] = {}
    for view in found:
        if view.row.stage in wanted:
            latest[view.row.stage] = view
    return sorted(latest.values(), key=lambda v: v.row.version)


# metrics of logged models, and the models a run used or produced --------------------------------------

@dataclass(frozen=True)
class ModelMetric:
    model_id: str
    key: str
    value: float | None
    timestamp: int
    step: int
    dataset_name: str = ""
    dataset_digest: str = ""


def log_model_metrics(session: Session, ctx: Context, run_id: str, metrics: list[ModelMetric]) -> None:
    """Values a run logged against logged models (``log_metric(..., model_id=)``), kept with each model."""
    for metric in metrics:
        model = logged_models.get_logged_model(session, ctx, metric.model_id.removeprefix("m-"), field_name="model_id")
        session.add(LoggedModelMetricRow(
            logged_model_id=model.id, run_id=run_id, key=check_key("key", metric.key), value=metric.value,
            timestamp=metric.timestamp, step=metric.step, dataset_name=check_text("dataset_name", metric.dataset_name,
                                                                                  MAX_KEY),
            dataset_digest=check_text("dataset_digest", metric.dataset_digest, MAX_KEY)))
    session.flush()


def model_metrics(session: Session, row: LoggedModelRow) -> list[LoggedModelMetricRow]:
    query = select(LoggedModelMetricRow).where(LoggedModelMetricRow.logged_model_id == row.id)
    return list(session.scalars(query.order_by(LoggedModelMetricRow.id).limit(10_000)))


def link_models(session: Session, ctx: Context, run_id: str, links: list[tuple[str, int]], direction: str) -> None:
    """Record logged models as a run's inputs or outputs (each once per run and direction)."""
    run = runs.get_run_row(session, ctx, run_id, write=True)
    for model_id, step in links:
        model = logged_models.get_logged_model(session, ctx, str(model_id).removeprefix("m-"), field_name="models")
        existing = session.get(RunModelLinkRow, (run.id, model.id, direction))
        if existing is None:
            session.add(RunModelLinkRow(run_id=run.id, logged_model_id=model.id, direction=direction, step=step))
        else:
            existing.step = step
    session.flush()


def model_links(session: Session, run_ids: list[str]) -> dict[str, list[RunModelLinkRow]]:
    """The model inputs and outputs of these runs: run id -> links, in model id order."""
    found: dict[str, list[RunModelLinkRow]] = {}
    query = select(RunModelLinkRow).where(RunModelLinkRow.run_id.in_(run_ids)).order_by(
        RunModelLinkRow.logged_model_id)
    for link in session.scalars(query):
        found.setdefault(link.run_id, []).append(link)
    return found
