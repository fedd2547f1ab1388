"""The SDK transport: requests over kept-alive http.client connections (the SDK's one HTTP stack), or to
an in-process handler; both answer the same and fail the same way."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import cairn
from cairn.client._errors import NotFoundError, ServerError, TransportError
from cairn.client._http import Answer
from cairn.client._transport import Transport
from tests.conftest import LiveServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    seen: list[dict[str, Any]] = []
    drop_after_answer = False
    vanish_next = False  # handle the next request, then close the connection without answering
    gate: threading.Event | None = None  # answer only once it is set
    arrived = threading.Event()

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Handler.seen.append({"method": self.command, "path": self.path, "peer": self.client_address[1],
                             "body": body, "headers": dict(self.headers)})
        Handler.arrived.set()
        if Handler.vanish_next:
            Handler.vanish_next = False
            self.close_connection = True
            return
        if Handler.gate is not None:
            Handler.gate.wait(10)
        status, payload = 200, json.dumps({"ok": True, "path": self.path}).encode()
        if self.path.endswith("/missing"):
            status, payload = 404, b'{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such run"}'
        elif self.path.endswith("/broken"):
            status, payload = 500, b"<html>oops</html>"
        elif self.path.endswith("/empty"):
            payload = b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        if Handler.drop_after_answer:  # close without saying so: the client's idle connection goes stale
            self.close_connection = True

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Handler.seen, Handler.drop_after_answer, Handler.vanish_next, Handler.gate = [], False, False, None
    Handler.arrived = threading.Event()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_plain_requests_share_one_kept_alive_connection(server: str) -> None:
    transport = Transport(server + "/w/team", workspace="team", token="secret")
    assert transport._pool is not None
    assert transport.request("POST", "/api/v1/runs/r1/batch", json={"metrics": []}) == {
        "ok": True, "path": "/w/team/api/v1/runs/r1/batch"}
    assert transport.request("GET", "/api/v1/runs/r1") is not None
    assert transport.request("DELETE", "/api/v1/runs/r1/empty") is None
    first, second, third = Handler.seen
    assert first["peer"] == second["peer"] == third["peer"]  # one connection for all three
    assert json.loads(first["body"]) == {"metrics": []}
    assert first["headers"]["Content-Type"] == "application/json"
    assert first["headers"]["X-Cairn-Workspace"] == "team"
    assert first["headers"]["Authorization"] == "Bearer secret"
    assert first["headers"]["User-Agent"].startswith("cairn-python/")
    transport.close()


def test_a_connection_the_server_closed_is_replaced(server: str) -> None:
    Handler.drop_after_answer = True
    transport = Transport(server, workspace="default")
    for i in range(3):  # an idle connection the server closed a while ago is seen closed, and not used
        assert transport.request("POST", "/api/v1/runs/r1/batch", content=b"{}")["ok"] is True, i
        time.sleep(0.05)
    for i in range(3):  # closed just now: what is safe to send twice is sent again on a new connection
        assert transport.request("POST", "/api/v1/runs/r1/batch", content=b"{}",
                                 headers={"Idempotency-Key": f"key-{i:08d}"})["ok"] is True
        assert transport.request("GET", "/api/v1/runs/r1")["ok"] is True
    assert len({seen["peer"] for seen in Handler.seen}) == len(Handler.seen) == 9
    transport.close()


def test_errors_are_the_same_in_process_and_over_http(server: str) -> None:
    def in_process(method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        if target.endswith("/missing"):
            return 404, {}, b'{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such run"}'
        return 500, {}, b"<html>oops</html>"

    over_http = Transport(server, workspace="default")
    for transport in (over_http, Transport("http://embedded", workspace="default", handler=in_process)):
        with pytest.raises(NotFoundError, match="no such run"):
            transport.request("GET", "/api/v1/runs/missing")
        with pytest.raises(ServerError, match="oops"):
            transport.request("POST", "/api/v1/runs/broken", json={})
        transport.close()
    down = Transport(f"http://127.0.0.1:{_closed_port(int(server.rsplit(':', 1)[1]))}", workspace="default")
    with pytest.raises(TransportError, match=r"GET http://127\.0\.0\.1:\d+/health"):
        down.request("GET", "/health")
    down.close()


def _closed_port(avoid: int) -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    assert port != avoid
    return port


def test_query_strings_and_odd_paths_are_encoded(server: str) -> None:
    transport = Transport(server, workspace="default")
    transport.request("GET", "/api/v1/runs/r1/params/history", params={"key": "lr/a b"})
    transport.request("GET", "/api/v1/models/my model/versions")
    transport.request("GET", "/api/v1/models/100%/caf%C3%A9")
    assert [seen["path"] for seen in Handler.seen] == [
        "/api/v1/runs/r1/params/history?key=lr%2Fa%20b", "/api/v1/models/my%20model/versions",
        "/api/v1/models/100%25/caf%C3%A9"]
    transport.close()


class _ForwardProxy(BaseHTTPRequestHandler):
    """A plain-http proxy: takes the absolute URL as the target and relays the request."""

    protocol_version = "HTTP/1.1"
    targets: list[str] = []

    def _relay(self) -> None:
        _ForwardProxy.targets.append(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = self.path.removeprefix("http://")
        host, _, rest = url.partition("/")
        conn = http.client.HTTPConnection(host, timeout=5)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-authorization", "connection")}
        conn.request(self.command, "/" + rest, body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        conn.close()
        self.send_response(answer.status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._relay()

    def do_POST(self) -> None:
        self._relay()

    def log_message(self, *args: Any) -> None:
        pass


def test_a_proxy_from_the_environment_is_used_unless_no_proxy_names_the_host(
        server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _ForwardProxy.targets = []
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _ForwardProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
        transport = Transport(server, workspace="default")
        assert transport.request("POST", "/api/v1/runs/r1/batch", json={"a": 1})["ok"] is True
        assert _ForwardProxy.targets == [f"{server}/api/v1/runs/r1/batch"]
        assert json.loads(Handler.seen[-1]["body"]) == {"a": 1}
        transport.close()
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        transport = Transport(server, workspace="default")
        assert transport.request("GET", "/api/v1/runs/r2")["ok"] is True
        assert len(_ForwardProxy.targets) == 1  # straight to the server
        transport.close()
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_log_metric_against_a_server(live_server: LiveServer, sdk_env: Path) -> None:
    client = cairn.Client(live_server.url)
    run = client.create_run("direct")
    for step in range(5):
        client.log_metric(run.id, "loss", 1.0 / (step + 1), step=step)
    client.log_metric(run.id, "loss", float("nan"), step=5)
    history = client.get_metric_history(run.id, "loss")
    assert history.steps == [0, 1, 2, 3, 4, 5]
    with pytest.raises(NotFoundError):
        client.log_metric("0" * 32, "loss", 1.0)


def test_connections_are_kept_in_a_process_with_many_open_files(server: str) -> None:
    import socket

    held = [socket.socket() for _ in range(1100)]  # the next descriptors are past select()'s limit of 1023
    try:
        transport = Transport(server, workspace="default")
        for _ in range(3):
            transport.request("GET", "/api/v1/runs/r1")
        assert len({seen["peer"] for seen in Handler.seen}) == 1
        transport.close()
    finally:
        for sock in held:
            sock.close()


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def test_an_ipv6_address_without_brackets_or_port_confusion(server: str) -> None:
    for uri, port in (("http://[::1]", 80), ("https://[::1]/w/team", 443), ("http://example.test", 80),
                      ("https://example.test", 443), ("http://[::1]:8080", 8080)):
        direct = Transport(uri, workspace="default")._pool
        assert direct is not None
        conn = direct._connect()  # http.client read "::1" with no port as host "::" and port 1
        assert (direct.port, conn.port, conn.host) == (port, port, "::1" if "::1" in uri else "example.test")
    try:
        httpd = _IPv6Server(("::1", 0), Handler)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        port = httpd.server_address[1]
        transport = Transport(f"http://[::1]:{port}", workspace="default")
        assert transport._pool is not None
        assert transport.request("POST", "/api/v1/runs/r1/batch", json={})["ok"] is True
        assert Handler.seen[-1]["headers"]["Host"] == f"[::1]:{port}"
        transport.close()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_forked_child_opens_its_own_connection(server: str) -> None:
    transport = Transport(server, workspace="default")
    transport.request("GET", "/api/v1/runs/parent")  # leaves an idle kept-alive connection
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() in a process with threads (Python 3.12+)
        pid = os.fork()
    if pid == 0:  # the child: answer through the pipe, never return into pytest
        code = 1
        try:
            code = 0 if transport.request("GET", "/api/v1/runs/child")["ok"] is True else 1
        finally:
            os.write(write, bytes([code]))
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        assert pipe.read() == b"\x00"
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    transport.request("GET", "/api/v1/runs/parent-again")
    parent, child, again = Handler.seen
    assert child["path"] == "/api/v1/runs/child" and child["peer"] != parent["peer"]
    assert again["peer"] == parent["peer"]  # the parent's connection still works after the child closed its copy
    transport.close()


@pytest.mark.parametrize(("method", "headers", "sent_again"), [
    ("GET", {}, True),
    ("POST", {"Idempotency-Key": "key-00000001"}, True),
    ("DELETE", {}, False),
    ("PUT", {}, False),
])
def test_a_request_lost_with_its_connection_is_sent_again_only_when_that_is_harmless(
    server: str, method: str, headers: dict[str, str], sent_again: bool
) -> None:
    transport = Transport(server, workspace="default")
    transport.request("GET", "/api/v1/runs/r1")  # a kept-alive connection, reused next
    Handler.vanish_next = True  # the server handles the next request, then drops the connection unanswered
    if sent_again:
        assert transport.request(method, "/api/v1/runs/r1/tags", content=b"{}", headers=headers)["ok"] is True
    else:
        with pytest.raises(TransportError, match=rf"{method} http://127\.0\.0\.1:"):
            transport.request(method, "/api/v1/runs/r1/tags", content=b"{}", headers=headers)
    assert [seen["method"] for seen in Handler.seen[1:]] == [method] * (2 if sent_again else 1)
    transport.close()


def test_a_header_with_a_line_break_is_a_transport_error_and_the_connection_is_closed(server: str) -> None:
    transport = Transport(server, workspace="default")
    assert transport._pool is not None
    opened: list[http.client.HTTPConnection] = []
    connect = transport._pool._connect

    def connect_and_keep() -> http.client.HTTPConnection:
        opened.append(connect())
        return opened[-1]

    transport._pool._connect = connect_and_keep
    with pytest.raises(TransportError, match=r"POST http://127\.0\.0\.1:"):
        transport.request("POST", "/api/v1/runs/r1/batch", json={}, headers={"X-Note": "a\r\nInjected: 1"})
    assert [conn.sock for conn in opened] == [None]
    assert transport.request("GET", "/api/v1/runs/r1")["ok"] is True
    assert [seen["path"] for seen in Handler.seen] == ["/api/v1/runs/r1"]
    transport.close()


def test_a_connection_in_use_when_the_transport_closes_is_not_kept(server: str) -> None:
    transport = Transport(server, workspace="default")
    assert transport._pool is not None
    Handler.gate = threading.Event()
    answers: list[Any] = []
    worker = threading.Thread(target=lambda: answers.append(transport.request("GET", "/api/v1/runs/slow")))
    worker.start()
    assert Handler.arrived.wait(5)
    transport.close()  # while the request is in flight
    Handler.gate.set()
    worker.join(5)
    assert answers and answers[0]["ok"] is True
    assert transport._pool._idle == []  # closed: its connection was closed, not put back


def test_credentials_in_the_url_go_as_http_basic_and_never_into_messages(server: str) -> None:
    import base64

    with_user = server.replace("http://", "http://ci:p%40ss@")
    transport = Transport(with_user, workspace="default")
    assert transport.request("GET", "/api/v1/runs/r1")["ok"] is True
    assert Handler.seen[-1]["headers"]["Authorization"] == "Basic " + base64.b64encode(b"ci:p@ss").decode()
    with pytest.raises(NotFoundError) as caught:
        transport.request("GET", "/api/v1/runs/missing")
    assert "p%40ss" not in str(caught.value) and "p@ss" not in str(caught.value)
    transport.close()
