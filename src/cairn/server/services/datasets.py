"""The datasets a run used (MLflow's dataset inputs): logged once per (name, digest, role), listed per experiment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cairn.server.db.models import DatasetInputRow, RunRow
from cairn.server.db.upsert import insert_ignore
from cairn.server.services import conventions, events
from cairn.server.services.context import Context
from cairn.server.services.runs import writable_run
from cairn.server.services.validation import MAX_DATASET_TEXT, MAX_KEY, check_key, check_text, string_map, tag_value


@dataclass(frozen=True)
class DatasetDetails:
    """What MLflow's dataset inputs carry beyond a reference: kept and returned as given."""

    source_type: str = ""
    schema: str = ""
    profile: str = ""
    tags: dict[str, str] = field(default_factory=dict)


def log_dataset(
    session: Session, ctx: Context, run_id: str, *, name: str, uri: str = "", digest: str = "",
    version: str = "", role: str = "", details: DatasetDetails | None = None,
) -> DatasetInputRow:
    run = writable_run(session, ctx, run_id)
    more = details or DatasetDetails()
    fields: dict[str, Any] = {
        "name": check_key("name", name), "uri": check_text("uri", uri, 4096),
        "digest": check_text("digest", digest, MAX_KEY), "version": check_text("version", version, MAX_KEY),
        "role": check_text("role", role, 64), "source_type": check_text("source_type", more.source_type, 64),
        "dataset_schema": check_text("schema", more.schema, MAX_DATASET_TEXT),
        "profile": check_text("profile", more.profile, MAX_DATASET_TEXT)}
    if more.tags:
        fields["input_tags"] = string_map("tags", more.tags, tag_value)
    query = select(DatasetInputRow).where(
        DatasetInputRow.run_id == run_id, DatasetInputRow.name == name,
        DatasetInputRow.digest == digest, DatasetInputRow.role == role)
    if session.scalar(query) is None:
        insert_ignore(session, DatasetInputRow, [{"run_id": run_id, "created_at": events.now_ms(), **fields}],
                      ["run_id", "name", "digest", "role"])
        events.record(session, ctx, "run.log_dataset", "run", run_id,
                      after={k: fields[k] for k in ("name", "uri", "digest", "version", "role")})
        conventions.refresh(session, run_id, run.workspace_id, run.experiment_id)
    row = session.scalar(query)
    assert row is not None
    return row


def distinct_datasets(session: Session, ctx: Context, experiment_ids: list[int],
                      limit: int = 1000) -> list[tuple[int, str, str, str]]:
    """(experiment id, name, digest, role) of the datasets logged to active runs of these experiments."""
    query = select(RunRow.experiment_id, DatasetInputRow.name, DatasetInputRow.digest, DatasetInputRow.role).join(
        RunRow, RunRow.id == DatasetInputRow.run_id).where(
        RunRow.workspace_id == ctx.workspace_id, RunRow.lifecycle == "active", RunRow.experiment_id.in_(experiment_ids))
    return [tuple(row) for row in session.execute(query.distinct().limit(limit))]  # type: ignore[misc]
