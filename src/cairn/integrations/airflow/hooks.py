"""CairnHook: an Airflow connection of type ``cairn`` turned into a configured ``cairn.Client``.

The connection holds the server URL (host), an API token (password) and a workspace (the form's
Workspace field, stored in extra). The hook passes them to the client explicitly and never sets
CAIRN_* environment variables: a worker process may run tasks for several connections, and the SDK
keeps one connection pool per (server, workspace, token), so each task talks with its own identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow.sdk import BaseHook

import cairn


@dataclass(frozen=True)
class CairnTarget:
    """Where and as whom a connection talks to Cairn (what a trigger needs, without the SDK's client)."""

    url: str
    token: str | None
    workspace: str

    def headers(self) -> dict[str, str]:
        out = {"X-Cairn-Workspace": self.workspace}
        if self.token:
            out["Authorization"] = f"Bearer {self.token}"
        return out


def target_of(conn: Any) -> CairnTarget:
    """The server URL, token and workspace of an Airflow connection. ``host`` may be a full URL
    (``https://cairn.example.com``) or a bare host name, then with ``port`` and the ``scheme`` extra
    (https by default), which is what a URI-style ``AIRFLOW_CONN_...`` gives."""
    extra = dict(conn.extra_dejson or {})
    host = (conn.host or "").strip()
    if not host:
        raise ValueError(f"connection {conn.conn_id!r} has no host: set it to the Cairn server's URL")
    if "://" not in host:
        host = f"{extra.get('scheme') or 'https'}://{host}"
    if conn.port and host.count(":") < 2:
        host = f"{host}:{conn.port}"
    workspace = extra.get("workspace") or extra.get("extra__cairn__workspace") or "default"
    return CairnTarget(host.rstrip("/"), conn.password or None, str(workspace))


class CairnHook(BaseHook):
    """``CairnHook(cairn_conn_id="cairn_default").get_conn()`` is a ``cairn.Client`` for that connection."""

    conn_name_attr = "cairn_conn_id"
    default_conn_name = "cairn_default"
    conn_type = "cairn"
    hook_name = "Cairn"

    def __init__(self, cairn_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cairn_conn_id = cairn_conn_id
        self._target: CairnTarget | None = None

    def get_target(self) -> CairnTarget:
        if self._target is None:
            self._target = target_of(self.get_connection(self.cairn_conn_id))
        return self._target

    async def aget_target(self) -> CairnTarget:
        """The same as ``get_target``, for triggers: reading a connection must not block the event loop."""
        if self._target is None:
            self._target = target_of(await self.aget_connection(self.cairn_conn_id))
        return self._target

    def get_conn(self) -> cairn.Client:
        target = self.get_target()
        return cairn.Client(target.url, token=target.token, workspace=target.workspace)

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's "Test" button: the token is accepted and the workspace is visible to it."""
        try:
            client = self.get_conn()
            who = client.whoami()
            workspace = client.get_workspace(client.config.workspace)
        except (cairn.CairnError, ValueError) as exc:
            return False, str(exc)
        role = f" as {workspace.role}" if workspace.role else ""
        return True, f"connected to {client.config.tracking_uri} as {who['user']['name']}, workspace " \
                     f"{workspace.name!r}{role}"
