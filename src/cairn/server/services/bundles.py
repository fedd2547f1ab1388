"""Model bundles: a version exported as one tar file (bundle.json + files/) and imported elsewhere.

``bundle.json`` carries the model name and version, manifest, lineage, tags, description and every
file's digest. Aliases are not carried over: where an alias points is the target's decision.
Import checks every file against that digest and refuses the bundle (naming the path)
on any mismatch, missing or unexpected file; nothing is registered unless all of it is right.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import IO, Any

from sqlalchemy.orm import Session

from cairn.server.db.models import BlobRow
from cairn.server.db.upsert import insert_ignore
from cairn.server.services import events, logged_models, versions
from cairn.server.services.context import Context
from cairn.server.services.errors import InvalidInputError
from cairn.server.services.registry import VersionView
from cairn.server.storage.blobs import BlobStore
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


def read_bundle(path: Path, blobs: BlobStore) -> tuple[dict[str, Any], dict[str, tuple[str, int]]]:
    """Validate a bundle file and store its files as blobs; returns its metadata and {path: (digest, size)}."""
    try:
        with tarfile.open(path, mode="r:") as tar:
            meta = _read_meta(tar)
            expected = _expected_files(meta)
            seen = _store_files(tar, expected, blobs)
    except tarfile.TarError as exc:
        raise InvalidInputError(f"the bundle is not a valid tar file: {exc}", field="body") from exc
    missing = sorted(set(expected) - seen)
    if missing:
        raise InvalidInputError(f"bundle file {missing[0]!r} is listed in bundle.json but missing", field="body")
    return meta, expected


def _read_meta(tar: tarfile.TarFile) -> dict[str, Any]:
    member = tar.next()
    if member is None or member.name != "bundle.json" or not member.isfile() or member.size > MAX_META_BYTES:
        raise InvalidInputError("the bundle must start with bundle.json", field="body")
    handle = tar.extractfile(member)
    assert handle is not None
    try:
        meta = json.loads(handle.read())
    except (ValueError, RecursionError) as exc:
        raise InvalidInputError(f"bundle.json is not valid JSON: {exc}", field="body") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("manifest"), dict):
        raise InvalidInputError(f"bundle.json must be format {FORMAT} with a manifest", field="body")
    for name, kind in (("lineage", dict), ("tags", dict), ("description", str)):
        if meta.get(name) is not None and not isinstance(meta[name], kind):
            raise InvalidInputError(f"bundle.json: {name} must be {'an object' if kind is dict else 'a string'}",
                                    field="body")
    return meta


def _expected_files(meta: dict[str, Any]) -> dict[str, tuple[str, int]]:
    files = meta.get("files")
    if not isinstance(files, dict) or not files:
        raise InvalidInputError("bundle.json lists no files", field="body")
    out: dict[str, tuple[str, int]] = {}
    for path, info in files.items():
        clean = clean_artifact_path(path, field="bundle file")
        info = info if isinstance(info, dict) else {}
        digest, size = info.get("digest"), info.get("size")
        if not isinstance(digest, str) or not digest.startswith("sha256:") or not logged_models.is_size(size):
            raise InvalidInputError(f"bundle file {path!r} needs a sha256 digest and a size", field="body")
        out[clean] = (digest, int(size))  # type: ignore[arg-type]
    return out


def _store_files(tar: tarfile.TarFile, expected: dict[str, tuple[str, int]], blobs: BlobStore) -> set[str]:
    seen: set[str] = set()
    for member in tar:
        if member.name == "bundle.json":  # read already, by _read_meta
            continue
        path = member.name.removeprefix("files/")
        if not member.isfile() or not member.name.startswith("files/") or path not in expected:
            raise InvalidInputError(f"unexpected entry {member.name!r} in the bundle", field="body")
        handle = tar.extractfile(member)
        assert handle is not None
        data = handle.read()
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        if len(data) != expected[path][1]:
            raise InvalidInputError(f"bundle file {path!r} is {len(data)} bytes, bundle.json says {expected[path][1]}",
                                    field="body")
        if digest != expected[path][0]:
            raise InvalidInputError(f"bundle file {path!r} does not match its digest {expected[path][0]}",
                                    field="body")
        blobs.put_bytes(data)
        seen.add(path)
    return seen


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
