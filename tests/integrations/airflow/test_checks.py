"""What templates hand the operators and sensors, and the gate's rule, without a server."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from cairn.integrations.airflow import _checks
from cairn.integrations.airflow.hooks import target_of
from cairn.integrations.airflow.operators import beats

ANSWER = {"action": "requested", "request_id": 7, "model": "prod.churn", "version": None,
          "source_model": "dev.churn", "source_version": 3}


@pytest.mark.parametrize("value", [7, "7", " 7 ", ANSWER, str(ANSWER), json.dumps(ANSWER)])
def test_a_request_id_from_what_a_template_renders(value: object) -> None:
    assert _checks.request_id_of(value) == 7


@pytest.mark.parametrize("value", [None, "None", "", "seven", True, {"action": "promoted", "request_id": None}])
def test_a_request_id_that_is_not_one_is_refused_by_name(value: object) -> None:
    with pytest.raises(ValueError, match="request_id must be a promotion request id"):
        _checks.request_id_of(value)


def test_a_direct_promotion_needs_no_approval() -> None:
    direct = {**ANSWER, "action": "promoted", "request_id": None, "version": 2}
    assert _checks.direct_promotion(str(direct)) == direct
    assert _checks.direct_promotion(str(ANSWER)) is None and _checks.direct_promotion("7") is None


def test_versions_from_templates() -> None:
    assert _checks.version_of("3") == _checks.version_of(3) == _checks.version_of({"version": "3"}) == 3
    assert _checks.optional_version("None", "after_version") is None
    with pytest.raises(ValueError, match="version must be a version number, got 'latest'"):
        _checks.version_of("latest")


@pytest.mark.parametrize(("candidate", "baseline", "goal", "delta", "better"), [
    (0.91, 0.90, "max", 0.0, True),
    (0.90, 0.90, "max", 0.0, False),  # equal is not better
    (0.901, 0.90, "max", 0.002, False),  # better, but not by min_delta
    (0.903, 0.90, "max", 0.002, True),
    (0.2, 0.3, "min", 0.05, True),
    (0.3, 0.2, "min", 0.0, False),
])
def test_the_gate_rule(candidate: float, baseline: float, goal: str, delta: float, better: bool) -> None:
    assert beats(candidate, baseline, goal, delta) is better


def connection(host: str, port: int | None = None, password: str | None = "tok", **extra: str) -> SimpleNamespace:
    return SimpleNamespace(conn_id="c", host=host, port=port, password=password, extra_dejson=extra)


def test_connection_fields_to_a_target() -> None:
    full = target_of(connection("https://cairn.example.com/", workspace="ml"))
    assert (full.url, full.token, full.workspace) == ("https://cairn.example.com", "tok", "ml")
    assert full.headers() == {"X-Cairn-Workspace": "ml", "Authorization": "Bearer tok"}
    bare = target_of(connection("127.0.0.1", 8080, scheme="http"))
    assert (bare.url, bare.workspace) == ("http://127.0.0.1:8080", "default")
    assert target_of(connection("cairn.example.com", password=None)).url == "https://cairn.example.com"
    assert target_of(connection("cairn.example.com", extra__cairn__workspace="vision")).workspace == "vision"
    with pytest.raises(ValueError, match="has no host"):
        target_of(connection(""))
