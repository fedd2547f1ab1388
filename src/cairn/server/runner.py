"""Start the HTTP server: migrate once, then serve with one or more uvicorn worker processes."""

from __future__ import annotations

import os
import shutil
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from cairn.server.db.engine import Database
from cairn.server.observability import log_config
from cairn.server.settings import Settings


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    """Sets TCP_NODELAY on every accepted connection. Worker processes that inherit the listening
    socket can lose it, and then each small answer on a kept-alive connection waits ~40 ms for
    Nagle's algorithm and delayed ACKs."""

    def connection_made(self, transport: Any) -> None:
        set_nodelay(transport.get_extra_info("socket"))
        super().connection_made(transport)


def set_nodelay(sock: Any) -> None:
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


SHUTDOWN_SECONDS = 30  # on SIGTERM: stop accepting, let requests in flight finish for up to this long


def serve(settings: Settings) -> None:
    database = Database(settings.resolved_store_uri, fast_metric_commit=settings.metric_commit == "fast")
    database.upgrade()
    database.dispose()
    shutil.rmtree(settings.home / "metrics", ignore_errors=True)  # counters of a previous run's workers
    os.environ.update(settings.to_env())
    uvicorn.run("cairn.server.app:app_from_env", factory=True, host=settings.host, port=settings.port,
                workers=settings.workers, http=NoDelayHttpToolsProtocol, log_level="warning",
                log_config=log_config(json_lines=settings.log_format == "json"),
                access_log=False, timeout_keep_alive=75, timeout_graceful_shutdown=SHUTDOWN_SECONDS)
