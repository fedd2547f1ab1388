"""The model registry over the native API, on SQLite and PostgreSQL: registries, names, versions and their
lineage, aliases with history, promotion, soft delete, search, concurrency and bad input."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import ARTIFACT_STORES, LiveServer, stored_blobs

pytestmark = pytest.mark.parametrize("artifact_root", ARTIFACT_STORES, indirect=True)

API = "/api/v1"
WEIGHTS = b"weights-v1"
CONFIG = b'{"layers": 2}'


def m(name: str) -> str:
    return f"{API}/models/{quote(name, safe='')}"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def log_model(api: httpx.Client, run_id: str, name: str = "model", step: int | None = None,
              files: dict[str, bytes] | None = None) -> httpx.Response:
    """Upload a model folder's files into the run and record it as a logged model (what the SDK does)."""
    files = files if files is not None else {"model.pkl": WEIGHTS, "conf/config.json": CONFIG}
    base = f"models/{name}" if step is None else f"models/{name}/step-{step}"
    for path, data in files.items():
        uploaded = api.put(f"{API}/runs/{run_id}/artifacts", params={"path": f"{base}/{path}"}, content=data)
        assert uploaded.status_code == 201, uploaded.text
    manifest = {"flavor": "pyfunc", "format": 1,
                "files": {p: {"sha256": sha(d), "size": len(d)} for p, d in files.items()}}
    return api.post(f"{API}/runs/{run_id}/logged-models",
                    json={"name": name, "artifact_path": base, "manifest": manifest, "step": step})


def register(api: httpx.Client, name: str, source: str, **body: Any) -> httpx.Response:
    return api.post(f"{m(name)}/versions", json={"source": source, **body})


def versions_of(api: httpx.Client, name: str, include_deleted: bool = False) -> list[int]:
    response = api.get(f"{m(name)}/versions", params={"include_deleted": include_deleted})
    assert response.status_code == 200, response.text
    return [v["version"] for v in response.json()["versions"]]


def moves(api: httpx.Client, name: str, alias: str) -> list[tuple[int | None, int | None]]:
    history = api.get(f"{m(name)}/aliases/{alias}/history")
    assert history.status_code == 200, history.text
    return [(x["from_version"], x["to_version"]) for x in history.json()["moves"]]


def refused(response: httpx.Response, status: int, field: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    assert body["field"] == field, body
    return body


@pytest.fixture
def source(api: httpx.Client, run_id: str) -> str:
    """A run with one logged model named "model"; its runs:/ URI."""
    logged = log_model(api, run_id)
    assert logged.status_code == 201, logged.text
    return f"runs:/{run_id}/model"


@pytest.fixture
def two_versions(api: httpx.Client, source: str) -> str:
    for expected in (1, 2):
        created = register(api, "dev.mnist", source)
        assert created.status_code == 201 and created.json()["version"] == expected, created.text
    return "dev.mnist"


# registries ----------------------------------------------------------------------------------------------

def test_dev_and_prod_exist_and_prod_is_protected(api: httpx.Client) -> None:
    registries = api.get(f"{API}/registries").json()["registries"]
    assert [(r["name"], r["protected"]) for r in registries] == [("dev", False), ("prod", True)]


def test_create_registry_and_duplicate(api: httpx.Client) -> None:
    created = api.post(f"{API}/registries", json={"name": "staging", "description": "pre-prod"})
    assert created.status_code == 201
    assert (created.json()["name"], created.json()["protected"]) == ("staging", False)
    names = [r["name"] for r in api.get(f"{API}/registries").json()["registries"]]
    assert names == ["dev", "prod", "staging"]
    refused(api.post(f"{API}/registries", json={"name": "staging"}), 409, "name")
    refused(api.post(f"{API}/registries", json={"name": "prod"}), 409, "name")


def test_bad_registry_names_are_400(api: httpx.Client) -> None:
    for name in ["", "Staging", "a b", "a.b", "a/b", "a@b", "-x", "r" * 65, "é"]:
        refused(api.post(f"{API}/registries", json={"name": name}), 400, "name")
    assert len(api.get(f"{API}/registries").json()["registries"]) == 2


# names -----------------------------------------------------------------------------------------------------

def test_full_name_and_bare_name_lives_in_dev(api: httpx.Client, source: str) -> None:
    created = register(api, "mnist", source)
    assert created.status_code == 201
    assert created.json()["name"] == "dev.mnist"
    model = api.get(m("dev.mnist")).json()
    assert (model["name"], model["registry"], model["model"], model["latest_version"]) == \
        ("dev.mnist", "dev", "mnist", 1)
    assert api.get(m("mnist")).json() == model
    assert api.get(m("prod.mnist")).status_code == 404


def test_model_name_may_contain_dots_after_the_registry(api: httpx.Client, source: str) -> None:
    created = register(api, "dev.mnist.small", source)
    assert created.status_code == 201
    model = api.get(m("dev.mnist.small")).json()
    assert (model["registry"], model["model"]) == ("dev", "mnist.small")


def test_unknown_registry_is_404_naming_it(api: httpx.Client, source: str) -> None:
    body = refused(register(api, "nope.mnist", source), 404, "registry")
    assert "nope" in body["message"]
    refused(api.post(f"{API}/models", json={"name": "nope.mnist"}), 404, "registry")
    refused(api.get(f"{API}/models", params={"registry": "nope"}), 404, "registry")
    refused(api.get(m("nope.mnist")), 404, "registry")


def test_bad_model_names_are_400(api: httpx.Client, source: str) -> None:
    for name in ["a/b", "a@b", "a b", "", "dev.", "dev.a/b", "dev.a@b", "dev.a b", "dev.-a", "dev." + "m" * 251,
                 "dev.a..b", "dev.a\nb"]:
        refused(api.post(f"{API}/models", json={"name": name}), 400, "name")
    for name in ["a@b", "a b", "dev.a@b", "dev.a b", "-a"]:  # in the URL
        refused(register(api, name, source), 400, "name")
        refused(api.get(m(name)), 400, "name")
    assert api.get(f"{API}/models", params={"include_deleted": True}).json()["models"] == []


def test_slash_in_a_model_name_or_alias_in_the_path_is_400(api: httpx.Client, two_versions: str) -> None:
    responses = [register(api, "a/b", "runs:/x/model"),
                 api.put(f"{m(two_versions)}/aliases/{quote('a/b', safe='')}", json={"version": 1})]
    assert [(r.status_code, r.json().get("field")) for r in responses] == [(400, "name"), (400, "alias")]


def test_create_model_then_duplicate(api: httpx.Client) -> None:
    created = api.post(f"{API}/models", json={"name": "dev.cnn", "description": "d", "tags": {"team": "vision"}})
    assert created.status_code == 201
    assert (created.json()["tags"], created.json()["latest_version"], created.json()["aliases"]) == \
        ({"team": "vision"}, None, {})
    refused(api.post(f"{API}/models", json={"name": "cnn"}), 409, "name")


def test_rename_model(api: httpx.Client, two_versions: str) -> None:
    api.post(f"{API}/models", json={"name": "dev.taken"})
    renamed = api.patch(m("dev.mnist"), json={"name": "digits", "description": "renamed"})
    assert renamed.status_code == 200
    assert (renamed.json()["name"], renamed.json()["description"]) == ("dev.digits", "renamed")
    assert versions_of(api, "dev.digits") == [1, 2]
    assert api.get(m("dev.mnist")).status_code == 404
    refused(api.patch(m("dev.digits"), json={"name": "taken"}), 409, "new_name")
    refused(api.patch(m("dev.digits"), json={"name": "prod.digits"}), 400, "new_name")
    refused(api.patch(m("dev.digits"), json={"name": "a b"}), 400, "new_name")


# logged models and versions ----------------------------------------------------------------------------

def test_logged_model_checks_its_files(api: httpx.Client, run_id: str) -> None:
    assert log_model(api, run_id, "good").status_code == 201
    manifest = {"flavor": "pyfunc", "files": {"model.pkl": {"sha256": sha(b"other"), "size": 5}}}
    wrong = api.post(f"{API}/runs/{run_id}/logged-models",
                     json={"name": "bad", "artifact_path": "models/good", "manifest": manifest})
    assert "another digest" in refused(wrong, 400, "manifest.files['model.pkl']")["message"]
    manifest = {"flavor": "pyfunc", "files": {"absent.pkl": {"sha256": sha(b"x"), "size": 1}}}
    missing = api.post(f"{API}/runs/{run_id}/logged-models",
                       json={"name": "bad", "artifact_path": "models/good", "manifest": manifest})
    assert "missing" in refused(missing, 400, "manifest.files['absent.pkl']")["message"]
    manifest = {"flavor": "pyfunc", "files": {"model.pkl": {"sha256": sha(WEIGHTS), "size": 10**12}}}
    oversized = api.post(f"{API}/runs/{run_id}/logged-models",
                         json={"name": "bad", "artifact_path": "models/good", "manifest": manifest})
    assert "size" in refused(oversized, 400, "manifest.files['model.pkl']")["message"]
    assert [x["name"] for x in api.get(f"{API}/runs/{run_id}/logged-models").json()["models"]] == ["good"]


def test_logged_model_checkpoints_and_duplicates(api: httpx.Client, run_id: str) -> None:
    assert log_model(api, run_id, "ckpt", step=1, files={"w.bin": b"one"}).status_code == 201
    assert log_model(api, run_id, "ckpt", step=3, files={"w.bin": b"three"}).status_code == 201
    assert log_model(api, run_id, "final", files={"w.bin": b"final"}).status_code == 201
    refused(log_model(api, run_id, "final", files={"w.bin": b"final"}), 409, "name")
    refused(log_model(api, run_id, "ckpt", step=3, files={"w.bin": b"three"}), 409, "name")
    logged = api.get(f"{API}/runs/{run_id}/logged-models").json()["models"]
    assert [(x["name"], x["step"]) for x in logged] == [("ckpt", 1), ("ckpt", 3), ("final", None)]
    assert {x["uri"] for x in logged} == {f"runs:/{run_id}/ckpt", f"runs:/{run_id}/final"}
    latest = register(api, "dev.ckpt", f"runs:/{run_id}/ckpt").json()
    assert latest["lineage"]["step"] == 3 and latest["files"][0]["digest"] == f"sha256:{sha(b'three')}"
    first = register(api, "dev.ckpt", f"runs:/{run_id}/ckpt/1").json()
    assert (first["version"], first["lineage"]["step"]) == (2, 1)
    by_id = register(api, "dev.ckpt", logged[2]["id"]).json()
    assert (by_id["version"], by_id["lineage"]["logged_model_name"]) == (3, "final")


def test_bad_sources_are_refused(api: httpx.Client, run_id: str, source: str) -> None:
    for bad, status in [("runs:/0123456789abcdef0123456789abcdef/model", 404), (f"runs:/{run_id}/absent", 404),
                        (f"runs:/{run_id}/model/x", 400), (f"runs:/{run_id}/model/7", 404), ("", 400),
                        ("0123456789abcdef0123456789abcdef", 404), ("s3://bucket/model", 404)]:
        refused(register(api, "dev.mnist", bad), status, "source")
    assert api.get(m("dev.mnist")).status_code == 404


def test_versions_are_numbered_and_carry_lineage(api: httpx.Client, run_id: str) -> None:
    api.post(f"{API}/runs/{run_id}/metrics/define", json={"key": "val_loss", "goal": "min"})
    api.post(f"{API}/runs/{run_id}/batch", json={
        "params": {"lr": 0.01},
        "metrics": [{"key": "val_loss", "steps": [0, 1, 2], "values": [0.5, 0.2, 0.3]}]})
    api.post(f"{API}/runs/{run_id}/datasets", json={"name": "mnist", "uri": "s3://b/mnist/v3", "role": "train"})
    api.post(f"{API}/runs/{run_id}/tags", json={"cairn.source.git_commit": "abc123", "other": "x"})
    log_model(api, run_id)
    created = register(api, "dev.mnist", f"runs:/{run_id}/model", tags={"approved": "false"},
                       aliases=["challenger"], description="first")
    assert created.status_code == 201, created.text
    v1 = created.json()
    assert (v1["name"], v1["version"], v1["run_id"], v1["flavor"]) == ("dev.mnist", 1, run_id, "pyfunc")
    assert (v1["tags"], v1["aliases"], v1["description"]) == ({"approved": "false"}, ["challenger"], "first")
    assert (v1["status"], v1["lifecycle"], v1["created_by"], v1["source"]) == ("READY", "active", "anonymous", None)
    run = api.get(f"{API}/runs/{run_id}").json()
    lineage = v1["lineage"]
    assert lineage["run_id"] == run_id and lineage["experiment_id"] == run["experiment_id"]
    assert lineage["metrics"]["val_loss"]["min"] == run["metrics"]["val_loss"]["min"] == 0.2
    assert lineage["metrics"]["val_loss"]["best_step"] == 1
    assert lineage["params"] == {"lr": "0.01"}
    assert [d["uri"] for d in lineage["datasets"]] == ["s3://b/mnist/v3"]
    assert lineage["source"] == {"cairn.source.git_commit": "abc123"}
    assert {f["path"]: (f["digest"], f["size"]) for f in v1["files"]} == {
        "conf/config.json": (f"sha256:{sha(CONFIG)}", len(CONFIG)), "model.pkl": (f"sha256:{sha(WEIGHTS)}", 7 + 3)}
    assert v1["manifest"]["files"]["model.pkl"]["sha256"] == sha(WEIGHTS)
    # the snapshot is frozen: later logging on the run does not change the version
    api.post(f"{API}/runs/{run_id}/batch", json={"metrics": [{"key": "val_loss", "steps": [3], "values": [0.01]}]})
    assert api.get(f"{m('dev.mnist')}/versions/1").json()["lineage"]["metrics"]["val_loss"]["min"] == 0.2
    assert register(api, "dev.mnist", f"runs:/{run_id}/model").json()["version"] == 2
    assert versions_of(api, "dev.mnist") == [1, 2]
    assert api.get(m("dev.mnist")).json()["latest_version"] == 2


def test_version_files_download_with_their_digest(api: httpx.Client, two_versions: str) -> None:
    got = api.get(f"{m(two_versions)}/versions/2/files/content", params={"path": "conf/config.json"})
    assert got.status_code == 200 and got.content == CONFIG
    assert got.headers["x-cairn-digest"] == f"sha256:{sha(CONFIG)}"
    refused(api.get(f"{m(two_versions)}/versions/2/files/content", params={"path": "nope.bin"}), 404, "path")
    refused(api.get(f"{m(two_versions)}/versions/2/files/content", params={"path": "../x"}), 400, "path")


def test_version_description_and_tags(api: httpx.Client, two_versions: str) -> None:
    v = f"{m(two_versions)}/versions/1"
    assert api.patch(v, json={"description": "better"}).json()["description"] == "better"
    assert api.post(f"{v}/tags", json={"approved": "true", "owner": "ana"}).status_code == 200
    assert api.delete(f"{v}/tags", params={"key": "owner"}).status_code == 200
    assert api.get(v).json()["tags"] == {"approved": "true"}
    refused(api.delete(f"{v}/tags", params={"key": "owner"}), 404, "key")
    assert api.get(f"{m(two_versions)}/versions/2").json()["tags"] == {}


def test_bad_version_numbers(api: httpx.Client, two_versions: str) -> None:
    for version, status in [("3", 404), ("0", 400), ("-1", 400), ("abc", 400), ("99999999999", 400), ("1.5", 400)]:
        refused(api.get(f"{m(two_versions)}/versions/{version}"), status, "version")
        refused(api.delete(f"{m(two_versions)}/versions/{version}"), status, "version")
    assert versions_of(api, two_versions) == [1, 2]


# aliases --------------------------------------------------------------------------------------------------

def test_alias_moves_between_versions_with_history(api: httpx.Client, two_versions: str) -> None:
    name = two_versions
    first = api.put(f"{m(name)}/aliases/champion", json={"version": 1, "reason": "baseline"})
    assert first.status_code == 200 and first.json()["aliases"] == ["champion"]
    moved = api.put(f"{m(name)}/aliases/champion", json={"version": 2, "reason": "better val_loss"})
    assert (moved.json()["version"], moved.json()["aliases"]) == (2, ["champion"])
    assert api.get(f"{m(name)}/versions/1").json()["aliases"] == []
    assert api.get(f"{m(name)}/aliases/champion").json()["version"] == 2
    assert api.get(m(name)).json()["aliases"] == {"champion": 2}
    history = api.get(f"{m(name)}/aliases/champion/history").json()
    assert (history["name"], history["alias"]) == (name, "champion")
    assert [(x["from_version"], x["to_version"], x["actor"], x["reason"]) for x in history["moves"]] == [
        (None, 1, "anonymous", "baseline"), (1, 2, "anonymous", "better val_loss")]
    assert history["moves"][0]["time"] <= history["moves"][1]["time"]
    # setting it where it already is records nothing
    assert api.put(f"{m(name)}/aliases/champion", json={"version": 2}).status_code == 200
    assert moves(api, name, "champion") == [(None, 1), (1, 2)]


def test_rollback_moves_the_alias_back(api: httpx.Client, two_versions: str) -> None:
    name = two_versions
    api.put(f"{m(name)}/aliases/champion", json={"version": 1})
    api.put(f"{m(name)}/aliases/champion", json={"version": 2})
    back = api.post(f"{m(name)}/aliases/champion/rollback")
    assert back.status_code == 200 and back.json()["version"] == 1
    assert api.get(f"{m(name)}/aliases/champion").json()["version"] == 1
    assert moves(api, name, "champion") == [(None, 1), (1, 2), (2, 1)]
    assert api.get(f"{m(name)}/aliases/champion/history").json()["moves"][-1]["reason"] == "rollback from 2"


def test_rollback_without_an_earlier_version_is_409(api: httpx.Client, two_versions: str) -> None:
    api.put(f"{m(two_versions)}/aliases/champion", json={"version": 1})
    refused(api.post(f"{m(two_versions)}/aliases/champion/rollback"), 409, "alias")
    assert api.get(f"{m(two_versions)}/aliases/champion").json()["version"] == 1
    refused(api.post(f"{m(two_versions)}/aliases/never/rollback"), 404, "alias")


def test_several_aliases_on_one_version_and_delete_alias(api: httpx.Client, two_versions: str) -> None:
    name = two_versions
    api.put(f"{m(name)}/aliases/champion", json={"version": 2})
    api.put(f"{m(name)}/aliases/latest-good", json={"version": 2})
    assert api.get(f"{m(name)}/versions/2").json()["aliases"] == ["champion", "latest-good"]
    assert api.delete(f"{m(name)}/aliases/latest-good").status_code == 200
    refused(api.get(f"{m(name)}/aliases/latest-good"), 404, "alias")
    assert moves(api, name, "latest-good") == [(None, 2), (2, None)]
    refused(api.delete(f"{m(name)}/aliases/latest-good"), 404, "alias")
    assert api.get(m(name)).json()["aliases"] == {"champion": 2}


def test_unknown_alias_and_alias_on_unknown_version(api: httpx.Client, two_versions: str) -> None:
    refused(api.get(f"{m(two_versions)}/aliases/nope"), 404, "alias")
    refused(api.get(f"{m(two_versions)}/aliases/nope/history"), 404, "alias")
    refused(api.put(f"{m(two_versions)}/aliases/champion", json={"version": 9}), 404, "version")
    refused(api.put(f"{m(two_versions)}/aliases/champion", json={"version": "two"}), 400, "version")
    refused(api.get(f"{m('dev.other')}/aliases/champion"), 404, "name")


BAD_ALIASES = ["3", "v3", "V12", "007", "a/b", "a@b", "a b", "", "1abc", "-x", "a" * 65, "champion\n"]


def test_bad_alias_in_the_path_is_400(api: httpx.Client, two_versions: str) -> None:
    for alias in [a for a in BAD_ALIASES if "/" not in a and a]:
        url = f"{m(two_versions)}/aliases/{quote(alias, safe='')}"
        refused(api.put(url, json={"version": 1}), 400, "alias")
        refused(api.get(url), 400, "alias")
        refused(api.delete(url), 400, "alias")
    assert api.get(m(two_versions)).json()["aliases"] == {}


def test_register_with_a_bad_alias_writes_nothing(api: httpx.Client, source: str) -> None:
    for alias in BAD_ALIASES:
        refused(register(api, "dev.mnist", source, aliases=["champion", alias], tags={"a": "b"}), 400, "alias")
        assert api.get(m("dev.mnist")).status_code == 404  # not even the model
    assert register(api, "dev.mnist", source).json()["version"] == 1  # and no version number was used up


def test_register_with_bad_tags_writes_nothing(api: httpx.Client, two_versions: str, source: str) -> None:
    refused(register(api, two_versions, source, tags={"": "x"}, aliases=["champion"]), 400, "tags['']")
    refused(register(api, two_versions, source, tags={"k": 1}), 400, "tags.k")
    assert versions_of(api, two_versions, include_deleted=True) == [1, 2]
    assert api.get(m(two_versions)).json()["aliases"] == {}
    assert register(api, two_versions, source).json()["version"] == 3


# promotion ---------------------------------------------------------------------------------------------

def test_a_registered_version_answers_like_a_read(api: httpx.Client, source: str) -> None:
    register(api, "dev.mnist", source, aliases=["champion"])
    created = register(api, "dev.mnist", source, tags={"b": "2", "a": "1"}, aliases=["champion", "canary", "champion"])
    assert created.status_code == 201, created.text
    v = created.json()
    assert v["aliases"] == ["canary", "champion"] and v["tags"] == {"a": "1", "b": "2"}
    assert v == api.get(f"{m('dev.mnist')}/versions/2").json()
    assert api.get(f"{m('dev.mnist')}/aliases/champion").json() == v
    assert moves(api, "dev.mnist", "champion") == [(None, 1), (1, 2)]


def test_promote_creates_a_linked_version_in_another_registry(api: httpx.Client, two_versions: str,
                                                              run_id: str, app: Any) -> None:
    stored = stored_blobs(app)
    promoted = api.post(f"{m(two_versions)}/versions/1/promote",
                        json={"to": "prod.mnist", "aliases": ["champion"], "note": "passed review"})
    assert promoted.status_code == 201, promoted.text
    v = promoted.json()
    assert (v["name"], v["version"], v["aliases"], v["note"], v["run_id"]) == \
        ("prod.mnist", 1, ["champion"], "passed review", run_id)
    assert v["source"] == {"model": "dev.mnist", "version": 1, "run_id": run_id}
    assert v["lineage"]["promoted_from"]["note"] == "passed review"
    assert v["lineage"]["metrics"] == api.get(f"{m(two_versions)}/versions/1").json()["lineage"]["metrics"]
    source_files = api.get(f"{m(two_versions)}/versions/1").json()["files"]
    assert v["files"] == source_files
    assert stored_blobs(app) == stored  # no bytes copied
    got = api.get(f"{m('prod.mnist')}/versions/1/files/content", params={"path": "model.pkl"})
    assert got.content == WEIGHTS
    assert api.get(f"{m('prod.mnist')}/aliases/champion").json()["version"] == 1
    # the source is unchanged
    assert api.get(f"{m(two_versions)}/versions/1").json()["aliases"] == []


def test_promoting_again_returns_the_same_version(api: httpx.Client, two_versions: str) -> None:
    first = api.post(f"{m(two_versions)}/versions/1/promote", json={"to": "prod.mnist", "note": "n"}).json()
    again = api.post(f"{m(two_versions)}/versions/1/promote", json={"to": "prod.mnist", "aliases": ["champion"]})
    assert again.status_code == 201, again.text  # the route answers 201 whether or not the version is new
    assert again.json()["version"] == first["version"] == 1 and again.json()["aliases"] == ["champion"]
    assert versions_of(api, "prod.mnist") == [1]
    second = api.post(f"{m(two_versions)}/versions/2/promote", json={"to": "prod.mnist", "aliases": ["champion"]})
    assert second.json()["version"] == 2 and second.json()["source"]["version"] == 2
    assert versions_of(api, "prod.mnist") == [1, 2]
    assert moves(api, "prod.mnist", "champion") == [(None, 1), (1, 2)]


def test_promoting_again_after_the_promoted_version_was_deleted(api: httpx.Client, two_versions: str) -> None:
    api.post(f"{m(two_versions)}/versions/1/promote", json={"to": "prod.mnist"})
    assert api.delete(f"{m('prod.mnist')}/versions/1").status_code == 200
    again = api.post(f"{m(two_versions)}/versions/1/promote", json={"to": "prod.mnist"})
    # only an active copy counts as "promoted already": a deleted one is not revived, a new version is made
    assert again.status_code == 201, again.text
    assert again.json()["version"] == 2 and again.json()["source"]["version"] == 1
    assert versions_of(api, "prod.mnist") == [2]


def test_promote_to_another_name_and_custom_registry(api: httpx.Client, two_versions: str) -> None:
    api.post(f"{API}/registries", json={"name": "staging"})
    promoted = api.post(f"{m(two_versions)}/versions/2/promote", json={"to": "staging.digits"}).json()
    assert (promoted["name"], promoted["version"], promoted["source"]["model"]) == ("staging.digits", 1, "dev.mnist")
    onward = api.post(f"{m('staging.digits')}/versions/1/promote", json={"to": "prod.digits"}).json()
    assert onward["source"] == {"model": "staging.digits", "version": 1, "run_id": promoted["run_id"]}


def test_bad_promotion_target(api: httpx.Client, two_versions: str) -> None:
    for to, status in [("dev.other", 400), ("dev.mnist", 400), ("mnist", 400), ("nope.mnist", 404),
                       ("prod.a b", 400), ("prod.", 400), ("", 400)]:
        refused(api.post(f"{m(two_versions)}/versions/1/promote", json={"to": to}), status, "to")
    assert [x["name"] for x in api.get(f"{API}/models").json()["models"]] == ["dev.mnist"]


def test_promote_with_a_bad_alias_or_unknown_version_writes_nothing(api: httpx.Client, two_versions: str) -> None:
    refused(api.post(f"{m(two_versions)}/versions/1/promote", json={"to": "prod.mnist", "aliases": ["v1"]}),
            400, "alias")
    refused(api.post(f"{m(two_versions)}/versions/7/promote", json={"to": "prod.mnist"}), 404, "version")
    refused(api.post(f"{m(two_versions)}/versions/1/promote", json={"to": "prod.mnist", "note": "x" * 100_000}),
            400, "note")
    assert api.get(m("prod.mnist")).status_code == 404


# soft delete, restore, search ------------------------------------------------------------------------

def test_delete_and_restore_a_version(api: httpx.Client, two_versions: str, source: str) -> None:
    name = two_versions
    api.put(f"{m(name)}/aliases/champion", json={"version": 2})
    assert api.delete(f"{m(name)}/versions/2").status_code == 200
    refused(api.get(f"{m(name)}/versions/2"), 404, "version")
    refused(api.get(f"{m(name)}/aliases/champion"), 404, "alias")
    history = api.get(f"{m(name)}/aliases/champion/history").json()["moves"]
    assert [(x["from_version"], x["to_version"]) for x in history] == [(None, 2), (2, None)]
    assert versions_of(api, name) == [1]
    listed = api.get(f"{m(name)}/versions", params={"include_deleted": True}).json()["versions"]
    assert [(v["version"], v["lifecycle"]) for v in listed] == [(1, "active"), (2, "deleted")]
    assert api.get(m(name)).json()["latest_version"] == 1
    refused(api.delete(f"{m(name)}/versions/2"), 409, "version")
    refused(api.put(f"{m(name)}/aliases/champion", json={"version": 2}), 404, "version")
    assert register(api, name, source).json()["version"] == 3  # numbers are never reused
    assert api.post(f"{m(name)}/versions/2/restore").status_code == 200
    restored = api.get(f"{m(name)}/versions/2").json()
    assert (restored["lifecycle"], restored["aliases"]) == ("active", [])
    refused(api.post(f"{m(name)}/versions/2/restore"), 409, "version")
    assert versions_of(api, name) == [1, 2, 3]


def test_delete_and_restore_a_model(api: httpx.Client, two_versions: str, source: str) -> None:
    name = two_versions
    assert api.delete(m(name)).status_code == 200
    refused(api.get(m(name)), 404, "name")
    refused(api.get(f"{m(name)}/versions/1"), 404, "name")
    assert api.get(f"{API}/models").json()["models"] == []
    deleted = api.get(f"{API}/models", params={"include_deleted": True}).json()["models"]
    assert [(x["name"], x["lifecycle"]) for x in deleted] == [("dev.mnist", "deleted")]
    refused(register(api, name, source), 409, "name")
    assert "deleted" in refused(api.post(f"{API}/models", json={"name": name}), 409, "name")["message"]
    refused(api.delete(m(name)), 409, "name")
    refused(api.get(f"{m(name)}/versions"), 404, "name")
    assert api.post(f"{m(name)}/restore").status_code == 200
    assert versions_of(api, name) == [1, 2]
    refused(api.post(f"{m(name)}/restore"), 409, "name")


def test_model_tags(api: httpx.Client, two_versions: str) -> None:
    assert api.post(f"{m(two_versions)}/tags", json={"team": "vision", "task": "digits"}).status_code == 200
    assert api.delete(f"{m(two_versions)}/tags", params={"key": "task"}).status_code == 200
    assert api.get(m(two_versions)).json()["tags"] == {"team": "vision"}
    refused(api.delete(f"{m(two_versions)}/tags", params={"key": "task"}), 404, "key")
    refused(api.post(f"{m(two_versions)}/tags", json={"bad\x00key": "x"}), 400, "tags['bad\\x00key']")


def test_search_models(api: httpx.Client) -> None:
    api.post(f"{API}/registries", json={"name": "staging"})
    for name, tags in [("dev.mnist", {"team": "vision"}), ("dev.mnist-small", {"team": "vision", "size": "s"}),
                       ("dev.bert", {"team": "nlp"}), ("staging.mnist", {"team": "vision"}),
                       ("prod.MNIST", {})]:
        assert api.post(f"{API}/models", json={"name": name, "tags": tags}).status_code == 201

    def search(**params: Any) -> list[str]:
        response = api.get(f"{API}/models", params=params)
        assert response.status_code == 200, response.text
        return [x["name"] for x in response.json()["models"]]

    assert search() == ["dev.bert", "dev.mnist", "dev.mnist-small", "prod.MNIST", "staging.mnist"]
    assert search(registry="dev") == ["dev.bert", "dev.mnist", "dev.mnist-small"]
    assert search(name_like="mnist%") == ["dev.mnist", "dev.mnist-small", "staging.mnist"]
    assert search(registry="dev", name_like="%small") == ["dev.mnist-small"]
    assert search(tag="team=vision") == ["dev.mnist", "dev.mnist-small", "staging.mnist"]
    assert search(tag=["team=vision", "size=s"]) == ["dev.mnist-small"]
    assert search(tag="team=none") == []
    assert search(max_results=2) == ["dev.bert", "dev.mnist"]
    assert search(max_results=2, offset=2) == ["dev.mnist-small", "prod.MNIST"]
    api.delete(m("dev.bert"))
    assert search(registry="dev") == ["dev.mnist", "dev.mnist-small"]
    assert search(registry="dev", include_deleted=True) == ["dev.bert", "dev.mnist", "dev.mnist-small"]


# every error is a 4xx with a field ---------------------------------------------------------------------

BAD_REQUESTS: list[tuple[str, str, Any, int, str]] = [
    ("POST", "/registries", {"name": 5}, 400, "name"),
    ("POST", "/registries", {"name": "ok", "protected": "maybe"}, 400, "protected"),
    ("POST", "/registries", {"name": "ok", "extra": 1}, 400, "extra"),
    ("POST", "/registries", {"name": "ok", "description": "d" * 100_000}, 400, "description"),
    ("POST", "/models", {}, 400, "name"),
    ("POST", "/models", {"name": "dev.x", "tags": []}, 400, "tags"),
    ("POST", "/models", {"name": "dev.x", "description": "d" * 100_000}, 400, "description"),
    ("PATCH", "/models/dev.nope", {"description": "d"}, 404, "name"),
    ("DELETE", "/models/dev.nope", None, 404, "name"),
    ("POST", "/models/dev.mnist/versions", {}, 400, "source"),
    ("POST", "/models/dev.mnist/versions", {"source": 5}, 400, "source"),
    ("POST", "/models/dev.mnist/versions", {"source": "runs:/x/model", "aliases": "champion"}, 400, "aliases"),
    ("POST", "/models/prod.mnist/versions", {"source": "runs:/x/model"}, 404, "source"),
    ("GET", "/models/dev.nope/versions", None, 404, "name"),
    ("GET", "/models/dev.mnist/versions/1/files/content", None, 400, "query.path"),
    ("PATCH", "/models/dev.mnist/versions/1", {"description": 3}, 400, "description"),
    ("PUT", "/models/dev.mnist/aliases/champion", {}, 400, "version"),
    ("PUT", "/models/dev.mnist/aliases/champion", {"version": 1, "reason": "r" * 100_000}, 400, "reason"),
    ("PUT", "/models/dev.mnist/aliases/champion", {"version": 2**40}, 400, "version"),
    ("POST", "/models/dev.mnist/versions/1/promote", {}, 400, "to"),
    ("POST", "/models/dev.mnist/versions/1/promote", {"to": "prod.x", "aliases": ["ok"] * 101}, 400, "aliases"),
    ("POST", "/models/dev.nope/versions/1/promote", {"to": "prod.x"}, 404, "name"),
    ("GET", "/models?max_results=0", None, 400, "query.max_results"),
    ("GET", "/models?offset=-1", None, 400, "query.offset"),
    ("POST", "/runs/0123456789abcdef0123456789abcdef/logged-models",
     {"name": "m", "artifact_path": "models/m", "manifest": {"flavor": "x", "files": {}}}, 404, "run_id"),
    ("POST", "/runs/{run}/logged-models", {"name": "m", "artifact_path": "models/m", "manifest": {}}, 400, "manifest"),
    ("POST", "/runs/{run}/logged-models",
     {"name": "m", "artifact_path": "models/m", "manifest": {"flavor": "x", "files": {}}}, 400, "manifest.files"),
    ("POST", "/runs/{run}/logged-models",
     {"name": "m", "artifact_path": "../m", "manifest": {"flavor": "x", "files": {}}}, 400, "artifact_path"),
    ("POST", "/runs/{run}/logged-models",
     {"name": "", "artifact_path": "models/m", "manifest": {"flavor": "x", "files": {}}}, 400, "name"),
    ("POST", "/runs/{run}/logged-models", {"name": "m", "artifact_path": "models/m", "step": -5,
     "manifest": {"flavor": "x", "files": {"a": {"sha256": "0" * 64, "size": 1}}}}, 400, "manifest.files['a']"),
    ("POST", "/runs/{run}/logged-models", {"name": "m", "artifact_path": "models/m",
     "manifest": {"flavor": "x", "files": {"a": {"sha256": "xyz", "size": 1}}}}, 400, "manifest.files['a']"),
]


def test_errors_are_4xx_with_a_field(api: httpx.Client, two_versions: str, run_id: str) -> None:
    before = api.get(f"{API}/models", params={"include_deleted": True}).json()
    for method, path, body, status, field in BAD_REQUESTS:
        response = api.request(method, API + path.format(run=run_id), json=body)
        assert 400 <= response.status_code < 500, (method, path, response.text)
        assert (response.status_code, response.json().get("field")) == (status, field), (method, path, response.text)
    assert api.get(f"{API}/models", params={"include_deleted": True}).json() == before
    assert versions_of(api, two_versions, include_deleted=True) == [1, 2]
    assert api.get(f"{API}/runs/{run_id}/logged-models").json()["models"][0]["name"] == "model"
    assert len(api.get(f"{API}/runs/{run_id}/logged-models").json()["models"]) == 1


# concurrency -------------------------------------------------------------------------------------------

def race(url: str, name: str, source: str, n: int = 8) -> list[httpx.Response]:
    """``n`` threads, each with its own connection, register a version of ``name`` at the same moment."""
    results: list[httpx.Response] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def worker() -> None:
        try:
            with httpx.Client(base_url=url, timeout=60) as own:
                barrier.wait(30)
                results.append(register(own, name, source))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return results


@pytest.mark.slow
def test_concurrent_registrations_get_versions_without_gaps(store_uri: str, tmp_path: Path,
                                                            artifact_root: str) -> None:
    server = LiveServer(tmp_path / "server-home", store_uri, workers=2, args=("--artifact-root", artifact_root)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as api:
            run_id = api.post(f"{API}/runs", json={"experiment_name": "race"}).json()["run_id"]
            assert log_model(api, run_id).status_code == 201
            # a model created by the racers themselves, then one that exists before the race
            assert api.post(f"{API}/models", json={"name": "dev.existing"}).status_code == 201
            for name in ("dev.race", "dev.existing"):
                results = race(server.url, name, f"runs:/{run_id}/model")
                assert [r.status_code for r in results] == [201] * 8, [r.text for r in results]
                assert sorted(r.json()["version"] for r in results) == list(range(1, 9))
                assert versions_of(api, name) == list(range(1, 9))
                assert api.get(m(name)).json()["latest_version"] == 8
    finally:
        server.stop()
