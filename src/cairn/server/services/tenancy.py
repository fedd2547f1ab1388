"""Reads of tenant rows by key, so that the workspace is never left to a check after the query.

``in_workspace`` puts the workspace in the SQL; ``referenced`` follows a key found on a row already read in
the workspace (a version's model, a request's registry) and says so on the statement, which is how
tests/server/test_tenancy.py tells it from a read that forgot the workspace.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from cairn.server.services.context import Context

R = TypeVar("R")
REFERENCED = {"cairn_referenced": True}  # the execution option that marks a read through a checked row


def in_workspace(session: Session, ctx: Context, row_type: type[R], key: Any) -> R | None:
    """The row of ``row_type`` (a table with ``id`` and ``workspace_id``) with this id in the caller's
    workspace, or None: another workspace's row is not found, like a missing one."""
    table: Any = row_type
    return session.scalar(select(row_type).where(table.id == key, table.workspace_id == ctx.workspace_id))


def referenced(session: Session, row_type: type[R], key: Any) -> R | None:
    """The row a row of this workspace, already read, points at by ``key``."""
    return session.get(row_type, key, execution_options=REFERENCED)
