"""Importing a model bundle is bounded: members are streamed, never read whole; sparse members, too many
members and declared sizes past the limits are refused before their bytes are read; a refused bundle
leaves no stored bytes behind. Through the import route, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from cairn.server.settings import Settings

IMPORT = "/api/v1/models/dev.imported/versions/import"


def _meta(files: dict[str, bytes], sizes: dict[str, int] | None = None) -> dict[str, Any]:
    return {"format": 1, "manifest": {"flavor": "pyfunc"}, "files": {
        name: {"digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": (sizes or {}).get(name, len(data))}
        for name, data in files.items()}}


def make_bundle(meta: dict[str, Any], members: list[tarfile.TarInfo | tuple[str, bytes]],
                tar_format: int = tarfile.GNU_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tar_format) as tar:
        data = json.dumps(meta).encode()
        head = tarfile.TarInfo("bundle.json")
        head.size = len(data)
        tar.addfile(head, io.BytesIO(data))
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
                continue
            entry = tarfile.TarInfo(f"files/{member[0]}")
            entry.size = len(member[1])
            tar.addfile(entry, io.BytesIO(member[1]))
    return out.getvalue()


def sparse_bundle(declared: int) -> bytes:
    """A few KB whose only file declares ``declared`` bytes: an old-GNU sparse member that is all hole."""
    meta = _meta({"w.bin": b""}, {"w.bin": declared})
    plain = make_bundle(meta, [("w.bin", b"")])
    blocks = bytearray(plain)
    # the second header (after bundle.json's header and data blocks) becomes type 'S' with a huge size
    data_blocks = (len(json.dumps(meta).encode()) + 511) // 512
    at = 512 * (1 + data_blocks)
    header = bytearray(blocks[at:at + 512])
    header[156] = ord("S")
    header[124:136] = b"\x80" + declared.to_bytes(11, "big")
    header[483:495] = b"\x80" + declared.to_bytes(11, "big")  # realsize of the old GNU sparse header
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}\0 ".encode()
    blocks[at:at + 512] = header
    return bytes(blocks)


def blob_files(settings: Settings) -> list[Path]:
    root = Path(settings.resolved_artifact_root)
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_a_sparse_member_declaring_gigabytes_is_refused_unread(api: httpx.Client, settings: Settings) -> None:
    """Before: tarfile unpacked the hole into memory (2 GB for a 10 KB upload)."""
    body = sparse_bundle(2 * 1024**3)
    assert len(body) < 20_000
    answer = api.post(IMPORT, content=body)
    assert answer.status_code == 400, answer.text
    assert "sparse" in answer.json()["message"]
    assert blob_files(settings) == []


def test_a_member_larger_than_bundle_json_says_is_refused_before_reading(api: httpx.Client,
                                                                         settings: Settings) -> None:
    files = {"a.bin": b"a" * 10}
    body = make_bundle(_meta(files), [("a.bin", b"a" * 5000)])
    answer = api.post(IMPORT, content=body)
    assert answer.status_code == 400 and "5000 bytes" in answer.json()["message"], answer.text
    assert blob_files(settings) == []


def test_too_many_members_or_bytes_are_refused(app: Any, api: httpx.Client, settings: Settings) -> None:
    app.state.settings.bundle_max_members = 3
    files = {f"f{i}.bin": bytes([i]) * 10 for i in range(5)}
    answer = api.post(IMPORT, content=make_bundle(_meta(files), list(files.items())))
    assert answer.status_code == 413, answer.text
    app.state.settings.bundle_max_members = 100
    app.state.settings.max_upload_bytes = 40_000
    big = {"big.bin": b"b" * 30_000, "big2.bin": b"c" * 30_000}
    answer = api.post(IMPORT, content=make_bundle(_meta(big), []))  # declared in bundle.json only
    assert answer.status_code == 413, answer.text
    assert blob_files(settings) == []


def test_a_refused_bundle_leaves_no_stored_bytes(api: httpx.Client, settings: Settings) -> None:
    """Before: the files that matched were stored as blobs before a later one failed."""
    good = {f"ok{i}.bin": f"good file {i}".encode() * 100 for i in range(3)}
    meta = _meta({**good, "bad.bin": b"expected"})
    body = make_bundle(meta, [*good.items(), ("bad.bin", b"tampered")])
    before = blob_files(settings)
    answer = api.post(IMPORT, content=body)
    assert answer.status_code == 400 and "bad.bin" in answer.json()["message"], answer.text
    assert blob_files(settings) == before
    assert api.get("/api/v1/models/dev.imported").status_code == 404


def test_a_path_that_is_both_file_and_folder_is_refused(api: httpx.Client) -> None:
    files = {"m": b"file", "m/inner.bin": b"inner"}
    answer = api.post(IMPORT, content=make_bundle(_meta(files), list(files.items())))
    assert answer.status_code == 400 and "inside" in answer.json()["message"], answer.text


def test_a_good_bundle_still_imports(api: httpx.Client, settings: Settings) -> None:
    files = {"weights.bin": b"w" * 3_000_000, "conf/model.json": b"{}"}
    answer = api.post(IMPORT, content=make_bundle(_meta(files), list(files.items()), tarfile.PAX_FORMAT))
    assert answer.status_code == 201, answer.text
    assert {f["path"] for f in answer.json()["files"]} == set(files)
    assert len(blob_files(settings)) == 2


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.DIRTYPE, tarfile.FIFOTYPE])
def test_entries_that_are_not_plain_files_are_refused(api: httpx.Client, kind: bytes) -> None:
    files = {"w.bin": b"w"}
    odd = tarfile.TarInfo("files/w.bin")
    odd.type = kind
    odd.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
    answer = api.post(IMPORT, content=make_bundle(_meta(files), [odd]))
    assert answer.status_code == 400, answer.text
