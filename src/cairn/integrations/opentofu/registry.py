"""What a workspace holds: registries (``dev`` and ``prod`` are adopted, never made twice), registered
models, model aliases (moving one is an alias move, kept in the alias's history) and experiments."""

from __future__ import annotations

from typing import Any, ClassVar

from tf.iface import CreateContext, DeleteContext, ImportContext, UpdateContext

from cairn.integrations.opentofu.api import Api, q
from cairn.integrations.opentofu.base import Base, State, attr, imported, keep_null, known, split_id
from cairn.integrations.opentofu.kinds import BOOL, NUMBER, STRING, STRING_MAP


def _sync_tags(api: Api, path: str, workspace: str, have: dict[str, str], want: dict[str, str]) -> None:
    """Make the object's tags ``want``: set what differs, delete what is no longer wanted."""
    changed = {k: v for k, v in want.items() if have.get(k) != v}
    if changed:
        api.post(f"{path}/tags", changed, workspace=workspace)
    for key in sorted(set(have) - set(want)):
        api.delete(f"{path}/tags", workspace=workspace, params={"key": key})


def _whole(number: Any) -> Any:
    """HCL numbers may arrive as floats (7.0); the API wants a whole number, and says so for 7.5."""
    return int(number) if isinstance(number, float) and number.is_integer() else number


class Registry(Base):
    type_name, what = "registry", "the registry"
    import_keys, import_shape = ("workspace", "name"), "<workspace>/<name>"
    description = "A registry of a workspace. Naming `dev` or `prod`, which every workspace has, adopts it " \
                  "and destroying gives back its default settings; other registries are created and deleted. " \
                  "Needs a maintainer (deleting one, the workspace's owner)."
    attributes = [
        attr("name", STRING, "1-64 lowercase letters, digits, '_' or '-'.", required=True, requires_replace=True),
        attr("description", STRING, "Free text.", optional=True),
        attr("protected", BOOL, "Changes need a maintainer (and approval where the workspace requires it). "
                                "Left out: unchanged for dev/prod, false for a new registry.",
             optional=True, computed=True),
        attr("default", BOOL, "Whether every workspace has this registry (dev, prod).", computed=True),
    ]

    def _state(self, prior: State, workspace: str, found: dict[str, Any]) -> State:
        return self.full({"id": f"{workspace}/{found['name']}", "workspace": workspace, "name": found["name"],
                          "description": keep_null(prior.get("description"), found["description"], ""),
                          "protected": found["protected"], "default": found["default"]})

    def _find(self, workspace: str, name: str) -> dict[str, Any] | None:
        found = self.api.find("/registries", workspace=workspace)
        match = [r for r in (found or {}).get("registries", []) if r["name"] == name]
        return match[0] if match else None

    def _settings(self, planned: State) -> dict[str, Any]:
        body: dict[str, Any] = {"description": planned.get("description") or ""}
        if known(planned.get("protected")):
            body["protected"] = planned["protected"]
        return body

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        def make() -> State | None:
            workspace = self.workspace(planned)
            existing = self._find(workspace, planned["name"])
            if existing is not None and existing["default"]:
                found = self.api.patch(f"/registries/{q(planned['name'])}", self._settings(planned),
                                       workspace=workspace)
            else:  # a registry of the same name that is not a default one answers 409: import it instead
                found = self.api.post("/registries", {"name": planned["name"], **self._settings(planned)},
                                      workspace=workspace)
            return self._state(planned, workspace, found)
        return self.attempt(ctx.diagnostics, "create", make)

    def found(self, current: State) -> State | None:
        workspace = self.workspace(current)
        found = self._find(workspace, current["name"])
        return None if found is None else self._state(current, workspace, found)

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        workspace = self.workspace(current)
        return self.attempt(ctx.diagnostics, "update", lambda: self._state(planned, workspace, self.api.patch(
            f"/registries/{q(current['name'])}", self._settings(planned), workspace=workspace)))

    def delete(self, ctx: DeleteContext, current: State) -> None:
        workspace, name = self.workspace(current), current["name"]
        if current.get("default"):
            self.attempt(ctx.diagnostics, "reset", lambda: self.api.post(f"/registries/{q(name)}/reset",
                                                                         workspace=workspace))
        else:
            self.attempt(ctx.diagnostics, "delete", lambda: self.api.delete(f"/registries/{q(name)}",
                                                                            workspace=workspace))


class _Tagged(Base):
    """An object of a workspace with a name, a description and tags (registered models, experiments)."""

    collection: ClassVar[str]
    renames: ClassVar[bool] = False  # the name changes in place (else changing it replaces the object)

    def _state(self, prior: State, workspace: str, found: dict[str, Any]) -> State | None:
        raise NotImplementedError

    def _path(self, current: State) -> str:
        raise NotImplementedError

    def _at(self, current: State, path: str) -> State | None:
        workspace = self.workspace(current)
        found = self.api.find(path, workspace=workspace)
        return None if found is None else self._state(current, workspace, found)

    def found(self, current: State) -> State | None:
        return self._at(current, self._path(current))

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        def make() -> State | None:
            workspace = self.workspace(planned)
            body = {"name": planned["name"], "description": planned.get("description") or "",
                    "tags": planned.get("tags") or {}}
            return self._state(planned, workspace, self.api.post(self.collection, body, workspace=workspace))
        return self.attempt(ctx.diagnostics, "create", make)

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        def change() -> State | None:
            workspace, path = self.workspace(current), self._path(current)
            body = {"description": planned.get("description") or ""}
            if self.renames:
                body["name"] = planned["name"]
            found = self.api.patch(path, body, workspace=workspace)
            _sync_tags(self.api, path, workspace, found["tags"], planned.get("tags") or {})
            return self._at(planned, path)
        return self.attempt(ctx.diagnostics, "update", change)

    def delete(self, ctx: DeleteContext, current: State) -> None:
        self.attempt(ctx.diagnostics, "delete", lambda: self.api.delete(self._path(current),
                                                                        workspace=self.workspace(current)))


class RegisteredModel(_Tagged):
    type_name, what = "registered_model", "the registered model"
    collection = "/models"
    import_keys, import_shape = ("workspace", "name"), "<workspace>/<registry>.<model>"
    volatile = ("latest_version",)
    description = "A registered model. Its versions come from training (the SDK), not from here. " \
                  "Destroying deletes it (soft: `cairn gc` purges it; restoring brings it back)."
    attributes = [
        attr("name", STRING, "`<registry>.<model>`, e.g. `prod.mnist` (no registry: `dev`).", required=True,
             requires_replace=True),
        attr("description", STRING, "Free text.", optional=True),
        attr("tags", STRING_MAP, "Tags; keys not listed are removed.", optional=True),
        attr("latest_version", NUMBER, "The highest active version, if any.", computed=True),
    ]

    def _state(self, prior: State, workspace: str, found: dict[str, Any]) -> State:
        return self.full({"id": f"{workspace}/{found['name']}", "workspace": workspace,
                          "name": prior.get("name") or found["name"],  # as written: `mnist` means `dev.mnist`
                          "description": keep_null(prior.get("description"), found["description"], ""),
                          "tags": keep_null(prior.get("tags"), found["tags"], {}),
                          "latest_version": found["latest_version"]})

    def _path(self, current: State) -> str:
        return f"/models/{q(current['name'])}"


class ModelAlias(Base):
    type_name, what = "model_alias", "the model alias"
    import_keys, import_shape = ("workspace", "model", "alias"), "<workspace>/<registry>.<model>/<alias>"
    description = "An alias of a registered model pointing at one version. Changing `version` moves the alias: " \
                  "an alias move like any other, kept in the alias's history. Needs a maintainer."
    fields = {"name": "model"}
    attributes = [
        attr("model", STRING, "The registered model, `<registry>.<model>`.", required=True, requires_replace=True),
        attr("alias", STRING, "The alias, e.g. `champion`.", required=True, requires_replace=True),
        attr("version", NUMBER, "The version it points at.", required=True),
        attr("reason", STRING, "Why, recorded with each move (not read back).", optional=True),
    ]

    def found(self, current: State) -> State | None:
        workspace = self.workspace(current)
        found = self.api.find(f"/models/{q(current['model'])}/aliases/{q(current['alias'])}", workspace=workspace)
        if found is None:
            return None
        return self.full({**current, "id": f"{workspace}/{found['name']}/{current['alias']}",
                          "workspace": workspace, "version": found["version"]})

    def _move(self, planned: State) -> State | None:
        workspace = self.workspace(planned)
        moved = self.api.put(f"/models/{q(planned['model'])}/aliases/{q(planned['alias'])}",
                             {"version": _whole(planned["version"]), "reason": planned.get("reason") or ""},
                             workspace=workspace)
        return self.full({**planned, "id": f"{workspace}/{moved['name']}/{planned['alias']}", "workspace": workspace})

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        return self.attempt(ctx.diagnostics, "set", lambda: self._move(planned))

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        return self.attempt(ctx.diagnostics, "move", lambda: self._move(planned))

    def delete(self, ctx: DeleteContext, current: State) -> None:
        self.attempt(ctx.diagnostics, "delete", lambda: self.api.delete(
            f"/models/{q(current['model'])}/aliases/{q(current['alias'])}", workspace=self.workspace(current)))


class Experiment(_Tagged):
    type_name, what = "experiment", "the experiment"
    collection, renames = "/experiments", True
    import_shape = "<workspace>/<experiment id>; import also takes <workspace>/<name>"
    description = "An experiment. Renaming is in place. Destroying deletes it (soft: restorable until " \
                  "`cairn gc`). Needs an editor (deleting it, a maintainer)."
    fields = {"experiment_id": "id"}
    attributes = [
        attr("name", STRING, "The experiment's name.", required=True),
        attr("description", STRING, "Free text.", optional=True),
        attr("tags", STRING_MAP, "Tags; keys not listed are removed.", optional=True),
        attr("experiment_id", NUMBER, "The experiment's id.", computed=True),
    ]

    def _state(self, prior: State, workspace: str, found: dict[str, Any]) -> State | None:
        if found.get("lifecycle") == "deleted":
            return None
        return self.full({"id": f"{workspace}/{found['experiment_id']}", "workspace": workspace,
                          "name": found["name"], "experiment_id": found["experiment_id"],
                          "description": keep_null(prior.get("description"), found["description"], ""),
                          "tags": keep_null(prior.get("tags"), found["tags"], {})})

    def _path(self, current: State) -> str:
        return f"/experiments/{int(current['experiment_id'])}"

    def import_(self, ctx: ImportContext, import_id: str) -> State | None:
        def find() -> State | None:
            workspace, key = split_id(import_id, 2, "<workspace>/<experiment id or name>")
            if key.isdigit():
                return self._at({"workspace": workspace}, f"/experiments/{q(key)}")
            found = self.api.find("/experiments/by-name", workspace=workspace, params={"name": key})
            return None if found is None else self._state({}, workspace, found)
        return imported(self, ctx, import_id, find)


RESOURCES = [Registry, RegisteredModel, ModelAlias, Experiment]
