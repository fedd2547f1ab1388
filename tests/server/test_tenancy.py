"""Tenancy by construction, checked on the SQL itself: every statement the server emits while a workspace's
objects are made, read, searched and refused to another workspace is captured, and each SELECT, UPDATE or
DELETE that touches a tenant table must name the workspace, or reach the table through the key of a
workspace-scoped parent (a row the service read with the workspace first).

Tenant tables and how each is scoped (``SCOPED_BY``): tables with their own ``workspace_id`` column are
scoped by it; a child table is scoped by its parent's key (``run_id``, ``model_id``, ...), since the only way
to that key is a read of the parent that named the workspace. Server-wide tables (workspaces, users, teams,
tokens, sessions, login throttling, blobs) are not tenant tables. An UPDATE or DELETE by primary key is the
ORM writing back a row it loaded earlier, through a checked read, so it passes; so does a read marked
``REFERENCED`` (``services.tenancy.referenced``: the row a checked row points at, such as a version's model).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from cairn.server.services.tenancy import REFERENCED
from tests.conftest import AuthWorld, all_routes, declared_actions
from tests.server.api.test_isolation import MISSING, QUERY, fill, tenants  # noqa: F401 (tenants: a fixture)

WORKSPACE = "workspace_id"
SCOPED_BY: dict[str, tuple[str, ...]] = {  # table -> the columns any one of which scopes a query of it
    # their own workspace_id (runs and logged models also through their experiment or run)
    "experiments": (WORKSPACE,), "runs": (WORKSPACE, "experiment_id"), "idempotency_keys": (WORKSPACE,),
    "events": (WORKSPACE,), "registries": (WORKSPACE,), "logged_models": (WORKSPACE, "run_id"),
    "registered_models": (WORKSPACE,), "grants": (WORKSPACE,), "promotion_requests": (WORKSPACE,),
    "comments": (WORKSPACE,),
    "workspace_members": (WORKSPACE, "principal_id"),  # a caller's own memberships span workspaces
    # through a parent
    "experiment_tags": ("experiment_id",),
    "run_tags": ("run_id",), "params": ("run_id",), "param_history": ("run_id",), "metric_series": ("run_id",),
    "dataset_inputs": ("run_id",), "artifact_versions": ("run_id",), "run_model_links": ("run_id",),
    "metric_points": ("series_id",), "metric_rollups": ("series_id",),
    "logged_model_files": ("logged_model_id",), "logged_model_metrics": ("logged_model_id",),
    "registered_model_tags": ("model_id",), "model_aliases": ("model_id", "version_id"),
    "alias_moves": ("model_id",), "model_versions": ("model_id",), "model_version_files": ("version_id",),
    "model_version_tags": ("version_id",),
}
_TABLE = re.compile(r"\b(?:FROM|JOIN|UPDATE)\s+(\w+)", re.IGNORECASE)
_BY_PRIMARY_KEY = re.compile(r"^(UPDATE|DELETE FROM) (\w+) .*WHERE (\2\.)?id = [?%]", re.IGNORECASE | re.DOTALL)


def _names_column(statement: str, column: str) -> bool:
    """``column`` in a predicate (``x.column = ``, ``= x.column``, ``column IN``), not merely selected."""
    col = rf"(?:\w+\.)?{column}\b"
    return re.search(rf"(?<![\w.]){col}\s*(?:=|IN\b|IS\b)|=\s*{col}", statement, re.IGNORECASE) is not None


def unscoped_tables(statement: str) -> list[str]:
    """The tenant tables ``statement`` reads or changes without naming their scope (empty: it is fine)."""
    verb = statement.lstrip().split(None, 1)[0].upper()
    if verb not in ("SELECT", "UPDATE", "DELETE", "WITH") or _BY_PRIMARY_KEY.match(statement.strip()):
        return []
    tables = {t.lower() for t in _TABLE.findall(statement)} & SCOPED_BY.keys()
    return sorted(t for t in tables if not any(_names_column(statement, c) for c in SCOPED_BY[t]))


def test_the_checker_flags_a_query_that_forgets_the_workspace() -> None:
    assert unscoped_tables("SELECT runs.id, runs.workspace_id FROM runs WHERE runs.name = ?") == ["runs"]
    assert unscoped_tables("SELECT params.value FROM params WHERE params.key = ?") == ["params"]
    assert unscoped_tables("SELECT runs.id FROM runs WHERE runs.workspace_id = ? AND runs.id = ?") == []
    assert unscoped_tables("SELECT p.value FROM params AS p WHERE p.run_id IN (?, ?)") == []
    assert unscoped_tables("UPDATE runs SET status=? WHERE runs.id = ?") == []
    assert unscoped_tables("SELECT users.id FROM users WHERE users.name = ?") == []


@pytest.fixture
def statements(world: AuthWorld) -> list[str]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, _parameters: Any, context: Any, _many: bool) -> None:
        if not context.execution_options.get(next(iter(REFERENCED))):
            seen.append(" ".join(statement.split()))
    engines = world.app.state.db.engines
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    yield seen
    for engine in engines:
        event.remove(engine, "before_cursor_execute", record)


def test_every_query_of_a_tenant_table_names_the_workspace(
        world: AuthWorld, tenants: tuple[httpx.Client, httpx.Client, dict[str, str]],  # noqa: F811
        statements: list[str]) -> None:
    a, b, ids = tenants
    reads = 0
    for path, methods, dependant in all_routes(world.app):
        actions = declared_actions(dependant)
        if "GET" not in methods or not actions or actions[0].startswith("admin") or actions[0] == "public":
            continue
        for client, values in ((b, ids), (a, ids), (b, MISSING)):  # the owner, an outsider, a missing object
            client.get(fill(path, values), params=QUERY)
            reads += 1
    for search in ({"filter": "metrics.loss < 1 and params.lr = '0.1'", "order_by": ["metrics.loss DESC"]},
                   {"filter": "tags.k = 'v'"}):
        b.post("/api/v1/runs/search", json=search)
    assert reads > 100
    assert len(statements) > 500
    unscoped = sorted({f"{tables}: {s[s.find(' FROM '):][:260]}" for s in statements if (tables := unscoped_tables(s))})
    assert unscoped == [], "\n".join(unscoped)
