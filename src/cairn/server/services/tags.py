"""Tags of experiments, registered models and model versions: one check and one upsert for all; and the
one update of a named object's name and description."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from cairn.server.services import events
from cairn.server.services.context import Context
from cairn.server.services.errors import InvalidInputError
from cairn.server.services.validation import (
    MAX_BATCH_ITEMS,
    MAX_DESCRIPTION,
    MAX_TAG_VALUE,
    check_count,
    check_key,
    check_text,
)


def write_tags(session: Session, row_type: Any, owner_field: str, owner_id: int, tags: Any) -> None:
    """Validate every tag first (nothing is written if one is bad), then insert or replace each."""
    if not isinstance(tags, dict):
        raise InvalidInputError("tags must be an object of key to value", field="tags")
    check_count("tags", len(tags), MAX_BATCH_ITEMS)
    for key, value in tags.items():
        check_key(f"tags[{key!r}]", key)
        check_text(f"tags[{key!r}]", value, MAX_TAG_VALUE)
    for key, value in tags.items():
        session.merge(row_type(**{owner_field: owner_id, "key": key, "value": value}))


def rename_and_describe(session: Session, ctx: Context, row: Any, *, object_type: str, name: str | None,
                        description: str | None, claim_name: Callable[[str], str]) -> None:
    """The one update of a named object (an experiment, a model): a new name, checked and claimed by
    ``claim_name`` (which raises when it is taken and returns the name to store), a new description, the
    update time and one ``<object_type>.update`` event with the name and description before and after."""
    before = {"name": row.name, "description": row.description}
    if name is not None and name != row.name:
        row.name = claim_name(name)
    if description is not None:
        row.description = check_text("description", description, MAX_DESCRIPTION)
    row.updated_at = events.now_ms()
    events.record(session, ctx, f"{object_type}.update", object_type, row.id, before=before,
                  after={"name": row.name, "description": row.description})


def describe_and_set(session: Session, ctx: Context, row: Any, *, object_type: str, object_id: str | int,
                     description: str | None, flags: dict[str, bool | None]) -> None:
    """The one update of a registry's or a workspace's description and flags (None leaves a value as it is),
    with one ``<object_type>.update`` event holding their values before and after."""
    fields = ["description", *flags]
    before = {name: getattr(row, name) for name in fields}
    if description is not None:
        row.description = check_text("description", description, MAX_DESCRIPTION)
    for name, value in flags.items():
        if value is not None:
            setattr(row, name, value)
    events.record(session, ctx, f"{object_type}.update", object_type, object_id, before=before,
                  after={name: getattr(row, name) for name in fields})
