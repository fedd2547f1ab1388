"""Real Airflow 3 against a real ``cairn server --auth``.

These tests run in their own virtual environment (``.venv-airflow``, made by scripts/test), with
``CAIRN_AIRFLOW_TESTS=1`` and ``--confcutdir tests/integrations/airflow``: the main run leaves this folder
out (tests/conftest.py), and this run does not load the main conftest, whose server-side imports need the
test environment's versions (Airflow pins FastAPI lower). The Airflow venv holds only what a DAG author's
environment would: Airflow and the SDK. The Cairn server runs from the test environment
(CAIRN_SERVER_PYTHON, default ``.venv/bin/python`` of this checkout) on this checkout's source. Airflow reads its
configuration when it is first imported, so AIRFLOW_HOME (a temporary folder with a SQLite metadata
database and a DAGs folder) is set here, before anything imports it; ``airflow db migrate`` runs once.
If Airflow is not installed, importing it below fails the run: these tests are never skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HOME = Path(tempfile.mkdtemp(prefix="cairn-airflow-home-"))
DAGS = HOME / "dags"
DAGS.mkdir()
os.environ.update({
    "AIRFLOW_HOME": str(HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME / 'airflow.db'}",
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
})

import airflow  # noqa: E402  (after the configuration above; an ImportError here fails the run loudly)
import httpx  # noqa: E402

import cairn  # noqa: E402

PASSWORD = "root passphrase 1"
REPO = Path(__file__).resolve().parents[3]
SERVER_PYTHON = os.environ.get("CAIRN_SERVER_PYTHON") or str(REPO / ".venv" / "bin" / "python")
assert airflow.__version__.startswith("3."), airflow.__version__


def server_env(**extra: str) -> dict[str, str]:
    """The server's environment: this checkout's source first, nothing of Airflow's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    return {**env, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")]), **extra}


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SERVER_PYTHON, "-m", "cairn", *args], capture_output=True, text=True, timeout=120,
                          env=server_env(**env), check=False, stdin=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """``cairn server --auth`` on a free loopback port, stopped by the session."""

    def __init__(self, home: Path, store_uri: str) -> None:
        self.home, self.store_uri, self.port = home, store_uri, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> LiveServer:
        self.home.mkdir(parents=True, exist_ok=True)
        command = [SERVER_PYTHON, "-m", "cairn", "server", "--auth", "--host", "127.0.0.1", "--port", str(self.port),
                   "--store-uri", self.store_uri]
        log = self.home / "server.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(command, env=server_env(CAIRN_HOME=str(self.home)), stdout=out,
                                            stderr=out, stdin=subprocess.DEVNULL)
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

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture(scope="session", autouse=True)
def airflow_db() -> Iterator[Path]:
    """The metadata database, migrated once for the session; the home folder goes at the end."""
    done = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True,
                          timeout=300, check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    yield HOME
    shutil.rmtree(HOME, ignore_errors=True)


@dataclass
class World:
    """A live server with a workspace ``ml`` that requires approval, the service account ``ci`` (editor)
    that the DAGs run as (connection ``cairn_default``), ``deployer`` (maintainer, connection ``cairn_deploy``)
    that moves the serving alias in prod, and ``bob``, a maintainer who reviews promotions."""

    url: str
    root: cairn.Client
    ci_token: str
    bob: cairn.Client
    workspace: str = "ml"

    def client(self) -> cairn.Client:
        return cairn.Client(self.url, token=self.ci_token, workspace=self.workspace)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root_dir = tmp_path_factory.mktemp("cairn-server")
    store = f"sqlite:///{root_dir / 'store.db'}"
    made = cli("admin", "--store-uri", store, "create-user", "root", "--admin", CAIRN_PASSWORD=PASSWORD)
    assert made.returncode == 0, made.stderr
    token = cli("admin", "--store-uri", store, "create-token", "root", "--name", "setup", "--scope", "admin",
                "--expires", "1d")
    assert token.returncode == 0, token.stderr
    live = LiveServer(root_dir / "home", store).start()
    root = cairn.Client(live.url, token=token.stdout.strip(), workspace="ml")
    root.create_user("ci", service=True)
    root.create_user("deployer", service=True)
    root.create_user("bob", "bob passphrase 2")
    root.create_workspace("ml", require_approval=True)
    root.add_member("ml", "ci", "editor")
    root.add_member("ml", "bob", "maintainer")
    root.add_member("ml", "deployer", "maintainer")
    ci_token = root.create_token("airflow", user="ci", expires_in="1d").token
    bob_token = root.create_token("review", user="bob", expires_in="1d").token
    deploy_token = root.create_token("deploy", user="deployer", expires_in="1d").token
    assert ci_token and bob_token and deploy_token
    world = World(live.url, root, ci_token, cairn.Client(live.url, token=bob_token, workspace="ml"))
    os.environ["AIRFLOW_CONN_CAIRN_DEFAULT"] = json.dumps(
        {"conn_type": "cairn", "host": live.url, "password": ci_token, "extra": {"workspace": "ml"}})
    host, port = live.url.removeprefix("http://").split(":")  # the URI form, as many deployments write it
    os.environ["AIRFLOW_CONN_CAIRN_DEPLOY"] = f"cairn://:{deploy_token}@{host}:{port}/?workspace=ml&scheme=http"
    yield world
    os.environ.pop("AIRFLOW_CONN_CAIRN_DEFAULT", None)
    os.environ.pop("AIRFLOW_CONN_CAIRN_DEPLOY", None)
    from cairn.client._run import shutdown

    shutdown()
    live.stop()


def pytest_configure(config: pytest.Config) -> None:
    """Warnings that Airflow's own dependencies raise inside Airflow (not ours to fix) stay warnings."""
    config.addinivalue_line("filterwarnings", "default::DeprecationWarning:starlette.testclient")
    config.addinivalue_line("filterwarnings", "default:Using `httpx` with `starlette.testclient`")
