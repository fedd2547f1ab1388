"""Versioned artifacts over the native API, and hostile paths."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from tests.conftest import ARTIFACT_STORES, stored_blobs

pytestmark = pytest.mark.parametrize("artifact_root", ARTIFACT_STORES, indirect=True)


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


def test_identical_content_is_stored_once(api: httpx.Client, app: object, run_id: str) -> None:
    upload(api, run_id, "a.txt", b"same bytes")
    upload(api, run_id, "b.txt", b"same bytes")
    assert len(stored_blobs(app)) == 1


@pytest.mark.parametrize("path", [
    "/etc/passwd", "../escape.txt", "a/../../b", "a\\b", "%2e%2e/x", "a/%2E%2E/b", "nul\x00byte", "", "a//b",
    "./a", "C:/windows", "a/./b",
])
def test_hostile_paths_are_refused(api: httpx.Client, app: object, run_id: str, path: str) -> None:
    response = upload(api, run_id, path, b"evil")
    assert response.status_code == 400, (path, response.text)
    assert response.json()["field"] == "path"
    assert stored_blobs(app) == set()


def test_upload_to_unknown_run_writes_nothing(api: httpx.Client, app: object) -> None:
    response = upload(api, "0" * 32, "x.txt", b"data")
    assert response.status_code == 404
    assert stored_blobs(app) == set()


def test_file_and_folder_cannot_share_a_path(api: httpx.Client, run_id: str) -> None:
    upload(api, run_id, "out/a.txt", b"1")
    assert upload(api, run_id, "out", b"2").status_code == 409


def test_versions_of_unknown_path(api: httpx.Client, run_id: str) -> None:
    response = api.get(f"/api/v1/runs/{run_id}/artifacts/versions", params={"path": "nope.txt"})
    assert response.status_code == 404 and response.json()["field"] == "path"


def batch(api: httpx.Client, run_id: str, files: list[tuple[str, bytes]], listing: object = None) -> httpx.Response:
    head = json.dumps({"files": [{"path": p, "size": len(d)} for p, d in files]} if listing is None else listing)
    body = head.encode() + b"\n" + b"".join(d for _, d in files)
    return api.post(f"/api/v1/runs/{run_id}/artifacts/batch", content=body,
                    headers={"Content-Type": "application/x-cairn-files"})


def _versions(api: httpx.Client, run_id: str) -> list[tuple[str, int]]:
    def walk(folder: str) -> list[tuple[str, int]]:
        found = []
        for f in api.get(f"/api/v1/runs/{run_id}/artifacts", params={"path": folder}).json()["files"]:
            found += walk(f["path"]) if f["is_dir"] else [(f["path"], f["version"])]
        return found
    return sorted(walk(""))


def test_batch_stores_every_file_as_a_version(api: httpx.Client, run_id: str) -> None:
    upload(api, run_id, "a/one.txt", b"old")
    files = [("a/one.txt", b"1"), ("a/b/two.bin", b"22"), ("empty", b""), ("three", b"333")]
    response = batch(api, run_id, files)
    assert response.status_code == 201, response.text
    got = response.json()["versions"]
    assert [(v["path"], v["version"], v["size"]) for v in got] == [
        ("a/one.txt", 2, 1), ("a/b/two.bin", 1, 2), ("empty", 1, 0), ("three", 1, 3)]
    assert got[1]["digest"] == "sha256:" + hashlib.sha256(b"22").hexdigest()
    for path, data in files:
        content = api.get(f"/api/v1/runs/{run_id}/artifacts/content", params={"path": path})
        assert content.content == data and content.headers["x-cairn-digest"] == f"sha256:{hashlib.sha256(data).hexdigest()}"


def test_batch_is_all_or_nothing(api: httpx.Client, run_id: str) -> None:
    upload(api, run_id, "out/a.txt", b"1")
    response = batch(api, run_id, [("fine.txt", b"f"), ("out", b"2")])  # the second names a folder
    assert response.status_code == 409
    assert response.json()["field"] == "files[1].path" and "'out'" in response.json()["message"]
    assert _versions(api, run_id) == [("out/a.txt", 1)]


@pytest.mark.parametrize(("listing", "field"), [
    ({"files": [{"path": "../x", "size": 1}]}, "files[0].path"),
    ({"files": [{"path": "ok", "size": 1}, {"path": "a\\b", "size": 0}]}, "files[1].path"),
    ({"files": [{"path": "ok", "size": -1}]}, "files[0].size"),
    ({"files": [{"path": "ok", "size": "1"}]}, "files[0].size"),
    ({"files": [{"path": "ok", "size": 5}]}, "files"),  # 1 byte follows, not 5
    ({"files": []}, "files"),
    ({"files": ["ok"]}, "files[0]"),
    ([1, 2], "files"),
])
def test_bad_batches_are_refused_and_store_nothing(api: httpx.Client, app: object, run_id: str,
                                                   listing: object, field: str) -> None:
    response = batch(api, run_id, [("ok", b"x")], listing)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert stored_blobs(app) == set()
    assert _versions(api, run_id) == []


def test_batch_without_a_listing_line_or_with_bad_json(api: httpx.Client, run_id: str) -> None:
    url = f"/api/v1/runs/{run_id}/artifacts/batch"
    assert api.post(url, content=b"no newline at all").json()["field"] == "files"
    bad = api.post(url, content=b"{not json\nabc")
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["message"]


def test_batch_to_unknown_run_writes_nothing(api: httpx.Client, app: object) -> None:
    assert batch(api, "0" * 32, [("x.txt", b"data")]).status_code == 404
    assert stored_blobs(app) == set()


def test_large_file_streams_in_and_out(api: httpx.Client, run_id: str) -> None:
    data = bytes(range(256)) * (5 * 4096 + 3)  # ~5 MiB: streamed in parts, not read whole
    response = api.put(f"/api/v1/runs/{run_id}/artifacts", params={"path": "big.bin"},
                       content=iter([data[:3_000_000], data[3_000_000:]]))
    assert response.status_code == 201 and response.json()["size"] == len(data)
    assert response.json()["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert api.get(f"/api/v1/runs/{run_id}/artifacts/content", params={"path": "big.bin"}).content == data


def test_a_file_cannot_take_a_folders_path_and_wildcards_in_paths_are_plain(api: httpx.Client, run_id: str) -> None:
    assert upload(api, run_id, "data_1/x.txt", b"x").status_code == 201
    assert upload(api, run_id, "100%/y.txt", b"y").status_code == 201
    for folder in ("data_1", "100%"):
        refused = upload(api, run_id, folder, b"z")
        assert refused.status_code == 409 and "directory" in refused.json()["message"], refused.text
    for lookalike in ("dataX1", "data%1", "100X", "10"):  # "_" and "%" are characters here, not wildcards
        assert upload(api, run_id, lookalike, b"w").status_code == 201, lookalike


def test_a_path_is_a_file_or_a_folder_never_both(api: httpx.Client, run_id: str) -> None:
    """Before: `fd` then `fd/child` was accepted, and the listing hid `fd/child`."""
    base = f"/api/v1/runs/{run_id}/artifacts"
    assert api.put(base, params={"path": "fd"}, content=b"file").status_code == 201
    refused = api.put(base, params={"path": "fd/child"}, content=b"child")
    assert refused.status_code == 409 and "'fd'" in refused.json()["message"], refused.text
    assert api.put(base, params={"path": "fd/a/b/c"}, content=b"deep").status_code == 409
    assert api.put(base, params={"path": "dir/child"}, content=b"child").status_code == 201
    assert api.put(base, params={"path": "dir"}, content=b"file").status_code == 409
    batch = b'{"files": [{"path": "x", "size": 1}, {"path": "x/y", "size": 1}]}\n' + b"12"
    assert api.post(f"{base}/batch", content=batch).status_code == 409
    listed = api.get(base).json()["files"]
    assert [(e["path"], e["is_dir"]) for e in listed] == [("dir", True), ("fd", False)]
