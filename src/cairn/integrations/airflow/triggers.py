"""Async triggers behind the deferrable sensors: they poll Cairn's REST API from Airflow's triggerer,
where a waiting sensor costs no worker slot.

Each trigger is built from plain values (Airflow stores them and rebuilds the trigger in the triggerer
process), reads its connection there, and fires one event: ``{"status": "done", "payload": ...}``,
``{"status": "failed", "message": ...}`` for an answer that can never turn good (a rejected request), or
``{"status": "error", "message": ...}`` for a refusal (bad token, no such request). An unreachable server or
a 5xx answer is logged and polled again: a restart of Cairn must not fail a DAG that waits for days.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from airflow.triggers.base import BaseTrigger, TriggerEvent

import cairn
from cairn.integrations.airflow import _checks
from cairn.integrations.airflow.hooks import CairnHook

log = logging.getLogger(__name__)
MODULE = "cairn.integrations.airflow.triggers"


class RefusedError(Exception):
    """The server refused the request for good (4xx other than 404)."""


class _CairnPollTrigger(BaseTrigger):
    def __init__(self, *, cairn_conn_id: str = CairnHook.default_conn_name, poll_interval: float = 60.0) -> None:
        super().__init__()
        self.cairn_conn_id = cairn_conn_id
        self.poll_interval = float(poll_interval)

    def _kwargs(self) -> dict[str, Any]:
        return {"cairn_conn_id": self.cairn_conn_id, "poll_interval": self.poll_interval}

    async def check(self, http: httpx.AsyncClient) -> _checks.Check:
        raise NotImplementedError

    async def run(self) -> AsyncIterator[TriggerEvent]:
        target = await CairnHook(self.cairn_conn_id).aget_target()
        async with httpx.AsyncClient(base_url=target.url, headers=target.headers(), timeout=30.0) as http:
            while True:
                event = await self._poll_once(http)
                if event is not None:
                    yield TriggerEvent(event)
                    return
                await asyncio.sleep(self.poll_interval)

    async def _poll_once(self, http: httpx.AsyncClient) -> dict[str, Any] | None:
        try:
            check = await self.check(http)
        except RefusedError as exc:
            return {"status": "error", "message": str(exc)}
        except (httpx.TransportError, TransientError) as exc:
            log.warning("cairn: polling %s failed, trying again in %ss: %s", type(self).__name__,
                        self.poll_interval, exc)
            return None
        if check.failure is not None:
            return {"status": "failed", "message": check.failure}
        if check.done:
            return {"status": "done", "payload": check.payload}
        return None


class TransientError(Exception):
    """A 5xx or 429 answer: worth asking again."""


async def get_json(http: httpx.AsyncClient, path: str) -> dict[str, Any] | None:
    """The JSON answer to GET ``path``; None for 404 (not there yet)."""
    response = await http.get(path)
    if response.status_code == 404:
        return None
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientError(f"{response.status_code} from {path}")
    if response.status_code >= 400:
        raise RefusedError(f"{response.status_code} from {path}: {error_message(response)}")
    data = response.json()
    assert isinstance(data, dict)
    return data


def error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text
    return str(body.get("message") or body) if isinstance(body, dict) else str(body)


class CairnPromotionRequestTrigger(_CairnPollTrigger):
    """Fires when promotion request ``request_id`` is decided (approved, rejected or cancelled)."""

    def __init__(self, *, request_id: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.request_id = int(request_id)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{MODULE}.CairnPromotionRequestTrigger", {**self._kwargs(), "request_id": self.request_id}

    async def check(self, http: httpx.AsyncClient) -> _checks.Check:
        data = await get_json(http, _checks.promotion_path(self.request_id))
        if data is None:
            raise RefusedError(f"promotion request {self.request_id} does not exist (or is not visible to this "
                               "connection's token and workspace)")
        return _checks.promotion_check(cairn.PromotionRequest.from_json(data))


class CairnModelVersionTrigger(_CairnPollTrigger):
    """Fires when ``model`` has a version newer than ``after_version`` or, with ``alias``, when the alias
    points at a version other than ``after_version``."""

    def __init__(self, *, model: str, alias: str | None = None, after_version: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model, self.alias, self.after_version = model, alias, after_version

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{MODULE}.CairnModelVersionTrigger", {**self._kwargs(), "model": self.model, "alias": self.alias,
                                                       "after_version": self.after_version}

    async def check(self, http: httpx.AsyncClient) -> _checks.Check:
        if self.alias:
            data = await get_json(http, _checks.alias_path(self.model, self.alias))
            version = None if data is None else cairn.ModelVersion.from_json(data)
            return _checks.alias_check(self.model, self.alias, version, self.after_version)
        data = await get_json(http, _checks.model_path(self.model))
        latest = None if data is None else cairn.RegisteredModel.from_json(data).latest_version
        return _checks.version_check(self.model, latest, self.after_version)
