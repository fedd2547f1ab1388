"""Who is asking, and in which workspace: passed to every service call."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Context:
    workspace_id: int
    workspace: str
    actor: str
    client_addr: str = ""
