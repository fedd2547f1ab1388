"""The standing hostile-input suite, part 1: Schemathesis generates requests for every native operation in
/openapi.json, sent as a signed-in editor, a bounded number per operation. No answer may be a 5xx, and
every answer must match the schema its operation declares. SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from cairn.server.app import create_app
from cairn.server.authz import unrestricted
from cairn.server.services import accounts, experiments, workspaces
from cairn.server.services.context import Context
from cairn.server.settings import Settings
from tests.conftest import SECRET_KEY

EXAMPLES = int(os.environ.get("CAIRN_FUZZ_EXAMPLES", "3"))  # per operation and store; raise it to hunt


@pytest.fixture
def editor(settings: Settings) -> Iterator[tuple[Any, dict[str, str]]]:
    """An app in authentication mode with a workspace holding an experiment and a run, and the headers of
    an editor of that workspace."""
    settings.auth, settings.secret_key = True, SECRET_KEY
    app = create_app(settings)
    with app.state.db.session(write=True) as session:
        accounts.create_user(session, "setup", "ed", None, service=True)
        owner = accounts.get_user(session, "ed")
        identity = accounts.Identity(owner.id, "setup", True, "admin", "local")
        token = accounts.create_token(session, identity, "fuzz", "write", None, user="ed")[1]
        row = workspaces.create_workspace(session, "setup", "fuzz")
        ctx = Context(row.id, "fuzz", "setup", "", unrestricted("setup"))
        workspaces.add_member(session, ctx, "editor", user="ed")
        experiments.get_or_create_experiment(session, ctx, "e")
    yield app, {"Authorization": f"Bearer {token}", "X-Cairn-Workspace": "fuzz"}
    app.state.db.dispose()


# Bodies in formats of Cairn's own that Schemathesis cannot generate; tests/server/services/test_bundles.py and
# tests/server/api/test_artifacts.py send them hostile input by hand.
RAW_BODIES = {"POST /api/v1/runs/{run_id}/artifacts/batch", "POST /api/v1/models/{name}/versions/import"}


def _declares_json(operation: Any) -> bool:
    """Whether a success answer of the operation is JSON with a real schema (every native route declares one,
    tests/server/api/test_routes.py checks; the few answering bytes or nothing declare no JSON)."""
    for code, response in operation.definition.raw.get("responses", {}).items():
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if code.startswith("2") and schema not in (None, {}, {"type": "string"}):
            return True
    return False


NOT_JSON = {"GET /api/v1/runs/{run_id}/artifacts/content", "GET /api/v1/models/{name}/versions/{version}/files/content",
            "GET /api/v1/models/{name}/versions/{version}/export",
            "DELETE /api/v1/runs/{run_id}/artifacts/uploads/{upload_id}"}


def _fuzzer(operation: Any, headers: dict[str, str], checks: list[Any],
            answers: list[str]) -> Callable[[], None]:
    """A Hypothesis test of one operation: its generated requests, each answered and checked. Each failing
    answer is also kept in ``answers``: Hypothesis reports only its own error when a failure does not
    happen again on replay, and the answer is what says why."""

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case: Any) -> None:
        response = case.call(headers=headers)
        try:
            case.validate_response(response, checks=checks)
        except (Exception, BaseExceptionGroup):
            answers.append(f"{case.method} {case.formatted_path} -> {response.status_code} {response.text[:300]}")
            raise
    return fuzz  # type: ignore[no-any-return]


def test_native_operations_never_fail_on_hostile_input(editor: tuple[Any, dict[str, str]]) -> None:
    app, headers = editor
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).include(path_regex=r"^/api/v1/")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in RAW_BODIES:
            continue
        operations += 1
        declared = _declares_json(operation)
        if declared == (operation.label in NOT_JSON):
            failures.append(f"{operation.label}: {'declares' if declared else 'does not declare'} a JSON answer")
        checks = [not_a_server_error] + ([response_schema_conformance] if declared else [])

        answers: list[str] = []
        fuzz = _fuzzer(operation, headers, checks, answers)
        try:
            fuzz()
        except (Exception, BaseExceptionGroup) as exc:  # collected: one run reports every failing operation
            failures.append(f"{operation.label}: {str(exc)[:600]}\nfailing answers: {answers[:3]}")
    assert operations > 50  # the whole native API was walked
    assert not failures, "\n\n".join(failures)
