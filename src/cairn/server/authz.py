"""The permission table: every route names the action it needs; the service layer is handed the caller.

Until accounts arrive, every caller is anonymous and allowed; routes still declare their action so
the route-inventory test can prove that nothing is reachable without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request

ACTIONS = {
    "experiment.read", "experiment.write", "run.read", "run.write", "artifact.read", "artifact.write",
    "registry.read", "registry.manage", "model.read", "model.write", "model.manage",
}
PUBLIC_PATHS = {"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
WORKSPACE_HEADER = "X-Cairn-Workspace"


@dataclass(frozen=True)
class Access:
    action: str
    workspace: str
    actor: str
    client_addr: str


def requires(action: str) -> Any:
    """A route dependency declaring ``action``; gives the route the caller's Access."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")

    def access(request: Request) -> Access:
        workspace = request.headers.get(WORKSPACE_HEADER) or request.app.state.settings.default_workspace
        client = request.client.host if request.client else ""
        return Access(action, workspace, "anonymous", client)

    access.cairn_action = action  # type: ignore[attr-defined]
    return Depends(access)
