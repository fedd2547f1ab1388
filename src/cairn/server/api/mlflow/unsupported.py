"""What MLflow's server offers beyond tracking and the registry, answered as not supported.

Tracing, GenAI (assessments, scorers, evaluation datasets), the AI gateway, webhooks and the MLflow UI's
GraphQL endpoint are outside what Cairn does. Their routes answer 501 ``NOT_IMPLEMENTED`` with a message
that says so, in MLflow's error shape: the MLflow client turns that into an ``MlflowException``, which its
tracing exporter logs instead of raising into the code being traced.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from cairn.server.api.auth import Access, requires
from cairn.server.api.common import JSON, error_body
from cairn.server.api.mlflow.protocol import info_router

_AREAS = {
    "traces": "tracing", "unified-traces": "tracing", "get-online-trace-details": "tracing",
    "assessments": "tracing", "issues": "GenAI issues", "label-schemas": "GenAI label schemas",
    "review-queues": "GenAI review queues", "scorers": "GenAI scorers", "datasets": "evaluation datasets",
    "prompt-optimization": "prompt optimization", "webhooks": "webhooks", "gateway": "the AI gateway",
    "gateway-proxy": "the AI gateway", "endpoints": "the AI gateway", "secrets": "secrets",
    "workspaces": "MLflow's workspace API (Cairn's workspaces are managed with Cairn)",
    "graphql": "the MLflow UI's GraphQL API",
}
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@info_router.get("/api/3.0/mlflow/server-info")
@info_router.get("/ajax-api/3.0/mlflow/server-info")
def server_info(request: Request, access: Access = requires("public")) -> Any:
    """What MLflow clients ask before using workspaces; public, as in MLflow, and says nothing private.
    Multipart uploads go straight to the bucket when the artifact store is one."""
    return JSON({"store_type": "SqlStore", "workspaces_enabled": True, "trace_archival_enabled": False,
                 "multipart_uploads_enabled": request.app.state.blobs.direct, "multipart_downloads_enabled": False,
                 "features_enabled": []})


def not_supported(request: Request, access: Access = requires("experiment.read")) -> Any:
    """A feature of MLflow's server that Cairn does not have (answered to callers who could read the workspace,
    like the tracking routes beside it)."""
    parts = [p for p in request.url.path.split("/") if p]
    area = next((_AREAS[p] for p in parts if p in _AREAS), "this MLflow feature")
    message = (f"{area[0].upper()}{area[1:]} is not supported by Cairn, which does experiment tracking, the model "
               "registry and collaboration; training code is not affected")
    return JSON(error_body("NOT_IMPLEMENTED", message), status_code=501)


for _prefix in ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow", "/api/3.0/mlflow", "/ajax-api/3.0/mlflow"):
    for _area in ("traces", "unified-traces", "get-online-trace-details", "assessments", "issues", "label-schemas",
                  "review-queues", "scorers", "datasets", "prompt-optimization", "webhooks", "gateway",
                  "gateway-proxy", "secrets", "workspaces"):
        info_router.add_api_route(f"{_prefix}/{_area}", not_supported, methods=_METHODS, include_in_schema=False)
        info_router.add_api_route(f"{_prefix}/{_area}/{{rest:path}}", not_supported, methods=_METHODS,
                                  include_in_schema=False)
for _path in ("/graphql", "/ajax-api/graphql", "/api/2.0/gateway/{rest:path}", "/api/2.0/endpoints/{rest:path}"):
    info_router.add_api_route(_path, not_supported, methods=_METHODS, include_in_schema=False)
