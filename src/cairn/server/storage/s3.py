"""Blobs in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, GCS's S3 interface), through boto3.

Configuration comes only from the standard AWS chain (environment, ``~/.aws/config`` and credentials
files, instance roles) plus ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``: what operators already set
for every other tool. The location is ``s3://BUCKET/PREFIX``; blobs live at
``PREFIX/sha256/ab/cd/<hex>`` as on local disk, and uploads in flight at ``PREFIX/uploads/<id>``.

Only the server writes a blob key, and only with bytes whose SHA-256 it has established itself: either it
hashed them (proxied uploads), or S3 computed a full-object SHA-256 while copying the uploaded object in
place (direct uploads, see ``checked_digest``). A client with a presigned URL can only write under
``uploads/``, so it can never replace a blob other versions point at.
"""

from __future__ import annotations

import base64
import os
import re
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from starlette.concurrency import run_in_threadpool

from cairn.server.storage.blobs import CHUNK, BlobWriter, StoredBlob, check_digest, fill

MAX_COPY = 5 * 1024**3  # S3's limit for one CopyObject; past it, a checksum needs a read
PART_MIN = 16 * 1024 * 1024
MAX_PARTS = 1000  # so that a part list fits one answer; S3 allows 10,000
MAX_OBJECT = 5 * 1024**4
URL_SECONDS = 3600
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


class StorageError(Exception):
    """The bucket cannot be used (missing, credentials refused, unreachable); the message names it."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ending in "/"

    @classmethod
    def parse(cls, url: str) -> S3Location:
        if not url.startswith("s3://"):
            raise StorageError(f"{url!r} is not an s3://BUCKET/PREFIX location")
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket):
            raise StorageError(f"{url!r}: {bucket!r} is not a valid bucket name")
        prefix = prefix.strip("/")
        return cls(bucket, f"{prefix}/" if prefix else "")


def make_client() -> Any:
    """A boto3 S3 client from the standard AWS chain. Checksums only when an operation needs them: the
    newer default (a CRC on every upload) is refused by several S3-compatible stores, and Cairn checks
    SHA-256 itself."""
    import boto3
    from botocore.config import Config

    config = Config(signature_version="s3v4", retries={"max_attempts": 5, "mode": "standard"},
                    max_pool_connections=32, request_checksum_calculation="when_required",
                    response_checksum_validation="when_required")
    return boto3.session.Session().client("s3", config=config)


class S3BlobStore:
    """Content-addressed blobs in a bucket, with presigned URLs for transfers that bypass the server."""

    direct = True

    def __init__(self, url: str, *, spool: Path | None = None, client: Any = None) -> None:
        self.location = url
        self.where = S3Location.parse(url)
        self.bucket = self.where.bucket
        self._client = client
        self._lock = threading.Lock()
        self._spool = spool

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = make_client()
        return self._client

    def check(self) -> None:
        """Refuse to start on a bucket that is missing or refuses us: later, every upload would fail."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            meaning = {"404": "it does not exist", "NoSuchBucket": "it does not exist",
                       "403": "access is denied (check the credentials and the bucket policy)"}.get(code, str(exc))
            raise StorageError(f"artifact bucket {self.bucket!r} cannot be used: {meaning} ({code})") from exc
        except BotoCoreError as exc:
            raise StorageError(f"artifact bucket {self.bucket!r} cannot be reached: {exc}") from exc

    # keys ------------------------------------------------------------------------------------------
    def key_for(self, digest: str) -> str:
        hexdigest = check_digest(digest)
        return f"{self.where.prefix}sha256/{hexdigest[:2]}/{hexdigest[2:4]}/{hexdigest}"

    def upload_key(self, upload_id: str) -> str:
        if not _UPLOAD_ID.match(upload_id):
            raise ValueError(f"not an upload id: {upload_id!r}")
        return f"{self.where.prefix}uploads/{upload_id}"

    # the BlobStore protocol -------------------------------------------------------------------------
    async def put_stream(self, chunks: AsyncIterator[bytes]) -> StoredBlob:
        """Spool the body to a temp file while hashing it, then send it to its key (see _send_file)."""
        writer = BlobWriter(self._spool_dir())
        try:
            await run_in_threadpool(writer.write, await fill(writer, chunks))
            writer.close()
            return await run_in_threadpool(self._send_file, writer.path, writer.digest(), writer.size)
        finally:
            writer.discard()

    def stage(self) -> BlobWriter:
        """A local temp file to write and hash a blob into; ``commit_staged`` sends it to the bucket."""
        return BlobWriter(self._spool_dir())

    def commit_staged(self, writer: BlobWriter) -> StoredBlob:
        writer.close()
        try:
            return self._send_file(writer.path, writer.digest(), writer.size)
        finally:
            writer.discard()

    def _spool_dir(self) -> Path:
        spool = self._spool or Path(tempfile.gettempdir())
        spool.mkdir(parents=True, exist_ok=True)
        return spool

    def _send_file(self, path: Path, digest: str, size: int) -> StoredBlob:
        """Written whether or not the blob exists (deduplication after the write): an upload takes as long
        whatever another workspace stored (docs/security.md)."""
        self.client.upload_file(str(path), self.bucket, self.key_for(digest), Config=_transfer_config())
        return StoredBlob(digest, size)

    def put_bytes(self, data: bytes) -> StoredBlob:
        import hashlib

        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        self.client.put_object(Bucket=self.bucket, Key=self.key_for(digest), Body=data)  # as _send_file
        return StoredBlob(digest, len(data))

    def open(self, digest: str) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=self.key_for(digest))["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def open_file(self, digest: str) -> IO[bytes]:
        return self.client.get_object(Bucket=self.bucket, Key=self.key_for(digest))["Body"]  # type: ignore[no-any-return]

    def read_bytes(self, digest: str) -> bytes:
        return b"".join(self.open(digest))

    def exists(self, digest: str) -> bool:
        return self._head(self.key_for(digest)) is not None

    def delete(self, digest: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key_for(digest))

    def blobs(self, older_than: float | None = None) -> set[str]:
        """Digests of the blobs in the bucket (last written before ``older_than``, a Unix time, if given)."""
        found = set()
        for item in self._list(f"{self.where.prefix}sha256/"):
            name = item["Key"].rsplit("/", 1)[-1]
            if older_than is None or item["LastModified"].timestamp() < older_than:
                found.add(f"sha256:{name}")
        return found

    def _list(self, prefix: str) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            yield from page.get("Contents", [])

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)  # type: ignore[no-any-return]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    # direct transfers --------------------------------------------------------------------------------
    def download_url(self, digest: str, filename: str | None = None) -> str:
        params = {"Bucket": self.bucket, "Key": self.key_for(digest)}
        if filename:
            params["ResponseContentDisposition"] = f"attachment; filename*=UTF-8''{_quote(filename)}"
        return str(self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=URL_SECONDS))

    def new_upload(self, parts: int | None) -> tuple[str, str | None]:
        """A fresh upload id, and (for ``parts``) the bucket's multipart upload id."""
        upload_id = uuid.uuid4().hex
        if parts is None:
            return upload_id, None
        made = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.upload_key(upload_id))
        return upload_id, str(made["UploadId"])

    def put_url(self, upload_id: str) -> str:
        return str(self.client.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": self.upload_key(upload_id)}, ExpiresIn=URL_SECONDS))

    def part_url(self, upload_id: str, multipart_id: str, part_number: int) -> str:
        params = {"Bucket": self.bucket, "Key": self.upload_key(upload_id), "UploadId": multipart_id,
                  "PartNumber": part_number}
        return str(self.client.generate_presigned_url("upload_part", Params=params, ExpiresIn=URL_SECONDS))

    def complete_parts(self, upload_id: str, multipart_id: str, parts: list[tuple[int, str]]) -> None:
        listing = [{"PartNumber": number, "ETag": etag} for number, etag in sorted(parts)]
        self.client.complete_multipart_upload(Bucket=self.bucket, Key=self.upload_key(upload_id),
                                              UploadId=multipart_id, MultipartUpload={"Parts": listing})

    def abort(self, upload_id: str, multipart_id: str | None) -> None:
        from botocore.exceptions import ClientError

        key = self.upload_key(upload_id)
        if multipart_id:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=multipart_id)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchUpload"):
                    raise
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def uploaded_size(self, upload_id: str) -> int | None:
        head = self._head(self.upload_key(upload_id))
        return None if head is None else int(head["ContentLength"])

    def checked_digest(self, upload_id: str, size: int) -> str:
        """The SHA-256 of an uploaded object, established without the bytes passing through this process:
        copying the object onto itself with a SHA-256 checksum makes the store compute it over the whole
        object. Past 5 GB (one copy's limit) the object is read and hashed here."""
        key = self.upload_key(upload_id)
        if size > MAX_COPY:
            return self._read_digest(key)
        copied = self.client.copy_object(Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": key},
                                         ChecksumAlgorithm="SHA256", MetadataDirective="REPLACE")
        checksum = copied.get("CopyObjectResult", {}).get("ChecksumSHA256")
        if not checksum or "-" in checksum:  # a store that does not compute it: read the bytes instead
            return self._read_digest(key)
        return f"sha256:{base64.b64decode(checksum).hex()}"

    def _read_digest(self, key: str) -> str:
        import hashlib

        hasher = hashlib.sha256()
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        for chunk in body.iter_chunks(CHUNK):
            hasher.update(chunk)
        return f"sha256:{hasher.hexdigest()}"

    def adopt(self, upload_id: str, digest: str, size: int) -> StoredBlob:
        """Make a checked upload the blob ``digest`` (copied over it if it exists: see _send_file), then drop
        the upload."""
        key = self.upload_key(upload_id)
        self.client.copy({"Bucket": self.bucket, "Key": key}, self.bucket, self.key_for(digest),
                         Config=_transfer_config())
        self.client.delete_object(Bucket=self.bucket, Key=key)
        return StoredBlob(digest, size)

    def clean_uploads(self, older_than: float) -> int:
        """Remove the uploads begun before ``older_than`` and never finished (the client crashed or gave up)."""
        stale = self._stale_uploads(older_than)
        for upload_id, multipart_id in stale:
            self.abort(upload_id, multipart_id)
        return len(stale)

    def _stale_uploads(self, older_than: float) -> list[tuple[str, str | None]]:
        stale: list[tuple[str, str | None]] = []
        for item in self._list(f"{self.where.prefix}uploads/"):
            if item["LastModified"].timestamp() < older_than:
                stale.append((item["Key"].rsplit("/", 1)[-1], None))
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=f"{self.where.prefix}uploads/")
        for page in pages:
            for upload in page.get("Uploads", []):
                if upload["Initiated"].timestamp() < older_than:
                    stale.append((upload["Key"].rsplit("/", 1)[-1], upload["UploadId"]))
        return [(u, m) for u, m in stale if _UPLOAD_ID.match(u)]


def part_size_for(size: int) -> int:
    """Parts of at least 16 MiB, few enough that there are at most ``MAX_PARTS``; whole MiB."""
    needed = -(-size // MAX_PARTS)
    mib = 1024 * 1024
    return max(PART_MIN, -(-needed // mib) * mib)


def _transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=64 * 1024 * 1024, multipart_chunksize=PART_MIN,
                          max_concurrency=int(os.environ.get("CAIRN_S3_CONCURRENCY", "8")))


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")
