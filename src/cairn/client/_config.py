"""Configuration from the environment: CAIRN_TRACKING_URI, CAIRN_HOME, CAIRN_TOKEN, CAIRN_WORKSPACE, CAIRN_MODE."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Config:
    tracking_uri: str | None
    home: Path
    token: str | None
    workspace: str
    offline: bool
    retry_timeout: float

    @classmethod
    def from_env(cls, tracking_uri: str | None = None, token: str | None = None,
                 workspace: str | None = None) -> Config:
        env = os.environ
        mode = env.get("CAIRN_MODE", "online").lower()
        if mode not in ("online", "offline"):
            raise ValueError(f"CAIRN_MODE must be 'online' or 'offline', got {mode!r}")
        return cls(
            tracking_uri=tracking_uri or env.get("CAIRN_TRACKING_URI") or None,
            home=Path(env.get("CAIRN_HOME") or Path.home() / ".cairn").expanduser(),
            token=token or env.get("CAIRN_TOKEN") or None,
            workspace=workspace or env.get("CAIRN_WORKSPACE") or "default",
            offline=mode == "offline",
            retry_timeout=float(env.get("CAIRN_RETRY_TIMEOUT", "30")),
        )

    @property
    def target(self) -> str:
        return self.tracking_uri or f"embedded:{self.home}"
