"""What every driver shares, standard library only: the command line, timing, and the answer.

A driver is started as ``python <driver>.py WORKLOAD --url URL --params JSON`` and prints one JSON
object on its last line of stdout: ``{"figures": {...}, "notes": [...]}``. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

Workload = Callable[[str, dict[str, Any]], dict[str, Any]]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def repeat(measure: Callable[[int], float], reps: int) -> float:
    """The median of ``reps`` measurements after one warm-up (the warm-up is discarded)."""
    measure(-1)
    return statistics.median(measure(i) for i in range(reps))


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def over_budget(start: float, budget_s: float) -> bool:
    return time.perf_counter() - start > budget_s


def progress(text: str) -> None:
    print(f"      {text}", file=sys.stderr, flush=True)


def make_files(root: Path, count: int, size: int) -> Path:
    """``count`` files of ``size`` random bytes in a fresh folder."""
    folder = root / f"files-{count}x{size}"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"f{i:05d}.bin").write_bytes(os.urandom(size))
    return folder


def make_big_file(root: Path, megabytes: int) -> Path:
    path = root / f"big-{megabytes}MB.bin"
    block = os.urandom(1 << 20)
    with path.open("wb") as out:
        for i in range(megabytes):
            out.write(block[i % 251:] + block[: i % 251])  # each MB differs, so nothing deduplicates
    return path


_SCRATCH: list[Path] = []


def scratch() -> Path:
    """A fresh folder, removed when the driver exits (the artifact workload writes gigabytes)."""
    if not _SCRATCH:
        _SCRATCH.append(Path(tempfile.mkdtemp(prefix="bench-driver-")))
        atexit.register(shutil.rmtree, _SCRATCH[0], True)
    return Path(tempfile.mkdtemp(dir=_SCRATCH[0]))


def fork_clients(n: int, setup: Callable[[int], Any], work: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """``n`` client processes forked from this one (the client library is imported once, so all start at
    once): client ``i`` runs ``setup(i)`` (its own connection and run), waits until all are ready, then
    ``work``, which returns ``{"points", "latencies"}``. Returns the points done, the span from the first
    start to the last end, and every latency."""
    children = []
    for i in range(n):
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        out_r, out_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the client
            code = 1
            try:
                state = setup(i)
                os.write(ready_w, b"r")
                os.read(go_r, 1)
                began = time.time()
                answer = work(state)
                answer.update(began=began, ended=time.time())
                with os.fdopen(out_w, "w") as out:
                    out.write(json.dumps(answer))
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        for fd in (ready_w, go_r, out_w):
            os.close(fd)
        children.append((pid, ready_r, go_w, out_r))
    for _pid, ready_r, _go_w, _out_r in children:
        if os.read(ready_r, 1) != b"r":
            raise RuntimeError("a client failed before it was ready (see above)")
    for _pid, _ready_r, go_w, _out_r in children:
        os.write(go_w, b"g")
    answers = []
    for pid, _ready_r, _go_w, out_r in children:
        with os.fdopen(out_r) as got:
            text = got.read()
        _, status = os.waitpid(pid, 0)
        if status != 0 or not text:
            raise RuntimeError("a client failed (see above)")
        answers.append(json.loads(text))
    span = max(a["ended"] for a in answers) - min(a["began"] for a in answers)
    return {"done": sum(a["points"] for a in answers), "span": span,
            "latencies": [x for a in answers for x in a["latencies"]]}


def concurrent_figures(got: dict[str, Any]) -> dict[str, Any]:
    figures = {"concurrent_pps": got["done"] / got["span"]}
    if got["latencies"]:
        figures["concurrent_p99_ms"] = percentile(got["latencies"], 0.99) * 1e3
    return figures


def create_runs(p: dict[str, Any], setup: Callable[[int], Any],
                create: Callable[[Any, int], None]) -> tuple[int, float]:
    """Workload 6's runs, made by ``p["clients"]`` forked clients side by side (run ``i`` by client
    ``i % clients``), each stopping at the time budget. Returns the runs made and runs/s."""
    clients = p["clients"]

    def work(state: Any) -> dict[str, Any]:
        first, made, start = state[0], 0, time.perf_counter()
        for i in range(first, p["count"], clients):
            create(state[1], i)
            made += 1
            if made % 25 == 0 and over_budget(start, p["budget_s"]):
                break
        return {"points": made, "latencies": []}

    got = fork_clients(clients, lambda i: (i, setup(i)), work)
    progress(f"{got['done']:,} runs in {got['span']:.0f} s")
    return got["done"], got["done"] / got["span"]


def main(workloads: dict[str, Workload]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=sorted(workloads))
    parser.add_argument("--url", required=True)
    parser.add_argument("--params", default="{}")
    args = parser.parse_args()
    params = json.loads(args.params)
    notes: list[str] = []
    params["_notes"] = notes
    figures = workloads[args.workload](args.url, params)
    print(json.dumps({"figures": figures, "notes": notes}), flush=True)
