"""Background delivery of run writes: logging never blocks or crashes training.

Producers (the training loop, any thread)
-----------------------------------------
``log_metrics`` appends to the run's open *buffer* (per metric key: steps, values,
timestamps, columnar) under one lock and returns; no I/O, no encoding.  ``log_params`` and
``set_tags`` put params and tags in the same buffer, and ``end_run`` puts the run's final status
there and seals it: so a run's params, tags, metrics and end usually reach the server in one
all-or-nothing request.  A key buffered again with another value seals the buffer first, so every
value still reaches the server (and a param's history) in the order it was logged.  ``enqueue`` is
for every other write (create run, datasets, deleted tags, uploads); it first *seals* all open
buffers into the FIFO queue, so the server sees writes in the order they were made.  A buffer is
also sealed when it reaches ``max_batch_points`` (or ``max_batch_items`` params or tags), when the
sender thread wakes every ``flush_interval`` seconds and finds it non-empty, and on ``flush()``.

The sender thread
-----------------
One daemon thread takes queue items strictly in FIFO order, turns sealed buffers into
``POST /api/v1/runs/<id>/batch`` ops (orjson; non-finite values as "NaN"/"Infinity"/"-Infinity")
and moves through this state machine::

    ONLINE ──RetryableError──▶ RETRYING ──ok──▶ ONLINE
                                  │ retry_timeout passed since the first failure,
                                  │ memory over the limit, or close() deadline near
                                  ▼
    ONLINE ◀──spool replayed── REPLAYING ◀──probe() is True── SPOOLING (every probe_interval)
                                  │ RetryableError during replay
                                  └──────────────▶ SPOOLING

* RETRYING: the same op (same idempotency key, so the server stores it once) is re-sent with
  exponential backoff: 0.05 s, doubling, capped at 2 s.
* SPOOLING: the failed op and every later one are appended to this session's spool file
  (see ``_spool``) instead of being sent.  ``offline=True`` starts here and never probes.
* REPLAYING: the spool file is sent in order from its recorded progress point; progress is
  recorded as it goes, so a failure resumes after the last op that went through.  At the end
  the file is deleted and the thread goes back to ONLINE; whatever queued up meanwhile is
  newer than everything in the spool, so order holds.

Any other exception from ``send`` is a permanent failure: logged at WARNING on the "cairn"
logger, recorded in ``errors``, the op is dropped and delivery goes on.  A refused buffer that
carried several parts (metrics, params, tags, the end) is sent again one part per request, the
end as the run update ``PATCH /api/v1/runs/<id>`` (``_ops.split_batch``), so a bad param does
not cost the metrics logged beside it, nor the run its end, and a server too old for an end in a
batch still gets it.  A replayed spool (here and in ``cairn sync``) splits a refused buffer the
same way.

Memory bound
------------
Points held in memory (open buffers + queued items; any other op counts as one) are counted.
Above ``max_queued_points`` the producer wakes the thread through an Event that also cuts short
a backoff wait, and the thread seals and spools everything it holds.  If the server was healthy
(just slower than the producer), it probes right away and replays from disk, so the spool acts
as an overflow.  Above twice the limit, ``log_metrics`` blocks until the thread catches up.

Exit
----
``close()`` flushes and stops the thread; ``atexit`` calls it with a bounded timeout
(``retry_timeout + 5`` s).  When close has a deadline, retrying and replaying stop shortly
before it and everything left is spooled, so what was acknowledged is not lost.
"""

from __future__ import annotations

import atexit
import collections
import enum
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cairn.client._buffers import Batch, Item, count_points, differs, materialize, merged, metrics_only
from cairn.client._ops import Op, RetryableError, SendFn, split_batch
from cairn.client._spool import SpoolWriter, replay_cursor

__all__ = ["Op", "ProbeFn", "RetryableError", "SendFn", "Sender"]

logger = logging.getLogger("cairn")

ProbeFn = Callable[[], bool]

_BACKOFF_START = 0.05
_BACKOFF_CAP = 2.0
_SPOOL_CHUNK = 256  # queue items spooled per fsync
_MAX_ERRORS = 1000
# Buffers waiting behind one another go out together up to this many points (the server takes 100,000 a
# request): 50 round trips per million points become 20, and each one left the server idle while it waited.
_COALESCE_POINTS = 50_000
class _State(enum.Enum):
    ONLINE = "online"
    RETRYING = "retrying"
    SPOOLING = "spooling"
    REPLAYING = "replaying"


class Sender:
    """Queues run writes and delivers them from a background thread (see the module docstring)."""

    def __init__(
        self,
        send: SendFn,
        probe: ProbeFn,
        *,
        spool_dir: Path,
        target: str,
        workspace: str,
        offline: bool = False,
        retry_timeout: float = 30.0,
        probe_interval: float = 5.0,
        flush_interval: float = 0.2,
        max_batch_points: int = 20_000,
        max_batch_items: int = 1000,
        max_queued_points: int = 1_000_000,
    ) -> None:
        self._send = send
        self._probe = probe
        self._offline = offline
        self._retry_timeout = retry_timeout
        self._probe_interval = probe_interval
        self._flush_interval = flush_interval
        self._max_batch_points = max(1, max_batch_points)
        self._max_batch_items = max(1, max_batch_items)
        self._max_queued_points = max(1, max_queued_points)
        self._spool = SpoolWriter(Path(spool_dir), target, workspace)

        # shared with producers; guarded by _lock
        self._lock = threading.Lock()
        self._open: dict[str, Batch] = {}
        self._queue: collections.deque[Item] = collections.deque()
        self._mem_points = 0
        self._seq_in = 0
        self._closed = False
        self._errors: list[str] = []
        # progress of the thread; guarded by _progress
        self._progress = threading.Condition(threading.Lock())
        self._seq_out = 0
        self._exited = False
        # signals to the thread
        self._wake = threading.Event()
        self._interrupt = threading.Event()  # memory pressure or close: cut backoff waits short
        self._stopping = False
        self._close_limit: float | None = None  # monotonic time by which to stop retrying
        # owned by the thread
        self._state = _State.SPOOLING if offline else _State.ONLINE
        self._next_probe = time.monotonic() + probe_interval
        self._next_seal = time.monotonic() + flush_interval

        self._thread = threading.Thread(target=self._run, name="cairn-sender", daemon=True)
        self._thread.start()
        atexit.register(self._close_at_exit)

    # ------------------------------------------------------------------ producer API

    def log_metrics(self, run_id: str, values: Mapping[str, float], step: int, timestamp: int) -> None:
        """Buffer one step of metrics for ``run_id``.  Hot path: no I/O, no encoding."""
        if self._closed:
            self._record("log_metrics() after close() was ignored")
            return
        with self._lock:
            batch = self._open_batch_locked(run_id)
            columns = batch.columns
            for key, value in values.items():
                column = columns.get(key)
                if column is None:
                    columns[key] = ([step], [value], [timestamp])
                else:
                    column[0].append(step)
                    column[1].append(value)
                    column[2].append(timestamp)
            n = len(values)
            batch.points += n
            self._mem_points += n
            mem = self._mem_points
            if batch.points >= self._max_batch_points:
                del self._open[run_id]
                self._push_locked(batch)
                self._wake.set()
        if mem > self._max_queued_points:
            self._relieve(mem)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Buffer params for ``run_id``; they go out with its metrics.  No I/O."""
        self._buffer_items(run_id, "params", params)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Buffer tags for ``run_id``; they go out with its metrics.  No I/O."""
        self._buffer_items(run_id, "tags", tags)

    def end_run(self, run_id: str, status: str, end_time: int) -> None:
        """Buffer the run's end and seal: it travels with whatever the run still has buffered, in one
        request, and the server applies both or neither (see the module docstring for a refusal)."""
        if self._closed:
            self._record(f"the end of run {run_id} after close() was ignored")
            return
        with self._lock:
            batch = self._open_batch_locked(run_id)
            batch.end = {"status": status, "end_time": end_time}
            batch.points += 1
            self._mem_points += 1
            self._seal_all_locked()
            mem = self._mem_points
        self._wake.set()
        if mem > self._max_queued_points:
            self._relieve(mem)

    def enqueue(self, op: Op) -> None:
        """Queue any other write; metrics logged before it are sent before it."""
        if self._closed:
            self._record(f"{op.method} {op.path} after close() was ignored")
            return
        with self._lock:
            self._seal_all_locked()
            self._push_locked(op)
            self._mem_points += 1
            mem = self._mem_points
        self._wake.set()
        if mem > self._max_queued_points:
            self._relieve(mem)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything logged or enqueued before the call is sent or spooled."""
        with self._lock:
            self._seal_all_locked()
            target = self._seq_in
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._progress:
            while self._seq_out < target:
                if self._exited:
                    return False
                wait = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
                if wait <= 0:
                    return False
                self._progress.wait(wait)
        return True

    def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the thread.  Idempotent.  With a timeout, gives up retrying shortly
        before the deadline and spools what is left, so nothing acknowledged is lost."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self._close_at_exit)
        deadline = None if timeout is None else time.monotonic() + timeout
        if timeout is not None:
            self._close_limit = time.monotonic() + timeout - min(1.0, 0.2 * timeout)
            self._interrupt.set()
        self.flush(timeout)
        self._stopping = True
        self._wake.set()
        self._thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    @property
    def errors(self) -> list[str]:
        """Permanent failures, human readable (the most recent ones)."""
        with self._lock:
            return list(self._errors)

    @property
    def spooled(self) -> bool:
        """True if anything of this session is (still) in its spool file."""
        return self._spool.exists

    @property
    def spool_path(self) -> Path:
        """Where this session spools (the file exists only if ``spooled``)."""
        return self._spool.path

    @property
    def retry_timeout(self) -> float:
        """Seconds an op is retried before the sender spools."""
        return self._retry_timeout

    @property
    def state(self) -> str:
        """online, retrying, spooling or replaying (for diagnostics)."""
        return self._state.value

    # ------------------------------------------------------------------ producer helpers

    def _buffer_items(self, run_id: str, part: str, items: Mapping[str, Any]) -> None:
        if self._closed:
            self._record(f"{part} of run {run_id} after close() were ignored")
            return
        if not items:
            return
        with self._lock:
            batch = self._open_batch_locked(run_id)
            held: dict[str, Any] = getattr(batch, part)
            if len(held) + len(items) > self._max_batch_items or any(
                    k in held and differs(held[k], v) for k, v in items.items()):
                del self._open[run_id]  # keep each value, in order: what is held goes first
                self._push_locked(batch)
                batch = self._open_batch_locked(run_id)
                held = getattr(batch, part)
            added = len(items.keys() - held.keys())
            held.update(items)
            batch.points += added
            self._mem_points += added
            mem = self._mem_points
        if mem > self._max_queued_points:
            self._relieve(mem)

    def _open_batch_locked(self, run_id: str) -> Batch:
        batch = self._open.get(run_id)
        if batch is None:
            batch = self._open[run_id] = Batch(run_id)
        return batch

    def _push_locked(self, item: Item) -> None:
        self._queue.append(item)
        self._seq_in += 1

    def _seal_all_locked(self) -> None:
        if self._open:
            for batch in self._open.values():
                self._push_locked(batch)
            self._open.clear()

    def _relieve(self, mem: int) -> None:
        """Over the memory limit: have the thread spill to disk; far over it, wait for room."""
        self._interrupt.set()
        self._wake.set()
        if mem > 2 * self._max_queued_points and threading.current_thread() is not self._thread:
            with self._progress:
                while self._mem_points > 2 * self._max_queued_points and not self._exited:
                    self._progress.wait(0.05)

    def _record(self, message: str) -> None:
        logger.warning("cairn: %s", message)  # outside the lock: a handler may log to cairn itself
        with self._lock:
            self._errors.append(message)
            if len(self._errors) > _MAX_ERRORS:
                del self._errors[: len(self._errors) - _MAX_ERRORS]

    def _record_failure(self, op: Op, exc: Exception) -> None:
        self._record(f"{op.method} {op.path} failed and was dropped: {exc}")

    def _close_at_exit(self) -> None:
        try:
            self.close(self._retry_timeout + 5.0)
        except Exception:  # never a traceback at interpreter exit
            logger.debug("cairn: error while closing the sender at exit", exc_info=True)

    # ------------------------------------------------------------------ thread: main loop

    def _run(self) -> None:
        try:
            while True:
                self._wake.wait(self._wait_timeout())
                self._wake.clear()
                try:
                    self._drain()
                except Exception:  # a bug must not stop delivery for the rest of the process
                    logger.exception("cairn: unexpected error in the sender thread")
                    time.sleep(self._flush_interval)
                if self._stopping and self._idle():
                    break
        finally:
            self._spool.close()
            with self._progress:
                self._exited = True
                self._progress.notify_all()

    def _wait_timeout(self) -> float:
        timeout = max(0.0, self._next_seal - time.monotonic())
        if self._state is _State.SPOOLING and not self._offline:
            timeout = min(timeout, max(0.0, self._next_probe - time.monotonic()))
        return timeout

    def _idle(self) -> bool:
        with self._lock:
            return not self._queue and not self._open

    def _drain(self) -> None:
        """Handle queued items until the queue is empty."""
        while True:
            self._seal_if_due()
            if self._over_limit():
                self._spill()
            if self._state is _State.ONLINE and self._past_close_limit():
                self._enter_spooling(math.inf)  # close() is about to give up: keep the rest on disk
            self._maybe_replay()
            spooling = self._state is _State.SPOOLING
            items = self._pop(_SPOOL_CHUNK if spooling else 1)
            if not items:
                return
            try:
                if spooling:
                    self._spool_items(items)
                else:
                    items += self._pop_followers(items[0])
                    self._deliver(items[0] if len(items) == 1 else merged(items))
            finally:
                self._finish(items)  # even after a bug, so flush() never waits for a lost item

    def _seal_if_due(self) -> None:
        now = time.monotonic()
        if now >= self._next_seal:
            self._next_seal = now + self._flush_interval
            with self._lock:
                self._seal_all_locked()

    def _pop(self, limit: int) -> list[Item]:
        with self._lock:
            return [self._queue.popleft() for _ in range(min(limit, len(self._queue)))]

    def _pop_followers(self, first: Item) -> list[Item]:
        """Behind a buffer of metrics only, the run's next buffers of metrics only, up to
        ``_COALESCE_POINTS`` in all: one request instead of several when the training loop logs faster
        than they go out. Points keep their order, and nothing else is merged (a param logged twice keeps
        both values, a run's end stays last)."""
        if not metrics_only(first):
            return []
        followers: list[Item] = []
        total = first.points
        with self._lock:
            while self._queue:
                head = self._queue[0]
                if not metrics_only(head) or head.run_id != first.run_id or total + head.points > _COALESCE_POINTS:
                    break
                total += head.points
                followers.append(self._queue.popleft())
        return followers

    def _finish(self, items: list[Item]) -> None:
        points = sum(count_points(item) for item in items)
        with self._lock:
            self._mem_points -= points
        with self._progress:
            self._seq_out += len(items)
            self._progress.notify_all()

    def _over_limit(self) -> bool:
        return self._mem_points > self._max_queued_points

    def _past_close_limit(self) -> bool:
        limit = self._close_limit
        return limit is not None and time.monotonic() >= limit

    # ------------------------------------------------------------------ thread: ONLINE / RETRYING

    def _deliver(self, item: Item) -> None:
        op = materialize(item, self._record)
        if op is None:
            return
        result = self._send_with_retry(op)
        if result is False:
            self._spool_ops([op])
        elif isinstance(result, Exception):  # refused as a whole: nothing of it was stored
            parts = split_batch(op) if isinstance(item, Batch) else []
            if not parts:
                self._record_failure(op, result)
            while parts and (sent := self._send_with_retry(parts[0])) is not False:  # one by one
                if isinstance(sent, Exception):
                    self._record_failure(parts[0], sent)
                parts.pop(0)
            if parts:
                self._spool_ops(parts)

    def _send_with_retry(self, op: Op) -> bool | Exception:
        """Send ``op``: True once sent, False if we gave up retrying (the state is SPOOLING then), or the
        exception that refused it for good."""
        delay = _BACKOFF_START
        give_up: float | None = None
        while True:
            try:
                self._send(op)
            except RetryableError as exc:
                if give_up is None:
                    give_up = time.monotonic() + self._retry_timeout
                    self._state = _State.RETRYING
                    logger.info("cairn: server unavailable (%s); retrying", exc)
                if not self._backoff(delay, give_up):
                    self._enter_spooling(time.monotonic() + self._probe_interval)
                    logger.warning("cairn: server unavailable (%s); spooling to %s", exc, self._spool.path)
                    return False
                delay = min(delay * 2, _BACKOFF_CAP)
                continue
            except Exception as exc:
                self._state = _State.ONLINE
                return exc
            self._state = _State.ONLINE
            return True

    def _backoff(self, delay: float, give_up: float) -> bool:
        """Wait before the next attempt; False if it is time to spool instead."""
        self._interrupt.clear()  # cleared before the checks, so no signal is lost
        limit = give_up if self._close_limit is None else min(give_up, self._close_limit)
        now = time.monotonic()
        if now >= limit or self._over_limit():
            return False
        self._interrupt.wait(min(delay, limit - now))
        return time.monotonic() < limit and not self._over_limit() and not self._past_close_limit()

    def _enter_spooling(self, next_probe: float) -> None:
        self._state = _State.SPOOLING
        self._next_probe = next_probe

    # ------------------------------------------------------------------ thread: SPOOLING

    def _spool_items(self, items: list[Item]) -> None:
        self._spool_ops([op for op in (materialize(item, self._record) for item in items) if op is not None])

    def _spool_ops(self, ops: list[Op]) -> None:
        try:
            failed = self._spool.append(ops)
        except OSError as exc:
            self._record(f"could not write the spool {self._spool.path}: {exc}; {len(ops)} writes lost")
            return
        for op, error in failed:
            self._record(f"{op.method} {op.path} could not be spooled and was dropped: {error}")

    def _spill(self) -> None:
        """Memory over the limit: seal and spool everything held in memory right away."""
        with self._lock:
            self._seal_all_locked()
            left = len(self._queue)
        while left > 0:
            items = self._pop(min(left, _SPOOL_CHUNK))
            left -= len(items)
            try:
                self._spool_items(items)
            finally:
                self._finish(items)
        if self._state is _State.ONLINE:
            self._enter_spooling(time.monotonic())  # the server is fine, just slower: replay soon

    # ------------------------------------------------------------------ thread: REPLAYING

    def _maybe_replay(self) -> None:
        if self._state is not _State.SPOOLING or self._offline:
            return
        now = time.monotonic()
        if now < self._next_probe or self._past_close_limit():
            return
        self._next_probe = now + self._probe_interval
        try:
            up = self._probe()
        except Exception:
            up = False
        if up:
            self._replay()

    def _replay(self) -> None:
        self._state = _State.REPLAYING
        finished = self._replay_file() if self._spool.exists else True
        if finished:
            self._spool.delete()
            self._state = _State.ONLINE
            logger.info("cairn: server reachable again; spool replayed")
        else:
            self._enter_spooling(time.monotonic() + self._probe_interval)

    def _replay_file(self) -> bool:
        try:
            cursor = self._spool.cursor()
        except (OSError, ValueError) as exc:
            self._record(f"could not read the spool {self._spool.path}: {exc}; keeping it for `cairn sync`")
            return False
        try:
            _, finished = replay_cursor(cursor, self._send, self._record_failure, before_op=self._replay_go_on)
        except RetryableError:
            finished = False
        finally:
            cursor.close()
        return finished

    def _replay_go_on(self) -> bool:
        """Between two replayed ops: spill if memory is over the limit; stop near the close deadline."""
        if self._over_limit():
            self._spill()
        return not self._past_close_limit()
