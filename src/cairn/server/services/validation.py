"""Checks on names and values that come from clients. Limits are documented in docs/concepts.md."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cairn.server.services.errors import InvalidInputError, PayloadTooLargeError, ServiceError

MAX_KEY = 250
MAX_PARAM_VALUE = 8000
MAX_TAG_VALUE = 8000
MAX_DESCRIPTION = 65536
MAX_BATCH_POINTS = 100_000
MAX_BATCH_ITEMS = 1000
MAX_ID = 2**31 - 1  # ids of experiments, versions and requests are 32-bit in the store
MAX_DATASET_TEXT = 1_048_576  # a dataset's schema or profile (JSON text), as MLflow allows
MAX_INT64 = 2**63 - 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")


def check_key(field: str, key: Any) -> str:
    """A metric/param/tag key or a name: 1-250 chars, no control chars, no path tricks."""
    if not isinstance(key, str):
        raise InvalidInputError(f"{field} must be a string, got {type(key).__name__}", field=field)
    if not key.strip():
        raise InvalidInputError(f"{field} must not be empty", field=field)
    if len(key) > MAX_KEY:
        raise InvalidInputError(f"{field} is {len(key)} characters long; the limit is {MAX_KEY}", field=field)
    if _CONTROL.search(key):
        raise InvalidInputError(f"{field} {key!r} contains a control character (NUL, newline, ...)", field=field)
    if "\\" in key or key.startswith("/") or key.endswith("/") or "//" in key:
        raise InvalidInputError(
            f"{field} {key!r} must not contain a backslash, start or end with '/', or contain '//'", field=field
        )
    if ".." in key.split("/") or key in (".",):
        raise InvalidInputError(f"{field} {key!r} must not contain a '..' or '.' path segment", field=field)
    return key


def check_text(field: str, value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{field} must be a string, got {type(value).__name__}", field=field)
    if len(value) > limit:
        raise InvalidInputError(f"{field} is {len(value)} characters long; the limit is {limit}", field=field)
    if "\x00" in value:
        raise InvalidInputError(f"{field} contains a NUL character", field=field)
    return value


def param_value(field: str, value: Any) -> str:
    """Params are stored as text; numbers and booleans are accepted and written as text."""
    if isinstance(value, bool):
        value = str(value)
    elif isinstance(value, int | float):
        value = repr(value) if isinstance(value, float) else str(value)
    return check_text(field, value, MAX_PARAM_VALUE)


def check_int(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{field} must be an integer, got {value!r}", field=field)
    if not -MAX_INT64 <= value <= MAX_INT64:
        raise InvalidInputError(f"{field} {value} is outside the 64-bit integer range", field=field)
    return value


def check_run_id(field: str, run_id: Any) -> str:
    if not isinstance(run_id, str) or not RUN_ID.match(run_id):
        raise InvalidInputError(f"{field} must be 32 lowercase hex characters, got {run_id!r}", field=field)
    return run_id


def check_status(field: str, status: Any) -> str:
    if not isinstance(status, str) or status.upper() not in STATUSES:
        raise InvalidInputError(f"{field} must be one of {', '.join(STATUSES)}, got {status!r}", field=field)
    return status.upper()


@dataclass(frozen=True)
class BatchLimits:
    """How much one logging request may carry: metric points, params, tags, and all of them together."""

    metrics: int
    params: int
    tags: int
    total: int

    def check(self, metrics: int, params: int, tags: int) -> None:
        for field, count, limit in (("metrics", metrics, self.metrics), ("params", params, self.params),
                                    ("tags", tags, self.tags)):
            if count > limit:
                raise InvalidInputError(f"A batch logging request can contain at most {limit} {field}; got {count}",
                                        field=field)
        if metrics + params + tags > self.total:
            raise InvalidInputError(f"A batch logging request can contain at most {self.total} metrics, params "
                                    f"and tags in total; got {metrics + params + tags}", field="body")


NATIVE_BATCH = BatchLimits(metrics=MAX_BATCH_POINTS, params=MAX_BATCH_ITEMS, tags=MAX_BATCH_ITEMS,
                           total=MAX_BATCH_POINTS + 2 * MAX_BATCH_ITEMS)
MLFLOW_BATCH = BatchLimits(metrics=1000, params=100, tags=100, total=1000)  # MLflow's own limits for log_batch


def check_count(field: str, count: int, limit: int) -> None:
    if count > limit:
        raise PayloadTooLargeError(f"{field} has {count} items; the limit per request is {limit}", field=field)


MAX_JSON_DEPTH = 64  # arrays and objects inside each other; a real body needs a handful


def check_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit``: code that walks it recursively (serializers, validators)
    would otherwise fail on it or spend its stack. Iterative, so it cannot itself run out of stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            raise InvalidInputError(f"the request body nests arrays and objects more than {limit} deep",
                                    field="body")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


PairError = Callable[[str, Any], ServiceError]  # (the pair's field, e.g. "tags[2]", the item) -> the error to raise


def pairs_to_dict(name: str, raw: list[Any], refuse: PairError) -> dict[str, Any]:
    """``[{"key": k, "value": v}, ...]`` -> ``{k: v}``: how MLflow sends maps (and the native API accepts
    them too). ``refuse`` words the error for an item that is not a pair with a string key."""
    out: dict[str, Any] = {}
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise refuse(f"{name}[{i}]", item)
        out[item["key"]] = item.get("value")
    return out


def string_map(name: str, raw: Any, check: Callable[[str, Any], str]) -> dict[str, str]:
    """A map of checked keys to values checked by ``check``, given as an object or as a list of pairs."""
    if isinstance(raw, list):
        raw = pairs_to_dict(name, raw, lambda _field, _item: InvalidInputError(
            f"{name} must be an object, or a list of {{key, value}}", field=name))
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{name} must be an object of key to value", field=name)
    check_count(name, len(raw), MAX_BATCH_ITEMS)
    return {check_key(f"{name} key", k): check(f"{name}[{k!r}]", v) for k, v in raw.items()}


def tag_value(field: str, value: Any) -> str:
    return check_text(field, value, MAX_TAG_VALUE)
