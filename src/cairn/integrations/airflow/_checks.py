"""What the sensors and their triggers wait for, decided in one place.

A sensor asks through the SDK (``cairn.Client``), a trigger through the REST API with an async HTTP
client (the SDK is synchronous and the triggerer's event loop must not block); both turn the answer into
the SDK's objects and hand them to the same functions here, so poking, rescheduling and deferring agree.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import cairn


@dataclass(frozen=True)
class Check:
    """``done``: the wait is over with ``payload`` (the sensor's XCom value). ``failure``: it is over and
    can never succeed (a rejected request): the task fails with this message, without retrying."""

    done: bool
    payload: dict[str, Any] = field(default_factory=dict)
    failure: str | None = None


WAITING = Check(done=False)


# promotion requests -------------------------------------------------------------------------------------

def promotion_check(request: cairn.PromotionRequest) -> Check:
    if request.status == "pending":
        return WAITING
    if request.status == "approved":
        return Check(done=True, payload={"request_id": request.id, "status": "approved", "model": request.to,
                                         "version": request.result_version, "decided_by": request.decided_by,
                                         "comment": request.decision_comment})
    who = f" by {request.decided_by}" if request.decided_by else ""
    reason = f": {request.decision_comment}" if request.decision_comment else ""
    return Check(done=True, failure=f"promotion request {request.id} ({request.model} version "
                                    f"{request.version} -> {request.to}) was {request.status}{who}{reason}")


def promotion_path(request_id: int) -> str:
    return f"/api/v1/promotion-requests/{int(request_id)}"


def direct_promotion(value: Any) -> dict[str, Any] | None:
    """The promote operator's answer when it promoted directly (nothing to wait for), else None."""
    data = _as_dict(value)
    if data is not None and data.get("action") == "promoted":
        return data
    return None


def request_id_of(value: Any) -> int:
    """A request id from what a template gives: an int, a numeric string, or the promote operator's whole
    answer (``{{ ti.xcom_pull('promote') }}`` renders the dict as text)."""
    data = _as_dict(value)
    if data is not None:
        value = data.get("request_id")
    if isinstance(value, bool) or value is None or (isinstance(value, str) and not value.strip().isdigit()):
        raise ValueError(f"request_id must be a promotion request id (a number), got {value!r}")
    return int(value)


def _as_dict(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip().startswith("{"):
        for parse in (json.loads, ast.literal_eval):
            try:
                parsed = parse(value)
            except (ValueError, SyntaxError):
                continue
            if isinstance(parsed, dict):
                return parsed
    return None


# model versions and aliases ----------------------------------------------------------------------------

def version_check(model: str, latest: int | None, after_version: int | None) -> Check:
    """A version of ``model`` newer than ``after_version`` (any version when it is None)."""
    if latest is None or (after_version is not None and latest <= after_version):
        return WAITING
    return Check(done=True, payload={"model": model, "version": latest, "alias": None})


def alias_check(model: str, alias: str, version: cairn.ModelVersion | None, after_version: int | None) -> Check:
    """``alias`` points at a version other than ``after_version`` (at any version when it is None)."""
    if version is None or version.version == after_version:
        return WAITING
    return Check(done=True, payload={"model": model, "version": version.version, "alias": alias})


def model_path(model: str) -> str:
    return f"/api/v1/models/{quote(model, safe='')}"


def alias_path(model: str, alias: str) -> str:
    return f"{model_path(model)}/aliases/{quote(alias, safe='')}"


def optional_version(value: Any, what: str) -> int | None:
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return None
    return version_of(value, what)


def version_of(value: Any, what: str = "version") -> int:
    """A version number from a template's text (``"{{ ti.xcom_pull('train') }}"`` renders ``"3"``)."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a version number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    data = _as_dict(value)
    if data is not None and "version" in data:
        return version_of(data["version"], what)
    raise ValueError(f"{what} must be a version number, got {value!r}")


# the sync side: through the SDK -------------------------------------------------------------------------

def check_promotion(client: cairn.Client, request_id: int) -> Check:
    return promotion_check(client.get_promotion_request(request_id))


def check_model(client: cairn.Client, model: str, alias: str | None, after_version: int | None) -> Check:
    try:
        if alias:
            return alias_check(model, alias, client.get_model_version_by_alias(model, alias), after_version)
        return version_check(model, client.get_registered_model(model).latest_version, after_version)
    except cairn.NotFoundError:
        return WAITING  # the model or alias does not exist yet
