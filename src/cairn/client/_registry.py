"""Registry calls of ``cairn.Client`` and model loading: ``cairn.load_model``, ``client.download_model``.

Model URIs: ``models:/<registry>.<model>/<version>``, ``models:/<registry>.<model>@<alias>`` (a bare
model name means the ``dev`` registry) and ``runs:/<run_id>/<model name>``. Models logged by the mlflow client
load too, through MLflow's python-function flavor (see _mlflow_format).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cairn._wire import AliasMove, LoggedModel, RegisteredModel, Registry
from cairn.client._errors import CairnError, InvalidRequestError, NotFoundError
from cairn.client._transport import Transport


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    run_id: str | None
    flavor: str
    description: str
    status: str
    lifecycle: str
    tags: dict[str, str]
    aliases: list[str]
    created_by: str
    created_at: int
    manifest: dict[str, Any] = field(repr=False)
    lineage: dict[str, Any] = field(repr=False)
    files: list[dict[str, Any]] = field(repr=False)
    source: dict[str, Any] | None = None
    """For a promoted version: the version it was promoted from (model, version, run_id)."""
    note: str = ""

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ModelVersion:
        return cls(d["name"], d["version"], d.get("run_id"), d["flavor"], d["description"], d["status"],
                   d["lifecycle"], dict(d["tags"]), list(d["aliases"]), d["created_by"], d["created_at"],
                   d["manifest"], d["lineage"], d["files"], d.get("source"), d.get("note", ""))


def _m(name: str) -> str:
    return f"/api/v1/models/{quote(name, safe='')}"


class RegistryMixin:
    """Model registry calls; mixed into ``cairn.Client``."""

    _t: Transport

    def list_registries(self) -> list[Registry]:
        data = self._t.request("GET", "/api/v1/registries")
        return [Registry.from_json(r) for r in data["registries"]]

    # the registry methods' booleans stay positional: the public SDK has taken them so since 0.1
    def create_registry(self, name: str, description: str = "", protected: bool = False) -> Registry:  # noqa: FBT001, FBT002
        r = self._t.request("POST", "/api/v1/registries",
                            json={"name": name, "description": description, "protected": protected})
        return Registry.from_json(r)

    def update_registry(self, name: str, *, description: str | None = None,
                        protected: bool | None = None) -> Registry:
        body = {k: v for k, v in {"description": description, "protected": protected}.items() if v is not None}
        r = self._t.request("PATCH", f"/api/v1/registries/{quote(name, safe='')}", json=body)
        return Registry.from_json(r)

    def reset_registry(self, name: str) -> Registry:
        """``dev`` or ``prod`` back to the settings every new workspace starts with."""
        r = self._t.request("POST", f"/api/v1/registries/{quote(name, safe='')}/reset")
        return Registry.from_json(r)

    def delete_registry(self, name: str) -> None:
        """Delete a registry holding no active model (not ``dev`` or ``prod``: reset those)."""
        self._t.request("DELETE", f"/api/v1/registries/{quote(name, safe='')}")

    def create_registered_model(self, name: str, description: str = "",
                                tags: dict[str, str] | None = None) -> RegisteredModel:
        body = {"name": name, "description": description, "tags": tags or {}}
        return RegisteredModel.from_json(self._t.request("POST", "/api/v1/models", json=body))

    def get_registered_model(self, name: str) -> RegisteredModel:
        return RegisteredModel.from_json(self._t.request("GET", _m(name)))

    def search_registered_models(self, registry: str | None = None, name_like: str | None = None,
                                 tags: dict[str, str] | None = None, include_deleted: bool = False,  # noqa: FBT001, FBT002
                                 max_results: int = 100) -> list[RegisteredModel]:
        params: list[tuple[str, Any]] = [("include_deleted", include_deleted), ("max_results", max_results)]
        params += [("registry", registry)] if registry else []
        params += [("name_like", name_like)] if name_like else []
        params += [("tag", f"{k}={v}") for k, v in (tags or {}).items()]
        data = self._t.request("GET", "/api/v1/models", params=params)
        return [RegisteredModel.from_json(m) for m in data["models"]]

    def update_registered_model(self, name: str, *, new_name: str | None = None,
                                description: str | None = None) -> RegisteredModel:
        body = {k: v for k, v in {"name": new_name, "description": description}.items() if v is not None}
        return RegisteredModel.from_json(self._t.request("PATCH", _m(name), json=body))

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        return self.update_registered_model(name, new_name=new_name)

    def delete_registered_model(self, name: str) -> None:
        self._t.request("DELETE", _m(name))

    def restore_registered_model(self, name: str) -> None:
        self._t.request("POST", _m(name) + "/restore")

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        self._t.request("POST", _m(name) + "/tags", json={key: value})

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self._t.request("DELETE", _m(name) + "/tags", params={"key": key})

    def register_model(self, source: str, name: str, tags: dict[str, str] | None = None,
                       aliases: list[str] | None = None, description: str = "") -> ModelVersion:
        """Register a logged model (``runs:/<run_id>/<model name>`` or its id) as the next version of ``name``."""
        body = {"source": source, "tags": tags or {}, "aliases": list(aliases or []), "description": description}
        return ModelVersion.from_json(self._t.request("POST", _m(name) + "/versions", json=body))

    def get_model_version(self, name: str, version: int) -> ModelVersion:
        return ModelVersion.from_json(self._t.request("GET", f"{_m(name)}/versions/{int(version)}"))

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return ModelVersion.from_json(self._t.request("GET", f"{_m(name)}/aliases/{quote(alias, safe='')}"))

    def list_model_versions(self, name: str, include_deleted: bool = False) -> list[ModelVersion]:  # noqa: FBT001, FBT002
        data = self._t.request("GET", _m(name) + "/versions", params={"include_deleted": include_deleted})
        return [ModelVersion.from_json(v) for v in data["versions"]]

    def update_model_version(self, name: str, version: int, description: str) -> ModelVersion:
        return ModelVersion.from_json(self._t.request("PATCH", f"{_m(name)}/versions/{int(version)}",
                                                      json={"description": description}))

    def delete_model_version(self, name: str, version: int) -> None:
        self._t.request("DELETE", f"{_m(name)}/versions/{int(version)}")

    def restore_model_version(self, name: str, version: int) -> None:
        self._t.request("POST", f"{_m(name)}/versions/{int(version)}/restore")

    def set_model_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        self._t.request("POST", f"{_m(name)}/versions/{int(version)}/tags", json={key: value})

    def delete_model_version_tag(self, name: str, version: int, key: str) -> None:
        self._t.request("DELETE", f"{_m(name)}/versions/{int(version)}/tags", params={"key": key})

    def set_alias(self, name: str, alias: str, version: int, reason: str = "") -> ModelVersion:
        """Point ``alias`` at ``version`` (taking it off the version it was on); the move is recorded."""
        return ModelVersion.from_json(self._t.request(
            "PUT", f"{_m(name)}/aliases/{quote(alias, safe='')}", json={"version": version, "reason": reason}))

    def delete_alias(self, name: str, alias: str) -> None:
        self._t.request("DELETE", f"{_m(name)}/aliases/{quote(alias, safe='')}")

    def get_alias_history(self, name: str, alias: str) -> list[AliasMove]:
        data = self._t.request("GET", f"{_m(name)}/aliases/{quote(alias, safe='')}/history")
        return [AliasMove.from_json(m) for m in data["moves"]]

    def rollback_alias(self, name: str, alias: str) -> ModelVersion:
        """Move ``alias`` back to the version it pointed at before its last move."""
        return ModelVersion.from_json(self._t.request(
            "POST", f"{_m(name)}/aliases/{quote(alias, safe='')}/rollback"))

    def promote(self, name: str, version: int, to: str, aliases: list[str] | None = None,
                note: str | None = None) -> ModelVersion:
        """Copy a version into another registry (no bytes copied), recording its source and the note."""
        body = {"to": to, "aliases": list(aliases or []), "note": note or ""}
        return ModelVersion.from_json(self._t.request("POST", f"{_m(name)}/versions/{int(version)}/promote",
                                                      json=body))

    # log_model's options are keyword-only: their count is no trap
    def log_model(self, model: Any, name: str = "model", *, experiment: int | str, flavor: str | None = None,  # noqa: PLR0913
                  signature: dict[str, Any] | None = None, input_example: Any = None,
                  requirements: list[str] | None = None, registered_model_name: str | None = None,
                  tags: dict[str, str] | None = None, aliases: list[str] | None = None) -> Any:
        """Log a model outside any run, as a model of ``experiment`` (its id, or a name, created if needed):
        a model trained elsewhere, or one that belongs to no single run. With ``registered_model_name`` it is
        registered, tagged and aliased in the same call. Returns the ModelVersion when registered, else the
        LoggedModel. Inside a run, use ``run.log_model``, which keeps the model with its run."""
        from cairn.client._flavors import save_model

        experiment_id = experiment if isinstance(experiment, int) else self._experiment_id(experiment)
        with tempfile.TemporaryDirectory(prefix="cairn-model-") as tmp:
            folder = Path(tmp) / "model"
            manifest = save_model(model, folder, flavor=flavor, input_example=input_example, signature=signature,
                                  requirements=requirements)
            logged = LoggedModel.from_json(self._t.request(
                "POST", f"/api/v1/experiments/{int(experiment_id)}/logged-models",
                json={"name": name, "manifest": manifest}))
            for path in sorted(manifest["files"]):
                self._t.upload_file("PUT", f"/api/v1/logged-models/{logged.id}/files", {"path": path},
                                    folder / path)
        if registered_model_name is None:
            return logged
        return self.register_model(logged.id, registered_model_name, tags=dict(tags or {}), aliases=aliases)

    def _experiment_id(self, name: str) -> int:
        try:
            found = self._t.request("GET", "/api/v1/experiments/by-name", params={"name": name})
        except NotFoundError:
            found = self._t.request("POST", "/api/v1/experiments", json={"name": name})
        return int(found["experiment_id"])

    def list_logged_models(self, run_id: str) -> list[LoggedModel]:
        data = self._t.request("GET", f"/api/v1/runs/{run_id}/logged-models")
        return [LoggedModel.from_json(m) for m in data["models"]]

    def export_model(self, uri: str, path: str | os.PathLike[str]) -> str:
        """Write a version (``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``) as a self-contained bundle file."""
        version = self.resolve_model_uri(uri)
        target = Path(path)
        tmp = target.with_name(f".{target.name}.part")
        with tmp.open("wb") as out:
            self._t.download_to(f"{_m(version.name)}/versions/{version.version}/export", {}, out.write)
        os.replace(tmp, target)
        return str(target)

    def import_model(self, path: str | os.PathLike[str], to: str) -> ModelVersion:
        """Register a bundle made by ``export_model`` as the next version of ``to`` (digests are checked)."""
        data = self._t.upload_file("POST", _m(to) + "/versions/import", {}, Path(path),
                                   content_type="application/x-tar")
        return ModelVersion.from_json(data)

    # models as folders -------------------------------------------------------------------------------
    def download_model(self, uri: str, dst: str | os.PathLike[str]) -> str:
        """Fetch a model folder (files checked against their digests); returns its local path."""
        manifest, files = self._model_files(uri)
        target = Path(dst)
        target.mkdir(parents=True, exist_ok=True)
        for path, (url, params, digest) in files.items():
            _fetch(self._t, url, params, target / path, digest)
        (target / "MODEL.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        return str(target)

    def _model_files(self, uri: str) -> tuple[dict[str, Any], dict[str, tuple[str, dict[str, Any], str]]]:
        if uri.startswith("runs:/"):
            run_id, _, rest = uri.removeprefix("runs:/").partition("/")
            name, _, step = rest.partition("/")
            logged = [m for m in self.list_logged_models(run_id)
                      if m.name == name and (not step or str(m.step) == step)]
            if not logged:
                raise CairnError(f"run {run_id} has no logged model {rest!r}")
            model = max(logged, key=lambda m: -1 if m.step is None else m.step)
            url = f"/api/v1/runs/{run_id}/artifacts/content"
            return model.manifest, {p: (url, {"path": f"{model.artifact_path}/{p}"}, f"sha256:{i['sha256']}")
                                    for p, i in model.manifest["files"].items()}
        version = self.resolve_model_uri(uri)
        url = f"{_m(version.name)}/versions/{version.version}/files/content"
        return version.manifest, {f["path"]: (url, {"path": f["path"]}, f["digest"]) for f in version.files}

    def resolve_model_uri(self, uri: str) -> ModelVersion:
        """The version that models:/NAME/VERSION or models:/NAME@ALIAS names."""
        if not uri.startswith("models:/"):
            raise InvalidRequestError(400, f"model URI {uri!r} must start with models:/ or runs:/")
        rest = uri.removeprefix("models:/")
        if "@" in rest:
            name, _, alias = rest.partition("@")
            return self.get_model_version_by_alias(name, alias)
        name, _, version = rest.rpartition("/")
        if not name or not version.isdigit():
            raise InvalidRequestError(400, f"model URI {uri!r}: expected models:/NAME/VERSION or models:/NAME@ALIAS")
        return self.get_model_version(name, int(version))

    def load_model(self, uri: str) -> Any:
        """Download (once, cached under CAIRN_HOME/models) and load a model; returns an object with predict."""
        from cairn.client._flavors import load_model_dir, require_flavor

        manifest, _ = self._model_files(uri)
        require_flavor(manifest)  # a missing package is said before a large download, not after
        key = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:32]
        home = Path(os.environ.get("CAIRN_HOME") or Path.home() / ".cairn").expanduser()
        cached = home / "models" / key
        if not cached.exists():
            cached.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=cached.parent, prefix=".download-"))
            try:
                self.download_model(uri, staging)
                os.replace(staging, cached)
            except OSError:
                if not cached.exists():  # another process won the race: use its copy
                    raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return load_model_dir(cached)


def _fetch(transport: Transport, url: str, params: dict[str, Any], local: Path, digest: str) -> None:
    local.parent.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.sha256()
    with local.open("wb") as out:
        def write(piece: memoryview) -> None:
            hasher.update(piece)
            out.write(piece)

        transport.download_to(url, params, write)  # straight from the bucket when the server has one
    if f"sha256:{hasher.hexdigest()}" != digest:
        local.unlink(missing_ok=True)
        raise CairnError(f"downloaded model file {local} does not match its digest {digest}")
