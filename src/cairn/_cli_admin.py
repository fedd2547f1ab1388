"""``cairn admin``: users, tokens, workspaces and members, straight in the store.

It works on the store directly (not through a server), so the first admin of a new server can be made.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import sys
from typing import Any

import click

from cairn._cli_output import _emit_json, _fail, _table, _when


@click.group()
@click.option("--store-uri", envvar="CAIRN_STORE_URI", help="The server's store (default: the embedded SQLite).")
@click.pass_context
def admin(ctx: click.Context, store_uri: str | None) -> None:
    """Users, tokens, workspaces and members, straight in the store (run where the server runs)."""
    ctx.obj = store_uri


@contextlib.contextmanager
def _store(ctx: click.Context) -> Any:
    """A write transaction on the store, and the operator's name for the audit log."""
    from cairn.server.db.engine import Database
    from cairn.server.services.errors import ServiceError
    from cairn.server.settings import Settings

    database = Database(Settings(store_uri=ctx.obj).resolved_store_uri)
    database.upgrade()
    try:
        with database.session(write=True) as session:
            yield session, f"cli:{_os_user()}"
    except ServiceError as exc:
        _fail(exc)
    finally:
        database.dispose()


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "operator"


def _password(name: str) -> str:
    password = os.environ.get("CAIRN_PASSWORD")
    if password:
        return password
    if not sys.stdin.isatty():
        _fail(ValueError("set CAIRN_PASSWORD (there is no terminal to prompt on)"))
    return str(click.prompt(f"password for {name}", hide_input=True, confirmation_prompt=True))


@admin.command("create-user")
@click.argument("name")
@click.option("--admin", "is_admin", is_flag=True, help="A server admin: manages users and workspaces.")
@click.option("--service", is_flag=True, help="A service account (CI, schedulers): no password, tokens only.")
@click.option("--display-name", default="")
@click.option("--email", default="")
@click.pass_context
def admin_create_user(ctx: click.Context, name: str, is_admin: bool, service: bool, display_name: str,
                      email: str) -> None:
    """Make a user; the password comes from CAIRN_PASSWORD or a prompt."""
    from cairn.server.services import accounts

    password = None if service else _password(name)
    with _store(ctx) as (session, actor):
        accounts.create_user(session, actor, name, password, admin=is_admin, service=service,
                             display_name=display_name, email=email)
    kind = "service account" if service else ("admin" if is_admin else "user")
    click.echo(f"created {kind} {name}")


@admin.command("set-password")
@click.argument("name")
@click.pass_context
def admin_set_password(ctx: click.Context, name: str) -> None:
    """Set a user's password (CAIRN_PASSWORD or a prompt); their browser sessions end."""
    from cairn.server.services import accounts

    password = _password(name)
    with _store(ctx) as (session, actor):
        accounts.update_user(session, actor, name, password=password)
    click.echo(f"password of {name} changed")


@admin.command("disable-user")
@click.argument("name")
@click.option("--enable", is_flag=True, help="Enable the user again instead.")
@click.pass_context
def admin_disable_user(ctx: click.Context, name: str, enable: bool) -> None:
    """Disable a user: their tokens and sessions stop working on the next request."""
    from cairn.server.services import accounts

    with _store(ctx) as (session, actor):
        accounts.update_user(session, actor, name, disabled=not enable)
    click.echo(f"{name} {'enabled' if enable else 'disabled'}")


@admin.command("unlock-user")
@click.argument("name")
@click.pass_context
def admin_unlock_user(ctx: click.Context, name: str) -> None:
    """Lift the sign-in locks that failed passwords put on a user, from every address."""
    from cairn.server.services import accounts

    with _store(ctx) as (session, actor):
        cleared = accounts.unlock_user(session, actor, name)
    click.echo(f"{name} unlocked ({cleared} failure counters cleared)")


@admin.command("list-users")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def admin_list_users(ctx: click.Context, as_json: bool) -> None:
    from cairn.server.schemas.collab import user_out
    from cairn.server.services import accounts

    with _store(ctx) as (session, _):
        users = [user_out(u) for u in accounts.list_users(session)]
    if as_json:
        _emit_json(users)
        return
    _table(["NAME", "ADMIN", "SERVICE", "DISABLED", "CREATED"],
           [[u["name"], u["admin"], u["service"], u["disabled"], _when(u["created_at"])] for u in users])


@admin.command("create-token")
@click.argument("user")
@click.option("--name", required=True, help="What the token is for, e.g. ci.")
@click.option("--scope", default="write", show_default=True, type=click.Choice(["read", "write", "admin"]))
@click.option("--expires", default="90d", show_default=True, help="e.g. 12h, 30d, 2w, or never.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def admin_create_token(ctx: click.Context, user: str, name: str, scope: str, expires: str, as_json: bool) -> None:
    """Make an API token for USER and print it once (it is stored hashed and cannot be shown again)."""
    from cairn.server.services import accounts, events

    with _store(ctx) as (session, actor):
        owner = accounts.get_user(session, user)
        identity = accounts.Identity.local_admin(actor, user_id=owner.id)
        seconds = None if expires == "never" else events.parse_duration(expires, "--expires")
        row, secret = accounts.create_token(session, identity, name, scope, seconds, user=user)
        token_id, expires_at = row.id, row.expires_at
    if as_json:
        _emit_json({"id": token_id, "token": secret, "user": user, "scope": scope, "expires_at": expires_at})
        return
    click.echo(secret)
    click.echo(f"token {token_id} for {user} ({scope}, expires {_when(expires_at) or 'never'}); "
               "this is the only time it is shown", err=True)


@admin.command("revoke-token")
@click.argument("token_id")
@click.pass_context
def admin_revoke_token(ctx: click.Context, token_id: str) -> None:
    from cairn.server.services import accounts

    with _store(ctx) as (session, actor):
        accounts.revoke_token(session, accounts.Identity.local_admin(actor), token_id)
    click.echo(f"token {token_id} revoked")


@admin.command("create-workspace")
@click.argument("name")
@click.option("--owner", "owners", multiple=True, help="A user to make owner (repeatable).")
@click.option("--require-approval", is_flag=True, help="Promotions into protected registries need a second person.")
@click.option("--description", default="")
@click.pass_context
def admin_create_workspace(ctx: click.Context, name: str, owners: tuple[str, ...], require_approval: bool,
                           description: str) -> None:
    from cairn.server.services import workspaces

    with _store(ctx) as (session, actor):
        row = workspaces.create_workspace(session, actor, name, description, require_approval=require_approval)
        for owner in owners:
            workspaces.add_member(session, _operator_context(row, actor), "owner", user=owner)
    click.echo(f"created workspace {name}" + (f" owned by {', '.join(owners)}" if owners else ""))


@admin.command("add-member")
@click.argument("workspace")
@click.argument("user")
@click.argument("role", type=click.Choice(["viewer", "editor", "maintainer", "owner"]))
@click.option("--team", is_flag=True, help="USER names a team.")
@click.pass_context
def admin_add_member(ctx: click.Context, workspace: str, user: str, role: str, team: bool) -> None:
    from cairn.server.services import workspaces

    with _store(ctx) as (session, actor):
        context = _operator_context(workspaces.get_workspace(session, workspace), actor)
        if team:
            workspaces.add_member(session, context, role, team=user)
        else:
            workspaces.add_member(session, context, role, user=user)
    click.echo(f"{user} is {role} in {workspace}")


def _operator_context(row: Any, actor: str) -> Any:
    from cairn.server.authz import unrestricted
    from cairn.server.services.context import Context

    return Context(row.id, row.name, actor, "", unrestricted(actor))
