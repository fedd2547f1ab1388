"""ORM rows: the metadata store's tables.

Every top-level row carries ``workspace_id``. Times are integer milliseconds since the epoch.
Metric points are kept in a narrow table keyed by (series, step, seq) so that SQLite stores them
without a rowid and one series' history reads as one range scan.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}

KEY_LEN = 250
RUN_ID_LEN = 32


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: dict[Any, Any] = {dict[str, Any]: JSON}


class WorkspaceRow(Base):
    __tablename__ = "workspaces"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    require_approval: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ExperimentRow(Base):
    __tablename__ = "experiments"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    name: Mapped[str] = mapped_column(String(KEY_LEN))
    description: Mapped[str] = mapped_column(Text, default="")
    lifecycle: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    artifact_location: Mapped[str] = mapped_column(Text, default="", server_default="")  # as a client gave it


class ConventionsRow(Base):
    """The conventions of a workspace (``experiment_id`` 0) or of one experiment that overrides them."""

    __tablename__ = "conventions"
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_by: Mapped[str] = mapped_column(String(KEY_LEN))
    updated_at: Mapped[int] = mapped_column(BigInteger)


class _KeyValue:
    """A tag: a key (part of the primary key, after the owner's id) and its text. Mixed in after the owner's
    column, which keeps the primary key's order."""

    key: Mapped[str] = mapped_column(String(KEY_LEN), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ExperimentTagRow(_KeyValue, Base):
    __tablename__ = "experiment_tags"
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    )


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_experiment_start", "experiment_id", "start_time"),
        Index("ix_runs_parent", "parent_run_id"),
        # Several processes asking for the run with one key get one run: the key is unique in its
        # experiment (NULLs, the runs without a key, never collide).
        Index("ix_runs_experiment_key", "experiment_id", "run_key", unique=True),
    )
    id: Mapped[str] = mapped_column(String(RUN_ID_LEN), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"))
    name: Mapped[str] = mapped_column(String(KEY_LEN))
    status: Mapped[str] = mapped_column(String(16))
    start_time: Mapped[int] = mapped_column(BigInteger)
    end_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    user: Mapped[str] = mapped_column(String(KEY_LEN), default="")
    parent_run_id: Mapped[str | None] = mapped_column(String(RUN_ID_LEN), nullable=True)
    lifecycle: Mapped[str] = mapped_column(String(16), default="active")
    updated_at: Mapped[int] = mapped_column(BigInteger)
    run_key: Mapped[str | None] = mapped_column(String(KEY_LEN), nullable=True)
    compliant: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # None: no conventions in force


SEARCHABLE_VALUE = 200  # params and tags up to this long are in the (key, value) search indexes


def _value_index(table: str) -> Index:
    """(key, value, run_id) of values up to SEARCHABLE_VALUE characters: searches for ``key = value`` read a
    range of it. Partial, because a value may be 8,000 characters and a PostgreSQL b-tree entry may not."""
    where = text(f"length(value) <= {SEARCHABLE_VALUE}")
    return Index(f"ix_{table}_key_value", "key", "value", "run_id", sqlite_where=where, postgresql_where=where)


class RunTagRow(_KeyValue, Base):
    __tablename__ = "run_tags"
    __table_args__ = (_value_index("run_tags"),)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)


class ParamRow(Base):
    """The current value of a param; its history is in ``param_history``."""

    __tablename__ = "params"
    __table_args__ = (_value_index("params"),)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_LEN), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class ParamHistoryRow(Base):
    __tablename__ = "param_history"
    __table_args__ = (Index("ix_param_history_run_key", "run_id", "key", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(KEY_LEN))
    value: Mapped[str] = mapped_column(Text)
    timestamp: Mapped[int] = mapped_column(BigInteger)


class MetricSeriesRow(Base):
    """One metric of one run: its definition and the summary kept up to date at ingest.

    ``min``/``max``/``sum`` ignore NaN points (``numeric_count`` counts the others); ``count``
    counts every point. ``best`` is ``min`` or ``max`` according to ``goal``.
    """

    __tablename__ = "metric_series"
    __table_args__ = (
        UniqueConstraint("run_id", "key"),
        # searches sorted or filtered by a summary read these in order (see services/search.py)
        Index("ix_metric_series_key_last", "key", "last_value", "run_id"),
        Index("ix_metric_series_key_min", "key", "min_value", "run_id"),
        Index("ix_metric_series_key_max", "key", "max_value", "run_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(KEY_LEN))
    goal: Mapped[str | None] = mapped_column(String(8), nullable=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    numeric_count: Mapped[int] = mapped_column(BigInteger, default=0)
    sum: Mapped[float | None] = mapped_column(Float, nullable=True, default=0.0)
    last_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_timestamp: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    min_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    min_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class _OfSeries:
    """Rows of one metric series, kept in its order: ``series_id`` leads the primary key and SQLite keeps no
    rowid, so a series' rows read as one range scan."""

    __table_args__ = {"sqlite_with_rowid": False}
    series_id: Mapped[int] = mapped_column(
        ForeignKey("metric_series.id", ondelete="CASCADE"), primary_key=True, sort_order=-1
    )


class MetricPointRow(_OfSeries, Base):
    """One logged point. ``value`` NULL stands for NaN (SQLite cannot store NaN)."""

    __tablename__ = "metric_points"
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)


class MetricChunkRow(_OfSeries, Base):
    """PostgreSQL's points, packed: one series' points of one batch (``cairn.server.db.chunks``). ``seq`` is
    its first point's; ``steps`` is NULL when they run from ``first_step`` one by one; the arrays are
    little-endian int64 (steps, timestamps) and float64 (values, NaN for NaN). SQLite keeps ``metric_points``.
    """

    __tablename__ = "metric_chunks"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    first_step: Mapped[int] = mapped_column(BigInteger)
    last_step: Mapped[int] = mapped_column(BigInteger)
    steps: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    timestamps: Mapped[bytes] = mapped_column(LargeBinary)
    point_values: Mapped[bytes] = mapped_column(LargeBinary)


class MetricRollupRow(_OfSeries, Base):
    """A series' points summarised per bucket of ``2**level`` steps (bucket = step >> level), kept up to
    date at ingest so a chart of a long series reads a few thousand rows instead of every point.

    ``count`` counts every point, ``numeric_count`` the points that are not NaN; ``sum`` is 0.0 when
    there are none and NULL when the sum is NaN (+inf and -inf both logged); ``min_value`` and
    ``max_value`` skip NaN (NULL: the bucket holds only NaN); ``first_timestamp`` is the earliest.
    """

    __tablename__ = "metric_rollups"
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    numeric_count: Mapped[int] = mapped_column(BigInteger)
    sum: Mapped[float | None] = mapped_column(Float, nullable=True)
    min_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    first_step: Mapped[int] = mapped_column(BigInteger)
    last_step: Mapped[int] = mapped_column(BigInteger)
    first_timestamp: Mapped[int] = mapped_column(BigInteger)


class DatasetInputRow(Base):
    __tablename__ = "dataset_inputs"
    __table_args__ = (UniqueConstraint("run_id", "name", "digest", "role"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(KEY_LEN))
    uri: Mapped[str] = mapped_column(Text, default="")
    digest: Mapped[str] = mapped_column(String(KEY_LEN), default="")
    version: Mapped[str] = mapped_column(String(KEY_LEN), default="")
    role: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[int] = mapped_column(BigInteger)
    source_type: Mapped[str] = mapped_column(String(64), default="", server_default="")
    dataset_schema: Mapped[str] = mapped_column(Text, default="", server_default="")
    profile: Mapped[str] = mapped_column(Text, default="", server_default="")
    input_tags: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)


class BlobRow(Base):
    __tablename__ = "blobs"
    digest: Mapped[str] = mapped_column(String(71), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)


class ArtifactVersionRow(Base):
    __tablename__ = "artifact_versions"
    __table_args__ = (UniqueConstraint("run_id", "path", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(1024))
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(KEY_LEN), default="")


class IdempotencyKeyRow(Base):
    """Keys of write requests already applied, so a retried request is stored once."""

    __tablename__ = "idempotency_keys"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    created_at: Mapped[int] = mapped_column(BigInteger, index=True)


class EventRow(Base):
    """Append-only record of a change: the spine of audit, history and feeds."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_workspace_time", "workspace_id", "created_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int | None] = mapped_column(ForeignKey("workspaces.id"), nullable=True)  # None: server-wide
    actor: Mapped[str] = mapped_column(String(KEY_LEN))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str] = mapped_column(String(KEY_LEN))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    client_addr: Mapped[str] = mapped_column(String(64), default="")


# --- model registry ----------------------------------------------------------------------------------


class RegistryRow(Base):
    """A named registry of a workspace (``dev``, ``prod``, ...): the unit permissions attach to."""

    __tablename__ = "registries"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    protected: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)


class LoggedModelRow(Base):
    """A saved model: its manifest, and where its files are. A model logged by a run keeps its files among
    the run's artifacts under ``artifact_path``; a model logged outside any run (``run_id`` None) belongs to
    its experiment and keeps its files in ``logged_model_files``."""

    __tablename__ = "logged_models"
    __table_args__ = (UniqueConstraint("run_id", "name", "step"),)
    id: Mapped[str] = mapped_column(String(RUN_ID_LEN), primary_key=True)
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True, nullable=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"), index=True)
    name: Mapped[str] = mapped_column(String(KEY_LEN))
    step: Mapped[int] = mapped_column(BigInteger, default=-1)
    artifact_path: Mapped[str] = mapped_column(String(1024))
    flavor: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(BigInteger)


class LoggedModelFileRow(Base):
    """A file of a logged model made outside a run (a run's models keep their files among its artifacts)."""

    __tablename__ = "logged_model_files"
    logged_model_id: Mapped[str] = mapped_column(ForeignKey("logged_models.id", ondelete="CASCADE"),
                                                 primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)


class LoggedModelMetricRow(Base):
    """A metric value logged against a logged model (MLflow 3's ``log_metric(..., model_id=)``), with the run
    and the dataset it was measured in."""

    __tablename__ = "logged_model_metrics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    logged_model_id: Mapped[str] = mapped_column(ForeignKey("logged_models.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[str] = mapped_column(String(RUN_ID_LEN), default="")
    key: Mapped[str] = mapped_column(String(KEY_LEN))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)  # None: NaN
    timestamp: Mapped[int] = mapped_column(BigInteger)
    step: Mapped[int] = mapped_column(BigInteger)
    dataset_name: Mapped[str] = mapped_column(String(KEY_LEN), default="")
    dataset_digest: Mapped[str] = mapped_column(String(KEY_LEN), default="")


class RunModelLinkRow(Base):
    """A logged model a run used (``input``) or produced (``output``, at a step), as MLflow 3 records them."""

    __tablename__ = "run_model_links"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    logged_model_id: Mapped[str] = mapped_column(String(RUN_ID_LEN), primary_key=True)
    direction: Mapped[str] = mapped_column(String(8), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, default=0)


class RegisteredModelRow(Base):
    __tablename__ = "registered_models"
    __table_args__ = (UniqueConstraint("registry_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    registry_id: Mapped[int] = mapped_column(ForeignKey("registries.id"))
    name: Mapped[str] = mapped_column(String(KEY_LEN))
    description: Mapped[str] = mapped_column(Text, default="")
    last_version: Mapped[int] = mapped_column(Integer, default=0)
    lifecycle: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class RegisteredModelTagRow(_KeyValue, Base):
    __tablename__ = "registered_model_tags"
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True)


class ModelVersionRow(Base):
    """One version of a registered model. Its files are referenced by digest (no bytes copied); what it
    came from (run, logged model, source version when promoted) and a snapshot of the run's metrics,
    datasets and source are kept with it."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[str | None] = mapped_column(String(RUN_ID_LEN), nullable=True, index=True)
    logged_model_id: Mapped[str | None] = mapped_column(String(RUN_ID_LEN), nullable=True)
    source_version_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    flavor: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="READY")
    lifecycle: Mapped[str] = mapped_column(String(16), default="active")
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(KEY_LEN), default="")
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    stage: Mapped[str] = mapped_column(String(16), default="None", server_default="None")  # MLflow's stages


class ModelVersionFileRow(Base):
    __tablename__ = "model_version_files"
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)


class ModelVersionTagRow(_KeyValue, Base):
    __tablename__ = "model_version_tags"
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True)


class ModelAliasRow(Base):
    """Where an alias points now; its history is in ``alias_moves`` (and the event log)."""

    __tablename__ = "model_aliases"
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(KEY_LEN), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    updated_at: Mapped[int] = mapped_column(BigInteger)


class AliasMoveRow(Base):
    """Every move of an alias, kept forever: who, from which version to which, when, why."""

    __tablename__ = "alias_moves"
    __table_args__ = (Index("ix_alias_moves_model_alias", "model_id", "alias", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(KEY_LEN))
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor: Mapped[str] = mapped_column(String(KEY_LEN))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[int] = mapped_column(BigInteger)


# --- accounts and collaboration -------------------------------------------------------------------------


class UserRow(Base):
    """A person (with a password) or a service account (tokens only, ``password_hash`` NULL)."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(KEY_LEN), default="")
    email: Mapped[str] = mapped_column(String(KEY_LEN), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_service: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class TeamRow(Base):
    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[int] = mapped_column(BigInteger)


class TeamMemberRow(Base):
    __tablename__ = "team_members"
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)


class _PrincipalRole:
    """The columns a role given to a principal carries (members and grants): who (a user or a team), which
    role, since when. Mixed in after the table's own columns, which keeps each table's column order."""

    principal_kind: Mapped[str] = mapped_column(String(8))  # user or team
    principal_id: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)


class MemberRow(_PrincipalRole, Base):
    """A user's or a team's role in a workspace (``principal_kind`` is ``user`` or ``team``)."""

    __tablename__ = "workspace_members"
    __table_args__ = (UniqueConstraint("workspace_id", "principal_kind", "principal_id"),
                      Index("ix_workspace_members_principal", "principal_kind", "principal_id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))


class GrantRow(_PrincipalRole, Base):
    """A role on one experiment or registry, for a user or a team of the workspace."""

    __tablename__ = "grants"
    __table_args__ = (UniqueConstraint("resource_type", "resource_id", "principal_kind", "principal_id"),
                      Index("ix_grants_workspace_principal", "workspace_id", "principal_kind", "principal_id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    resource_type: Mapped[str] = mapped_column(String(16))
    resource_id: Mapped[int] = mapped_column(Integer)


class TokenRow(Base):
    """An API token: only a hash of its secret is kept. The public ``id`` is part of the token."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(KEY_LEN))
    scope: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class SessionRow(Base):
    """A browser session: the cookie carries a secret, the row keeps its hash."""

    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    client_addr: Mapped[str] = mapped_column(String(64), default="")


class LoginThrottleRow(Base):
    """Failed logins counted per account and per client address, shared by every server process."""

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failure_at: Mapped[int] = mapped_column(BigInteger)
    blocked_until: Mapped[int] = mapped_column(BigInteger, default=0)


class PromotionRequestRow(Base):
    """A request to promote a version into a (protected) registry, and what became of it."""

    __tablename__ = "promotion_requests"
    __table_args__ = (Index("ix_promotion_requests_workspace_status", "workspace_id", "status"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    source_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    target_registry_id: Mapped[int] = mapped_column(ForeignKey("registries.id"))
    target_model: Mapped[str] = mapped_column(String(KEY_LEN))
    aliases: Mapped[dict[str, Any]] = mapped_column(JSON)
    comment: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(KEY_LEN))
    requested_at: Mapped[int] = mapped_column(BigInteger)
    decided_by: Mapped[str | None] = mapped_column(String(KEY_LEN), nullable=True)
    decided_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    decision_comment: Mapped[str] = mapped_column(Text, default="")
    result_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True)


class CommentRow(Base):
    __tablename__ = "comments"
    __table_args__ = (Index("ix_comments_object", "workspace_id", "object_type", "object_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(KEY_LEN))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    deleted_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
