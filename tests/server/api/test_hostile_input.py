"""Regressions found by fuzzing the OpenAPI document: each of these once answered 500."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import httpx
import pytest

HUGE = 2**70


@pytest.mark.parametrize(("method", "path", "kwargs"), [
    ("GET", "/api/v1/experiments", {"params": {"offset": HUGE}}),
    ("GET", "/api/v1/models", {"params": {"offset": HUGE}}),
    ("POST", "/api/v1/runs/search", {"json": {"experiment_ids": [HUGE]}}),
    ("GET", "/api/v1/models/dev.x/versions/\u00b2", {}),
    ("GET", "/api/v1/models/dev.x/versions/99999999999999999999", {}),
    ("POST", "/api/v1/models/dev.x/versions", {"json": {"source": "runs:/" + "0" * 32 + "/m/\u00b2"}}),
    ("POST", "/api/v1/models/dev.x/versions", {"json": {"source": "runs:/" + "0" * 32 + "/m/" + "9" * 30}}),
])
def test_never_a_server_error(api: httpx.Client, method: str, path: str, kwargs: dict) -> None:
    response = api.request(method, path, **kwargs)
    assert 400 <= response.status_code < 500, response.text


def test_metric_history_with_huge_steps(api: httpx.Client, run_id: str) -> None:
    api.post(f"/api/v1/runs/{run_id}/batch", json={"metrics": [{"key": "m", "steps": [0], "values": [1.0]}]})
    response = api.get(f"/api/v1/runs/{run_id}/metrics/history", params={"key": "m", "start_step": HUGE})
    assert 400 <= response.status_code < 500


def test_huge_integer_values(api: httpx.Client, run_id: str) -> None:
    ok = api.post(f"/api/v1/runs/{run_id}/batch", json={"metrics": [{"key": "m", "steps": [0], "values": [HUGE]}]})
    assert ok.status_code == 200
    assert api.get(f"/api/v1/runs/{run_id}").json()["metrics"]["m"]["last"] == float(HUGE)
    too_big = api.post(f"/api/v1/runs/{run_id}/batch", content=b'{"metrics": [{"key": "m", "steps": [1], "values": [1'
                       + b"0" * 400 + b"]}]}", headers={"content-type": "application/json"})
    assert too_big.status_code == 400


@pytest.mark.parametrize("params", [[{"key": [1], "value": "x"}], [{"key": {"a": 1}}], [{"value": 1}]])
def test_params_list_form_with_bad_keys(api: httpx.Client, run_id: str, params: list) -> None:
    assert api.post(f"/api/v1/runs/{run_id}/batch", json={"params": params}).status_code == 400


def test_free_form_json_with_huge_integers_is_echoed(api: httpx.Client, run_id: str) -> None:
    payload = b"weights"
    api.put(f"/api/v1/runs/{run_id}/artifacts", params={"path": "models/m/w.bin"}, content=payload)
    manifest = {"flavor": "pyfunc", "metadata": {"n": HUGE},
                "files": {"w.bin": {"sha256": hashlib.sha256(payload).hexdigest(), "size": len(payload)}}}
    response = api.post(f"/api/v1/runs/{run_id}/logged-models",
                        json={"name": "m", "artifact_path": "models/m", "manifest": manifest})
    assert response.status_code == 201 and response.json()["manifest"]["metadata"]["n"] == HUGE
    manifest["files"]["w.bin"]["size"] = True
    refused = api.post(f"/api/v1/runs/{run_id}/logged-models",
                       json={"name": "m2", "artifact_path": "models/m", "manifest": manifest})
    assert refused.status_code == 400


def bundle(meta: object, files: dict[str, bytes] | None = None, raw_meta: bytes | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        data = raw_meta if raw_meta is not None else json.dumps(meta).encode()
        entry = tarfile.TarInfo("bundle.json")
        entry.size = len(data)
        tar.addfile(entry, io.BytesIO(data))
        for name, content in (files or {}).items():
            entry = tarfile.TarInfo(f"files/{name}")
            entry.size = len(content)
            tar.addfile(entry, io.BytesIO(content))
    return out.getvalue()


GOOD_FILE = {"w.bin": {"digest": "sha256:" + hashlib.sha256(b"w").hexdigest(), "size": 1}}


@pytest.mark.parametrize("body", [
    bundle({"format": 1, "manifest": {}, "files": {"w.bin": "nope"}}),
    bundle({"format": 1, "manifest": {}, "files": {"w.bin": 5}}),
    bundle({"format": 1, "manifest": {}, "files": {"w.bin": {"digest": "sha256:x", "size": True}}}),
    bundle({"format": 1, "manifest": {}, "files": GOOD_FILE, "lineage": [1]}, {"w.bin": b"w"}),
    bundle({"format": 1, "manifest": {}, "files": GOOD_FILE, "tags": "x"}, {"w.bin": b"w"}),
    bundle(None, raw_meta=b"[" * 100_000 + b"]" * 100_000),
])
def test_malformed_bundles(api: httpx.Client, body: bytes) -> None:
    response = api.post("/api/v1/models/dev.imported/versions/import", content=body)
    assert response.status_code == 400, response.text
    assert api.get("/api/v1/models/dev.imported").status_code == 404
