"""MLflow's REST protocol, so that the unmodified ``mlflow`` client works against Cairn.

Served under ``/api/2.0/mlflow`` and ``/ajax-api/2.0/mlflow``, with artifacts through MLflow's proxy at
``/api/2.0/mlflow-artifacts/artifacts``. Every route is a thin adapter over the same services as the native
API (same permissions, isolation, validation and limits); only the shapes differ. One module per resource;
requests are read by ``protocol``, answers shaped by ``shapes``.
"""

from cairn.server.api.mlflow import artifacts, experiments, logged_models, registry, runs, unsupported
from cairn.server.api.mlflow.protocol import artifacts_router, info_router, router

__all__ = ["artifacts", "artifacts_router", "experiments", "info_router", "logged_models", "registry", "router",
           "runs", "unsupported"]
