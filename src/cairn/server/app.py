"""create_app(settings): the ASGI application serving the API (and, later, the UI)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

import cairn
from cairn.server.api import accounts, artifacts, experiments, mlflow, registry, reviews, runs, workspaces
from cairn.server.api.auth import HostCheck, WorkspacePrefix
from cairn.server.api.common import JSON, install_error_handlers
from cairn.server.db.engine import Database
from cairn.server.settings import Settings
from cairn.server.storage.blobs import LocalBlobStore


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> FastAPI:
    settings = settings or Settings.from_env()
    db = Database(settings.resolved_store_uri)
    if migrate:
        db.upgrade()
    app = FastAPI(title="Cairn", version=cairn.__version__, default_response_class=JSON)
    app.state.settings = settings
    app.state.db = db
    app.state.blobs = LocalBlobStore(settings.resolved_artifact_root)
    install_error_handlers(app)
    app.add_middleware(WorkspacePrefix)
    app.add_middleware(HostCheck, settings=settings)
    # reviews before registry: the registry's catch-all for stray /models/... paths must come last
    for module in (accounts, workspaces, experiments, runs, artifacts, reviews, registry, mlflow):
        app.include_router(module.router)
    app.include_router(mlflow.artifacts_router)
    app.include_router(mlflow.info_router)

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": cairn.__version__}

    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn worker processes: settings come from CAIRN_* variables."""
    return create_app(Settings.from_env(), migrate=False)
