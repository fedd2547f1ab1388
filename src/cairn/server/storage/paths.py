"""Artifact paths from clients are hostile: normalise them and refuse anything that could escape."""

from __future__ import annotations

import re
import unicodedata

from cairn.server.services.errors import InvalidInputError

MAX_PATH = 1024
_ENCODED = re.compile(r"%(2e|2f|5c|00)", re.IGNORECASE)


def clean_artifact_path(path: object, *, field: str = "path", allow_empty: bool = False) -> str:
    """A relative POSIX path with no '.', '..', empty segments, backslashes, NUL or encoded tricks."""
    if not isinstance(path, str):
        raise InvalidInputError(f"{field} must be a string", field=field)
    if path in ("", "/") and allow_empty:
        return ""
    problem = _problem(path)
    if problem:
        raise InvalidInputError(f"{field} {path[:200]!r} is not allowed: {problem}", field=field)
    return unicodedata.normalize("NFC", path.strip("/") if path.endswith("/") else path)


def _problem(path: str) -> str | None:
    if not path:
        return "it is empty"
    if len(path) > MAX_PATH:
        return f"it is longer than {MAX_PATH} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return "it contains NUL or a control character"
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "it is absolute; give a path relative to the run"
    if "\\" in path:
        return "it contains a backslash"
    if _ENCODED.search(path):
        return "it contains a percent-encoded '.', '/', '\\' or NUL"
    segments = path.rstrip("/").split("/")
    if any(s in ("", ".", "..") for s in segments):
        return "it contains an empty, '.' or '..' segment"
    return None
