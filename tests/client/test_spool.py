"""Tests for the on-disk spool: format, durability rules, locking, resumable replay."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from cairn.client._spool import (
    Op,
    RetryableError,
    SpoolFormatError,
    SpoolLockedError,
    SpoolWriter,
    decode_op,
    encode_op,
    list_spool,
    replay_spool_file,
)


def make_op(i: int, run_id: str = "r1") -> Op:
    return Op("POST", f"/api/v1/runs/{run_id}/params", orjson.dumps({"i": i}), run_id=run_id)


class Recorder:
    """A send function that records ops; raises RetryableError on the Nth call if asked."""

    def __init__(self, fail_at: int | None = None, reject: set[int] | None = None) -> None:
        self.ops: list[Op] = []
        self.calls = 0
        self.fail_at = fail_at
        self.reject = reject or set()

    def __call__(self, op: Op) -> None:
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise RetryableError("503")
        if op.body is not None and orjson.loads(op.body).get("i") in self.reject:
            raise ValueError("422 invalid")
        self.ops.append(op)

    def numbers(self) -> list[int]:
        return [orjson.loads(op.body)["i"] for op in self.ops if op.body is not None]


def write_spool(tmp_path: Path, n: int) -> tuple[SpoolWriter, list[Op]]:
    writer = SpoolWriter(tmp_path, "http://cairn.test", "ml")
    ops = [make_op(i) for i in range(n)]
    assert writer.append(ops) == []
    writer.close()
    return writer, ops


def test_op_line_roundtrip_utf8_binary_and_params(tmp_path: Path) -> None:
    ops = [
        Op("POST", "/a", b'{"x": "\xc3\xa9"}', params=(("force", "1"), ("q", "a b")), run_id="r"),
        Op("PUT", "/b", b"\xff\x00\x01binary", file=None),
        Op("PATCH", "/c", None, idempotency_key="k" * 32),
    ]
    for op in ops:
        line = encode_op(op)
        assert line.endswith(b"\n")
        assert line.count(b"\n") == 1
        assert decode_op(line, tmp_path) == op
    assert b"body_b64" in encode_op(ops[1])


def test_op_gets_fresh_idempotency_key_by_default() -> None:
    a, b = Op("POST", "/x", None), Op("POST", "/x", None)
    assert len(a.idempotency_key) == 32
    assert a.idempotency_key != b.idempotency_key


def test_file_is_created_lazily_with_header_and_locked(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path / "spool", "http://cairn.test", "ml")
    assert not writer.exists
    assert not (tmp_path / "spool").exists()
    writer.append([make_op(0)])
    assert writer.exists
    assert writer.path.parent == tmp_path / "spool"
    header = orjson.loads(writer.path.read_bytes().splitlines()[0])
    assert header["version"] == 1
    assert header["target"] == "http://cairn.test"
    assert header["workspace"] == "ml"
    assert isinstance(header["created"], int)
    with writer.path.open("rb") as fh, pytest.raises(BlockingIOError):
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert [f.name for f in (tmp_path / "spool").iterdir()] == [writer.path.name]  # no temp file left
    writer.close()
    assert writer.exists  # the file stays for `cairn sync`


def test_upload_file_is_copied_at_spool_time(tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights-v1")
    writer = SpoolWriter(tmp_path / "spool", "t", "w")
    writer.append([Op("PUT", "/api/v1/runs/r/artifacts/model.bin", None, file=str(source), run_id="r")])
    source.write_bytes(b"changed")
    source.unlink()
    writer.close()
    seen: list[bytes] = []
    sent = replay_spool_file(writer.path, lambda op: seen.append(Path(op.file or "").read_bytes()))
    assert sent == 1
    assert seen == [b"weights-v1"]
    assert list((tmp_path / "spool").iterdir()) == []  # file, sidecar and .files folder gone


def test_missing_upload_file_is_reported_not_spooled(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path, "t", "w")
    gone = Op("PUT", "/up", None, file=str(tmp_path / "nope"))
    failed = writer.append([gone, make_op(1)])
    assert [op for op, _ in failed] == [gone]
    writer.close()
    rec = Recorder()
    assert replay_spool_file(writer.path, rec) == 1
    assert rec.numbers() == [1]


def test_replay_sends_in_order_and_deletes(tmp_path: Path) -> None:
    writer, ops = write_spool(tmp_path, 10)
    rec = Recorder()
    progress: list[tuple[int, int]] = []
    assert replay_spool_file(writer.path, rec, lambda d, t: progress.append((d, t))) == 10
    assert rec.ops == ops  # same idempotency keys, same order
    assert progress[-1] == (10, 10)
    assert len(progress) == 10
    assert not writer.path.exists()


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    writer, _ = write_spool(tmp_path, 3)
    with writer.path.open("ab") as fh:
        fh.write(encode_op(make_op(3))[:25])  # crash in the middle of a write
    [info] = list_spool(tmp_path)
    assert info.ops == 3
    rec = Recorder()
    assert replay_spool_file(writer.path, rec) == 3
    assert rec.numbers() == [0, 1, 2]


def test_garbage_line_in_the_middle_is_skipped(tmp_path: Path) -> None:
    writer, _ = write_spool(tmp_path, 2)
    with writer.path.open("ab") as fh:
        fh.write(b"{not json\n" + encode_op(make_op(2)))
    rec = Recorder()
    assert replay_spool_file(writer.path, rec) == 3
    assert rec.numbers() == [0, 1, 2]


def test_replay_resumes_after_retryable_error(tmp_path: Path) -> None:
    writer, ops = write_spool(tmp_path, 8)
    first = Recorder(fail_at=4)
    with pytest.raises(RetryableError):
        replay_spool_file(writer.path, first)
    assert first.numbers() == [0, 1, 2]
    assert writer.path.exists()
    sidecar = orjson.loads(writer.path.with_suffix(".done").read_bytes())
    assert sidecar["done"] == 3
    [info] = list_spool(tmp_path)
    assert (info.ops, info.done, info.pending) == (8, 3, 5)
    second = Recorder()
    assert replay_spool_file(writer.path, second) == 5
    assert second.numbers() == [3, 4, 5, 6, 7]
    assert first.ops + second.ops == ops
    assert not writer.path.exists()
    assert not writer.path.with_suffix(".done").exists()


CRASHING_SYNC = """
import os, sys
from pathlib import Path
from cairn.client._spool import replay_spool_file
calls = 0
def send(op):
    global calls
    calls += 1
    if calls == 150:
        os._exit(3)  # hard kill: no cleanup, only what was recorded on the way
replay_spool_file(Path(sys.argv[1]), send)
"""


def test_replay_resumes_from_sidecar_after_a_hard_kill(tmp_path: Path) -> None:
    writer, _ = write_spool(tmp_path, 200)
    child = subprocess.run([sys.executable, "-c", CRASHING_SYNC, str(writer.path)], check=False)
    assert child.returncode == 3
    rec = Recorder()
    sent = replay_spool_file(writer.path, rec)
    # progress is recorded every 64 ops: 128 were recorded, ops 128..148 are sent a second time
    assert sent == 200 - 128
    assert rec.numbers() == list(range(128, 200))


def test_lock_prevents_concurrent_replay(tmp_path: Path) -> None:
    live = SpoolWriter(tmp_path, "t", "w")
    live.append([make_op(0)])
    [info] = list_spool(tmp_path)
    assert info.locked
    with pytest.raises(SpoolLockedError):
        replay_spool_file(live.path, Recorder())
    assert live.path.exists()
    live.close()
    [info] = list_spool(tmp_path)
    assert not info.locked
    assert replay_spool_file(live.path, Recorder()) == 1


def test_replay_of_file_deleted_by_its_owner_sends_nothing(tmp_path: Path) -> None:
    writer, _ = write_spool(tmp_path, 2)
    os.unlink(writer.path)
    assert replay_spool_file(writer.path, Recorder()) == 0


def test_permanent_error_is_reported_and_replay_goes_on(tmp_path: Path) -> None:
    writer, _ = write_spool(tmp_path, 5)
    rec = Recorder(reject={1, 3})
    failures: list[tuple[Op, Exception]] = []
    assert replay_spool_file(writer.path, rec, on_error=lambda op, exc: failures.append((op, exc))) == 3
    assert rec.numbers() == [0, 2, 4]
    assert [orjson.loads(op.body or b"")["i"] for op, _ in failures] == [1, 3]
    assert all(isinstance(exc, ValueError) for _, exc in failures)
    assert not writer.path.exists()


def test_list_spool_describes_files_and_skips_others(tmp_path: Path) -> None:
    assert list_spool(tmp_path / "missing") == []
    a, _ = write_spool(tmp_path, 2)
    b = SpoolWriter(tmp_path, "http://other", "nlp")
    b.append([make_op(0), make_op(1), make_op(2)])
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "bad.jsonl").write_text('{"version": 99}\n')
    found = {f.path: f for f in list_spool(tmp_path)}
    assert set(found) == {a.path, b.path}
    assert (found[a.path].ops, found[a.path].locked, found[a.path].target) == (2, False, "http://cairn.test")
    assert (found[b.path].ops, found[b.path].locked, found[b.path].workspace) == (3, True, "nlp")
    b.close()


def test_not_a_spool_file_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "x.jsonl"
    bogus.write_text('{"hello": 1}\n')
    with pytest.raises(SpoolFormatError):
        replay_spool_file(bogus, Recorder())
    assert bogus.exists()


def test_delete_removes_everything_and_file_can_come_back(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path, "t", "w")
    writer.append([make_op(0)])
    writer.delete()
    assert not writer.exists
    assert list(tmp_path.iterdir()) == []
    writer.append([make_op(1)])
    assert writer.exists
    writer.close()
    rec = Recorder()
    assert replay_spool_file(writer.path, rec) == 1
    assert rec.numbers() == [1]
