"""Direct uploads into the bucket (moto_server): planned by the server, sent to presigned URLs, checked
against the claimed digest before the version exists; downloads redirected to the bucket."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx
import pytest

from cairn.server.services import uploads
from tests.conftest import stored_blobs

pytestmark = [pytest.mark.s3, pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)]
S3 = pytest.mark.parametrize("artifact_root", ["s3"], indirect=True)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def begin(api: httpx.Client, run_id: str, path: str, data: bytes, claimed: str | None = None) -> dict[str, Any]:
    answer = api.post(f"/api/v1/runs/{run_id}/artifacts/uploads",
                      json={"path": path, "size": len(data), "digest": claimed or digest(data)})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def complete(api: httpx.Client, run_id: str, plan: dict[str, Any], path: str, data: bytes,
             claimed: str | None = None, **extra: Any) -> httpx.Response:
    return api.post(f"/api/v1/runs/{run_id}/artifacts/uploads/{plan['upload_id']}/complete",
                    json={"path": path, "size": len(data), "digest": claimed or digest(data), **extra})


def uploads_left(app: Any) -> list[str]:
    store = app.state.blobs
    return [item["Key"] for item in store._list(f"{store.where.prefix}uploads/")]


@S3
def test_a_direct_upload_is_checked_recorded_and_downloaded_from_the_bucket(api: httpx.Client, app: Any,
                                                                             run_id: str) -> None:
    data = b"weights " * 300_000  # 2.4 MB: past the size the server answers inline
    plan = begin(api, run_id, "model/weights.bin", data)
    assert plan["mode"] == "single" and plan["url"].startswith("http://127.0.0.1:")
    assert httpx.put(plan["url"], content=data).status_code == 200
    done = complete(api, run_id, plan, "model/weights.bin", data)
    assert done.status_code == 201, done.text
    assert (done.json()["version"], done.json()["digest"], done.json()["size"]) == (1, digest(data), len(data))
    assert stored_blobs(app) == {digest(data)} and uploads_left(app) == []
    moved = api.get(f"/api/v1/runs/{run_id}/artifacts/content", params={"path": "model/weights.bin", "direct": True})
    assert moved.status_code == 307 and moved.headers["x-cairn-digest"] == digest(data)
    assert httpx.get(moved.headers["location"]).content == data
    # without direct=true the bytes still come through the server (browsers, MLflow clients)
    assert api.get(f"/api/v1/runs/{run_id}/artifacts/content", params={"path": "model/weights.bin"}).content == data


@S3
def test_a_claimed_digest_that_does_not_match_is_refused_and_the_object_removed(api: httpx.Client, app: Any,
                                                                                run_id: str) -> None:
    data, lie = b"the real bytes", digest(b"something else")
    plan = begin(api, run_id, "a.bin", data, claimed=lie)
    assert httpx.put(plan["url"], content=data).status_code == 200
    refused = complete(api, run_id, plan, "a.bin", data, claimed=lie)
    assert refused.status_code == 400 and refused.json()["field"] == "digest"
    assert digest(data) in refused.json()["message"] and "removed" in refused.json()["message"]
    assert uploads_left(app) == [] and stored_blobs(app) == set()
    assert api.get(f"/api/v1/runs/{run_id}/artifacts").json()["files"] == []


@S3
def test_a_wrong_size_is_refused_and_an_unknown_upload_is_not_found(api: httpx.Client, app: Any,
                                                                    run_id: str) -> None:
    plan = begin(api, run_id, "a.bin", b"12345")
    assert httpx.put(plan["url"], content=b"1234").status_code == 200
    refused = complete(api, run_id, plan, "a.bin", b"12345")
    assert refused.status_code == 400 and refused.json()["field"] == "size" and uploads_left(app) == []
    again = complete(api, run_id, plan, "a.bin", b"12345")
    assert again.status_code == 404 and again.json()["field"] == "upload_id"
    bad = complete(api, run_id, {"upload_id": "../sha256"}, "a.bin", b"12345")
    assert bad.status_code == 404  # the id is a path segment: "../" leaves the route, no store is touched


@S3
def test_multipart_parts_sent_out_of_order_make_one_checked_blob(api: httpx.Client, app: Any, run_id: str) -> None:
    part = 16 * 1024 * 1024
    data = bytes(range(256)) * (part // 256) + b"tail" * 1000  # 2 parts
    # a file this small goes up in one PUT through the native API; plan parts, as for MLflow's client
    plan = uploads.plan_upload(app.state.blobs, len(data), parts=2).to_json()
    assert plan["mode"] == "multipart" and len(plan["parts"]) == 2
    etags = []
    for number, url in reversed([(p["part_number"], p["url"]) for p in plan["parts"]]):
        answer = httpx.put(url, content=data[(number - 1) * part:number * part])
        etags.append({"part_number": number, "etag": answer.headers["etag"]})
    done = complete(api, run_id, plan, "big.bin", data, multipart_id=plan["multipart_id"], parts=etags)
    assert done.status_code == 201, done.text
    assert done.json()["digest"] == digest(data) and uploads_left(app) == []


@S3
def test_bad_upload_requests_say_what_is_wrong(api: httpx.Client, run_id: str) -> None:
    url = f"/api/v1/runs/{run_id}/artifacts/uploads"
    bad_digest = api.post(url, json={"path": "a", "size": 1, "digest": "md5:abc"})
    assert bad_digest.status_code == 400 and bad_digest.json()["field"] == "digest"
    bad_path = api.post(url, json={"path": "../a", "size": 1, "digest": digest(b"a")})
    assert bad_path.status_code == 400 and bad_path.json()["field"] == "path"
    negative = api.post(url, json={"path": "a", "size": -1, "digest": digest(b"a")})
    assert negative.status_code == 400
    missing_run = api.post("/api/v1/runs/" + "0" * 32 + "/artifacts/uploads",
                           json={"path": "a", "size": 1, "digest": digest(b"a")})
    assert missing_run.status_code == 404


@S3
def test_an_abandoned_upload_is_removed_by_abort_and_by_gc(api: httpx.Client, app: Any, run_id: str) -> None:
    plan = begin(api, run_id, "a.bin", b"abc")
    assert httpx.put(plan["url"], content=b"abc").status_code == 200
    assert api.delete(f"/api/v1/runs/{run_id}/artifacts/uploads/{plan['upload_id']}").status_code == 204
    assert uploads_left(app) == []
    forgotten = begin(api, run_id, "b.bin", b"abc")
    assert httpx.put(forgotten["url"], content=b"abc").status_code == 200
    assert app.state.blobs.clean_uploads(time.time() - 3600) == 0  # too recent: maybe still under way
    assert app.state.blobs.clean_uploads(time.time() + 60) == 1
    assert uploads_left(app) == []


@pytest.mark.parametrize("artifact_root", ["local"], indirect=True)
def test_a_local_store_asks_for_the_bytes_through_the_server(api: httpx.Client, run_id: str) -> None:
    plan = begin(api, run_id, "a.bin", b"abc")
    assert plan == {"mode": "proxy"}
