"""The local blob store: content addressing, atomic writes, and refusing non-digests."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cairn.server.storage.blobs import LocalBlobStore


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def test_stream_is_stored_under_its_digest(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    blob = asyncio.run(store.put_stream(chunks(b"hello ", b"world")))
    assert blob.digest == "sha256:" + hashlib.sha256(b"hello world").hexdigest() and blob.size == 11
    assert b"".join(store.open(blob.digest)) == b"hello world"
    assert list((tmp_path / "tmp").iterdir()) == []  # no temp file left behind


def test_same_content_twice_is_one_file(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put_bytes(b"x")
    asyncio.run(store.put_stream(chunks(b"x")))
    assert len([p for p in (tmp_path / "sha256").rglob("*") if p.is_file()]) == 1


@pytest.mark.parametrize("digest", ["sha256:../../etc/passwd", "md5:abc", "sha256:" + "g" * 64, "sha256:AB"])
def test_non_digests_are_refused(tmp_path: Path, digest: str) -> None:
    with pytest.raises(ValueError, match="digest"):
        LocalBlobStore(tmp_path).path_for(digest)
