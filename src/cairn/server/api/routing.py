"""An index over FastAPI's own routes, so that finding a request's route costs a dict lookup.

FastAPI's router tries its routes one by one (and, for included routers, builds each route's effective
context as it goes); with a few hundred routes (the native API plus the MLflow protocol under two prefixes)
that costs more than storing a logged point. The index is compiled from the app's route table on the first
request (and again when routes are added), and hands the request to the route's own ASGI app: the same
dependencies (``requires(action)``), body validation, response model and error handlers as the router would
use. So a route is declared once, on its router, and gets its fast path, its permission and its OpenAPI entry
from that one declaration. Anything the index cannot answer exactly as the router would goes to the router.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from cairn.server.api.auth import access_for
from cairn.server.api.common import JSON

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Entry:
    """One indexed route: ``app`` runs the route's whole FastAPI handler."""

    route: BaseRoute
    app: ASGIApp | None  # None: a route the index leaves to the router (a catch-all, a mount)


@dataclass
class Index:
    """Fixed paths in a dict by (method, path); the rest in the router's order as (methods, literal prefix,
    regex, entry), where ``methods`` None means any (a mount)."""

    fixed: dict[tuple[str, str], Entry] = field(default_factory=dict)
    ordered: list[tuple[set[str] | None, str, re.Pattern[str], Entry]] = field(default_factory=list)

    def find(self, method: str, path: str) -> tuple[Entry, dict[str, str]] | None:
        hit = self.fixed.get((method, path))
        if hit is not None:
            return hit, {}
        for methods, prefix, pattern, entry in self.ordered:
            if (methods is None or method in methods) and path.startswith(prefix):
                match = pattern.match(path)
                if match is not None:
                    return entry, match.groupdict()
        return None


def _pattern(path: str) -> tuple[str, re.Pattern[str]]:
    parts = _PARAM.split(path)
    regex = "".join(f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part) for i, part in enumerate(parts))
    return parts[0], re.compile(regex + r"\Z")


def compile_index(routes: list[BaseRoute]) -> Index:
    """Index ``routes`` so that ``find`` picks the route the router's first-match scan would pick: a fixed
    path goes in the dict unless an earlier route could also match it; every other route keeps its place."""
    index = Index()
    for context in iter_route_contexts(routes):
        path, methods = context.path, context.methods
        regex = getattr(context, "path_regex", None)
        if not isinstance(context.original_route, APIRoute) or not methods or path is None or ":" in path:
            if regex is not None:  # the router answers it; the index only keeps its place in line
                literal = (path or "").split("{")[0]
                index.ordered.append((methods or None, literal, regex, Entry(context.original_route, None)))
            continue
        entry = Entry(context.original_route, _lean_app(context) or context.app)
        prefix, pattern = _pattern(path)
        shadowed = any((m is None or m & methods) and r.match(path) for m, _, r, _ in index.ordered)
        if prefix == path and not shadowed:
            for method in methods:
                index.fixed.setdefault((method, path), entry)
        else:
            index.ordered.append((set(methods), prefix, pattern, entry))
    return index


def _lean_app(context: Any) -> ASGIApp | None:
    """For a route whose endpoint takes only the request, its Access and plain string path parameters (the
    batch log, every MLflow protocol route), an app that gives it exactly those without FastAPI's general
    dependency solver, which costs more than such a route's own work. None for any other route."""
    dependant, endpoint = context.dependant, context.endpoint
    if (dependant.query_params or dependant.header_params or dependant.cookie_params or dependant.body_params
            or len(dependant.dependencies) != 1 or not inspect.iscoroutinefunction(endpoint)
            or dependant.request_param_name is None or dependant.response_param_name is not None
            or dependant.background_tasks_param_name is not None):
        return None
    needs = dependant.dependencies[0]
    action = getattr(needs.call, "cairn_action", None)
    if action is None or needs.dependencies or needs.query_params or needs.header_params or needs.body_params:
        return None
    if any(f.field_info.annotation is not str or f.field_info.metadata for f in dependant.path_params):
        return None
    status, request_name, access_name = context.status_code or 200, dependant.request_param_name, needs.name
    path_names = [f.name for f in dependant.path_params]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        access = await access_for(request, action)
        params = scope["path_params"]
        result = await endpoint(**{request_name: request, access_name: access}, **{n: params[n] for n in path_names})
        if not isinstance(result, Response):
            result = (Response(result.model_dump_json(), status, media_type="application/json")
                      if isinstance(result, BaseModel) else JSON(result, status))
        await result(scope, receive, send)
    return app


class IndexedRouter:
    """Wraps the app's router: a request whose route is in the index goes straight to it; others to the router."""

    def __init__(self, router: ASGIApp, routes: list[BaseRoute]) -> None:
        self.router, self.routes = router, routes
        self.index: Index | None = None
        self._compiled_for = -1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.router(scope, receive, send)
            return
        if self._compiled_for != len(self.routes):  # routes added since: compile again
            self.index, self._compiled_for = compile_index(self.routes), len(self.routes)
        assert self.index is not None
        path = scope["path"]
        root = scope.get("root_path", "")
        hit = self.index.find(scope["method"], path[len(root):] if root and path.startswith(root) else path)
        app = hit[0].app if hit is not None else None
        if hit is None or app is None:
            await self.router(scope, receive, send)
            return
        entry, params = hit
        scope["path_params"] = {**scope.get("path_params", {}), **params}
        scope["route"] = entry.route
        scope["endpoint"] = getattr(entry.route, "endpoint", None)
        await app(scope, receive, send)
