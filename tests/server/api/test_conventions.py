"""Conventions through the native REST API, on SQLite and PostgreSQL: settings and their bad input, each run
rule in warn and enforce mode, the compliance flag in search, re-evaluation when conventions change, an
experiment's override, the audit trail, and who may change them (with --auth)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import AuthWorld

GIT = {"cairn.source.git.repo": "https://git.example/vision.git", "cairn.source.git.branch": "main",
       "cairn.source.git.commit": "0123abcd", "cairn.source.git.dirty": "false"}
TAGS = {"developer": "ada", "format": "script", "framework": "sklearn", "task": "classification", "variant": "cnn"}


def put(api: httpx.Client, **body: Any) -> httpx.Response:
    return api.put("/api/v1/conventions", json=body)


def only(api: httpx.Client, mode: str, rule: str, params: Any = True, experiment_id: int | None = None) -> None:
    answer = put(api, mode=mode, rules={rule: params}, experiment_id=experiment_id)
    assert answer.status_code == 200, answer.text


def new_run(api: httpx.Client, tags: dict[str, str] | None = None, experiment: str = "mnist") -> httpx.Response:
    return api.post("/api/v1/runs", json={"experiment_name": experiment, "tags": tags or {}})


def compliance(api: httpx.Client, run_id: str) -> dict[str, Any]:
    answer = api.get(f"/api/v1/runs/{run_id}/compliance")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def flag(api: httpx.Client, run_id: str) -> bool | None:
    return api.get(f"/api/v1/runs/{run_id}").json()["compliant"]  # type: ignore[no-any-return]


def test_presets_show_and_audit(api: httpx.Client) -> None:
    assert api.get("/api/v1/conventions").json()["mode"] == "off"
    answer = put(api, mode="warn", preset="recommended")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["scope"] == "workspace" and body["mode"] == "warn"
    assert set(body["rules"]) == {"required_tags", "dataset_reference", "code_reference", "consistent_experiment",
                                  "one_model", "registry_ready"}
    assert body["rules"]["required_tags"]["tags"] == ["developer", "format", "framework", "task", "variant"]
    minimal = put(api, mode="enforce", preset="minimal", rules={"one_model": True}).json()
    assert set(minimal["rules"]) == {"dataset_reference", "code_reference", "one_model"}
    assert api.get("/api/v1/conventions").json() == minimal
    assert set(api.get("/api/v1/conventions/rules").json()["presets"]) == {"recommended", "minimal"}
    changes = api.get("/api/v1/events", params={"action": "conventions.*"}).json()["events"]
    assert [e["action"] for e in changes] == ["conventions.set", "conventions.set"]
    assert changes[1]["before"]["mode"] == "warn" and changes[1]["after"]["mode"] == "enforce"


@pytest.mark.parametrize(("body", "named"), [
    ({"mode": "strict"}, "strict"),
    ({"mode": "warn", "preset": "everything"}, "everything"),
    ({"mode": "warn", "rules": {"no_such_rule": True}}, "no_such_rule"),
    ({"mode": "warn", "rules": {"code_reference": {"require_signed": True}}}, "require_signed"),
    ({"mode": "warn", "rules": {"required_tags": {"tags": "task"}}}, "rules.required_tags.tags"),
    ({"mode": "warn", "rules": {"one_model": "yes"}}, "one_model"),
])
def test_bad_settings_answer_400_naming_it_and_change_nothing(api: httpx.Client, body: dict[str, Any],
                                                              named: str) -> None:
    answer = put(api, **body)
    assert answer.status_code == 400, answer.text
    assert named in answer.json()["message"]
    assert api.get("/api/v1/conventions").json()["mode"] == "off"


def test_unknown_experiment_answers_404(api: httpx.Client) -> None:
    assert put(api, mode="warn", preset="minimal", experiment_id=999).status_code == 404
    assert api.get("/api/v1/conventions", params={"experiment_id": 999}).status_code == 404


@pytest.mark.parametrize("mode", ["warn", "enforce"])
def test_required_tags(api: httpx.Client, mode: str) -> None:
    only(api, mode, "required_tags", {"tags": ["task", "variant"]})
    answer = new_run(api, {"task": "classification"})
    if mode == "enforce":  # refused at the start, naming what is missing, and nothing is written
        assert answer.status_code == 400, answer.text
        assert "variant" in answer.json()["message"] and "task" not in answer.json()["message"].split("tags")[-1]
        assert api.post("/api/v1/runs/search", json={}).json()["runs"] == []
        answer = new_run(api, {"task": "classification", "variant": "cnn"})
        assert answer.status_code == 201 and answer.json()["compliant"] is True
        return
    run_id = answer.json()["run_id"]
    assert answer.status_code == 201 and answer.json()["compliant"] is False
    report = compliance(api, run_id)
    assert report["compliant"] is False and report["rules"][0]["missing"] == ["variant"]
    assert api.post(f"/api/v1/runs/{run_id}/tags", json={"variant": "cnn"}).status_code == 200
    assert flag(api, run_id) is True
    assert api.delete(f"/api/v1/runs/{run_id}/tags", params={"key": "task"}).status_code == 200
    assert flag(api, run_id) is False
    api.post(f"/api/v1/runs/{run_id}/batch", json={"tags": {"task": "detection"}})
    assert flag(api, run_id) is True


@pytest.mark.parametrize("mode", ["warn", "enforce"])
def test_dataset_reference(api: httpx.Client, mode: str) -> None:
    only(api, mode, "dataset_reference", {"require_version": True})
    run_id = new_run(api).json()["run_id"]  # what is known only later never refuses the start
    assert flag(api, run_id) is False
    api.post(f"/api/v1/runs/{run_id}/datasets", json={"name": "mnist", "role": "training"})
    assert compliance(api, run_id)["rules"][0]["missing"] == ["dataset"]
    api.post(f"/api/v1/runs/{run_id}/datasets", json={"name": "mnist", "uri": "s3://data/mnist", "digest": "",
                                                       "role": "eval"})
    assert compliance(api, run_id)["rules"][0]["missing"] == ["dataset version"]
    api.post(f"/api/v1/runs/{run_id}/datasets", json={"name": "mnist", "uri": "s3://data/mnist", "version": "3",
                                                       "digest": "d1", "role": "training"})
    assert flag(api, run_id) is True


@pytest.mark.parametrize("mode", ["warn", "enforce"])
def test_code_reference(api: httpx.Client, mode: str) -> None:
    only(api, mode, "code_reference", {"require_clean": True})
    assert new_run(api, GIT).json()["compliant"] is True
    mlflow_style = {"mlflow.source.git.repoURL": "git@x:v.git", "mlflow.source.git.commit": "abc"}
    answer = new_run(api, mlflow_style)
    assert answer.status_code == 201
    assert compliance(api, answer.json()["run_id"])["rules"][0]["missing"] == ["branch", "clean working tree"]
    dirty = new_run(api, {**GIT, "cairn.source.git.dirty": "true"}).json()
    assert dirty["compliant"] is False


@pytest.mark.parametrize("mode", ["warn", "enforce"])
def test_consistent_experiment(api: httpx.Client, mode: str) -> None:
    only(api, mode, "consistent_experiment")
    first = new_run(api, {"task": "classification"}).json()["run_id"]
    api.post(f"/api/v1/runs/{first}/datasets", json={"name": "d", "uri": "s3://data/mnist", "role": "training"})
    same = new_run(api, {"task": "classification"}).json()["run_id"]
    other = new_run(api, {"task": "detection"}).json()
    assert (flag(api, first), flag(api, same), other["compliant"]) == (True, True, False)
    assert "classification" in compliance(api, other["run_id"])["rules"][0]["message"]
    api.post(f"/api/v1/runs/{same}/datasets", json={"name": "d", "uri": "s3://data/cifar", "role": "training"})
    assert flag(api, same) is False
    assert new_run(api, {"task": "detection"}, experiment="other").json()["compliant"] is True


def test_one_model_counts_models_not_checkpoints(api: httpx.Client) -> None:
    only(api, "enforce", "one_model")
    run_id = new_run(api).json()["run_id"]
    for name, step in (("net", 1), ("net", 2), ("net", None)):
        log_model(api, run_id, name, step)
    assert flag(api, run_id) is True
    log_model(api, run_id, "other", None)
    report = compliance(api, run_id)
    assert report["compliant"] is False and "2 models" in report["rules"][0]["message"]


def log_model(api: httpx.Client, run_id: str, name: str, step: int | None) -> None:
    import hashlib

    data = f"{name}-{step}".encode()
    base = f"models/{name}" if step is None else f"models/{name}/step-{step}"
    assert api.put(f"/api/v1/runs/{run_id}/artifacts", params={"path": f"{base}/model.bin"},
                   content=data).status_code in (200, 201)
    manifest = {"flavor": "pyfunc", "files": {"model.bin": {"sha256": hashlib.sha256(data).hexdigest(),
                                                           "size": len(data)}}}
    answer = api.post(f"/api/v1/runs/{run_id}/logged-models", json={"name": name, "artifact_path": base,
                                                                      "manifest": manifest, "step": step})
    assert answer.status_code == 201, answer.text


def test_search_filters_and_sorts_on_compliance(api: httpx.Client) -> None:
    only(api, "warn", "required_tags", {"tags": ["task"]})
    good = new_run(api, {"task": "t"}).json()["run_id"]
    bad = new_run(api).json()["run_id"]

    def search(**body: Any) -> list[str]:
        answer = api.post("/api/v1/runs/search", json=body)
        assert answer.status_code == 200, answer.text
        return [r["run_id"] for r in answer.json()["runs"]]
    assert search(filter="conventions.compliant = true") == [good]
    assert search(filter="conventions.compliant = false") == [bad]
    assert search(filter="conventions.compliant != 'true'") == [bad]
    assert search(order_by=["conventions.compliant DESC"]) == [good, bad]
    assert search(order_by=["conventions.compliant ASC"]) == [bad, good]
    answer = api.post("/api/v1/runs/search", json={"filter": "conventions.compliant = 'maybe'"})
    assert answer.status_code == 400 and "true or false" in answer.json()["message"]
    assert api.post("/api/v1/runs/search", json={"filter": "conventions.compliant > 1"}).status_code == 400


def test_a_change_of_conventions_re_evaluates_runs_without_touching_them(api: httpx.Client) -> None:
    bare = new_run(api).json()
    assert bare["compliant"] is None
    only(api, "warn", "required_tags", {"tags": ["task"]})
    assert flag(api, bare["run_id"]) is False
    only(api, "warn", "code_reference")
    tagged = new_run(api, GIT).json()["run_id"]
    assert (flag(api, bare["run_id"]), flag(api, tagged)) == (False, True)
    assert put(api, mode="off", preset="recommended").status_code == 200
    assert (flag(api, bare["run_id"]), flag(api, tagged)) == (None, None)
    assert compliance(api, tagged) == {"mode": "off", "scope": "workspace", "compliant": None, "rules": []}
    after = api.get(f"/api/v1/runs/{bare['run_id']}").json()
    assert after["tags"] == bare["tags"] and after["status"] == bare["status"]


def test_an_experiment_overrides_its_workspace(api: httpx.Client) -> None:
    only(api, "enforce", "required_tags", {"tags": ["task"]})
    experiment_id = api.post("/api/v1/experiments", json={"name": "sandbox"}).json()["experiment_id"]
    assert new_run(api, experiment="sandbox").status_code == 400
    assert put(api, mode="off", experiment_id=experiment_id).json()["scope"] == "experiment"
    loose = new_run(api, experiment="sandbox")
    assert loose.status_code == 201 and loose.json()["compliant"] is None
    assert new_run(api).status_code == 400  # the workspace's other experiments still enforce
    only(api, "warn", "required_tags", {"tags": ["task"]})  # a workspace change leaves the override alone
    assert flag(api, loose.json()["run_id"]) is None
    cleared = api.delete("/api/v1/conventions", params={"experiment_id": experiment_id})
    assert cleared.status_code == 200 and cleared.json()["scope"] == "workspace"
    assert flag(api, loose.json()["run_id"]) is False
    assert api.delete("/api/v1/conventions", params={"experiment_id": experiment_id}).status_code == 404


def test_with_auth_maintainers_set_conventions_and_others_read_them(world: AuthWorld) -> None:
    tokens = {name: world.user(name) for name in ("olive", "mae", "ed", "vic")}
    world.workspace("vision", {"olive": "owner", "mae": "maintainer", "ed": "editor", "vic": "viewer"})
    clients = {name: world.client(token, "vision") for name, token in tokens.items()}
    body = {"mode": "enforce", "preset": "recommended"}
    assert clients["ed"].put("/api/v1/conventions", json=body).status_code == 403
    assert clients["vic"].put("/api/v1/conventions", json=body).status_code == 403
    answer = clients["mae"].put("/api/v1/conventions", json=body)
    assert answer.status_code == 200 and answer.json()["updated_by"] == "mae"
    assert clients["vic"].get("/api/v1/conventions").json()["mode"] == "enforce"
    refused = clients["ed"].post("/api/v1/runs", json={"experiment_name": "e", "tags": {"task": "t"}})
    assert refused.status_code == 400
    assert all(t in refused.json()["message"] for t in ("developer", "format", "framework", "variant"))
    made = clients["ed"].post("/api/v1/runs", json={"experiment_name": "e", "tags": TAGS})
    assert made.status_code == 201 and made.json()["compliant"] is False  # no dataset or code reference yet
    assert clients["vic"].get(f"/api/v1/runs/{made.json()['run_id']}/compliance").json()["compliant"] is False
    other = world.client(tokens["olive"], "default")
    assert other.get(f"/api/v1/runs/{made.json()['run_id']}/compliance").status_code in (403, 404)


def test_a_version_shows_its_compliance_and_warn_never_refuses_it(api: httpx.Client) -> None:
    only(api, "warn", "registry_ready")
    run_id = new_run(api).json()["run_id"]
    log_model(api, run_id, "net", None)
    for name in ("dev.m", "prod.m"):  # warn mode: a protected registry takes it too, and shows what it misses
        answer = api.post(f"/api/v1/models/{name}/versions", json={"source": f"runs:/{run_id}/net"})
        assert answer.status_code == 201, answer.text
        report = api.get(f"/api/v1/models/{name}/versions/1/compliance").json()
        assert report["compliant"] is False and report["rules"][-1]["missing"] == ["signature", "requirements"]
    assert api.get("/api/v1/models/dev.m/versions/9/compliance").status_code == 404
    only(api, "enforce", "registry_ready")
    refused = api.post("/api/v1/models/prod.m/versions", json={"source": f"runs:/{run_id}/net"})
    assert refused.status_code == 409 and "signature, requirements" in refused.json()["message"]
    assert api.post("/api/v1/models/dev.m/versions", json={"source": f"runs:/{run_id}/net"}).status_code == 201
