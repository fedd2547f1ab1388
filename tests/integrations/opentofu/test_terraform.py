"""The real ``terraform`` binary (plugin protocol 6, as OpenTofu) drives terraform-provider-cairn against a
live ``cairn server --auth``: the issue's full example applies from nothing, re-plans clean, shows drift
made through the API, imports every resource type, moves an alias with history, and destroys back to
the server as it was; invalid input fails with a diagnostic on the attribute."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import cairn as sdk
from tests.integrations.opentofu.conftest import Cairn, Terraform, make_terraform

pytestmark = pytest.mark.slow

MAIN = """
terraform {
  required_providers {
    cairn = { source = "cairn-ml/cairn" }
  }
}
provider "cairn" {
  url = "URL"          # token from CAIRN_TOKEN
}

resource "cairn_workspace" "vision" {
  name             = "vision"
  require_approval = true
}
resource "cairn_team" "vision_ml" {
  name = "vision-ml"
}
resource "cairn_team_member" "alice" {
  team = cairn_team.vision_ml.name
  user = "alice"
}
resource "cairn_workspace_member" "team" {
  workspace = cairn_workspace.vision.name
  team      = cairn_team.vision_ml.name
  role      = "editor"
}
resource "cairn_workspace_member" "bob" {
  workspace = cairn_workspace.vision.name
  user      = "bob"
  role      = "viewer"
}
resource "cairn_registry" "prod" {            # every workspace has dev and prod: this adopts prod
  workspace = cairn_workspace.vision.name
  name      = "prod"
  protected = true
}
resource "cairn_grant" "bob_prod" {
  workspace     = cairn_workspace.vision.name
  user          = cairn_workspace_member.bob.user
  resource_type = "registry"
  resource      = cairn_registry.prod.name
  role          = "maintainer"
}
resource "cairn_service_account" "ci" {
  name = "vision-ci"
}
resource "cairn_workspace_member" "ci" {
  workspace = cairn_workspace.vision.name
  user      = cairn_service_account.ci.name
  role      = "editor"
}
resource "cairn_api_token" "ci" {
  owner           = cairn_service_account.ci.name
  scopes          = ["write"]
  expires_in_days = 90
}
resource "cairn_registered_model" "mnist" {
  workspace   = cairn_workspace.vision.name
  name        = "prod.mnist"
  description = "digits"
}
resource "cairn_experiment" "train" {
  workspace = cairn_workspace.vision.name
  name      = "mnist-training"
  tags      = { team = "vision" }
}
output "ci_token" {
  value     = cairn_api_token.ci.secret
  sensitive = true
}
"""

# versions come from training, so the alias is added once the CI has registered some; the data source
# names the alias through the resource so that it is read after the alias is set
ALIAS = """
resource "cairn_model_alias" "champion" {
  workspace = cairn_workspace.vision.name
  model     = cairn_registered_model.mnist.name
  alias     = "champion"
  version   = VERSION
}
data "cairn_model_version" "current" {
  workspace = cairn_workspace.vision.name
  model     = cairn_registered_model.mnist.name
  alias     = cairn_model_alias.champion.alias
}
output "champion_run" {
  value = data.cairn_model_version.current.run_id
}
"""


def register_versions(cairn: Cairn, bob_token: str, count: int, monkeypatch: pytest.MonkeyPatch) -> str:
    """What CI does with the SDK: log a model, register dev versions, and promote each into the protected
    prod registry, approved by bob (maintainer on prod through the grant). Returns the run's id."""
    for name, value in {"CAIRN_TRACKING_URI": cairn.server.url, "CAIRN_TOKEN": cairn.token,
                        "CAIRN_WORKSPACE": "vision"}.items():
        monkeypatch.setenv(name, value)
    x, y = np.array([[0.0], [1.0]]), np.array([0, 1])
    with sdk.start_run(experiment="mnist-training") as run:
        run.log_model(LogisticRegression().fit(x, y), name="model", registered_model_name="dev.mnist")
    admin, bob = sdk.Client(), sdk.Client(cairn.server.url, token=bob_token, workspace="vision")
    for number in range(1, count + 1):
        version = admin.register_model(f"runs:/{run.id}/model", "dev.mnist") if number > 1 else \
            admin.get_model_version("dev.mnist", 1)
        bob.approve(admin.request_promotion("dev.mnist", version.version, "prod.mnist").id)
    return run.id


def addresses(terraform: Terraform) -> dict[str, str]:
    """Each managed resource's address and its import id."""
    resources = terraform.state()["values"]["root_module"]["resources"]
    return {r["address"]: r["values"]["id"] for r in resources if r["mode"] == "managed"}


def test_the_full_example_lives_and_dies_with_terraform(terraform_binary: str, cairn: Cairn, tmp_path: Path,
                                                       sdk_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("alice", "bob"):
        cairn.call("POST", "/users", json={"name": name, "service": True})
    before = cairn.snapshot()
    terraform = make_terraform(terraform_binary, tmp_path, cairn)
    terraform.write("main.tf", MAIN.replace("URL", cairn.server.url))

    # from nothing, with no `terraform init`
    applied = terraform.apply()
    assert "Resources: 12 added, 0 changed, 0 destroyed" in applied
    secret = terraform.ok("output", "-raw", "ci_token")
    assert secret.startswith("cairn_") and secret not in applied
    workspace = cairn.call("GET", "/workspaces/vision")
    assert workspace["require_approval"] is True
    members = {m.get("user") or m.get("team"): m["role"] for m in cairn.call("GET", "/workspaces/vision/members")[
        "members"]}
    assert members == {"bob": "viewer", "vision-ci": "editor", "vision-ml": "editor"}
    assert cairn.call("GET", "/teams/vision-ml")["members"] == ["alice"]
    grants = cairn.call("GET", "/workspaces/vision/grants")["grants"]
    assert [(g["user"], g["resource"], g["role"]) for g in grants] == [("bob", "prod", "maintainer")]
    ci = httpx.get(f"{cairn.server.url}/api/v1/experiments", headers={
        "Authorization": f"Bearer {secret}", "X-Cairn-Workspace": "vision"})
    assert ci.status_code == 200 and [e["name"] for e in ci.json()["experiments"]] == ["mnist-training"]
    assert terraform.plan_exit()[0] == 0

    # CI registers versions; the alias is added and read back by the data source
    bob_token = cairn.call("POST", "/tokens", json={"name": "approve", "user": "bob", "scope": "write"})["token"]
    run_id = register_versions(cairn, bob_token, 7, monkeypatch)
    terraform.write("alias.tf", ALIAS.replace("VERSION", "7"))
    assert "Resources: 1 added" in terraform.apply()
    assert terraform.ok("output", "-raw", "champion_run") == run_id
    assert cairn.call("GET", "/models/prod.mnist/aliases/champion", "vision")["version"] == 7
    log = tmp_path / "trace.log"
    code, plan = terraform.plan_exit(env={"TF_LOG": "trace", "TF_LOG_PATH": str(log)})
    assert code == 0, plan
    assert "GRPCProvider.v6: PlanResourceChange" in log.read_text()
    for hidden in (secret, cairn.token, secret.rsplit("_", 1)[1]):  # nor the provider's own token
        assert hidden not in plan and hidden not in log.read_text()

    # drift made by hand: a setting changed, a member removed (and with her the grant)
    cairn.call("PATCH", "/workspaces/vision", json={"require_approval": False})
    cairn.call("DELETE", "/workspaces/vision/members/users/bob")
    cairn.call("POST", "/experiments/" + str(cairn.call("GET", "/experiments/by-name", "vision",
                                                          params={"name": "mnist-training"})["experiment_id"])
               + "/tags", "vision", json={"team": "nlp", "extra": "x"})
    code, plan = terraform.plan_exit()
    assert code == 2, plan
    assert "require_approval = false -> true" in plan
    assert "cairn_workspace_member.bob will be created" in plan and "cairn_grant.bob_prod will be created" in plan
    assert '"extra" = "x" -> null' in plan and '"team"  = "nlp" -> "vision"' in plan
    terraform.apply()
    assert terraform.plan_exit()[0] == 0

    # moving the alias is an alias move with its history
    terraform.write("alias.tf", ALIAS.replace("VERSION", "6"))
    assert "1 changed" in terraform.apply()
    moves = cairn.call("GET", "/models/prod.mnist/aliases/champion/history", "vision")["moves"]
    assert [(m["from_version"], m["to_version"], m["actor"]) for m in moves] == [(None, 7, "root"), (7, 6, "root")]

    # import: forget everything, adopt it again (one by the CLI, the rest with import blocks)
    ids = addresses(terraform)
    assert len(ids) == 13
    terraform.ok("state", "rm", *ids)
    terraform.ok("import", "cairn_workspace.vision", "vision")
    terraform.write("imports.tf", "".join(f'import {{\n  to = {address}\n  id = "{import_id}"\n}}\n'
                                          for address, import_id in ids.items() if address != "cairn_workspace.vision"))
    imported = terraform.apply()
    assert "12 imported, 0 added, 0 changed, 0 destroyed" in imported, imported
    (terraform.workdir / "imports.tf").unlink()
    code, plan = terraform.plan_exit()
    assert code == 0, plan

    # destroy: refused while the workspace holds what terraform does not manage, then back to the start
    done = terraform.run("destroy", "-auto-approve", "-input=false")
    assert done.returncode == 1
    assert "still holds 1 active models; delete them first" in done.stdout + done.stderr
    cairn.call("DELETE", "/models/dev.mnist", "vision")
    terraform.ok("destroy", "-auto-approve", "-input=false")
    cairn.call("DELETE", f"/tokens/{cairn.call('GET', '/tokens', params={'user': 'bob'})['tokens'][0]['id']}")
    assert cairn.snapshot() == before
    assert httpx.get(f"{cairn.server.url}/api/v1/experiments", headers={"Authorization": f"Bearer {secret}"}
                     ).status_code == 401


INVALID = """
terraform {
  required_providers {
    cairn = { source = "cairn-ml/cairn" }
  }
}
provider "cairn" {}

resource "cairn_workspace_member" "boss" {
  user = "root"
  role = "boss"
}
resource "cairn_api_token" "super" {
  scopes = ["superuser"]
}
resource "cairn_grant" "nowhere" {
  user          = "root"
  resource_type = "registry"
  resource      = "nowhere"
  role          = "viewer"
}
"""


def test_invalid_input_fails_with_a_diagnostic_on_the_attribute(terraform_binary: str, cairn: Cairn,
                                                               tmp_path: Path) -> None:
    terraform = make_terraform(terraform_binary, tmp_path, cairn)
    before = cairn.snapshot()
    terraform.write("main.tf", INVALID)
    done = terraform.run("apply", "-auto-approve", "-input=false")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    for message, line in [("role 'boss' is not one of viewer, editor, maintainer, owner", 'role = "boss"'),
                          ("scope 'superuser' is not one of read, write, admin", 'scopes = ["superuser"]'),
                          ("registry 'nowhere' does not exist", 'resource      = "nowhere"')]:
        assert message in out
        block = out[out.index(message) - 600:out.index(message)]
        assert line in block, block  # the diagnostic points at the attribute in the configuration
    assert cairn.snapshot() == before

    terraform.write("main.tf", INVALID.replace('["superuser"]', '["read", "write"]').replace('"boss"', '"viewer"'))
    done = terraform.run("plan", "-input=false")
    assert done.returncode == 1
    assert re.search(r"exactly one scope", done.stdout + done.stderr)
