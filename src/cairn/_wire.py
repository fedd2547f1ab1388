"""The JSON objects the server answers with and the SDK hands back unchanged, declared once for both sides.

The server names these as response models (so /openapi.json states them, and tests validate real answers
against them); the SDK returns them as they are. The standard library only: importing this module loads
neither the server nor the SDK. Objects the SDK reshapes (a run, an experiment, a model version) are
declared on each side, in the shape each side needs.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Self


class WireObject:
    """A frozen dataclass read from the API's JSON by its field names."""

    # read by pydantic on the server: an answer with a key its shape lacks fails validation
    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Self:
        """A required field must be in ``d``; one with a default may be missing (a key older servers lack)."""
        values = {f.name: d[f.name] if f.default is MISSING and f.default_factory is MISSING
                  else d.get(f.name, f.default) for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**values)


@dataclass(frozen=True)
class RunHeader(WireObject):
    """A run's identity and state: the part of a run's answer both sides read as it is. Each side adds the
    run's data (params, tags, metric summaries) in the form it needs."""

    run_id: str
    name: str
    experiment_id: int
    experiment_name: str
    status: str
    start_time: int
    end_time: int | None
    user: str
    parent_run_id: str | None
    lifecycle: str
    run_key: str | None  # the key that joins processes into one run


@dataclass(frozen=True)
class User(WireObject):
    name: str
    display_name: str
    email: str
    admin: bool
    service: bool
    disabled: bool
    created_at: int


@dataclass(frozen=True)
class Token(WireObject):
    """An API token, as listed (the secret is shown once, in the answer that creates it)."""

    id: str
    name: str
    user: str
    scope: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None
    last_used_at: int | None


@dataclass(frozen=True)
class Workspace(WireObject):
    name: str
    description: str
    require_approval: bool
    created_at: int
    role: str | None  # the caller's role in it


@dataclass(frozen=True)
class Event(WireObject):
    """An entry of the audit log."""

    id: int
    time: int
    actor: str
    action: str
    object_type: str
    object_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    client_addr: str


@dataclass(frozen=True)
class PromotionRequest(WireObject):
    id: int
    model: str
    version: int
    to: str
    aliases: list[str]
    comment: str
    status: str  # pending | approved | rejected | cancelled
    requested_by: str
    requested_at: int
    decided_by: str | None
    decided_at: int | None
    decision_comment: str
    result_version: int | None  # the version made in the target registry, once approved


@dataclass(frozen=True)
class Comment(WireObject):
    id: int
    object_type: str  # run | model_version
    object_id: str
    author: str
    text: str  # empty once deleted
    created_at: int
    updated_at: int
    deleted: bool


@dataclass(frozen=True)
class Registry(WireObject):
    name: str
    description: str
    protected: bool
    default: bool  # dev and prod: every workspace has them; they are reset, not deleted
    created_at: int


@dataclass(frozen=True)
class RegisteredModel(WireObject):
    name: str  # <registry>.<model>
    registry: str
    model: str
    description: str
    lifecycle: str
    tags: dict[str, str]
    aliases: dict[str, int]
    latest_version: int | None
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class AliasMove(WireObject):
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str
    time: int


@dataclass(frozen=True)
class LoggedModel(WireObject):
    id: str
    run_id: str | None  # None for a model logged outside any run
    experiment_id: int
    name: str
    step: int | None
    artifact_path: str
    flavor: str
    uri: str
    created_at: int
    manifest: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class ArtifactVersion(WireObject):
    path: str
    version: int
    digest: str  # sha256:<hex>
    size: int
    created_at: int
    created_by: str
