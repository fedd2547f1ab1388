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


def wait_for_go(p: dict[str, Any]) -> None:
    """The concurrent workload's barrier: say ready, then wait until every client is ready."""
    folder = Path(p["barrier"])
    (folder / f"ready-{os.getpid()}").touch()
    while not (folder / "go").exists():
        time.sleep(0.002)


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
