"""Searching experiments, registered models, model versions and logged models.

Each search takes a filter in the run-search language (``filters``, over the object's own vocabulary:
``name LIKE 'churn%' AND tags.team = 'vision'``), an ordering and a page, and runs as one SQL query in
the workspace: comparisons are SQL (patterns are matched by the database's LIKE, never compiled into a
regular expression), tags are semi-joins on their (object, key) index, and the page is cut by the store.
Page tokens are the run search's: an offset bound to the query that issued it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, literal, or_, select, true
from sqlalchemy.orm import Session

from cairn.server.db.models import (
    ExperimentRow,
    ExperimentTagRow,
    LoggedModelMetricRow,
    LoggedModelRow,
    ModelVersionRow,
    ModelVersionTagRow,
    ParamRow,
    RegisteredModelRow,
    RegisteredModelTagRow,
    RegistryRow,
    RunRow,
)
from cairn.server.services import experiments, registry, versions
from cairn.server.services.context import Context
from cairn.server.services.errors import InvalidInputError
from cairn.server.services.filters import (
    EXPERIMENTS,
    LOGGED_MODELS,
    MODEL_VERSIONS,
    REGISTERED_MODELS,
    Comparison,
    Node,
    OrderBy,
    Vocabulary,
    check_query,
)
from cairn.server.services.registry import DEFAULT_REGISTRY, ModelView, VersionView
from cairn.server.services.search import compile_tree, decode_token, encode_token, fingerprint, operate

T = TypeVar("T")
PROMPT_TAG = "mlflow.prompt.is_prompt"
MAX_PAGE = 200_000  # MLflow allows model-version searches this large


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_page_token: str | None


@dataclass(frozen=True)
class Listing:
    """What every search takes besides its own scope."""

    filter: str | None = None
    order_by: tuple[str, ...] = ()
    max_results: int = 1000
    page_token: str | None = None


@dataclass(frozen=True)
class _Table:
    """How one kind of object answers a filter: its attribute columns and its tag table."""

    vocabulary: Vocabulary
    columns: dict[str, Any]
    tags: Any  # the tag row class
    tag_owner: Any  # the tag table's column naming the object
    owner: Any  # the object's key column


def mlflow_model_name() -> Any:
    """A registered model's name as MLflow clients see it (see :func:`registry.from_mlflow_name`), in SQL."""
    return case((RegistryRow.name == DEFAULT_REGISTRY, RegisteredModelRow.name),
                else_=RegistryRow.name + literal(".") + RegisteredModelRow.name)


_EXPERIMENTS = _Table(EXPERIMENTS, {
    "name": ExperimentRow.name, "experiment_id": ExperimentRow.id, "creation_time": ExperimentRow.created_at,
    "last_update_time": ExperimentRow.updated_at}, ExperimentTagRow, ExperimentTagRow.experiment_id, ExperimentRow.id)
_MODELS = _Table(REGISTERED_MODELS, {
    "name": mlflow_model_name(), "creation_timestamp": RegisteredModelRow.created_at,
    "last_updated_timestamp": RegisteredModelRow.updated_at}, RegisteredModelTagRow, RegisteredModelTagRow.model_id,
    RegisteredModelRow.id)
_VERSIONS = _Table(MODEL_VERSIONS, {
    "name": mlflow_model_name(), "version_number": ModelVersionRow.version, "run_id": ModelVersionRow.run_id,
    "source_path": func.coalesce(ModelVersionRow.lineage["mlflow_source"].as_string(), ""),
    "current_stage": ModelVersionRow.stage, "creation_timestamp": ModelVersionRow.created_at,
    "last_updated_timestamp": ModelVersionRow.updated_at}, ModelVersionTagRow, ModelVersionTagRow.version_id,
    ModelVersionRow.id)
_LOGGED = _Table(LOGGED_MODELS, {
    "name": LoggedModelRow.name, "model_id": literal("m-") + LoggedModelRow.id,
    "model_type": func.coalesce(LoggedModelRow.manifest["mlflow"]["model_type"].as_string(), ""),
    "status": func.coalesce(LoggedModelRow.manifest["mlflow"]["status"].as_string(), "LOGGED_MODEL_READY"),
    "source_run_id": LoggedModelRow.run_id, "creation_timestamp": LoggedModelRow.created_at,
    "last_updated_timestamp": LoggedModelRow.created_at, "experiment_id": LoggedModelRow.experiment_id},
    None, None, LoggedModelRow.id)


def _condition(node: Node, table: _Table) -> ColumnElement[bool]:
    return compile_tree(node, lambda comparison: _comparison(comparison, table))


def _comparison(node: Comparison, table: _Table) -> ColumnElement[bool]:
    entity = node.entity
    if entity.kind == "attribute":
        value = node.value
        if entity.key == "experiment_id":
            value = tuple(int(v) for v in value) if isinstance(value, tuple) else int(value)  # type: ignore[arg-type]
        if entity.key == "model_id" and isinstance(value, str) and node.op in ("=", "!="):
            return operate(LoggedModelRow.id, node.op, value.removeprefix("m-"))
        return operate(table.columns[entity.key], node.op, value)
    if table is _LOGGED:
        return _logged_model_value(node)
    # A tag's != holds only for objects that have the tag, as in MLflow, except MLflow 3's prompt marker:
    # its client searches registered models with tags.`mlflow.prompt.is_prompt` != 'true' to leave prompts out.
    negated = {"!=": "=", "NOT IN": "IN"}.get(node.op) if entity.key == PROMPT_TAG else None
    negated = "IS NOT NULL" if node.op == "IS NULL" else negated
    has_key = select(table.tag_owner).where(table.tags.key == entity.key)
    if (negated or node.op) != "IS NOT NULL":
        has_key = has_key.where(operate(table.tags.value, negated or node.op, node.value))
    found: ColumnElement[bool] = table.owner.not_in(has_key) if negated else table.owner.in_(has_key)
    return found


def _logged_model_value(node: Comparison) -> ColumnElement[bool]:
    """Params and tags of a logged model live in its manifest; its metrics are its run's."""
    entity = node.entity
    if entity.kind == "metric":  # the values logged against the model (log_metric(..., model_id=))
        logged = select(LoggedModelMetricRow.logged_model_id).where(LoggedModelMetricRow.key == entity.key)
        if node.op not in ("IS NULL", "IS NOT NULL"):
            logged = logged.where(operate(LoggedModelMetricRow.value, node.op, node.value))
        found: ColumnElement[bool] = LoggedModelRow.id.in_(logged)
        return ~found if node.op == "IS NULL" else found
    if entity.kind == "param" and node.op not in ("IS NULL", "IS NOT NULL"):
        in_manifest = LoggedModelRow.manifest["mlflow"]["params"][entity.key].as_string()
        run_param = select(ParamRow.run_id).where(ParamRow.key == entity.key,
                                                  operate(ParamRow.value, node.op, node.value))
        either: ColumnElement[bool] = or_(operate(in_manifest, node.op, node.value),
                                          LoggedModelRow.run_id.in_(run_param))
        return either
    value = LoggedModelRow.manifest["mlflow"][f"{entity.kind}s"][entity.key].as_string()
    if node.op in ("IS NULL", "IS NOT NULL"):
        return operate(value, node.op, None)
    return operate(value, node.op, node.value)


def _ordering(order: list[OrderBy], table: _Table, default: list[tuple[str, bool]]) -> list[Any]:
    """``order`` then ``default`` for the keys ``order`` did not name (MLflow's tie-breakers)."""
    named = {o.entity.key for o in order if o.entity.kind == "attribute"}
    if len(named) < len([o for o in order if o.entity.kind == "attribute"]):
        raise InvalidInputError("order_by names a field twice", field="order_by")
    keys: list[Any] = []
    for o in order:
        if o.entity.kind != "attribute":
            raise InvalidInputError(f"{table.vocabulary.what} can be ordered by attributes only, not by "
                                    f"{o.entity.kind}s", field="order_by")
        column = table.columns[o.entity.key]
        keys.append(column.asc() if o.ascending else column.desc())
    keys += [table.columns[k].asc() if up else table.columns[k].desc() for k, up in default if k not in named]
    return keys


def _page(session: Session, query: Select[Any], listing: Listing, scope: Any) -> tuple[list[Any], str | None]:
    if not 1 <= listing.max_results <= MAX_PAGE:
        raise InvalidInputError(f"max_results must be between 1 and {MAX_PAGE}", field="max_results")
    mark = fingerprint([scope, listing.filter, list(listing.order_by)])
    offset = decode_token(listing.page_token, mark)
    rows = list(session.execute(query.limit(listing.max_results + 1).offset(offset)))
    if len(rows) <= listing.max_results:
        return rows, None
    return rows[:listing.max_results], encode_token(offset + listing.max_results, mark)


# the four searches -----------------------------------------------------------------------------------

def search_experiments(session: Session, ctx: Context, listing: Listing,
                       lifecycles: tuple[str, ...] = ("active",)) -> Page[experiments.ExperimentView]:
    tree, order = check_query(listing.filter, listing.order_by, EXPERIMENTS)
    query = select(ExperimentRow).where(ExperimentRow.workspace_id == ctx.workspace_id,
                                        ExperimentRow.lifecycle.in_(lifecycles))
    if tree is not None:
        query = query.where(_condition(tree, _EXPERIMENTS))
    query = query.order_by(*_ordering(order, _EXPERIMENTS, [("creation_time", False), ("experiment_id", True)]))
    rows, token = _page(session, query, listing, ["experiments", list(lifecycles)])
    return Page(experiments.views_of(session, [r for (r,) in rows]), token)


def _models_in_workspace(ctx: Context, *columns: Any) -> Select[Any]:
    return select(*columns).join(RegistryRow, RegistryRow.id == RegisteredModelRow.registry_id).where(
        RegisteredModelRow.workspace_id == ctx.workspace_id, RegisteredModelRow.lifecycle == "active")


def search_models(session: Session, ctx: Context, listing: Listing) -> Page[ModelView]:
    tree, order = check_query(listing.filter, listing.order_by, REGISTERED_MODELS)
    query = _models_in_workspace(ctx, RegisteredModelRow, RegistryRow.name)
    if tree is not None:
        query = query.where(_condition(tree, _MODELS))
    query = query.order_by(*_ordering(order, _MODELS, [("name", True)]), RegisteredModelRow.id)
    rows, token = _page(session, query, listing, ["models"])
    return Page(registry.model_views(session, [(row, name) for row, name in rows]), token)


def search_versions(session: Session, ctx: Context, listing: Listing) -> Page[VersionView]:
    tree, order = check_query(listing.filter, listing.order_by, MODEL_VERSIONS)
    query = _models_in_workspace(ctx, ModelVersionRow, RegisteredModelRow, RegistryRow.name).join(
        ModelVersionRow, ModelVersionRow.model_id == RegisteredModelRow.id).where(
        ModelVersionRow.lifecycle == "active")
    if tree is not None:
        query = query.where(_condition(tree, _VERSIONS))
    query = query.order_by(*_ordering(order, _VERSIONS, [("name", True), ("version_number", False)]))
    rows, token = _page(session, query, listing, ["versions"])
    by_model: dict[int, list[ModelVersionRow]] = defaultdict(list)
    owners: dict[int, tuple[RegisteredModelRow, str]] = {}
    for version, model, registry_name in rows:
        by_model[model.id].append(version)
        owners[model.id] = (model, registry_name)
    views = {v.row.id: v for model_id, rows_of in by_model.items()
             for v in versions.version_views(session, rows_of, *owners[model_id])}
    return Page([views[version.id] for version, _, _ in rows], token)


def search_logged_models(session: Session, ctx: Context, experiment_ids: list[int], listing: Listing,
                         datasets: list[tuple[str, str | None]] | None = None) -> Page[LoggedModelRow]:
    """Logged models of the experiments; with ``datasets`` (name, digest or None), only those with metrics
    measured on one of them."""
    tree, order = check_query(listing.filter, listing.order_by, LOGGED_MODELS)
    query = select(LoggedModelRow).where(LoggedModelRow.workspace_id == ctx.workspace_id)
    if datasets:
        measured = [and_(LoggedModelMetricRow.dataset_name == name,
                         LoggedModelMetricRow.dataset_digest == digest if digest is not None else true())
                    for name, digest in datasets]
        query = query.where(LoggedModelRow.id.in_(select(LoggedModelMetricRow.logged_model_id).where(or_(*measured))))
    if experiment_ids:
        query = query.where(LoggedModelRow.experiment_id.in_(experiment_ids))
    query = query.where(~exists().where(RunRow.id == LoggedModelRow.run_id, RunRow.lifecycle != "active"))
    if tree is not None:
        query = query.where(_condition(tree, _LOGGED))
    query = query.order_by(*_ordering(order, _LOGGED, [("creation_timestamp", False), ("model_id", True)]))
    rows, token = _page(session, query, listing, ["logged", sorted(experiment_ids), datasets or []])
    return Page([r for (r,) in rows], token)
