"""Direct transfers: bytes go between the client and the bucket through presigned URLs, not through us.

An upload is planned here (one presigned PUT, or a multipart upload with a URL per part), and finished
here: the uploaded object's SHA-256 is established by the store (``S3BlobStore.checked_digest``), compared
with what the client claims, and only then does the object become the blob and may a version name it.
A mismatch removes the object and refuses the version. Nothing is kept between the calls but the object
itself: the upload id is random, so any server process can finish an upload another one began.

The same functions serve the native API and MLflow's multipart protocol (which claims no digest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cairn.server.services.errors import InvalidInputError, NotFoundError
from cairn.server.storage.blobs import StoredBlob, check_digest
from cairn.server.storage.s3 import MAX_OBJECT, MAX_PARTS, S3BlobStore, part_size_for

SINGLE_MAX = 64 * 1024 * 1024  # bytes: one presigned PUT up to this, parts above


@dataclass
class UploadPlan:
    upload_id: str
    multipart_id: str | None = None
    part_size: int | None = None
    url: str | None = None
    parts: list[tuple[int, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        if self.multipart_id is None:
            return {"mode": "single", "upload_id": self.upload_id, "url": self.url}
        return {"mode": "multipart", "upload_id": self.upload_id, "multipart_id": self.multipart_id,
                "part_size": self.part_size, "parts": [{"part_number": n, "url": u} for n, u in self.parts]}


def check_size(size: object, name: str = "size") -> int:
    if type(size) is not int or size < 0 or size > MAX_OBJECT:
        raise InvalidInputError(f"{name} must be a whole number of bytes from 0 to {MAX_OBJECT}", field=name)
    return size


def check_claimed_digest(digest: object) -> str:
    if not isinstance(digest, str):
        raise InvalidInputError("digest must be a string: sha256:<64 hex digits>", field="digest")
    try:
        check_digest(digest)
    except ValueError as exc:
        raise InvalidInputError(f"digest {digest[:80]!r} is not sha256:<64 lower-case hex digits>",
                                field="digest") from exc
    return digest


def plan_upload(store: S3BlobStore, size: int, *, parts: int | None = None) -> UploadPlan:
    """One presigned PUT for a file up to ``SINGLE_MAX``; above, a multipart upload with a URL per part.
    ``parts`` asks for that many parts whatever the size (MLflow's client chooses its own part size)."""
    if parts is None and size <= SINGLE_MAX:
        upload_id, _ = store.new_upload(None)
        return UploadPlan(upload_id, url=store.put_url(upload_id))
    part_size = part_size_for(size) if parts is None else None
    count = parts if parts is not None else max(1, -(-size // part_size_for(size)))
    if not 1 <= count <= MAX_PARTS * 10:
        raise InvalidInputError(f"{count} parts: S3 allows 1 to 10,000", field="num_parts")
    upload_id, multipart_id = store.new_upload(count)
    assert multipart_id is not None
    urls = [(n, store.part_url(upload_id, multipart_id, n)) for n in range(1, count + 1)]
    return UploadPlan(upload_id, multipart_id, part_size, parts=urls)


def upload_urls(store: S3BlobStore, upload_id: str, multipart_id: str | None,
                part_numbers: list[int]) -> dict[str, Any]:
    """Fresh URLs for an upload under way (the first ones expired, or a part is being retried)."""
    upload_id = check_upload_id(store, upload_id)
    if multipart_id is None:
        return {"url": store.put_url(upload_id)}
    bad = [n for n in part_numbers if type(n) is not int or not 1 <= n <= MAX_PARTS * 10]
    if bad or not part_numbers:
        raise InvalidInputError("part_numbers must list part numbers from 1 to 10000", field="part_numbers")
    return {"parts": [{"part_number": n, "url": store.part_url(upload_id, multipart_id, n)} for n in part_numbers]}


def check_upload_id(store: S3BlobStore, upload_id: str) -> str:
    try:
        store.upload_key(upload_id)
    except ValueError as exc:
        raise InvalidInputError(f"upload_id {upload_id[:80]!r} is not an upload id", field="upload_id") from exc
    return upload_id


def finish_upload(store: S3BlobStore, upload_id: str, *, multipart_id: str | None = None,
                  parts: list[tuple[int, str]] | None = None, digest: str | None = None,
                  size: int | None = None) -> StoredBlob:
    """Complete the upload, establish its SHA-256, compare it with the claim (if any) and make it the blob.
    On any mismatch the uploaded object is removed and nothing refers to it."""
    check_upload_id(store, upload_id)
    if multipart_id is not None:
        _complete(store, upload_id, multipart_id, parts or [])
    stored = store.uploaded_size(upload_id)
    if stored is None:
        raise NotFoundError(f"nothing was uploaded for upload {upload_id} (or it was finished already)",
                            field="upload_id")
    if size is not None and stored != size:
        store.abort(upload_id, None)
        raise InvalidInputError(f"the upload holds {stored} bytes, not the {size} claimed: it was removed and "
                                "no version was recorded", field="size")
    actual = store.checked_digest(upload_id, stored)
    if digest is not None and actual != digest:
        store.abort(upload_id, None)
        raise InvalidInputError(f"the uploaded bytes have digest {actual}, not the {digest} claimed: the upload "
                                "was removed and no version was recorded", field="digest")
    return store.adopt(upload_id, actual, stored)


def _complete(store: S3BlobStore, upload_id: str, multipart_id: str, parts: list[tuple[int, str]]) -> None:
    from botocore.exceptions import ClientError

    if not parts:
        raise InvalidInputError("parts must list every uploaded part with its ETag", field="parts")
    try:
        store.complete_parts(upload_id, multipart_id, parts)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchUpload", "404"):
            raise NotFoundError(f"the store knows no multipart upload {multipart_id!r} for upload {upload_id}",
                                field="multipart_id") from exc
        raise InvalidInputError(f"the store refused to complete the upload: {code} "
                                f"{exc.response.get('Error', {}).get('Message', '')}", field="parts") from exc


def abort_upload(store: S3BlobStore, upload_id: str, multipart_id: str | None) -> None:
    store.abort(check_upload_id(store, upload_id), multipart_id)
