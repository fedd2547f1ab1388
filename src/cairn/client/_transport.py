"""The one place the SDK reaches the server: over HTTP (``_http``), or in embedded mode in-process.

A Transport sends requests with the caller's workspace and token, and turns error answers into the
exceptions of ``_errors``. Behind it is either a ``_http.Pool`` (a server) or a ``Handler``: a function
that answers a request in-process (the embedded server, or a test's fake one); both take the same request
target and give the same answer, so everything above them has one path.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlencode, urlsplit

import orjson

from cairn import __version__
from cairn.client._errors import TransportError, error_for
from cairn.client._http import Answer, Body, FileBody, Pool, Write

WORKSPACE_HEADER = "X-Cairn-Workspace"
_REDIRECTS = (302, 303, 307)


class Handler(Protocol):
    """Answers one request in-process: (status, headers with lower-case names, body)."""

    def __call__(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer: ...


EmbeddedFactory = Callable[[str], Handler]
_embedded_factory: EmbeddedFactory | None = None


def set_embedded_factory(factory: EmbeddedFactory) -> None:
    """Called by ``cairn`` at import: how to reach the local store when no server is configured."""
    global _embedded_factory
    _embedded_factory = factory


class Transport:
    def __init__(self, base_url: str, *, workspace: str, token: str | None = None,
                 handler: Handler | None = None, timeout: float = 60.0) -> None:
        self.headers = {"User-Agent": f"cairn-python/{__version__}", WORKSPACE_HEADER: workspace}
        url = urlsplit(base_url)
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        elif url.username:  # http://user:password@host: HTTP Basic, as browsers and curl read such a URL
            secret = f"{unquote(url.username)}:{unquote(url.password or '')}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(secret).decode("ascii")
        self.base_url = base_url
        self.workspace = workspace
        self._prefix = url.path.rstrip("/")
        self._handler = handler
        self._pool: Pool | None = None
        if handler is None:
            if url.scheme not in ("http", "https") or not url.hostname or url.query:
                raise ValueError(f"not a server URL: {base_url!r} (http(s)://host[:port][/path])")
            self._pool = Pool(url.scheme, url.hostname, url.port or (443 if url.scheme == "https" else 80), timeout)
        self.direct_uploads: bool | None = None  # False once the server said its store takes no direct uploads

    def request(self, method: str, path: str, *, json: Any = None, content: bytes | None = None,
                params: Any = None, headers: dict[str, str] | None = None, timeout: float | None = None) -> Any:
        """Send; return the decoded JSON answer (or None); raise an APIError or TransportError. ``timeout``
        replaces the transport's own for this request (seconds without a byte from the server)."""
        all_headers = {**self.headers, **(headers or {})}
        if json is not None:
            content = orjson.dumps(json)
            all_headers["Content-Type"] = "application/json"
        status, _, data = self._send(method, self._target(path, params), all_headers, content, timeout=timeout)
        if status >= 400:
            raise error_for(status, _decode(data))
        return orjson.loads(data) if data else None

    @property
    def concurrent(self) -> bool:
        """True when requests from several threads at once each get their own connection (a server over
        http(s)); False in-process (embedded and test servers), which get one request at a time."""
        return self._pool is not None

    def upload_file(self, method: str, path: str, params: dict[str, str], local_path: Path,
                    content_type: str = "application/octet-stream") -> Any:
        """Send the file at ``local_path`` as the body, with its length; return the decoded JSON answer."""
        with local_path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            headers = {**self.headers, "Content-Type": content_type, "Content-Length": str(size)}
            status, _, data = self._send(method, self._target(path, params), headers, FileBody(handle, size))
        if status >= 400:
            raise error_for(status, _decode(data))
        return orjson.loads(data) if data else None

    def download_to(self, path: str, params: dict[str, Any], write: Write) -> dict[str, str]:
        """GET ``path`` and hand its body to ``write`` piece by piece (each piece is valid only during the
        call); return the answer's headers, names in lower case. From a server with a bucket, a large file
        comes straight from the bucket: the server answers 307 to a presigned URL (asked for again if it
        expired before the bucket was reached)."""
        if self.concurrent:
            params = {**params, "direct": "true"}
        target = self._target(path, params)
        status, headers, data = self._send("GET", target, self.headers, None, write)
        if status >= 400:
            raise error_for(status, _decode(data))
        if status in _REDIRECTS:
            self._follow(target, headers, write)
        return headers

    def _follow(self, target: str, headers: dict[str, str], write: Write) -> None:
        from cairn.client._objects import Progress, get_to

        def fresh() -> str:
            again = self._send("GET", target, self.headers, None)
            if again[0] not in _REDIRECTS:
                raise TransportError(f"GET {target}: the server did not give a new download URL")
            return again[1]["location"]

        size = int(headers.get("x-cairn-size", "0") or 0)
        progress = Progress(f"downloading {target.split('?', 1)[0].rsplit('/', 1)[-1]}", size)
        try:
            get_to(headers["location"], write, fresh, progress)
        finally:
            progress.close()

    def _send(self, method: str, target: str, headers: dict[str, str], body: Body,
              write: Write | None = None, *, timeout: float | None = None) -> Answer:
        if self._pool is not None:
            return self._pool.send(method, target, headers, body, write, timeout)
        assert self._handler is not None
        if isinstance(body, FileBody):
            body = body.handle.read()
        status, answer_headers, data = self._handler(method, target, headers, body or b"")
        if write is not None and 200 <= status < 300:
            write(memoryview(data))
            data = b""
        return status, answer_headers, data

    def _target(self, path: str, params: Any) -> str:
        target = _PATH_UNSAFE.sub(_percent, self._prefix + path)
        if params:
            target += "?" + urlencode(params, quote_via=quote, safe="")
        return target

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


# Callers quote each path segment themselves; what is left unsafe (a space, a lone "%") is encoded here.
_PATH_UNSAFE = re.compile(r"%(?![0-9A-Fa-f]{2})|[^A-Za-z0-9/_.~:@!$&'()*+,;=%-]")


def _percent(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8"))


def _decode(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return data[:500].decode("utf-8", "replace")


def open_transport(tracking_uri: str | None, home: str, workspace: str, token: str | None) -> Transport:
    """A transport for ``tracking_uri``: an http(s) server, or (unset) the embedded store under ``home``."""
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        return Transport(tracking_uri.rstrip("/"), workspace=workspace, token=token)
    if tracking_uri:
        raise ValueError(f"CAIRN_TRACKING_URI must be an http:// or https:// URL, got {tracking_uri!r} "
                         "(leave it unset to use the embedded store under CAIRN_HOME)")
    if _embedded_factory is None:
        raise RuntimeError("the embedded store is not available: import cairn, not cairn.client")
    return Transport("http://embedded", workspace=workspace, token=token, handler=_embedded_factory(home))
