"""Run search: filters over summaries, params, tags, attributes and datasets; ordering; pages."""

from __future__ import annotations

import time

import httpx
import pytest

from cairn.server.services import search


@pytest.fixture(autouse=True, params=["visited", "indexed"])
def shape(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every search runs in both shapes (runs visited, or read from the indexes): the answers must match."""
    monkeypatch.setattr(search, "INDEXED_SCOPE", 10**9 if request.param == "visited" else 1)
    return str(request.param)


@pytest.fixture
def runs(api: httpx.Client) -> dict[str, str]:
    """Four runs in 'mnist' with different params, tags and val_loss curves; one in 'other'."""
    specs = {
        "a": ("0.01", "cnn", [0.9, 0.25, 0.5]),
        "b": ("0.02", "cnn", [0.8, 0.6, 0.2]),
        "c": ("0.01", "mlp", [0.7, 0.4, 0.45]),
        "d": ("0.1", "MLP", [0.3, 0.35, 0.9]),
    }
    ids = {}
    for name, (lr, arch, curve) in specs.items():
        run = api.post("/api/v1/runs", json={"experiment_name": "mnist", "name": name, "tags": {"arch": arch}}).json()
        ids[name] = run["run_id"]
        api.post(f"/api/v1/runs/{run['run_id']}/metrics/define", json={"key": "val_loss", "goal": "min"})
        api.post(f"/api/v1/runs/{run['run_id']}/batch", json={
            "params": {"lr": lr}, "metrics": [{"key": "val_loss", "steps": [0, 1, 2], "values": curve}]})
    api.post(f"/api/v1/runs/{ids['a']}/datasets", json={"name": "mnist", "digest": "d1", "role": "train"})
    api.patch(f"/api/v1/runs/{ids['d']}", json={"status": "FINISHED"})
    other = api.post("/api/v1/runs", json={"experiment_name": "other", "name": "z"}).json()
    ids["z"] = other["run_id"]
    return ids


def names(api: httpx.Client, **body: object) -> list[str]:
    response = api.post("/api/v1/runs/search", json=body)
    assert response.status_code == 200, response.text
    return [r["name"] for r in response.json()["runs"]]


def test_summary_filters(api: httpx.Client, runs: dict[str, str]) -> None:
    assert names(api, experiment_names=["mnist"], filter="metrics.val_loss.min < 0.3",
                 order_by=["attributes.run_name"]) == ["a", "b"]
    assert names(api, experiment_names=["mnist"], filter="metrics.val_loss < 0.5", order_by=["run_name"]) == ["b", "c"]
    assert names(api, experiment_names=["mnist"], filter="metrics.val_loss.max >= 0.9",
                 order_by=["run_name"]) == ["a", "d"]
    assert names(api, experiment_names=["mnist"], filter="metrics.val_loss.best <= 0.25",
                 order_by=["run_name"]) == ["a", "b"]
    assert names(api, experiment_names=["mnist"], filter="metrics.val_loss.count = 3 and metrics.val_loss.mean > 0.52",
                 order_by=["run_name"]) == ["a", "b"]


def test_issue_example(api: httpx.Client, runs: dict[str, str]) -> None:
    assert names(api, experiment_names=["mnist"], filter="metrics.val_loss.min < 0.3 and params.lr = '0.01'",
                 order_by=["metrics.val_loss.min ASC"]) == ["a"]


def test_order_by_summary(api: httpx.Client, runs: dict[str, str]) -> None:
    assert names(api, experiment_names=["mnist"], order_by=["metrics.val_loss.min ASC"]) == ["b", "a", "d", "c"]
    assert names(api, experiment_names=["mnist"], order_by=["metrics.val_loss.last DESC"]) == ["d", "a", "c", "b"]


def test_runs_without_the_metric_sort_last(api: httpx.Client, runs: dict[str, str]) -> None:
    assert names(api, order_by=["metrics.val_loss.min ASC"])[-1] == "z"
    assert names(api, order_by=["metrics.val_loss.min DESC"])[-1] == "z"


def test_params_tags_attributes(api: httpx.Client, runs: dict[str, str]) -> None:
    by_name = {"order_by": ["run_name"]}
    assert names(api, filter="params.lr IN ('0.01', '0.1')", **by_name) == ["a", "c", "d"]
    assert names(api, filter="tags.arch = 'mlp'", **by_name) == ["c"]
    assert names(api, filter="tags.arch LIKE 'm%'", **by_name) == ["c"]
    assert names(api, filter="tags.arch ILIKE 'm%'", **by_name) == ["c", "d"]
    assert names(api, filter="attributes.status = 'FINISHED'", **by_name) == ["d"]
    assert names(api, filter="params.lr != '0.01'", **by_name) == ["b", "d"]
    assert names(api, filter="tags.arch IS NULL", **by_name) == ["z"]
    assert names(api, filter="params.lr = '0.02' or tags.arch = 'MLP'", **by_name) == ["b", "d"]
    assert names(api, filter="datasets.role = 'train' and datasets.name = 'mnist'", **by_name) == ["a"]


def test_experiment_scope(api: httpx.Client, runs: dict[str, str]) -> None:
    assert names(api, experiment_names=["other"]) == ["z"]
    assert len(names(api)) == 5


def test_deleted_runs_follow_view_type(api: httpx.Client, runs: dict[str, str]) -> None:
    api.delete(f"/api/v1/runs/{runs['c']}")
    assert "c" not in names(api)
    assert names(api, run_view_type="deleted_only") == ["c"]
    assert len(names(api, run_view_type="all")) == 5


def test_pagination_with_tokens(api: httpx.Client, runs: dict[str, str]) -> None:
    seen, token = [], None
    while True:
        body = {"max_results": 2, "order_by": ["run_name"], "page_token": token}
        page = api.post("/api/v1/runs/search", json=body).json()
        seen += [r["name"] for r in page["runs"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert seen == ["a", "b", "c", "d", "z"]
    first = api.post("/api/v1/runs/search", json={"max_results": 2}).json()
    reused = api.post("/api/v1/runs/search", json={"max_results": 2, "filter": "params.lr = '0.01'",
                                                    "page_token": first["next_page_token"]})
    assert reused.status_code == 400 and "different search" in reused.json()["message"]


def test_pages_cross_from_runs_with_a_value_to_runs_without(api: httpx.Client) -> None:
    """Eleven runs, seven with 'acc' (two tied) and four without; every page size, both directions."""
    values = [0.5, None, 0.2, 0.9, None, 0.5, 0.7, None, 0.1, 0.3, None]
    for i, value in enumerate(values):
        run = api.post("/api/v1/runs", json={"experiment_name": "e", "name": f"r{i:02}", "start_time": 1000 + i,
                                             "tags": {"t": "x"} if i % 3 else {}}).json()
        if value is not None:
            api.post(f"/api/v1/runs/{run['run_id']}/batch", json={
                "metrics": [{"key": "acc", "steps": [0], "values": [value]}], "params": {"p": str(i % 4)}})
    newest_first = sorted(range(len(values)), key=lambda i: -i)
    without = [f"r{i:02}" for i in newest_first if values[i] is None]
    for descending in (False, True):
        having = sorted((i for i in newest_first if values[i] is not None),
                        key=lambda i: -values[i] if descending else values[i])  # type: ignore[operator]
        expected = [f"r{i:02}" for i in having] + without
        order = ["metrics.acc DESC" if descending else "metrics.acc"]
        for size in (1, 2, 3, 6, 7, 8, 20):
            assert paged(api, size, order) == expected, (descending, size)
    assert paged(api, 3, ["params.p", "metrics.acc DESC"])[:3] == ["r00", "r08", "r05"]
    assert paged(api, 4, ["tags.t DESC"])[-4:] == ["r09", "r06", "r03", "r00"]
    assert paged(api, 2, ["metrics.acc"], "metrics.acc < 0.6 and params.p != '1'") == ["r08", "r02", "r00"]


def test_long_param_and_tag_values_are_stored_and_found(api: httpx.Client, run_id: str) -> None:
    long = "v" * 1500  # past what the (key, value) search index holds (the store keeps up to 8,000)
    body = {"params": {"cfg": long, "lr": "0.1", "huge": "h" * 8000}, "tags": {"note": long, "huge": "h" * 8000}}
    assert api.post(f"/api/v1/runs/{run_id}/batch", json=body).status_code == 200
    assert len(names(api, filter=f"params.cfg = '{long}' and tags.note IN ('x', '{long}')")) == 1
    assert len(names(api, filter="params.cfg = 'v' or tags.note LIKE 'vvv%'")) == 1
    assert len(names(api, filter="params.lr = '0.1' and params.cfg != 'v'")) == 1


def paged(api: httpx.Client, size: int, order: list[str], filter: str | None = None) -> list[str]:
    seen, token = [], None
    while True:
        body = {"max_results": size, "order_by": order, "page_token": token, "filter": filter}
        page = api.post("/api/v1/runs/search", json=body).json()
        seen += [r["name"] for r in page["runs"]]
        token = page["next_page_token"]
        if token is None:
            return seen


def test_quoted_and_slashed_keys(api: httpx.Client, run_id: str) -> None:
    api.post(f"/api/v1/runs/{run_id}/batch", json={"metrics": [
        {"key": "train/loss", "steps": [0], "values": [0.5]}, {"key": "loss.min", "steps": [0], "values": [7.0]}]})
    assert len(names(api, filter="metrics.train/loss < 1")) == 1
    assert len(names(api, filter="metrics.`loss.min` = 7")) == 1
    assert len(names(api, filter="metrics.`loss.min`.max = 7")) == 1


def test_check_a_filter_without_running_it(api: httpx.Client) -> None:
    good = api.post("/api/v1/runs/search/check", json={"filter": "metrics.loss.min < 0.3", "order_by": ["params.lr"]})
    assert good.json() == {"valid": True}
    bad = api.post("/api/v1/runs/search/check", json={"filter": "metrics.loss <<< 1"})
    assert bad.status_code == 200
    assert bad.json()["valid"] is False and bad.json()["position"] == 14 and bad.json()["field"] == "filter"
    order = api.post("/api/v1/runs/search/check", json={"order_by": ["metrics.loss SIDEWAYS"]}).json()
    assert order["valid"] is False and order["field"] == "order_by"


def test_wildcard_heavy_patterns_stay_fast(api: httpx.Client) -> None:
    """A pattern of many '%' against long values is matched by the database in linear time; no regex."""
    for i in range(20):
        run = api.post("/api/v1/runs", json={"experiment_name": "like"}).json()["run_id"]
        api.post(f"/api/v1/runs/{run}/batch", json={"tags": {"t": "a" * 7000 + str(i)}, "params": {"p": "a" * 5000}})
    pattern = "%a" * 200 + "%b"
    started = time.perf_counter()
    for entity in ("tags.t", "params.p", "attributes.run_name"):
        for op in ("LIKE", "ILIKE"):
            answer = api.post("/api/v1/runs/search", json={"filter": f"{entity} {op} '{pattern}'"})
            assert answer.status_code == 200 and answer.json()["runs"] == [], answer.text
    models = api.get("/api/v1/models", params={"name_like": "%_" * 120 + "%"})
    assert models.status_code == 200, models.text
    assert time.perf_counter() - started < 3.0
    too_long = api.post("/api/v1/runs/search", json={"filter": "tags.t LIKE '" + "%" * 600 + "'"})
    assert too_long.status_code == 400 and "at most 500" in too_long.json()["message"]
