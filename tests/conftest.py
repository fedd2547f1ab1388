"""Shared fixtures. Store and API tests run on SQLite and on PostgreSQL.

PostgreSQL comes from CAIRN_TEST_POSTGRES_URL (``scripts/test`` starts the server and sets it).
Without it the PostgreSQL half fails loudly; set CAIRN_TEST_SKIP_POSTGRES=1 to skip it on purpose.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import create_engine, text

from cairn._embedded import ASGIBridge
from cairn.server.app import create_app
from cairn.server.authz import unrestricted
from cairn.server.db.engine import Database, sqlite_url
from cairn.server.db.models import Base
from cairn.server.services import accounts, workspaces
from cairn.server.services.context import Context
from cairn.server.settings import Settings

# The Airflow provider's tests need Airflow, which lives in its own virtual environment (.venv-airflow: its
# pins are not the test environment's); scripts/test runs them there, with CAIRN_AIRFLOW_TESTS=1, as a second
# pytest invocation. Anywhere else they are left out, not skipped: that run does not import them at all.
if os.environ.get("CAIRN_AIRFLOW_TESTS") != "1":
    collect_ignore = ["integrations/airflow"]

PG_ENV = "CAIRN_TEST_POSTGRES_URL"
STORES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "cairn.db"
    db = Database(sqlite_url(path))
    db.upgrade()
    with db.engine.connect() as conn:  # fold the WAL into the main file, so a plain copy is complete
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CAIRN_TEST_SKIP_POSTGRES") == "1":
            pytest.skip("PostgreSQL deliberately skipped (CAIRN_TEST_SKIP_POSTGRES=1)")
        pytest.fail(f"{PG_ENV} is not set: run the suite with scripts/test, which starts PostgreSQL")
    db = Database(url)
    with db.engine.begin() as conn:  # start from an empty schema each session
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    db.upgrade()
    db.dispose()
    return url


def _truncate_postgres(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        conn.execute(text("INSERT INTO workspaces (name, created_at) VALUES ('default', 0)"))
        conn.execute(text("INSERT INTO registries (workspace_id, name, description, protected, created_at) "
                          "VALUES (1, 'dev', '', false, 0), (1, 'prod', '', true, 0)"))
    engine.dispose()


@pytest.fixture(params=STORES)
def store_uri(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "store" / "cairn.db"
        path.parent.mkdir()
        shutil.copyfile(sqlite_template, path)
        return sqlite_url(path)
    url: str = request.getfixturevalue("postgres_url")
    _truncate_postgres(url)
    return url


@pytest.fixture
def settings(store_uri: str, tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", store_uri=store_uri, artifact_root=tmp_path / "artifacts",
                    allowed_hosts=["testserver"])


@pytest.fixture
def app(settings: Settings) -> Iterator[Any]:
    application = create_app(settings)
    yield application
    application.state.db.dispose()


@pytest.fixture
def api(app: Any) -> Iterator[httpx.Client]:
    """An HTTP client wired to the app in-process (the same bridge embedded mode uses)."""
    with httpx.Client(transport=ASGIBridge(app), base_url="http://testserver") as client:
        yield client


@pytest.fixture
def run_id(api: httpx.Client) -> str:
    response = api.post("/api/v1/runs", json={"experiment_name": "exp"})
    assert response.status_code == 201, response.text
    return str(response.json()["run_id"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """A real ``cairn server`` process on a free loopback port."""

    def __init__(self, home: Path, store_uri: str, port: int | None = None, workers: int = 1,
                 args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        self.home, self.store_uri, self.workers = home, store_uri, workers
        self.args, self.env = args, env or {}
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> LiveServer:
        env = {**os.environ, "CAIRN_HOME": str(self.home), **self.env}
        command = [sys.executable, "-m", "cairn", "server", "--host", "127.0.0.1", "--port", str(self.port),
                   "--store-uri", self.store_uri, "--workers", str(self.workers), *self.args]
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.home / "server.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=out)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("server did not become healthy in 30 s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture
def live_server(store_uri: str, tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "server-home", store_uri).start()
    yield server
    server.stop()


@pytest.fixture
def sdk_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A clean SDK environment: its own CAIRN_HOME, no tracking URI, short retry window."""
    home = tmp_path / "client-home"
    monkeypatch.setenv("CAIRN_HOME", str(home))
    for name in ("CAIRN_TRACKING_URI", "CAIRN_TOKEN", "CAIRN_WORKSPACE", "CAIRN_MODE"):
        monkeypatch.delenv(name, raising=False)
    yield home
    from cairn.client._run import shutdown

    shutdown()


# --- authentication mode ----------------------------------------------------------------------------------

SECRET_KEY = "test-secret-key-" + "k" * 40


class AuthWorld:
    """An app in authentication mode, with helpers that make users, workspaces and tokens in the store.
    Users made without a password are service accounts (no argon2 cost), reached with tokens."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._clients: list[httpx.Client] = []

    def _write(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with self.app.state.db.session(write=True) as session:
            return fn(session, *args, **kwargs)

    def user(self, name: str, *, admin: bool = False, password: str | None = None) -> str:
        """Make a user; returns a write token (an admin token for admins)."""
        self._write(accounts.create_user, "setup", name, password, admin=admin, service=password is None)
        return self.token(name, "admin" if admin else "write")

    def token(self, user: str, scope: str = "write", expires_in: int | None = None) -> str:
        def make(session: Any) -> str:
            owner = accounts.get_user(session, user)
            identity = accounts.Identity(owner.id, "setup", True, "admin", "local")
            return accounts.create_token(session, identity, f"t-{scope}", scope, expires_in, user=user)[1]
        return str(self._write(make))

    def workspace(self, name: str, members: dict[str, str], *, require_approval: bool = False) -> None:
        def make(session: Any) -> None:
            row = workspaces.create_workspace(session, "setup", name, require_approval=require_approval)
            ctx = Context(row.id, name, "setup", "", unrestricted("setup"))
            for user, role in members.items():
                workspaces.add_member(session, ctx, role, user=user)
        self._write(make)

    def client(self, token: str | None = None, workspace: str = "default", *, https: bool = False,
               **kwargs: Any) -> httpx.Client:
        headers = {"X-Cairn-Workspace": workspace}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        client = httpx.Client(transport=ASGIBridge(self.app), base_url=f"{'https' if https else 'http'}://testserver",
                              headers=headers, **kwargs)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()


@pytest.fixture
def auth_settings(settings: Settings) -> Settings:
    settings.auth = True
    settings.secret_key = SECRET_KEY
    settings.login_policy = accounts.LoginPolicy(delay_after=3, block_after=5, window_seconds=600,
                                                 block_seconds=600, max_delay=0.05)
    return settings


@pytest.fixture
def world(auth_settings: Settings) -> Iterator[AuthWorld]:
    application = create_app(auth_settings)
    world = AuthWorld(application)
    yield world
    world.close()
    application.state.db.dispose()


def all_routes(app: Any) -> list[tuple[str, set[str], Any]]:
    """Every effective route of the app, with included routers flattened: (path, methods, dependant)."""
    found = []
    for context in iter_route_contexts(app.routes):
        if context.path is None:
            continue
        dependant = getattr(context, "dependant", None)
        found.append((context.path, set(context.methods or ()), dependant))
    return found


def declared_actions(dependant: Any) -> list[str]:
    """The actions a route declares through cairn.server.api.auth.requires (one, if it is correct)."""
    if dependant is None:
        return []
    return [action for d in dependant.dependencies if (action := getattr(d.call, "cairn_action", None))]
