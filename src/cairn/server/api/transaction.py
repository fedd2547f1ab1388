"""The one way a route opens a transaction: ``read`` or ``write``, as the caller in its workspace.

    tx.read(request, access, runs.get_run, run_id)            # in a sync route (FastAPI's worker thread)
    await tx.write_async(request, access, runs.create, spec)  # in an async route: the same, in a worker thread
    await tx.write_small(request, access, runs.log_batch, ...) # a tiny write, on the loop when SQLite is free
    tx.write_instance(request, accounts.create_user, ...)     # accounts and workspaces: no workspace caller

Each runs ``fn(session, ctx, *args, **kwargs)`` (``fn(session, *args, **kwargs)`` for the ``_instance`` pair) in
one transaction, committed when ``fn`` returns and rolled back when it raises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from cairn.server.api.auth import Access
from cairn.server.db.engine import NOT_NOW, TTLCache
from cairn.server.services.context import Context
from cairn.server.services.experiments import resolve_workspace

T = TypeVar("T")
SMALL_WRITE_BYTES = 4096


def read(request: Request, access: Access, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(session, ctx, ...)`` in one read transaction, as ``access``'s caller in its workspace."""
    return _as_caller(request, access, fn, args, kwargs, write=False)


def write(request: Request, access: Access, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(session, ctx, ...)`` in one write transaction, as ``access``'s caller in its workspace."""
    return _as_caller(request, access, fn, args, kwargs, write=True)


async def read_async(request: Request, access: Access, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """:func:`read` in a worker thread, for async routes."""
    return await run_in_threadpool(read, request, access, fn, *args, **kwargs)


async def write_async(request: Request, access: Access, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """:func:`write` in a worker thread, for async routes."""
    return await run_in_threadpool(write, request, access, fn, *args, **kwargs)


async def write_small(request: Request, access: Access, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A write whose request body was at most ``SMALL_WRITE_BYTES`` (a log_metric, a few points): on SQLite,
    when the store's write lock is free, it runs right here on the event loop, a fraction of a millisecond;
    the hop to a worker thread and back would cost about as much again. Otherwise (a larger body, a busy
    store, PostgreSQL's network round trips) it runs as :func:`write_async`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) <= SMALL_WRITE_BYTES:
        db = request.app.state.db
        result = db.write_now(lambda session: _run(session, access, db.cache, fn, args, kwargs))
        if result is not NOT_NOW:
            return result  # type: ignore[no-any-return]
    return await write_async(request, access, fn, *args, **kwargs)


def read_instance(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(session, ...)`` in one read transaction outside any workspace (accounts, the list of workspaces)."""
    with request.app.state.db.session(write=False) as session:
        return fn(session, *args, **kwargs)


def write_instance(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(session, ...)`` in one write transaction outside any workspace (accounts, workspaces themselves)."""
    with request.app.state.db.session(write=True) as session:
        return fn(session, *args, **kwargs)


def _as_caller(request: Request, access: Access, fn: Callable[..., T], args: tuple[Any, ...],
               kwargs: dict[str, Any], *, write: bool) -> T:
    db = request.app.state.db
    with db.session(write=write) as session:
        return _run(session, access, db.cache, fn, args, kwargs)


def _run(session: Session, access: Access, cache: TTLCache, fn: Callable[..., T], args: tuple[Any, ...],
         kwargs: dict[str, Any]) -> T:
    result = fn(session, context(session, access, cache), *args, **kwargs)
    access.guard.check_done()  # raising here rolls the transaction back
    return result


def context(session: Session, access: Access, cache: TTLCache | None = None) -> Context:
    """The caller's Context; the workspace's id is cached for a few seconds per process."""
    if access.workspace_id is not None:
        return Context(access.workspace_id, access.workspace, access.actor, access.client_addr, access.guard)
    workspace_id = cache.get(("workspace", access.workspace)) if cache is not None else None
    if workspace_id is None:
        workspace_id = resolve_workspace(session, access.workspace).id
        if cache is not None:
            cache.put(("workspace", access.workspace), workspace_id)
    return Context(workspace_id, access.workspace, access.actor, access.client_addr, access.guard)
