"""What MLflow clients need that Cairn's own API does not say the same way: MLflow 3 logged models
(created before their files are uploaded), registering a version from an MLflow ``source`` URI, the
``mlflow-artifacts:`` path layout, and experiment "0" meaning the default experiment.

Artifacts of runs live at ``mlflow-artifacts:/<experiment id>/<run id>/artifacts/<path>``; an MLflow
logged model's files live among its run's artifacts under ``models/m-<id>``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cairn.server.db.models import ArtifactVersionRow, ExperimentRow, LoggedModelRow, RunRow
from cairn.server.services import events, experiments, runs, versions
from cairn.server.services.context import Context
from cairn.server.services.errors import InvalidInputError, NotFoundError
from cairn.server.services.registry import VersionView
from cairn.server.services.validation import MAX_KEY, check_key, check_text
from cairn.server.storage.paths import clean_artifact_path

MODEL_ID = re.compile(r"^m-([0-9a-f]{32})$")
ARTIFACT_PATH = re.compile(r"^([0-9]{1,18})/([0-9a-f]{32})/artifacts(?:/(.*))?$")
RUN_SOURCE = re.compile(r"^runs:/([0-9a-f]{32})(?:/(.*))?$")
MODELS_SOURCE = re.compile(r"^models:/(m-[0-9a-f]{32})/?$")
ARTIFACTS_SOURCE = re.compile(r"^mlflow-artifacts:/+(.*)$")
MLFLOW_FLAVOR = "mlflow"


def experiment_for(session: Session, ctx: Context, experiment_id: Any) -> ExperimentRow:
    """An MLflow experiment id: digits, with "0" meaning the workspace's default experiment."""
    text = str(experiment_id) if isinstance(experiment_id, (str, int)) and not isinstance(experiment_id, bool) else ""
    if not re.fullmatch(r"[0-9]{1,18}", text):
        raise InvalidInputError(f"experiment_id {str(experiment_id)[:40]!r} is not an experiment id",
                                field="experiment_id")
    if text == "0":
        return experiments.get_or_create_experiment(session, ctx, experiments.DEFAULT_EXPERIMENT)
    return experiments.get_experiment(session, ctx, int(text))


# mlflow-artifacts paths --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ArtifactLocation:
    run: RunRow
    path: str  # relative to the run's artifact root; "" for the root


def locate(session: Session, ctx: Context, raw: str, *, write: bool = False) -> ArtifactLocation:
    """``<experiment id>/<run id>/artifacts/<path>`` to the run and the path, checked like any path."""
    if not isinstance(raw, str) or "\\" in raw or "\x00" in raw:
        raise InvalidInputError("artifact path has a backslash or NUL", field="path")
    match = ARTIFACT_PATH.match(raw.strip("/"))
    if match is None:
        raise NotFoundError(f"no artifact at {raw[:200]!r}: paths look like <experiment id>/<run id>/artifacts/...",
                            field="path")
    run = runs.get_run_row(session, ctx, match.group(2), field_name="path", write=write)
    if str(run.experiment_id) != match.group(1):
        raise NotFoundError(f"no artifact at {raw[:200]!r}", field="path")
    rest = match.group(3) or ""
    return ArtifactLocation(run, clean_artifact_path(rest, allow_empty=True) if rest else "")


def artifact_uri(run: RunRow, path: str = "") -> str:
    base = f"mlflow-artifacts:/{run.experiment_id}/{run.id}/artifacts"
    return f"{base}/{path}" if path else base


# MLflow 3 logged models ------------------------------------------------------------------------------

@dataclass
class MlflowModel:
    row: LoggedModelRow
    run: RunRow

    @property
    def model_id(self) -> str:
        return f"m-{self.row.id}"

    @property
    def info(self) -> dict[str, Any]:
        return dict(self.row.manifest.get("mlflow") or {})


def create_logged_model(session: Session, ctx: Context, *, experiment_id: Any, name: str | None,
                        source_run_id: str | None, model_type: str = "", tags: dict[str, str] | None = None,
                        params: dict[str, str] | None = None) -> MlflowModel:
    """An MLflow logged model: files come later, uploaded under the run's ``models/m-<id>``."""
    if not source_run_id:
        raise InvalidInputError("Cairn keeps models with the run that made them: log the model inside a run "
                                "(source_run_id)", field="source_run_id")
    run = runs.writable_run(session, ctx, source_run_id)
    experiment = experiment_for(session, ctx, experiment_id)
    if experiment.id != run.experiment_id:
        raise InvalidInputError("source_run_id belongs to another experiment", field="source_run_id")
    model_id = uuid.uuid4().hex
    name = check_key("name", name) if name else "model"
    taken = session.scalar(select(LoggedModelRow.id).where(LoggedModelRow.run_id == run.id,
                                                           LoggedModelRow.name == name, LoggedModelRow.step == -1))
    manifest = {"flavor": MLFLOW_FLAVOR, "format": 1, "files": {},
                "mlflow": {"name": name, "status": "LOGGED_MODEL_PENDING", "model_type": model_type or "",
                           "tags": dict(tags or {}), "params": dict(params or {})}}
    row = LoggedModelRow(id=model_id, run_id=run.id, name=name if taken is None else f"{name}-{model_id[:8]}",
                         step=-1, artifact_path=f"models/m-{model_id}", flavor=MLFLOW_FLAVOR, manifest=manifest,
                         created_at=events.now_ms())
    session.add(row)
    session.flush()
    events.record(session, ctx, "run.log_model", "run", run.id, after={"name": name, "logged_model_id": model_id})
    return MlflowModel(row, run)


def get_logged_model(session: Session, ctx: Context, model_id: Any, *, write: bool = False) -> MlflowModel:
    match = MODEL_ID.match(model_id) if isinstance(model_id, str) else None
    row = session.get(LoggedModelRow, match.group(1)) if match else None
    run = session.get(RunRow, row.run_id) if row is not None else None
    if row is None or run is None or run.workspace_id != ctx.workspace_id:
        raise NotFoundError(f"logged model {str(model_id)[:80]!r} does not exist", field="model_id")
    if write:
        ctx.authorize("experiment", run.experiment_id)
    return MlflowModel(row, run)


def _update_info(model: MlflowModel, **changes: Any) -> None:
    manifest = dict(model.row.manifest)
    info = dict(manifest.get("mlflow") or {})
    for key, value in changes.items():
        info[key] = {**info.get(key, {}), **value} if isinstance(value, dict) else value
    manifest["mlflow"] = info
    model.row.manifest = manifest


def set_logged_model_tags(session: Session, ctx: Context, model_id: str, tags: dict[str, str]) -> None:
    _update_info(get_logged_model(session, ctx, model_id, write=True), tags=tags)


def delete_logged_model_tag(session: Session, ctx: Context, model_id: str, key: str) -> None:
    model = get_logged_model(session, ctx, model_id, write=True)
    current = dict(model.info.get("tags") or {})
    if key not in current:
        raise NotFoundError(f"logged model {model_id} has no tag {key!r}", field="tag_key")
    del current[key]
    manifest = dict(model.row.manifest)
    manifest["mlflow"] = {**model.info, "tags": current}
    model.row.manifest = manifest


def log_logged_model_params(session: Session, ctx: Context, model_id: str, params: dict[str, str]) -> None:
    _update_info(get_logged_model(session, ctx, model_id, write=True), params=params)


def finalize_logged_model(session: Session, ctx: Context, model_id: str, status: str) -> MlflowModel:
    if status not in ("LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED"):
        raise InvalidInputError("status must be LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED", field="status")
    model = get_logged_model(session, ctx, model_id, write=True)
    if status == "LOGGED_MODEL_READY":
        refresh_files(session, model.row)
    _update_info(model, status=status)
    return model


def search_logged_models(session: Session, ctx: Context, experiment_ids: list[Any], limit: int,
                         offset: int) -> list[MlflowModel]:
    ids = [experiment_for(session, ctx, e).id for e in experiment_ids]
    query = select(LoggedModelRow, RunRow).join(RunRow, RunRow.id == LoggedModelRow.run_id).where(
        RunRow.workspace_id == ctx.workspace_id, LoggedModelRow.flavor == MLFLOW_FLAVOR)
    if ids:
        query = query.where(RunRow.experiment_id.in_(ids))
    rows = session.execute(query.order_by(LoggedModelRow.created_at.desc()).limit(limit).offset(offset))
    return [MlflowModel(row, run) for row, run in rows]


def refresh_files(session: Session, row: LoggedModelRow) -> None:
    """The files now under the model's folder become its manifest (digest and size, latest versions)."""
    a = ArtifactVersionRow
    base = row.artifact_path + "/"
    latest = select(a.path, func.max(a.version).label("v")).where(
        a.run_id == row.run_id, a.path.startswith(base, autoescape=True)).group_by(a.path).subquery()
    found = session.execute(select(a.path, a.digest, a.size).join(
        latest, (a.path == latest.c.path) & (a.version == latest.c.v)).where(a.run_id == row.run_id))
    files = {path[len(base):]: {"sha256": digest.removeprefix("sha256:"), "size": size}
             for path, digest, size in found}
    if not files:
        raise InvalidInputError(f"no files were uploaded under {row.artifact_path}", field="source")
    row.manifest = {**row.manifest, "files": files}


# registering a version from an MLflow source ---------------------------------------------------------

def create_version(session: Session, ctx: Context, full_name: str, *, source: str | None, run_id: str | None,
                   model_id: str | None, tags: dict[str, str], description: str) -> VersionView:
    """Register what an MLflow client points at: a logged model (``model_id`` or ``models:/m-...``) or a
    model folder among a run's artifacts (``runs:/<run>/<path>`` or ``mlflow-artifacts:/...``)."""
    logged = _logged_model_for(session, ctx, source, run_id, model_id)
    version = versions.create_version(session, ctx, full_name, logged.id, tags=tags, description=description)
    version.row.lineage = {**version.row.lineage, "mlflow_source": source or f"models:/m-{logged.id}"}
    return version


def _logged_model_for(session: Session, ctx: Context, source: str | None, run_id: str | None,
                      model_id: str | None) -> LoggedModelRow:
    source = source or ""
    check_text("source", source, 4096)
    models_match = MODELS_SOURCE.match(source)
    if model_id or models_match:
        model = get_logged_model(session, ctx, model_id or (models_match.group(1) if models_match else ""))
        if not model.row.manifest.get("files"):
            refresh_files(session, model.row)
        return model.row
    run_match, artifacts_match = RUN_SOURCE.match(source), ARTIFACTS_SOURCE.match(source)
    if run_match:
        run, path = runs.get_run_row(session, ctx, run_match.group(1), field_name="source"), run_match.group(2) or ""
    elif artifacts_match:
        location = locate(session, ctx, artifacts_match.group(1))
        run, path = location.run, location.path
    else:
        raise InvalidInputError("source must be runs:/<run id>/<path>, models:/m-<id> or an mlflow-artifacts: URI "
                                "of this server", field="source")
    if run_id and run_id != run.id:
        raise InvalidInputError("run_id is not the run the source points at", field="run_id")
    path = clean_artifact_path(path, field="source")
    existing = session.scalar(select(LoggedModelRow).where(LoggedModelRow.run_id == run.id,
                                                           LoggedModelRow.artifact_path == path))
    if existing is not None:
        return existing
    name = path.rsplit("/", 1)[-1][:MAX_KEY]
    row = LoggedModelRow(id=uuid.uuid4().hex, run_id=run.id, step=-1, artifact_path=path, flavor=MLFLOW_FLAVOR,
                         name=name if session.scalar(select(LoggedModelRow.id).where(
                             LoggedModelRow.run_id == run.id, LoggedModelRow.name == name,
                             LoggedModelRow.step == -1)) is None else f"{name}-{uuid.uuid4().hex[:8]}",
                         manifest={"flavor": MLFLOW_FLAVOR, "format": 1, "files": {},
                                   "mlflow": {"name": name, "status": "LOGGED_MODEL_READY"}},
                         created_at=events.now_ms())
    session.add(row)
    session.flush()
    refresh_files(session, row)
    return row


def download_uri(session: Session, ctx: Context, version: VersionView) -> str:
    """Where an MLflow client downloads a version's files from: its model folder among its run's artifacts."""
    logged = session.get(LoggedModelRow, version.row.logged_model_id) if version.row.logged_model_id else None
    run = session.get(RunRow, version.row.run_id) if version.row.run_id else None
    if logged is None or run is None or run.workspace_id != ctx.workspace_id:
        raise NotFoundError(f"version {version.row.version} of {version.full_name} has no files an MLflow client "
                            "can download (it was not logged by a run of this workspace)", field="version")
    return artifact_uri(run, logged.artifact_path)


# MLflow's registry search filters --------------------------------------------------------------------

_CLAUSE = re.compile(
    r"""\s*(?P<field>(?:tags?\.(?:`[^`]+`|[\w.\-]+))|[a-z_]+)\s*(?P<op>!=|=|(?:NOT\s+)?I?LIKE)\s*"""
    r"""(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\s*(?:AND\b|$)""", re.IGNORECASE)


@dataclass(frozen=True)
class Clause:
    field: str  # "name", "run_id", ... or "tag:<key>"
    op: str  # =, !=, LIKE, ILIKE, NOT LIKE, NOT ILIKE
    value: str

    def matches(self, value: str | None) -> bool:
        if self.op in ("=", "!="):
            return (value == self.value) == (self.op == "=")
        pattern = "^" + "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in self.value) + "$"
        found = value is not None and re.match(pattern, value, re.IGNORECASE if "ILIKE" in self.op else 0)
        return bool(found) != self.op.startswith("NOT")


def parse_filter(text: str | None, fields: tuple[str, ...]) -> list[Clause]:
    """``name LIKE 'a%' AND tag.`k` != 'v'``: clauses joined by AND, on ``fields`` and tags."""
    if not text:
        return []
    clauses, position = [], 0
    while position < len(text):
        match = _CLAUSE.match(text, position)
        if match is None:
            raise InvalidInputError(f"cannot parse the filter at position {position}: expected <field> <op> '<value>'"
                                    f" joined by AND, on {', '.join(fields)} or tag.<key>", field="filter",
                                    position=position)
        field = match.group("field")
        if field.lower().startswith(("tag.", "tags.")):
            field = "tag:" + field.split(".", 1)[1].strip("`")
        elif field.lower() not in fields:
            raise InvalidInputError(f"cannot filter on {field!r}: use {', '.join(fields)} or tag.<key>",
                                    field="filter", position=match.start("field"))
        else:
            field = field.lower()
        value = match.group("value")[1:-1].replace("\\'", "'").replace('\\"', '"')
        clauses.append(Clause(field, " ".join(match.group("op").upper().split()), value))
        position = match.end()
    return clauses


def filter_matches(clauses: list[Clause], fields: dict[str, str | None], tags: dict[str, str]) -> bool:
    return all(c.matches(tags.get(c.field[4:]) if c.field.startswith("tag:") else fields.get(c.field))
               for c in clauses)
