"""The server process: TCP_NODELAY on accepted sockets, and several workers sharing one store."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cairn.server.runner import set_nodelay
from tests.conftest import LiveServer


def test_set_nodelay_on_accepted_socket() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        with client, accepted:
            set_nodelay(accepted)
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


@pytest.mark.slow
def test_two_workers_answer_kept_alive_requests(store_uri: str, tmp_path: Path) -> None:
    """A lost TCP_NODELAY (~40 ms per request) shows in the benchmark's latency workload, not here."""
    server = LiveServer(tmp_path / "home", store_uri, workers=2).start()
    try:
        with httpx.Client(base_url=server.url) as client:
            run_id = client.post("/api/v1/runs", json={"experiment_name": "w"}).json()["run_id"]
            for step in range(60):
                response = client.post(f"/api/v1/runs/{run_id}/batch",
                                       json={"metrics": [{"key": "x", "steps": [step], "values": [1.0]}]})
                assert response.status_code == 200
            assert client.get(f"/api/v1/runs/{run_id}").json()["metrics"]["x"]["count"] == 60
    finally:
        server.stop()


@pytest.mark.slow
def test_sigterm_lets_a_request_in_flight_finish(store_uri: str, tmp_path: Path) -> None:
    """Graceful shutdown: a load balancer's rolling restart must not cut an upload half-way."""
    server = LiveServer(tmp_path / "home", store_uri).start()
    sending = threading.Event()
    answers: list[httpx.Response] = []

    def slow_body() -> Iterator[bytes]:
        yield b"a" * 1024 * 1024
        sending.set()
        time.sleep(1.5)  # the server is told to stop while this body is still arriving
        yield b"b" * 1024 * 1024

    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            run_id = client.post("/api/v1/runs", json={"experiment_name": "w"}).json()["run_id"]
            upload = threading.Thread(target=lambda: answers.append(client.put(
                f"/api/v1/runs/{run_id}/artifacts", params={"path": "slow.bin"}, content=slow_body())))
            upload.start()
            assert sending.wait(30)
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            upload.join(60)
        assert [a.status_code for a in answers] == [201], [a.text for a in answers]
        assert answers[0].json()["size"] == 2 * 1024 * 1024
        assert server.process.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once done
    finally:
        server.stop()
