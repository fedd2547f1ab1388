"""Accounts: users and service accounts, passwords, API tokens, browser sessions, login throttling.

Passwords are hashed with argon2id. Tokens and session cookies are random secrets of which only a
SHA-256 hash is stored (they are long and random, so a slow hash adds nothing); they are compared in
constant time. Every request looks its credential up in the store, so a revoked token, an ended
session or a disabled user stops working on the very next request in every server process.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from cairn.server.authz import SCOPE_RANK, SCOPES
from cairn.server.db.engine import TTLCache
from cairn.server.db.models import LoginThrottleRow, SessionRow, TeamMemberRow, TeamRow, TokenRow, UserRow
from cairn.server.db.upsert import insert_ignore
from cairn.server.services import events
from cairn.server.services.errors import (
    ConflictError,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    PermissionDeniedError,
    TooManyAttemptsError,
)
from cairn.server.services.validation import MAX_KEY, check_text

USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
TOKEN_PREFIX = "cairn"  # noqa: S105 (the fixed start of every token, not a secret)
_TOKEN = re.compile(r"^cairn_([0-9a-f]{16})_([A-Za-z0-9_-]{20,128})$")
_hasher = PasswordHasher()
_dummy_hash: list[str] = []
_verified = TTLCache(60.0)  # (password hash, sha256 of the password) recently verified: for HTTP Basic
_dummy_lock = threading.Lock()


@dataclass(frozen=True)
class Identity:
    """A signed-in caller: who, what their credential may do, and how they proved it."""

    user_id: int
    name: str
    is_admin: bool
    scope: str  # read | write | admin
    method: str  # token | session | password | local
    session_id: str | None = None
    token_id: str | None = None

    @classmethod
    def local_admin(cls, actor: str, user_id: int = 0) -> Identity:
        """The operator at the server's own console (the ``cairn`` CLI on the store): an admin by position."""
        return cls(user_id, actor, is_admin=True, scope="admin", method="local")


@dataclass(frozen=True)
class LoginPolicy:
    """Failed sign-ins are counted per account, per (account, source address) and per address.

    Only the pair and the address are ever locked: an attacker's wrong passwords lock the account for
    the attacker's address, never for the user signing in from elsewhere. Failures on the account from
    everywhere slow every further failure (``delay_after``), which bounds guessing from many addresses.
    """

    delay_after: int = 5  # failures of the account in the window after which failed answers are slowed
    block_after: int = 10  # failures of one (account, address) pair after which the pair is refused
    addr_block_after: int = 50  # failures from one address, over all accounts, after which it is refused
    window_seconds: int = 900
    block_seconds: int = 900
    max_delay: float = 4.0


@dataclass
class LoginOutcome:
    user: UserRow | None
    delay: float = 0.0


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def hash_secret(secret: str) -> str:
    """How a session or token secret is kept (and looked up)."""
    return _sha256(secret)


# users ---------------------------------------------------------------------------------------------------

def check_user_name(name: Any, field: str = "name") -> str:
    if not isinstance(name, str) or not USER_NAME.match(name):
        raise InvalidInputError(
            f"{field}: a user name is 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit",
            field=field)
    return name


def check_password(name: str, password: Any, field: str = "password") -> str:
    """The password rules; the message names the rule that failed."""
    if not isinstance(password, str):
        raise InvalidInputError(f"{field} must be a string", field=field)
    if len(password) < MIN_PASSWORD:
        raise InvalidInputError(f"{field} is too short: at least {MIN_PASSWORD} characters", field=field)
    if len(password) > MAX_PASSWORD:
        raise InvalidInputError(f"{field} is too long: at most {MAX_PASSWORD} characters", field=field)
    if password.strip().lower() == name.lower():
        raise InvalidInputError(f"{field} must not be the same as the user name", field=field)
    if len(set(password)) < 4:
        raise InvalidInputError(f"{field} is too simple: use at least 4 different characters", field=field)
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def get_user(session: Session, name: Any, field: str = "user") -> UserRow:
    row = session.scalar(select(UserRow).where(UserRow.name == name)) if isinstance(name, str) else None
    if row is None:
        raise NotFoundError(f"user {name!r} does not exist", field=field)
    return row


def create_user(session: Session, actor: str, name: str, password: str | None, *, admin: bool = False,
                service: bool = False, display_name: str = "", email: str = "", client_addr: str = "") -> UserRow:
    check_user_name(name)
    if service and password:
        raise InvalidInputError("a service account has no password; give it tokens", field="password")
    if not service:
        if password is None:
            raise InvalidInputError("password is required for a user (or make a service account)", field="password")
        check_password(name, password)
    if session.scalar(select(UserRow.id).where(UserRow.name == name)) is not None:
        raise ConflictError(f"user {name!r} already exists", field="name")
    now = events.now_ms()
    row = UserRow(name=name, display_name=check_text("display_name", display_name, MAX_KEY),
                  email=check_text("email", email, MAX_KEY), is_admin=admin, is_service=service, disabled=False,
                  password_hash=hash_password(password) if password else None, created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    events.record_global(session, actor, client_addr, "user.create", "user", name,
                         after={"admin": admin, "service": service})
    return row


def list_users(session: Session) -> list[UserRow]:
    return list(session.scalars(select(UserRow).order_by(UserRow.name)))


def update_user(session: Session, actor: str, name: str, *, admin: bool | None = None,
                disabled: bool | None = None, password: str | None = None, display_name: str | None = None,
                email: str | None = None, client_addr: str = "") -> UserRow:
    row = get_user(session, name, "name")
    before = {"admin": row.is_admin, "disabled": row.disabled}
    if (admin is False or disabled) and row.is_admin and not row.disabled:
        others = session.scalar(select(UserRow.id).where(UserRow.is_admin, ~UserRow.disabled, UserRow.id != row.id)
                                .limit(1))
        if others is None:
            raise InvalidStateError(f"{name} is the last active admin; make another admin first", field="name")
    if admin is not None:
        row.is_admin = admin
    if disabled is not None:
        row.disabled = disabled
        if disabled:
            session.execute(delete(SessionRow).where(SessionRow.user_id == row.id))
    if password is not None:
        if row.is_service:
            raise InvalidInputError("a service account has no password", field="password")
        row.password_hash = hash_password(check_password(name, password))
        session.execute(delete(SessionRow).where(SessionRow.user_id == row.id))
    if display_name is not None:
        row.display_name = check_text("display_name", display_name, MAX_KEY)
    if email is not None:
        row.email = check_text("email", email, MAX_KEY)
    row.updated_at = events.now_ms()
    events.record_global(session, actor, client_addr, "user.update", "user", name, before=before,
                         after={"admin": row.is_admin, "disabled": row.disabled,
                                "password_changed": password is not None})
    return row


def change_own_password(session: Session, identity: Identity, old: str, new: str, policy: LoginPolicy,
                        client_addr: str = "") -> LoginOutcome:
    """Check the current password as a sign-in would (throttled, failures counted), then set the new
    one. A failed check is returned, not raised, so that the caller commits the failure count."""
    check_password(identity.name, new, "new_password")
    outcome = verify_login(session, identity.name, old, policy, client_addr)
    if outcome.user is not None:
        update_user(session, identity.name, identity.name, password=new, client_addr=client_addr)
    return outcome


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _dummy() -> str:
    with _dummy_lock:
        if not _dummy_hash:
            _dummy_hash.append(_hasher.hash(secrets.token_urlsafe(16)))
        return _dummy_hash[0]


# password login, with throttling ---------------------------------------------------------------------

def _account_key(name: str) -> str:
    return f"user:{_sha256(name.lower())}"


def _pair_prefix(name: str) -> str:
    return f"pair:{_sha256(name.lower())[:32]}:"


def _throttle_keys(name: str, client_addr: str) -> dict[str, str]:
    """The counters one sign-in touches, by kind: the account, the (account, address) pair, the address."""
    return {"account": _account_key(name), "pair": _pair_prefix(name) + _sha256(client_addr)[:32],
            "addr": f"addr:{client_addr[:64]}"}


def check_throttle(session: Session, name: str, client_addr: str) -> None:
    now = events.now_ms()
    keys = _throttle_keys(name, client_addr)
    blocked = session.scalars(select(LoginThrottleRow.blocked_until).where(
        LoginThrottleRow.key.in_([keys["pair"], keys["addr"]]), LoginThrottleRow.blocked_until > now))
    until = max(blocked, default=0)
    if until:
        wait = max(1, (until - now + 999) // 1000)
        raise TooManyAttemptsError(f"too many failed sign-ins from this address; try again in {wait} s",
                                   retry_after=wait)


def unlock_user(session: Session, actor: str, name: str, client_addr: str = "") -> int:
    """Lift every lock and count of failed sign-ins on ``name`` (an admin's call); returns how many
    counters were cleared."""
    get_user(session, name, "name")
    cleared = session.execute(delete(LoginThrottleRow).where(
        (LoginThrottleRow.key == _account_key(name))
        | LoginThrottleRow.key.startswith(_pair_prefix(name), autoescape=True)))
    count = int(getattr(cleared, "rowcount", 0) or 0)
    events.record_global(session, actor, client_addr, "user.unlock", "user", name, after={"cleared": count})
    return count


def verify_login(session: Session, name: str, password: str, policy: LoginPolicy, client_addr: str) -> LoginOutcome:
    """Check a password. Unknown users, disabled users and wrong passwords cost the same and look the
    same to the caller; failures are counted per account and per address (the caller commits them)."""
    check_throttle(session, name, client_addr)
    row = session.scalar(select(UserRow).where(UserRow.name == name)) if isinstance(name, str) else None
    stored = row.password_hash if row is not None and not row.disabled else None
    ok = _verify(stored or _dummy(), password or "")  # the same argon2 work whether or not the user exists
    if ok and stored and row is not None:
        pair = _throttle_keys(name, client_addr)["pair"]
        session.execute(delete(LoginThrottleRow).where(LoginThrottleRow.key == pair))
        events.record_global(session, name, client_addr, "login.success", "user", name)
        return LoginOutcome(row)
    failures = _count_failure(session, name, client_addr, policy)
    events.record_global(session, name[:MAX_KEY] if isinstance(name, str) else "?", client_addr, "login.failure",
                         "user", str(name)[:MAX_KEY], after={"failures": failures})
    delay = 0.0
    if failures >= policy.delay_after:
        delay = min(policy.max_delay, 0.25 * 2 ** (failures - policy.delay_after))
    return LoginOutcome(None, delay)


def _count_failure(session: Session, name: str, client_addr: str, policy: LoginPolicy) -> int:
    """Count one failure on each counter; returns the account's count (what slows the answer)."""
    now = events.now_ms()
    window_start = now - policy.window_seconds * 1000
    block_at = {"account": None, "pair": policy.block_after, "addr": policy.addr_block_after}
    counts: dict[str, int] = {}
    for kind, key in sorted(_throttle_keys(str(name), client_addr).items(), key=lambda item: item[1]):
        insert_ignore(session, LoginThrottleRow, [{"key": key, "failures": 0, "first_failure_at": now,
                                                    "blocked_until": 0}], ["key"])
        row = session.get(LoginThrottleRow, key, with_for_update=True)
        assert row is not None
        if row.first_failure_at < window_start:
            row.failures, row.first_failure_at = 0, now
        row.failures += 1
        limit = block_at[kind]
        if limit is not None and row.failures >= limit:
            row.blocked_until = now + policy.block_seconds * 1000
        counts[kind] = row.failures
    return counts["account"]


def password_identity(session: Session, name: str, password: str) -> Identity | None:
    """HTTP Basic with a password: a recent success for the same stored hash is remembered for a minute,
    so MLflow clients that send it on every request do not pay for argon2 each time."""
    row = session.scalar(select(UserRow).where(UserRow.name == name))
    if row is None or row.password_hash is None or row.disabled:
        return None
    key = (row.password_hash, _sha256(password))
    if _verified.get(key) is None:
        return None
    return identity_of(row, "password")


def remember_password(row: UserRow, password: str) -> None:
    if row.password_hash:
        _verified.put((row.password_hash, _sha256(password)), value=True)


def identity_of(row: UserRow, method: str, session_id: str | None = None) -> Identity:
    """A person signed in with their password: everything their roles allow (admin scope for admins)."""
    return Identity(row.id, row.name, row.is_admin, "admin" if row.is_admin else "write", method,
                    session_id=session_id)


# tokens -------------------------------------------------------------------------------------------------

def check_scope(scope: Any) -> str:
    if scope not in SCOPES:
        raise InvalidInputError(f"scope {scope!r} is not one of {', '.join(SCOPES)}", field="scope")
    return str(scope)


def create_token(session: Session, identity: Identity, name: str, scope: str, expires_in: int | None, *,
                 user: str | None = None, client_addr: str = "") -> tuple[TokenRow, str]:
    """A new token for the caller (or, for an admin, for ``user``); the secret is returned once."""
    check_text("name", name, MAX_KEY)
    if not name.strip():
        raise InvalidInputError("name must not be empty", field="name")
    check_scope(scope)
    if SCOPE_RANK[scope] > SCOPE_RANK[identity.scope]:
        raise PermissionDeniedError(f"a {identity.scope} credential cannot make a {scope} token", field="scope")
    owner = session.get(UserRow, identity.user_id)
    if user is not None and user != identity.name:
        if not identity.is_admin:
            raise PermissionDeniedError("only an admin can make tokens for another user", field="user")
        owner = get_user(session, user)
    if owner is None or owner.disabled:
        raise InvalidInputError("the token's user is disabled", field="user")
    if scope == "admin" and not owner.is_admin:
        raise InvalidInputError(f"{owner.name} is not an admin; an admin token needs one", field="scope")
    if expires_in is not None and not (60 <= expires_in <= 10 * 366 * 86400):
        raise InvalidInputError("expires_in must be between 60 seconds and 10 years, or null for never",
                                field="expires_in")
    now = events.now_ms()
    expires_at = now + expires_in * 1000 if expires_in else None
    if identity.token_id is not None:  # made with a token: it cannot outlive that token
        parent = session.get(TokenRow, identity.token_id)
        if parent is not None and parent.expires_at is not None:
            expires_at = min(expires_at or parent.expires_at, parent.expires_at)
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    row = TokenRow(id=token_id, user_id=owner.id, name=name, scope=scope, secret_hash=_sha256(secret),
                   created_at=now, expires_at=expires_at)
    session.add(row)
    events.record_global(session, identity.name, client_addr, "token.create", "token", token_id,
                         after={"user": owner.name, "name": name, "scope": scope, "expires_at": row.expires_at})
    return row, f"{TOKEN_PREFIX}_{token_id}_{secret}"


def list_tokens(session: Session, identity: Identity, user: str | None = None) -> list[tuple[TokenRow, str]]:
    query = select(TokenRow, UserRow.name).join(UserRow, UserRow.id == TokenRow.user_id)
    if user is not None and user != identity.name:
        if not identity.is_admin:
            raise PermissionDeniedError("only an admin can list another user's tokens", field="user")
        query = query.where(UserRow.id == get_user(session, user).id)
    else:
        query = query.where(TokenRow.user_id == identity.user_id)
    return [(row, name) for row, name in session.execute(query.order_by(TokenRow.created_at))]


def revoke_token(session: Session, identity: Identity, token_id: str, client_addr: str = "") -> TokenRow:
    row = session.get(TokenRow, token_id) if isinstance(token_id, str) else None
    if row is None or (row.user_id != identity.user_id and not identity.is_admin):
        raise NotFoundError(f"token {token_id!r} does not exist", field="token_id")
    if row.revoked_at is None:
        row.revoked_at = events.now_ms()
        events.record_global(session, identity.name, client_addr, "token.revoke", "token", token_id)
    return row


_TOKEN_WITH_USER = select(TokenRow, UserRow).join(UserRow, UserRow.id == TokenRow.user_id).where(
    TokenRow.id == bindparam("token_id"))


def token_identity(session: Session, token: str) -> tuple[Identity | None, bool]:
    """The token's identity (None if unknown, wrong, revoked, expired or its user disabled), and
    whether its last use was recorded more than a minute ago."""
    match = _TOKEN.match(token)
    if match is None:
        return None, False
    found = session.execute(_TOKEN_WITH_USER, {"token_id": match.group(1)}).first()
    if found is None:
        _sha256(match.group(2))  # the same work as a found token
        return None, False
    row, user = found
    now = events.now_ms()
    if not hmac.compare_digest(row.secret_hash, _sha256(match.group(2))):
        return None, False
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now) or user.disabled:
        return None, False
    scope = row.scope if user.is_admin or row.scope != "admin" else "write"
    stale = row.last_used_at is None or row.last_used_at < now - 60_000
    return Identity(user.id, user.name, user.is_admin, scope, "token", token_id=row.id), stale


def touch_token(session: Session, token_id: str) -> None:
    """Record use at most once a minute, so reads do not all become writes."""
    now = events.now_ms()
    session.execute(update(TokenRow).where(TokenRow.id == token_id).where(
        (TokenRow.last_used_at.is_(None)) | (TokenRow.last_used_at < now - 60_000)).values(last_used_at=now))


# sessions -----------------------------------------------------------------------------------------------

def create_session(session: Session, user: UserRow, ttl_seconds: int, client_addr: str) -> str:
    secret = secrets.token_urlsafe(32)
    now = events.now_ms()
    session.execute(delete(SessionRow).where(SessionRow.expires_at < now))
    session.add(SessionRow(id=_sha256(secret), user_id=user.id, created_at=now, expires_at=now + ttl_seconds * 1000,
                           client_addr=client_addr[:64]))
    return secret


def session_identity(session: Session, cookie: str) -> Identity | None:
    if not cookie or len(cookie) > 128:
        return None
    session_id = _sha256(cookie)
    found = session.execute(select(SessionRow, UserRow).join(UserRow, UserRow.id == SessionRow.user_id).where(
        SessionRow.id == session_id)).first()
    if found is None:
        return None
    row, user = found
    if row.expires_at <= events.now_ms() or user.disabled:
        return None
    return identity_of(user, "session", session_id=session_id)


def end_session(session: Session, identity: Identity, client_addr: str = "") -> None:
    if identity.session_id:
        session.execute(delete(SessionRow).where(SessionRow.id == identity.session_id))
        events.record_global(session, identity.name, client_addr, "logout", "user", identity.name)


def csrf_token(secret_key: str, session_id: str) -> str:
    return hmac.new(secret_key.encode(), f"csrf:{session_id}".encode(), hashlib.sha256).hexdigest()


def check_csrf(secret_key: str, session_id: str, presented: str | None) -> None:
    if not presented or not hmac.compare_digest(csrf_token(secret_key, session_id), presented):
        raise PermissionDeniedError("a state-changing request from the browser needs the X-CSRF-Token header "
                                    "sent by sign-in", field="X-CSRF-Token")


# teams --------------------------------------------------------------------------------------------------

def get_team(session: Session, name: Any, field: str = "team") -> TeamRow:
    row = session.scalar(select(TeamRow).where(TeamRow.name == name)) if isinstance(name, str) else None
    if row is None:
        raise NotFoundError(f"team {name!r} does not exist", field=field)
    return row


def create_team(session: Session, actor: str, name: str, description: str = "", client_addr: str = "") -> TeamRow:
    check_user_name(name, "name")
    if session.scalar(select(TeamRow.id).where(TeamRow.name == name)) is not None:
        raise ConflictError(f"team {name!r} already exists", field="name")
    row = TeamRow(name=name, description=check_text("description", description, 4000), created_at=events.now_ms())
    session.add(row)
    session.flush()
    events.record_global(session, actor, client_addr, "team.create", "team", name)
    return row


def list_teams(session: Session) -> list[tuple[TeamRow, list[str]]]:
    teams = list(session.scalars(select(TeamRow).order_by(TeamRow.name)))
    members: dict[int, list[str]] = {t.id: [] for t in teams}
    for team_id, user in session.execute(select(TeamMemberRow.team_id, UserRow.name).join(
            UserRow, UserRow.id == TeamMemberRow.user_id).order_by(UserRow.name)):
        members[team_id].append(user)
    return [(t, members[t.id]) for t in teams]


def team_members(session: Session, team: TeamRow) -> list[str]:
    return list(session.scalars(select(UserRow.name).join(TeamMemberRow, TeamMemberRow.user_id == UserRow.id).where(
        TeamMemberRow.team_id == team.id).order_by(UserRow.name)))


def add_team_member(session: Session, actor: str, team: str, user: str, client_addr: str = "") -> None:
    team_row, user_row = get_team(session, team), get_user(session, user)
    if session.get(TeamMemberRow, (team_row.id, user_row.id)) is not None:
        raise ConflictError(f"{user} is already in team {team}", field="user")
    session.add(TeamMemberRow(team_id=team_row.id, user_id=user_row.id))
    events.record_global(session, actor, client_addr, "team.add_member", "team", team, after={"user": user})


def remove_team_member(session: Session, actor: str, team: str, user: str, client_addr: str = "") -> None:
    team_row, user_row = get_team(session, team), get_user(session, user)
    row = session.get(TeamMemberRow, (team_row.id, user_row.id))
    if row is None:
        raise NotFoundError(f"{user} is not in team {team}", field="user")
    session.delete(row)
    events.record_global(session, actor, client_addr, "team.remove_member", "team", team, before={"user": user})
