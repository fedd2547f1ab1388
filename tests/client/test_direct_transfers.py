"""The SDK against a server whose artifacts live in a bucket (moto_server): a large file goes straight to
the bucket and comes straight back, and the server process itself handles only a sliver of the bytes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import cairn
from tests.conftest import LiveServer

pytestmark = [pytest.mark.slow, pytest.mark.s3,
              pytest.mark.parametrize(("store_uri", "artifact_root"), [("sqlite", "s3")], indirect=True)]
MB = 1024 * 1024


def io_counts(pid: int) -> tuple[int, int]:
    """Bytes the process has read and written through system calls (files, sockets, pipes)."""
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["rchar"]), int(fields["wchar"])


def big_file(path: Path, size: int) -> str:
    hasher = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(size // (8 * MB)):
            chunk = os.urandom(8 * MB)
            hasher.update(chunk)
            out.write(chunk)
    return "sha256:" + hasher.hexdigest()


def test_a_200_mb_upload_and_download_bypass_the_server(sdk_env: Path, live_server: LiveServer,
                                                        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CAIRN_TRACKING_URI", live_server.url)
    client = cairn.Client()
    run = client.create_run("direct")
    source = tmp_path / "weights.pt"
    expected = big_file(source, 200 * MB)
    assert live_server.process is not None
    pid = live_server.process.pid
    read_before, written_before = io_counts(pid)
    version = client.upload_artifact(run.id, source, "model/weights.pt")
    read_after, _ = io_counts(pid)
    assert version.digest == expected and version.size == 200 * MB
    assert read_after - read_before < 10 * MB, f"the server read {(read_after - read_before) / MB:.1f} MB"
    local = Path(client.download_artifact(run.id, "model/weights.pt", tmp_path / "out"))
    _, written_after = io_counts(pid)
    assert written_after - written_before < 10 * MB, f"the server wrote {(written_after - written_before) / MB:.1f} MB"
    with local.open("rb") as handle:
        assert "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest() == expected
    assert [v.version for v in client.list_artifact_versions(run.id, "model/weights.pt")] == [1]
