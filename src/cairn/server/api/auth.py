"""Who is calling: credentials to an Identity, the Identity to a Guard in the workspace, and the
``requires(action)`` dependency every route declares. The rules themselves live in
``cairn.server.authz`` (the table) and the services (accounts, workspaces)."""

from __future__ import annotations

import base64
import binascii
import re
import time
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from cairn.server.authz import (
    PERMISSIONS,
    SCOPE_RANK,
    WORKSPACE_HEADER,
    Guard,
    at_least,
    unrestricted,
)
from cairn.server.services import accounts, workspaces
from cairn.server.services.accounts import Identity
from cairn.server.services.errors import NotAuthenticatedError, PermissionDeniedError

LOCAL_ACTOR = "anonymous"
MLFLOW_WORKSPACE_HEADER = "X-MLFLOW-WORKSPACE"
PREFIX_KEY = "cairn.workspace_prefix"
_PREFIX = re.compile(r"^/w/([a-z0-9][a-z0-9_-]{0,63})(/.*)$")
SESSION_COOKIE = "cairn_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Access:
    """What a route is handed: the action, the caller, and their standing in the workspace."""

    action: str
    workspace: str
    actor: str
    client_addr: str
    guard: Guard
    workspace_id: int | None = None
    identity: Identity | None = None


def client_addr(request: Request) -> str:
    return request.client.host if request.client else ""


def requires(action: str) -> Any:
    """A route dependency declaring ``action``; gives the route the caller's Access, or refuses."""
    if action not in PERMISSIONS:
        raise ValueError(f"unknown action {action!r}")

    async def access(request: Request) -> Access:
        return await access_for(request, action)

    access.cairn_action = action  # type: ignore[attr-defined]
    return Depends(access)


async def access_for(request: Request, action: str) -> Access:
    """The caller's Access for ``action``, or a refusal (the check behind ``requires``)."""
    if not request.app.state.settings.auth:
        return authorize(request, action)  # the local mode's check reads nothing: no worker thread
    return await run_in_threadpool(authorize, request, action)  # reads the store, may sleep


def authorize(request: Request, action: str) -> Access:
    permission = PERMISSIONS[action]
    settings = request.app.state.settings
    addr = client_addr(request)
    named = (request.path_params.get("workspace") or request.headers.get(MLFLOW_WORKSPACE_HEADER)
             or request.headers.get(WORKSPACE_HEADER) or request.scope.get(PREFIX_KEY))
    workspace = named or settings.default_workspace
    if not settings.auth:
        return Access(action, workspace, LOCAL_ACTOR, addr, unrestricted(LOCAL_ACTOR))
    if permission.public:
        return Access(action, workspace, "", addr, Guard("", None))
    try:
        return _authorize(request, action, workspace, addr, chosen=bool(named))
    except NotAuthenticatedError:
        time.sleep(getattr(request.state, "login_delay", 0.0))  # failed Basic sign-ins are slowed (worker thread)
        raise


def _authorize(request: Request, action: str, workspace: str, addr: str, *, chosen: bool) -> Access:
    permission, settings = PERMISSIONS[action], request.app.state.settings
    with request.app.state.db.session(write=False) as session:  # one read transaction for the whole check
        identity = authenticate(request, session)
        if not chosen:
            workspace = workspaces.default_workspace_of(session, identity, workspace)
        if permission.admin and not identity.is_admin:
            raise PermissionDeniedError(f"{identity.name} is not a server admin; {action} needs one")
        if SCOPE_RANK[identity.scope] < SCOPE_RANK[permission.scope]:
            raise PermissionDeniedError(
                f"this credential's scope is {identity.scope}; {action} needs {permission.scope}")
        if identity.method == "session" and request.method not in SAFE_METHODS:
            assert identity.session_id is not None
            accounts.check_csrf(settings.secret_key, identity.session_id, request.headers.get(CSRF_HEADER))
        if permission.role is None:
            return Access(action, workspace, identity.name, addr,
                          Guard(identity.name, None, admin=identity.is_admin), identity=identity)
        workspace_id, guard = workspaces.guard_for(session, identity, workspace)
    if not guard.has(permission.role):
        granted = [role for (kind, _), role in guard.grants.items() if kind == permission.resource]
        if not any(at_least(role, permission.role) for role in granted):
            raise PermissionDeniedError(
                f"{identity.name} is {guard.role} in workspace {workspace!r}; {action} needs {permission.role}")
        guard.pending, guard.resource_type = permission.role, permission.resource
    return Access(action, workspace, identity.name, addr, guard, workspace_id, identity)


def authenticate(request: Request, session: Any) -> Identity:
    """The caller's identity from a bearer token, HTTP Basic (password or token) or a session cookie."""
    cached = getattr(request.state, "identity", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    header = request.headers.get("authorization")
    db = request.app.state.db
    identity: Identity | None = None
    if header:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer":
            identity = _token(db, session, value.strip())
        elif scheme.lower() == "basic":
            identity = _basic(request, session, value.strip())
        else:
            raise NotAuthenticatedError("Authorization must be 'Bearer <token>' or HTTP Basic")
        if identity is None:
            raise NotAuthenticatedError("the credentials are invalid, expired or revoked")
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            identity = accounts.session_identity(session, cookie)
        if identity is None:
            raise NotAuthenticatedError("sign in, or send a token (Authorization: Bearer ...)")
    request.state.identity = identity
    return identity


def _token(db: Any, session: Any, token: str) -> Identity | None:
    identity, stale = accounts.token_identity(session, token)
    if identity is not None and stale and identity.token_id:
        with db.session(write=True) as writer:  # at most once a minute per token
            accounts.touch_token(writer, identity.token_id)
    return identity


def _basic(request: Request, session: Any, value: str) -> Identity | None:
    try:
        user, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise NotAuthenticatedError("the HTTP Basic credentials are not valid base64 of user:password") from None
    db = request.app.state.db
    if secret.startswith(accounts.TOKEN_PREFIX + "_"):
        identity = _token(db, session, secret)
        return identity if identity is not None and user in ("", "token", identity.name) else None
    identity = accounts.password_identity(session, user, secret)
    if identity is not None:
        return identity
    settings = request.app.state.settings
    with db.session(write=True) as writer:  # failures are counted even though the request fails
        outcome = accounts.verify_login(writer, user, secret, settings.login_policy, client_addr(request))
        if outcome.user is not None:
            accounts.remember_password(outcome.user, secret)
            return accounts.identity_of(outcome.user, "password")
    request.state.login_delay = outcome.delay
    return None


class HostCheck:
    """Before any route runs: refuse a Host header that is not ours (DNS rebinding), and a
    state-changing request that a browser sent from another site (CSRF through cached HTTP Basic
    credentials, or against an unauthenticated local server)."""

    def __init__(self, app: ASGIApp, settings: Any) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.settings.embedded:
            headers = {k: v.decode("latin-1") for k, v in scope["headers"] if k in _CHECKED}
            if not self.settings.host_allowed(headers.get(b"host", "")):
                await _refuse(send, 400, "INVALID_HOST", "the Host header is not one this server answers to; start "
                              "the server with --allowed-host <name> to allow it")
                return
            if scope["method"] not in SAFE_METHODS and self._cross_site(headers):
                await _refuse(send, 403, "PERMISSION_DENIED", "a state-changing request from another site is refused")
                return
        await self.app(scope, receive, send)

    def _cross_site(self, headers: dict[bytes, str]) -> bool:
        if headers.get(b"sec-fetch-site") == "cross-site":
            return True
        origin = headers.get(b"origin")
        if not origin:
            return False
        if origin == "null":
            return True
        return not self.settings.host_allowed(origin.split("://", 1)[-1].split("/", 1)[0])


_CHECKED = frozenset({b"host", b"origin", b"sec-fetch-site"})


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    body = orjson.dumps({"error_code": code, "message": message})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class WorkspacePrefix:
    """``/w/<workspace>/...``: a tracking URI can carry the workspace (for clients that cannot send a header).
    The prefix is taken off the path and remembered for ``requires``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            match = _PREFIX.match(scope["path"])
            if match is not None:
                scope = {**scope, "path": match.group(2), PREFIX_KEY: match.group(1),
                         "raw_path": match.group(2).encode()}
        await self.app(scope, receive, send)
