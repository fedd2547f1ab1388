"""``cairn sync``: upload spooled writes to the server each spool file names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cairn.client._config import Config
from cairn.client._run import make_send
from cairn.client._spool import Op, SpoolLockedError, list_spool, replay_spool_file
from cairn.client._transport import open_transport


def _config_for(target: str, workspace: str) -> Config:
    base = Config.from_env(workspace=workspace)
    if target.startswith("embedded:"):
        return Config(None, Path(target.removeprefix("embedded:")), base.token, workspace, offline=False,
                      retry_timeout=30.0)
    return Config(target, base.home, base.token, workspace, offline=False, retry_timeout=30.0)


def sync_spool(*, dry_run: bool = False, echo: Callable[[str], None] = print) -> int:
    """Replay every spool file under CAIRN_HOME/spool; returns the number of ops sent."""
    home = Config.from_env().home
    files = list_spool(home / "spool")
    if not files:
        echo("nothing to sync")
        return 0
    sent = 0
    refused: list[str] = []

    def on_error(op: Op, exc: Exception) -> None:  # refused for good: say which write and why
        refused.append(f"{op.method} {op.path}")
        echo(f"  refused, dropped: {op.method} {op.path}: {exc}")

    for spool in files:
        echo(f"{spool.path.name}: {spool.ops - spool.done} writes for {spool.target} (workspace {spool.workspace})"
             + ("  [held by a running process, skipped]" if spool.locked else ""))
        if dry_run or spool.locked:
            continue
        config = _config_for(spool.target, spool.workspace)
        transport = open_transport(config.tracking_uri, str(config.home), config.workspace, config.token)
        try:
            sent += replay_spool_file(spool.path, make_send(transport), on_error=on_error,
                                      progress=lambda done, total: echo(f"  {done}/{total}") if done == total else None)
        except SpoolLockedError:
            echo("  skipped: a running process holds it")
        finally:
            transport.close()
    echo(f"synced {sent} writes" + (f", {len(refused)} refused by the server (see above)" if refused else ""))
    return sent
