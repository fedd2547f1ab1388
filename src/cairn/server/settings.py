"""Server settings from CAIRN_* environment variables and command-line flags."""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cairn.server.db.engine import sqlite_url
from cairn.server.services.accounts import LoginPolicy
from cairn.server.storage.blobs import private_dir

MIN_SECRET_KEY = 32
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class SettingsError(Exception):
    """A setting that makes starting the server unsafe or impossible; the message says what to do."""


def default_home() -> Path:
    return Path(os.environ.get("CAIRN_HOME") or Path.home() / ".cairn").expanduser()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class Settings:
    home: Path = field(default_factory=default_home)
    store_uri: str | None = None
    artifact_root: str | Path | None = None  # a folder, or s3://BUCKET/PREFIX
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 1
    max_request_bytes: int = 64 * 1024 * 1024  # a body read whole (JSON, a batch of small files)
    max_upload_bytes: int = 10 * 1024**3  # a body streamed to disk (an artifact file, a model bundle)
    max_unauthenticated_bytes: int = 64 * 1024  # with --auth: a body sent before the caller is known
    bundle_max_members: int = 10_000  # files in one imported model bundle
    default_workspace: str = "default"
    auth: bool = False
    insecure_no_auth: bool = False
    secret_key: str | None = None
    allowed_hosts: list[str] = field(default_factory=list)  # empty: loopback names and the bind host
    session_ttl_seconds: int = 12 * 3600
    login_policy: LoginPolicy = field(default_factory=LoginPolicy)
    secure_cookies: bool = False  # mark session cookies Secure even when TLS ends at a proxy in front
    embedded: bool = False  # the in-process app of the SDK: no network, no Host check
    metrics: bool = False  # serve Prometheus metrics at /metrics
    log_format: str = "text"  # or "json": one JSON object per log line
    # "fast" (opt-in, PostgreSQL): metric batches commit without waiting for the WAL flush, as SQLite's WAL
    # mode does; acknowledged points can be lost if the database host crashes within ~0.6 s of the commit.
    metric_commit: str = "durable"
    _hosts: tuple[Any, frozenset[str] | set[str]] | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        settings = cls(store_uri=env.get("CAIRN_STORE_URI") or None,
                       artifact_root=env.get("CAIRN_ARTIFACT_ROOT") or None)
        for name in ("max_request_bytes", "max_upload_bytes", "max_unauthenticated_bytes", "bundle_max_members"):
            if env.get(f"CAIRN_{name.upper()}"):
                setattr(settings, name, int(env[f"CAIRN_{name.upper()}"]))
        settings.auth = _flag(env.get("CAIRN_AUTH"))
        settings.secure_cookies = _flag(env.get("CAIRN_SECURE_COOKIES"))
        settings.secret_key = env.get("CAIRN_SECRET_KEY") or None
        if env.get("CAIRN_ALLOWED_HOSTS"):
            settings.allowed_hosts = [h.strip() for h in env["CAIRN_ALLOWED_HOSTS"].split(",") if h.strip()]
        if env.get("CAIRN_HOST"):
            settings.host = env["CAIRN_HOST"]
        if env.get("CAIRN_SESSION_TTL"):
            settings.session_ttl_seconds = int(env["CAIRN_SESSION_TTL"])
        settings.metrics = _flag(env.get("CAIRN_METRICS"))
        settings.log_format = env.get("CAIRN_LOG_FORMAT") or "text"
        settings.metric_commit = env.get("CAIRN_METRIC_COMMIT") or "durable"
        if settings.metric_commit not in ("durable", "fast"):
            raise SettingsError(f"CAIRN_METRIC_COMMIT must be 'durable' or 'fast', got {settings.metric_commit!r}")
        return settings

    @property
    def resolved_store_uri(self) -> str:
        return self.store_uri or sqlite_url(self.home / "cairn.db")

    @property
    def resolved_artifact_root(self) -> str:
        """A folder path, or an ``s3://`` URL."""
        return str(self.artifact_root or self.home / "artifacts")

    def host_allowed(self, host_header: str) -> bool:
        """DNS rebinding: a browser tricked into calling us sends the attacker's name as Host."""
        if self.embedded or "*" in self.allowed_hosts:
            return True
        name = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
        name = name.strip("[]").lower()
        key = (self.host, tuple(self.allowed_hosts))
        if self._hosts is None or self._hosts[0] != key:  # computed once: getfqdn() may ask DNS
            self._hosts = (key, self.default_hosts() | {h.lower() for h in self.allowed_hosts})
        return name in self._hosts[1]

    def default_hosts(self) -> set[str]:
        hosts = set(LOOPBACK_NAMES)
        if self.host not in ("0.0.0.0", "::", ""):  # noqa: S104 (comparing, not binding)
            hosts.add(self.host.lower())
        else:
            hosts.update({socket.gethostname().lower(), socket.getfqdn().lower()})
        return hosts

    def check_startup(self) -> None:
        """Refuse to serve others without authentication, or with authentication but no strong secret."""
        if not self.auth and not is_loopback(self.host) and not self.insecure_no_auth:
            raise SettingsError(
                f"refusing to listen on {self.host} without authentication: anyone who can reach it could change "
                "everything. Start with --auth (and create users with `cairn admin create-user`), or pass "
                "--insecure-no-auth if this network is trusted.")
        if self.auth:
            self.secret_key = self.secret_key or self._stored_secret()
            if len(self.secret_key) < MIN_SECRET_KEY:
                raise SettingsError(f"CAIRN_SECRET_KEY is too short: at least {MIN_SECRET_KEY} characters of "
                                    "random text (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)")

    def check_artifact_store(self) -> None:
        """Refuse to start on an artifact bucket that is missing or refuses the credentials: the message
        names the bucket and the store's error, where every upload would fail later with less to go on."""
        from cairn.server.storage.blobs import open_blob_store
        from cairn.server.storage.s3 import StorageError

        try:
            open_blob_store(self.resolved_artifact_root).check()
        except StorageError as exc:
            raise SettingsError(str(exc)) from exc
        except ImportError as exc:
            raise SettingsError(f"an s3:// artifact root needs boto3: pip install 'cairn-ml[s3]' ({exc})") from exc

    def _stored_secret(self) -> str:
        """The secret kept in the data folder, made on first start (readable by this user only)."""
        path = self.home / "secret_key"
        if not path.exists():
            private_dir(self.home)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
        if path.stat().st_mode & 0o077:
            raise SettingsError(f"{path} can be read by other users; run `chmod 600 {path}`")
        return path.read_text().strip()

    def to_env(self) -> dict[str, str]:
        """What worker processes need to rebuild these settings."""
        env = {"CAIRN_HOME": str(self.home), "CAIRN_STORE_URI": self.resolved_store_uri,
               "CAIRN_ARTIFACT_ROOT": self.resolved_artifact_root,
               "CAIRN_MAX_REQUEST_BYTES": str(self.max_request_bytes), "CAIRN_AUTH": "1" if self.auth else "0",
               "CAIRN_MAX_UPLOAD_BYTES": str(self.max_upload_bytes),
               "CAIRN_MAX_UNAUTHENTICATED_BYTES": str(self.max_unauthenticated_bytes),
               "CAIRN_BUNDLE_MAX_MEMBERS": str(self.bundle_max_members),
               "CAIRN_HOST": self.host, "CAIRN_SESSION_TTL": str(self.session_ttl_seconds),
               "CAIRN_SECURE_COOKIES": "1" if self.secure_cookies else "0",
               "CAIRN_METRICS": "1" if self.metrics else "0", "CAIRN_LOG_FORMAT": self.log_format}
        if self.secret_key:
            env["CAIRN_SECRET_KEY"] = self.secret_key
        if self.allowed_hosts:
            env["CAIRN_ALLOWED_HOSTS"] = ",".join(self.allowed_hosts)
        return env
