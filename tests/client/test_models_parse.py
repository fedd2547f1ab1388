"""The SDK's models parse the answers the server really gives (SQLite and PostgreSQL): each ``from_json`` is fed
a real answer, reads only keys the route's declared response model has, and finds each of them in the answer
(a default in ``d.get(key, default)`` must never hide a key the server stopped sending)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from cairn._wire import (
    AliasMove,
    ArtifactVersion,
    Comment,
    Event,
    LoggedModel,
    PromotionRequest,
    RegisteredModel,
    Registry,
    User,
    Workspace,
)
from cairn.client._collab import Member, Token
from cairn.client._conventions import Compliance, ConventionSettings
from cairn.client._models import Experiment, MetricSummary, Run
from cairn.client._registry import ModelVersion
from cairn.server.schemas import collab, conventions, registry, tracking
from tests.conftest import AuthWorld

API = "/api/v1"


class Reads(dict[str, Any]):
    """A JSON object that remembers which keys were read."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)


def _fields(shape: Any) -> dict[str, bool]:
    """A shape's keys, each with whether the answer must have it (a pydantic model or a wire dataclass)."""
    if dataclasses.is_dataclass(shape):
        return {f.name: f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                for f in dataclasses.fields(shape)}
    return {name: info.is_required() for name, info in shape.model_fields.items()}


def _parses(sdk_model: Any, shape: Any, answer: dict[str, Any], *, other_shape: Any = None) -> Any:
    """``other_shape``: a second answer the same SDK model parses (a token with its secret, and without)."""
    TypeAdapter(shape).validate_json(json.dumps(answer), strict=True)  # the answer is what the route declares
    data = Reads(answer)
    parsed = sdk_model.from_json(data)
    required = _fields(shape)
    fields = {**required, **(_fields(other_shape) if other_shape else {})}
    assert data.read, sdk_model
    assert data.read <= set(fields), f"{sdk_model.__name__} reads {data.read - set(fields)}, not in the shape"
    absent = {key for key in data.read - set(answer) if required.get(key)}
    assert not absent, f"{sdk_model.__name__} reads {absent}, required but not in the answer"
    return parsed


@pytest.fixture
def team(world: AuthWorld) -> dict[str, httpx.Client]:
    owner, editor = world.user("olga", admin=True), world.user("eddie")
    world.workspace("team", {"olga": "owner", "eddie": "editor"})
    return {"olga": world.client(owner, "team"), "eddie": world.client(editor, "team")}


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def test_tracking_models_parse_real_answers(team: dict[str, httpx.Client]) -> None:
    c = team["olga"]
    experiment = _ok(c.post(f"{API}/experiments", json={"name": "e", "tags": {"a": "b"}}))
    _parses(Experiment, tracking.Experiment, experiment)
    run_id = _ok(c.post(f"{API}/runs", json={"experiment_id": experiment["experiment_id"], "run_key": "k"}))["run_id"]
    c.post(f"{API}/runs/{run_id}/metrics/define", json={"key": "loss", "goal": "min"})
    _ok(c.post(f"{API}/runs/{run_id}/batch", json={
        "metrics": [{"key": "loss", "steps": [0, 1], "values": [2.0, 1.0], "timestamps": [1, 2]}],
        "params": {"lr": "0.1"}, "tags": {"t": "1"}}))
    c.post(f"{API}/runs/{run_id}/datasets", json={"name": "train", "uri": "s3://b/train"})
    run = _parses(Run, tracking.Run, _ok(c.get(f"{API}/runs/{run_id}")))
    assert (run.id, run.params, run.run_key, run.datasets[0].uri) == (run_id, {"lr": "0.1"}, "k", "s3://b/train")
    summary = _parses(MetricSummary, tracking.MetricSummary, _ok(c.get(f"{API}/runs/{run_id}"))["metrics"]["loss"])
    assert (summary.best, summary.best_step, summary.last_timestamp) == (1.0, 1, 2)
    stored = _ok(c.put(f"{API}/runs/{run_id}/artifacts", params={"path": "a.txt"}, content=b"a"))
    assert _parses(ArtifactVersion, tracking.ArtifactVersion, stored).created_by == "olga"
    _parses(Compliance, conventions.ComplianceOut, _ok(c.get(f"{API}/runs/{run_id}/compliance")))
    settings = _ok(c.put(f"{API}/conventions", json={"mode": "warn", "preset": "minimal"}))
    _parses(ConventionSettings, conventions.ConventionsOut, settings)


def test_registry_and_collaboration_models_parse_real_answers(team: dict[str, httpx.Client]) -> None:
    olga, eddie = team["olga"], team["eddie"]
    run_id = _ok(eddie.post(f"{API}/runs", json={"experiment_name": "e"}))["run_id"]
    eddie.put(f"{API}/runs/{run_id}/artifacts", params={"path": "m/w.bin"}, content=b"w")
    manifest = {"flavor": "pyfunc", "files": {"w.bin": {"sha256": hashlib.sha256(b"w").hexdigest(), "size": 1}}}
    logged = _ok(eddie.post(f"{API}/runs/{run_id}/logged-models",
                            json={"name": "m", "artifact_path": "m", "manifest": manifest}))
    _parses(LoggedModel, registry.LoggedModel, logged)
    _ok(eddie.post(f"{API}/models/dev.churn/versions", json={"source": logged["id"], "aliases": ["best"]}))
    _parses(RegisteredModel, registry.RegisteredModel, _ok(eddie.get(f"{API}/models/dev.churn")))
    for move in _ok(eddie.get(f"{API}/models/dev.churn/aliases/best/history"))["moves"]:
        assert _parses(AliasMove, registry.AliasMove, move).to_version == 1
    _parses(Registry, registry.Registry, _ok(olga.get(f"{API}/registries"))["registries"][0])
    _parses(ModelVersion, registry.ModelVersion, _ok(eddie.get(f"{API}/models/dev.churn/versions/1")))
    _ok(olga.post(f"{API}/registries", json={"name": "staging"}))
    promoted = _ok(olga.post(f"{API}/models/dev.churn/versions/1/promote", json={"to": "staging.churn"}))
    assert _parses(ModelVersion, registry.ModelVersion, promoted).source["model"] == "dev.churn"
    request = _ok(eddie.post(f"{API}/promotion-requests", json={"model": "dev.churn", "version": 1, "to": "prod.churn"}))
    _parses(PromotionRequest, collab.PromotionRequest, request)
    decided = _ok(olga.post(f"{API}/promotion-requests/{request['id']}/approve", json={}))
    assert _parses(PromotionRequest, collab.PromotionRequest, decided).result_version == 1
    _parses(Comment, collab.Comment, _ok(eddie.post(f"{API}/runs/{run_id}/comments", json={"text": "hi"})))
    _parses(Workspace, collab.Workspace, _ok(olga.get(f"{API}/workspaces/team")))
    for member in _ok(olga.get(f"{API}/workspaces/team/members"))["members"]:
        _parses(Member, collab.WorkspaceMember, member)
    _parses(User, collab.User, _ok(olga.get(f"{API}/users/eddie")))
    token = _parses(Token, collab.NewToken, _ok(olga.post(f"{API}/tokens", json={"name": "ci"})))
    assert token.token
    for listed in _ok(olga.get(f"{API}/tokens"))["tokens"]:
        assert _parses(Token, collab.Token, listed, other_shape=collab.NewToken).token is None
    for event in _ok(olga.get(f"{API}/events"))["events"]:
        _parses(Event, collab.Event, event)
