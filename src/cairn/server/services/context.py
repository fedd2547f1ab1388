"""Who is asking, and in which workspace: passed to every service call."""

from __future__ import annotations

from dataclasses import dataclass, field

from cairn.server.authz import Guard, unrestricted


@dataclass(frozen=True)
class Context:
    workspace_id: int
    workspace: str
    actor: str
    client_addr: str = ""
    guard: Guard = field(default_factory=lambda: unrestricted("anonymous"))

    def authorize(self, resource_type: str, resource_id: int, needed: str | None = None) -> None:
        """Refuse unless the caller holds the call's role (and ``needed``) on this resource."""
        self.guard.authorize(resource_type, resource_id, needed)
