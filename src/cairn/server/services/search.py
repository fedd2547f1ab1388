"""Run search: the filter tree (from ``filters``) compiled to SQLAlchemy expressions, ordering and pages.

Summaries are plain columns of ``metric_series``; sorting puts runs without a value last. A search
takes one of two shapes, chosen by how many runs it covers (its workspace, experiments and view):

* up to ``INDEXED_SCOPE`` runs, the runs are visited: every metric, param or tag that the filter or
  the ordering names is outer-joined once on its (run, key) unique index, and the matches sorted.
* from ``INDEXED_SCOPE`` runs on, the indexes do the work, so a search over 100,000 runs does not
  visit each one. A comparison on a metric, param or tag is a semi-join, ``runs.id IN (SELECT run_id
  ... WHERE key = ? AND <condition>)``, read from a (key, value, run_id) index. When the first sort key
  is a plain column (a metric's last, min, max or count, a param, a tag) the page is read in two
  parts: the runs that have a value, inner-joined and read in that index's order (the store stops
  after a page instead of sorting every run), then, if the page is not full, the runs that have none.

Both shapes give the same answer; only the work differs (a small experiment in a large workspace would
otherwise walk the whole workspace's index).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, and_, exists, false, func, literal_column, or_, select, true
from sqlalchemy.orm import Session, aliased

from cairn.server.db.models import (
    SEARCHABLE_VALUE,
    DatasetInputRow,
    ExperimentRow,
    MetricSeriesRow,
    ParamRow,
    RunRow,
    RunTagRow,
)
from cairn.server.services import metrics, runs
from cairn.server.services.context import Context
from cairn.server.services.errors import InvalidInputError, NotFoundError
from cairn.server.services.filters import (
    BoolOp,
    Comparison,
    Entity,
    Node,
    OrderBy,
    check_query,
)
from cairn.server.services.tenancy import in_workspace

MAX_RESULTS = 50_000  # MLflow's own limit for one page of runs
INDEXED_SCOPE = 5000  # runs in a search's scope from which it reads from the indexes (see above)
VIEW_TYPES = {"active_only": ("active",), "deleted_only": ("deleted",), "all": ("active", "deleted")}
_ATTRIBUTES: dict[str, Any] = {
    "run_id": RunRow.id, "run_name": RunRow.name, "status": RunRow.status, "start_time": RunRow.start_time,
    "end_time": RunRow.end_time, "user": RunRow.user, "experiment_id": RunRow.experiment_id,
    "parent_run_id": RunRow.parent_run_id, "lifecycle": RunRow.lifecycle, "compliant": RunRow.compliant,
}
_DATASET_FIELDS: dict[str, Any] = {
    "name": DatasetInputRow.name, "digest": DatasetInputRow.digest, "role": DatasetInputRow.role,
    "uri": DatasetInputRow.uri, "version": DatasetInputRow.version,
}


@dataclass(frozen=True)
class RunQuery:
    experiment_ids: tuple[int, ...] = ()
    experiment_names: tuple[str, ...] = ()
    filter: str | None = None
    order_by: tuple[str, ...] = ()
    max_results: int = 1000
    page_token: str | None = None
    view_type: str = "active_only"


@dataclass
class RunPage:
    runs: list[runs.RunView]
    next_page_token: str | None


_MODELS: dict[str, Any] = {"metric": MetricSeriesRow, "param": ParamRow, "tag": RunTagRow}
_PLAIN_AGGS = ("last", "min", "max", "count")  # summaries kept as one column each (indexed by key)


class _Joins:
    """One outer-joined alias per (kind, key) named by the filter or the ordering; ``inner`` is joined as an
    inner join. With ``sets`` the filter's comparisons are semi-joins instead (see the module docstring)."""

    def __init__(self, *, sets: bool = False) -> None:
        self.aliases: dict[tuple[str, str], Any] = {}
        self.inner: tuple[str, str] | None = None
        self.sets = sets

    def alias(self, kind: str, key: str) -> Any:
        if (kind, key) not in self.aliases:
            self.aliases[(kind, key)] = aliased(_MODELS[kind], name=f"{kind}_{len(self.aliases)}")
        return self.aliases[(kind, key)]

    def apply(self, query: Select[Any]) -> Select[Any]:
        for (kind, key), alias in self.aliases.items():
            on = and_(alias.run_id == RunRow.id, alias.key == key)
            query = query.join(alias, on) if (kind, key) == self.inner else query.outerjoin(alias, on)
        return query


def column_for(entity: Entity, joins: _Joins) -> Any:
    if entity.kind == "attribute":
        return _ATTRIBUTES[entity.key]
    return _value_column(entity, joins.alias(entity.kind, entity.key))


def _value_column(entity: Entity, alias: Any) -> Any:
    return alias.value if entity.kind != "metric" else metrics.summary_column(alias, entity.agg or "last")


def compile_tree(node: Node, comparison: Callable[[Comparison], ColumnElement[bool]]) -> ColumnElement[bool]:
    """A filter tree as one SQL condition: its and/or nodes as they are, each comparison compiled by
    ``comparison`` (each search knows its own columns)."""
    if isinstance(node, BoolOp):
        parts = [compile_tree(item, comparison) for item in node.items]
        return and_(*parts) if node.op == "and" else or_(*parts)
    return comparison(node)


def _compile_comparison(node: Comparison, joins: _Joins) -> ColumnElement[bool]:
    if node.entity.kind == "dataset":
        condition = operate(_DATASET_FIELDS[node.entity.key], node.op, node.value)
        return exists().where(DatasetInputRow.run_id == RunRow.id, condition)
    if node.entity.kind in _MODELS and joins.sets:
        return _semi_join(node)
    if node.op in ("IS NULL", "IS NOT NULL") and node.entity.kind in _MODELS:
        alias = joins.alias(node.entity.kind, node.entity.key)
        key: ColumnElement[bool] = alias.key.is_(None) if node.op == "IS NULL" else alias.key.is_not(None)
        return key
    value = node.value
    if node.entity.kind == "attribute" and node.entity.key == "experiment_id":
        value = tuple(int(v) for v in value) if isinstance(value, tuple) else int(value)  # type: ignore[arg-type]
    return operate(column_for(node.entity, joins), node.op, value)


def _semi_join(node: Comparison) -> ColumnElement[bool]:
    """Runs whose metric/param/tag ``key`` exists and meets the comparison (IS NULL: runs without it)."""
    alias = aliased(_MODELS[node.entity.kind])
    having = select(alias.run_id).where(alias.key == node.entity.key)
    if node.op == "IS NULL":
        return RunRow.id.not_in(having)
    if node.op != "IS NOT NULL":
        having = having.where(operate(_value_column(node.entity, alias), node.op, node.value))
    if node.entity.kind != "metric" and _short_values(node):  # lets the store use its partial value index
        having = having.where(func.length(alias.value) <= literal_column(str(SEARCHABLE_VALUE)))
    return RunRow.id.in_(having)


def _short_values(node: Comparison) -> bool:
    """An equality with values no longer than the (key, value) index holds: longer values cannot match."""
    values = node.value if isinstance(node.value, tuple) else (node.value,)
    return node.op in ("=", "IN") and all(isinstance(v, str) and len(v) <= SEARCHABLE_VALUE for v in values)


def operate(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    simple = {"=": column.__eq__, "!=": column.__ne__, "<": column.__lt__, "<=": column.__le__,
              ">": column.__gt__, ">=": column.__ge__}
    if op in simple:
        result: ColumnElement[bool] = simple[op](value)
        return result
    if op == "LIKE":
        result = column.like(value)
    elif op == "ILIKE":
        result = column.ilike(value)
    elif op == "IN":
        result = column.in_(list(value)) if value else false()
    elif op == "NOT IN":
        result = column.not_in(list(value)) if value else true()
    elif op == "IS NULL":
        result = column.is_(None)
    elif op == "IS NOT NULL":
        result = column.is_not(None)
    else:
        raise InvalidInputError(f"unsupported operator {op}", field="filter")
    return result


def search_runs(session: Session, ctx: Context, q: RunQuery) -> RunPage:
    if not 1 <= q.max_results <= MAX_RESULTS:
        raise InvalidInputError(f"Invalid value {q.max_results} for parameter 'max_results' supplied: it must be "
                                f"between 1 and {MAX_RESULTS}", field="max_results")
    if q.view_type not in VIEW_TYPES:
        raise InvalidInputError(f"run_view_type must be one of {sorted(VIEW_TYPES)}", field="run_view_type")
    tree, order = check_query(q.filter, tuple(q.order_by))
    query = select(RunRow).where(RunRow.workspace_id == ctx.workspace_id,
                                 RunRow.lifecycle.in_(VIEW_TYPES[q.view_type]))
    experiment_ids = _experiment_ids(session, ctx, q)
    if experiment_ids is not None:
        query = query.where(RunRow.experiment_id.in_(experiment_ids))
    joins = _Joins(sets=_large(session, query))
    if tree is not None:
        query = query.where(compile_tree(tree, lambda node: _compile_comparison(node, joins)))
    fingerprint = _fingerprint(q, experiment_ids)
    offset = decode_token(q.page_token, fingerprint)
    limit = q.max_results + 1
    if joins.sets and order and _splits(order[0].entity):
        rows = _read_split(session, query, order, offset, limit)
    else:
        rows = list(session.scalars(_ordered(query, order, joins).limit(limit).offset(offset)))
    token = None
    if len(rows) > q.max_results:
        rows = rows[: q.max_results]
        token = encode_token(offset + q.max_results, fingerprint)
    return RunPage(runs.load_views(session, rows), token)


def _ordered(query: Select[Any], order: list[OrderBy], joins: _Joins, *, lead: Any = None) -> Select[Any]:
    """``query`` sorted by ``order`` (runs without a value last), then newest first; ``lead`` is the first
    key's column when it is known to have a value (no NULLS LAST, so an index can give the order)."""
    sort = [] if lead is None else [lead.asc() if order[0].ascending else lead.desc()]
    sort += [_sort_key(column_for(o.entity, joins), ascending=o.ascending) for o in order[len(sort):]]
    sort += [RunRow.start_time.desc(), RunRow.id]
    return joins.apply(query).order_by(*sort)


def _large(session: Session, scope: Select[Any]) -> bool:
    """Does the search cover at least INDEXED_SCOPE runs? (Counts no further than that.)"""
    probe = scope.with_only_columns(RunRow.id).limit(INDEXED_SCOPE).subquery()
    return (session.scalar(select(func.count()).select_from(probe)) or 0) >= INDEXED_SCOPE


def _splits(entity: Entity) -> bool:
    return entity.kind in ("param", "tag") or (entity.kind == "metric" and entity.agg in _PLAIN_AGGS)


def _read_split(session: Session, query: Select[Any], order: list[OrderBy], offset: int, limit: int) -> list[RunRow]:
    """Rows [offset, offset + limit) of the runs that have a value for the first sort key (read in its
    index's order), followed by the runs that have none."""
    lead = order[0].entity
    joins = _Joins()
    joins.inner = (lead.kind, lead.key)
    column = column_for(lead, joins)
    having = query.where(column.is_not(None))
    rows = list(session.scalars(_ordered(having, order, joins, lead=column).limit(limit).offset(offset)))
    if len(rows) == limit:
        return rows
    if rows:
        with_value = offset + len(rows)
    else:  # the page starts past them: how many are there?
        with_value = session.scalar(select(func.count()).select_from(joins.apply(having).subquery())) or 0
    others = _Joins()
    alias = others.alias(lead.kind, lead.key)
    lacking = query.where(or_(alias.run_id.is_(None), column_for(lead, others).is_(None)))
    rest = _ordered(lacking, order[1:], others).limit(limit - len(rows)).offset(max(0, offset - with_value))
    return rows + list(session.scalars(rest))


def _sort_key(column: Any, *, ascending: bool) -> Any:
    return column.asc().nulls_last() if ascending else column.desc().nulls_last()


def _experiment_ids(session: Session, ctx: Context, q: RunQuery) -> list[int] | None:
    if not q.experiment_ids and not q.experiment_names:
        return None
    ids = list(q.experiment_ids)
    for experiment_id in q.experiment_ids:
        if in_workspace(session, ctx, ExperimentRow, experiment_id) is None:
            raise NotFoundError(f"experiment {experiment_id} does not exist", field="experiment_ids")
    for name in q.experiment_names:
        found = session.scalar(select(ExperimentRow.id).where(
            ExperimentRow.workspace_id == ctx.workspace_id, ExperimentRow.name == name))
        if found is None:
            raise NotFoundError(f"experiment {name!r} does not exist", field="experiment_names")
        ids.append(found)
    return ids


def _fingerprint(q: RunQuery, experiment_ids: list[int] | None) -> str:
    return fingerprint([experiment_ids, q.filter, list(q.order_by), q.view_type])


def fingerprint(query: Any) -> str:
    """What a page token is bound to: a digest of the query (JSON-able) that issued it."""
    return hashlib.sha256(orjson.dumps(query)).hexdigest()[:16]


def encode_token(offset: int, fingerprint: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"o": offset, "f": fingerprint})).decode()


def decode_token(token: str | None, fingerprint: str) -> int:
    if not token:
        return 0
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        offset, seen = int(data["o"]), data["f"]
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidInputError("page_token is not a token this server issued", field="page_token") from exc
    if seen != fingerprint or offset < 0:
        raise InvalidInputError("page_token belongs to a different search (filter, order or experiments changed)",
                                field="page_token")
    return offset
