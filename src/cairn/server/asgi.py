"""ASGI middleware that acts on HTTP requests only (lifespan and websocket messages pass through untouched)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HttpMiddleware:
    """Passes anything but HTTP straight on; a subclass says what it does to a request in ``handle``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def on_response_start(send: Send, change: Callable[[Message], Message]) -> Send:
    """``send``, with the response's start message (status and headers) passed through ``change`` first."""
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = change(message)
        await send(message)
    return sending
