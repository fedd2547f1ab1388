"""The layers hold at run time too: each import, in a fresh interpreter, loads only its own side."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SERVER_FRAMEWORKS = ("fastapi", "starlette", "sqlalchemy", "alembic", "uvicorn")


def _modules_after(statement: str) -> list[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return list(json.loads(done.stdout))


def test_the_server_loads_no_sdk_module() -> None:
    loaded = _modules_after("import cairn.server.app")
    assert "cairn.server.app" in loaded
    assert [m for m in loaded if m.startswith(("cairn.client", "cairn.integrations", "cairn.cli"))] == []
    assert "cairn._embedded" not in loaded


@pytest.mark.parametrize("statement", ["import cairn", "from cairn import Client, start_run"])
def test_the_sdk_loads_no_server_framework(statement: str) -> None:
    loaded = _modules_after(statement)
    assert [m for m in loaded if m.startswith("cairn.server")] == []
    assert [m for m in loaded if m.split(".")[0] in SERVER_FRAMEWORKS] == []


def test_the_shared_answer_shapes_load_neither_side() -> None:
    """cairn._wire is imported by both the server and the SDK, so it may bring in neither, nor their libraries."""
    loaded = _modules_after("import cairn._wire")
    assert [m for m in loaded if m.startswith("cairn.") and m != "cairn._wire"] == []
    assert [m for m in loaded if m.split(".")[0] in (*SERVER_FRAMEWORKS, "pydantic", "httpx", "orjson")] == []
