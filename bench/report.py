"""The figures, their units, which way is better and the targets; the table as text and markdown."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    target: float | None = None  # for Cairn's own SDK on SQLite

    def meets(self, value: float) -> bool:
        assert self.target is not None
        return value >= self.target if self.higher_is_better else value <= self.target

    @property
    def target_text(self) -> str:
        if self.target is None:
            return ""
        return f"{'≥' if self.higher_is_better else '≤'} {fmt(self.target)}"


def figures(run_counts: list[int]) -> list[Figure]:
    out = [
        Figure("ingest_pps", "1. batched ingest", "points/s", True, 300_000),
        Figure("ceiling_pct", "1. ingest as share of the raw database ceiling", "%", True, 60),
        Figure("latency_p50_ms", "2. single log_metric round trip, p50", "ms", False, 1),
        Figure("latency_p99_ms", "2. single log_metric round trip, p99", "ms", False),
        Figure("overhead_us", "3. SDK time per logged point (non-blocking)", "µs", False, 5),
        Figure("concurrent_pps", "4. 16 concurrent clients, aggregate", "points/s", True),
        Figure("concurrent_p99_ms", "4. 16 concurrent clients, p99 batch latency", "ms", False),
        Figure("history_s", "5. read a whole metric history", "s", False, 0.2),
        Figure("buckets_ms", "5. read a metric downsampled to 1,000 buckets", "ms", False, 50),
    ]
    for n in run_counts:
        search_target = 200.0 if n >= 100_000 else None
        out += [
            Figure(f"runs{n}_create_rps", f"6. create {n:,} runs (10 params, 5 metrics)", "runs/s", True),
            Figure(f"runs{n}_filtered_ms", f"6. filtered search over {n:,} runs", "ms", False, search_target),
            Figure(f"runs{n}_ordered_ms", f"6. search over {n:,} runs ordered by a metric", "ms", False),
        ]
    out += [
        Figure("register_ms", "7. register a model version", "ms", False),
        Figure("alias_ms", "7. resolve an alias", "ms", False),
        Figure("big_up_mbps", "8. upload one large file", "MB/s", True),
        Figure("big_down_mbps", "8. download one large file", "MB/s", True),
        Figure("small_up_fps", "8. upload small files", "files/s", True),
        Figure("small_down_fps", "8. download small files", "files/s", True),
        Figure("idle_mb", "9. server memory, idle (PSS)", "MB", False, 100),
        Figure("after_mb", "9. server memory after the suite (PSS)", "MB", False),
        Figure("bytes_per_point", "9. bytes on disk per metric point", "B", False, 60),
        Figure("raw_pps", "10. raw inserts straight into the database", "points/s", True),
    ]
    return out


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def ratio(figure: Figure, ours: float | None, theirs: float | None) -> str:
    """How many times better Cairn is (above 1) or worse (below 1)."""
    if not ours or not theirs:
        return ""
    factor = ours / theirs if figure.higher_is_better else theirs / ours
    return f"{factor:,.0f}x" if factor >= 10 else f"{factor:.1f}x" if factor >= 0.95 else f"{factor:.2f}x"


def rows(results: dict[str, dict[str, Any]], labels: dict[str, str], figs: list[Figure],
         peers: list[str], with_targets: bool) -> tuple[list[str], list[list[str]]]:
    """The table. Targets apply to Cairn's SDK on SQLite (``with_targets``); elsewhere the column is empty."""
    header = ["workload", "unit", *labels.values(), *(f"Cairn vs {labels[p]}" for p in peers), "target", ""]
    body = []
    ours = results.get("cairn", {})
    for figure in figs:
        values = [results.get(name, {}).get(figure.key) for name in labels]
        if all(v is None for v in values):
            continue
        status = ""
        if with_targets and figure.target is not None and ours.get(figure.key) is not None:
            status = "ok" if figure.meets(ours[figure.key]) else "MISSED"
        body.append([figure.label, figure.unit, *map(fmt, values),
                     *(ratio(figure, ours.get(figure.key), results.get(p, {}).get(figure.key)) for p in peers),
                     figure.target_text if with_targets else "", status])
    return header, body


def text_table(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def align(i: int, cell: str) -> str:
        return cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i])

    lines = ["  ".join(align(i, c) for i, c in enumerate(header)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(align(i, c) for i, c in enumerate(r)) for r in body]
    return "\n".join(lines)


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([" --- "] * 2 + [" ---: "] * (len(header) - 2)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)
