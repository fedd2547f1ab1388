"""The standing hostile-input suite, part 2: a table of hostile payloads for every MLflow protocol route that
writes or searches (wrong types, huge numbers, NaN, deep nesting, control characters, 10,000-character
keys). No answer may be a 5xx, and a refused request leaves every table of the store as it was.
SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text

from cairn.server.db.models import Base

M = "/api/2.0/mlflow"
RUN = "RUN"  # placeholders replaced by the fixture's objects
EXP = "EXP"

# route -> a body (or query) that the route accepts, whose fields are replaced one at a time
ROUTES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/experiments/create"): {"name": "hostile-exp", "tags": [{"key": "k", "value": "v"}]},
    ("POST", "/experiments/search"): {"max_results": 10, "filter": "name = 'x'", "order_by": ["name"]},
    ("POST", "/experiments/update"): {"experiment_id": EXP, "new_name": "renamed"},
    ("POST", "/experiments/set-experiment-tag"): {"experiment_id": EXP, "key": "k", "value": "v"},
    ("POST", "/runs/create"): {"experiment_id": EXP, "run_name": "r", "start_time": 1,
                               "tags": [{"key": "k", "value": "v"}]},
    ("POST", "/runs/update"): {"run_id": RUN, "status": "FINISHED", "end_time": 2},
    ("POST", "/runs/log-metric"): {"run_id": RUN, "key": "m", "value": 1.0, "timestamp": 1, "step": 0},
    ("POST", "/runs/log-parameter"): {"run_id": RUN, "key": "p", "value": "v"},
    ("POST", "/runs/set-tag"): {"run_id": RUN, "key": "t", "value": "v"},
    ("POST", "/runs/delete-tag"): {"run_id": RUN, "key": "t"},
    ("POST", "/runs/log-batch"): {"run_id": RUN, "metrics": [{"key": "m", "value": 1.0, "timestamp": 1, "step": 0}],
                                  "params": [{"key": "p", "value": "v"}], "tags": [{"key": "t", "value": "v"}]},
    ("POST", "/runs/log-inputs"): {"run_id": RUN, "datasets": [{"dataset": {"name": "d", "digest": "x",
                                                                            "source_type": "local", "source": "s"}}]},
    ("POST", "/runs/search"): {"experiment_ids": [EXP], "filter": "metrics.m > 0", "max_results": 5,
                               "order_by": ["metrics.m DESC"]},
    ("POST", "/registered-models/create"): {"name": "hostile-model", "tags": [{"key": "k", "value": "v"}]},
    ("POST", "/registered-models/set-tag"): {"name": "base-model", "key": "k", "value": "v"},
    ("POST", "/registered-models/rename"): {"name": "base-model", "new_name": "other-model"},
    ("PATCH", "/registered-models/update"): {"name": "base-model", "description": "d"},
    ("POST", "/model-versions/create"): {"name": "base-model", "source": "runs:/RUN/model", "run_id": RUN},
    ("POST", "/registered-models/alias"): {"name": "base-model", "alias": "champion", "version": "1"},
    ("GET", "/metrics/get-history"): {"run_id": RUN, "metric_key": "m", "max_results": 10},
    ("GET", "/registered-models/search"): {"filter": "name LIKE 'b%'", "max_results": 10},
}


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


LONG = "k" * 10_000
VALUES: dict[str, Any] = {
    "list": [1, 2], "object": {"a": {"b": 1}}, "bool": True, "null": None,
    "huge": 2**70, "negative-huge": -(2**70), "max-float": 1.7976931348623157e308, "nan-text": "NaN",
    "deep": _deep(200), "control": "a\x00b\x1f\x7fc\u202e", "long-key": LONG, "empty": "",
}
# whole bodies that are not JSON a client should send
RAW: dict[str, bytes] = {
    "nan-literal": b'{"run_id": "RUN", "key": "m", "value": NaN, "timestamp": 1, "step": 0}',
    "infinity-literal": b'{"value": Infinity}',
    "out-of-range-float": b'{"value": 1e400, "timestamp": 1e400}',
    "huge-integer": b'{"step": ' + b"9" * 5000 + b"}",
    "long-key-object": orjson.dumps({LONG: 1, "run_id": "RUN"}),
    "deep-object": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "not-an-object": b"[1, 2, 3]",
    "invalid-utf8": b'{"name": "\xff\xfe"}',
}


def _cases(method: str, path: str) -> list[tuple[str, Any]]:
    """(case id, body) for one route: each field of its accepted body replaced by each hostile value, then
    whole hostile bodies."""
    base = ROUTES[(method, path)]
    cases = [(f"{method} {path} {field}={name}", {**base, field: value})
             for field in base for name, value in VALUES.items()]
    if method != "GET":
        cases += [(f"{method} {path} raw:{name}", raw) for name, raw in RAW.items()]
    return cases


@pytest.fixture
def objects(api: httpx.Client) -> dict[str, str]:
    experiment = api.post(f"{M}/experiments/create", json={"name": "base"}).json()["experiment_id"]
    run = api.post(f"{M}/runs/create", json={"experiment_id": experiment}).json()["run"]["info"]["run_id"]
    assert api.post(f"{M}/registered-models/create", json={"name": "base-model"}).status_code == 200
    return {EXP: experiment, RUN: run}


def _fill(value: Any, objects: dict[str, str]) -> Any:
    if isinstance(value, str):
        for placeholder, real in objects.items():
            value = value.replace(placeholder, real)
        return value
    if isinstance(value, bytes):
        return _fill(value.decode("latin-1"), objects).encode("latin-1")
    if isinstance(value, list):
        return [_fill(v, objects) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, objects) for k, v in value.items()}
    return value


def _row_counts(app: Any) -> dict[str, int]:
    tables = [t.name for t in Base.metadata.sorted_tables]
    query = "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in tables)
    with app.state.db.session(write=False) as session:
        return dict(zip(tables, session.execute(text(query)).one(), strict=True))


def test_the_table_covers_the_mlflow_write_routes() -> None:
    assert len(ROUTES) >= 20 and sum(len(_cases(*route)) for route in ROUTES) > 800


@pytest.mark.parametrize(("method", "path"), list(ROUTES), ids=[f"{m} {p}" for m, p in ROUTES])
def test_hostile_payloads(app: Any, api: httpx.Client, objects: dict[str, str], method: str, path: str) -> None:
    """Every case of the route; all failures are reported together (cases known to fail in the adapter are
    checked, strictly, by ``test_known_adapter_failures``)."""
    failures = []
    counts = [_row_counts(app)]  # the store as it is: refreshed after each accepted request
    for case_id, body in _cases(method, path):
        problem = _check(app, api, objects, method, path, body, counts)
        if problem:
            failures.append(f"{case_id}: {problem}")
    assert not failures, "\n".join(failures)


def _check(app: Any, api: httpx.Client, objects: dict[str, str], method: str, path: str, body: Any,
           counts: list[dict[str, int]]) -> str:
    """What is wrong with the answer to one hostile request ('' if nothing). ``counts[0]`` holds the store's
    row counts before the request, and is brought up to date after it."""
    before = counts[0]
    try:
        answer = _send(api, method, path, _fill(body, objects))
    except Exception as exc:
        counts[0] = _row_counts(app)
        return f"server error: {exc!r}"[:300]
    counts[0] = _row_counts(app)
    if answer.status_code >= 500:
        return f"{answer.status_code} {answer.text[:300]}"
    if answer.status_code >= 400:
        if not answer.json().get("error_code"):
            return f"{answer.status_code} without an error code: {answer.text[:300]}"
        if counts[0] != before:
            return f"refused with {answer.status_code} but the store changed"
    return ""


def _send(api: httpx.Client, method: str, path: str, body: Any) -> httpx.Response:
    if isinstance(body, bytes):
        return api.request(method, M + path, content=body, headers={"content-type": "application/json"})
    if method == "GET":
        return api.get(M + path, params={k: v if isinstance(v, str) else json.dumps(v)
                                         for k, v in body.items() if v is not None})
    return api.request(method, M + path, content=json.dumps(body).encode(), headers={"content-type": "application/json"})
