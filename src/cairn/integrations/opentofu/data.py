"""Data sources: read what exists without managing it (a model version by alias or number, a
workspace, a user)."""

from __future__ import annotations

from typing import Any

from tf.iface import ReadDataContext

from cairn.integrations.opentofu.api import q
from cairn.integrations.opentofu.base import Base, State, attr, known, requires_exactly_one
from cairn.integrations.opentofu.kinds import BOOL, NUMBER, STRING, STRING_LIST, STRING_MAP


def _optional_in(name: str, kind: Any, description: str) -> Any:
    return attr(name, kind, description, optional=True, computed=True)


def _out(name: str, kind: Any, description: str) -> Any:
    return attr(name, kind, description, computed=True)


class _Data(Base):
    """A data source: ``fetch`` answers the server's object; the state takes every attribute it names."""

    def fetch(self, config: State) -> dict[str, Any]:
        raise NotImplementedError

    def read(self, ctx: ReadDataContext, config: State) -> State | None:
        def find() -> State | None:
            found = self.fetch(config)
            return self.full({**config, **{a.name: found.get(a.name) for a in self.attributes if a.name in found}})
        return self.attempt(ctx.diagnostics, "read", find)


class ModelVersion(_Data):
    type_name, what = "model_version", "the model version"
    description = "A version of a registered model, by alias (e.g. the one `champion` points at) or number."
    fields = {"name": "model"}
    attributes = [
        _optional_in("workspace", STRING, "The workspace; the provider's when left out."),
        attr("model", STRING, "The registered model, `<registry>.<model>`.", required=True),
        attr("alias", STRING, "An alias of the model (or set version).", optional=True),
        _optional_in("version", NUMBER, "The version number (or set alias; then this is what it points at)."),
        _out("run_id", STRING, "The run that made it, if any."),
        _out("flavor", STRING, "How it was saved (sklearn, pytorch, ...)."),
        _out("description", STRING, "Free text."),
        _out("status", STRING, "READY once registered."),
        _out("tags", STRING_MAP, "The version's tags."),
        _out("aliases", STRING_LIST, "Every alias pointing at it."),
        _out("created_by", STRING, "Who registered it."),
        _out("created_at", NUMBER, "When, in milliseconds since the epoch."),
    ]

    def check(self, config: State) -> list[tuple[str, str]]:
        return requires_exactly_one(config, ("alias", "version"))

    def fetch(self, config: State) -> dict[str, Any]:
        workspace = config.get("workspace") if known(config.get("workspace")) else self.provider.workspace
        model = config["model"]
        path = f"/models/{q(model)}/aliases/{q(config['alias'])}" if known(config.get("alias")) \
            else f"/models/{q(model)}/versions/{int(config['version'])}"
        found = self.api.get(path, workspace=workspace)
        return {**found, "model": model, "alias": config.get("alias"), "workspace": workspace}


class WorkspaceData(_Data):
    type_name, what = "workspace", "the workspace"
    description = "A workspace the caller can see, and the caller's role in it."
    attributes = [
        attr("name", STRING, "The workspace's name.", required=True),
        _out("description", STRING, "Free text."),
        _out("require_approval", BOOL, "Whether promotions into protected registries need approval."),
        _out("role", STRING, "The caller's role there (null for an admin who is no member)."),
    ]

    def fetch(self, config: State) -> dict[str, Any]:
        return dict(self.api.get(f"/workspaces/{q(config['name'])}"))


class User(_Data):
    type_name, what = "user", "the user"
    description = "A user or service account by name (reading another user needs an admin), or, with no " \
                  "name, the caller."
    fields = {"user": "name"}
    attributes = [
        _optional_in("name", STRING, "The user's name; the caller when left out."),
        _out("display_name", STRING, "Shown instead of the name."),
        _out("email", STRING, "Their e-mail address."),
        _out("admin", BOOL, "Whether they administer the server."),
        _out("service", BOOL, "Whether this is a service account."),
        _out("disabled", BOOL, "Whether they are disabled."),
    ]

    def fetch(self, config: State) -> dict[str, Any]:
        name = config.get("name")
        found = self.api.get(f"/users/{q(name)}") if known(name) else self.api.get("/auth/me")["user"]
        return {k: found.get(k) for k in ("name", "display_name", "email", "admin", "service", "disabled")}


DATA_SOURCES = [ModelVersion, WorkspaceData, User]
