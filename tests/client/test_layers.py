"""What the SDK and the integrations may load: the SDK no server framework and one HTTP stack, the
integrations only the public SDK."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import cairn

SRC = Path(cairn.__file__).parent
SERVER_FRAMEWORKS = ("fastapi", "starlette", "sqlalchemy", "uvicorn", "alembic")


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, at any depth (top level or inside a function), with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [(node.lineno, node.module)]
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names if node.module == "cairn"]
    return found


def test_importing_the_sdk_and_using_its_names_loads_no_server_framework_and_no_httpx() -> None:
    code = ("import sys, cairn\n"
            "for name in cairn.__all__: getattr(cairn, name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            f"{(*SERVER_FRAMEWORKS, 'httpx', 'httpcore')!r} or m.startswith('cairn.server')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_client_package_never_imports_the_server() -> None:
    offending = [f"{path.relative_to(SRC)}:{line} {module}"
                 for path in sorted((SRC / "client").rglob("*.py")) for line, module in _imports(path)
                 if module.split(".")[:2] in (["cairn", "server"], ["cairn", "_embedded"])
                 or module.split(".")[0] in (*SERVER_FRAMEWORKS, "httpx")]
    assert offending == []


def test_integrations_import_only_the_public_sdk() -> None:
    offending = []
    for path in sorted((SRC / "integrations").rglob("*.py")):
        for line, module in _imports(path):
            if module == "cairn" or module.startswith("cairn.integrations"):
                continue
            if module.startswith("cairn.") and not module.removeprefix("cairn.").isidentifier():
                offending.append(f"{path.relative_to(SRC)}:{line} {module}")  # a module of the package
            elif module.startswith("cairn.") and module.split(".")[1] not in cairn.__all__:
                offending.append(f"{path.relative_to(SRC)}:{line} {module}")
    assert offending == []
