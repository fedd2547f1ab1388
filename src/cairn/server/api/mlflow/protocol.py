"""Reading MLflow requests: bodies (or query strings), typed fields, and the route declaration.

MLflow's server parses requests into protobuf messages, so a field of the wrong JSON type (``"run_id": 31``)
is refused with 400 ``INVALID_PARAMETER_VALUE`` before anything is looked up; these readers do the same.
Fields Cairn does not use are ignored, as protobuf ignores unknown fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request

from cairn.server.api import transaction as tx
from cairn.server.api.auth import Access, requires
from cairn.server.api.common import JSON, read_json
from cairn.server.services.errors import InvalidInputError
from cairn.server.services.validation import pairs_to_dict

PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
ARTIFACTS_PREFIX = "/api/2.0/mlflow-artifacts"
router = APIRouter(tags=["mlflow"])
artifacts_router = APIRouter(tags=["mlflow"])
info_router = APIRouter(tags=["mlflow"])
VIEW = {"ACTIVE_ONLY": "active_only", "DELETED_ONLY": "deleted_only", "ALL": "all", None: "active_only",
        "1": "active_only", "2": "deleted_only", "3": "all"}
_INTEGER = re.compile(r"-?[0-9]{1,19}")


class Query(dict[str, Any]):
    """Parameters that came in a query string, where a repeated field may arrive as a single string."""


async def body_of(request: Request) -> dict[str, Any]:
    """The JSON body, or the query string for GET and DELETE without a body (MLflow clients send GET
    parameters there; a repeated parameter becomes a list)."""
    if request.method == "GET" or (request.method == "DELETE" and not request.headers.get("content-length")):
        params: dict[str, list[str]] = {}
        for key, value in request.query_params.multi_items():
            params.setdefault(key, []).append(value)
        if request.method == "GET" or params:
            return Query({k: v[0] if len(v) == 1 else v for k, v in params.items()})
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidInputError("the request body must be a JSON object", field="body")
    return body


def invalid(name: str, value: Any, why: str = "") -> InvalidInputError:
    """MLflow's wording, which its users match on: the value as JSON, then the parameter."""
    shown = orjson.dumps(value, default=str).decode()[:200]
    return InvalidInputError(f"Invalid value {shown} for parameter '{name}' supplied{': ' + why if why else ''}",
                             field=name)


def missing(name: str) -> InvalidInputError:
    return InvalidInputError(f"Missing value for required parameter '{name}'. See the API docs for more "
                             "information about request parameters.", field=name)


def text(body: dict[str, Any], name: str, *, required: bool = True, default: str | None = None) -> Any:
    """A string field; a number or a list where a string belongs is refused, as protobuf refuses it."""
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise missing(name)
        return default
    if not isinstance(value, str):
        raise invalid(name, value, "expected a string")
    return value


def integer(body: dict[str, Any], name: str, default: int | None = None, *, required: bool = False) -> int | None:
    """An int64 field: a JSON integer or a string of digits (protobuf's JSON form of int64)."""
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise missing(name)
        return default
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not _INTEGER.fullmatch(str(value)):
        raise invalid(name, value, "expected an integer")
    result = int(value)
    if not -(2**63) <= result < 2**63:
        raise invalid(name, value, "out of the int64 range")
    return result


def string_list(body: dict[str, Any], name: str) -> list[str]:
    """A repeated string field (a single value in a query string arrives as a string)."""
    raw = body.get(name)
    if raw is None or raw == "":
        return []
    if isinstance(raw, str) and isinstance(body, Query):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise invalid(name, raw, "expected a list of strings")
    return raw


def pairs(body: dict[str, Any], name: str) -> dict[str, str]:
    """[{key, value}, ...] -> {key: value}, in MLflow's wording; a missing value is the empty string."""
    raw = body.get(name) or []
    if not isinstance(raw, list):
        raise invalid(name, raw, "expected a list of {key, value}")
    out = pairs_to_dict(name, raw, _not_a_pair)
    for i, item in enumerate(raw):
        if item.get("value") is not None and not isinstance(item["value"], str):
            raise invalid(f"{name}[{i}].value", item["value"], "expected a string")
    return {key: value or "" for key, value in out.items()}


def _not_a_pair(field: str, item: Any) -> InvalidInputError:
    if isinstance(item, dict) and item.get("key") is None:
        return missing(f"{field}.key")
    return invalid(field, item, "expected {key, value}")


def one_pair(body: dict[str, Any]) -> dict[str, str]:
    """The ``key`` and ``value`` of a set-tag or log-parameter body as a map; a missing value is empty."""
    return {text(body, "key"): text(body, "value", required=False, default="")}


async def written(request: Request, access: Access, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> JSON:
    """A write that MLflow answers with an empty object (a tag set, a deletion, an alias moved)."""
    await tx.write_async(request, access, fn, *args, **kwargs)
    return JSON({})


def kv(mapping: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": v} for k, v in mapping.items()]


def run_id_of(body: dict[str, Any]) -> str:
    run_id = text(body, "run_id", required=False) or text(body, "run_uuid", required=False)
    if not run_id:
        raise missing("run_id")
    return str(run_id)


def view_of(body: dict[str, Any], name: str) -> str:
    view = VIEW.get(body.get(name))
    if view is None:
        raise InvalidInputError(f"{name} must be ACTIVE_ONLY, DELETED_ONLY or ALL", field=name)
    return str(view)


def page_size(body: dict[str, Any], default: int, limit: int, name: str = "max_results") -> int:
    size = integer(body, name, default)
    if size is None or not 1 <= size <= limit:
        raise invalid(name, size, f"it must be at most {limit} and at least 1")
    return size


def mlflow_routes(method: str, path: str, action: str, *, prefixes: tuple[str, ...] = PREFIXES) -> Callable[[Any], Any]:
    """Register ``fn(request, access, body)`` under each MLflow prefix (the first one in the OpenAPI document)."""

    def register(fn: Any) -> Any:
        async def endpoint(request: Request, access: Access = requires(action)) -> Any:
            return await fn(request, access, await body_of(request))
        endpoint.__name__ = fn.__name__
        endpoint.__doc__ = fn.__doc__
        for prefix in prefixes:
            router.add_api_route(prefix + path, endpoint, methods=[method], name=f"mlflow_{fn.__name__}",
                                 include_in_schema=prefix == prefixes[0])
        return fn
    return register
