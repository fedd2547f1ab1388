"""Shared fixtures. Store and API tests run on SQLite and on PostgreSQL.

PostgreSQL comes from CAIRN_TEST_POSTGRES_URL (``scripts/test`` starts the server and sets it).
Without it the PostgreSQL half fails loudly; set CAIRN_TEST_SKIP_POSTGRES=1 to skip it on purpose.

Artifacts go to a local folder, or (for the modules that mark themselves with ``ARTIFACT_STORES``) also
to a bucket on a real S3 endpoint: ``moto_server``, started once per session on a free loopback port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

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
def postgres_url() -> Iterator[str]:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CAIRN_TEST_SKIP_POSTGRES") == "1":
            pytest.skip("PostgreSQL deliberately skipped (CAIRN_TEST_SKIP_POSTGRES=1)")
        pytest.fail(f"{PG_ENV} is not set: run the suite with scripts/test, which starts PostgreSQL")
    url = _worker_database(url)
    db = Database(url)
    with db.engine.begin() as conn:  # start from an empty schema each session
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    db.upgrade()
    db.dispose()
    yield url
    for engine in _PG_ENGINES.values():
        engine.dispose()


def _worker_database(url: str) -> str:
    """Under pytest-xdist each worker resets and fills a database of its own, ``<name>_<worker>`` (gw0, gw1, ...)
    beside the configured one, made through the same URL (the test role may create databases) on first use."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    base = make_url(url)
    name = f"{base.database}_{worker}"
    server = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with server.connect() as conn:
        if conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}) is None:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    return base.set(database=name).render_as_string(hide_password=False)


_PG_ENGINES: dict[str, Any] = {}


def _truncate_postgres(url: str) -> None:
    """Empty the tables a test wrote to and restart every id sequence. Deleting from the few non-empty tables
    is ~10x cheaper than TRUNCATE of all of them, which rewrites every table's files (the suite's largest
    per-test cost on PostgreSQL)."""
    engine = _PG_ENGINES.get(url) or _PG_ENGINES.setdefault(url, create_engine(url, pool_size=1))
    tables = Base.metadata.sorted_tables
    probe = " UNION ALL ".join(f"SELECT '{t.name}' WHERE EXISTS (SELECT 1 FROM {t.name})" for t in tables)
    with engine.begin() as conn:
        filled = set(conn.execute(text(probe)).scalars())
        for table in reversed(tables):  # children before their parents
            if table.name in filled:
                conn.execute(text(f"DELETE FROM {table.name}"))
        conn.execute(text("SELECT setval(oid, 1, false) FROM pg_class WHERE relkind = 'S'"))
        conn.execute(text("INSERT INTO workspaces (name, created_at) VALUES ('default', 0)"))
        conn.execute(text("INSERT INTO registries (workspace_id, name, description, protected, created_at) "
                          "VALUES (1, 'dev', '', false, 0), (1, 'prod', '', true, 0)"))


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


S3_BUCKET = "cairn-test"
# for a test module whose tests should also run with their blobs in a bucket:
#     pytestmark = pytest.mark.parametrize("artifact_root", ARTIFACT_STORES, indirect=True)
ARTIFACT_STORES = ["local", pytest.param("s3", marks=pytest.mark.s3)]


def _moto_server() -> str:
    found = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    if not Path(found).exists():
        pytest.fail("moto_server is not installed: pip install -e '.[test,s3]' (scripts/test does)")
    return found


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3 protocol endpoint (moto in server mode) on loopback, with the bucket ``S3_BUCKET``, and
    the AWS variables that point boto3 (in this process and in server processes) at it."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        process = subprocess.Popen([_moto_server(), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    patch = pytest.MonkeyPatch()
    try:
        _wait_for(url, process, log)
        for name, value in {"AWS_ENDPOINT_URL_S3": url, "AWS_ACCESS_KEY_ID": "testing",
                            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            patch.delenv(name, raising=False)
        assert httpx.put(f"{url}/{S3_BUCKET}").status_code == 200
        yield url
    finally:
        patch.undo()
        process.terminate()
        process.wait(10)


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited: {log.read_text()[-2000:]}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("moto_server did not answer in 30 s")


@pytest.fixture
def artifact_root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's blobs go: a folder, or (param "s3") a fresh prefix in the test bucket."""
    if getattr(request, "param", "local") == "s3":
        request.getfixturevalue("s3_endpoint")
        return f"s3://{S3_BUCKET}/{uuid.uuid4().hex}"
    return str(tmp_path / "artifacts")


@pytest.fixture
def settings(store_uri: str, tmp_path: Path, artifact_root: str) -> Settings:
    return Settings(home=tmp_path / "home", store_uri=store_uri, artifact_root=artifact_root,
                    allowed_hosts=["testserver"])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A bucket pairs with SQLite only: the bucket store does not touch the database, and PostgreSQL's
    half already runs every one of these tests with local blobs (this keeps the bucket's CI cost small)."""
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        both = params.get("artifact_root") == "s3" and params.get("store_uri") == "postgresql"
        (dropped if both else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def write_blob(artifact_root: str, digest: str, data: bytes) -> None:
    """Overwrite a stored blob behind the server's back (to prove that corruption is caught)."""
    hexdigest = digest.partition(":")[2]
    if artifact_root.startswith("s3://"):
        from cairn.server.storage.s3 import S3BlobStore

        store = S3BlobStore(artifact_root)
        store.client.put_object(Bucket=store.bucket, Key=store.key_for(digest), Body=data)
        return
    next(Path(artifact_root).rglob(hexdigest)).write_bytes(data)


def stored_blobs(app: Any) -> set[str]:
    """The digests the app's blob store holds, wherever it keeps them."""
    return set(app.state.blobs.blobs())


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
        self.stop()  # not left running (and loading the machine) after the test gave up on it
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
def live_server(store_uri: str, tmp_path: Path, artifact_root: str) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "server-home", store_uri, args=("--artifact-root", artifact_root)).start()
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


def admin_with_workspace(store_uri: str, workspace: str, password: str = "root passphrase 1") -> str:
    """An admin ``root`` owning ``workspace``, made with ``cairn admin`` in the store; answers a write token."""
    env = {**os.environ, "CAIRN_PASSWORD": password}
    admin = [sys.executable, "-m", "cairn", "admin", "--store-uri", store_uri]
    subprocess.run([*admin, "create-user", "root", "--admin"], env=env, check=True, capture_output=True)
    subprocess.run([*admin, "create-workspace", workspace, "--owner", "root"], env=env, check=True,
                   capture_output=True)
    return subprocess.run([*admin, "create-token", "root", "--name", "t", "--scope", "write"], env=env,
                          check=True, capture_output=True, text=True).stdout.strip()
