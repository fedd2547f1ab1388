"""Export/import of model bundles between servers, and garbage collection that keeps shared blobs."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from cairn._embedded import ASGIBridge
from cairn.server.app import create_app
from cairn.server.services.gc import collect
from cairn.server.settings import Settings
from tests.conftest import ARTIFACT_STORES, stored_blobs

pytestmark = pytest.mark.parametrize("artifact_root", ARTIFACT_STORES, indirect=True)


def register(api: httpx.Client, run_id: str, model: str, payload: bytes, name: str = "model") -> dict[str, Any]:
    """Upload a one-file model into the run, record it as a logged model and register it."""
    path = f"models/{name}/weights.bin"
    assert api.put(f"/api/v1/runs/{run_id}/artifacts", params={"path": path}, content=payload).status_code == 201
    manifest = {"flavor": "pyfunc", "files": {"weights.bin": {"sha256": hashlib.sha256(payload).hexdigest(),
                                                              "size": len(payload)}}}
    logged = api.post(f"/api/v1/runs/{run_id}/logged-models",
                      json={"name": name, "artifact_path": f"models/{name}", "manifest": manifest})
    assert logged.status_code == 201, logged.text
    version = api.post(f"/api/v1/models/{model}/versions", json={"source": logged.json()["id"]})
    assert version.status_code == 201, version.text
    return version.json()


def blob_files(app: Any) -> set[str]:
    return stored_blobs(app)


def test_logged_model_files_must_match_the_manifest(api: httpx.Client, run_id: str) -> None:
    api.put(f"/api/v1/runs/{run_id}/artifacts", params={"path": "models/m/w.bin"}, content=b"abc")
    manifest = {"flavor": "pyfunc", "files": {"w.bin": {"sha256": "0" * 64, "size": 3}}}
    bad = api.post(f"/api/v1/runs/{run_id}/logged-models",
                   json={"name": "m", "artifact_path": "models/m", "manifest": manifest})
    assert bad.status_code == 400 and "models/m/w.bin" in bad.json()["message"]
    manifest["files"] = {"missing.bin": {"sha256": "0" * 64, "size": 1}}
    missing = api.post(f"/api/v1/runs/{run_id}/logged-models",
                       json={"name": "m", "artifact_path": "models/m", "manifest": manifest})
    assert missing.status_code == 400 and "missing" in missing.json()["message"]


def test_export_then_import_on_a_second_server(api: httpx.Client, run_id: str, tmp_path: Path) -> None:
    version = register(api, run_id, "dev.mnist", b"weights-v1")
    api.post("/api/v1/models/dev.mnist/versions/1/tags", json={"approved": "true"})
    bundle = api.get("/api/v1/models/dev.mnist/versions/1/export")
    assert bundle.status_code == 200
    other = create_app(Settings(home=tmp_path / "other", allowed_hosts=["other"]))
    with httpx.Client(transport=ASGIBridge(other), base_url="http://other") as second:
        imported = second.post("/api/v1/models/prod.mnist/versions/import", content=bundle.content)
        assert imported.status_code == 201, imported.text
        body = imported.json()
        assert body["name"] == "prod.mnist" and body["version"] == 1 and body["tags"] == {"approved": "true"}
        assert [f["digest"] for f in body["files"]] == [f["digest"] for f in version["files"]]
        assert body["lineage"]["imported_from"]["model"] == "dev.mnist"
        assert body["lineage"]["run_id"] == run_id
        content = second.get("/api/v1/models/prod.mnist/versions/1/files/content", params={"path": "weights.bin"})
        assert content.content == b"weights-v1"
    other.state.db.dispose()


def _tampered(bundle: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(bundle)) as source, tarfile.open(fileobj=out, mode="w") as tar:
        for member in source.getmembers():
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.startswith("files/"):
                data = b"evil" + data
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize("mangle", ["tamper", "garbage", "no-meta"])
def test_bad_bundles_are_refused_and_register_nothing(api: httpx.Client, run_id: str, mangle: str) -> None:
    register(api, run_id, "dev.mnist", b"weights")
    bundle = api.get("/api/v1/models/dev.mnist/versions/1/export").content
    body = {"tamper": _tampered(bundle), "garbage": b"not a tar file at all" * 100,
            "no-meta": _tampered(bundle)[1024:]}[mangle]
    response = api.post("/api/v1/models/prod.other/versions/import", content=body)
    assert response.status_code == 400, response.text
    if mangle == "tamper":
        assert "weights.bin" in response.json()["message"]
    assert api.get("/api/v1/models/prod.other").status_code == 404


def test_gc_frees_unshared_blobs_and_keeps_shared_ones(api: httpx.Client, app: Any, settings: Settings) -> None:
    run_a = api.post("/api/v1/runs", json={"experiment_name": "gc"}).json()["run_id"]
    run_b = api.post("/api/v1/runs", json={"experiment_name": "gc"}).json()["run_id"]
    register(api, run_a, "dev.gone", b"only-in-a")
    register(api, run_a, "dev.kept", b"shared-by-promotion", name="second")
    api.post("/api/v1/models/dev.kept/versions/1/promote", json={"to": "prod.kept"})
    api.put(f"/api/v1/runs/{run_b}/artifacts", params={"path": "same.bin"}, content=b"only-in-a")
    before = blob_files(app)
    assert len(before) == 2
    # delete run A and every dev version: 'only-in-a' is still used by run B, the promoted copy keeps the other
    api.delete(f"/api/v1/runs/{run_a}")
    api.delete("/api/v1/models/dev.gone/versions/1")
    api.delete("/api/v1/models/dev.kept")
    report = collect(app.state.db, app.state.blobs)
    assert (report.runs, report.models, report.blobs) == (1, 1, 0)
    assert blob_files(app) == before
    # now drop the last users of each blob: both are freed, and their bytes reported
    api.delete(f"/api/v1/runs/{run_b}")
    api.delete("/api/v1/models/prod.kept/versions/1")
    report = collect(app.state.db, app.state.blobs)
    assert report.blobs == 2 and report.bytes_freed == len(b"only-in-a") + len(b"shared-by-promotion")
    assert blob_files(app) == set()
    assert api.get("/api/v1/models/dev.gone/versions/1").status_code == 404


def test_gc_dry_run_changes_nothing(api: httpx.Client, app: Any, settings: Settings, run_id: str) -> None:
    api.put(f"/api/v1/runs/{run_id}/artifacts", params={"path": "a.bin"}, content=b"data")
    api.delete(f"/api/v1/runs/{run_id}")
    report = collect(app.state.db, app.state.blobs, dry_run=True)
    assert (report.runs, report.blobs) == (1, 1)
    assert len(blob_files(app)) == 1
    assert api.post(f"/api/v1/runs/{run_id}/restore").status_code == 200


def test_bundle_json_is_readable(api: httpx.Client, run_id: str) -> None:
    register(api, run_id, "dev.readable", b"w")
    bundle = api.get("/api/v1/models/dev.readable/versions/1/export").content
    with tarfile.open(fileobj=io.BytesIO(bundle)) as tar:
        meta = json.loads(tar.extractfile("bundle.json").read())  # type: ignore[union-attr]
        assert tar.getnames() == ["bundle.json", "files/weights.bin"]
    assert meta["model"] == "dev.readable" and meta["files"]["weights.bin"]["size"] == 1
