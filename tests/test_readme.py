"""The README's first-steps example runs as written in an empty folder, in embedded mode."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cairn

README = Path(__file__).resolve().parents[1] / "README.md"


def first_steps_code() -> str:
    section = README.read_text().split("## First steps", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, "README has no python block under 'First steps'"
    return found.group(1)


def test_first_steps_example_runs_in_an_empty_folder(sdk_env: Path, tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    env = {**os.environ, "CAIRN_HOME": str(sdk_env)}
    done = subprocess.run([sys.executable, "-c", first_steps_code()], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    [run] = cairn.Client().search_runs(experiment="mnist")
    assert run.status == "FINISHED" and run.name == "baseline"
    assert run.metrics["val_loss"].best_step == 6
    assert [f.path for f in cairn.Client().list_artifacts(run.id)] == ["notes.md"]
