"""Content-addressed blob stores. A blob's name is its sha256; writes are atomic (temp, fsync, rename)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StoredBlob:
    digest: str  # "sha256:<hex>"
    size: int


class BlobStore(Protocol):
    async def put_stream(self, chunks: AsyncIterator[bytes]) -> StoredBlob: ...
    def put_bytes(self, data: bytes) -> StoredBlob: ...
    def open(self, digest: str) -> Iterator[bytes]: ...
    def exists(self, digest: str) -> bool: ...
    def delete(self, digest: str) -> None: ...


class LocalBlobStore:
    """Blobs under ``root/sha256/ab/cd/<hex>``; the path is derived only from a validated digest."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

    def path_for(self, digest: str) -> Path:
        algo, _, hexdigest = digest.partition(":")
        if algo != "sha256" or len(hexdigest) != 64 or not all(c in "0123456789abcdef" for c in hexdigest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        path = (self.root / "sha256" / hexdigest[:2] / hexdigest[2:4] / hexdigest).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError("blob path escapes the store")
        return path

    async def put_stream(self, chunks: AsyncIterator[bytes]) -> StoredBlob:
        hasher, size = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            return self._commit(Path(tmp), f"sha256:{hasher.hexdigest()}", size)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def put_bytes(self, data: bytes) -> StoredBlob:
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        if self.exists(digest):
            return StoredBlob(digest, len(data))
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
        final = self.path_for(digest)
        if not final.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
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

    def exists(self, digest: str) -> bool:
        return self.path_for(digest).exists()

    def delete(self, digest: str) -> None:
        self.path_for(digest).unlink(missing_ok=True)
