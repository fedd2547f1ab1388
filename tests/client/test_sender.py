"""Tests for the background sender: ordering, batching, retries, spooling, replay, memory bound."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from cairn.client._http import Answer
from cairn.client._run import make_probe, make_send
from cairn.client._sender import Op, RetryableError, Sender
from cairn.client._spool import SpoolLockedError, list_spool, replay_spool_file
from cairn.client._transport import Transport


class FakeServer:
    """Stands in for the HTTP transport.

    ``up=False`` makes every send raise RetryableError; ``fail_next`` fails that many sends;
    ``budget`` lets that many sends succeed and then goes down; ``reject`` paths fail for good;
    ``gate`` (an Event) makes sends block until it is set; ``refuse`` (a predicate on the decoded
    body) refuses a batch for good.  Applied ops are deduplicated by idempotency key, like the real server.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.attempts: list[Op] = []
        self.applied: list[Op] = []
        self.keys: set[str] = set()
        self.up = True
        self.fail_next = 0
        self.budget: int | None = None
        self.reject: set[str] = set()
        self.gate: threading.Event | None = None
        self.delay = 0.0
        self.probes = 0
        self.refuse: Callable[[dict[str, Any]], bool] | None = None

    def send(self, op: Op) -> None:
        with self.lock:
            self.attempts.append(op)
        if self.gate is not None:
            self.gate.wait()
        time.sleep(self.delay)
        with self.lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                raise RetryableError("503 Service Unavailable")
            if self.budget is not None:
                if self.budget == 0:
                    self.up = False
                self.budget -= 1
            if not self.up:
                raise RetryableError("connection refused")
            if op.path in self.reject:
                raise ValueError("422 Unprocessable Entity")
            if self.refuse is not None and op.body and self.refuse(orjson.loads(op.body)):
                raise ValueError("400 a param value is too long")
            if op.idempotency_key not in self.keys:
                self.keys.add(op.idempotency_key)
                self.applied.append(op)

    def probe(self) -> bool:
        self.probes += 1
        return self.up

    def events(self) -> list[tuple[str, object]]:
        """Applied writes flattened: ("m", (run, key, step, value)) per point, ("op", path) otherwise."""
        out: list[tuple[str, object]] = []
        with self.lock:
            applied = list(self.applied)
        for op in applied:
            if op.path.endswith("/batch"):
                for m in orjson.loads(op.body or b"").get("metrics", []):
                    for step, value in zip(m["steps"], m["values"], strict=True):
                        out.append(("m", (op.run_id, m["key"], step, value)))
            else:
                out.append(("op", op.path))
        return out

    def points(self) -> list[Any]:
        return [p for kind, p in self.events() if kind == "m"]

    def batches(self) -> list[dict[str, Any]]:
        with self.lock:
            return [orjson.loads(op.body or b"") for op in self.applied if op.path.endswith("/batch")]

    def ends(self) -> list[dict[str, Any]]:
        """Bodies of the run updates (``PATCH /api/v1/runs/<id>``) applied."""
        with self.lock:
            return [orjson.loads(op.body or b"") for op in self.applied if op.method == "PATCH"]


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def make_sender(tmp_path: Path, server: FakeServer) -> Iterator[Callable[..., Sender]]:
    senders: list[Sender] = []

    def make(**kwargs: object) -> Sender:
        options: dict[str, object] = {
            "spool_dir": tmp_path / "spool",
            "target": "http://cairn.test",
            "workspace": "ml",
            "retry_timeout": 0.3,
            "probe_interval": 0.05,
            "flush_interval": 0.05,
        }
        options.update(kwargs)
        sender = Sender(server.send, server.probe, **options)  # type: ignore[arg-type]
        senders.append(sender)
        return sender

    yield make
    if server.gate is not None:
        server.gate.set()
    server.up = True
    for sender in senders:
        sender.close(timeout=5)


def op(path: str, run_id: str = "r1") -> Op:
    return Op("POST", path, b"{}", run_id=run_id)


# ----------------------------------------------------------------------------- ordering, batching


def test_order_of_metrics_and_other_writes_is_kept(server: FakeServer, make_sender: Callable[..., Sender]) -> None:
    s = make_sender(flush_interval=10)
    s.enqueue(op("/api/v1/runs", run_id="r1"))
    s.log_metrics("r1", {"loss": 1.0, "acc": 0.1}, 0, 1000)
    s.log_metrics("r2", {"loss": 5.0}, 0, 1000)
    s.log_metrics("r1", {"loss": 0.5}, 1, 1001)
    s.enqueue(op("/api/v1/runs/r1/params"))
    s.log_metrics("r1", {"loss": 0.25}, 2, 1002)
    s.enqueue(op("/api/v1/runs/r1/finish"))
    assert s.flush(timeout=5)
    assert server.events() == [
        ("op", "/api/v1/runs"),
        ("m", ("r1", "loss", 0, 1.0)),
        ("m", ("r1", "loss", 1, 0.5)),
        ("m", ("r1", "acc", 0, 0.1)),
        ("m", ("r2", "loss", 0, 5.0)),
        ("op", "/api/v1/runs/r1/params"),
        ("m", ("r1", "loss", 2, 0.25)),
        ("op", "/api/v1/runs/r1/finish"),
    ]
    batch = server.batches()[0]
    assert batch == {
        "metrics": [
            {"key": "loss", "steps": [0, 1], "values": [1.0, 0.5], "timestamps": [1000, 1001]},
            {"key": "acc", "steps": [0], "values": [0.1], "timestamps": [1000]},
        ]
    }
    assert server.applied[1].method == "POST"
    assert server.applied[1].path == "/api/v1/runs/r1/batch"


def test_buffer_is_sealed_by_size(server: FakeServer, make_sender: Callable[..., Sender]) -> None:
    s = make_sender(flush_interval=30, max_batch_points=10)
    for step in range(25):
        s.log_metrics("r1", {"x": float(step)}, step, step)
    wait_for(lambda: len(server.points()) == 20)
    for step in range(25, 30):  # the last 5 points waited for more: these 5 fill their buffer
        s.log_metrics("r1", {"x": float(step)}, step, step)
    wait_for(lambda: len(server.points()) == 30)
    sizes = [len(b["metrics"][0]["steps"]) for b in server.batches()]
    assert sizes[-1] == 10 and sizes[:-1] in ([10, 10], [20])  # two sealed buffers may go out together
    assert [p[2] for p in server.points()] == list(range(30))


def test_waiting_buffers_of_metrics_go_out_together(server: FakeServer, make_sender: Callable[..., Sender]) -> None:
    """When the loop logs faster than requests go out, a run's buffers of metrics that wait behind one another
    are sent as one request (up to 50,000 points); params and a run's end are never merged into them."""
    server.gate = threading.Event()
    s = make_sender(flush_interval=30, max_batch_points=1_000)
    s.log_metrics("r1", {"x": -1.0}, -1, 0)
    s.flush(timeout=0.01)  # sealed, and the sender blocks on it at the gate
    wait_for(lambda: len(server.attempts) == 1)
    for step in range(120_000):
        s.log_metrics("r1", {"x": float(step), "y": 0.5}, step, step)
        if step == 59_999:
            s.log_params("r1", {"lr": 0.1})
            s.log_params("r1", {"lr": 0.2})  # another value seals the buffer: two requests
    s.log_metrics("r2", {"z": 1.0}, 0, 0)
    s.end_run("r1", "FINISHED", 5)
    server.gate.set()
    assert s.flush(timeout=10)
    bodies = server.batches()
    assert len(bodies) < 20  # 240 sealed buffers of metrics
    assert all(sum(len(m["steps"]) for m in b.get("metrics", [])) <= 50_000 for b in bodies)
    xs = [p for p in server.points() if p[0] == "r1" and p[1] == "x"]
    assert [p[2] for p in xs] == list(range(-1, 120_000))
    assert [b["params"] for b in bodies if "params" in b] == [{"lr": 0.1}, {"lr": 0.2}]
    r1 = [orjson.loads(op.body or b"") for op in server.applied if op.path == "/api/v1/runs/r1/batch"]
    assert [b.get("status") for b in r1].count("FINISHED") == 1 and r1[-1]["status"] == "FINISHED"
    assert sum(op.path == "/api/v1/runs/r2/batch" for op in server.applied) == 1


def test_buffer_is_sealed_by_time(server: FakeServer, make_sender: Callable[..., Sender]) -> None:
    s = make_sender(flush_interval=0.05)
    s.log_metrics("r1", {"x": 1.0}, 0, 0)
    s.log_metrics("r1", {"x": 2.0}, 1, 0)
    wait_for(lambda: len(server.points()) == 2, timeout=2)
    assert len(server.batches()) == 1


def test_flush_waits_for_everything_and_times_out_when_stuck(
    server: FakeServer, make_sender: Callable[..., Sender]
) -> None:
    s = make_sender(flush_interval=30)
    assert s.flush(timeout=1)  # nothing to do
    for step in range(100):
        s.log_metrics("r1", {"a": 1.0, "b": 2.0}, step, step)
    assert s.flush(timeout=5)
    assert len(server.points()) == 200
    server.gate = threading.Event()
    s.enqueue(op("/slow"))
    assert not s.flush(timeout=0.1)
    server.gate.set()
    assert s.flush(timeout=5)
    assert server.events()[-1] == ("op", "/slow")


def test_non_finite_values_are_encoded_as_strings(server: FakeServer, make_sender: Callable[..., Sender]) -> None:
    s = make_sender()
    s.log_metrics("r1", {"x": math.nan}, 0, 0)
    s.log_metrics("r1", {"x": math.inf}, 1, 0)
    s.log_metrics("r1", {"x": -math.inf}, 2, 0)
    s.log_metrics("r1", {"x": 3}, 3, 0)  # an int is fine too
    s.log_metrics("r1", {"y": 1e308}, 0, 0)
    s.log_metrics("r1", {"y": 1e308}, 1, 0)  # the sum overflows; both are finite
    assert s.flush(timeout=5)
    [batch] = server.batches()
    assert batch["metrics"] == [
        {"key": "x", "steps": [0, 1, 2, 3], "values": ["NaN", "Infinity", "-Infinity", 3.0], "timestamps": [0] * 4},
        {"key": "y", "steps": [0, 1], "values": [1e308, 1e308], "timestamps": [0, 0]},
    ]


def test_non_numeric_metric_is_dropped_and_reported(server: FakeServer, make_sender: Callable[..., Sender]) -> None:
    s = make_sender()
    s.log_metrics("r1", {"ok": 1.0, "bad": "high"}, 0, 0)  # type: ignore[dict-item]
    assert s.flush(timeout=5)
    assert server.points() == [("r1", "ok", 0, 1.0)]
    assert len(s.errors) == 1
    assert "'bad'" in s.errors[0]


def test_a_runs_params_tags_metrics_and_end_go_in_one_request(
    server: FakeServer, make_sender: Callable[..., Sender]
) -> None:
    s = make_sender(flush_interval=30)
    s.log_params("r1", {"lr": 0.1, "depth": 3})
    s.log_metrics("r1", {"loss": 0.5}, 0, 7)
    s.set_tags("r1", {"kind": "trial"})
    s.log_params("r1", {"lr": 0.1})  # the same value again: nothing new
    s.end_run("r1", "FINISHED", 99)
    assert s.flush(timeout=5)
    assert server.batches() == [{
        "metrics": [{"key": "loss", "steps": [0], "values": [0.5], "timestamps": [7]}],
        "params": {"lr": 0.1, "depth": 3}, "tags": {"kind": "trial"}, "status": "FINISHED", "end_time": 99}]


def test_a_key_buffered_again_with_another_value_goes_in_the_next_request(
    server: FakeServer, make_sender: Callable[..., Sender]
) -> None:
    s = make_sender(flush_interval=30)
    s.log_params("r1", {"lr": 0.1})
    s.log_params("r1", {"lr": 0.2, "depth": 3})  # lr's history must keep 0.1, then 0.2
    s.log_params("r1", {"depth": 3.0})  # equal in Python, but stored as "3" and then "3.0"
    s.set_tags("r1", {"k": "a"})
    s.enqueue(op("/api/v1/runs/r1/tags"))  # e.g. a deleted tag: order is kept around it
    s.set_tags("r1", {"k": "b"})
    assert s.flush(timeout=5)
    assert [b.get("params") for b in server.batches()] == [{"lr": 0.1}, {"lr": 0.2, "depth": 3}, {"depth": 3.0},
                                                           None]
    assert [(o.path, orjson.loads(o.body or b"").get("tags")) for o in server.applied] == [
        ("/api/v1/runs/r1/batch", None), ("/api/v1/runs/r1/batch", None), ("/api/v1/runs/r1/batch", {"k": "a"}),
        ("/api/v1/runs/r1/tags", None),
        ("/api/v1/runs/r1/batch", {"k": "b"})]


def test_buffer_is_sealed_at_the_items_limit(server: FakeServer, make_sender: Callable[..., Sender]) -> None:
    s = make_sender(flush_interval=30, max_batch_items=3)
    s.log_params("r1", {"a": 1, "b": 2})
    s.log_params("r1", {"c": 3, "d": 4})
    assert s.flush(timeout=5)
    assert [b["params"] for b in server.batches()] == [{"a": 1, "b": 2}, {"c": 3, "d": 4}]


def test_a_refused_request_is_sent_again_part_by_part(server: FakeServer, make_sender: Callable[..., Sender]) -> None:
    server.refuse = lambda body: "params" in body  # one bad param must not cost the metrics or the run's end
    s = make_sender(flush_interval=30)
    s.log_metrics("r1", {"loss": 0.5, "bad": "high"}, 0, 7)  # type: ignore[dict-item]
    s.log_params("r1", {"lr": "x" * 10})
    s.end_run("r1", "FAILED", 99)
    assert s.flush(timeout=5)
    assert server.batches() == [{"metrics": [{"key": "loss", "steps": [0], "values": [0.5], "timestamps": [7]}]}]
    assert server.ends() == [{"status": "FAILED", "end_time": 99}]  # as the run update, which any server knows
    assert len(s.errors) == 2 and "'bad'" in s.errors[0] and "a param value is too long" in s.errors[1]


def _log_a_run_with_a_bad_param(s: Sender) -> None:
    s.log_params("r1", {"lr": "x" * 10})
    s.log_metrics("r1", {"loss": 0.5}, 0, 7)
    s.set_tags("r1", {"kind": "trial"})
    s.end_run("r1", "FINISHED", 99)


def test_a_refused_request_from_an_offline_spool_is_replayed_part_by_part(
    server: FakeServer, make_sender: Callable[..., Sender], tmp_path: Path
) -> None:
    server.refuse = lambda body: "params" in body
    s = make_sender(offline=True, flush_interval=30)
    _log_a_run_with_a_bad_param(s)
    s.close(timeout=5)
    [info] = list_spool(tmp_path / "spool")
    refused: list[tuple[Op, Exception]] = []
    assert replay_spool_file(info.path, server.send, on_error=lambda o, exc: refused.append((o, exc))) == 1
    assert server.batches() == [{"metrics": [{"key": "loss", "steps": [0], "values": [0.5], "timestamps": [7]}]},
                                {"tags": {"kind": "trial"}}]
    assert server.ends() == [{"status": "FINISHED", "end_time": 99}]
    [(bad, exc)] = refused
    assert orjson.loads(bad.body or b"") == {"params": {"lr": "x" * 10}} and "too long" in str(exc)


def test_a_replay_interrupted_inside_a_split_stores_each_part_once(
    server: FakeServer, make_sender: Callable[..., Sender], tmp_path: Path
) -> None:
    server.refuse = lambda body: "params" in body
    s = make_sender(offline=True, flush_interval=30)
    _log_a_run_with_a_bad_param(s)
    s.close(timeout=5)
    [info] = list_spool(tmp_path / "spool")
    server.budget = 2  # the whole batch (refused), its metrics, then the server goes away
    with pytest.raises(RetryableError):
        replay_spool_file(info.path, server.send)
    server.budget, server.up = None, True
    replay_spool_file(info.path, server.send)
    assert [b.get("metrics", b.get("tags")) for b in server.batches()] == [
        [{"key": "loss", "steps": [0], "values": [0.5], "timestamps": [7]}], {"kind": "trial"}]
    assert server.ends() == [{"status": "FINISHED", "end_time": 99}]


def test_a_refused_request_spooled_while_the_server_was_down_is_replayed_part_by_part(
    server: FakeServer, make_sender: Callable[..., Sender]
) -> None:
    server.refuse = lambda body: "params" in body
    s = make_sender(retry_timeout=0.1, probe_interval=0.05, flush_interval=30)
    server.up = False
    _log_a_run_with_a_bad_param(s)
    assert s.flush(timeout=5)
    assert s.spooled
    server.up = True
    wait_for(lambda: not s.spooled and s.state == "online")
    assert [b.get("metrics", b.get("tags")) for b in server.batches()] == [
        [{"key": "loss", "steps": [0], "values": [0.5], "timestamps": [7]}], {"kind": "trial"}]
    assert server.ends() == [{"status": "FINISHED", "end_time": 99}]
    assert len(s.errors) == 1 and "too long" in s.errors[0]


def test_a_server_that_knows_no_end_in_a_batch_still_gets_the_runs_end(tmp_path: Path) -> None:
    """An older server answers 400 to a batch with status/end_time: the run must not stay RUNNING."""
    stored: dict[str, Any] = {"metrics": 0, "updates": []}

    def older_server(method: str, target: str, headers: dict[str, str], content: bytes) -> Answer:
        body = orjson.loads(content or b"{}")
        if method == "POST" and target == "/api/v1/runs/r1/batch":
            unknown = set(body) - {"metrics", "params", "tags"}
            if unknown:
                return 400, {}, orjson.dumps({"error_code": "INVALID_PARAMETER_VALUE",
                                              "message": f"unknown field(s) {sorted(unknown)}"})
            stored["metrics"] += sum(len(m["values"]) for m in body.get("metrics", []))
            return 200, {}, b"{}"
        if method == "PATCH" and target == "/api/v1/runs/r1":
            stored["updates"].append(body)
            return 200, {}, orjson.dumps({"id": "r1", **body})
        return 404, {}, b'{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "not found"}'

    transport = Transport("http://old.test", workspace="ml", handler=older_server)
    s = Sender(make_send(transport), make_probe(transport), spool_dir=tmp_path / "spool", target="http://old.test",
               workspace="ml", flush_interval=30)
    try:
        s.log_metrics("r1", {"loss": 0.5}, 0, 7)
        s.end_run("r1", "FINISHED", 99)  # with the last metrics
        s.end_run("r1", "FAILED", 100)  # alone in its buffer
        assert s.flush(timeout=5)
        assert stored == {"metrics": 1, "updates": [{"status": "FINISHED", "end_time": 99},
                                                    {"status": "FAILED", "end_time": 100}]}
        assert s.errors == []
    finally:
        s.close(timeout=5)
        transport.close()


# ----------------------------------------------------------------------------- retries, spooling, replay


def test_retry_then_success_is_stored_once_with_the_same_key(
    server: FakeServer, make_sender: Callable[..., Sender]
) -> None:
    s = make_sender(retry_timeout=5)
    server.fail_next = 3
    s.enqueue(op("/api/v1/runs"))
    started = time.monotonic()
    assert s.flush(timeout=5)
    # backoff 0.05 + 0.1 + 0.2
    assert time.monotonic() - started >= 0.3
    assert len(server.attempts) == 4
    assert len({a.idempotency_key for a in server.attempts}) == 1
    assert server.events() == [("op", "/api/v1/runs")]
    assert not s.spooled
    assert s.errors == []


def test_retry_timeout_spools_then_probe_replays_and_goes_online(
    server: FakeServer, make_sender: Callable[..., Sender], tmp_path: Path
) -> None:
    s = make_sender(retry_timeout=0.2, probe_interval=0.1)
    server.up = False
    s.enqueue(op("/api/v1/runs"))
    s.log_metrics("r1", {"x": 1.0}, 0, 0)
    s.enqueue(op("/params"))
    assert s.flush(timeout=5)  # spooled counts as done
    assert s.spooled
    assert s.state == "spooling"
    [info] = list_spool(tmp_path / "spool")
    assert info.ops == 3
    assert info.locked
    assert info.workspace == "ml"
    with pytest.raises(SpoolLockedError):
        replay_spool_file(info.path, server.send)
    probes = server.probes
    wait_for(lambda: server.probes > probes)  # probing while down
    server.up = True
    wait_for(lambda: not s.spooled and s.state == "online")
    assert not info.path.exists()
    s.log_metrics("r1", {"x": 2.0}, 1, 0)
    assert s.flush(timeout=5)
    assert server.events() == [
        ("op", "/api/v1/runs"),
        ("m", ("r1", "x", 0, 1.0)),
        ("op", "/params"),
        ("m", ("r1", "x", 1, 2.0)),
    ]


def test_failure_during_replay_keeps_the_rest_and_sends_no_line_twice(
    server: FakeServer, make_sender: Callable[..., Sender]
) -> None:
    s = make_sender(retry_timeout=0.1, probe_interval=0.05)
    server.up = False
    for i in range(6):
        s.enqueue(op(f"/w{i}"))
    assert s.flush(timeout=5)
    assert s.spooled
    server.fail_next = 0
    with server.lock:
        server.attempts.clear()
        server.budget = 2  # two replayed ops go through, then the server falls over again
        server.up = True
    wait_for(lambda: len(server.applied) == 2 and s.state == "spooling")
    assert s.spooled
    with server.lock:
        server.budget = None
        server.up = True
    wait_for(lambda: not s.spooled)
    assert server.events() == [("op", f"/w{i}") for i in range(6)]
    applied_keys = [a.idempotency_key for a in server.applied]
    sent_ok = [a for a in server.attempts if a.idempotency_key in applied_keys[:2]]
    assert len(sent_ok) == 2  # the two ops that went through were not sent again


def test_offline_mode_spools_everything_and_never_probes(
    server: FakeServer, make_sender: Callable[..., Sender], tmp_path: Path
) -> None:
    s = make_sender(offline=True)
    s.enqueue(op("/api/v1/runs"))
    for step in range(10):
        s.log_metrics("r1", {"x": float(step)}, step, 0)
    s.enqueue(op("/finish"))
    assert s.flush(timeout=5)
    assert s.spooled
    s.close(timeout=5)  # the sender's thread has ended: nothing it did is still to come
    assert server.attempts == []
    assert server.probes == 0
    [info] = list_spool(tmp_path / "spool")
    assert not info.locked
    assert info.target == "http://cairn.test"
    assert replay_spool_file(info.path, server.send) == 3
    assert [e for e in server.events() if e[0] == "op"] == [("op", "/api/v1/runs"), ("op", "/finish")]
    assert [p[2] for p in server.points()] == list(range(10))


def test_upload_op_spools_a_copy_of_the_file(
    server: FakeServer, make_sender: Callable[..., Sender], tmp_path: Path
) -> None:
    s = make_sender(offline=True)
    data = tmp_path / "ckpt.pt"
    data.write_bytes(b"v1")
    s.enqueue(Op("PUT", "/api/v1/runs/r1/files/ckpt.pt", None, file=str(data), run_id="r1"))
    assert s.flush(timeout=5)
    data.unlink()
    s.close(timeout=5)
    contents: list[bytes] = []
    [info] = list_spool(tmp_path / "spool")
    replay_spool_file(info.path, lambda o: contents.append(Path(o.file or "").read_bytes()))
    assert contents == [b"v1"]


def test_close_with_server_down_spools_before_its_deadline(
    server: FakeServer, make_sender: Callable[..., Sender], tmp_path: Path
) -> None:
    s = make_sender(retry_timeout=30)
    server.up = False
    s.enqueue(op("/api/v1/runs"))
    s.log_metrics("r1", {"x": 1.0}, 0, 0)
    started = time.monotonic()
    s.close(timeout=1.0)
    assert time.monotonic() - started < 10  # far from the 30 s retry timeout, whatever the machine's load
    assert s.spooled
    [info] = list_spool(tmp_path / "spool")
    assert info.ops == 2
    assert not info.locked


def test_close_with_a_slow_server_spools_what_it_cannot_send_in_time(
    server: FakeServer, make_sender: Callable[..., Sender], tmp_path: Path
) -> None:
    s = make_sender()
    server.delay = 0.02
    for i in range(100):
        s.enqueue(op(f"/w{i}"))
    s.close(timeout=0.5)
    sent_live = len(server.applied)
    assert sent_live < 100  # all 100 take 2 s: close gave up at its deadline and spooled the rest
    [info] = list_spool(tmp_path / "spool")
    assert info.ops == 100 - sent_live
    server.delay = 0
    replay_spool_file(info.path, server.send)
    assert server.events() == [("op", f"/w{i}") for i in range(100)]


def test_permanent_error_is_recorded_and_not_retried(
    server: FakeServer, make_sender: Callable[..., Sender], caplog: pytest.LogCaptureFixture
) -> None:
    s = make_sender()
    server.reject = {"/bad"}
    with caplog.at_level(logging.WARNING, logger="cairn"):
        s.enqueue(op("/a"))
        s.enqueue(op("/bad"))
        s.enqueue(op("/b"))
        assert s.flush(timeout=5)
    assert [a.path for a in server.attempts] == ["/a", "/bad", "/b"]
    assert server.events() == [("op", "/a"), ("op", "/b")]
    assert len(s.errors) == 1
    assert "/bad" in s.errors[0]
    assert "422" in s.errors[0]
    assert any("/bad" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


# ----------------------------------------------------------------------------- memory bound


def test_memory_limit_spills_to_disk_instead_of_waiting(server: FakeServer, make_sender: Callable[..., Sender]) -> None:
    s = make_sender(retry_timeout=30, probe_interval=0.05, max_queued_points=50, max_batch_points=10)
    server.up = False
    s.enqueue(op("/api/v1/runs"))
    wait_for(lambda: s.state == "retrying", timeout=2)
    started = time.monotonic()
    for step in range(120):  # over the limit, far below 2x once spilled
        s.log_metrics("r1", {"x": float(step)}, step, 0)
    wait_for(lambda: s.spooled, timeout=2)
    assert time.monotonic() - started < 15  # did not wait for the 30 s retry timeout
    assert s.flush(timeout=2)
    server.up = True
    wait_for(lambda: not s.spooled)
    assert s.flush(timeout=5)
    assert server.events()[0] == ("op", "/api/v1/runs")
    assert [p[2] for p in server.points()] == list(range(120))


def test_far_over_the_limit_log_metrics_blocks_until_there_is_room(
    server: FakeServer, make_sender: Callable[..., Sender]
) -> None:
    s = make_sender(max_queued_points=20, max_batch_points=5)
    server.gate = threading.Event()  # the thread is stuck inside one send
    s.enqueue(op("/api/v1/runs"))
    wait_for(lambda: len(server.attempts) == 1)
    logged = 0

    def train() -> None:
        nonlocal logged
        for step in range(200):
            s.log_metrics("r1", {"x": float(step)}, step, 0)
            logged += 1

    worker = threading.Thread(target=train)
    worker.start()
    wait_for(lambda: logged >= 35)
    worker.join(timeout=0.2)  # no further progress while the send is stuck
    assert worker.is_alive()
    assert 35 <= logged <= 40  # blocked once 2 x max_queued_points (the op in flight counts too)
    server.gate.set()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert s.flush(timeout=5)
    wait_for(lambda: not s.spooled)
    assert [p[2] for p in server.points()] == list(range(200))


# ----------------------------------------------------------------------------- threads, lifecycle


def test_logging_from_many_threads_loses_nothing(server: FakeServer, make_sender: Callable[..., Sender]) -> None:
    s = make_sender(max_batch_points=500)
    n_threads, steps = 8, 1000

    def train(t: int) -> None:
        for step in range(steps):
            s.log_metrics(f"run{t % 2}", {f"t{t}.loss": float(step), f"t{t}.acc": 0.5}, step, step)
            if step % 250 == 0:
                s.enqueue(op(f"/t{t}/{step}", run_id=f"run{t % 2}"))

    threads = [threading.Thread(target=train, args=(t,)) for t in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert s.flush(timeout=10)
    points = server.points()
    assert len(points) == n_threads * steps * 2
    for t in range(n_threads):
        steps_seen = [p[2] for p in points if p[1] == f"t{t}.loss"]
        assert steps_seen == list(range(steps))
    assert sum(1 for e in server.events() if e[0] == "op") == n_threads * 4


def test_close_is_idempotent_and_later_writes_are_ignored(
    server: FakeServer, make_sender: Callable[..., Sender]
) -> None:
    s = make_sender()
    s.log_metrics("r1", {"x": 1.0}, 0, 0)
    s.close(timeout=5)
    s.close(timeout=5)
    s.close()
    assert server.points() == [("r1", "x", 0, 1.0)]
    s.log_metrics("r1", {"x": 2.0}, 1, 0)
    s.enqueue(op("/late"))
    assert len(server.points()) == 1
    assert len(s.errors) == 2
    assert s.flush(timeout=1)


EXIT_WITHOUT_CLOSE = """
import sys
from pathlib import Path
from cairn.client._sender import Op, RetryableError, Sender

def send(op):
    raise RetryableError("connection refused")

s = Sender(send, lambda: False, spool_dir=Path(sys.argv[1]), target="t", workspace="w", retry_timeout=0.2)
s.enqueue(Op("POST", "/api/v1/runs", b"{}"))
for step in range(100):
    s.log_metrics("r1", {"loss": 1.0}, step, 0)
print("bye")
"""


def test_interpreter_exit_flushes_to_the_spool_quietly(tmp_path: Path) -> None:
    child = subprocess.run(
        [sys.executable, "-c", EXIT_WITHOUT_CLOSE, str(tmp_path)], capture_output=True, text=True, timeout=20
    )
    assert child.returncode == 0
    assert child.stdout == "bye\n"
    assert "Traceback" not in child.stderr
    [info] = list_spool(tmp_path)
    assert info.ops == 2
    assert not info.locked


def test_a_burst_of_points_arrives_whole_and_in_order(server: FakeServer,
                                                      make_sender: Callable[..., Sender]) -> None:
    """A tight training loop (the time per point is measured by the benchmark's ``overhead`` workload)."""
    s = make_sender(flush_interval=0.2, max_batch_points=10_000)
    values = {f"metric_{i}": 0.1 * i for i in range(10)}
    steps = 20_000
    for step in range(steps):
        s.log_metrics("r1", values, step, 1_700_000_000_000)
    assert s.flush(timeout=10)
    for key in values:
        assert [p[2] for p in server.points() if p[1] == key] == list(range(steps))
    assert len(server.points()) == steps * len(values)
    assert all(sum(len(m["steps"]) for m in b["metrics"]) <= 50_000 for b in server.batches())
