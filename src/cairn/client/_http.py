"""The SDK's one HTTP stack: kept-alive ``http.client`` connections to one origin (the server, or a bucket).

Why ``http.client`` and not httpx: measured on this SDK, a one-point ``log_metric`` costs the client about
0.1 ms this way and 0.5 ms through httpx, and a file goes up by ``socket.sendfile`` and comes down by
``readinto`` into one reused buffer, where httpx spent a second of client CPU per GB in re-chunking.

A pool is thread-safe: a connection serves one request at a time and returns to the idle list. A process
forked from this one starts with no idle connection: the parent's stay the parent's. Proxies set in the
environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``) are honoured: plain http goes to the
proxy with the full URL as target, https through a CONNECT tunnel.
"""

from __future__ import annotations

import base64
import http.client
import os
import select
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from cairn.client._errors import TransportError

__all__ = ["Answer", "FileBody", "Pool", "Write", "pool_for"]

Write = Callable[[memoryview], object]
Answer = tuple[int, dict[str, str], bytes]  # status, headers (names in lower case), body (b"" if written)

FILE_CHUNK = 4 * 1024 * 1024  # bytes per read where a file cannot go up by sendfile, and per download read
_KEEPALIVE_EXPIRY = 5.0  # seconds an idle connection is kept, as common clients do
_MAX_IDLE = 16
_CONNECT_TIMEOUT = 5.0
_SAFE = frozenset({"GET", "HEAD"})  # sent twice, they change nothing
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class FileBody:
    """A request body read from an open file: ``size`` bytes from its start."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle, self.size = handle, size


Body = bytes | FileBody | None


class Pool:
    """Connections to one origin (scheme, host, port). ``send`` takes a request target as it goes on the wire
    (path and query, already encoded), so a presigned URL is sent exactly as it was signed."""

    def __init__(self, scheme: str, host: str, port: int, timeout: float) -> None:
        # host without brackets (an IPv6 address as "::1"), port always given: http.client would read the
        # last ":1" of "::1" as a port otherwise
        self.scheme, self.host, self.port, self.timeout = scheme, host, port, timeout
        self._ssl = ssl.create_default_context() if scheme == "https" else None
        self._proxy = _proxy_for(scheme, host)
        self._idle: list[tuple[float, http.client.HTTPConnection]] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def send(self, method: str, target: str, headers: dict[str, str], body: Body = None,
             write: Write | None = None, timeout: float | None = None) -> Answer:
        """Send one request. With ``write``, a 2xx answer's body goes to it piece by piece (each piece valid
        only during the call) and comes back empty. A kept-alive connection the server closed meanwhile is
        replaced once, when sending twice is harmless (GET, HEAD, or an Idempotency-Key: stored once)."""
        conn, reused = self._checkout()
        try:
            try:
                response = self._exchange(conn, method, target, headers, body, timeout)
            except _STALE:
                if not reused or not (method in _SAFE or "Idempotency-Key" in headers):
                    raise
                conn.close()
                conn = self._connect()
                response = self._exchange(conn, method, target, headers, body, timeout)
            answer_headers = {k.lower(): v for k, v in response.getheaders()}
            if write is not None and 200 <= response.status < 300:
                _read_into(response, write)
                data = b""
            else:
                data = response.read()
        except _LocalWriteError as failed:
            conn.close()  # the rest of the body is still on the connection
            raise failed.error from None
        except (OSError, http.client.HTTPException, ValueError) as exc:  # ValueError: e.g. a header with CR/LF
            conn.close()
            raise TransportError(f"{method} {self.origin}{target.split('?', 1)[0]}: "
                                 f"{exc or type(exc).__name__}") from exc
        except BaseException:
            conn.close()
            raise
        if response.will_close:
            conn.close()
        else:
            self._checkin(conn)
        return response.status, answer_headers, data

    def _exchange(self, conn: http.client.HTTPConnection, method: str, target: str,
                  headers: dict[str, str], body: Body, timeout: float | None) -> http.client.HTTPResponse:
        if conn.sock is None:  # a new connection: 5 s to connect, then the full timeout
            conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(timeout or self.timeout)
        if self._proxy is not None and self._ssl is None:  # a plain-http proxy takes the absolute URL
            target = self.origin + target
            headers = {**headers, **self._proxy.headers}
        if isinstance(body, FileBody):
            body.handle.seek(0)  # from the start, also when sent again on a fresh connection
            conn.putrequest(method, target, skip_accept_encoding=True)
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            _send_file(conn, body)
        else:
            conn.request(method, target, body=body, headers=headers)
        return conn.getresponse()

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
        host, port = (self._proxy.host, self._proxy.port) if self._proxy is not None else (self.host, self.port)
        if self._ssl is None:
            return http.client.HTTPConnection(host, port, timeout=_CONNECT_TIMEOUT)
        conn = http.client.HTTPSConnection(host, port, timeout=_CONNECT_TIMEOUT, context=self._ssl)
        if self._proxy is not None:
            conn.set_tunnel(self.host, self.port, headers=self._proxy.headers)
        return conn

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


_pools: dict[tuple[str, str, int, float], Pool] = {}
_pools_lock = threading.Lock()


def pool_for(url: str, timeout: float) -> tuple[Pool, str]:
    """A pool shared by every caller of this origin, and the URL's request target (path and query)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TransportError(f"not an http(s) URL: {url[:200]!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    key = (parts.scheme, parts.hostname, port, timeout)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = Pool(parts.scheme, parts.hostname, port, timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return pool, target


class _Proxy:
    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port, self.headers = host, port, headers


def _proxy_for(scheme: str, host: str) -> _Proxy | None:
    """The proxy the environment names for this origin, if any (NO_PROXY honoured)."""
    proxies = urllib.request.getproxies()
    url = proxies.get(scheme) or proxies.get("all")
    if not url or urllib.request.proxy_bypass(host):
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise TransportError(f"unsupported proxy {parts.scheme}://{parts.hostname} (only http:// proxies)")
    headers = {}
    if parts.username:
        secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(secret).decode("ascii")
    return _Proxy(parts.hostname, parts.port or 80, headers)


def _send_file(conn: http.client.HTTPConnection, body: FileBody) -> None:
    """The body straight from the file to the socket: sendfile on a plain socket, reads on TLS."""
    sock = conn.sock
    assert sock is not None
    if conn.__class__ is http.client.HTTPConnection:
        sent = sock.sendfile(body.handle, 0, body.size) if body.size else 0
    else:
        sent = 0
        for chunk in read_chunks(body.handle, body.size):
            sock.sendall(chunk)
            sent += len(chunk)
    if sent != body.size:
        raise OSError(f"the file shrank while it was sent ({sent} of {body.size} bytes)")


def read_chunks(handle: BinaryIO, size: int) -> Iterator[bytes]:
    left = size
    while left > 0 and (chunk := handle.read(min(FILE_CHUNK, left))):
        left -= len(chunk)
        yield chunk


class _LocalWriteError(Exception):
    """The caller's ``write`` raised (a full disk, say): its error, told apart from the network's."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _read_into(response: http.client.HTTPResponse, write: Write) -> None:
    buffer = memoryview(bytearray(FILE_CHUNK))
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
