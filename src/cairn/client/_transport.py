"""The one place the SDK touches the network (or, in embedded mode, the in-process server).

A Transport sends requests with the caller's workspace and token, and turns error answers into the
exceptions of ``_errors``. Any ``httpx.BaseTransport`` can stand behind it, so tests use a mock one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import orjson

from cairn import __version__
from cairn.client._errors import TransportError, error_for

WORKSPACE_HEADER = "X-Cairn-Workspace"
EmbeddedFactory = Callable[[str], httpx.BaseTransport]
_embedded_factory: EmbeddedFactory | None = None


def set_embedded_factory(factory: EmbeddedFactory) -> None:
    """Called by ``cairn`` at import: how to reach the local store when no server is configured."""
    global _embedded_factory
    _embedded_factory = factory


class Transport:
    def __init__(self, base_url: str, *, workspace: str, token: str | None = None,
                 transport: httpx.BaseTransport | None = None, timeout: float = 60.0) -> None:
        headers = {"User-Agent": f"cairn-python/{__version__}", WORKSPACE_HEADER: workspace}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.base_url = base_url
        self.workspace = workspace
        self._http = httpx.Client(base_url=base_url, headers=headers, transport=transport,
                                  timeout=httpx.Timeout(timeout, connect=5.0))

    def request(self, method: str, path: str, *, json: Any = None, content: bytes | Iterable[bytes] | None = None,
                params: Any = None, headers: dict[str, str] | None = None) -> Any:
        """Send; return the decoded JSON answer (or None); raise an APIError or TransportError."""
        response = self._send(method, path, json=json, content=content, params=params, headers=headers)
        if not response.content:
            return None
        return orjson.loads(response.content)

    def _send(self, method: str, path: str, *, json: Any = None, content: Any = None, params: Any = None,
              headers: dict[str, str] | None = None) -> httpx.Response:
        all_headers = dict(headers or {})
        if json is not None:
            content = orjson.dumps(json)
            all_headers["Content-Type"] = "application/json"
        try:
            response = self._http.request(method, path, content=content, params=params, headers=all_headers)
        except httpx.TransportError as exc:
            raise TransportError(f"{method} {self.base_url}{path}: {exc or type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise error_for(response.status_code, _decode(response))
        return response

    def stream(self, path: str, params: Any = None) -> Iterator[tuple[httpx.Response, Iterator[bytes]]]:
        """GET a body as chunks (downloads)."""
        try:
            with self._http.stream("GET", path, params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_for(response.status_code, _decode(response))
                yield response, response.iter_bytes(1024 * 1024)
        except httpx.TransportError as exc:
            raise TransportError(f"GET {self.base_url}{path}: {exc or type(exc).__name__}") from exc

    def close(self) -> None:
        self._http.close()


def _decode(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:500]


def open_transport(tracking_uri: str | None, home: str, workspace: str, token: str | None) -> Transport:
    """A transport for ``tracking_uri``: an http(s) server, or (unset) the embedded store under ``home``."""
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        return Transport(tracking_uri.rstrip("/"), workspace=workspace, token=token)
    if tracking_uri:
        raise ValueError(f"CAIRN_TRACKING_URI must be an http:// or https:// URL, got {tracking_uri!r} "
                         "(leave it unset to use the embedded store under CAIRN_HOME)")
    if _embedded_factory is None:
        raise RuntimeError("the embedded store is not available: import cairn, not cairn.client")
    return Transport("http://embedded", workspace=workspace, token=token, transport=_embedded_factory(home))
