"""Cairn: experiment tracking, model registry and collaboration for machine-learning teams.

    import cairn

    with cairn.start_run(experiment="mnist") as run:
        run.log_params({"lr": 0.01})
        run.define_metric("val_loss", goal="min")
        run.log_metrics({"loss": 0.3, "val_loss": 0.4}, step=0)

    cairn.Client().get_run(run.id).metrics["val_loss"].best
"""

__version__ = "0.1.0"

from typing import Any

from cairn.client import _transport as _transport_module
from cairn.client._client import Client
from cairn.client._collab import Comment, Event, Member, PromotionRequest, Token, User, Workspace
from cairn.client._errors import (
    APIError,
    AuthenticationError,
    CairnError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from cairn.client._flavors import (
    MissingDependencyError,
    ModelError,
    ModelIntegrityError,
    SignatureMismatchError,
)
from cairn.client._models import (
    ArtifactInfo,
    ArtifactVersion,
    Dataset,
    Experiment,
    MetricHistory,
    MetricPoint,
    MetricSummary,
    ParamEntry,
    Run,
    RunList,
)
from cairn.client._registry import (
    AliasMove,
    LoggedModel,
    ModelVersion,
    RegisteredModel,
    Registry,
)
from cairn.client._run import (
    ActiveRun,
    active_run,
    define_metric,
    finish,
    flush,
    log_artifact,
    log_artifacts,
    log_dataset,
    log_metric,
    log_metrics,
    log_model,
    log_param,
    log_params,
    set_tag,
    set_tags,
    start_run,
)


def load_model(uri: str) -> Any:
    """Load ``models:/<registry>.<model>/<version>``, ``models:/<registry>.<model>@<alias>`` or
    ``runs:/<run_id>/<name>``; returns an object with ``predict`` (checked against the signature). Models logged
    by the mlflow client load through ``mlflow.pyfunc``, which must then be installed."""
    return Client().load_model(uri)


def _embedded_transport(home: str):  # type: ignore[no-untyped-def]
    from cairn._embedded import make_transport

    return make_transport(home)


_transport_module.set_embedded_factory(_embedded_transport)

__all__ = [
    "APIError",
    "ActiveRun",
    "AliasMove",
    "ArtifactInfo",
    "ArtifactVersion",
    "AuthenticationError",
    "CairnError",
    "Client",
    "Comment",
    "ConflictError",
    "Dataset",
    "Event",
    "Experiment",
    "InvalidRequestError",
    "LoggedModel",
    "Member",
    "MetricHistory",
    "MetricPoint",
    "MetricSummary",
    "MissingDependencyError",
    "ModelError",
    "ModelIntegrityError",
    "ModelVersion",
    "NotFoundError",
    "ParamEntry",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PromotionRequest",
    "RateLimitedError",
    "RegisteredModel",
    "Registry",
    "Run",
    "RunList",
    "ServerError",
    "SignatureMismatchError",
    "Token",
    "TransportError",
    "User",
    "Workspace",
    "__version__",
    "active_run",
    "define_metric",
    "finish",
    "flush",
    "load_model",
    "log_artifact",
    "log_artifacts",
    "log_dataset",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "set_tag",
    "set_tags",
    "start_run",
]
