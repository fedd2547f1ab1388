"""Operations: Prometheus metrics (``/metrics`` with ``CAIRN_METRICS=1``) and JSON log lines.

Counters live in each process. With ``--workers N`` a scrape reaches one worker, so each worker also
writes its counters to ``CAIRN_HOME/metrics/<pid>.json`` once a second, and ``/metrics`` answers the sum
over the files of every worker of this server (its own counters taken live). Each host's server is
scraped on its own; Prometheus sums hosts. Metrics: requests and latencies by route, points ingested,
artifact bytes recorded, rows written by table, and the database pool's connections in use.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from starlette.types import Message, Receive, Scope, Send

from cairn.server.asgi import HttpMiddleware, on_response_start

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_IDS = re.compile(r"/(?:[0-9a-f]{32}|m-[0-9a-f]{32}|[0-9]+)(?=/|$)")
_WRITE = re.compile(r"^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)", re.IGNORECASE)
Labels = tuple[tuple[str, str], ...]
HELP = {
    "cairn_http_requests_total": ("counter", "HTTP requests answered, by method, route and status"),
    "cairn_http_request_seconds": ("histogram", "Time to answer an HTTP request, by route"),
    "cairn_points_ingested_total": ("counter", "Metric points stored"),
    "cairn_artifact_bytes_total": ("counter", "Bytes of artifact versions recorded"),
    "cairn_db_rows_written_total": ("counter", "Rows inserted, updated or deleted, by table"),
    "cairn_db_pool_connections": ("gauge", "Database connections checked out of the pool (in use)"),
    "cairn_db_pool_size": ("gauge", "Database connections the pool keeps"),
}


class Registry:
    """This process's counters and latency histograms; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values: dict[tuple[str, Labels], float] = {}
        self.gauges: list[Callable[[], dict[tuple[str, Labels], float]]] = []

    def add(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self.values[key] = self.values.get(key, 0.0) + amount

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        base = tuple(sorted(labels.items()))
        slot = bisect.bisect_left(BUCKETS, seconds)
        with self._lock:
            for bound in BUCKETS[slot:]:
                key = (f"{name}_bucket", (*base, ("le", str(bound))))
                self.values[key] = self.values.get(key, 0.0) + 1
            for suffix, amount in (("_bucket", 1.0), ("_sum", seconds), ("_count", 1.0)):
                labels_of = (*base, ("le", "+Inf")) if suffix == "_bucket" else base
                key = (f"{name}{suffix}", labels_of)
                self.values[key] = self.values.get(key, 0.0) + amount

    def snapshot(self) -> list[tuple[str, Labels, float]]:
        with self._lock:
            items = list(self.values.items())
        for gauge in self.gauges:
            items.extend(gauge().items())
        return [(name, labels, value) for (name, labels), value in items]


REGISTRY = Registry()


def count(name: str, amount: float = 1.0, **labels: str) -> None:
    """Add to a counter of this process (cheap: a dict update under a lock)."""
    REGISTRY.add(name, amount, **labels)


def watch_engine(engine: Engine, *, pool: bool = True) -> None:
    """Rows written by table, and (with ``pool``) the pool's use, for ``engine``."""
    @event.listens_for(engine, "after_cursor_execute")
    def _written(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        match = _WRITE.match(statement)
        if match is not None and cursor.rowcount and cursor.rowcount > 0:
            REGISTRY.add("cairn_db_rows_written_total", cursor.rowcount, table=match.group(2).lower())

    def pool_use() -> dict[tuple[str, Labels], float]:
        status = engine.pool
        used = float(getattr(status, "checkedout", lambda: 0)())
        size = float(getattr(status, "size", lambda: 0)())
        return {("cairn_db_pool_connections", ()): used, ("cairn_db_pool_size", ()): size}
    if pool:
        REGISTRY.gauges.append(pool_use)


class MetricsMiddleware(HttpMiddleware):
    """Counts every HTTP request and its latency under its route's template (ids folded, so a label
    never grows with the data)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = {"code": 500}

        def seen(message: Message) -> Message:
            status["code"] = message["status"]
            return message
        try:
            await self.app(scope, receive, on_response_start(send, seen))
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or _IDS.sub("/{id}", scope["path"])
            REGISTRY.add("cairn_http_requests_total", method=scope["method"], route=name, status=str(status["code"]))
            REGISTRY.observe("cairn_http_request_seconds", time.perf_counter() - started, route=name)


class Publisher:
    """Writes this process's counters to ``folder/<pid>.json`` once a second, for its sibling workers."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._loop, name="cairn-metrics", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            time.sleep(1.0)
            self.write()

    def write(self) -> None:
        data = json.dumps([[n, list(map(list, labels)), v] for n, labels, v in REGISTRY.snapshot()
                           if not n.startswith("cairn_db_pool")])
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
        with os.fdopen(fd, "w") as out:
            out.write(data)
        os.replace(tmp, self.folder / f"{os.getpid()}.json")


def exposition(folder: Path | None) -> str:
    """The Prometheus text format: this process live, plus the other workers' latest files."""
    totals: dict[tuple[str, Labels], float] = {}
    for name, labels, value in REGISTRY.snapshot():
        totals[(name, labels)] = totals.get((name, labels), 0.0) + value
    for name, labels, value in _siblings(folder):
        totals[(name, labels)] = totals.get((name, labels), 0.0) + value
    lines: list[str] = []
    for family, (kind, text) in HELP.items():
        lines += [f"# HELP {family} {text}", f"# TYPE {family} {kind}"]
        for (name, labels), value in sorted(totals.items()):
            if name == family or (kind == "histogram" and name.rsplit("_", 1)[0] == family):
                rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                lines.append(f"{name}{{{rendered}}} {value:g}" if rendered else f"{name} {value:g}")
    return "\n".join(lines) + "\n"


def _siblings(folder: Path | None) -> list[tuple[str, Labels, float]]:
    if folder is None or not folder.is_dir():
        return []
    found: list[tuple[str, Labels, float]] = []
    for path in folder.glob("*.json"):
        if path.stem == str(os.getpid()):
            continue
        try:
            for name, labels, value in json.loads(path.read_text()):
                found.append((name, tuple((k, v) for k, v in labels), float(value)))
        except (OSError, ValueError):
            continue  # a worker replacing its file this instant: its numbers come next scrape
    return found


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class JsonFormatter(logging.Formatter):
    """One JSON object per log line (time, level, logger, message, and the exception if any), for log
    collectors that parse lines rather than read them."""

    converter = time.gmtime  # type: ignore[assignment]  # UTC, as the "Z" says

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
                                "level": record.levelname.lower(), "logger": record.name,
                                "message": record.getMessage(), "pid": record.process}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def log_config(*, json_lines: bool) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the server and uvicorn: plain text, or JSON lines."""
    formatter = ({"()": "cairn.server.observability.JsonFormatter"} if json_lines
                 else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"})
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
    loggers = {name: {"handlers": ["main"], "level": "INFO", "propagate": False}
               for name in ("cairn", "uvicorn", "uvicorn.error")}
    loggers["uvicorn.access"] = {"handlers": ["main"], "level": "WARNING", "propagate": False}
    return {"version": 1, "disable_existing_loggers": False, "formatters": {"main": formatter},
            "handlers": {"main": handler}, "loggers": loggers}
