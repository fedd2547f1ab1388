"""Direct dispatch for the busiest routes, ahead of FastAPI's router.

FastAPI matches a request against its routes one by one and then solves the route's dependencies;
with a few hundred routes (the native API plus the MLflow protocol under two prefixes) that costs
about as much as storing a logged point. Routes whose endpoint is ``fn(request, access, **path_params)``
(the batch log of the native API, and every MLflow protocol route) are also registered here and
answered straight from a table: a dict lookup for fixed paths, a few patterns for paths with ids.

Nothing about the answer changes. The route stays declared on its router, so the OpenAPI document
and the route-permission inventory still see it; the caller is authorized by the same function as
``requires(action)``; errors go through the handlers the app installed (``install_error_handlers``),
and anything they do not handle reaches the server's error middleware as before.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from cairn.server.api.auth import Access, access_for
from cairn.server.api.common import JSON

Handler = Callable[..., Awaitable[Any]]
_PARAM = re.compile(r"\{([a-z_]+)\}")


@dataclass
class Table:
    """Direct routes by method: fixed paths in a dict, paths with ``{name}`` segments as patterns."""

    fixed: dict[tuple[str, str], tuple[str, Handler]] = field(default_factory=dict)
    patterns: list[tuple[str, re.Pattern[str], str, Handler]] = field(default_factory=list)
    paths: list[tuple[str, str]] = field(default_factory=list)  # (method, path template), for tests

    def add(self, method: str, path: str, action: str, handler: Handler) -> None:
        self.paths.append((method, path))
        if _PARAM.search(path) is None:
            self.fixed[(method, path)] = (action, handler)
            return
        regex = "".join(f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part)
                        for i, part in enumerate(_PARAM.split(path)))
        self.patterns.append((method, re.compile(regex + r"\Z"), action, handler))

    def find(self, method: str, path: str) -> tuple[str, Handler, dict[str, str]] | None:
        hit = self.fixed.get((method, path))
        if hit is not None:
            return hit[0], hit[1], {}
        for wanted, pattern, action, handler in self.patterns:
            if wanted == method:
                match = pattern.match(path)
                if match is not None:
                    return action, handler, match.groupdict()
        return None


ROUTES = Table()


def route(method: str, path: str, action: str) -> Callable[[Handler], Handler]:
    """Also answer ``method path`` directly with ``handler(request, access, **path_params)``."""

    def register(handler: Handler) -> Handler:
        ROUTES.add(method, path, action, handler)
        return handler
    return register


class DirectRoutes:
    """The ASGI middleware that answers the direct routes; every other request goes on to FastAPI."""

    def __init__(self, app: ASGIApp, fastapi: FastAPI, table: Table = ROUTES) -> None:
        self.app, self.fastapi, self.table = app, fastapi, table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        hit = self.table.find(scope["method"], path)
        if hit is None:
            await self.app(scope, receive, send)
            return
        action, handler, params = hit
        scope["path_params"] = params
        request = Request(scope, receive)
        try:
            access: Access = await access_for(request, action)
            result = await handler(request, access, **params)
            response = result if isinstance(result, Response) else JSON(result)
        except Exception as exc:
            answer = self._handler_for(exc)
            if answer is None:
                raise
            answered = answer(request, exc)
            response = await answered if inspect.isawaitable(answered) else answered
        await response(scope, receive, send)

    def _handler_for(self, exc: Exception) -> Callable[[Request, Any], Response | Awaitable[Response]] | None:
        handlers = self.fastapi.exception_handlers
        for kind in type(exc).__mro__:
            if kind in handlers:
                return handlers[kind]
        return None
