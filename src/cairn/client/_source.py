"""Where a run comes from, captured as tags: git state, entry point, user, host, Python."""

from __future__ import annotations

import getpass
import os
import platform
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

PREFIX = "cairn.source."
SOURCE_TTL = 5.0  # seconds a capture is reused: a sweep's runs do not each start four git processes
_captured: dict[Path, tuple[float, dict[str, str]]] = {}
_captured_lock = threading.Lock()


def _git(args: list[str], cwd: Path) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - fixed git arguments, no shell
            [git, *args], cwd=cwd, capture_output=True, text=True, timeout=3, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def entry_point() -> str:
    main = sys.modules.get("__main__")
    if main is not None and "ipykernel" in sys.modules and not getattr(main, "__file__", None):
        return "notebook"
    path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv and sys.argv[0] else "")
    return str(Path(path).resolve()) if path else "<interactive>"


def user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return os.environ.get("USER", "unknown")


def git_tags(cwd: Path) -> dict[str, str]:
    commit = _git(["rev-parse", "HEAD"], cwd)
    if commit is None:
        return {}
    tags = {f"{PREFIX}git.commit": commit}
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
    if branch:
        tags[f"{PREFIX}git.branch"] = branch
    remote = _git(["config", "--get", "remote.origin.url"], cwd)
    if remote:
        tags[f"{PREFIX}git.repo"] = _strip_credentials(remote)
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    tags[f"{PREFIX}git.dirty"] = "true" if status else "false"
    return tags


def _strip_credentials(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return url


def source_tags(source_dir: Path | None = None) -> dict[str, str]:
    """The source tags of a run starting now: the git state of ``source_dir``, by default the entry point's
    folder (a tool's console script, such as ``kedro``, names the project it runs in instead). Git is asked at
    most once per SOURCE_TTL seconds per folder (about 10 ms a time); a run started later sees a commit or an
    edit made in between."""
    entry = entry_point()
    cwd = source_dir if source_dir is not None else Path(entry).parent if entry.startswith("/") else Path.cwd()
    now = time.monotonic()
    with _captured_lock:
        cached = _captured.get(cwd)
    if cached is not None and now - cached[0] < SOURCE_TTL and cached[1].get(f"{PREFIX}entrypoint") == entry:
        return dict(cached[1])
    tags = _capture(entry, cwd)
    with _captured_lock:
        _captured[cwd] = (now, tags)
    return dict(tags)


def _capture(entry: str, cwd: Path) -> dict[str, str]:
    tags = {
        f"{PREFIX}entrypoint": entry,
        f"{PREFIX}user": user(),
        f"{PREFIX}host": socket.gethostname(),
        f"{PREFIX}python": platform.python_version(),
    }
    tags.update(git_tags(cwd))
    return tags
