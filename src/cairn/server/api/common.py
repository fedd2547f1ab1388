"""Plumbing shared by the routers: JSON bodies and error answers (transactions: ``transaction``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cairn.server.services.errors import (
    InvalidInputError,
    NotAuthenticatedError,
    ServiceError,
    TooManyAttemptsError,
)
from cairn.server.services.validation import MAX_JSON_DEPTH, check_depth

T = TypeVar("T")
MLFLOW_PATHS = ("/api/2.0/", "/ajax-api/2.0/", "/api/3.0/", "/ajax-api/3.0/")
log = logging.getLogger("cairn.server")
# the decorator arguments of a route answering a file's bytes (or a 307 to them), for its OpenAPI entry
BYTES: dict[str, Any] = {"response_class": Response, "responses": {200: {
    "content": {"application/octet-stream": {}}, "description": "the file's bytes"}}}


class JSON(JSONResponse):
    """JSON by orjson. A JSONResponse, so that FastAPI documents a route's response model under it."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:  # an integer past 64 bits that a client stored in a free-form JSON field
            return json.dumps(content, default=str).encode()


async def read_body(request: Request) -> bytes:
    """The whole request body. Its size is bounded before any of it is read, in front of every route
    (``cairn.server.api.limits.BodyLimits``): this only collects what is allowed through."""
    return b"".join([chunk async for chunk in request.stream()])


def _may_be_deep(body: bytes) -> bool:
    """Fewer brackets than the limit cannot nest past it: most bodies skip the walk."""
    return body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH


async def read_json(request: Request) -> Any:
    return _parse_json(await read_body(request))


def _parse_json(body: bytes) -> Any:
    try:
        value = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"the request body is not valid JSON: {exc}", field="body") from exc
    if _may_be_deep(body):
        check_depth(value)
    return value


class _BoundedRequest(Request):
    """A request whose JSON body is depth-checked as ``read_json`` checks it."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = json.loads(body)
            except RecursionError as exc:
                raise StarletteHTTPException(400, f"the request body nests arrays and objects more than "
                                                  f"{MAX_JSON_DEPTH} deep") from exc
            if _may_be_deep(body):
                try:
                    check_depth(self._json)
                except InvalidInputError as exc:
                    raise StarletteHTTPException(400, exc.message) from exc
        return self._json


class Route(APIRoute):
    """The route class of every native router: FastAPI parses its JSON body through ``_BoundedRequest``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            return await handler(_BoundedRequest(request.scope, request.receive))
        return bounded


def error_body(code: str, message: str, field: str | None = None, position: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error_code": code, "message": message}
    if field is not None:
        body["field"] = field
    if position is not None:
        body["position"] = position
    return body


def _status(request: Request, status: int) -> int:
    """MLflow answers conflicts (RESOURCE_ALREADY_EXISTS, INVALID_STATE) with 400; its clients expect that."""
    return 400 if status == 409 and request.url.path.startswith(MLFLOW_PATHS) else status


def _validation_body(exc: RequestValidationError) -> dict[str, Any]:
    """The first thing wrong with a request, named; a body that is not JSON or missing names the body."""
    first: dict[str, Any] = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    if first.get("type") == "json_invalid":
        detail = first.get("ctx", {}).get("error", "")
        return error_body("INVALID_PARAMETER_VALUE", f"the request body is not valid JSON: {detail}", "body")
    if first.get("type") == "missing" and tuple(first.get("loc", ())) == ("body",):
        return error_body("INVALID_PARAMETER_VALUE", "the request body is missing: send a JSON object", "body")
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    # a body declared as a dataclass (not a model) words an unknown key as a call's; say it as models do
    message = "Extra inputs are not permitted" if first.get("type") == "unexpected_keyword_argument" \
        else first.get("msg")
    return error_body("INVALID_PARAMETER_VALUE", f"{where}: {message}", where)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        headers = {}
        if isinstance(exc, NotAuthenticatedError):
            headers["WWW-Authenticate"] = 'Bearer realm="cairn"'  # not Basic: browsers would prompt and cache it
        if isinstance(exc, TooManyAttemptsError):
            headers["Retry-After"] = str(exc.retry_after)
        return JSON(error_body(exc.code, exc.message, exc.field, exc.position),
                    status_code=_status(request, exc.status), headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return JSON(error_body("ENDPOINT_NOT_FOUND", "no such endpoint"), status_code=404)
        if exc.status_code == 405:
            return JSON(error_body("ENDPOINT_NOT_FOUND", "this endpoint does not take this method"), status_code=405)
        return JSON(error_body("BAD_REQUEST", str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> Response:
        return JSON(_validation_body(exc), status_code=400)

    @app.exception_handler(IntegrityError)
    async def integrity_error(request: Request, exc: IntegrityError) -> Response:
        log.info("integrity error answered 409: %s", exc.orig)
        return JSON(error_body("RESOURCE_ALREADY_EXISTS", "a concurrent request wrote the same object; retry"),
                    status_code=_status(request, 409))

    @app.exception_handler(DataError)
    async def data_error(_request: Request, exc: DataError) -> Response:
        return JSON(error_body("INVALID_PARAMETER_VALUE", f"a value is not valid for the store: {exc.orig}"),
                    status_code=400)

    @app.exception_handler(OverflowError)
    async def overflow_error(_request: Request, exc: OverflowError) -> Response:
        return JSON(error_body("INVALID_PARAMETER_VALUE", f"a number is out of range for the store: {exc}"),
                    status_code=400)

    @app.exception_handler(OperationalError)
    async def operational_error(_request: Request, exc: OperationalError) -> Response:
        log.warning("store unavailable: %s", exc.orig)
        return JSON(error_body("TEMPORARILY_UNAVAILABLE", "the store is busy or unreachable; retry"),
                    status_code=503, headers={"Retry-After": "1"})
