"""/api/v1/auth, /api/v1/tokens, /api/v1/users, /api/v1/teams, /api/v1/admin/events: accounts."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from cairn.server.api import transaction as tx
from cairn.server.api.auth import LOCAL_ACTOR, SESSION_COOKIE, Access, authenticate, requires
from cairn.server.api.common import JSON, Route
from cairn.server.schemas import collab as schemas
from cairn.server.schemas.tracking import Empty, NamedCreate
from cairn.server.services import accounts, events, removal
from cairn.server.services.accounts import Identity
from cairn.server.services.errors import InvalidInputError, NotAuthenticatedError, PermissionDeniedError

router = APIRouter(prefix="/api/v1", tags=["accounts"], route_class=Route)


def _identity(access: Access) -> Identity:
    if access.identity is None:
        raise InvalidInputError("this server runs without authentication (local mode): there are no accounts "
                                "to sign in to or make tokens for; start it with --auth")
    return access.identity


# signing in ------------------------------------------------------------------------------------------------

@router.post("/auth/login", response_model=schemas.SignedIn)
async def login(body: schemas.Login, request: Request, access: Access = requires("public")) -> Response:
    """Sign in with a password: sets an HttpOnly session cookie and returns the CSRF token to send as
    X-CSRF-Token on every state-changing request."""
    settings = request.app.state.settings
    if not settings.auth:
        raise InvalidInputError("this server runs without authentication; there is nothing to sign in to")

    def check(session: Any) -> tuple[Any, str | None, dict[str, Any] | None]:
        outcome = accounts.verify_login(session, body.username, body.password, settings.login_policy,
                                        access.client_addr)
        if outcome.user is None:
            return outcome, None, None
        secret = accounts.create_session(session, outcome.user, settings.session_ttl_seconds, access.client_addr)
        return outcome, secret, schemas.user_out(outcome.user)

    outcome, secret, user = await run_in_threadpool(tx.write_instance, request, check)
    if secret is None:
        await asyncio.sleep(outcome.delay)
        raise NotAuthenticatedError("wrong user name or password")
    csrf = accounts.csrf_token(settings.secret_key, accounts.hash_secret(secret))
    response = JSON({"user": user, "csrf_token": csrf})
    response.set_cookie(SESSION_COOKIE, secret, max_age=settings.session_ttl_seconds, httponly=True,
                        samesite="lax", secure=settings.secure_cookies or request.url.scheme == "https", path="/")
    return response


@router.post("/auth/logout", response_model=Empty)
def logout(request: Request, access: Access = requires("account.self")) -> Response:
    tx.write_instance(request, accounts.end_session, _identity(access), access.client_addr)
    response = JSON({})
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/auth/session", response_model=schemas.SessionState)
def session_state(request: Request, access: Access = requires("public")) -> Response:
    """Who is signed in, if anyone: always 200, so a page can ask before showing a sign-in form."""
    settings = request.app.state.settings
    if not settings.auth:
        return JSON({"auth": False, "signed_in": True, "user": {"name": access.actor or LOCAL_ACTOR, "admin": True}})
    try:
        identity = tx.read_instance(request, lambda session: authenticate(request, session))
    except NotAuthenticatedError:
        return JSON({"auth": True, "signed_in": False})
    out: dict[str, Any] = {"auth": True, "signed_in": True, "user": {"name": identity.name, "admin": identity.is_admin},
                           "scope": identity.scope}
    if identity.session_id:
        out["csrf_token"] = accounts.csrf_token(settings.secret_key, identity.session_id)
    return JSON(out)


@router.get("/auth/me", response_model=schemas.Me)
def whoami(request: Request, access: Access = requires("account.self")) -> Response:
    if access.identity is None:
        return JSON({"user": {"name": access.actor, "admin": True}, "auth": False, "scope": "admin"})
    identity = access.identity
    user = tx.read_instance(request, accounts.get_user, identity.name)
    out = {"user": schemas.user_out(user), "auth": True, "scope": identity.scope, "method": identity.method}
    if identity.session_id:
        out["csrf_token"] = accounts.csrf_token(request.app.state.settings.secret_key, identity.session_id)
    return JSON(out)


@router.post("/auth/password", response_model=Empty)
async def change_password(body: schemas.PasswordChange, request: Request,
                          access: Access = requires("account.write")) -> Response:
    """Change your own password, proving the current one (throttled like sign-in). Not with a token: a
    leaked token must not become a way to guess, or take over, the password."""
    identity = _identity(access)
    if identity.method not in ("session", "password"):
        raise PermissionDeniedError("sign in with your password to change it (not with a token)")
    settings = request.app.state.settings
    outcome = await run_in_threadpool(tx.write_instance, request, accounts.change_own_password, identity,
                                      body.old_password, body.new_password, settings.login_policy, access.client_addr)
    if outcome.user is None:
        await asyncio.sleep(outcome.delay)
        raise PermissionDeniedError("the current password is wrong", field="old_password")
    return JSON({})


# tokens -------------------------------------------------------------------------------------------------

@router.post("/tokens", status_code=201, response_model=schemas.NewToken)
def create_token(body: schemas.TokenCreate, request: Request, access: Access = requires("account.write")) -> Response:
    """A new API token; its secret is in this answer and never again."""
    row, secret = tx.write_instance(request, accounts.create_token, _identity(access), body.name, body.scope,
                                    body.expires_in, user=body.user, client_addr=access.client_addr)
    return JSON(schemas.token_out(row, body.user or access.actor, secret), status_code=201)


@router.get("/tokens", response_model=schemas.TokenList)
def list_tokens(request: Request, user: str | None = None, access: Access = requires("account.self")) -> Response:
    rows = tx.read_instance(request, accounts.list_tokens, _identity(access), user)
    return JSON({"tokens": [schemas.token_out(row, name) for row, name in rows]})


@router.delete("/tokens/{token_id}", response_model=schemas.RevokedToken)
def revoke_token(token_id: str, request: Request, access: Access = requires("account.write")) -> Response:
    row = tx.write_instance(request, accounts.revoke_token, _identity(access), token_id, access.client_addr)
    return JSON({"id": row.id, "revoked_at": row.revoked_at})


# users and teams (server admins) -----------------------------------------------------------------------

@router.get("/users", response_model=schemas.UserList)
def list_users(request: Request, access: Access = requires("admin.read")) -> Response:
    return JSON({"users": [schemas.user_out(u) for u in tx.read_instance(request, accounts.list_users)]})


@router.post("/users", status_code=201, response_model=schemas.User)
def create_user(body: schemas.UserCreate, request: Request, access: Access = requires("admin.manage")) -> Response:
    row = tx.write_instance(request, accounts.create_user, access.actor, body.name, body.password, admin=body.admin,
                            service=body.service, display_name=body.display_name, email=body.email,
                            client_addr=access.client_addr)
    return JSON(schemas.user_out(row), status_code=201)


@router.get("/users/{name}", response_model=schemas.User)
def get_user(name: str, request: Request, access: Access = requires("admin.read")) -> Response:
    return JSON(schemas.user_out(tx.read_instance(request, accounts.get_user, name, "name")))


@router.patch("/users/{name}", response_model=schemas.User)
def update_user(name: str, body: schemas.UserUpdate, request: Request,
                access: Access = requires("admin.manage")) -> Response:
    row = tx.write_instance(request, accounts.update_user, access.actor, name, admin=body.admin, disabled=body.disabled,
                            password=body.password, display_name=body.display_name, email=body.email,
                            client_addr=access.client_addr)
    return JSON(schemas.user_out(row))


@router.delete("/users/{name}", response_model=Empty)
def delete_user(name: str, request: Request, access: Access = requires("admin.manage")) -> Response:
    """Delete a user or service account (PATCH ``disabled`` keeps it instead)."""
    tx.write_instance(request, removal.delete_user, access.actor, name, access.client_addr)
    return JSON({})


@router.post("/users/{name}/unlock", response_model=schemas.Unlocked)
def unlock_user(name: str, request: Request, access: Access = requires("admin.manage")) -> Response:
    """Lift the sign-in locks on a user (after failed sign-ins from some address) and reset their counts."""
    cleared = tx.write_instance(request, accounts.unlock_user, access.actor, name, access.client_addr)
    return JSON({"user": name, "cleared": cleared})


@router.get("/teams", response_model=schemas.TeamList)
def list_teams(request: Request, access: Access = requires("admin.read")) -> Response:
    return JSON({"teams": [schemas.team_out(t, m) for t, m in tx.read_instance(request, accounts.list_teams)]})


@router.post("/teams", status_code=201, response_model=schemas.Team)
def create_team(body: NamedCreate, request: Request, access: Access = requires("admin.manage")) -> Response:
    row = tx.write_instance(request, accounts.create_team, access.actor, body.name, body.description,
                            access.client_addr)
    return JSON(schemas.team_out(row, []), status_code=201)


@router.get("/teams/{team}", response_model=schemas.Team)
def get_team(team: str, request: Request, access: Access = requires("admin.read")) -> Response:
    def read(session: Any) -> Any:
        row = accounts.get_team(session, team)
        return schemas.team_out(row, accounts.team_members(session, row))
    return JSON(tx.read_instance(request, read))


@router.patch("/teams/{team}", response_model=schemas.Team)
def update_team(team: str, body: schemas.TeamUpdate, request: Request,
                access: Access = requires("admin.manage")) -> Response:
    def update(session: Any) -> Any:
        row = removal.update_team(session, access.actor, team, body.description, access.client_addr)
        return schemas.team_out(row, accounts.team_members(session, row))
    return JSON(tx.write_instance(request, update))


@router.delete("/teams/{team}", response_model=Empty)
def delete_team(team: str, request: Request, access: Access = requires("admin.manage")) -> Response:
    """Delete a team with its workspace memberships and grants; its users stay."""
    tx.write_instance(request, removal.delete_team, access.actor, team, access.client_addr)
    return JSON({})


@router.post("/teams/{team}/members", status_code=201, response_model=schemas.TeamMembership)
def add_team_member(team: str, body: schemas.TeamMember, request: Request,
                    access: Access = requires("admin.manage")) -> Response:
    tx.write_instance(request, accounts.add_team_member, access.actor, team, body.user, access.client_addr)
    return JSON({"team": team, "user": body.user}, status_code=201)


@router.delete("/teams/{team}/members/{user}", response_model=Empty)
def remove_team_member(team: str, user: str, request: Request, access: Access = requires("admin.manage")) -> Response:
    tx.write_instance(request, accounts.remove_team_member, access.actor, team, user, access.client_addr)
    return JSON({})


@router.get("/admin/events", response_model=schemas.EventPage)
def server_events(request: Request, since: str | None = None, until: str | None = None, actor: str | None = None,
                  action: str | None = Query(None, max_length=64), max_results: int = Query(100, ge=1, le=1000),
                  page_token: str | None = None, access: Access = requires("admin.read")) -> Response:
    """Server-wide events: sign-ins, users, teams, tokens."""
    query = event_query(since, until, actor, action, None, None, max_results, page_token)
    rows = tx.read_instance(request, events.list_events, None, query)
    return JSON(schemas.event_page_out(rows, max_results))


def event_query(since: str | None, until: str | None, actor: str | None, action: str | None,
                object_type: str | None, object_id: str | None, limit: int,
                page_token: str | None) -> events.EventQuery:
    if page_token is not None and not (page_token.isascii() and page_token.isdigit() and len(page_token) < 19):
        raise InvalidInputError("page_token is not one this server gave out", field="page_token")
    return events.EventQuery(events.parse_time(since, "since"), events.parse_time(until, "until"), actor, action,
                             object_type, object_id, int(page_token or 0), limit)
