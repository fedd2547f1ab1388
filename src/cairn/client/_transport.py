"""The one place the SDK touches the network (or, in embedded mode, the in-process server).

A Transport sends requests with the caller's workspace and token, and turns error answers into the
exceptions of ``_errors``. Any ``httpx.BaseTransport`` can stand behind it, so tests use a mock one.

Plain requests to a server (a body of bytes or JSON, no query string, no proxy) go over kept-alive
``http.client`` connections: a one-point ``log_metric`` costs the client about 0.1 ms that way and
about 0.5 ms through httpx. Artifact files take the same connections (``upload_file``,
``download_to``): a file goes up with its length and ``socket.sendfile`` (no copy through Python), and
comes down with ``readinto`` into one reused buffer; through httpx a 1 GB file cost a second of client
CPU in chunked framing and re-chunking. Everything else (query strings, streamed bodies, proxies,
mock and embedded transports) goes through httpx.
"""

from __future__ import annotations

import http.client
import os
import re
import select
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlencode, urlsplit

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
        self._direct = _Direct.open(base_url, headers, timeout) if transport is None else None
        self.direct_uploads: bool | None = None  # False once the server said its store takes no direct uploads

    def request(self, method: str, path: str, *, json: Any = None, content: bytes | Iterable[bytes] | None = None,
                params: Any = None, headers: dict[str, str] | None = None) -> Any:
        """Send; return the decoded JSON answer (or None); raise an APIError or TransportError."""
        if self._direct is not None and not params and (content is None or isinstance(content, bytes)):
            body = orjson.dumps(json) if json is not None else content
            all_headers = {**(headers or {}), "Content-Type": "application/json"} if json is not None else headers
            answer = self._direct.send(method, path, body, all_headers)
            if answer is not None:
                status, data = answer
                if status >= 400:
                    raise error_for(status, _decode_bytes(data))
                return orjson.loads(data) if data else None
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

    @property
    def concurrent(self) -> bool:
        """True when requests from several threads at once each get their own connection (a server over
        http(s)); False for mock and embedded transports, which get one request at a time."""
        return self._direct is not None

    def upload_file(self, method: str, path: str, params: dict[str, str], local_path: Path) -> Any:
        """Send the file at ``local_path`` as the body, with its length; return the decoded JSON answer."""
        with local_path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
            if self._direct is not None:
                answer = self._direct.send(method, path, _FileBody(handle, size), headers, query=params)
                if answer is not None:
                    status, data = answer
                    if status >= 400:
                        raise error_for(status, _decode_bytes(data))
                    return orjson.loads(data) if data else None
                handle.seek(0)
            response = self._send(method, path, content=_read_chunks(handle, size), params=params,
                                  headers=headers)
        return orjson.loads(response.content) if response.content else None

    def download_to(self, path: str, params: dict[str, Any], write: Callable[[memoryview], object]) -> dict[str, str]:
        """GET ``path`` and hand its body to ``write`` piece by piece (each piece is valid only during the
        call); return the answer's headers, names in lower case. From a server with a bucket, a large file
        comes straight from the bucket: the server answers 307 to a presigned URL (asked for again if it
        expired before the bucket was reached)."""
        if self._direct is None:
            return self._download_via_httpx(path, params, write)
        params = {**params, "direct": "true"}
        answer = self._direct.fetch(path, params, write)
        if answer is None:
            return self._download_via_httpx(path, params, write)
        status, headers, data = answer
        if status >= 400:
            raise error_for(status, _decode_bytes(data))
        if status in _REDIRECTS:
            self._follow(path, params, headers, write)
        return headers

    def _follow(self, path: str, params: dict[str, Any], headers: dict[str, str],
                write: Callable[[memoryview], object]) -> None:
        from cairn.client._objects import Progress, get_to

        def fresh() -> str:
            assert self._direct is not None
            again = self._direct.fetch(path, params, write)
            if again is None or again[0] not in _REDIRECTS:
                raise TransportError(f"GET {path}: the server did not give a new download URL")
            return again[1]["location"]

        size = int(headers.get("x-cairn-size", "0") or 0)
        progress = Progress(f"downloading {path.rsplit('/', 1)[-1]}", size)
        try:
            get_to(headers["location"], write, fresh, progress)
        finally:
            progress.close()

    def _download_via_httpx(self, path: str, params: dict[str, Any],
                            write: Callable[[memoryview], object]) -> dict[str, str]:
        for response, chunks in self.stream(path, params):
            for chunk in chunks:
                write(memoryview(chunk))
            return {k.lower(): v for k, v in response.headers.items()}
        return {}  # pragma: no cover - stream always yields once

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
        if self._direct is not None:
            self._direct.close()
        self._http.close()


_REDIRECTS = (302, 303, 307)
_FILE_CHUNK = 4 * 1024 * 1024  # bytes per read where a file cannot go up by sendfile, and per download read


class _FileBody:
    """A request body read from an open file: ``size`` bytes from its current offset."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle, self.size = handle, size


def _read_chunks(handle: BinaryIO, size: int) -> Iterator[bytes]:
    left = size
    while left > 0 and (chunk := handle.read(min(_FILE_CHUNK, left))):
        left -= len(chunk)
        yield chunk


def _decode(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:500]


def _decode_bytes(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return data[:500].decode("utf-8", "replace")


# Paths made only of characters that need no percent-encoding (RFC 3986 pchar and "/"): sent as they are,
# they are what httpx would send. Anything else goes through httpx, which encodes it.
_PLAIN_PATH = re.compile(r"^/[A-Za-z0-9/_.~:@!$&'()*+,;=%-]*$")
_KEEPALIVE_EXPIRY = 5.0  # seconds an idle connection is kept, as httpx does
_MAX_IDLE = 8
_CONNECT_TIMEOUT = 5.0
_SAFE = frozenset({"GET", "HEAD"})  # sent twice, they change nothing
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class _Direct:
    """Kept-alive ``http.client`` connections to one server, for requests with a body in memory and no
    query string. Thread-safe: a connection serves one request at a time and returns to the idle list.
    A process forked from this one starts with no idle connection: the parent's stay the parent's."""

    def __init__(self, scheme: str, host: str, port: int, prefix: str, headers: dict[str, str],
                 timeout: float) -> None:
        # host without brackets (an IPv6 address as "::1"), port always given: http.client would read the
        # last ":1" of "::1" as a port otherwise
        self.scheme, self.host, self.port, self.prefix = scheme, host, port, prefix
        self.headers, self.timeout = headers, timeout
        self._ssl = httpx.create_ssl_context() if scheme == "https" else None
        self._idle: list[tuple[float, http.client.HTTPConnection]] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False

    @classmethod
    def open(cls, base_url: str, headers: dict[str, str], timeout: float) -> _Direct | None:
        """None where httpx must be used: not http(s), or a proxy set in the environment (httpx honours it)."""
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname or url.query or url.username:
            return None
        if any(key in urllib.request.getproxies() for key in ("http", "https", "all")):
            return None
        port = url.port or (443 if url.scheme == "https" else 80)
        return cls(url.scheme, url.hostname, port, url.path.rstrip("/"), headers, timeout)

    def send(self, method: str, path: str, body: bytes | _FileBody | None, headers: dict[str, str] | None,
             query: dict[str, str] | None = None) -> tuple[int, bytes] | None:
        """(status, body), or None if this request is not one for a direct connection."""
        target = self._target(path, query)
        if target is None:
            return None
        all_headers = {**self.headers, **(headers or {})}
        conn, reused = self._checkout()
        try:
            try:
                return self._exchange(conn, method, target, body, all_headers)
            except _STALE:
                # A kept-alive connection the server closed: most often as we sent, before it read the request,
                # but it may also have handled it and then gone. Send it again on a new connection only when
                # twice is harmless: a GET or HEAD, or a request with an Idempotency-Key (stored once).
                if not reused or not (method in _SAFE or "Idempotency-Key" in all_headers):
                    raise
                conn.close()
                conn = self._connect()
                return self._exchange(conn, method, target, body, all_headers)
        except (OSError, http.client.HTTPException, ValueError) as exc:  # ValueError: e.g. a header with CR/LF
            conn.close()
            host = f"[{self.host}]" if ":" in self.host else self.host
            raise TransportError(f"{method} {self.scheme}://{host}:{self.port}{target}: "
                                 f"{exc or type(exc).__name__}") from exc

    def _target(self, path: str, query: dict[str, Any] | None) -> str | None:
        """The request target, or None if the path needs encoding (httpx does it)."""
        target = self.prefix + path
        if not _PLAIN_PATH.match(target):
            return None
        if query:
            target += "?" + urlencode(query, quote_via=quote, safe="")
        return target

    def _exchange(self, conn: http.client.HTTPConnection, method: str, target: str, body: bytes | _FileBody | None,
                  headers: dict[str, str]) -> tuple[int, bytes]:
        self._ready(conn)
        if isinstance(body, _FileBody):
            if body.handle.tell() != 0:  # sent before on a connection that went stale: from the start again
                body.handle.seek(0)
            conn.putrequest(method, target, skip_accept_encoding=True)
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            _send_file(conn, body)
        else:
            conn.request(method, target, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        if response.will_close:
            conn.close()
        else:
            self._checkin(conn)
        return response.status, data

    def _ready(self, conn: http.client.HTTPConnection) -> None:
        if conn.sock is None:  # a new connection: 5 s to connect, as through httpx, then the full timeout
            conn.connect()
            assert conn.sock is not None
            conn.sock.settimeout(self.timeout)

    def fetch(self, path: str, query: dict[str, Any], write: Callable[[memoryview], object],
              ) -> tuple[int, dict[str, str], bytes] | None:
        """GET into ``write``: (status, headers, error body), or None if not one for a direct connection.
        A stale kept-alive connection is retried once on a new one, before anything was written."""
        target = self._target(path, query)
        if target is None:
            return None
        conn, reused = self._checkout()
        try:
            try:
                self._ready(conn)
                conn.request("GET", target, headers=self.headers)
                response = conn.getresponse()
            except _STALE:
                if not reused:
                    raise
                conn.close()
                conn = self._connect()
                self._ready(conn)
                conn.request("GET", target, headers=self.headers)
                response = conn.getresponse()
            headers = {k.lower(): v for k, v in response.getheaders()}
            if response.status >= 400 or response.status in _REDIRECTS:
                data = response.read()
            else:
                data = b""
                _read_into(response, write)
        except _LocalWriteError as failed:
            conn.close()  # the rest of the body is still on the connection
            raise failed.error from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            conn.close()
            host = f"[{self.host}]" if ":" in self.host else self.host
            raise TransportError(f"GET {self.scheme}://{host}:{self.port}{target}: "
                                 f"{exc or type(exc).__name__}") from exc
        except BaseException:
            conn.close()
            raise
        if response.will_close:
            conn.close()
        else:
            self._checkin(conn)
        return response.status, headers, data

    def _checkout(self) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection (and True), or a new one, not yet connected (and False)."""
        if self._pid != os.getpid():
            self._forget_parent()
        now = time.monotonic()
        with self._lock:
            while self._idle:
                since, conn = self._idle.pop()
                if now - since < _KEEPALIVE_EXPIRY and _usable(conn):
                    return conn, True
                conn.close()
        return self._connect(), False

    def _connect(self) -> http.client.HTTPConnection:
        if self._ssl is not None:
            return http.client.HTTPSConnection(self.host, self.port, timeout=_CONNECT_TIMEOUT, context=self._ssl)
        return http.client.HTTPConnection(self.host, self.port, timeout=_CONNECT_TIMEOUT)

    def _forget_parent(self) -> None:
        """In a forked child: the idle connections are the parent's too (a request on one would mix both
        processes' bytes). Drop them, and the lock, which another thread of the parent may have held at the
        fork. Closing here only releases the child's copy of each descriptor: nothing is sent (no shutdown,
        no TLS close_notify), so the parent's connections stay open for the parent."""
        inherited, self._idle = self._idle, []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        for _, conn in inherited:
            conn.close()

    def _checkin(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < _MAX_IDLE:
                self._idle.append((time.monotonic(), conn))
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for _, conn in idle:
            conn.close()


def _send_file(conn: http.client.HTTPConnection, body: _FileBody) -> None:
    """The body straight from the file to the socket: sendfile on a plain socket, reads on TLS."""
    sock = conn.sock
    assert sock is not None
    if conn.__class__ is http.client.HTTPConnection:
        sent = sock.sendfile(body.handle, 0, body.size) if body.size else 0
    else:
        sent = 0
        for chunk in _read_chunks(body.handle, body.size):
            sock.sendall(chunk)
            sent += len(chunk)
    if sent != body.size:
        raise OSError(f"the file shrank while it was sent ({sent} of {body.size} bytes)")


class _LocalWriteError(Exception):
    """The caller's ``write`` raised (a full disk, say): its error, told apart from the network's."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _read_into(response: http.client.HTTPResponse, write: Callable[[memoryview], object]) -> None:
    buffer = memoryview(bytearray(_FILE_CHUNK))
    while n := response.readinto(buffer):
        try:
            write(buffer[:n])
        except Exception as exc:
            raise _LocalWriteError(exc) from exc
    if response.length:  # http.client stops at a short body without saying so
        raise http.client.IncompleteRead(b"", response.length)


def _usable(conn: http.client.HTTPConnection) -> bool:
    """An idle connection the server has not closed: nothing to read on it (a closed one reads EOF)."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        if hasattr(select, "poll"):  # select.select fails on descriptors past 1023, which busy processes reach
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return not poller.poll(0)
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


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
