"""Content-addressed blob stores. A blob's name is its sha256; writes are atomic (temp, fsync, rename).

Two stores keep the same protocol: ``LocalBlobStore`` (a folder) and ``S3BlobStore`` (a bucket, in
``s3.py``). ``open_blob_store`` picks one from the artifact root: ``s3://BUCKET/PREFIX`` or a path.

Deduplication happens after the write: every upload is written, synced and renamed into place whether
or not the same bytes are stored already (by anyone, in any workspace), so how long an upload takes
says nothing about what others stored. Folders are created 0700 and files 0600: readable by the
server's user only."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from starlette.concurrency import run_in_threadpool

if TYPE_CHECKING:
    from cairn.server.storage.s3 import S3BlobStore

CHUNK = 1024 * 1024
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class StoredBlob:
    digest: str  # "sha256:<hex>"
    size: int


class BlobStore(Protocol):
    location: str
    direct: bool  # hands out presigned URLs, so bytes can bypass the server

    def check(self) -> None: ...

    def stage(self) -> BlobWriter: ...
    def commit_staged(self, writer: BlobWriter) -> StoredBlob: ...
    async def put_stream(self, chunks: AsyncIterator[bytes]) -> StoredBlob: ...
    def put_bytes(self, data: bytes) -> StoredBlob: ...
    def open(self, digest: str) -> Iterator[bytes]: ...
    def open_file(self, digest: str) -> IO[bytes]: ...
    def read_bytes(self, digest: str) -> bytes: ...
    def exists(self, digest: str) -> bool: ...
    def delete(self, digest: str) -> None: ...
    def blobs(self, older_than: float | None = None) -> set[str]: ...
    def clean_uploads(self, older_than: float) -> int: ...


def open_blob_store(location: str | Path, *, spool: Path | None = None) -> LocalBlobStore | S3BlobStore:
    """The store for an artifact root: ``s3://BUCKET/PREFIX`` is a bucket, anything else a local folder.
    ``spool`` is where a bucket store keeps a proxied upload while hashing it."""
    if str(location).startswith("s3://"):
        from cairn.server.storage.s3 import S3BlobStore

        return S3BlobStore(str(location), spool=spool)
    return LocalBlobStore(Path(location))


def check_digest(digest: str) -> str:
    """The hex part of a ``sha256:<64 hex>`` digest; ValueError for anything else."""
    algo, _, hexdigest = digest.partition(":")
    if algo != "sha256" or len(hexdigest) != 64 or not _HEX.issuperset(hexdigest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return hexdigest


class LocalBlobStore:
    """Blobs under ``root/sha256/ab/cd/<hex>``; the path is derived only from a validated digest."""

    direct = False

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.location = str(self.root)
        self._tmp = self.root / "tmp"
        private_dir(self._tmp)

    def check(self) -> None:
        """The folder was made (or found) on construction; nothing more to check."""

    def clean_uploads(self, older_than: float) -> int:
        """Uploads come through the server here, and leave nothing behind when they fail."""
        return 0

    def path_for(self, digest: str) -> Path:
        hexdigest = check_digest(digest)
        path = (self.root / "sha256" / hexdigest[:2] / hexdigest[2:4] / hexdigest).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError("blob path escapes the store")
        return path

    def stage(self) -> BlobWriter:
        """A temp file to write and hash a blob into; ``commit_staged`` stores it, ``discard`` drops it."""
        return BlobWriter(self._tmp)

    def commit_staged(self, writer: BlobWriter) -> StoredBlob:
        writer.sync()
        return self._commit(writer.path, writer.digest(), writer.size)

    async def put_stream(self, chunks: AsyncIterator[bytes]) -> StoredBlob:
        """Store a request body as it arrives. Hashing, writing and the final fsync run in a worker thread,
        a batch of about ``CHUNK`` bytes at a time, while the event loop receives the next batch (and serves
        other requests): on the loop, a 1 GB upload's hashing alone held every other request for 0.7 s."""
        writer = BlobWriter(self._tmp)
        try:
            last = await fill(writer, chunks)
            return await run_in_threadpool(self._finish, writer, last)
        finally:
            writer.discard()

    def _finish(self, writer: BlobWriter, last: list[bytes]) -> StoredBlob:
        writer.write(last)
        writer.sync()
        return self._commit(writer.path, writer.digest(), writer.size)

    def put_bytes(self, data: bytes) -> StoredBlob:
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        fd, tmp = tempfile.mkstemp(dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            return self._commit(Path(tmp), digest, len(data))
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _commit(self, tmp: Path, digest: str, size: int) -> StoredBlob:
        """Rename into place even when the blob exists (the same bytes replace the same bytes): the cost of
        an upload does not depend on whether anyone stored it before."""
        final = self.path_for(digest)
        private_dir(final.parent)
        os.replace(tmp, final)
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return StoredBlob(digest, size)

    def open(self, digest: str) -> Iterator[bytes]:
        with self.path_for(digest).open("rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    def open_file(self, digest: str) -> IO[bytes]:
        return self.path_for(digest).open("rb")

    def read_bytes(self, digest: str) -> bytes:
        """A whole blob (for small ones)."""
        return self.path_for(digest).read_bytes()

    def blobs(self, older_than: float | None = None) -> set[str]:
        """Digests of the blob files (last written before ``older_than``, a Unix time, if given)."""
        root = self.root / "sha256"
        if not root.exists():
            return set()
        return {f"sha256:{p.name}" for p in root.glob("*/*/*")
                if p.is_file() and (older_than is None or p.stat().st_mtime < older_than)}

    def exists(self, digest: str) -> bool:
        return self.path_for(digest).exists()

    def delete(self, digest: str) -> None:
        self.path_for(digest).unlink(missing_ok=True)


def private_dir(path: Path) -> None:
    """Create ``path`` and any missing parents as 0700 (``mkdir(parents=True)`` gives parents the umask's
    default). Folders that exist already are left as they are: their owner chose."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile by another process or thread
            continue
        os.chmod(folder, 0o700)  # mkdir's mode is also cut by the umask: make it exactly 0700


async def fill(writer: BlobWriter, chunks: AsyncIterator[bytes]) -> list[bytes]:
    """Write a body into ``writer`` as it arrives: about ``CHUNK`` bytes at a time in a worker thread, while
    the event loop receives the next batch. Returns the last, partial batch, not yet written."""
    pending: asyncio.Future[None] | None = None
    try:
        batch: list[bytes] = []
        size = 0
        async for chunk in chunks:
            batch.append(chunk)
            size += len(chunk)
            if size >= CHUNK:
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(run_in_threadpool(writer.write, batch))
                batch, size = [], 0
        if pending is not None:
            await pending
            pending = None
        return batch
    finally:
        if pending is not None:  # the body failed midway: let the thread stop writing before cleaning up
            await asyncio.wait([pending])


class BlobWriter:
    """A temp file being written and hashed; used by one thread at a time."""

    def __init__(self, tmp_dir: Path) -> None:
        fd, name = tempfile.mkstemp(dir=tmp_dir)
        self.path = Path(name)
        self.size = 0
        self._out = os.fdopen(fd, "wb")
        self._hasher = hashlib.sha256()

    def write(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self._hasher.update(chunk)
            self._out.write(chunk)
            self.size += len(chunk)

    def sync(self) -> None:
        if self._out.closed:
            return
        self._out.flush()
        os.fsync(self._out.fileno())
        self._out.close()

    def close(self) -> None:
        self._out.close()

    def digest(self) -> str:
        return f"sha256:{self._hasher.hexdigest()}"

    def discard(self) -> None:
        """Close, and remove the temp file unless it became the blob."""
        self._out.close()
        self.path.unlink(missing_ok=True)
