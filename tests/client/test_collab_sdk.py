"""Collaboration end to end, as teams would run it: a real `cairn server --auth` with two worker
processes on SQLite and PostgreSQL, the first admin made with `cairn admin`, and everything else done
with the SDK names the issue lists (create_workspace, add_member, create_token, request_promotion,
approve, reject, add_comment, list_events, revoke_token, remove_member)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import cairn
from tests.conftest import LiveServer

pytestmark = pytest.mark.slow
PASSWORDS = {"root": "root passphrase 1", "alice": "alice passphrase 2", "bob": "bob passphrase 3"}


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cairn", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env}, check=False, stdin=subprocess.DEVNULL)


@pytest.fixture
def server(store_uri: str, tmp_path: Path, sdk_env: Path) -> Iterator[tuple[LiveServer, str]]:
    made = cli("admin", "--store-uri", store_uri, "create-user", "root", "--admin", CAIRN_PASSWORD=PASSWORDS["root"])
    assert made.returncode == 0, made.stderr
    token = cli("admin", "--store-uri", store_uri, "create-token", "root", "--name", "setup", "--scope", "admin",
                "--expires", "1d")
    assert token.returncode == 0, token.stderr
    assert "only time it is shown" in token.stderr
    live = LiveServer(tmp_path / "server-home", store_uri, workers=2, args=("--auth",),
                      env={"CAIRN_SESSION_TTL": "3600"}).start()
    yield live, token.stdout.strip()
    live.stop()


def test_teams_share_one_server_safely(server: tuple[LiveServer, str], monkeypatch: pytest.MonkeyPatch) -> None:
    live, root_token = server
    secret = live.home / "secret_key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600  # generated on first start, private
    admin = cairn.Client(live.url, token=root_token)
    admin.create_user("alice", PASSWORDS["alice"])
    admin.create_user("bob", PASSWORDS["bob"])
    admin.create_user("ci", service=True)
    admin.create_workspace("vision", require_approval=True)
    admin.create_workspace("nlp")
    admin.add_member("vision", "alice", "owner")
    admin.add_member("vision", "bob", "maintainer")
    admin.add_member("vision", "ci", "editor")
    with pytest.raises(cairn.ConflictError):
        admin.add_member("vision", "bob", "viewer")

    ci_token = admin.create_token("ci", scope="write", expires_in="30d", user="ci")
    assert ci_token.token and ci_token.token.startswith("cairn_") and ci_token.id in ci_token.token
    own = admin.create_token("laptop", scope="read")
    assert (own.user, own.scope) == ("root", "read")
    assert own.id in [t.id for t in admin.list_tokens()] and admin.list_tokens()[0].token is None

    # the CI service account trains and registers, through the environment like a scheduler would
    monkeypatch.setenv("CAIRN_TRACKING_URI", live.url)
    monkeypatch.setenv("CAIRN_TOKEN", ci_token.token)
    monkeypatch.setenv("CAIRN_WORKSPACE", "vision")
    x, y = np.array([[0.0], [1.0], [0.1], [0.9]]), np.array([0, 1, 0, 1])
    with cairn.start_run(experiment="detector") as run:
        run.log_metrics({"val_loss": 0.2}, step=0)
        version = run.log_model(LogisticRegression().fit(x, y), name="model", registered_model_name="dev.detector")
    ci = cairn.Client()
    assert ci.get_run(run.id).user == "ci"
    request = ci.request_promotion("dev.detector", version.version, "prod.detector", aliases=["champion"],
                                   comment="val_loss 0.2")
    assert request.status == "pending"
    with pytest.raises(cairn.PermissionDeniedError):
        ci.promote("dev.detector", version.version, "prod.detector")

    bob = cairn.Client(live.url, workspace="vision", token=admin.create_token("bob-cli", user="bob").token)
    rejected_first = ci.request_promotion("dev.detector", version.version, "prod.other")
    assert bob.reject(rejected_first.id, "wrong model name").status == "rejected"
    approved = bob.approve(request.id, comment="looks good")
    assert (approved.status, approved.decided_by, approved.result_version) == ("approved", "bob", 1)
    assert bob.get_model_version_by_alias("prod.detector", "champion").version == 1
    ci.add_comment(run.id, "trained on the March data")
    comment = bob.add_comment(bob.get_model_version("prod.detector", 1), "deployed to eu-west")
    assert comment.author == "bob"
    assert [c.text for c in ci.list_comments(run_id=run.id)] == ["trained on the March data"]

    # the owner reads the audit log; nlp knows nothing of vision
    alice = cairn.Client(live.url, workspace="vision", token=admin.create_token("alice-t", user="alice").token)
    events = alice.list_events(workspace="vision", since="1h")
    actions = [e.action for e in events]
    for expected in ("workspace.create", "member.add", "run.create", "promotion.request", "promotion.reject",
                     "promotion.approve", "model_version.promote", "alias.move", "comment.create"):
        assert expected in actions, expected
    assert {e.actor for e in events} >= {"root", "ci", "bob"}
    assert all(e.client_addr == "127.0.0.1" for e in events)
    with pytest.raises(cairn.PermissionDeniedError):
        bob.list_events(since="1h")  # maintainers do not read the audit log
    nlp = cairn.Client(live.url, workspace="nlp", token=ci_token.token)
    with pytest.raises(cairn.NotFoundError):
        nlp.list_experiments()

    audit = cli("audit", "--workspace", "vision", "--since", "1h", "--json", CAIRN_TRACKING_URI=live.url,
                CAIRN_TOKEN=alice.config.token or "")
    assert audit.returncode == 0, audit.stderr
    assert '"promotion.approve"' in audit.stdout

    # revocation and removal take effect on the next request, whichever worker answers it
    admin.revoke_token(ci_token.id)
    for _ in range(20):
        answer = httpx.get(f"{live.url}/api/v1/experiments", headers={
            "Authorization": f"Bearer {ci_token.token}", "X-Cairn-Workspace": "vision", "Connection": "close"})
        assert answer.status_code == 401
    server_log = cli("audit", "--server", "--since", "1h", "--json", CAIRN_TRACKING_URI=live.url,
                     CAIRN_TOKEN=root_token)
    assert server_log.returncode == 0, server_log.stderr
    assert '"token.revoke"' in server_log.stdout and '"user.create"' in server_log.stdout
    bob_token = bob.config.token or ""
    alice.remove_member("vision", "bob")
    for _ in range(20):
        answer = httpx.get(f"{live.url}/api/v1/experiments", headers={
            "Authorization": f"Bearer {bob_token}", "X-Cairn-Workspace": "vision", "Connection": "close"})
        assert answer.status_code == 404
    with pytest.raises(cairn.ConflictError):
        alice.remove_member("vision", "alice")  # the last owner stays


def test_password_sign_in_and_basic_auth_against_the_server(server: tuple[LiveServer, str]) -> None:
    live, _root_token = server
    with httpx.Client(base_url=live.url) as browser:
        signed_in = browser.post("/api/v1/auth/login", json={"username": "root", "password": PASSWORDS["root"]})
        assert signed_in.status_code == 200
        assert "Max-Age=3600" in signed_in.headers["set-cookie"]  # CAIRN_SESSION_TTL reaches the workers
        assert browser.get("/api/v1/users").status_code == 200
        assert browser.post("/api/v1/workspaces", json={"name": "x"}).status_code == 403  # no CSRF token
    basic = httpx.get(f"{live.url}/api/v1/auth/me", auth=("root", PASSWORDS["root"]))
    assert basic.json()["user"]["name"] == "root"
    rebinding = httpx.get(f"{live.url}/api/v1/auth/me", headers={"Host": "evil.example"},
                          auth=("root", PASSWORDS["root"]))
    assert rebinding.status_code == 400


def test_server_refuses_unsafe_starts(tmp_path: Path) -> None:
    exposed = cli("server", "--host", "0.0.0.0", "--port", "1", CAIRN_HOME=str(tmp_path))
    assert exposed.returncode == 2 and "--auth" in exposed.stderr and "--insecure-no-auth" in exposed.stderr
    weak = cli("server", "--auth", "--port", "1", CAIRN_HOME=str(tmp_path), CAIRN_SECRET_KEY="short")
    assert weak.returncode == 2 and "CAIRN_SECRET_KEY is too short" in weak.stderr
    no_terminal = cli("admin", "--store-uri", f"sqlite:///{tmp_path}/c.db", "create-user", "zed")
    assert no_terminal.returncode == 1 and "CAIRN_PASSWORD" in no_terminal.stderr
    weak_password = cli("admin", "--store-uri", f"sqlite:///{tmp_path}/c.db", "create-user", "zed",
                        CAIRN_PASSWORD="zed")
    assert weak_password.returncode == 1 and "too short" in weak_password.stderr
