"""The provider's resources called in-process (the calls OpenTofu makes through the plugin protocol),
against the app in authentication mode (SQLite; see conftest.py): a workspace owner manages their
workspace without being admin, refusals become diagnostics on the attribute, objects deleted outside
read as gone, import ids are checked, and the configuration comes from the environment."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from tf.iface import (
    CreateContext,
    DeleteContext,
    ImportContext,
    PlanContext,
    ReadContext,
    ReadDataContext,
    UpdateContext,
)
from tf.types import Unknown
from tf.utils import Diagnostics

from cairn._embedded import ASGIBridge
from cairn.integrations.opentofu import access, data, registry
from cairn.integrations.opentofu.provider import CairnProvider
from tests.conftest import AuthWorld


class Driver:
    """Plays OpenTofu's part for one resource type: each call gets fresh diagnostics, kept in ``diags``."""

    def __init__(self, provider: CairnProvider, klass: type[Any]) -> None:
        self.resource, self.name = provider.new_resource(klass), f"cairn_{klass.type_name}"
        self.diags = Diagnostics()

    def _ctx(self, kind: Any) -> Any:
        self.diags = Diagnostics()
        return kind(self.diags, self.name)

    def planned(self, **values: Any) -> dict[str, Any]:
        return self.resource.full(values)

    def create(self, **values: Any) -> Any:
        return self.resource.create(self._ctx(CreateContext), self.planned(**values))

    def read(self, state: dict[str, Any]) -> Any:
        return self.resource.read(self._ctx(ReadContext), state)

    def update(self, state: dict[str, Any], **changes: Any) -> Any:
        return self.resource.update(self._ctx(UpdateContext), state, {**state, **changes})

    def delete(self, state: dict[str, Any]) -> None:
        self.resource.delete(self._ctx(DeleteContext), state)

    def import_(self, import_id: str) -> Any:
        return self.resource.import_(self._ctx(ImportContext), import_id)

    def error(self) -> tuple[str, list[Any] | None]:
        errors = [d for d in self.diags.diagnostics if d.severity == "error"]
        assert len(errors) == 1, [str(d) for d in self.diags.diagnostics]
        return errors[0].detail, errors[0].path


def provider_for(world: AuthWorld, token: str, workspace: str = "vision") -> CairnProvider:
    provider = CairnProvider(transport=ASGIBridge(world.app))
    diags = Diagnostics()
    provider.configure_provider(diags, {"url": "http://testserver", "token": token, "workspace": workspace})
    assert not diags.diagnostics
    return provider


@pytest.fixture
def tokens(world: AuthWorld) -> dict[str, str]:
    """alice owns workspace 'vision' and is no admin; bob is a viewer there; root is an admin."""
    made = {"root": world.user("root", admin=True), "alice": world.user("alice"), "bob": world.user("bob")}
    world.workspace("vision", {"alice": "owner", "bob": "viewer"})
    return made


def test_an_owner_manages_their_workspace_without_being_admin(world: AuthWorld, tokens: dict[str, str]) -> None:
    alice = provider_for(world, tokens["alice"])
    workspace = Driver(alice, access.Workspace)
    state = workspace.import_("vision")
    assert state == {"id": "vision", "name": "vision", "description": None, "require_approval": None}
    assert workspace.update(state, require_approval=True)["require_approval"] is True
    assert workspace.read(state)["require_approval"] is True  # what the server now says
    assert workspace.create(name="other") is None
    assert "not a server admin" in workspace.error()[0]

    prod = Driver(alice, registry.Registry)
    adopted = prod.create(workspace="vision", name="prod", description="served", protected=False)
    assert (adopted["id"], adopted["protected"], adopted["default"]) == ("vision/prod", False, True)
    prod.delete(adopted)  # a default registry: its default settings come back
    assert prod.read(adopted) == {**adopted, "description": "", "protected": True}
    staging = prod.create(workspace="vision", name="staging")
    assert (staging["protected"], staging["default"], staging["description"]) == (False, False, None)
    prod.delete(staging)
    assert prod.read(staging) is None and not prod.diags.diagnostics

    member = Driver(alice, access.WorkspaceMember)
    bob = member.import_("vision/user/bob")
    assert bob["role"] == "viewer"
    assert member.update(bob, role="editor")["role"] == "editor"
    grant = Driver(alice, access.Grant)
    granted = grant.create(user="bob", resource_type="registry", resource="dev", role="maintainer")
    assert granted["id"].startswith("vision/") and grant.import_(granted["id"]) == granted
    grant.delete(granted)
    assert grant.read(granted) is None

    model = Driver(alice, registry.RegisteredModel)
    made = model.create(name="mnist", tags={"a": "1", "b": "2"})
    assert (made["id"], made["name"], made["tags"]) == ("vision/dev.mnist", "mnist", {"a": "1", "b": "2"})
    plan = PlanContext(Diagnostics(), "cairn_registered_model", changed_fields={"description"})
    assert model.resource.plan(plan, made, {**made, "description": "digits"})["latest_version"] is Unknown
    changed = model.update(made, description="digits", tags={"a": "9"})
    assert (changed["description"], changed["tags"]) == ("digits", {"a": "9"})
    model.delete(changed)
    assert model.read(changed) is None

    experiment = Driver(alice, registry.Experiment)
    made = experiment.create(name="train", tags={"team": "vision", "old": "x"})
    renamed = experiment.update(made, name="training", tags={"team": "vision"})
    assert (renamed["name"], renamed["tags"], renamed["id"]) == ("training", {"team": "vision"}, made["id"])
    assert experiment.import_("vision/training") == renamed
    experiment.delete(renamed)
    assert experiment.read(renamed) is None  # soft-deleted reads as gone: the next plan creates it again


def test_refusals_become_diagnostics_on_the_attribute(world: AuthWorld, tokens: dict[str, str]) -> None:
    root = provider_for(world, tokens["root"])
    cases = [
        (access.WorkspaceMember, {"user": "bob", "role": "boss"}, "role 'boss' is not one of", ["role"]),
        (access.ApiToken, {"scopes": ["superuser"]}, "scope 'superuser' is not one of read, write, admin",
         ["scopes"]),
        (access.ApiToken, {"scopes": ["read"], "owner": "nobody"}, "user 'nobody' does not exist", ["owner"]),
        (access.Grant, {"user": "bob", "resource_type": "registry", "resource": "nowhere", "role": "viewer"},
         "registry 'nowhere' does not exist", ["resource"]),
        (access.TeamMember, {"team": "nobody", "user": "bob"}, "team 'nobody' does not exist", ["team"]),
        (registry.RegisteredModel, {"name": "dev.bad name"}, "model name 'bad name'", ["name"]),
        (registry.ModelAlias, {"model": "dev.none", "alias": "champion", "version": 1},
         "model dev.none does not exist", ["model"]),
    ]
    for klass, values, message, path in cases:
        driver = Driver(root, klass)
        assert driver.create(**values) is None
        detail, where = driver.error()
        assert message in detail, (klass, detail)
        assert where == path, (klass, detail, where)


def test_objects_deleted_outside_read_as_gone(world: AuthWorld, tokens: dict[str, str]) -> None:
    root = provider_for(world, tokens["root"])
    admin = world.client(tokens["root"], "vision")
    team = Driver(root, access.Team)
    made = team.create(name="vision-ml", description="people")
    assert team.read(made) == made
    assert team.read({**made, "name": "vision-ml?x=1"}) is None  # names are escaped into the path
    assert team.create(name="vision-ml") is None
    assert "already exists; to manage the existing one, import it" in team.error()[0]
    assert admin.delete("/api/v1/teams/vision-ml").status_code == 200
    assert team.read(made) is None and not team.diags.diagnostics

    account = Driver(root, access.ServiceAccount)
    ci = account.create(name="vision-ci")
    token = Driver(root, access.ApiToken)
    secret = token.create(owner="vision-ci", scopes=["write"], expires_in_days=30)
    assert secret["secret"].startswith("cairn_") and secret["id"].startswith("vision-ci/")
    assert token.import_(secret["id"]) == {**secret, "secret": None}  # the secret is known only at creation
    assert admin.delete(f"/api/v1/tokens/{secret['id'].split('/')[1]}").status_code == 200
    assert token.read(secret) is None  # revoked outside: planned again
    again = token.create(owner="vision-ci", scopes=["read"])
    account.delete(ci)
    assert account.read(ci) is None
    assert token.read(again) is None and not token.diags.diagnostics  # its owner deleted outside

    workspace = Driver(root, access.Workspace)
    scratch = workspace.create(name="scratch", description="for a day")
    states = [(Driver(root, access.WorkspaceMember), {"workspace": "scratch", "user": "bob", "role": "viewer"}),
              (Driver(root, registry.Registry), {"workspace": "scratch", "name": "staging"}),
              (Driver(root, registry.RegisteredModel), {"workspace": "scratch", "name": "dev.m"}),
              (Driver(root, registry.Experiment), {"workspace": "scratch", "name": "e"})]
    made = [(driver, driver.create(**values)) for driver, values in states]
    assert all(state is not None for _, state in made)
    assert admin.delete(f"/api/v1/experiments/{made[3][1]['experiment_id']}",
                        headers={"X-Cairn-Workspace": "scratch"}).status_code == 200
    assert admin.delete("/api/v1/models/dev.m", headers={"X-Cairn-Workspace": "scratch"}).status_code == 200
    assert admin.delete("/api/v1/workspaces/scratch").status_code == 200
    assert workspace.read(scratch) is None
    for driver, state in made:  # the whole workspace went: each reads as gone, with no error
        assert driver.read(state) is None and not driver.diags.diagnostics, driver.name


def test_configuration_shape_and_import_ids_are_checked(world: AuthWorld, tokens: dict[str, str]) -> None:
    root = provider_for(world, tokens["root"])
    diags = Diagnostics()
    root.new_resource(access.WorkspaceMember).validate(diags, "cairn_workspace_member",
                                                      {"user": "bob", "team": "t", "role": "viewer"})
    root.new_resource(access.ApiToken).validate(diags, "cairn_api_token", {"scopes": ["read", "write"]})
    root.new_data_source(data.ModelVersion).validate(diags, "cairn_model_version", {"model": "m"})
    assert [(d.path, d.detail.split(" (")[0]) for d in diags.diagnostics] == [
        (["user"], "set exactly one of user or team"),
        (["scopes"], "a Cairn token carries exactly one scope"),
        (["alias"], "set exactly one of alias or version")]
    for klass, bad, shape in [(access.WorkspaceMember, "vision/bob", "<workspace>/user/<name>"),
                              (access.Grant, "7", "<workspace>/<grant id>"),
                              (registry.ModelAlias, "vision/dev.m", "<workspace>/<registry>.<model>/<alias>")]:
        driver = Driver(root, klass)
        assert driver.import_(bad) is None
        assert shape in driver.error()[0]
    driver = Driver(root, access.Workspace)
    assert driver.import_("nowhere") is None
    assert "nothing in Cairn has the id 'nowhere'" in driver.error()[0]


def test_data_sources_and_configuration_from_the_environment(world: AuthWorld, tokens: dict[str, str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_TRACKING_URI", "http://testserver")
    monkeypatch.setenv("CAIRN_TOKEN", tokens["alice"])
    monkeypatch.setenv("CAIRN_WORKSPACE", "vision")
    provider = CairnProvider(transport=ASGIBridge(world.app))
    diags = Diagnostics()
    provider.validate_config(diags, {"url": "ftp://x"})
    assert diags.diagnostics[0].path == ["url"]
    provider.configure_provider(Diagnostics(), {"url": None, "token": None, "workspace": None})
    assert (provider.url, provider.workspace) == ("http://testserver", "vision")
    me = provider.new_data_source(data.User).read(ReadDataContext(Diagnostics(), "cairn_user"), {"name": None})
    assert (me["name"], me["admin"], me["service"]) == ("alice", False, True)
    found = provider.new_data_source(data.WorkspaceData).read(ReadDataContext(Diagnostics(), "cairn_workspace"),
                                                              {"name": "vision"})
    assert found == {"name": "vision", "description": "", "require_approval": False, "role": "owner"}
    diags = Diagnostics()
    assert provider.new_data_source(data.ModelVersion).read(ReadDataContext(diags, "cairn_model_version"),
                                                            {"model": "dev.none", "alias": "champion"}) is None
    assert "does not exist" in diags.diagnostics[0].detail and diags.diagnostics[0].path == ["model"]


def test_the_provider_uses_only_the_public_api() -> None:
    """It is a client: loading it (as OpenTofu does) imports nothing of the server."""
    code = ("import sys, cairn.integrations.opentofu.provider, tf.provider; "
            "print(sorted(m for m in sys.modules if m.startswith('cairn.server')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
