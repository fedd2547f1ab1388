"""create_app(settings): the ASGI application serving the API (and, later, the UI)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

import cairn
from cairn.server.api import accounts, artifacts, experiments, mlflow, registry, reviews, runs, workspaces
from cairn.server.api.auth import Access, HostCheck, WorkspacePrefix, requires
from cairn.server.api.common import JSON, install_error_handlers
from cairn.server.api.direct import DirectRoutes
from cairn.server.api.limits import BodyLimits, SecurityHeaders
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
    app.add_middleware(DirectRoutes, fastapi=app)  # innermost: after the Host check and the workspace prefix
    app.add_middleware(BodyLimits, fastapi=app)  # every body bounded before a route (or the above) reads it
    app.add_middleware(WorkspacePrefix)
    app.add_middleware(HostCheck, settings=settings)
    app.add_middleware(SecurityHeaders)
    # runs first: a request is matched against the routes in order, and logging is the busiest path.
    # Safe because the runs router has no catch-all (artifacts, reviews and registry also serve paths
    # under /api/v1/runs/...). Reviews before registry: the registry's catch-all for stray /models/...
    # paths must come last.
    for module in (runs, accounts, workspaces, experiments, artifacts, reviews, registry, mlflow):
        app.include_router(module.router)
    app.include_router(mlflow.artifacts_router)
    app.include_router(mlflow.info_router)

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": cairn.__version__}

    install_ui(app)

    return app


STATIC = Path(__file__).parent / "static"
UI_PAGES = ("/", "/login", "/experiments/{rest:path}", "/runs/{rest:path}", "/models", "/models/{rest:path}",
            "/compare", "/admin", "/admin/{rest:path}")


def install_ui(app: FastAPI) -> None:
    """The web UI: built files under /assets, and index.html for every other page URL (deep links)."""
    if (STATIC / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=STATIC / "assets"), name="assets")

    def ui_page(access: Access = requires("public")) -> Any:
        index = STATIC / "index.html"
        if not index.is_file():
            return PlainTextResponse("Cairn's web UI is not built here: install with Node.js and npm on the PATH "
                                     "(pip install .), or run `npm ci && npm run build` in ui/.", status_code=404)
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    for page in UI_PAGES:  # the UI's page URLs, so deep links and the back button work
        app.add_api_route(page, ui_page, methods=["GET"], include_in_schema=False)


def app_from_env() -> FastAPI:
    """Factory for uvicorn worker processes: settings come from CAIRN_* variables."""
    return create_app(Settings.from_env(), migrate=False)
