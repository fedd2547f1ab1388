"""Tags of experiments, registered models and model versions: one check and one upsert for all."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from cairn.server.services.errors import InvalidInputError
from cairn.server.services.validation import MAX_BATCH_ITEMS, MAX_TAG_VALUE, check_count, check_key, check_text


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
