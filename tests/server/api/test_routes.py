"""Deny by default: every route declares the action it needs, except a short public list."""

from __future__ import annotations

import re
from typing import Any

from fastapi.responses import Response
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import compile_path

from cairn.server.api.routing import compile_index
from cairn.server.app import UI_PAGES
from cairn.server.authz import ACTIONS, PERMISSIONS, PUBLIC_PATHS
from tests.conftest import all_routes, declared_actions

PUBLIC_ACTION_PATHS = {"/ready", "/metrics", "/api/v1/auth/login", "/api/v1/auth/session", "/api/3.0/mlflow/server-info", "/ajax-api/3.0/mlflow/server-info",
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


def test_indexed_routes_are_the_routes_the_router_would_pick(app: Any, api: Any) -> None:
    """Requests find their route through an index compiled from the route table (cairn.server.api.routing).
    For every route, a sample path of it is indexed to the route FastAPI's first-match scan picks, declaring
    the same action; and the busiest routes get the lean handler and still answer as before."""
    index = compile_index(app.router.routes)
    routes = all_routes(app)
    checked = lean = 0
    for path, methods, dependant in routes:
        if dependant is None or ":" in path:
            continue
        sample = re.sub(r"\{[a-z_]+\}", "x1", path)
        for method in methods:
            first = next((p, d) for p, m, d in routes
                         if method in m and compile_path(p)[0].match(sample))
            hit = index.find(method, sample)
            assert hit is not None, f"{method} {path}"
            assert declared_actions(first[1]) == declared_actions(getattr(hit[0].route, "dependant", None))
            assert hit[0].route.path_format.endswith(path.split("}")[-1])  # type: ignore[attr-defined]
            checked += 1
            lean += getattr(hit[0].app, "__qualname__", "").startswith("_lean_app")
    assert checked > 200 and lean > 100
    run_id = api.post("/api/v1/runs", json={"experiment_name": "direct"}).json()["run_id"]
    answer = api.post(f"/api/v1/runs/{run_id}/batch", json={"metrics": [{"key": "x", "steps": [1], "values": [2]}]})
    assert answer.status_code == 200 and answer.json()["metrics"] == 1
    missing = api.post("/api/v1/runs/0123456789abcdef0123456789abcdef/batch", json={})
    assert missing.status_code == 404 and missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    bad = api.post(f"/api/v1/runs/{run_id}/batch", content=b"{", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["field"] == "body"
    conflict = api.post("/api/2.0/mlflow/experiments/create", json={"name": "direct"})
    assert conflict.status_code == 400 and conflict.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
    invalid = api.post("/api/v1/runs", json={"experiment_id": "not a number"})
    assert invalid.status_code == 400 and invalid.json()["field"] == "experiment_id"


# native routes that answer bytes (a file, a bundle) or nothing (204): they declare that, not a JSON shape
NOT_JSON = {"['GET'] /api/v1/runs/{run_id}/artifacts/content",
            "['GET'] /api/v1/models/{name}/versions/{version}/files/content",
            "['GET'] /api/v1/models/{name}/versions/{version}/export",
            "['DELETE'] /api/v1/runs/{run_id}/artifacts/uploads/{upload_id}"}


def test_native_routes_declare_response_models(app: Any) -> None:
    """/openapi.json states every JSON answer's shape: every native route declares a response model (not ``Any``
    nor a bare dict), except the few that answer no JSON at all, which declare their media type instead."""
    untyped, not_json = [], set()
    for c in iter_route_contexts(app.routes):
        if not (isinstance(c.original_route, APIRoute) and c.include_in_schema and c.path.startswith("/api/v1/")):
            continue
        label = f"{sorted(c.methods)} {c.path}"
        if c.response_class is Response:
            not_json.add(label)
        elif c.response_model in (None, Any, dict[str, Any]):
            untyped.append(label)
    assert untyped == []
    assert not_json == NOT_JSON
    stated = set()  # and the document says so: a model FastAPI does not render there would be lost
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            for code, answer in operation["responses"].items():
                schema = answer.get("content", {}).get("application/json", {}).get("schema")
                if path.startswith("/api/v1/") and code.startswith("2") and schema not in (None, {}, {"type": "string"}):
                    stated.add(f"{[method.upper()]} {path}")
    assert {f"{sorted(c.methods)} {c.path}" for c in iter_route_contexts(app.routes)
            if isinstance(c.original_route, APIRoute) and c.include_in_schema
            and c.path.startswith("/api/v1/")} - stated == NOT_JSON
