"""The benchmark must not rot: a quick ingest run on Cairn alone, through the real command line, with a
real server, and what it writes (table, JSON, markdown). Its figures are not checked against targets
here (CI machines are shared and noisy); that they exist and are sane is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_bench(*args: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", *args, "--out", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=False)


def test_quick_ingest_on_cairn_alone_prints_and_writes_the_table(tmp_path: Path) -> None:
    done = run_bench("--quick", "--only", "ingest,ceiling", "--systems", "cairn", out=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1. batched ingest" in done.stdout
    assert "SQLite alone" in done.stdout
    result = json.loads((tmp_path / "quick-sqlite.json").read_text())
    cairn = result["results"]["cairn"]
    assert cairn["ingest_pps"] > 1_000
    assert 5 < cairn["bytes_per_point"] < 1_000  # measured from the store file, so a broken measure shows
    assert 0 < cairn["idle_mb"] < cairn["after_mb"] * 2
    assert cairn["ceiling_pct"] == cairn["ingest_pps"] / result["results"]["database"]["raw_pps"] * 100
    assert result["failed"] == []
    assert result["versions"]["cairn"]
    markdown = (tmp_path / "quick-sqlite.md").read_text()
    assert "| 1. batched ingest | points/s |" in markdown


def test_unknown_workload_or_system_is_refused_by_name(tmp_path: Path) -> None:
    done = run_bench("--only", "ingest,teleport", "--systems", "cairn,wandb", out=tmp_path)
    assert done.returncode == 2
    assert "teleport" in done.stderr and "wandb" in done.stderr
    assert not (tmp_path / "full-sqlite.json").exists()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.s3
def test_scaleout_bench_runs_at_small_sizes(postgres_url: str) -> None:
    """bench/scaleout.py at tiny sizes: ingest with 1 and 2 server processes, a file presigned and proxied."""
    admin = postgres_url.rsplit("/", 1)[0] + "/postgres"
    done = subprocess.run([sys.executable, "-m", "bench.scaleout", "--postgres", admin, "--points", "8000",
                           "--clients", "2", "--artifact-mb", "4"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["ingest_1_processes"]["points_per_s"] > 100 and result["ingest_2_processes"]["points_per_s"] > 100
    for mode in ("proxied", "presigned"):
        assert result[f"artifact_{mode}"]["up_mb_s"] > 0 and result[f"artifact_{mode}"]["down_mb_s"] > 0
