"""Server settings from CAIRN_* environment variables and command-line flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cairn.server.db.engine import sqlite_url


def default_home() -> Path:
    return Path(os.environ.get("CAIRN_HOME") or Path.home() / ".cairn").expanduser()


@dataclass
class Settings:
    home: Path = field(default_factory=default_home)
    store_uri: str | None = None
    artifact_root: Path | None = None
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 1
    max_request_bytes: int = 64 * 1024 * 1024
    default_workspace: str = "default"

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        settings = cls(store_uri=env.get("CAIRN_STORE_URI") or None,
                       artifact_root=Path(env["CAIRN_ARTIFACT_ROOT"]) if env.get("CAIRN_ARTIFACT_ROOT") else None)
        if env.get("CAIRN_MAX_REQUEST_BYTES"):
            settings.max_request_bytes = int(env["CAIRN_MAX_REQUEST_BYTES"])
        return settings

    @property
    def resolved_store_uri(self) -> str:
        return self.store_uri or sqlite_url(self.home / "cairn.db")

    @property
    def resolved_artifact_root(self) -> Path:
        return self.artifact_root or self.home / "artifacts"

    def to_env(self) -> dict[str, str]:
        """What worker processes need to rebuild these settings."""
        return {"CAIRN_HOME": str(self.home), "CAIRN_STORE_URI": self.resolved_store_uri,
                "CAIRN_ARTIFACT_ROOT": str(self.resolved_artifact_root),
                "CAIRN_MAX_REQUEST_BYTES": str(self.max_request_bytes)}
