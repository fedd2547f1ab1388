"""Metric rollups: kept exact at ingest, rebuilt by the migration, and downsampled reads that agree with a
brute-force computation from the raw points, on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib.util
import itertools
import math
import random
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from alembic import command
from hypothesis import given, settings, strategies as st
from sqlalchemy import text

from cairn.server.db import points
from cairn.server.db.engine import Database, _alembic_config
from cairn.server.services import metrics
from cairn.server.services.gc import collect

Point = tuple[int, int, float | None]  # step, timestamp, value (None: NaN)


def wire(value: float | None) -> float | str:
    if value is None:
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def log(api: httpx.Client, run_id: str, *series: tuple[str, list[Point]]) -> None:
    body = {"metrics": [{"key": key, "steps": [p[0] for p in pts], "timestamps": [p[1] for p in pts],
                         "values": [wire(p[2]) for p in pts]} for key, pts in series]}
    response = api.post(f"/api/v1/runs/{run_id}/batch", json=body)
    assert response.status_code == 200, response.text


def series_id(db: Database, run_id: str, key: str) -> int:
    with db.session(write=False) as session:
        return int(session.execute(text("SELECT id FROM metric_series WHERE run_id = :r AND key = :k"),
                                   {"r": run_id, "k": key}).scalar_one())


def raw_points(db: Database, sid: int) -> list[Point]:
    with db.session(write=False) as session:
        rows: Any = session.execute(text("SELECT step, timestamp, value FROM metric_points WHERE series_id = :s"),
                                    {"s": sid}).all()
        if not rows:  # PostgreSQL from 0010 on keeps them packed
            rows = points.read_point_range(session, sid, -(2**63), 2**63 - 1)
        return [(int(s), int(t), None if v is None or math.isnan(v) else float(v)) for s, t, v in rows]


def aggregate(pts: list[Point]) -> dict[str, Any]:
    numbers = [v for _, _, v in pts if v is not None]
    total = math.fsum(numbers) if not (math.inf in numbers and -math.inf in numbers) else math.nan
    return {"count": len(pts), "numeric": len(numbers), "sum": total if numbers else 0.0,
            "min": min(numbers) if numbers else None, "max": max(numbers) if numbers else None,
            "first_step": min(p[0] for p in pts), "last_step": max(p[0] for p in pts),
            "first_timestamp": min(p[1] for p in pts)}


def same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b if math.isinf(a) or math.isinf(b) else math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def assert_rollups_exact(db: Database, sid: int, levels: tuple[int, ...] = metrics.LEVELS) -> None:
    """Every stored rollup row equals the aggregate of the raw points in its bucket, and no bucket is missing."""
    pts = raw_points(db, sid)
    with db.session(write=False) as session:
        stored = {(int(r[0]), int(r[1])): r[2:] for r in session.execute(text(
            "SELECT level, bucket, count, numeric_count, sum, min_value, max_value, first_step, last_step, "
            "first_timestamp FROM metric_rollups WHERE series_id = :s"), {"s": sid})}
    expected: dict[tuple[int, int], list[Point]] = defaultdict(list)
    for p in pts:
        for level in levels:
            expected[(level, p[0] >> level)].append(p)
    assert set(stored) == set(expected)
    for where, group in expected.items():
        want = aggregate(group)
        count, numeric, total, low, high, first, last, stamp = stored[where]
        assert (count, numeric, first, last, stamp) == (
            want["count"], want["numeric"], want["first_step"], want["last_step"], want["first_timestamp"]), where
        stored_nan = total is None or math.isnan(total)  # NaN: NULL on SQLite, NaN or NULL on PostgreSQL
        assert stored_nan == math.isnan(want["sum"]) and (stored_nan or same(float(total), want["sum"])), where
        assert same(low, want["min"]) and same(high, want["max"]), where


def assert_buckets_exact(db: Database, sid: int, n: int, start: int | None = None, end: int | None = None) -> None:
    """The answer covers every point in range exactly once; each bucket's numbers are those of the points
    between its first and last step; there are at most ``n``, in step order."""
    with db.session(write=False) as session:
        answer = metrics.buckets(session, sid, n, start, end)
    lo = -(2**63) if start is None else start
    hi = 2**63 - 1 if end is None else end
    pts = sorted(p for p in raw_points(db, sid) if lo <= p[0] <= hi)
    assert len(answer) <= n
    assert sum(b.count for b in answer) == len(pts)
    for before, after in itertools.pairwise(answer):
        assert before.last_step < after.first_step
    for bucket in answer:
        inside = [p for p in pts if bucket.first_step <= p[0] <= bucket.last_step]
        want = aggregate(inside)
        assert (bucket.count, bucket.first_step, bucket.last_step, bucket.first_timestamp) == (
            want["count"], want["first_step"], want["last_step"], want["first_timestamp"])
        assert same(bucket.min, want["min"]) and same(bucket.max, want["max"])
        assert same(bucket.mean, want["sum"] / want["numeric"] if want["numeric"] else None)


def messy_points(rng: random.Random, count: int) -> list[Point]:
    """A long series: a dense stretch, scattered steps over +-3 million (negative ones too), repeats of
    steps, NaN, +inf and -inf, a stretch of only NaN and a bucket holding both infinities."""
    pts: list[Point] = [(s, 1_000 + s, math.sin(s / 50)) for s in range(count // 2)]
    pts += [(rng.randint(-3_000_000, 3_000_000), rng.randint(0, 10**6), rng.uniform(-5, 5)) for _ in range(count // 4)]
    pts += [(rng.choice(pts)[0], rng.randint(0, 10**6), rng.uniform(-5, 5)) for _ in range(count // 8)]  # repeats
    pts += [(s, 7, None) for s in range(-5_000, -4_000)]  # only NaN
    pts += [(-100, 5, math.inf), (-99, 6, -math.inf), (2_000_000, 9, math.inf), (3_000_000, 8, -math.inf)]
    pts += [(rng.randint(-3_000_000, 3_000_000), 3, rng.choice([None, math.inf, -math.inf])) for _ in range(50)]
    rng.shuffle(pts)
    return pts


def test_rollups_and_buckets_match_brute_force(app: Any, api: httpx.Client, run_id: str) -> None:
    rng = random.Random(7)
    pts = messy_points(rng, 24_000)
    # out of order, in several requests, the same key twice in one request
    log(api, run_id, ("loss", pts[:9_000]), ("other", pts[:100]))
    log(api, run_id, ("loss", pts[9_000:15_000]), ("loss", pts[15_000:20_000]))
    log(api, run_id, ("loss", pts[20_000:]))
    db = app.state.db
    sid = series_id(db, run_id, "loss")
    assert len(raw_points(db, sid)) == len(pts) >= metrics.SMALL_SERIES
    assert_rollups_exact(db, sid)
    for n in (1, 2, 7, 50, 1000, 10_000):
        assert_buckets_exact(db, sid, n)
    ranges = [(-4_500, -4_200), (-101, -98), (0, 11_999), (13, 11_987), (-2_999_999, 2_999_999), (5, 5),
              (-17, 262_145), (100_000, 100_001), (3_100_000, 3_200_000)]
    ranges += [tuple(sorted((rng.randint(-3_100_000, 3_100_000), rng.randint(-3_100_000, 3_100_000))))
               for _ in range(6)]
    for start, end in ranges:
        for n in (3, 100, 1000):
            assert_buckets_exact(db, sid, n, start, end)


def gappy_steps(rng: random.Random, start: int, n: int) -> list[int]:
    """``n`` steps from ``start`` where some steps are missing and as many others are logged twice: sorted,
    they still span exactly ``n - 1``, like consecutive steps do (and like [14, 15, 15, 17])."""
    if n < 3:
        return list(range(start, start + n))
    missing = set(rng.sample(range(start + 1, start + n - 1), rng.randint(1, max(1, n // 4))))
    kept = [s for s in range(start, start + n) if s not in missing]
    return kept + rng.choices(kept, k=len(missing))


def test_repeated_steps_with_gaps_keep_rollups_exact(app: Any, api: httpx.Client, run_id: str,
                                                     monkeypatch: Any) -> None:
    db = app.state.db
    w = 1 << metrics.LEVELS[0]
    with monkeypatch.context() as patch:
        patch.setattr(metrics, "SMALL_SERIES", 1)  # rollups from the first point
        log(api, run_id, ("loss", [(w, 9, 0.0)]))
        log(api, run_id, ("loss", [(w - 2, 1, 1.0), (w - 1, 2, 2.0), (w - 1, 3, 3.0), (w + 1, 4, 4.0)]))
    sid = series_id(db, run_id, "loss")
    with db.session(write=False) as session:
        finest = session.execute(text("SELECT bucket, count, first_step, last_step, max_value FROM metric_rollups "
                                      "WHERE series_id = :s AND level = :l ORDER BY bucket"),
                                 {"s": sid, "l": metrics.LEVELS[0]}).all()
    assert [tuple(r) for r in finest] == [(0, 3, w - 2, w - 1, 3.0), (1, 2, w, w + 1, 4.0)]
    assert_rollups_exact(db, sid)

    # one batch long enough to be bucketed from the rollups, then many short ones across bucket edges
    rng = random.Random(3)
    batches = [gappy_steps(rng, -20, 17_000)]
    while sum(map(len, batches)) < 30_000:
        edge = rng.choice([16, 64, 256, 1024, 4096]) * rng.randint(-40, 40)
        batches.append(gappy_steps(rng, edge - rng.randint(0, 20), rng.randint(2, 600)))
    series = [[(s, rng.randint(0, 10**6), None if rng.random() < 0.02 else rng.uniform(-5, 5)) for s in steps]
              for steps in batches]
    for i in range(0, len(series), 10):  # the same key many times in one request: a rollup part each
        log(api, run_id, *[("acc", pts) for pts in series[i:i + 10]])
    sid = series_id(db, run_id, "acc")
    assert len(raw_points(db, sid)) == sum(map(len, batches)) >= metrics.SMALL_SERIES
    assert_rollups_exact(db, sid)
    for n in (1, 7, 100, 500):
        assert_buckets_exact(db, sid, n)
    for start, end in [(-20, 16_979), (0, 15), (14, 17), (-1_000, 1_000), (5_000, 100_000)]:
        assert_buckets_exact(db, sid, 50, start, end)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-70, 70), min_size=1, max_size=60), st.randoms(use_true_random=False))
def test_rollup_parts_match_brute_force(steps: list[int], rng: random.Random) -> None:
    if rng.random() < 0.5:  # often the shape that looks consecutive: as many repeats as gaps
        steps = gappy_steps(rng, steps[0], len(steps))
    rng.shuffle(steps)
    values = [None, 1.0, -2.5, math.inf, -math.inf, rng.uniform(-5, 5)]
    pts: list[Point] = [(s, rng.randint(0, 9), rng.choice(values)) for s in steps]
    batch = metrics.SeriesBatch("k", [p[0] for p in pts], [p[2] for p in pts], [p[1] for p in pts])
    parts = {(level, bucket): rest for _, level, bucket, *rest in metrics._rollup_parts(1, batch)}
    expected: dict[tuple[int, int], list[Point]] = defaultdict(list)
    for p in pts:
        for level in metrics.LEVELS:
            expected[(level, p[0] >> level)].append(p)
    assert set(parts) == set(expected)
    for where, group in expected.items():
        want = aggregate(group)
        count, numeric, total, low, high, first, last, stamp = parts[where]
        assert (count, numeric, first, last, stamp) == (
            want["count"], want["numeric"], want["first_step"], want["last_step"], want["first_timestamp"]), where
        assert same(total, None if math.isnan(want["sum"]) else want["sum"]), where
        assert same(low, want["min"]) and same(high, want["max"]), where


def test_long_series_buckets_are_aligned_to_the_rollups(app: Any, api: httpx.Client, run_id: str) -> None:
    steps = list(range(100_000))
    log(api, run_id, ("acc", [(s, 1_000 + s, (s % 977) / 977) for s in steps]))
    db = app.state.db
    sid = series_id(db, run_id, "acc")
    with db.session(write=False) as session:
        answer = metrics.buckets(session, sid, 1000)
    # 100 steps per bucket asked; the coarsest rollup that fits is 64 wide, so buckets are 128 wide
    assert [b.first_step for b in answer] == list(range(0, 100_000, 128))
    first = answer[0]
    assert (first.first_step, first.last_step, first.count, first.min, first.max, first.first_timestamp) == (
        0, 127, 128, 0.0, 127 / 977, 1_000)
    assert same(first.mean, sum(range(128)) / 977 / 128)
    assert_buckets_exact(db, sid, 1000, 1_234, 98_765)
    with db.session(write=False) as session:
        assert metrics.buckets(session, sid, 10, 200_000, 300_000) == []


def migration(name: str) -> Any:
    path = Path(metrics.__file__).parents[1] / "db" / "migrations" / "versions" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_migrations_backfill_rollups(app: Any, api: httpx.Client, run_id: str) -> None:
    """0004 builds rollups from the points for every series; 0006 keeps those of long series at today's levels."""
    rng = random.Random(11)
    log(api, run_id, ("loss", messy_points(rng, 4_000)),
        ("acc", [(s, s, float(s)) for s in range(-300, metrics.SMALL_SERIES + 700)]))
    db = app.state.db
    first, second = migration("0004_metric_rollups"), migration("0006_rollups_for_long_series")
    with at_revision(db, "0008"), db.session(write=True) as session:  # their SQL reads metric_points,
        session.execute(text("DELETE FROM metric_rollups"))                 # where 0010 packs PostgreSQL's
        session.execute(text(first._INTO + first._FROM_POINTS))             # points away
        for below, level in itertools.pairwise(first.LEVELS):
            session.execute(text(first._INTO + first._FROM_LEVEL.format(
                level=level, shift=level - below, below=below)))
    for key in ("loss", "acc"):
        assert_rollups_exact(db, series_id(db, run_id, key), first.LEVELS)
    with at_revision(db, "0008"), db.session(write=True) as session:
        session.execute(text(second.UPGRADE))
    assert_rollups_exact(db, series_id(db, run_id, "acc"))
    with db.session(write=False) as session:
        assert session.execute(text("SELECT count(*) FROM metric_rollups WHERE series_id = :s"),
                               {"s": series_id(db, run_id, "loss")}).scalar_one() == 0


@contextmanager
def at_revision(db: Database, revision: str) -> Iterator[None]:
    """The store downgraded to ``revision`` for the block, then upgraded to head again."""
    def migrate(step: Any, target: str) -> None:
        with db.engine.begin() as conn:
            step(_alembic_config(conn), target)

    migrate(command.downgrade, revision)
    try:
        yield
    finally:
        migrate(command.upgrade, "head")


def test_short_series_have_no_rollups_until_they_grow_long(app: Any, api: httpx.Client, run_id: str) -> None:
    """Rollups are only read for series of SMALL_SERIES points or more, so only those keep them. The
    request that takes a series past the threshold builds them from every stored point, replacing any
    left from before the threshold existed (the migration built them for every series)."""
    db = app.state.db
    rng = random.Random(5)
    pts = messy_points(rng, 20_000)
    log(api, run_id, ("loss", pts[:5_000]), ("short", [(s, s, 0.5) for s in range(300)]))
    sid = series_id(db, run_id, "loss")
    rollups = "SELECT count(*) FROM metric_rollups WHERE series_id = :s"
    with db.session(write=True) as session:
        assert session.execute(text(rollups), {"s": sid}).scalar_one() == 0
        session.execute(text("INSERT INTO metric_rollups (series_id, level, bucket, count, numeric_count, sum, "
                             "min_value, max_value, first_step, last_step, first_timestamp) "
                             "VALUES (:s, 4, 0, 99, 99, 1.0, -7.0, 7.0, 0, 1, 0)"), {"s": sid})  # stale
    for n in (1, 10, 1000):
        assert_buckets_exact(db, sid, n)
    for at in range(5_000, 16_000, 1_000):
        log(api, run_id, ("loss", pts[at:at + 1_000]))
    assert len(raw_points(db, sid)) == 16_000 < metrics.SMALL_SERIES
    log(api, run_id, ("loss", pts[16_000:16_200]), ("loss", pts[16_200:17_000]), ("loss", pts[17_000:17_300]))
    assert_rollups_exact(db, sid)
    log(api, run_id, ("loss", pts[17_300:]))
    assert_rollups_exact(db, sid)
    for n in (1, 7, 1000):
        assert_buckets_exact(db, sid, n)
    with db.session(write=False) as session:
        assert session.execute(text(rollups), {"s": series_id(db, run_id, "short")}).scalar_one() == 0


def test_deleting_a_run_deletes_its_rollups(app: Any, api: httpx.Client, run_id: str) -> None:
    log(api, run_id, ("loss", [(s, s, 1.0) for s in range(metrics.SMALL_SERIES + 10)]))
    db = app.state.db
    sid = series_id(db, run_id, "loss")
    count = "SELECT count(*) FROM metric_rollups WHERE series_id = :s"
    with db.session(write=False) as session:
        assert session.execute(text(count), {"s": sid}).scalar_one() > 0
    assert api.delete(f"/api/v1/runs/{run_id}").status_code == 200
    collect(db, app.state.blobs)
    with db.session(write=False) as session:
        assert session.execute(text(count), {"s": sid}).scalar_one() == 0


def test_migration_0006_keeps_rollups_of_long_series_only(app: Any, api: httpx.Client, run_id: str) -> None:
    """Its upgrade drops the rollups of short series; its downgrade builds them again, exact, since the
    code before it kept rollups for every series."""
    log(api, run_id, ("short", messy_points(random.Random(2), 3_000)),
        ("long", [(s, s, float(s % 13)) for s in range(metrics.SMALL_SERIES + 100)]))
    db = app.state.db
    short, long = series_id(db, run_id, "short"), series_id(db, run_id, "long")
    count = "SELECT count(*) FROM metric_rollups WHERE series_id = :s"

    def migrate(step: Any, target: str) -> None:
        with db.engine.begin() as conn:
            step(_alembic_config(conn), target)

    before = migration("0006_rollups_for_long_series").LEVELS_BEFORE
    try:
        migrate(command.downgrade, "0005")
        assert_rollups_exact(db, short, before)
        assert_rollups_exact(db, long, before)
    finally:
        migrate(command.upgrade, "head")
    with db.session(write=False) as session:
        assert session.execute(text(count), {"s": short}).scalar_one() == 0
    assert_rollups_exact(db, long)


def history(api: httpx.Client, run_id: str, key: str, **params: int) -> list[Point]:
    got = api.get(f"/api/v1/runs/{run_id}/metrics/history", params={"key": key, **params})
    assert got.status_code == 200, got.text
    body = got.json()
    values = [None if v in ("NaN", None) else float(v) for v in body["values"]]
    return list(zip(body["steps"], body["timestamps"], values, strict=True))


def in_order(logged: list[Point]) -> list[Point]:
    """What a history read answers: step order, then logging order."""
    return sorted(logged, key=lambda p: p[0])


def test_history_is_in_step_then_logging_order(app: Any, api: httpx.Client, run_id: str) -> None:
    """Points logged in several batches, steps out of order, repeated, across chunks of either store."""
    rng = random.Random(3)
    pts = messy_points(rng, 12_000)
    logged: list[Point] = []
    for at in (0, 1, 700, 5_000, len(pts)):
        part = pts[len(logged):at]
        if part:
            log(api, run_id, ("loss", part))
            logged += part
    log(api, run_id, ("loss", [(s, 1, float(s)) for s in range(10, 20)]), ("flat", [(3, 4, 5.0)]))
    logged += [(s, 1, float(s)) for s in range(10, 20)]
    assert history(api, run_id, "loss") == in_order(logged)
    window = [p for p in in_order(logged) if -4_500 <= p[0] <= 15]
    assert history(api, run_id, "loss", start_step=-4_500, end_step=15) == window
    assert history(api, run_id, "loss", start_step=-4_500, end_step=15, max_points=7) == window[:7]
    assert history(api, run_id, "flat") == [(3, 4, 5.0)]
    assert history(api, run_id, "flat", start_step=4) == []


def test_migration_0009_keeps_every_point(app: Any, api: httpx.Client, run_id: str) -> None:
    """Its upgrade packs PostgreSQL's points and its downgrade unpacks them: the history reads the same
    before, in between (from metric_points) and after, on both stores."""
    pts = messy_points(random.Random(4), 6_000)
    log(api, run_id, ("loss", pts[:4_000]), ("acc", [(s, s, 0.5) for s in range(5_000)]))
    log(api, run_id, ("loss", pts[4_000:]))
    db = app.state.db
    expected = {key: history(api, run_id, key) for key in ("loss", "acc")}
    assert expected["loss"] == in_order(pts)
    with at_revision(db, "0008"), db.session(write=False) as session:
        for key, want in expected.items():
            rows = session.execute(text("SELECT step, timestamp, value FROM metric_points WHERE series_id = :s "
                                        "ORDER BY step, seq"), {"s": series_id(db, run_id, key)})
            assert [(int(s), int(t), None if v is None or math.isnan(v) else float(v)) for s, t, v in rows] == want
    assert {key: history(api, run_id, key) for key in expected} == expected
