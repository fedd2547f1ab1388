"""Request bodies are bounded before anything buffers or parses them; JSON nesting is capped; pages carry
headers that keep them from being framed, sniffed or leaking their URL. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import AuthWorld

API = "/api/v1"
BIG = 200 * 1024  # over the 64 KiB a caller may send before their credentials are checked


def _deep(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"k": value}
    return value


def _async_post(app: Any, path: str, chunks: list[bytes], headers: dict[str, str]) -> httpx.Response:
    """A body streamed in chunks with no Content-Length (chunked transfer), as a client may send it."""
    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.post(path, content=body(), headers=headers)
    return asyncio.run(send())


def test_a_large_body_without_credentials_is_refused_before_it_is_read(world: AuthWorld) -> None:
    """Before: the body was buffered whole and only then answered 401."""
    world.user("owner")
    anonymous = world.client(None)
    for path in (f"{API}/experiments", f"{API}/auth/login", f"{API}/runs/{'0' * 32}/batch",
                 "/api/2.0/mlflow/experiments/create", "/api/2.0/mlflow/runs/log-batch"):
        answer = anonymous.post(path, content=b" " * BIG, headers={"content-type": "application/json"})
        assert answer.status_code == 413, (path, answer.text)
        assert answer.json()["error_code"] == "REQUEST_TOO_LARGE"
    streamed = _async_post(world.app, f"{API}/experiments", [b" " * 16384] * 20, {"content-type": "application/json"})
    assert streamed.status_code == 413, streamed.text


def test_a_large_body_with_wrong_credentials_is_refused_unread(world: AuthWorld) -> None:
    client = world.client("cairn_0123456789abcdef_" + "x" * 40)
    answer = client.post(f"{API}/experiments", content=b" " * BIG, headers={"content-type": "application/json"})
    assert answer.status_code == 401


def test_a_signed_in_caller_may_send_large_bodies(world: AuthWorld) -> None:
    token = world.user("owner")
    world.workspace("team", {"owner": "owner"})
    client = world.client(token, "team")
    run_id = client.post(f"{API}/runs", json={"experiment_name": "e"}).json()["run_id"]
    params = {f"p{i}": "v" * 400 for i in range(600)}  # ~250 KB
    answer = client.post(f"{API}/runs/{run_id}/batch", json={"params": params})
    assert answer.status_code == 200, answer.text
    streamed = _async_post(world.app, f"{API}/runs/{run_id}/batch", [json.dumps({"params": params}).encode()],
                           {"content-type": "application/json", "authorization": f"Bearer {token}",
                            "x-cairn-workspace": "team"})
    assert streamed.status_code == 200, streamed.text


def test_bodies_past_the_limit_are_refused_declared_or_streamed(app: Any, api: httpx.Client) -> None:
    app.state.settings.max_request_bytes = 100_000
    declared = api.post(f"{API}/experiments", content=b" " * 100_001, headers={"content-type": "application/json"})
    assert declared.status_code == 413 and "100000" in declared.json()["message"]
    streamed = _async_post(app, f"{API}/experiments", [b" " * 30_000] * 4, {"content-type": "application/json"})
    assert streamed.status_code == 413
    absurd = api.post(f"{API}/experiments", content=b"{}", headers={"content-length": "9" * 40})
    assert absurd.status_code == 413 and absurd.json()["field"] == "body"
    assert api.post(f"{API}/experiments", json={"name": "fits"}).status_code == 201


def test_uploads_streamed_to_disk_have_their_own_limit(app: Any, api: httpx.Client, run_id: str) -> None:
    app.state.settings.max_request_bytes = 10_000
    app.state.settings.max_upload_bytes = 2_000_000
    ok = api.put(f"{API}/runs/{run_id}/artifacts", params={"path": "big.bin"}, content=b"x" * 1_500_000)
    assert ok.status_code == 201, ok.text
    refused = api.put(f"{API}/runs/{run_id}/artifacts", params={"path": "bigger.bin"}, content=b"x" * 2_000_001)
    assert refused.status_code == 413
    assert [e["path"] for e in api.get(f"{API}/runs/{run_id}/artifacts").json()["files"]] == ["big.bin"]


@pytest.mark.parametrize(("method", "path"), [
    ("POST", f"{API}/experiments"),  # a FastAPI route
    ("POST", f"{API}/runs/{{run}}/batch"),  # a direct route
    ("POST", "/api/2.0/mlflow/runs/log-batch"),  # the MLflow protocol
    ("POST", f"{API}/runs/{{run}}/logged-models"),  # free-form JSON (a manifest)
])
def test_json_nested_too_deep_is_refused(api: httpx.Client, run_id: str, method: str, path: str) -> None:
    body = {"name": "e", "tags": _deep(100), "run_id": run_id, "params": [_deep(100)], "manifest": _deep(100),
            "artifact_path": "m"}
    answer = api.request(method, path.format(run=run_id), json=body)
    assert answer.status_code == 400, answer.text
    assert "deep" in answer.text
    very = api.request(method, path.format(run=run_id), content=b"[" * 50_000 + b"]" * 50_000,
                       headers={"content-type": "application/json"})
    assert very.status_code == 400, very.text


def test_pages_and_answers_carry_protective_headers(api: httpx.Client) -> None:
    for path in ("/", "/login", f"{API}/experiments", "/health"):
        answer = api.get(path)
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert answer.headers["referrer-policy"] == "no-referrer", path
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], path
    assert "content-security-policy" not in api.get("/docs").headers  # the API explorer loads a CDN script
