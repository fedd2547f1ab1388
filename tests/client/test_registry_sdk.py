"""The model registry through the SDK: log_model + register, lineage, aliases, promotion, loading by URI.

Most tests use the embedded store; one end-to-end test runs against a real server on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import cairn
from tests.conftest import ARTIFACT_STORES, LiveServer

X = np.array([[0.0, 0.1], [0.2, 0.0], [0.1, 0.3], [0.3, 0.2], [0.9, 1.0], [1.0, 0.8], [0.8, 0.9], [1.1, 1.0],
              [0.4, 0.6], [0.6, 0.4]])
Y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0, 1])


def fitted(c: float = 1.0) -> LogisticRegression:
    return LogisticRegression(C=c).fit(X, Y)


def training_run(name: str = "baseline") -> cairn.ActiveRun:
    """A finished-looking run with params, a goal metric and a dataset; still running, so models can be logged."""
    run = cairn.start_run(experiment="mnist", name=name)
    run.log_params({"lr": 0.01, "C": 1.0})
    run.define_metric("val_loss", goal="min")
    for epoch, value in enumerate([0.9, 0.4, 0.25, 0.3]):
        run.log_metrics({"val_loss": value, "loss": 1.0 / (epoch + 1)}, step=epoch)
    run.log_dataset(name="mnist", uri="s3://bucket/mnist/v3", digest="sha256:abc", role="train")
    return run


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digests(version: cairn.ModelVersion) -> dict[str, str]:
    return {f["path"]: f["digest"] for f in version.files}


# logging and registering -----------------------------------------------------------------------------

def test_log_model_registers_tags_and_aliases(sdk_env: Path) -> None:
    client = cairn.Client()
    with training_run() as run:
        v1 = run.log_model(fitted(), name="model", input_example=X[:5], registered_model_name="dev.mnist",
                           tags={"approved": "false"}, aliases=["challenger"])
        v2 = run.log_model(fitted(0.5), name="other", registered_model_name="dev.mnist")
        logged = run.log_model(fitted(), name="unregistered")
    assert isinstance(v1, cairn.ModelVersion) and isinstance(logged, cairn.LoggedModel)
    assert (v1.name, v1.version, v1.run_id, v1.flavor) == ("dev.mnist", 1, run.id, "sklearn")
    assert (v1.tags, v1.aliases, v1.uri) == ({"approved": "false"}, ["challenger"], "models:/dev.mnist/1")
    assert (v2.name, v2.version, v2.tags, v2.aliases) == ("dev.mnist", 2, {}, [])
    assert logged.uri == f"runs:/{run.id}/unregistered" and logged.step is None
    model = client.get_registered_model("dev.mnist")
    assert (model.registry, model.model, model.latest_version, model.aliases) == ("dev", "mnist", 2,
                                                                                  {"challenger": 1})
    assert [v.version for v in client.list_model_versions("mnist")] == [1, 2]  # a bare name is in dev


def test_checkpoints_need_a_step_and_duplicates_are_refused(sdk_env: Path) -> None:
    client = cairn.Client()
    with training_run() as run:
        first = run.log_model(fitted(), name="model", step=1)
        run.log_model(fitted(0.1), name="model", step=3)
        with pytest.raises(cairn.ConflictError) as refused:
            run.log_model(fitted(0.2), name="model", step=3)
        assert refused.value.field == "name"
        run.log_model(fitted(), name="final")
        with pytest.raises(cairn.ConflictError, match="step"):
            run.log_model(fitted(), name="final")
    logged = client.list_logged_models(run.id)
    assert [(x.name, x.step) for x in logged] == [("final", None), ("model", 1), ("model", 3)]
    assert first.artifact_path != logged[2].artifact_path
    latest = client.register_model(f"runs:/{run.id}/model", "dev.ckpt")
    assert latest.lineage["step"] == 3
    assert client.register_model(f"runs:/{run.id}/model/1", "dev.ckpt").lineage["step"] == 1
    assert client.register_model(first.id, "dev.ckpt").lineage["logged_model_id"] == first.id


def test_a_refused_log_model_leaves_the_earlier_model_intact(sdk_env: Path) -> None:
    with training_run() as run:
        run.log_model(fitted(), name="model")
        with pytest.raises(cairn.ConflictError):
            run.log_model(fitted(0.01), name="model")
    loaded = cairn.load_model(f"runs:/{run.id}/model")
    assert (loaded.predict(X) == fitted().predict(X)).all()


def test_load_a_checkpoint_by_its_runs_uri(sdk_env: Path) -> None:
    with training_run() as run:
        run.log_model(fitted(), name="model", step=1)
        run.log_model(fitted(0.01), name="model", step=3)
    assert (cairn.load_model(f"runs:/{run.id}/model/1").predict(X) == fitted().predict(X)).all()


def test_version_lineage_files_and_manifest(sdk_env: Path, tmp_path: Path) -> None:
    client = cairn.Client()
    with training_run() as run:
        version = run.log_model(fitted(), input_example=X[:5], registered_model_name="dev.mnist")
    got = client.get_run(run.id)
    lineage = client.get_model_version("dev.mnist", 1).lineage
    assert lineage["run_id"] == run.id and lineage["run_name"] == "baseline"
    assert lineage["metrics"]["val_loss"]["min"] == got.metrics["val_loss"].min == 0.25
    assert lineage["metrics"]["val_loss"]["best_step"] == 2
    assert lineage["params"] == got.params == {"lr": "0.01", "C": "1.0"}
    assert [(d["name"], d["uri"], d["role"]) for d in lineage["datasets"]] == [("mnist", "s3://bucket/mnist/v3",
                                                                                "train")]
    assert lineage["source"] == {k: v for k, v in got.tags.items() if k.startswith("cairn.source.")}
    assert "cairn.source.python" in lineage["source"]
    assert set(digests(version)) == {"model.pkl", "input_example.json"}
    assert all(d.startswith("sha256:") and len(d) == 71 for d in digests(version).values())
    local = Path(client.download_model("models:/dev.mnist/1", tmp_path / "dl"))
    manifest = json.loads((local / "MODEL.json").read_text())
    assert manifest == version.manifest
    assert (manifest["flavor"], manifest["loader"]["class"]) == ("sklearn", "sklearn.linear_model._logistic."
                                                                            "LogisticRegression")
    for path, info in manifest["files"].items():
        assert f"sha256:{sha256_file(local / path)}" == digests(version)[path] == f"sha256:{info['sha256']}"
        assert (local / path).stat().st_size == info["size"]


# aliases ------------------------------------------------------------------------------------------------

def test_aliases_move_with_history_and_rollback(sdk_env: Path) -> None:
    client = cairn.Client()
    with training_run() as run:
        run.log_model(fitted(), registered_model_name="dev.mnist")
        run.log_model(fitted(0.1), name="model2", registered_model_name="dev.mnist")
    assert client.set_alias("dev.mnist", "champion", 1, reason="first").aliases == ["champion"]
    assert client.set_alias("dev.mnist", "champion", 2, reason="better").version == 2
    assert client.get_model_version("dev.mnist", 1).aliases == []
    assert client.get_model_version_by_alias("dev.mnist", "champion").version == 2
    history = client.get_alias_history("dev.mnist", "champion")
    assert all(isinstance(move, cairn.AliasMove) for move in history)
    assert [(h.from_version, h.to_version, h.actor, h.reason) for h in history] == [
        (None, 1, "anonymous", "first"), (1, 2, "anonymous", "better")]
    assert client.rollback_alias("dev.mnist", "champion").version == 1
    assert client.get_model_version_by_alias("dev.mnist", "champion").version == 1
    assert [(h.from_version, h.to_version) for h in client.get_alias_history("dev.mnist", "champion")][-1] == (2, 1)
    client.set_alias("dev.mnist", "fresh", 2)
    with pytest.raises(cairn.ConflictError) as no_earlier:
        client.rollback_alias("dev.mnist", "fresh")
    assert no_earlier.value.field == "alias"
    for bad in ["3", "v3", "a@b", "a b"]:
        with pytest.raises(cairn.InvalidRequestError) as invalid:
            client.set_alias("dev.mnist", bad, 1)
        assert invalid.value.field == "alias", bad
    with pytest.raises(cairn.NotFoundError) as unknown:
        client.get_model_version_by_alias("dev.mnist", "nope")
    assert unknown.value.field == "alias"
    client.delete_alias("dev.mnist", "fresh")
    with pytest.raises(cairn.NotFoundError):
        client.get_model_version_by_alias("dev.mnist", "fresh")
    assert client.get_registered_model("dev.mnist").aliases == {"champion": 1}


def test_alias_with_a_slash_is_an_invalid_request(sdk_env: Path) -> None:
    with training_run() as run:
        run.log_model(fitted(), registered_model_name="dev.mnist")
    with pytest.raises(cairn.InvalidRequestError) as invalid:
        cairn.Client().set_alias("dev.mnist", "a/b", 1)
    assert invalid.value.field == "alias"


def test_register_with_a_bad_alias_creates_no_version(sdk_env: Path) -> None:
    client = cairn.Client()
    with training_run() as run:
        for i, bad in enumerate(["3", "v3", "a/b", "a@b", "a b"]):
            with pytest.raises(cairn.InvalidRequestError) as invalid:
                run.log_model(fitted(), name=f"m{i}", registered_model_name="dev.mnist", aliases=["champion", bad])
            assert invalid.value.field == "alias", bad
    with pytest.raises(cairn.NotFoundError):
        client.get_registered_model("dev.mnist")
    # the model was logged to the run, only its registration was refused; no version number was used up
    assert client.register_model(f"runs:/{run.id}/m0", "dev.mnist").version == 1


# names and registries ---------------------------------------------------------------------------------

def test_registries_and_model_names(sdk_env: Path) -> None:
    client = cairn.Client()
    assert [(r.name, r.protected) for r in client.list_registries()] == [("dev", False), ("prod", True)]
    staging = client.create_registry("staging", protected=True)
    assert (staging.name, staging.description, staging.protected, staging.default) == ("staging", "", True, False)
    assert staging.created_at > 0
    with pytest.raises(cairn.ConflictError):
        client.create_registry("staging")
    with pytest.raises(cairn.InvalidRequestError):
        client.create_registry("Bad Name")
    with training_run() as run:
        with pytest.raises(cairn.NotFoundError) as unknown:
            run.log_model(fitted(), registered_model_name="nope.mnist")
        assert unknown.value.field == "registry" and "nope" in unknown.value.message
        for bad in ["a@b", "a b", "dev.a b", ""]:
            with pytest.raises(cairn.InvalidRequestError) as invalid:
                client.create_registered_model(bad)
            assert invalid.value.field == "name", bad


# promotion and loading ----------------------------------------------------------------------------------

def test_promote_then_load_by_alias_version_and_run(sdk_env: Path, tmp_path: Path) -> None:
    client = cairn.Client()
    model, other = fitted(), fitted(0.05)
    with training_run() as run:
        run.log_model(model, name="model", input_example=X[:5], registered_model_name="dev.mnist")
        run.log_model(other, name="other", registered_model_name="dev.mnist")
    prod = client.promote("dev.mnist", version=1, to="prod.mnist", aliases=["champion"], note="passed review")
    assert (prod.name, prod.version, prod.aliases, prod.note) == ("prod.mnist", 1, ["champion"], "passed review")
    assert prod.source == {"model": "dev.mnist", "version": 1, "run_id": run.id}
    assert prod.run_id == run.id
    assert digests(prod) == digests(client.get_model_version("dev.mnist", 1))
    again = client.promote("dev.mnist", version=1, to="prod.mnist", note="again")
    assert again.version == 1
    assert [v.version for v in client.list_model_versions("prod.mnist")] == [1]
    with pytest.raises(cairn.InvalidRequestError) as same:
        client.promote("dev.mnist", version=1, to="dev.mnist2")
    assert same.value.field == "to"
    with pytest.raises(cairn.NotFoundError) as unknown:
        client.promote("dev.mnist", version=1, to="nope.mnist")
    assert unknown.value.field == "to"

    expected = model.predict(X)
    assert (cairn.load_model("models:/prod.mnist@champion").predict(X) == expected).all()
    assert (cairn.load_model("models:/prod.mnist/1").predict(X) == expected).all()
    assert (cairn.load_model("models:/dev.mnist/2").predict(X) == other.predict(X)).all()
    assert (cairn.load_model("models:/mnist/2").predict(X) == other.predict(X)).all()
    assert (cairn.load_model(f"runs:/{run.id}/model").predict(X) == expected).all()
    local = Path(client.download_model("models:/prod.mnist@champion", tmp_path / "prod"))
    assert sorted(p.name for p in local.iterdir()) == ["MODEL.json", "input_example.json", "model.pkl"]
    assert json.loads((local / "MODEL.json").read_text())["files"]["model.pkl"]["sha256"] == \
        digests(prod)["model.pkl"].removeprefix("sha256:")
    from_run = Path(client.download_model(f"runs:/{run.id}/model", tmp_path / "run"))
    assert (from_run / "model.pkl").read_bytes() == (local / "model.pkl").read_bytes()


def test_bad_model_uris_raise_clear_errors(sdk_env: Path) -> None:
    with training_run() as run:
        run.log_model(fitted(), registered_model_name="dev.mnist")
    for uri, error, text in [
        ("mnist", cairn.InvalidRequestError, "must start with models:/ or runs:/"),
        ("s3://bucket/model", cairn.InvalidRequestError, "must start with models:/ or runs:/"),
        ("models:/dev.mnist", cairn.InvalidRequestError, "expected models:/NAME/VERSION or models:/NAME@ALIAS"),
        ("models:/dev.mnist/latest", cairn.InvalidRequestError, "expected models:/NAME/VERSION"),
        ("models:/dev.mnist/9", cairn.NotFoundError, "no version 9"),
        ("models:/dev.nope/1", cairn.NotFoundError, "dev.nope"),
        ("models:/nope.mnist/1", cairn.NotFoundError, "registry 'nope'"),
        ("models:/dev.mnist@champion", cairn.NotFoundError, "no alias 'champion'"),
        ("models:/dev.mnist@3", cairn.InvalidRequestError, "looks like a version number"),
        (f"runs:/{run.id}/absent", cairn.CairnError, "no logged model 'absent'"),
        ("runs:/0123456789abcdef0123456789abcdef/model", cairn.NotFoundError, "not found"),
    ]:
        with pytest.raises(error, match=text):
            cairn.load_model(uri)


# delete, restore, search ---------------------------------------------------------------------------------

def test_delete_restore_and_search(sdk_env: Path) -> None:
    client = cairn.Client()
    with training_run() as run:
        run.log_model(fitted(), registered_model_name="dev.mnist", aliases=["champion"])
        run.log_model(fitted(0.1), name="m2", registered_model_name="dev.mnist")
        run.log_model(fitted(), name="m3", registered_model_name="dev.bert")
    client.set_registered_model_tag("dev.mnist", "team", "vision")
    client.set_registered_model_tag("dev.bert", "team", "nlp")
    client.delete_model_version("dev.mnist", 1)
    with pytest.raises(cairn.NotFoundError):
        client.get_model_version("dev.mnist", 1)
    with pytest.raises(cairn.NotFoundError):
        client.get_model_version_by_alias("dev.mnist", "champion")
    assert [(h.from_version, h.to_version) for h in client.get_alias_history("dev.mnist", "champion")] == [
        (None, 1), (1, None)]
    assert [v.version for v in client.list_model_versions("dev.mnist")] == [2]
    assert [(v.version, v.lifecycle) for v in client.list_model_versions("dev.mnist", include_deleted=True)] == [
        (1, "deleted"), (2, "active")]
    client.restore_model_version("dev.mnist", 1)
    assert client.get_model_version("dev.mnist", 1).aliases == []

    def names(**kwargs: Any) -> list[str]:
        return [x.name for x in client.search_registered_models(**kwargs)]

    assert names(registry="dev") == ["dev.bert", "dev.mnist"]
    assert names(registry="prod") == []
    assert names(name_like="mn%") == ["dev.mnist"]
    assert names(tags={"team": "nlp"}) == ["dev.bert"]
    client.delete_registered_model("dev.bert")
    assert names() == ["dev.mnist"]
    assert names(include_deleted=True) == ["dev.bert", "dev.mnist"]
    with pytest.raises(cairn.NotFoundError):
        client.get_registered_model("dev.bert")
    client.restore_registered_model("dev.bert")
    assert client.get_registered_model("dev.bert").latest_version == 1


# end to end against a server, on SQLite and PostgreSQL ---------------------------------------------------

@pytest.fixture
def remote(sdk_env: Path, live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    monkeypatch.setenv("CAIRN_TRACKING_URI", live_server.url)
    return live_server


@pytest.mark.slow
@pytest.mark.parametrize("artifact_root", ARTIFACT_STORES, indirect=True)
def test_issue_example_against_server(remote: LiveServer, tmp_path: Path) -> None:
    client = cairn.Client()
    model, better = fitted(), fitted(0.05)
    with training_run() as run:
        v1 = run.log_model(model, name="model", input_example=X[:5], registered_model_name="dev.mnist",
                           tags={"approved": "false"}, aliases=["challenger"])
        v2 = run.log_model(better, name="better", registered_model_name="dev.mnist")
    assert (v1.name, v1.version, v1.tags, v1.aliases, v2.version) == ("dev.mnist", 1, {"approved": "false"},
                                                                       ["challenger"], 2)
    assert v1.lineage["metrics"]["val_loss"]["min"] == client.get_run(run.id).metrics["val_loss"].min
    client.set_alias("dev.mnist", "champion", 1)
    client.set_alias("dev.mnist", "champion", 2)
    assert client.get_model_version("dev.mnist", 1).aliases == ["challenger"]
    assert [(h.from_version, h.to_version) for h in client.get_alias_history("dev.mnist", "champion")] == [
        (None, 1), (1, 2)]
    assert client.rollback_alias("dev.mnist", "champion").version == 1
    prod = client.promote("dev.mnist", version=1, to="prod.mnist", aliases=["champion"], note="passed review")
    assert (prod.name, prod.version, prod.source, prod.note) == (
        "prod.mnist", 1, {"model": "dev.mnist", "version": 1, "run_id": run.id}, "passed review")
    assert client.promote("dev.mnist", version=1, to="prod.mnist").version == 1
    assert digests(prod) == digests(v1)
    assert (cairn.load_model("models:/prod.mnist@champion").predict(X) == model.predict(X)).all()
    assert (cairn.load_model("models:/dev.mnist/2").predict(X) == better.predict(X)).all()
    local = Path(client.download_model(f"runs:/{run.id}/model", tmp_path / "dl"))
    assert json.loads((local / "MODEL.json").read_text())["flavor"] == "sklearn"


# models logged outside any run -------------------------------------------------------------------------

def test_a_model_logged_outside_a_run_registers_and_loads(sdk_env: Path) -> None:
    client = cairn.Client()
    version = client.log_model(fitted(), name="imported", experiment="offline-models", input_example=X[:2],
                               registered_model_name="dev.standalone", aliases=["candidate"])
    assert (version.name, version.version, version.run_id, version.aliases) == ("dev.standalone", 1, None,
                                                                                 ["candidate"])
    loaded = cairn.load_model("models:/dev.standalone@candidate")
    assert list(loaded.predict(X)) == list(fitted().predict(X))
    logged = client.log_model(fitted(0.5), name="spare", experiment="offline-models")
    assert isinstance(logged, cairn.LoggedModel) and logged.run_id is None
    assert client.register_model(logged.id, "dev.standalone").version == 2


def test_a_model_outside_a_run_takes_only_its_manifests_files(sdk_env: Path) -> None:
    client = cairn.Client()
    experiment = client.create_experiment("strict-models")
    manifest = {"flavor": "pyfunc", "format": 1, "files": {"a.bin": {"sha256": "0" * 64, "size": 3}}}
    transport = client._t
    logged = transport.request("POST", f"/api/v1/experiments/{experiment.id}/logged-models",
                               json={"name": "m", "manifest": manifest})
    with pytest.raises(cairn.InvalidRequestError, match="not uploaded"):
        client.register_model(logged["id"], "dev.incomplete")
    with pytest.raises(cairn.InvalidRequestError, match="manifest"):
        transport.request("PUT", f"/api/v1/logged-models/{logged['id']}/files", params={"path": "a.bin"},
                          content=b"abc")
    with pytest.raises(cairn.NotFoundError):
        client.get_registered_model("dev.incomplete")
