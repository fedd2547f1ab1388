"""Artifact files through the SDK against a real server (SQLite and PostgreSQL): single files up and down
on the direct connection, folders several files at a time, and failures that name the file."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cairn
from cairn.client._errors import CairnError, ConflictError, NotFoundError
from tests.conftest import ARTIFACT_STORES, LiveServer, write_blob

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("artifact_root", ARTIFACT_STORES, indirect=True)]


@pytest.fixture
def client(sdk_env: Path, live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> cairn.Client:
    monkeypatch.setenv("CAIRN_TRACKING_URI", live_server.url)
    return cairn.Client()


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _make_folder(root: Path, count: int) -> dict[str, bytes]:
    files = {f"part{i % 3}/f{i:03d}.bin": os.urandom(100 + i) for i in range(count)}
    files["top.txt"] = b"top"
    files["empty.bin"] = b""
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def test_big_file_round_trip_keeps_every_byte(client: cairn.Client, tmp_path: Path) -> None:
    run = client.create_run("art")
    source = tmp_path / "big.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)  # past the server's small-body size and the SDK's read size
    source.write_bytes(data)
    version = client.upload_artifact(run.id, source, "models/big.bin")
    assert (version.version, version.size) == (1, len(data))
    assert version.digest == f"sha256:{hashlib.sha256(data).hexdigest()}"
    local = Path(client.download_artifact(run.id, "models/big.bin", tmp_path / "down"))
    assert local.read_bytes() == data
    assert client.upload_artifact(run.id, source, "models/big.bin").version == 2


def test_folder_upload_stores_every_file_with_its_layout(client: cairn.Client, tmp_path: Path) -> None:
    run = client.create_run("art")
    files = _make_folder(tmp_path / "src", 40)
    versions = client.upload_artifacts(run.id, tmp_path / "src", "data")
    assert [v.path for v in versions] == sorted(f"data/{name}" for name in files)
    assert all(v.version == 1 for v in versions)
    by_path = {a.path: a for a in client.list_artifacts(run.id, "data/part1")}
    assert by_path["data/part1/f001.bin"].size == 101
    local = Path(client.download_artifact(run.id, "data", tmp_path / "out"))
    assert local == tmp_path / "out" / "data"
    assert _tree(local) == files
    again = client.upload_artifacts(run.id, tmp_path / "src", "data")
    assert {v.version for v in again} == {2}


def test_run_log_artifacts_uploads_a_folder(client: cairn.Client, tmp_path: Path) -> None:
    files = _make_folder(tmp_path / "src", 12)
    with cairn.start_run(experiment="art", capture_source=False) as run:
        run.log_artifacts(tmp_path / "src")
    local = Path(client.download_artifact(run.id, "part0", tmp_path / "out"))
    assert _tree(local) == {k.partition("/")[2]: v for k, v in files.items() if k.startswith("part0/")}


def test_a_refused_file_is_named_and_the_error_keeps_its_kind(client: cairn.Client, tmp_path: Path) -> None:
    run = client.create_run("art")
    _make_folder(tmp_path / "src", 8)
    client.upload_artifact(run.id, tmp_path / "src" / "top.txt", "data/part2/f002.bin/inner")  # now a folder
    with pytest.raises(ConflictError, match=r"part2/f002\.bin") as caught:
        client.upload_artifacts(run.id, tmp_path / "src", "data")
    assert caught.value.status == 409
    assert "directory" in caught.value.message


def test_folder_upload_to_a_missing_run_fails_naming_a_file(client: cairn.Client, tmp_path: Path) -> None:
    _make_folder(tmp_path / "src", 6)
    with pytest.raises(NotFoundError, match=r"empty\.bin"):
        client.upload_artifacts("0" * 32, tmp_path / "src")


def test_folder_upload_of_a_missing_folder_is_refused(client: cairn.Client, tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        client.upload_artifacts(client.create_run("art").id, tmp_path / "nope")


def test_download_of_a_missing_artifact_is_not_found(client: cairn.Client, tmp_path: Path) -> None:
    run = client.create_run("art")
    with pytest.raises(NotFoundError):
        client.download_artifact(run.id, "nope.bin", tmp_path / "out")
    assert not any((tmp_path / "out").glob("*"))  # no temp file left


def test_a_corrupted_download_is_refused(client: cairn.Client, artifact_root: str, tmp_path: Path) -> None:
    run = client.create_run("art")
    (tmp_path / "a.bin").write_bytes(b"original bytes")
    version = client.upload_artifact(run.id, tmp_path / "a.bin", "a.bin")
    write_blob(artifact_root, version.digest, b"tampered bytes")
    with pytest.raises(CairnError, match="does not match its digest"):
        client.download_artifact(run.id, "a.bin", tmp_path / "out")
    assert not (tmp_path / "out" / "a.bin").exists()


def test_folder_upload_in_many_requests_at_once(client: cairn.Client, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cairn.client._client.BATCH_FILES", 4)  # 42 files: batches of 4 and single files
    monkeypatch.setattr("cairn.client._client.BATCH_FILE_BYTES", 120)
    run = client.create_run("art")
    files = _make_folder(tmp_path / "src", 40)
    versions = client.upload_artifacts(run.id, tmp_path / "src")
    assert [v.path for v in versions] == sorted(files)
    assert _tree(Path(client.download_artifact(run.id, "part2", tmp_path / "out"))) == {
        k.partition("/")[2]: v for k, v in files.items() if k.startswith("part2/")}


def test_a_failed_request_stops_the_rest_and_names_its_files(client: cairn.Client, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cairn.client._client.BATCH_FILES", 2)
    monkeypatch.setattr("cairn.client._client.FILE_THREADS", 2)
    run = client.create_run("art")
    _make_folder(tmp_path / "src", 30)
    client.upload_artifact(run.id, tmp_path / "src" / "top.txt", "part0/f000.bin/inner")  # the first batch fails
    with pytest.raises(ConflictError, match=r"uploading 2 files \('empty\.bin' to 'part0/f000\.bin'\).*f000"):
        client.upload_artifacts(run.id, tmp_path / "src")
    stored = {a.path for a in client.list_artifacts(run.id)}
    assert "empty.bin" not in stored  # its batch failed as a whole
    assert len(client.list_artifacts(run.id, "part2")) < 10  # the requests not yet started were not sent


def test_offline_folder_upload_is_staged_and_synced(client: cairn.Client, tmp_path: Path) -> None:
    files = _make_folder(tmp_path / "src", 10)
    script = tmp_path / "train.py"
    script.write_text("import sys, cairn\n"
                      "with cairn.start_run(experiment='away', capture_source=False) as run:\n"
                      "    run.log_artifacts(sys.argv[1], 'data')\n"
                      "print(run.id)\n")
    offline = {**os.environ, "CAIRN_MODE": "offline"}
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "src")], env=offline, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip().splitlines()[-1]
    synced = subprocess.run([sys.executable, "-m", "cairn", "sync"], env={**os.environ}, capture_output=True,
                            text=True, timeout=120, check=False)
    assert synced.returncode == 0, synced.stderr
    assert _tree(Path(client.download_artifact(run_id, "data", tmp_path / "out"))) == files
