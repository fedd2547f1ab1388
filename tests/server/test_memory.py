"""The standing hostile-input suite, part 3: a real server process keeps its resident memory within
``BOUND`` of where it started while it refuses an oversized body (declared or streamed, with no
credentials) and an archive bomb (a 10 KB bundle declaring a 2 GB member). Before the limits, the first
took 1.1 GB for a 400 MB body and the second 2.2 GB. SQLite and PostgreSQL."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cairn.server.db.engine import Database
from cairn.server.services import accounts, workspaces
from tests.conftest import SECRET_KEY, LiveServer
from tests.server.services.test_bundles import sparse_bundle

pytestmark = pytest.mark.slow
BOUND = 64 * 1024 * 1024  # bytes of resident memory the server may gain while refusing


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class PeakMemory:
    """Samples a process's resident memory every 10 ms on a thread, keeping the peak."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._done = pid, rss(pid), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss(self.pid))
            time.sleep(0.01)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()


@pytest.fixture
def server(store_uri: str, tmp_path: Path) -> Iterator[tuple[LiveServer, str]]:
    db = Database(store_uri)
    db.upgrade()
    with db.session(write=True) as session:
        accounts.create_user(session, "setup", "mem", None, service=True)
        owner = accounts.get_user(session, "mem")
        identity = accounts.Identity(owner.id, "setup", True, "admin", "local")
        token = accounts.create_token(session, identity, "t", "write", None, user="mem")[1]
        ctx = workspaces.get_workspace(session, "default")
        workspaces.add_member(session, _context(ctx.id), "owner", user="mem")
    db.dispose()
    live = LiveServer(tmp_path / "home", store_uri, args=("--auth",), env={"CAIRN_SECRET_KEY": SECRET_KEY}).start()
    yield live, token
    live.stop()


def _context(workspace_id: int) -> object:
    from cairn.server.authz import unrestricted
    from cairn.server.services.context import Context

    return Context(workspace_id, "default", "setup", "", unrestricted("setup"))


def _send_body(port: int, head: bytes, chunk: bytes, total: int) -> bytes:
    """Send ``head`` and then up to ``total`` bytes of ``chunk``s, stopping when the server answers or closes;
    returns what the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        sent, answer = 0, b""
        while sent < total:
            try:
                answer += sock.recv(65536)
                if answer:
                    break
            except BlockingIOError:
                pass
            try:
                sent += sock.send(chunk)
            except BlockingIOError:
                time.sleep(0.001)
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        try:
            while b"\r\n\r\n" not in answer:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        except (ConnectionResetError, TimeoutError):
            pass
        return answer


def test_oversized_bodies_and_archive_bombs_are_refused_in_bounded_memory(server: tuple[LiveServer, str]) -> None:
    live, token = server
    assert live.process is not None
    start = rss(live.process.pid)
    declared = (b"POST /api/v1/experiments HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 400000000\r\n\r\n")
    chunked = (b"POST /api/v1/experiments HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
    piece = b" " * 1_048_576
    with PeakMemory(live.process.pid) as memory:
        first = _send_body(live.port, declared, piece, 100_000_000)
        second = _send_body(live.port, chunked, b"%x\r\n" % len(piece) + piece + b"\r\n", 100_000_000)
        bomb = httpx.post(f"{live.url}/api/v1/models/dev.bomb/versions/import", content=sparse_bundle(2 * 1024**3),
                          headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert first.startswith(b"HTTP/1.1 413"), first[:200]
    assert second.startswith(b"HTTP/1.1 413"), second[:200]
    assert bomb.status_code == 400 and "sparse" in bomb.text, bomb.text
    assert memory.peak - start < BOUND, f"the server grew by {(memory.peak - start) >> 20} MiB"
    assert httpx.get(f"{live.url}/health").status_code == 200
