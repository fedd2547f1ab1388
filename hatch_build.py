"""Builds the web UI (ui/, with npm) into src/cairn/server/static when the Python package is built or
installed, so `pip install .` gives a working UI. Without npm the package still installs: the server
then says at / how to build the UI. Set CAIRN_SKIP_UI_BUILD=1 to skip it on purpose."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class UIBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        ui = Path(self.root) / "ui"
        if os.environ.get("CAIRN_SKIP_UI_BUILD") or not (ui / "package.json").exists():
            return
        npm = shutil.which("npm")
        if npm is None:
            print("cairn: npm not found; the web UI is not built (the API works without it)", file=sys.stderr)
            return
        lock = ui / "package-lock.json"
        stamp = ui / "node_modules" / ".cairn-lock"
        if not stamp.exists() or stamp.read_bytes() != lock.read_bytes():
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=ui, check=True)
            stamp.write_bytes(lock.read_bytes())
        subprocess.run([npm, "run", "build"], cwd=ui, check=True)
