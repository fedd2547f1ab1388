"""Transfers straight to and from the server's bucket, through the presigned URLs it hands out.

Uploads: the server plans one PUT, or parts (sent several at once, each retried on its own); the server
then checks the bytes' SHA-256 in the bucket before the version exists. A URL that expired (the bucket
answers 403) is asked for again. Downloads: the server answers 307 with a presigned GET, followed here
without the Cairn headers (the token is for the server, never for the bucket).

A transfer over 64 MB shows a progress line on stderr when stderr is a terminal.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cairn.client._errors import CairnError, TransportError
from cairn.client._http import pool_for

PROGRESS_MIN = 64 * 1024 * 1024
PART_THREADS = 8
ATTEMPTS = 4
_TIMEOUT = 300.0  # seconds without a byte from the bucket before a transfer fails
Refresh = Callable[[], str]


class Progress:
    """``label 42% 420/1000 MB`` on one stderr line, for transfers past PROGRESS_MIN on a terminal."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.shown = total > PROGRESS_MIN and sys.stderr.isatty()
        self._lock = threading.Lock()
        self._last = 0.0

    def add(self, count: int) -> None:
        with self._lock:
            self.done += count
            now = time.monotonic()
            if self.shown and (now - self._last > 0.2 or self.done >= self.total):
                self._last = now
                mb = 1024 * 1024
                sys.stderr.write(f"\r{self.label} {100 * self.done // max(self.total, 1):3d}% "
                                 f"{self.done // mb}/{self.total // mb} MB")
                sys.stderr.flush()

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


def file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(4 * 1024 * 1024):
            hasher.update(chunk)
    return f"sha256:{hasher.hexdigest()}"


def _expired(status: int, body: bytes) -> bool:
    """The bucket refused the URL itself (expired or its signature no longer valid): ask for a new one."""
    return status == 403 or (status == 400 and b"xpired" in body)


def put_range(local: Path, offset: int, size: int, url: str, refresh: Refresh, progress: Progress) -> str:
    """PUT ``size`` bytes of ``local`` from ``offset``; returns the ETag. Retried on network errors and
    5xx answers; a refused URL is replaced by ``refresh()`` before the next try."""
    with local.open("rb") as handle:
        handle.seek(offset)
        data = handle.read(size)
    if len(data) != size:
        raise CairnError(f"{local} changed while it was uploaded (expected {size} bytes at {offset})")
    for attempt in range(ATTEMPTS):
        pool, target = pool_for(url, _TIMEOUT)
        try:
            status, headers, body = pool.send("PUT", target, {"Content-Length": str(size)}, data)
        except TransportError as exc:
            if attempt == ATTEMPTS - 1:
                raise TransportError(f"uploading {local} to the bucket: {exc}") from exc
            time.sleep(0.5 * 2**attempt)
            continue
        if status < 300:
            progress.add(size)
            return headers.get("etag", "")
        if attempt == ATTEMPTS - 1 or (status < 500 and not _expired(status, body)):
            raise TransportError(f"the bucket refused {local}: {status} {body[:300].decode('utf-8', 'replace')}")
        if _expired(status, body):
            url = refresh()
        else:
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def upload_parts(local: Path, plan: dict[str, Any], refresh: Callable[[int], str],
                 progress: Progress) -> list[dict[str, Any]]:
    """Every part of a multipart plan, several at once; [{part_number, etag}] in order."""
    size, part_size = os.path.getsize(local), int(plan["part_size"])
    urls = {int(p["part_number"]): str(p["url"]) for p in plan["parts"]}

    def send(number: int) -> dict[str, Any]:
        offset = (number - 1) * part_size
        length = min(part_size, size - offset)
        etag = put_range(local, offset, length, urls[number], lambda: refresh(number), progress)
        return {"part_number": number, "etag": etag}

    with ThreadPoolExecutor(min(PART_THREADS, len(urls)), thread_name_prefix="cairn-parts") as pool:
        return list(pool.map(send, sorted(urls)))


def get_to(url: str, write: Callable[[memoryview], object], refresh: Refresh, progress: Progress) -> None:
    """GET a presigned URL into ``write``; a refused (expired) URL is replaced once by ``refresh()``."""
    def counted(piece: memoryview) -> None:
        write(piece)
        progress.add(len(piece))

    for attempt in range(2):
        pool, target = pool_for(url, _TIMEOUT)
        try:
            status, _, body = pool.send("GET", target, {}, None, counted)
        except TransportError as exc:
            raise TransportError(f"downloading from the bucket: {exc}") from exc
        if status < 300:
            return
        if attempt == 0 and _expired(status, body):
            url = refresh()
            continue
        raise TransportError(f"the bucket refused the download: {status} {body[:300].decode('utf-8', 'replace')}")
