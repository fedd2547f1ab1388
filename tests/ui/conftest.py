"""Fixtures of the browser tests: a real ``cairn server --auth`` seeded through the SDK (and 10,000 runs written
straight into its store), Debian's headless Chromium driven by Playwright, axe-core from the UI's npm packages."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright
from sqlalchemy import insert, select

import cairn
from cairn.server.app import STATIC
from cairn.server.db.engine import Database
from cairn.server.db.models import ExperimentRow, MetricSeriesRow, RunRow, WorkspaceRow
from tests.conftest import LiveServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "browser passphrase 1"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
AXE = Path(__file__).resolve().parents[2] / "ui" / "node_modules" / "axe-core" / "axe.min.js"
BIG = 1_000_000
MANY = 10_000


def seed_many_runs(store: str, count: int) -> int:
    """An experiment of ``count`` runs with a metric each, written straight into the store (seconds, not minutes)."""
    db = Database(store)
    now = int(time.time() * 1000)
    with db.session(write=True) as session:
        workspace = session.scalar(select(WorkspaceRow).where(WorkspaceRow.name == "vision"))
        assert workspace is not None
        experiment = ExperimentRow(workspace_id=workspace.id, name="many", description="", lifecycle="active",
                                   created_at=now, updated_at=now)
        session.add(experiment)
        session.flush()
        ids = [uuid.uuid4().hex for _ in range(count)]
        session.execute(insert(RunRow), [
            {"id": run_id, "workspace_id": workspace.id, "experiment_id": experiment.id, "name": f"run-{i:05d}",
             "status": "FINISHED", "start_time": now - i, "end_time": now, "user": "alice", "lifecycle": "active",
             "updated_at": now} for i, run_id in enumerate(ids)])
        session.execute(insert(MetricSeriesRow), [
            {"run_id": run_id, "key": "acc", "count": 1, "numeric_count": 1, "sum": i / count, "last_value": i / count,
             "last_step": 0, "last_timestamp": now, "min_value": i / count, "min_step": 0, "max_value": i / count,
             "max_step": 0} for i, run_id in enumerate(ids)])
        experiment_id = experiment.id
    db.dispose()
    return experiment_id


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: .ci/run installs Debian's chromium package")
    if not (STATIC / "index.html").exists():
        pytest.fail("the web UI is not built: pip install -e . builds it (needs npm)")
    root = tmp_path_factory.mktemp("ui")
    store = f"sqlite:///{root / 'cairn.db'}"
    env = {**os.environ, "CAIRN_PASSWORD": PASSWORD}
    admin = [sys.executable, "-m", "cairn", "admin", "--store-uri", store]
    subprocess.run([*admin, "create-user", "alice", "--admin"], env=env, check=True, capture_output=True)
    subprocess.run([*admin, "create-workspace", "vision", "--owner", "alice", "--require-approval"], env=env,
                   check=True, capture_output=True)
    # a second workspace, for conventions set in warn mode (they mark every run, so not in "vision")
    subprocess.run([*admin, "create-workspace", "rules", "--owner", "alice"], env=env, check=True, capture_output=True)
    subprocess.run([*admin, "create-user", "bob"], env=env, check=True, capture_output=True)
    subprocess.run([*admin, "add-member", "vision", "bob", "maintainer"], env=env, check=True, capture_output=True)
    subprocess.run([*admin, "create-user", "vic"], env=env, check=True, capture_output=True)
    subprocess.run([*admin, "add-member", "vision", "vic", "viewer"], env=env, check=True, capture_output=True)
    token = subprocess.run([*admin, "create-token", "alice", "--name", "seed"], env=env, check=True,
                           capture_output=True, text=True).stdout.strip()
    many = seed_many_runs(store, MANY)
    server = LiveServer(root / "home", store, args=("--auth",)).start()
    try:
        yield seed(server, token, root, many)
    finally:
        server.stop()


def seed(server: LiveServer, token: str, root: Path, many: int) -> dict[str, Any]:
    client = cairn.Client(server.url, token=token, workspace="vision")
    experiment = client.create_experiment("mnist")
    runs = {}
    for name, losses in {"alpha": [0.9, 0.2, 0.6], "beta": [0.8, 0.4, 0.3], "gamma": [0.7, 0.5, 0.1]}.items():
        run = client.create_run(experiment.id, name=name)
        client.log_batch(run.id, metrics=[{"key": "loss", "steps": [0, 1, 2], "values": losses}],
                         params={"lr": {"alpha": "0.1", "beta": "0.01", "gamma": "0.001"}[name]})
        client.set_terminated(run.id)
        runs[name] = run.id
    notes = root / "notes.txt"
    for text in ("first draft", "second draft"):
        notes.write_text(text)
        client.upload_artifact(runs["alpha"], notes, "notes.txt")
    client.update_run(runs["alpha"], status="RUNNING")
    weights = root / "w.bin"
    weights.write_bytes(b"weights")
    client.upload_artifact(runs["alpha"], weights, "models/m/w.bin")
    for name, text in {"README.md": README, "config.yaml": CONFIG}.items():
        (root / name).write_text(text)
        client.upload_artifact(runs["alpha"], root / name, name)
    manifest = {"flavor": "pyfunc", "files": {"w.bin": {"sha256": hashlib.sha256(b"weights").hexdigest(), "size": 7}}}
    logged = client._t.request("POST", f"/api/v1/runs/{runs['alpha']}/logged-models",
                               json={"name": "m", "artifact_path": "models/m", "manifest": {**manifest, **SIGNED}})
    client.register_model(logged["id"], "dev.churn")
    for shade in (0, 255):  # an image artifact with two versions
        (root / "img.png").write_bytes(png(shade))
        client.upload_artifact(runs["alpha"], root / "img.png", "img.png")
    client.set_terminated(runs["alpha"])
    client.upload_artifact(runs["beta"], weights, "models/m/w.bin")
    second = client._t.request("POST", f"/api/v1/runs/{runs['beta']}/logged-models",
                               json={"name": "m", "artifact_path": "models/m", "manifest": manifest})
    client.register_model(second["id"], "dev.churn")
    client.set_alias("dev.churn", "champion", 1)
    client.set_alias("dev.churn", "champion", 2, reason="better loss")
    fifty = client.create_experiment("fifty")
    for i in range(50):
        run = client.create_run(fifty.id, name=f"f{i:02d}", tags={"team": "ab"[i % 2]})
        client.log_batch(run.id, metrics=[{"key": "loss", "steps": list(range(100)),
                                           "values": [1 / (1 + s * (1 + i / 50)) for s in range(100)]}],
                         params={"lr": str(0.001 * (1 + i))})
        client.set_terminated(run.id)
    empty = client.create_experiment("empty")
    big = client.create_run(experiment.id, name="long")
    for start in range(0, BIG, 100_000):
        steps = list(range(start, start + 100_000))
        client.log_batch(big.id, metrics=[{"key": "signal", "steps": steps,
                                           "values": [((s % 1000) / 1000.0) for s in steps]}])
    client.set_terminated(big.id)
    runs["long"] = big.id
    return {"server": server, "client": client, "token": token, "experiment": experiment.id, "runs": runs, "many": many,
           "fifty": fifty.id, "empty": empty.id}


README = "# Churn model\n\nTrained on **March** data <script>alert(1)</script>\n\n- lr `0.1`\n- depth 3\n"
CONFIG = "model:\n  depth: 3\n  layers:\n    - 64\n    - 32\nlr: 0.1\n"
SIGNED = {"requirements": ["numpy==2.1.0"], "python": "3.11.7",
          "signature": {"inputs": {"type": "dataframe", "columns": [{"name": "age", "type": "long"},
                                                                    {"name": "income", "type": "double"}]},
                        "outputs": {"type": "tensor", "dtype": "int64", "shape": [-1]}}}


def png(shade: int) -> bytes:
    """A 4x4 grey PNG, written by hand (no imaging library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + bytes([shade]) * 4 for _ in range(4))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture
def browser() -> Iterator[Any]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        yield launched
        launched.close()


def new_tab(browser: Any, scheme: str = "light") -> Any:
    """A page in its own context, in the given colour scheme, that records console errors in ``tab.errors``."""
    # axe-core goes in as an inline script, which the server's Content-Security-Policy rightly refuses
    tab = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme=scheme, bypass_csp=True).new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.errors = errors
    return tab


@pytest.fixture
def page(browser: Any) -> Any:
    return new_tab(browser)


def axe_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not AXE.exists():
        pytest.fail("axe-core is not installed: cd ui && npm ci")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
                          ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
                          ".map(v => v.id + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))")
    return list(found)


def sign_in(page: Any, url: str, user: str = "alice") -> None:
    page.goto(url)
    page.get_by_label("user name").fill(user)
    page.get_by_label("password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_test_id("user").wait_for()
    page.get_by_label("workspace").select_option("vision")


