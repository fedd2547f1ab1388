"""Deny by default: every route declares the action it needs, except a short public list."""

from __future__ import annotations

from typing import Any

from cairn.server.app import UI_PAGES
from cairn.server.authz import ACTIONS, PERMISSIONS, PUBLIC_PATHS
from tests.conftest import all_routes, declared_actions

PUBLIC_ACTION_PATHS = {"/api/v1/auth/login", "/api/v1/auth/session", "/api/3.0/mlflow/server-info", "/ajax-api/3.0/mlflow/server-info",
                       *UI_PAGES}  # the web UI's pages: index.html, which holds no data


def test_every_route_declares_an_action(app: Any) -> None:
    routes = all_routes(app)
    assert len(routes) > 80  # included routers are walked too, not just the top level
    undeclared = []
    for path, methods, dependant in routes:
        if path in PUBLIC_PATHS:
            continue
        actions = declared_actions(dependant)
        if len(actions) != 1 or actions[0] not in ACTIONS:
            undeclared.append(f"{sorted(methods)} {path}")
    assert undeclared == []


def test_public_list_is_short(app: Any) -> None:
    public = {path for path, _, _ in all_routes(app) if path in PUBLIC_PATHS}
    assert public <= {"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/assets"}
    public_actions = {path for path, _, dependant in all_routes(app)
                      if any(PERMISSIONS[a].public for a in declared_actions(dependant))}
    assert public_actions == PUBLIC_ACTION_PATHS


def test_nothing_can_edit_or_delete_events(api: Any) -> None:
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        assert api.request(method, "/api/v1/events").status_code == 405
        assert api.request(method, "/api/v1/events/1").status_code == 404


def test_openapi_document(api: Any) -> None:
    document = api.get("/openapi.json").json()
    assert "/api/v1/runs/{run_id}/batch" in document["paths"]
    assert api.get("/health").json()["status"] == "ok"
