"""Versioned artifacts over the native API, and hostile paths."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest


def upload(api: httpx.Client, run_id: str, path: str, data: bytes) -> httpx.Response:
    return api.put(f"/api/v1/runs/{run_id}/artifacts", params={"path": path}, content=data)


def test_versions_and_download(api: httpx.Client, run_id: str) -> None:
    first = upload(api, run_id, "plots/confusion.png", b"one")
    second = upload(api, run_id, "plots/confusion.png", b"two")
    assert (first.json()["version"], second.json()["version"]) == (1, 2)
    assert first.json()["digest"] == "sha256:" + hashlib.sha256(b"one").hexdigest()
    versions = api.get(f"/api/v1/runs/{run_id}/artifacts/versions", params={"path": "plots/confusion.png"}).json()
    assert [v["version"] for v in versions["versions"]] == [1, 2]
    latest = api.get(f"/api/v1/runs/{run_id}/artifacts/content", params={"path": "plots/confusion.png"})
    assert latest.content == b"two" and latest.headers["x-cairn-version"] == "2"
    old = api.get(f"/api/v1/runs/{run_id}/artifacts/content", params={"path": "plots/confusion.png", "version": 1})
    assert old.content == b"one"
    missing = api.get(f"/api/v1/runs/{run_id}/artifacts/content", params={"path": "plots/confusion.png", "version": 3})
    assert missing.status_code == 404 and "version 3" in missing.json()["message"]


def test_listing_shows_folders_and_latest_files(api: httpx.Client, run_id: str) -> None:
    upload(api, run_id, "model/weights.bin", b"w")
    upload(api, run_id, "model/config/params.json", b"{}")
    upload(api, run_id, "README.md", b"r")
    root = api.get(f"/api/v1/runs/{run_id}/artifacts").json()["files"]
    assert [(f["path"], f["is_dir"]) for f in root] == [("README.md", False), ("model", True)]
    model = api.get(f"/api/v1/runs/{run_id}/artifacts", params={"path": "model"}).json()["files"]
    assert [(f["path"], f["is_dir"]) for f in model] == [("model/config", True), ("model/weights.bin", False)]


def test_identical_content_is_stored_once(api: httpx.Client, run_id: str, settings: object) -> None:
    upload(api, run_id, "a.txt", b"same bytes")
    upload(api, run_id, "b.txt", b"same bytes")
    root = Path(settings.resolved_artifact_root) / "sha256"  # type: ignore[attr-defined]
    assert len([p for p in root.rglob("*") if p.is_file()]) == 1


@pytest.mark.parametrize("path", [
    "/etc/passwd", "../escape.txt", "a/../../b", "a\\b", "%2e%2e/x", "a/%2E%2E/b", "nul\x00byte", "", "a//b",
    "./a", "C:/windows", "a/./b",
])
def test_hostile_paths_are_refused(api: httpx.Client, run_id: str, path: str, tmp_path: Path,
                                   settings: object) -> None:
    response = upload(api, run_id, path, b"evil")
    assert response.status_code == 400, (path, response.text)
    assert response.json()["field"] == "path"
    root = Path(settings.resolved_artifact_root)  # type: ignore[attr-defined]
    assert not any(p.is_file() for p in (root / "sha256").rglob("*")) if (root / "sha256").exists() else True


def test_upload_to_unknown_run_writes_nothing(api: httpx.Client, settings: object) -> None:
    response = upload(api, "0" * 32, "x.txt", b"data")
    assert response.status_code == 404
    root = Path(settings.resolved_artifact_root)  # type: ignore[attr-defined]
    assert not (root / "sha256").exists()


def test_file_and_folder_cannot_share_a_path(api: httpx.Client, run_id: str) -> None:
    upload(api, run_id, "out/a.txt", b"1")
    assert upload(api, run_id, "out", b"2").status_code == 409


def test_versions_of_unknown_path(api: httpx.Client, run_id: str) -> None:
    response = api.get(f"/api/v1/runs/{run_id}/artifacts/versions", params={"path": "nope.txt"})
    assert response.status_code == 404 and response.json()["field"] == "path"
