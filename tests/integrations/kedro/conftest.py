"""Fixtures for the Kedro plugin's tests: the project (made once), ``kedro`` in a subprocess, a live
``cairn server --auth`` shared by the session. Kedro is imported here on purpose: without it these tests
fail at collection instead of being skipped."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import kedro  # noqa: F401 the tests need the real Kedro; missing, they must fail
import pytest

import cairn
from cairn.server.db.engine import sqlite_url
from tests.conftest import LiveServer
from tests.integrations.kedro.project import make_project

KEDRO = str(Path(sys.executable).with_name("kedro"))


@dataclass
class Kedro:
    """A copy of the project and the environment its ``kedro`` commands run with."""

    project: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([KEDRO, *args], cwd=self.project, env={**self.env, **env}, capture_output=True,
                              text=True, timeout=300, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"kedro {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def client(self) -> cairn.Client:
        return cairn.Client(self.env.get("CAIRN_TRACKING_URI"), token=self.env.get("CAIRN_TOKEN"))


@pytest.fixture(scope="session")
def project_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("kedro-template"))


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAIRN_", "KEDRO_"))}
    return {**env, "CAIRN_HOME": str(home), "CAIRN_RETRY_TIMEOUT": "2", "KEDRO_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "1", "MPLBACKEND": "Agg"}


@pytest.fixture
def embedded(project_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Kedro]:
    """The project against the embedded store of its own CAIRN_HOME."""
    project = tmp_path / "project"
    shutil.copytree(project_template, project)
    env = base_env(tmp_path / "cairn-home")
    monkeypatch.setenv("CAIRN_HOME", env["CAIRN_HOME"])
    for name in ("CAIRN_TRACKING_URI", "CAIRN_TOKEN", "CAIRN_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)
    yield Kedro(project, env)
    from cairn.client._run import shutdown

    shutdown()


@dataclass
class Server:
    live: LiveServer
    token: str


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``cairn server --auth`` for the session (SQLite store), and an admin's write token."""
    root = tmp_path_factory.mktemp("kedro-server")
    store = sqlite_url(root / "store" / "cairn.db")
    (root / "store").mkdir()
    admin = [sys.executable, "-m", "cairn", "admin", "--store-uri", store]
    env = {**os.environ, "CAIRN_HOME": str(root / "home"), "CAIRN_PASSWORD": "a-long-enough-password-1"}
    subprocess.run([*admin, "create-user", "root", "--admin"], env=env, check=True, capture_output=True)
    token = subprocess.run([*admin, "create-token", "root", "--name", "kedro", "--scope", "write"], env=env,
                           check=True, capture_output=True, text=True).stdout.strip()
    live = LiveServer(root / "home", store, args=("--auth",)).start()
    yield Server(live, token)
    live.stop()


@pytest.fixture
def remote(project_template: Path, tmp_path: Path, auth_server: Server) -> Iterator[Kedro]:
    """The project against the live server, with the token in the environment."""
    project = tmp_path / "project"
    shutil.copytree(project_template, project)
    env = base_env(tmp_path / "cairn-home")
    env.update(CAIRN_TRACKING_URI=auth_server.live.url, CAIRN_TOKEN=auth_server.token)
    yield Kedro(project, env)
    from cairn.client._run import shutdown

    shutdown()
