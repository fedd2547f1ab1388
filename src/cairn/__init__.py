"""Cairn: experiment tracking, model registry and collaboration for machine-learning teams.

    import cairn

    with cairn.start_run(experiment="mnist") as run:
        run.log_params({"lr": 0.01})
        run.define_metric("val_loss", goal="min")
        run.log_metrics({"loss": 0.3, "val_loss": 0.4}, step=0)

    cairn.Client().get_run(run.id).metrics["val_loss"].best
"""

__version__ = "0.1.0"

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cairn._wire import (
        AliasMove,
        ArtifactVersion,
        Comment,
        Event,
        LoggedModel,
        PromotionRequest,
        RegisteredModel,
        Registry,
        User,
        Workspace,
    )
    from cairn.client._client import Client
    from cairn.client._collab import Member, Token
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
        Dataset,
        Experiment,
        MetricHistory,
        MetricPoint,
        MetricSummary,
        ParamEntry,
        Run,
        RunList,
    )
    from cairn.client._registry import ModelVersion
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

# The SDK is imported on first use of one of its names (PEP 562), so that a tool that only loads a plugin
# (Kedro's hooks and commands, at every ``kedro`` command) does not pay for the whole SDK.
_LAZY = {
    "APIError": "cairn.client._errors",
    "ActiveRun": "cairn.client._run",
    "AliasMove": "cairn._wire",
    "ArtifactInfo": "cairn.client._models",
    "ArtifactVersion": "cairn._wire",
    "AuthenticationError": "cairn.client._errors",
    "CairnError": "cairn.client._errors",
    "Client": "cairn.client._client",
    "Comment": "cairn._wire",
    "ConflictError": "cairn.client._errors",
    "Dataset": "cairn.client._models",
    "Event": "cairn._wire",
    "Experiment": "cairn.client._models",
    "InvalidRequestError": "cairn.client._errors",
    "LoggedModel": "cairn._wire",
    "Member": "cairn.client._collab",
    "MetricHistory": "cairn.client._models",
    "MetricPoint": "cairn.client._models",
    "MetricSummary": "cairn.client._models",
    "MissingDependencyError": "cairn.client._flavors",
    "ModelError": "cairn.client._flavors",
    "ModelIntegrityError": "cairn.client._flavors",
    "ModelVersion": "cairn.client._registry",
    "NotFoundError": "cairn.client._errors",
    "ParamEntry": "cairn.client._models",
    "PayloadTooLargeError": "cairn.client._errors",
    "PermissionDeniedError": "cairn.client._errors",
    "PromotionRequest": "cairn._wire",
    "RateLimitedError": "cairn.client._errors",
    "RegisteredModel": "cairn._wire",
    "Registry": "cairn._wire",
    "Run": "cairn.client._models",
    "RunList": "cairn.client._models",
    "ServerError": "cairn.client._errors",
    "SignatureMismatchError": "cairn.client._flavors",
    "Token": "cairn.client._collab",
    "TransportError": "cairn.client._errors",
    "User": "cairn._wire",
    "Workspace": "cairn._wire",
    "active_run": "cairn.client._run",
    "define_metric": "cairn.client._run",
    "finish": "cairn.client._run",
    "flush": "cairn.client._run",
    "log_artifact": "cairn.client._run",
    "log_artifacts": "cairn.client._run",
    "log_dataset": "cairn.client._run",
    "log_metric": "cairn.client._run",
    "log_metrics": "cairn.client._run",
    "log_model": "cairn.client._run",
    "log_param": "cairn.client._run",
    "log_params": "cairn.client._run",
    "set_tag": "cairn.client._run",
    "set_tags": "cairn.client._run",
    "start_run": "cairn.client._run",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cairn' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def load_model(uri: str) -> Any:
    """Load ``models:/<registry>.<model>/<version>``, ``models:/<registry>.<model>@<alias>`` or
    ``runs:/<run_id>/<name>``; returns an object with ``predict`` (checked against the signature). Models logged
    by the mlflow client load through ``mlflow.pyfunc``, which must then be installed."""
    from cairn.client._client import Client

    return Client().load_model(uri)


def _embedded_transport(home: str):  # type: ignore[no-untyped-def]
    """Embedded mode's transport; ``cairn.client`` registers it when the SDK is first imported."""
    from cairn._embedded import make_transport

    return make_transport(home)


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
