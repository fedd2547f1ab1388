"""Embedded mode: the SDK reaches an in-process server over an httpx transport, with no socket.

This module is the only bridge between ``cairn.client`` and ``cairn.server``; each stays unaware of
the other. The same routes, validation and transactions serve embedded and remote users.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import httpx

_lock = threading.Lock()
_bridges: dict[str, ASGIBridge] = {}
_inherited: list[Any] = []


def _after_fork_in_child() -> None:
    """A forked child (multiprocessing's workers) inherits the bridges without their event-loop threads:
    a request would wait forever. It makes its own server (and store connections) on first use. The
    inherited ones are kept, never used nor collected: closing an inherited SQLite connection would drop
    the POSIX locks that the child's own connection holds on the same file."""
    global _lock
    _lock = threading.Lock()
    _inherited.extend(_bridges.values())
    _bridges.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class ASGIBridge(httpx.BaseTransport):
    """A synchronous httpx transport that runs an ASGI app on a private event-loop thread."""

    def __init__(self, app: Any) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cairn-embedded", daemon=True)
        self._thread.start()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        future = asyncio.run_coroutine_threadsafe(self._handle(request, body), self._loop)
        return future.result()

    async def _handle(self, request: httpx.Request, body: bytes) -> httpx.Response:
        inner = httpx.Request(request.method, request.url, headers=request.headers, content=body)
        response = await self._inner.handle_async_request(inner)
        content = await response.aread()
        return httpx.Response(response.status_code, headers=response.headers, content=content)


def make_transport(home: str) -> httpx.BaseTransport:
    """One in-process server per data folder, shared by every client of this process."""
    key = str(Path(home).expanduser().resolve())
    with _lock:
        if key not in _bridges:
            from cairn.server.app import create_app
            from cairn.server.settings import Settings

            _bridges[key] = ASGIBridge(create_app(Settings(home=Path(key), embedded=True)))
        return _bridges[key]
