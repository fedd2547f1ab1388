"""A live ``cairn server --auth`` and a terraform working directory that finds terraform-provider-cairn
through ``dev_overrides`` (TF_CLI_CONFIG_FILE): no registry, no ``terraform init``, nothing leaves
127.0.0.1. One server for the module; each test writes its own configuration."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from cairn.server.db.engine import Database, sqlite_url
from cairn.server.services import accounts
from tests.conftest import LiveServer

TERRAFORM_TIMEOUT = 180


def _provider_script() -> Path:
    script = Path(sys.executable).parent / "terraform-provider-cairn"
    if not script.exists():
        found = shutil.which("terraform-provider-cairn")
        if found is None:
            pytest.fail("terraform-provider-cairn is not installed: pip install -e '.[test,opentofu]'")
        script = Path(found)
    return script


@pytest.fixture
def store_uri(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite only: these tests are about the provider; the server operations it relies on are tested on
    both stores in tests/server/api/test_removal.py."""
    path = tmp_path / "store" / "cairn.db"
    path.parent.mkdir()
    shutil.copyfile(sqlite_template, path)
    return sqlite_url(path)


@pytest.fixture(scope="module")
def terraform_binary() -> str:
    found = shutil.which("terraform") or shutil.which("tofu")  # the same plugin protocol (6)
    if found is None:
        pytest.fail("neither terraform nor tofu is on PATH; these tests drive it for real (see scripts/test)")
    return found


@dataclass
class Cairn:
    """The live server, as its admin."""

    server: LiveServer
    token: str
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=f"{self.server.url}/api/v1", timeout=30,
                                 headers={"Authorization": f"Bearer {self.token}"})

    def call(self, method: str, path: str, workspace: str = "default", **kwargs: Any) -> Any:
        response = self.http.request(method, path, headers={"X-Cairn-Workspace": workspace}, **kwargs)
        assert response.is_success, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def snapshot(self) -> dict[str, Any]:
        """What a set-up changes on the server, to compare before and after."""
        return {"workspaces": sorted(w["name"] for w in self.call("GET", "/workspaces")["workspaces"]),
                "teams": self.call("GET", "/teams")["teams"],
                "users": [(u["name"], u["service"], u["disabled"]) for u in self.call("GET", "/users")["users"]],
                "registries": self.call("GET", "/registries")["registries"]}


@pytest.fixture(scope="module")
def cairn(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Cairn]:
    home = tmp_path_factory.mktemp("cairn-home")
    shutil.copyfile(sqlite_template, home / "cairn.db")  # already migrated
    store = sqlite_url(home / "cairn.db")
    db = Database(store)
    with db.session(write=True) as session:
        root = accounts.create_user(session, "setup", "root", None, admin=True, service=True)
        identity = accounts.Identity(root.id, "root", True, "admin", "local")
        token = accounts.create_token(session, identity, "terraform", "admin", None)[1]
    db.dispose()
    server = LiveServer(home, store, args=("--auth",)).start()
    cairn = Cairn(server, token)
    yield cairn
    cairn.http.close()
    server.stop()


@dataclass
class Terraform:
    """One working directory and the environment terraform runs in."""

    binary: str
    workdir: Path
    env: dict[str, str]

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        flags = [] if args[0] in ("output", "state") else ["-no-color"]  # flags go before ADDR ID (import)
        return subprocess.run([self.binary, args[0], *flags, *args[1:]], cwd=self.workdir,
                              env={**self.env, **(env or {})}, capture_output=True, text=True,
                              timeout=TERRAFORM_TIMEOUT, check=False)

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, f"terraform {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def apply(self) -> str:
        return self.ok("apply", "-auto-approve", "-input=false")

    def plan_exit(self, env: dict[str, str] | None = None) -> tuple[int, str]:
        """``plan -detailed-exitcode``: 0 no changes, 2 changes, 1 error."""
        done = self.run("plan", "-detailed-exitcode", "-input=false", env=env)
        return done.returncode, done.stdout + done.stderr

    def write(self, name: str, text: str) -> None:
        (self.workdir / name).write_text(text)

    def state(self) -> dict[str, Any]:
        return dict(json.loads(self.ok("show", "-json")))


def make_terraform(binary: str, root: Path, cairn: Cairn) -> Terraform:
    plugins, workdir = root / "plugins", root / "work"
    plugins.mkdir()
    workdir.mkdir()
    (plugins / "terraform-provider-cairn").symlink_to(_provider_script())
    config = root / "cli.tfrc"
    config.write_text('provider_installation {\n  dev_overrides {\n'
                      f'    "cairn-ml/cairn" = "{plugins}"\n  }}\n}}\n')
    env = {"PATH": os.environ["PATH"], "HOME": str(root), "TF_CLI_CONFIG_FILE": str(config),
           "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1", "CAIRN_TOKEN": cairn.token,
           "CAIRN_TRACKING_URI": cairn.server.url}
    return Terraform(binary, workdir, env)
