"""create_app(settings): the ASGI application serving the API (and, later, the UI)."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from cairn.server import observability
from cairn.server.api import (
    accounts,
    artifacts,
    conventions,
    experiments,
    mlflow,
    mlflow_multipart,
    registry,
    reviews,
    runs,
    uploads,
    workspaces,
)
from cairn.server.api.auth import Access, HostCheck, WorkspacePrefix, requires
from cairn.server.api.common import JSON, install_error_handlers
from cairn.server.api.limits import BodyLimits, SecurityHeaders
from cairn.server.api.routing import IndexedRouter
from cairn.server.db.engine import Database
from cairn.server.settings import Settings
from cairn.server.storage.blobs import open_blob_store

# the distribution's metadata, not ``cairn.__version__``: importing the SDK package would load it into the server
VERSION = version("cairn-ml")


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> FastAPI:
    settings = settings or Settings.from_env()
    db = Database(settings.resolved_store_uri, fast_metric_commit=settings.metric_commit == "fast")
    try:
        if migrate:
            db.upgrade()
        else:  # a worker process: the parent migrated; still refuse a store a newer server has migrated since
            db.check_schema()
    except BaseException:
        db.dispose()
        raise
    app = FastAPI(title="Cairn", version=VERSION, default_response_class=JSON)
    app.state.settings = settings
    app.state.db = db
    app.state.blobs = open_blob_store(settings.resolved_artifact_root, spool=settings.home / "tmp")
    install_error_handlers(app)
    app.add_middleware(BodyLimits, fastapi=app)  # every body bounded before a route reads it
    app.add_middleware(WorkspacePrefix)
    app.add_middleware(HostCheck, settings=settings)
    app.add_middleware(SecurityHeaders)
    if settings.metrics:  # outermost: every answer is counted, refusals included
        for i, engine in enumerate(db.engines):
            observability.watch_engine(engine, pool=i == 0)
        app.add_middleware(observability.MetricsMiddleware)
        if not settings.embedded:
            observability.Publisher(settings.home / "metrics")
    # runs first: a request is matched against the routes in order, and logging is the busiest path.
    # Safe because the runs router has no catch-all (artifacts, reviews and registry also serve paths
    # under /api/v1/runs/...). Reviews before registry: the registry's catch-all for stray /models/...
    # paths must come last.
    for module in (runs, accounts, workspaces, conventions, experiments, artifacts, uploads, reviews, registry, mlflow,
                   mlflow_multipart):
        app.include_router(module.router)
    app.include_router(mlflow.artifacts_router)
    app.include_router(mlflow.info_router)

    install_operations(app, settings)

    install_ui(app)
    app.router.middleware_stack = IndexedRouter(app.router.middleware_stack, app.router.routes)
    return app


def install_operations(app: FastAPI, settings: Settings) -> None:
    """/health (the process answers), /ready (it can reach its database and artifact store: what a load
    balancer should route on) and, with CAIRN_METRICS=1, Prometheus /metrics. All public: they say
    nothing about the data; keep /metrics to the monitoring network at the proxy (docs/deployment.md)."""

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": VERSION}

    @app.get("/ready", tags=["meta"])
    def ready(access: Access = requires("public")) -> Any:
        problems = readiness_problems(app)
        return JSON({"status": "unavailable" if problems else "ready", **problems},
                    status_code=503 if problems else 200)

    @app.get("/metrics", tags=["meta"], response_class=PlainTextResponse)
    def metrics(access: Access = requires("public")) -> Any:
        if not settings.metrics:
            return PlainTextResponse("metrics are off: start the server with --metrics (CAIRN_METRICS=1)",
                                     status_code=404)
        folder = None if settings.embedded else settings.home / "metrics"
        return PlainTextResponse(observability.exposition(folder), media_type="text/plain; version=0.0.4")


def readiness_problems(app: FastAPI) -> dict[str, str]:
    """What this process cannot reach, by part ("database", "artifacts"); empty when ready."""
    problems: dict[str, str] = {}
    try:
        with app.state.db.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:  # any failure means: do not send requests here
        problems["database"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    try:
        app.state.blobs.check()
    except Exception as exc:
        problems["artifacts"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    return problems


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
