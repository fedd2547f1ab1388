"""Deny by default: every route declares the action it needs, except a short public list."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute

from cairn.server.authz import ACTIONS, PUBLIC_PATHS


def declared_actions(route: APIRoute) -> list[str]:
    return [getattr(d.call, "cairn_action", None) for d in route.dependant.dependencies
            if getattr(d.call, "cairn_action", None)]


def test_every_route_declares_an_action(app: Any) -> None:
    undeclared = []
    for route in app.routes:
        if not isinstance(route, APIRoute) or route.path in PUBLIC_PATHS:
            continue
        actions = declared_actions(route)
        if len(actions) != 1 or actions[0] not in ACTIONS:
            undeclared.append(f"{sorted(route.methods)} {route.path}")
    assert undeclared == []


def test_public_list_is_short(app: Any) -> None:
    public = {r.path for r in app.routes if getattr(r, "path", None) in PUBLIC_PATHS}
    assert public <= {"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def test_openapi_document(api: Any) -> None:
    document = api.get("/openapi.json").json()
    assert "/api/v1/runs/{run_id}/batch" in document["paths"]
    assert api.get("/health").json()["status"] == "ok"
