"""Durable on-disk spool for writes the sender could not deliver (yet).

Layout
------
A spool is a folder (usually ``$CAIRN_HOME/spool``).  Every Sender session that has to
spool owns exactly one file, ``<session>.jsonl``::

    {"version": 1, "target": "https://...", "workspace": "ml", "created": <ms>, "session": "..."}
    {"method": "POST", "path": "/api/v1/runs/r1/batch", "body": "{...}", "idempotency_key": "...", ...}
    ...

and, next to it, when needed:

* ``<session>.files/<n>``: private copies of files to upload, made at spool time because the
  original may change or disappear before the spool is replayed.  Op lines refer to them by
  a path relative to the spool folder, so the folder can be moved as a whole.
* ``<session>.done``: replay progress, ``{"done": <op lines processed>, "offset": <byte offset>}``,
  replaced atomically every few ops, so an interrupted replay resumes where it stopped.

Durability
----------
Ops are appended in batches; each batch is written, flushed and ``fsync``-ed before the
sender counts it as done.  If a write fails half way, the file is truncated back to the end of
the previous batch.  A torn last line (hard kill in the middle of a write) carries no newline
and is ignored by readers; a complete line that does not parse is skipped with a warning.

Refused batches
---------------
A run's buffer goes out as one all-or-nothing ``POST /api/v1/runs/<id>/batch`` (metrics, params,
tags, and the run's end).  When the server refuses it for good, ``_ops.split_batch`` makes its parts
(the live sender and every replay use it), so one bad param does not cost the metrics beside it
nor the run its end.  The end goes as ``PATCH /api/v1/runs/<id>``, which every server version knows.
Each part's idempotency key is derived from the batch's, so parts re-sent after an interrupted
replay are stored once.

Locking
-------
The live session holds an exclusive ``flock`` on its file for as long as the file exists.
The file is born locked: the header goes into a hidden temporary file that is locked,
``fsync``-ed and then renamed into place, so nobody ever sees a spool file without its header
or without its owner's lock.  :func:`replay_spool_file` (``cairn sync``) takes the same lock
without blocking and refuses files held by a live process.  After locking it checks that the
path still names the inode it locked (the owner may have deleted the file in the meantime).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from cairn.client._ops import (
    ErrorFn,
    Op,
    ProgressFn,
    RetryableError,
    SendFn,
    decode_op,
    encode_op,
    new_idempotency_key,
    split_batch,
)

__all__ = [
    "SPOOL_VERSION",
    "ErrorFn",
    "Op",
    "ProgressFn",
    "RetryableError",
    "SendFn",
    "SpoolCursor",
    "SpoolFile",
    "SpoolFormatError",
    "SpoolLockedError",
    "SpoolWriter",
    "decode_op",
    "encode_op",
    "list_spool",
    "new_idempotency_key",
    "remove_spool_file",
    "replay_cursor",
    "replay_spool_file",
    "split_batch",
]

logger = logging.getLogger("cairn")

SPOOL_VERSION = 1
SPOOL_SUFFIX = ".jsonl"
_PROGRESS_EVERY = 64  # ops between two durable progress records during a replay
_COUNT_CHUNK = 1 << 20


# --------------------------------------------------------------------------- spool files


class SpoolLockedError(Exception):
    """The spool file is held by a live process."""


class SpoolFormatError(ValueError):
    """The file is not a spool file this version of cairn understands."""


def _read_header(fh: BinaryIO) -> dict[str, Any]:
    line = fh.readline()
    if not line.endswith(b"\n"):
        raise SpoolFormatError("missing or torn header line")
    try:
        header = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise SpoolFormatError(f"bad header: {exc}") from exc
    if not isinstance(header, dict) or header.get("version") != SPOOL_VERSION:
        raise SpoolFormatError(f"unsupported spool header: {line[:200]!r}")
    return header


# --------------------------------------------------------------------------- small file helpers


def _progress_path(path: Path) -> Path:
    return path.with_suffix(".done")


def _files_dir(path: Path) -> Path:
    return path.with_suffix(".files")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_progress(path: Path) -> tuple[int, int] | None:
    try:
        rec = orjson.loads(_progress_path(path).read_bytes())
        done, offset = rec["done"], rec["offset"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(done, int) and isinstance(offset, int) and done >= 0 and offset >= 0:
        return done, offset
    return None


def _save_progress(path: Path, done: int, offset: int) -> None:
    target = _progress_path(path)
    tmp = target.with_name(target.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _write_all(fd, orjson.dumps({"done": done, "offset": offset}))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)


def remove_spool_file(path: Path) -> None:
    """Delete a spool file with its progress sidecar and its copied files (the caller holds the lock)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    with contextlib.suppress(FileNotFoundError):
        _progress_path(path).unlink()
    shutil.rmtree(_files_dir(path), ignore_errors=True)


def _count_op_lines(path: Path) -> int:
    """Complete lines after the header (a torn last line has no newline and is not counted)."""
    lines = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_COUNT_CHUNK):
            lines += chunk.count(b"\n")
    return max(lines - 1, 0)


# --------------------------------------------------------------------------- writing


class SpoolWriter:
    """The live session's spool file: created lazily, locked while it exists, appended durably."""

    def __init__(self, spool_dir: Path, target: str, workspace: str, session: str | None = None) -> None:
        self.session = session or uuid.uuid4().hex
        self.dir = Path(spool_dir)
        self.path = self.dir / f"{self.session}{SPOOL_SUFFIX}"
        self._target = target
        self._workspace = workspace
        self._fd: int | None = None
        self._has_file = False
        self._copies = 0

    @property
    def exists(self) -> bool:
        """True while this session's spool file exists (also after close(), until replayed)."""
        return self._has_file

    def append(self, ops: Sequence[Op]) -> list[tuple[Op, Exception]]:
        """Append ``ops`` and fsync.  Returns ops that could not be spooled (e.g. upload file gone).

        Raises OSError if the spool itself cannot be written (nothing of this batch is kept then).
        """
        if not ops:
            return []
        fd = self._open()
        lines: list[bytes] = []
        failed: list[tuple[Op, Exception]] = []
        for op in ops:
            try:
                lines.append(encode_op(op, self._stash(op.file) if op.file else None))
            except (OSError, ValueError, TypeError) as exc:
                failed.append((op, exc))
        if self._copies and any(op.file for op in ops):
            _fsync_dir(_files_dir(self.path))
        if lines:
            self._write(fd, b"".join(lines))
        return failed

    def cursor(self) -> SpoolCursor:
        """A reader over this session's file, starting where the last replay stopped."""
        return SpoolCursor(self.path)

    def delete(self) -> None:
        """Remove the file (all of it was replayed) and release the lock."""
        if self._has_file:
            remove_spool_file(self.path)
            self._has_file = False
        self.close()

    def close(self) -> None:
        """Release the lock; the file (if any) stays for ``cairn sync``."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        if self._fd is not None:
            return self._fd
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{self.session}{SPOOL_SUFFIX}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            header = {
                "version": SPOOL_VERSION,
                "target": self._target,
                "workspace": self._workspace,
                "created": int(time.time() * 1000),
                "session": self.session,
            }
            _write_all(fd, orjson.dumps(header) + b"\n")
            os.fsync(fd)
            os.replace(tmp, self.path)
            _fsync_dir(self.dir)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._fd = fd
        self._has_file = True
        return fd

    def _stash(self, source: str) -> str:
        """Copy an upload's file into the spool; return its path relative to the spool folder."""
        folder = _files_dir(self.path)
        folder.mkdir(exist_ok=True)
        self._copies += 1
        copy = folder / str(self._copies)
        shutil.copyfile(source, copy)
        _fsync_file(copy)
        return f"{folder.name}/{copy.name}"

    @staticmethod
    def _write(fd: int, data: bytes) -> None:
        end = os.lseek(fd, 0, os.SEEK_END)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, end)
            raise


# --------------------------------------------------------------------------- reading


class SpoolCursor:
    """Reads a spool file's ops in order from the recorded progress point on.

    Call :meth:`next` for an op and :meth:`commit` once it was handled (sent, or failed for
    good); progress is written to the sidecar every few commits and by :meth:`close`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = path.open("rb")
        try:
            self.header = _read_header(self._fh)
        except BaseException:
            self._fh.close()
            raise
        self.done = 0
        self.offset = self._fh.tell()
        saved = _load_progress(path)
        if saved is not None and saved[1] >= self.offset:
            self.done, self.offset = saved
        self._fh.seek(self.offset)
        self._saved = self.done
        self._pending = 0

    def next(self) -> Op | None:
        """The next op, or None at the end (a torn last line counts as the end)."""
        while True:
            line = self._fh.readline()
            if not line.endswith(b"\n"):
                self._fh.seek(self.offset)
                return None
            try:
                op = decode_op(line, self.path.parent)
            except ValueError as exc:
                logger.warning("cairn: skipping unreadable line in spool %s: %s", self.path, exc)
                self._pending = len(line)
                self.commit()
                continue
            self._pending = len(line)
            return op

    def commit(self) -> None:
        """Mark the op last returned by :meth:`next` as handled."""
        self.done += 1
        self.offset += self._pending
        self._pending = 0
        if self.done - self._saved >= _PROGRESS_EVERY:
            self.save()

    def save(self) -> None:
        """Record progress durably (no-op if nothing changed)."""
        if self.done != self._saved:
            _save_progress(self.path, self.done, self.offset)
            self._saved = self.done

    def close(self) -> None:
        try:
            self.save()
        finally:
            self._fh.close()


def replay_cursor(
    cursor: SpoolCursor,
    send: SendFn,
    on_error: ErrorFn,
    *,
    before_op: Callable[[], bool] | None = None,
    progress: ProgressFn | None = None,
    total: int = 0,
) -> tuple[int, bool]:
    """Send the cursor's ops in order.  Returns (ops sent, reached the end).

    RetryableError propagates with the failing op not committed.  A run batch refused for good is
    sent again part by part (see :func:`split_batch`); any other refused op, or part, is passed to
    ``on_error`` and skipped.  ``before_op`` returning False stops early.
    """
    sent = 0
    while True:
        if before_op is not None and not before_op():
            return sent, False
        op = cursor.next()
        if op is None:
            return sent, True
        if _send_or_split(op, send, on_error):
            sent += 1
        cursor.commit()
        if progress is not None:
            progress(cursor.done, total)


def _send_or_split(op: Op, send: SendFn, on_error: ErrorFn) -> bool:
    """Send ``op``, or its parts if it is a refused batch; True if anything of it was stored.
    RetryableError propagates (parts already sent are stored once when the op is sent again)."""
    try:
        send(op)
        return True
    except RetryableError:
        raise
    except Exception as exc:
        parts = split_batch(op)
        if not parts:
            on_error(op, exc)
            return False
    stored = False
    for part in parts:
        try:
            send(part)
            stored = True
        except RetryableError:
            raise
        except Exception as exc:
            on_error(part, exc)
    return stored


def _log_failure(op: Op, exc: Exception) -> None:
    logger.warning("cairn: dropping spooled %s %s: %s", op.method, op.path, exc)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[bool]:
    """Hold the spool lock on ``path``; yields False if the file vanished before we got it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise SpoolLockedError(f"{path} is in use by a running process") from exc
        yield _same_file(fd, path)
    finally:
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def replay_spool_file(
    path: Path,
    send: SendFn,
    progress: ProgressFn | None = None,
    *,
    on_error: ErrorFn | None = None,
) -> int:
    """Upload one spool file (``cairn sync``); returns the number of ops sent by this call.

    Raises SpoolLockedError if a live process holds the file, SpoolFormatError if it is not a
    spool file.  RetryableError propagates; the file and its progress are kept, so the next call
    resumes after the last op that went through.  A permanent error for one op is passed to
    ``on_error`` (default: logged) and the replay goes on.  When every op is handled, the file,
    its sidecar and its copied files are deleted.  ``progress(done, total)`` counts op lines.
    """
    path = Path(path)
    with _exclusive(path) as present:
        if not present:
            return 0
        total = _count_op_lines(path)
        cursor = SpoolCursor(path)
        try:
            sent, _ = replay_cursor(cursor, send, on_error or _log_failure, progress=progress, total=total)
        finally:
            cursor.close()
        remove_spool_file(path)
        return sent


# --------------------------------------------------------------------------- listing


@dataclass
class SpoolFile:
    """A spool file found on disk."""

    path: Path
    target: str
    workspace: str
    ops: int  # op lines in the file
    locked: bool = False  # held by a live process
    done: int = 0  # op lines already handled by an earlier, interrupted replay
    created: int = 0  # ms since the epoch

    @property
    def pending(self) -> int:
        return max(self.ops - self.done, 0)


def _is_locked(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops our shared lock
    return False


def _describe(path: Path) -> SpoolFile:
    with path.open("rb") as fh:
        header = _read_header(fh)
    saved = _load_progress(path)
    return SpoolFile(
        path=path,
        target=str(header.get("target", "")),
        workspace=str(header.get("workspace", "")),
        ops=_count_op_lines(path),
        locked=_is_locked(path),
        done=saved[0] if saved else 0,
        created=int(header.get("created") or 0),
    )


def list_spool(spool_dir: Path) -> list[SpoolFile]:
    """All spool files in ``spool_dir``, oldest first, including those locked by live processes."""
    folder = Path(spool_dir)
    if not folder.is_dir():
        return []
    found: list[SpoolFile] = []
    for path in folder.glob(f"*{SPOOL_SUFFIX}"):
        try:
            found.append(_describe(path))
        except FileNotFoundError:
            continue  # replayed and deleted while we looked
        except (OSError, SpoolFormatError) as exc:
            logger.warning("cairn: ignoring %s: %s", path, exc)
    found.sort(key=lambda f: (f.created, f.path.name))
    return found
