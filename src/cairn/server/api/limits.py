"""Bounds on what a client may send, enforced in front of every route before a body is buffered or parsed.

A request body is refused with 413 as soon as it is known to be too large: at once when its
Content-Length says so (nothing of it is read), or as soon as the bytes streamed so far pass the
limit. The limit depends on who is asking and where the body goes:

- ``max_unauthenticated_bytes`` (64 KiB): with ``--auth``, a caller whose credentials have not been
  checked yet. A larger body makes the credentials be checked first, here, before any of it is read;
  without valid credentials it is refused. So nobody can make the server buffer 400 MB and then 401.
- ``max_request_bytes`` (64 MiB): bodies that routes read whole (JSON, a batch of small files).
- ``max_upload_bytes`` (10 GiB): bodies that are streamed to disk (an artifact file, a model bundle).

The refusal is sent from here; the route then sees a disconnected client and whatever it answers is
dropped. JSON nesting depth is capped where bodies are parsed (``cairn.server.api.common``).

``SecurityHeaders`` adds the headers that keep pages from being framed, sniffed or leaking their URL.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cairn.server.api.auth import SESSION_COOKIE, authenticate
from cairn.server.asgi import HttpMiddleware, on_response_start
from cairn.server.services.errors import NotAuthenticatedError, ServiceError

# bodies streamed to disk by their route rather than read whole (paths after the /w/<workspace> prefix)
STREAMED = (
    ("PUT", re.compile(r"/api/v1/runs/[^/]+/artifacts\Z")),
    ("PUT", re.compile(r"/api/2\.0/mlflow-artifacts/artifacts/")),
    ("POST", re.compile(r"/api/v1/models/[^/]+/versions/import\Z")),
)
_MAX_DIGITS = 18  # a Content-Length longer than this is refused without int() of thousands of digits


class RefusedError(Exception):
    """The body was refused; the answer is already sent."""


class BodyLimits:
    """ASGI middleware: every request body bounded before anything reads it (see the module docstring)."""

    def __init__(self, app: ASGIApp, fastapi: Any) -> None:
        self.app, self.fastapi = app, fastapi

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})  # shared with the route's Request: a caller checked here stays checked
        body = _Body(self, scope, receive, send)
        try:
            await body.check_declared()
            await self.app(scope, body.receive, body.send)
        except Exception:
            if not body.answered:
                raise
        # the refusal was sent; what the route raised on seeing the client "disconnect" is moot

    def limit(self, scope: Scope) -> int:
        settings = self.fastapi.state.settings
        path = scope["path"]
        for method, pattern in STREAMED:
            if scope["method"] == method and pattern.match(path):
                return int(settings.max_upload_bytes)
        return int(settings.max_request_bytes)


class _Body:
    """One request's body as it streams through: counted, and refused past the caller's limit."""

    def __init__(self, owner: BodyLimits, scope: Scope, receive: Receive, send: Send) -> None:
        self.owner, self.scope, self._receive, self._send = owner, scope, receive, send
        self.settings = owner.fastapi.state.settings
        self.limit = owner.limit(scope)
        self.seen = 0
        self.checked = not self.settings.auth  # local mode: the only caller is the local user
        self.answered = self.started = False

    async def check_declared(self) -> None:
        declared = _header(self.scope, b"content-length")
        if declared is None:
            return
        if not declared.isdigit() or len(declared) > _MAX_DIGITS or int(declared) > self.limit:
            await self.refuse(f"the request body is {declared[:40]} bytes; the limit here is {self.limit}")
        elif int(declared) > self.settings.max_unauthenticated_bytes:
            await self.check_caller()

    async def check_caller(self) -> None:
        """Check the credentials now, before more of the body is read; refuse if they are missing or wrong."""
        if self.checked:
            return
        request = Request(self.scope)
        if getattr(request.state, "identity", None) is None:
            if not _has_credentials(request):
                await self.refuse(f"a request body over {self.settings.max_unauthenticated_bytes} bytes needs "
                                  "credentials (sign in, or send a token)")
            try:
                await run_in_threadpool(_authenticate, self.owner.fastapi, request)
            except NotAuthenticatedError as exc:
                await asyncio.sleep(getattr(request.state, "login_delay", 0.0))
                await self.answer(exc, {"WWW-Authenticate": 'Bearer realm="cairn"'})
            except ServiceError as exc:
                await self.answer(exc, {})
        self.checked = True

    async def receive(self) -> Message:
        if self.answered:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.limit:
                await self.refuse(f"the request body exceeds the limit here of {self.limit} bytes")
            if self.seen > self.settings.max_unauthenticated_bytes and not self.checked:
                await self.check_caller()
        return message

    async def send(self, message: Message) -> None:
        if self.answered:
            return  # the route's own answer, after the refusal: dropped
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)

    async def refuse(self, message: str) -> None:
        await self.answer(_Error(413, "REQUEST_TOO_LARGE", message, "body"), {"Connection": "close"})

    async def answer(self, exc: Any, headers: dict[str, str]) -> None:
        if not self.started:
            body = {"error_code": exc.code, "message": exc.message, **({"field": exc.field} if exc.field else {})}
            data = orjson.dumps(body)
            raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
            raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
            await self._send({"type": "http.response.start", "status": exc.status, "headers": raw})
            await self._send({"type": "http.response.body", "body": data})
        self.answered = True
        raise RefusedError


class _Error:
    def __init__(self, status: int, code: str, message: str, field: str | None) -> None:
        self.status, self.code, self.message, self.field = status, code, message, field


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1").strip())
    return None


def _has_credentials(request: Request) -> bool:
    return bool(request.headers.get("authorization") or request.cookies.get(SESSION_COOKIE))


def _authenticate(fastapi: Any, request: Request) -> None:
    with fastapi.state.db.session(write=False) as session:
        authenticate(request, session)


# security headers ----------------------------------------------------------------------------------------

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
       "frame-ancestors 'none'")
_ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
           (b"x-frame-options", b"DENY")]
_API_DOCS = ("/docs", "/redoc")  # FastAPI's API explorer pages load their scripts from a CDN


class SecurityHeaders(HttpMiddleware):
    """Every answer: nosniff, no Referer, no framing; every answer but the API explorer: a strict CSP."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        extra = list(_ALWAYS)
        if not scope["path"].startswith(_API_DOCS):
            extra.append((b"content-security-policy", CSP.encode()))

        def with_headers(message: Message) -> Message:
            return {**message, "headers": [*message.get("headers", []), *extra]}
        await self.app(scope, receive, on_response_start(send, with_headers))
