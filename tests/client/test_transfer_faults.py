"""The SDK's direct transfers when the bucket misbehaves: a loopback proxy in front of moto_server refuses
presigned URLs as expired and fails a multipart part, the way S3 does and moto does not. The server
signs its URLs for the proxy (its S3 endpoint is the proxy), so every byte between the SDK and the bucket
crosses it."""

from __future__ import annotations

import hashlib
import http.client
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import cairn
from tests.client.test_direct_transfers import MB, big_file
from tests.conftest import LiveServer

pytestmark = [pytest.mark.slow, pytest.mark.s3,
              pytest.mark.parametrize(("store_uri", "artifact_root"), [("sqlite", "s3")], indirect=True)]
_EXPIRED = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
            b"<Message>Request has expired</Message></Error>")
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class FaultProxy(ThreadingHTTPServer):
    """Forwards every request to the bucket endpoint, except that a presigned request whose method is in
    ``expire`` and whose X-Amz-Date is that of the first such request answers 403 "Request has expired"
    (its URL is expired for good, as it would be on S3), and the first PUT of part ``fail_part`` has its
    connection dropped before any answer. ``seen`` records the presigned requests (the SDK's, not the
    server's own): (method, path, part, answer), 0 for a dropped one."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = urlsplit(upstream).netloc
        self.expire: set[str] = set()
        self.expired_dates: dict[str, str] = {}
        self.fail_part: int | None = None
        self.seen: list[tuple[str, str, int | None, int]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def verdict(self, method: str, query: dict[str, list[str]]) -> str:
        """"pass", "expired" or "drop" for one request."""
        part = int(query["partNumber"][0]) if "partNumber" in query else None
        with self.lock:
            if method == "PUT" and part is not None and part == self.fail_part:
                self.fail_part = None
                return "drop"
            date = query.get("X-Amz-Date", [""])[0]
            if date and method in self.expire and self.expired_dates.setdefault(method, date) == date:
                return "expired"
        return "pass"


class _Handler(BaseHTTPRequestHandler):
    server: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _any(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        part = int(query["partNumber"][0]) if "partNumber" in query else None
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        verdict = self.server.verdict(self.command, query)
        if verdict == "drop":
            self.server.seen.append((self.command, url.path, part, 0))
            self.close_connection = True
            self.connection.close()
            return
        if verdict == "expired":
            time.sleep(1.1)  # the URL signed next is dated a later second, as a really expired one would be
            status, headers, payload = 403, [("Content-Type", "application/xml")], _EXPIRED
        else:
            upstream = http.client.HTTPConnection(self.server.upstream, timeout=120)
            try:
                upstream.request(self.command, self.path, body=body,
                                 headers={k: v for k, v in self.headers.items() if k.lower() not in _HOP})
                answer = upstream.getresponse()
                status, headers, payload = answer.status, answer.getheaders(), answer.read()
            finally:
                upstream.close()
        if "X-Amz-Signature" in query:
            self.server.seen.append((self.command, url.path, part, status))
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP or (self.command == "HEAD" and name.lower() == "content-length"):
                self.send_header(name, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any  # noqa: N815 - the names http.server calls


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    server = FaultProxy(s3_endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture
def client(sdk_env: Path, proxy: FaultProxy, store_uri: str, artifact_root: str, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[cairn.Client]:
    server = LiveServer(tmp_path / "server-home", store_uri, args=("--artifact-root", artifact_root),
                        env={"AWS_ENDPOINT_URL_S3": proxy.url}).start()
    monkeypatch.setenv("CAIRN_TRACKING_URI", server.url)
    yield cairn.Client()
    server.stop()


def digest_of(path: Path) -> str:
    with path.open("rb") as handle:
        return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


def test_an_expired_url_is_asked_for_again_up_and_down(client: cairn.Client, proxy: FaultProxy,
                                                       tmp_path: Path) -> None:
    run = client.create_run("expiry")
    source = tmp_path / "small.bin"
    expected = big_file(source, 8 * MB)
    proxy.expire = {"PUT", "GET"}
    version = client.upload_artifact(run.id, source, "data/small.bin")
    assert version.digest == expected
    local = Path(client.download_artifact(run.id, "data/small.bin", tmp_path / "out"))
    assert digest_of(local) == expected
    answers = {method: [s for m, _, _, s in proxy.seen if m == method] for method in ("PUT", "GET")}
    assert answers["PUT"] == [403, 200], proxy.seen  # refused, then a fresh URL went through
    assert answers["GET"] == [403, 200], proxy.seen


def test_a_failed_part_is_sent_again(client: cairn.Client, proxy: FaultProxy, tmp_path: Path) -> None:
    run = client.create_run("parts")
    source = tmp_path / "weights.pt"
    expected = big_file(source, 72 * MB)  # past the single-PUT limit of 64 MB: 5 parts of 16 MB
    proxy.fail_part = 2
    version = client.upload_artifact(run.id, source, "model/weights.pt")
    assert version.digest == expected and version.size == 72 * MB
    part_puts = [(part, status) for method, _, part, status in proxy.seen if method == "PUT" and part]
    assert sorted(part_puts) == [(1, 200), (2, 0), (2, 200), (3, 200), (4, 200), (5, 200)], proxy.seen
    local = Path(client.download_artifact(run.id, "model/weights.pt", tmp_path / "out"))
    assert digest_of(local) == expected
