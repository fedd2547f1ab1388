"""Embedded mode: the SDK reaches an in-process server with no socket, by calling its ASGI app.

This module is the only bridge between ``cairn.client`` and ``cairn.server``; each stays unaware of
the other. The same routes, validation and transactions serve embedded and remote users.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote

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


class ASGIBridge:
    """Runs an ASGI app on a private event-loop thread and answers requests from any thread: the SDK's
    in-process ``Handler``, and (``handle_request``) a transport for httpx clients in tests."""

    def __init__(self, app: Any, *, client: tuple[str, int] = ("127.0.0.1", 123)) -> None:
        self._app = app
        self._client = client  # the peer address the app sees (tests stand in for other addresses)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cairn-embedded", daemon=True)
        self._thread.start()

    def __call__(self, method: str, target: str, headers: dict[str, str], body: bytes,
                 ) -> tuple[int, dict[str, str], bytes]:
        pairs = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        if "host" not in headers and "Host" not in headers:
            pairs.append((b"host", b"embedded"))
        if body:
            pairs.append((b"content-length", str(len(body)).encode("ascii")))
        status, answer, data = self._call(method, target, pairs, body, ("http", "embedded", 80))
        return status, {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in answer}, data

    def handle_request(self, request: Any) -> Any:
        """httpx's transport interface (``httpx.Client(transport=ASGIBridge(app))``), for tests."""
        import httpx

        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        headers = [(name.lower(), value) for name, value in request.headers.raw]  # ASGI wants lower-case names
        status, answer, body = self._call(request.method, url.raw_path.decode("ascii"), headers, request.read(),
                                          (url.scheme, url.host, port))
        return httpx.Response(status, headers=answer, content=body)

    def _call(self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes,
              server: tuple[str, str, int]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        call = self._handle(method, target, headers, body, server)
        return asyncio.run_coroutine_threadsafe(call, self._loop).result()

    async def _handle(self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes,
                      server: tuple[str, str, int]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        path, _, query = target.partition("?")
        scheme, host, port = server
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "scheme": scheme, "path": unquote(path), "raw_path": path.encode("ascii"),
                 "query_string": query.encode("ascii"), "root_path": "", "client": self._client,
                 "server": (host, port), "extensions": {}, "headers": headers}
        answer: dict[str, Any] = {"status": 500, "headers": [], "body": bytearray()}
        done = asyncio.Event()
        received = False

        async def receive() -> dict[str, Any]:
            nonlocal received
            if not received:
                received = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"], answer["headers"] = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")
                if not message.get("more_body", False):
                    done.set()

        try:
            await self._app(scope, receive, send)
        finally:
            done.set()
        return answer["status"], answer["headers"], bytes(answer["body"])

    def close(self) -> None:
        """Nothing to free: the loop thread serves every client of this app until the process ends."""

    def __enter__(self) -> ASGIBridge:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def make_transport(home: str) -> ASGIBridge:
    """One in-process server per data folder, shared by every client of this process."""
    key = str(Path(home).expanduser().resolve())
    with _lock:
        if key not in _bridges:
            from cairn.server.app import create_app
            from cairn.server.settings import Settings

            _bridges[key] = ASGIBridge(create_app(Settings(home=Path(key), embedded=True)))
        return _bridges[key]
