"""Workspaces and experiments."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cairn.server.db.models import ExperimentRow, ExperimentTagRow, RunRow, WorkspaceRow
from cairn.server.db.upsert import insert_ignore
from cairn.server.services import events
from cairn.server.services.context import Context
from cairn.server.services.errors import ConflictError, InvalidInputError, InvalidStateError, NotFoundError
from cairn.server.services.tags import rename_and_describe, write_tags
from cairn.server.services.tenancy import in_workspace
from cairn.server.services.validation import (
    MAX_DESCRIPTION,
    MAX_ID,
    check_key,
    check_text,
)

DEFAULT_EXPERIMENT = "Default"


@dataclass
class ExperimentView:
    row: ExperimentRow
    tags: dict[str, str] = field(default_factory=dict)
    run_count: int = 0
    last_activity: int | None = None


def resolve_workspace(session: Session, name: str) -> WorkspaceRow:
    row = session.scalar(select(WorkspaceRow).where(WorkspaceRow.name == name))
    if row is None:
        raise NotFoundError(f"workspace {name!r} does not exist", field="workspace")
    return row


def create_experiment(
    session: Session, ctx: Context, name: str, description: str = "", tags: dict[str, str] | None = None,
    *, artifact_location: str = "",
) -> ExperimentRow:
    """A new experiment; ``artifact_location`` is kept and returned as its creator gave it (Cairn stores the
    bytes of every run in its own store)."""
    check_key("name", name)
    check_text("description", description, MAX_DESCRIPTION)
    check_text("artifact_location", artifact_location, 4096)
    existing = _by_name(session, ctx, name)
    if existing is not None:
        state = " (it is deleted: restore it or choose another name)" if existing.lifecycle == "deleted" else ""
        raise ConflictError(f"experiment {name!r} already exists{state}", field="name")
    now = events.now_ms()
    row = ExperimentRow(workspace_id=ctx.workspace_id, name=name, description=description,
                        lifecycle="active", created_at=now, updated_at=now, artifact_location=artifact_location)
    session.add(row)
    session.flush()
    write_tags(session, ExperimentTagRow, "experiment_id", row.id, tags or {})
    events.record(session, ctx, "experiment.create", "experiment", row.id, after={"name": name})
    return row


def get_or_create_experiment(session: Session, ctx: Context, name: str) -> ExperimentRow:
    """The active experiment with this name, created if there is none (safe under concurrency)."""
    check_key("experiment_name", name)
    row = _by_name(session, ctx, name)
    if row is None:
        now = events.now_ms()
        values = {"workspace_id": ctx.workspace_id, "name": name, "description": "",
                  "lifecycle": "active", "created_at": now, "updated_at": now}
        insert_ignore(session, ExperimentRow, [values], ["workspace_id", "name"])
        row = _by_name(session, ctx, name)
        assert row is not None
        events.record(session, ctx, "experiment.create", "experiment", row.id, after={"name": name})
    if row.lifecycle == "deleted":
        raise InvalidStateError(f"experiment {name!r} is deleted; restore it first", field="experiment_name")
    return row


def _by_name(session: Session, ctx: Context, name: str) -> ExperimentRow | None:
    query = select(ExperimentRow).where(ExperimentRow.workspace_id == ctx.workspace_id, ExperimentRow.name == name)
    return session.scalar(query)


def find_experiment(session: Session, ctx: Context, name: str) -> ExperimentRow | None:
    """The experiment of this name, active or deleted, if there is one."""
    return _by_name(session, ctx, name)


def get_experiment(session: Session, ctx: Context, experiment_id: int) -> ExperimentRow:
    if not 0 <= experiment_id <= MAX_ID:
        raise InvalidInputError(f"experiment_id must be from 0 to {MAX_ID}", field="experiment_id")
    row = in_workspace(session, ctx, ExperimentRow, experiment_id)
    if row is None:
        raise NotFoundError(f"experiment {experiment_id} does not exist", field="experiment_id")
    return row


def get_experiment_by_name(session: Session, ctx: Context, name: str) -> ExperimentRow:
    row = _by_name(session, ctx, check_key("name", name))
    if row is None:
        raise NotFoundError(f"experiment {name!r} does not exist", field="name")
    return row


def read_experiment(session: Session, ctx: Context, row: ExperimentRow) -> ExperimentView:
    return views_of(session, [row])[0]


def list_experiments(
    session: Session, ctx: Context, *, include_deleted: bool = False, name_contains: str | None = None,
    limit: int = 1000, offset: int = 0,
) -> list[ExperimentView]:
    query = select(ExperimentRow).where(ExperimentRow.workspace_id == ctx.workspace_id)
    if not include_deleted:
        query = query.where(ExperimentRow.lifecycle == "active")
    if name_contains:
        query = query.where(func.lower(ExperimentRow.name).contains(name_contains.lower(), autoescape=True))
    rows = list(session.scalars(query.order_by(ExperimentRow.id).limit(limit).offset(offset)))
    return views_of(session, rows)


def views_of(session: Session, rows: list[ExperimentRow]) -> list[ExperimentView]:
    ids = [r.id for r in rows]
    views = {r.id: ExperimentView(r) for r in rows}
    for tag in session.scalars(select(ExperimentTagRow).where(ExperimentTagRow.experiment_id.in_(ids))):
        views[tag.experiment_id].tags[tag.key] = tag.value
    stats = select(RunRow.experiment_id, func.count(), func.max(RunRow.updated_at)).where(
        RunRow.experiment_id.in_(ids), RunRow.lifecycle == "active").group_by(RunRow.experiment_id)
    for experiment_id, count, last in session.execute(stats):
        views[experiment_id].run_count, views[experiment_id].last_activity = count, last
    return [views[i] for i in ids]


def update_experiment(
    session: Session, ctx: Context, experiment_id: int, *, name: str | None = None, description: str | None = None
) -> ExperimentRow:
    row = get_experiment(session, ctx, experiment_id)
    ctx.authorize("experiment", row.id)

    def claim(new_name: str) -> str:
        check_key("name", new_name)
        if _by_name(session, ctx, new_name) is not None:
            raise ConflictError(f"experiment {new_name!r} already exists", field="name")
        return new_name
    rename_and_describe(session, ctx, row, object_type="experiment", name=name, description=description,
                        claim_name=claim)
    return row


def set_lifecycle(session: Session, ctx: Context, experiment_id: int, lifecycle: str) -> ExperimentRow:
    row = get_experiment(session, ctx, experiment_id)
    ctx.authorize("experiment", row.id)
    if row.lifecycle == lifecycle:
        raise InvalidStateError(f"experiment {experiment_id} is already {lifecycle}", field="experiment_id")
    row.lifecycle, row.updated_at = lifecycle, events.now_ms()
    action = "experiment.delete" if lifecycle == "deleted" else "experiment.restore"
    events.record(session, ctx, action, "experiment", row.id)
    return row


def set_experiment_tags(session: Session, ctx: Context, experiment_id: int, tags: dict[str, str]) -> None:
    row = get_experiment(session, ctx, experiment_id)
    ctx.authorize("experiment", row.id)
    write_tags(session, ExperimentTagRow, "experiment_id", row.id, tags)
    events.record(session, ctx, "experiment.set_tags", "experiment", row.id, after=dict(tags))


def delete_experiment_tag(session: Session, ctx: Context, experiment_id: int, key: str) -> None:
    row = get_experiment(session, ctx, experiment_id)
    ctx.authorize("experiment", row.id)
    tag = session.get(ExperimentTagRow, (row.id, key))
    if tag is None:
        raise NotFoundError(f"No tag with name: {key} in experiment with id {row.id}", field="key")
    session.delete(tag)
    events.record(session, ctx, "experiment.delete_tag", "experiment", row.id, before={key: tag.value})
