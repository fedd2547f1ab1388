"""Runs: create, read, update, delete; params with history, tags; batched logging (datasets: :mod:`datasets`)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from cairn.server.db import points, series as db_series
from cairn.server.db.models import (
    DatasetInputRow,
    ExperimentRow,
    IdempotencyKeyRow,
    MetricSeriesRow,
    ParamHistoryRow,
    ParamRow,
    RunRow,
    RunTagRow,
)
from cairn.server.db.upsert import insert_ignore
from cairn.server.services import conventions, events, experiments, metrics, run_ids
from cairn.server.services.context import Context
from cairn.server.services.errors import ConflictError, InvalidInputError, InvalidStateError, NotFoundError
from cairn.server.services.tenancy import REFERENCED, in_workspace, referenced
from cairn.server.services.validation import (
    MAX_BATCH_POINTS,
    MAX_KEY,
    NATIVE_BATCH,
    RUN_ID,
    BatchLimits,
    check_count,
    check_int,
    check_key,
    check_run_id,
    check_status,
    check_text,
    param_value,
    string_map,
    tag_value,
)

TERMINAL = ("FINISHED", "FAILED", "KILLED")
_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,100}$")
_ADJECTIVES = ("brisk", "calm", "bold", "keen", "quiet", "swift", "amber", "lucid", "steady", "bright", "sly", "wry")
_NOUNS = ("otter", "heron", "lynx", "finch", "marten", "ibis", "stoat", "wren", "kestrel", "newt", "vole", "crane")


@dataclass
class RunView:
    row: RunRow
    experiment_name: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: list[Any] = field(default_factory=list)  # MetricSeriesRow or a row with its columns
    datasets: list[DatasetInputRow] = field(default_factory=list)
    at_best: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class RunCreate:
    """A new run: its experiment (by id or name; Default when neither), name, tags, parent, start, author, and
    the key that lets several processes join it."""

    # the native API takes this dataclass as its request body; pydantic answers an unknown key with a 400
    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}
    run_id: str | None = None
    experiment_id: int | None = None
    experiment_name: str | None = None
    name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    parent_run_id: str | None = None
    start_time: int | None = None
    user: str | None = None
    run_key: str | None = None


def generated_name() -> str:
    """A readable random name for a run or a model created without one."""
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(1000)}"


def create_run(session: Session, ctx: Context, spec: RunCreate) -> RunRow:
    """Create a run. A client may propose the id (so offline runs can be replayed; see :mod:`run_ids` for
    the id it is stored under); the same id again in the same experiment returns the existing run, which
    makes retries safe. With a
    ``run_key``, the run with that key in the experiment is returned if there is one (see
    :func:`_join_keyed`), else it is created carrying the key."""
    return _create_run(session, ctx, spec)[0]


def create_run_view(session: Session, ctx: Context, spec: RunCreate) -> tuple[RunView, bool]:
    """Create a run (as ``create_run``) and return its view, and whether it was created (False: a retry,
    or an existing run joined by its key). A new run's view is made from what was just written, with no
    read back; an existing run is read from the store."""
    row, experiment, created = _create_run(session, ctx, spec)
    if not created:
        return read_run(session, ctx, row.id), False
    return RunView(row, experiment_name=experiment.name, tags=dict(spec.tags)), True


def _create_run(session: Session, ctx: Context, spec: RunCreate) -> tuple[RunRow, Any, bool]:
    """A new run is written with plain statements (creating runs is a workload of its own: a sweep, an
    import) and returned as a detached row holding what was written."""
    experiment = _experiment_for(session, ctx, spec)
    ctx.authorize("experiment", experiment.id)
    key = check_key("run_key", spec.run_key) if spec.run_key is not None else None
    if key is not None:
        found = _run_by_key(session, experiment.id, key)
        if found is not None:
            return _join_keyed(session, ctx, found), experiment, False
    run_id, existing = _proposed_run(session, ctx, spec.run_id)
    if existing is not None:
        if key is not None:  # with a key the id is only a proposal: another run holds it, so take a fresh one
            run_id = run_ids.new_run_id(ctx.workspace)
        elif existing.workspace_id == ctx.workspace_id and existing.experiment_id == experiment.id:
            return get_run_row(session, ctx, run_id), experiment, False
        else:
            raise ConflictError(f"run id {run_id} is already taken", field="run_id")
    values = _new_run_values(session, ctx, spec, run_id, experiment.id, key)
    tags = values.pop("tags")
    values["compliant"] = conventions.check_start(session, ctx, experiment.id, tags)
    if key is None:
        session.execute(insert(_RUNS), values)
    elif not insert_ignore(session, RunRow, [values], []):  # another process made the run with this key
        found = _run_by_key(session, experiment.id, key)
        if found is None:
            raise ConflictError(f"run id {run_id} is already taken", field="run_id")
        return _join_keyed(session, ctx, found), experiment, False
    if tags:  # a new run has none
        session.execute(insert(_TAGS), [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()])
    events.record(session, ctx, "run.create", "run", run_id,
                  after={"experiment_id": experiment.id, "name": values["name"], "tags": tags,
                         **({"run_key": key} if key is not None else {})})
    return RunRow(**values), experiment, True


def _proposed_run(session: Session, ctx: Context, proposed: str | None) -> tuple[str, db_series.RunState | None]:
    """The id a new run takes, and the run holding it. A proposal naming a run of the caller's workspace means
    it (a retry); any other maps into the workspace's ids, so other workspaces never change the answer."""
    if proposed is None:
        return run_ids.new_run_id(ctx.workspace), None  # a fresh id is free
    proposed = check_run_id("run_id", proposed)
    state = db_series.run_state(session, proposed)
    if state is not None and state.workspace_id == ctx.workspace_id:
        return proposed, state
    run_id = run_ids.stored_run_id(ctx.workspace, proposed)
    return run_id, (state if run_id == proposed else db_series.run_state(session, run_id))


def _new_run_values(session: Session, ctx: Context, spec: RunCreate, run_id: str, experiment_id: int,
                    key: str | None) -> dict[str, Any]:
    """The checked columns of a new run (and its tags, under ``tags``)."""
    if spec.parent_run_id is not None:
        get_run_row(session, ctx, spec.parent_run_id, field_name="parent_run_id")
    start = check_int("start_time", spec.start_time) if spec.start_time is not None else events.now_ms()
    name = check_key("name", spec.name) if spec.name else generated_name()
    user = check_text("user", spec.user, MAX_KEY) if spec.user is not None and not ctx.guard.enforced else ctx.actor
    tags = authored(ctx, string_map("tags", spec.tags, tag_value)) if spec.tags else {}
    values = {"id": run_id, "workspace_id": ctx.workspace_id, "experiment_id": experiment_id, "name": name,
              "status": "RUNNING", "start_time": start, "end_time": None, "user": user,
              "parent_run_id": spec.parent_run_id, "lifecycle": "active", "updated_at": start, "run_key": key}
    return {**values, "tags": tags}


def _run_by_key(session: Session, experiment_id: int, key: str) -> RunRow | None:
    query = select(RunRow).where(RunRow.experiment_id == experiment_id, RunRow.run_key == key)
    return session.scalar(query.execution_options(populate_existing=True))


def _join_keyed(session: Session, ctx: Context, row: RunRow) -> RunRow:
    """Joining a run by its key resumes it (:func:`_resume_row`). A deleted run keeps its key and is not
    joined: restoring it, or another key, is the caller's choice."""
    if row.lifecycle != "active":
        raise InvalidStateError(f"run {row.id} with key {row.run_key!r} is deleted; restore it or use another "
                                "key", field="run_key")
    return _resume_row(session, ctx, row)


def resume_run(session: Session, ctx: Context, run_id: str) -> RunView:
    """Resume a run by its id (``cairn.start_run(run_id=...)``): as joining by key, an ended run is
    RUNNING again; a running one is left as it is (several processes resume one run)."""
    row = get_run_row(session, ctx, run_id, write=True)
    if row.lifecycle != "active":
        raise InvalidStateError(f"run {run_id} is deleted; restore it before resuming it", field="run_id")
    _resume_row(session, ctx, row)
    return read_run(session, ctx, run_id)


def _resume_row(session: Session, ctx: Context, row: RunRow) -> RunRow:
    """An ended run is RUNNING again (its end time cleared), so that the process that resumes it (a
    retried task, the next ``kedro run --nodes``) can log to it; who ends it again is the client's rule."""
    if row.status != "RUNNING":
        _update_row(session, ctx, row, status="RUNNING")
    return row


def _experiment_for(session: Session, ctx: Context, spec: RunCreate) -> Any:
    if spec.experiment_id is not None:
        experiment = experiments.get_experiment(session, ctx, spec.experiment_id)
        if experiment.lifecycle != "active":
            raise InvalidStateError(f"experiment {experiment.id} is deleted", field="experiment_id")
        return experiment
    name = experiments.DEFAULT_EXPERIMENT if spec.experiment_name is None else spec.experiment_name
    return experiments.get_or_create_experiment(session, ctx, name)


def get_run_row(session: Session, ctx: Context, run_id: str, *, field_name: str = "run_id",
                write: bool = False) -> RunRow:
    """The run; with ``write`` the caller is about to change it and must be allowed to."""
    row = in_workspace(session, ctx, RunRow, run_id) if isinstance(run_id, str) and RUN_ID.match(run_id) else None
    _check_found(ctx, run_id, None if row is None else row.workspace_id, field_name)
    assert row is not None
    if write:
        ctx.authorize("experiment", row.experiment_id)
    return row


def _check_found(ctx: Context, run_id: str, workspace_id: int | None, field_name: str) -> None:
    """Another workspace's run answers as one that does not exist."""
    if workspace_id is None or workspace_id != ctx.workspace_id:
        raise NotFoundError(f"Run with id={str(run_id)[:100]} not found", field=field_name)


def writable_run(session: Session, ctx: Context, run_id: str) -> RunRow:
    row = get_run_row(session, ctx, run_id, write=True)
    _check_logging(run_id, row.lifecycle, row.status)
    return row


def check_writable(session: Session, ctx: Context, run_id: str) -> db_series.RunState:
    """What :func:`writable_run` checks, without loading the run: one primary-key read of a few columns
    (every logging request makes it). Returns what it read."""
    return _check_state(ctx, run_id, db_series.run_state(session, run_id) if _well_formed(run_id) else None)


def _well_formed(run_id: Any) -> bool:
    return isinstance(run_id, str) and RUN_ID.match(run_id) is not None


def _check_state(ctx: Context, run_id: str, state: db_series.RunState | None) -> db_series.RunState:
    _check_found(ctx, run_id, None if state is None else state.workspace_id, "run_id")
    assert state is not None
    ctx.authorize("experiment", state.experiment_id)
    _check_logging(run_id, state.lifecycle, state.status)
    return state


def _log_metrics(session: Session, ctx: Context, run_id: str, batches: list[metrics.SeriesBatch]) -> int:
    """The common logging request, metrics only: the run's state and its series (locked) are read together,
    one round trip on PostgreSQL, then the run is checked before anything is written."""
    if not batches or not _well_formed(run_id):
        check_writable(session, ctx, run_id)
        return 0
    state, locked = db_series.run_state_and_series(session, run_id, sorted({b.key for b in batches}),
                                                   ctx.workspace_id)
    _check_state(ctx, run_id, state)
    return metrics.ingest(session, run_id, batches, locked=locked)


def _check_logging(run_id: str, lifecycle: str, status: str) -> None:
    """Any run that is not deleted accepts data: evaluating a model after its training run ended, and
    logging the results to that run, is ordinary (MLflow allows it too). ``status`` stays as it is."""
    del status
    if lifecycle != "active":
        raise InvalidStateError(f"The run {run_id} must be in the 'active' state. Current state is deleted: "
                                "restore it before logging to it", field="run_id")


def read_run(session: Session, ctx: Context, run_id: str) -> RunView:
    view = load_views(session, [get_run_row(session, ctx, run_id)])[0]
    for series in view.metrics:
        step = best_step(series)
        if step is not None:
            view.at_best[series.key] = metrics.values_at_step(session, run_id, step)
    return view


def best_step(series: Any) -> int | None:
    step = {"min": series.min_step, "max": series.max_step}.get(series.goal or "")
    return None if step is None else int(step)


def load_views(session: Session, rows: list[RunRow]) -> list[RunView]:
    """Views of many runs in a handful of queries (tags, params, summaries, datasets)."""
    views = {r.id: RunView(r) for r in rows}
    ids = list(views)
    names = dict(session.execute(select(ExperimentRow.id, ExperimentRow.name).where(
        ExperimentRow.id.in_({r.experiment_id for r in rows})).execution_options(**REFERENCED)).all())
    for view in views.values():
        view.experiment_name = names.get(view.row.experiment_id, "")
    tags = select(RunTagRow.run_id, RunTagRow.key, RunTagRow.value).where(RunTagRow.run_id.in_(ids))
    for run_id, key, value in session.execute(tags):
        views[run_id].tags[key] = value
    params = select(ParamRow.run_id, ParamRow.key, ParamRow.value).where(ParamRow.run_id.in_(ids))
    for run_id, key, value in session.execute(params):
        views[run_id].params[key] = value
    for run_id, series in metrics.list_series(session, ids).items():
        views[run_id].metrics = series
    for dataset in session.scalars(select(DatasetInputRow).where(DatasetInputRow.run_id.in_(ids))):
        views[dataset.run_id].datasets.append(dataset)
    return [views[i] for i in ids]


def update_run(
    session: Session, ctx: Context, run_id: str, *, status: str | None = None,
    end_time: int | None = None, name: str | None = None,
) -> RunRow:
    return _update_row(session, ctx, get_run_row(session, ctx, run_id, write=True), status=status,
                       end_time=end_time, name=name)


def _update_row(session: Session, ctx: Context, row: RunRow, *, status: str | None = None,
                end_time: int | None = None, name: str | None = None) -> RunRow:
    before = {"status": row.status, "name": row.name, "end_time": row.end_time}
    after = _changed_state(before, status=status, end_time=end_time, name=name)
    row.status, row.name, row.end_time = after["status"], after["name"], after["end_time"]
    row.updated_at = events.now_ms()
    events.record(session, ctx, "run.update", "run", row.id, before=before, after=after)
    return row


def _changed_state(before: dict[str, Any], *, status: str | None, end_time: int | None,
                   name: str | None = None) -> dict[str, Any]:
    """A run's status, name and end time after an update: a terminal status stamps the end time (now,
    unless given), any other status clears it."""
    after = dict(before)
    if name is not None:
        after["name"] = check_key("name", name)
    if status is not None:
        after["status"] = check_status("status", status)
        if after["status"] in TERMINAL:
            after["end_time"] = check_int("end_time", end_time) if end_time is not None else events.now_ms()
        else:
            after["end_time"] = None
    elif end_time is not None:
        after["end_time"] = check_int("end_time", end_time)
    return after


def set_run_lifecycle(session: Session, ctx: Context, run_id: str, lifecycle: str) -> RunRow:
    row = get_run_row(session, ctx, run_id, write=True)
    if row.lifecycle == lifecycle:
        raise InvalidStateError(f"run {run_id} is already {lifecycle}", field="run_id")
    row.lifecycle, row.updated_at = lifecycle, events.now_ms()
    events.record(session, ctx, "run.delete" if lifecycle == "deleted" else "run.restore", "run", run_id)
    return row


def claim_idempotency_key(session: Session, ctx: Context, key: str | None) -> bool:
    """True if this request is new; False if a request with this key was already applied."""
    if key is None:
        return True
    if not _IDEMPOTENCY_KEY.match(key):
        raise InvalidInputError("Idempotency-Key must be 8-100 characters of letters, digits, '_.:-'",
                                field="Idempotency-Key")
    row = {"key": f"{ctx.workspace_id}:{key}", "workspace_id": ctx.workspace_id, "created_at": events.now_ms()}
    return insert_ignore(session, IdempotencyKeyRow, [row], ["key"]) == 1


def log_batch(
    session: Session, ctx: Context, run_id: str, body: Any, idempotency_key: str | None = None,
    limits: BatchLimits = NATIVE_BATCH,
) -> dict[str, int]:
    """Metrics (columnar), params and tags in one all-or-nothing write. With ``status`` (and optionally
    ``end_time``) the run then takes that status in the same transaction: a run's last batch and its end
    arrive together, and neither is stored without the other."""
    if not isinstance(body, dict):
        raise InvalidInputError("the body must be an object with metrics, params and/or tags", field="body")
    unknown = set(body) - _BATCH_FIELDS
    if unknown:
        raise InvalidInputError(f"unknown field(s) {sorted(unknown)}: expected metrics, params, tags, status, "
                                "end_time", field=sorted(unknown)[0])
    batches = _parse_metric_batches(body.get("metrics") or [])
    params = string_map("params", body.get("params") or {}, param_value)
    tags = no_author_change(ctx, string_map("tags", body.get("tags") or {}, tag_value))
    limits.check(sum(len(b.values) for b in batches), len(params), len(tags))
    status, end_time = body.get("status"), body.get("end_time")
    if status is not None:
        check_status("status", status)
    if end_time is not None:
        if status is None:
            raise InvalidInputError("end_time needs a status", field="end_time")
        check_int("end_time", end_time)
    if not claim_idempotency_key(session, ctx, idempotency_key):
        return {"metrics": 0, "params": 0, "tags": 0, "replayed": 1}
    if status is None and not params and not tags:  # metrics only (the common case): the run row is not needed
        return {"metrics": _log_metrics(session, ctx, run_id, batches), "params": 0, "tags": 0, "replayed": 0}
    state = check_writable(session, ctx, run_id)
    stored = metrics.ingest(session, run_id, batches) if batches else 0
    _log_params(session, ctx, run_id, params)
    _set_tags(session, run_id, tags)
    if tags:
        events.record(session, ctx, "run.set_tags", "run", run_id, after=tags)
        conventions.refresh(session, run_id, state.workspace_id, state.experiment_id)
    before = {"status": state.status, "name": state.name, "end_time": state.end_time}
    after = _changed_state(before, status=status, end_time=end_time)
    db_series.set_run_state(session, run_id, after["status"], after["end_time"], events.now_ms())
    if status is not None:
        events.record(session, ctx, "run.update", "run", run_id, before=before, after=after)
    return {"metrics": stored, "params": len(params), "tags": len(tags), "replayed": 0}


_BATCH_FIELDS = frozenset({"metrics", "params", "tags", "status", "end_time"})


def _parse_metric_batches(raw: Any) -> list[metrics.SeriesBatch]:
    if not isinstance(raw, list):
        raise InvalidInputError("metrics must be a list of {key, steps, values, timestamps}", field="metrics")
    now = events.now_ms()
    total = sum(len(m.get("values") or ()) for m in raw if isinstance(m, dict) and isinstance(m.get("values"), list))
    check_count("metrics", total, MAX_BATCH_POINTS)
    return [metrics.parse_series(item, f"metrics[{i}]", now) for i, item in enumerate(raw)]


AUTHOR_TAGS = ("mlflow.user", "cairn.source.user")


def authored(ctx: Context, tags: dict[str, str]) -> dict[str, str]:
    """Tags that name a run's author come from the authenticated caller when the server knows who that is
    (with ``--auth``); in the local single-user mode the client's word is taken."""
    if not ctx.guard.enforced:
        return tags
    return {k: (ctx.actor if k in AUTHOR_TAGS else v) for k, v in tags.items()}


def no_author_change(ctx: Context, tags: dict[str, str]) -> dict[str, str]:
    """After a run is made, its author tags cannot be changed to name someone else when the server knows
    the caller."""
    for key in AUTHOR_TAGS:
        if ctx.guard.enforced and key in tags and tags[key] != ctx.actor:
            raise InvalidInputError(f"{key} is set by the server from the signed-in caller ({ctx.actor}); it "
                                    "cannot name someone else", field=f"tags[{key!r}]")
    return tags


def find_run(session: Session, ctx: Context, run_id: Any) -> RunRow | None:
    """The run of this workspace with this id, or None."""
    return in_workspace(session, ctx, RunRow, run_id) if isinstance(run_id, str) and RUN_ID.match(run_id) else None


_RUNS: Table = RunRow.__table__  # type: ignore[assignment]
_PARAMS: Table = ParamRow.__table__  # type: ignore[assignment]
_PARAM_HISTORY: Table = ParamHistoryRow.__table__  # type: ignore[assignment]
_TAGS: Table = RunTagRow.__table__  # type: ignore[assignment]


def _log_params(session: Session, ctx: Context, run_id: str, params: dict[str, str]) -> None:
    """Current values and history, written with plain cached statements (a run's params are many rows)."""
    if not params:
        return
    now = events.now_ms()
    t = _PARAMS
    current = dict(session.execute(select(t.c.key, t.c.value).where(t.c.run_id == run_id,
                                                                     t.c.key.in_(list(params)))).all())
    added = {k: v for k, v in params.items() if k not in current}
    changed = {k: current[k] for k, v in params.items() if k in current and current[k] != v}
    if added:
        session.execute(insert(t), [{"run_id": run_id, "key": k, "value": v, "updated_at": now}
                                    for k, v in added.items()])
    if changed:
        session.execute(update(t).where(t.c.run_id == run_id, t.c.key == bindparam("k"))
                        .values(value=bindparam("v"), updated_at=now),
                        [{"k": k, "v": params[k]} for k in changed])
    if added or changed:
        session.execute(insert(_PARAM_HISTORY), [{"run_id": run_id, "key": k, "value": params[k], "timestamp": now}
                                                 for k in params if k in added or k in changed])
    if added:
        events.record(session, ctx, "run.log_params", "run", run_id, after=added)
    if changed:
        events.record(session, ctx, "run.params_changed", "run", run_id, before=changed,
                      after={k: params[k] for k in changed})


def _set_tags(session: Session, run_id: str, tags: dict[str, str]) -> None:
    if not tags:
        return
    tags = string_map("tags", tags, tag_value)
    t = _TAGS
    current = dict(session.execute(select(t.c.key, t.c.value).where(t.c.run_id == run_id,
                                                                     t.c.key.in_(list(tags)))).all())
    added = [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items() if k not in current]
    changed = [{"k": k, "v": v} for k, v in tags.items() if k in current and current[k] != v]
    if added:
        session.execute(insert(t), added)
    if changed:
        session.execute(update(t).where(t.c.run_id == run_id, t.c.key == bindparam("k")).values(value=bindparam("v")),
                        changed)


def _touch(session: Session, run_id: str) -> None:
    row = referenced(session, RunRow, run_id)
    if row is not None:
        row.updated_at = events.now_ms()


def set_tags(session: Session, ctx: Context, run_id: str, tags: Any) -> None:
    row = get_run_row(session, ctx, run_id, write=True)
    if row.lifecycle != "active":
        raise InvalidStateError(f"run {run_id} is deleted", field="run_id")
    clean = no_author_change(ctx, string_map("tags", tags, tag_value))
    _set_tags(session, run_id, clean)
    _touch(session, run_id)
    events.record(session, ctx, "run.set_tags", "run", run_id, after=clean)
    conventions.refresh(session, run_id, row.workspace_id, row.experiment_id)


def delete_tag(session: Session, ctx: Context, run_id: str, key: str) -> None:
    row = get_run_row(session, ctx, run_id, write=True)
    _check_logging(run_id, row.lifecycle, row.status)
    tag = session.get(RunTagRow, (run_id, key))
    if tag is None:
        raise NotFoundError(f"No tag with name: {key} in run with id {run_id}", field="key")
    session.delete(tag)
    session.flush()
    events.record(session, ctx, "run.delete_tag", "run", run_id, before={key: tag.value})
    conventions.refresh(session, run_id, row.workspace_id, row.experiment_id)


def param_history(session: Session, ctx: Context, run_id: str, key: str) -> list[ParamHistoryRow]:
    get_run_row(session, ctx, run_id)
    check_key("key", key)  # a key no write accepts cannot exist; PostgreSQL would refuse its NUL
    query = select(ParamHistoryRow).where(ParamHistoryRow.run_id == run_id, ParamHistoryRow.key == key)
    rows = list(session.scalars(query.order_by(ParamHistoryRow.id)))
    if not rows:
        raise NotFoundError(f"run {run_id} has no param {key!r}", field="key")
    return rows


def define_metric(session: Session, ctx: Context, run_id: str, key: str, goal: str | None) -> MetricSeriesRow:
    row = get_run_row(session, ctx, run_id, write=True)
    if row.lifecycle != "active":
        raise InvalidStateError(f"run {run_id} is deleted", field="run_id")
    series = metrics.define_metric(session, run_id, key, goal)
    events.record(session, ctx, "run.define_metric", "run", run_id, after={"key": key, "goal": goal})
    return series


def metric_history(
    session: Session, ctx: Context, run_id: str, key: str, *, start_step: int | None = None,
    end_step: int | None = None, max_points: int | None = None,
) -> list[tuple[int, int, float | None]]:
    """(step, timestamp, value) with None standing for NaN."""
    get_run_row(session, ctx, run_id)
    series = metrics.get_series(session, run_id, key)
    return points.read_points(session, series.id, start_step, end_step, max_points)


def metric_buckets(session: Session, ctx: Context, run_id: str, key: str, n: int, *, start_step: int | None = None,
                   end_step: int | None = None) -> list[metrics.Bucket]:
    if not 1 <= n <= 10_000:
        raise InvalidInputError("buckets must be between 1 and 10000", field="buckets")
    get_run_row(session, ctx, run_id)
    return metrics.buckets(session, metrics.get_series(session, run_id, key).id, n, start_step, end_step)


def lock_run(session: Session, run_id: str) -> RunRow:
    """Take the run's row lock (PostgreSQL); SQLite writers are already serialised."""
    row = session.scalar(select(RunRow).where(RunRow.id == run_id).with_for_update())
    assert row is not None
    return row
