"""Model bundles: a version exported as one tar file (bundle.json + files/) and imported elsewhere.

``bundle.json`` carries the model name and version, manifest, lineage, tags, description and every
file's digest. Aliases are not carried over: where an alias points is the target's decision.
Import checks every file against that digest and refuses the bundle (naming the path)
on any mismatch, missing or unexpected file; nothing is registered unless all of it is right.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy.orm import Session

from cairn.server.db.models import BlobRow
from cairn.server.db.upsert import insert_ignore
from cairn.server.services import events, logged_models, versions
from cairn.server.services.context import Context
from cairn.server.services.errors import InvalidInputError, PayloadTooLargeError
from cairn.server.services.registry import VersionView
from cairn.server.services.validation import check_depth
from cairn.server.storage.blobs import CHUNK, BlobStore, BlobWriter
from cairn.server.storage.paths import clean_artifact_path

FORMAT = 1
MAX_META_BYTES = 16 * 1024 * 1024


def bundle_meta(view: VersionView) -> dict[str, Any]:
    row = view.row
    return {"format": FORMAT, "exported_at": events.now_ms(), "model": view.full_name, "version": row.version,
            "flavor": row.flavor, "manifest": row.manifest, "lineage": row.lineage, "tags": view.tags,
            "aliases": sorted(view.aliases), "description": row.description, "run_id": row.run_id,
            "files": {f.path: {"digest": f.digest, "size": f.size} for f in view.files}}


def write_bundle(meta: dict[str, Any], blobs: BlobStore, out: IO[bytes]) -> None:
    with tarfile.open(fileobj=out, mode="w") as tar:
        data = json.dumps(meta, indent=2, sort_keys=True).encode()
        _add(tar, "bundle.json", io.BytesIO(data), len(data))
        for path, info in sorted(meta["files"].items()):
            with blobs.open_file(info["digest"]) as handle:
                _add(tar, f"files/{path}", handle, info["size"])


def _add(tar: tarfile.TarFile, name: str, handle: IO[bytes], size: int) -> None:
    entry = tarfile.TarInfo(name)
    entry.size, entry.mode, entry.mtime = size, 0o644, 0
    tar.addfile(entry, handle)


@dataclass(frozen=True)
class BundleLimits:
    """What one imported bundle may hold; the route passes the server's settings."""

    max_members: int = 10_000
    max_bytes: int = 10 * 1024**3  # all files together, unpacked
    max_header_bytes: int = 1024 * 1024  # one pax or GNU long-name header


def read_bundle(path: Path, blobs: BlobStore,
                limits: BundleLimits = BundleLimits()) -> tuple[dict[str, Any], dict[str, tuple[str, int]]]:
    """Validate a bundle file and store its files as blobs; returns its metadata and {path: (digest, size)}.

    Nothing is read whole: the archive's headers are walked first (member count, declared sizes, no
    sparse members), each file is streamed through its hash into a staged blob, and the staged blobs
    become stored blobs only once every file has matched bundle.json. A refused bundle leaves nothing."""
    check_archive(path, limits)
    staged: list[BlobWriter] = []
    try:
        with tarfile.open(path, mode="r:") as tar:
            meta = _read_meta(tar)
            expected = _expected_files(meta, limits)
            seen = _stage_files(tar, expected, blobs, staged)
        missing = sorted(set(expected) - seen)
        if missing:
            raise InvalidInputError(f"bundle file {missing[0]!r} is listed in bundle.json but missing", field="body")
        for writer in staged:
            blobs.commit_staged(writer)
    except tarfile.TarError as exc:
        raise InvalidInputError(f"the bundle is not a valid tar file: {exc}", field="body") from exc
    finally:
        for writer in staged:
            writer.discard()
    return meta, expected


_BLOCK = 512
_EXTENDED = frozenset(b"xgLK")  # pax headers and GNU long names: their data is read whole by tarfile
_SPARSE = ord("S")


def check_archive(path: Path, limits: BundleLimits) -> None:
    """Walk the raw 512-byte tar headers before anything unpacks them: refuse too many members, a
    sparse member (a few KB that unpack to gigabytes), an oversized extended header, or declared
    sizes past the limit. Costs one seek per member."""
    members = declared = 0
    with path.open("rb") as handle:
        while header := handle.read(_BLOCK):
            if len(header) < _BLOCK or header == bytes(_BLOCK):
                return
            size, kind = _raw_size(header), header[156]
            members += 1
            if members > limits.max_members * 2 + 2:  # each file may carry one extended header
                raise PayloadTooLargeError(f"the bundle has more than {limits.max_members} members", field="body")
            if kind == _SPARSE:
                raise InvalidInputError("the bundle has a sparse member; bundles hold plain files", field="body")
            if kind in _EXTENDED and size > limits.max_header_bytes:
                raise PayloadTooLargeError(f"a tar header of the bundle declares {size} bytes", field="body")
            declared += size
            if declared > limits.max_bytes + limits.max_members * limits.max_header_bytes:
                raise PayloadTooLargeError(f"the bundle's members declare more than {limits.max_bytes} bytes",
                                           field="body")
            handle.seek((size + _BLOCK - 1) // _BLOCK * _BLOCK, 1)


def _raw_size(header: bytes) -> int:
    field = header[124:136]
    if field[0] & 0x80:  # base-256, for sizes past 8 GB
        return int.from_bytes(field[1:], "big")
    digits = field.split(b"\0", 1)[0].strip() or b"0"
    try:
        return int(digits, 8)
    except ValueError:
        raise InvalidInputError("the bundle is not a valid tar file: a member's size is not a number",
                                field="body") from None


def _read_meta(tar: tarfile.TarFile) -> dict[str, Any]:
    member = tar.next()
    if member is None or member.name != "bundle.json" or not member.isfile() or member.size > MAX_META_BYTES:
        raise InvalidInputError("the bundle must start with bundle.json", field="body")
    handle = tar.extractfile(member)
    assert handle is not None
    try:
        meta = json.loads(handle.read())
        check_depth(meta)
    except (ValueError, RecursionError) as exc:
        raise InvalidInputError(f"bundle.json is not valid JSON: {exc}", field="body") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("manifest"), dict):
        raise InvalidInputError(f"bundle.json must be format {FORMAT} with a manifest", field="body")
    for name, kind in (("lineage", dict), ("tags", dict), ("description", str)):
        if meta.get(name) is not None and not isinstance(meta[name], kind):
            raise InvalidInputError(f"bundle.json: {name} must be {'an object' if kind is dict else 'a string'}",
                                    field="body")
    return meta


def _expected_files(meta: dict[str, Any], limits: BundleLimits) -> dict[str, tuple[str, int]]:
    files = meta.get("files")
    if not isinstance(files, dict) or not files:
        raise InvalidInputError("bundle.json lists no files", field="body")
    if len(files) > limits.max_members:
        raise PayloadTooLargeError(f"bundle.json lists {len(files)} files; the limit is {limits.max_members}",
                                   field="body")
    out: dict[str, tuple[str, int]] = {}
    for path, info in files.items():
        clean = clean_artifact_path(path, field="bundle file")
        info = info if isinstance(info, dict) else {}
        digest, size = info.get("digest"), info.get("size")
        if not isinstance(digest, str) or not digest.startswith("sha256:") or not logged_models.is_size(size):
            raise InvalidInputError(f"bundle file {path!r} needs a sha256 digest and a size", field="body")
        out[clean] = (digest, int(size))  # type: ignore[arg-type]
    total = sum(size for _, size in out.values())
    if total > limits.max_bytes:
        raise PayloadTooLargeError(f"bundle.json lists {total} bytes of files; the limit is {limits.max_bytes}",
                                   field="body")
    _check_tree(out)
    return out


def _check_tree(files: dict[str, Any]) -> None:
    """A path cannot be both a file and a folder."""
    for path in files:
        parts = path.split("/")
        for end in range(1, len(parts)):
            if "/".join(parts[:end]) in files:
                raise InvalidInputError(f"bundle file {path!r} is inside {'/'.join(parts[:end])!r}, which is a "
                                        "file", field="body")


def _stage_files(tar: tarfile.TarFile, expected: dict[str, tuple[str, int]], blobs: BlobStore,
                 staged: list[BlobWriter]) -> set[str]:
    seen: set[str] = set()
    for member in tar:
        if member.name == "bundle.json":  # read already, by _read_meta
            continue
        path = member.name.removeprefix("files/")
        if not member.isfile() or member.issparse() or not member.name.startswith("files/") \
                or path not in expected or path in seen:
            raise InvalidInputError(f"unexpected entry {member.name!r} in the bundle", field="body")
        if member.size != expected[path][1]:  # before reading a byte of it
            raise InvalidInputError(f"bundle file {path!r} is {member.size} bytes, bundle.json says "
                                    f"{expected[path][1]}", field="body")
        writer = blobs.stage()
        staged.append(writer)
        _copy(tar, member, writer)
        if writer.digest() != expected[path][0]:
            raise InvalidInputError(f"bundle file {path!r} does not match its digest {expected[path][0]}",
                                    field="body")
        seen.add(path)
    return seen


def _copy(tar: tarfile.TarFile, member: tarfile.TarInfo, writer: BlobWriter) -> None:
    handle = tar.extractfile(member)
    assert handle is not None
    remaining = member.size
    while remaining > 0:
        chunk = handle.read(min(CHUNK, remaining))
        if not chunk:
            raise InvalidInputError(f"bundle file {member.name!r} is cut short", field="body")
        writer.write([chunk])
        remaining -= len(chunk)


def import_version(session: Session, ctx: Context, full_name: str, meta: dict[str, Any],
                   files: dict[str, tuple[str, int]]) -> VersionView:
    insert_ignore(session, BlobRow, [{"digest": d, "size": s, "created_at": events.now_ms()}
                                     for d, s in set(files.values())], ["digest"])
    lineage = {**(meta.get("lineage") or {}), "imported_from": {
        "model": meta.get("model"), "version": meta.get("version"), "run_id": meta.get("run_id"),
        "exported_at": meta.get("exported_at"), "by": ctx.actor, "at": events.now_ms()}}
    row = versions.add_version(session, ctx, full_name, run_id=None, logged_model_id=None, source_version_id=None,
                                manifest=meta["manifest"], lineage=lineage, files=files,
                                description=str(meta.get("description") or ""))
    return versions.finish_version(session, ctx, full_name, row, dict(meta.get("tags") or {}), [])
