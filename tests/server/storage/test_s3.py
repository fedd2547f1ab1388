"""The bucket store against a real S3 endpoint (moto_server): content-addressed keys under the prefix,
listing for gc, and a server that refuses to start on a bucket it cannot use."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cairn.server.storage.s3 import S3BlobStore, S3Location, StorageError
from tests.conftest import S3_BUCKET

pytestmark = pytest.mark.s3


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.fixture
def store(s3_endpoint: str, tmp_path: Path) -> S3BlobStore:
    return S3BlobStore(f"s3://{S3_BUCKET}/t-{uuid.uuid4().hex}/", spool=tmp_path / "spool")


def test_blobs_live_under_the_prefix_by_digest(store: S3BlobStore, tmp_path: Path) -> None:
    blob = asyncio.run(store.put_stream(chunks(b"hello ", b"world")))
    assert blob.digest == "sha256:" + hashlib.sha256(b"hello world").hexdigest() and blob.size == 11
    assert store.put_bytes(b"hello world") == blob  # the same bytes: the same key, stored once
    hexdigest = blob.digest.partition(":")[2]
    assert store.key_for(blob.digest) == f"{store.where.prefix}sha256/{hexdigest[:2]}/{hexdigest[2:4]}/{hexdigest}"
    assert b"".join(store.open(blob.digest)) == b"hello world" and store.exists(blob.digest)
    assert store.blobs() == {blob.digest} and store.blobs(older_than=time.time() - 3600) == set()
    assert list((tmp_path / "spool").iterdir()) == []  # the spooled body is gone
    store.delete(blob.digest)
    assert not store.exists(blob.digest) and store.blobs() == set()


def test_stored_again_is_written_again(store: S3BlobStore) -> None:
    """Deduplication after the write, as the local store: bytes already in the bucket are sent again (here a
    blob damaged behind the store's back is whole again), so an upload's duration says nothing about what
    others stored."""
    blob = store.put_bytes(b"shared secret bytes")
    key = store.key_for(blob.digest)
    for put in (lambda: store.put_bytes(b"shared secret bytes"),
                lambda: asyncio.run(store.put_stream(chunks(b"shared secret ", b"bytes")))):
        store.client.put_object(Bucket=store.bucket, Key=key, Body=b"damaged")
        assert put() == blob
        assert store.read_bytes(blob.digest) == b"shared secret bytes"


@pytest.mark.parametrize("digest", ["sha256:../../etc", "md5:abc", "sha256:" + "G" * 64])
def test_non_digests_name_no_key(store: S3BlobStore, digest: str) -> None:
    with pytest.raises(ValueError, match="digest"):
        store.key_for(digest)


@pytest.mark.parametrize("url", ["s3://", "s3://UPPER/x", "file:///tmp/x", "s3://a/x"])
def test_bad_locations_are_refused(url: str) -> None:
    with pytest.raises(StorageError):
        S3Location.parse(url)


def test_the_server_refuses_to_start_on_a_missing_bucket(s3_endpoint: str, tmp_path: Path) -> None:
    started = subprocess.run(
        [sys.executable, "-m", "cairn", "server", "--port", "1", "--store-uri", f"sqlite:///{tmp_path}/c.db",
         "--artifact-root", "s3://no-such-bucket/cairn"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "CAIRN_HOME": str(tmp_path)})
    assert started.returncode == 2
    assert "'no-such-bucket'" in started.stderr and "does not exist" in started.stderr
