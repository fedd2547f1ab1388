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


def test_stored_again_is_written_again(tmp_path: Path) -> None:
    """Deduplication after the write: bytes someone stored already are written, synced and renamed into place
    like new ones, so an upload's duration says nothing about what others stored."""
    store = LocalBlobStore(tmp_path)
    first = store.put_bytes(b"shared secret bytes")
    inode = store.path_for(first.digest).stat().st_ino
    again = store.put_bytes(b"shared secret bytes")
    assert again == first
    assert store.path_for(first.digest).stat().st_ino != inode  # replaced by the new write
    streamed = asyncio.run(store.put_stream(chunks(b"shared secret ", b"bytes")))
    assert streamed == first and list((tmp_path / "tmp").iterdir()) == []


def test_folders_and_files_are_private(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "new" / "artifacts")
    blob = store.put_bytes(b"x")
    asyncio.run(store.put_stream(chunks(b"y")))
    path = store.path_for(blob.digest)
    assert path.stat().st_mode & 0o777 == 0o600
    folder = path.parent
    while folder != tmp_path:
        assert folder.stat().st_mode & 0o777 == 0o700, folder
        folder = folder.parent
