"""The pipeline's run in this process, shared by the hooks and the datasets.

The process that runs ``kedro run`` opens the run and exports its id in ``CAIRN_RUN_ID`` (with the tracking
URI and workspace) for the length of the pipeline run. ParallelRunner's workers, forked or spawned after
that, and the datasets they were sent (pickled without any connection), find the run from the environment
and resume it once per process. Every call into Cairn goes through :func:`guarded`: tracking that fails is
a warning, never a failed node.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

log = logging.getLogger("cairn.integrations.kedro")
T = TypeVar("T")

RUN_ID_ENV = "CAIRN_RUN_ID"
EXPORTED = ("CAIRN_RUN_ID", "CAIRN_TRACKING_URI", "CAIRN_WORKSPACE", "KEDRO_MP_CONTEXT")


class _State:
    """The run this process logs to: opened here (the pipeline's process) or resumed (a worker)."""

    def __init__(self) -> None:
        self.pid = 0
        self.run: Any = None
        self.saved_env: dict[str, str | None] = {}
        self.opened_here = False
        self.end = "always"  # always | never | on_failure: whether closing the pipeline ends the run


_state = _State()


def set_pipeline_run(run: Any, env: dict[str, str], *, end: str) -> None:
    """Called by the hooks in the pipeline's process: the run, what its workers must know, and whether
    closing the pipeline ends the run (``end``: always, never, on_failure)."""
    _state.pid, _state.run, _state.opened_here, _state.end = os.getpid(), run, True, end
    _state.saved_env = {name: os.environ.get(name) for name in EXPORTED}
    os.environ.update(env)


def clear_pipeline_run() -> None:
    """Forget the run and restore the environment (a later session in this process starts afresh)."""
    for name, value in _state.saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _state.pid, _state.run, _state.saved_env, _state.opened_here = 0, None, {}, False


def current_run() -> Any:
    """The pipeline's run in this process, resumed from ``CAIRN_RUN_ID`` in a worker; None outside a run."""
    if _state.run is not None and _state.pid == os.getpid():
        return _state.run
    run_id = os.environ.get(RUN_ID_ENV)
    if not run_id:
        return None
    import cairn

    run = cairn.start_run(run_id=run_id, nested=False)
    _state.pid, _state.run, _state.saved_env, _state.opened_here = os.getpid(), run, {}, False
    return run


def in_pipeline_process() -> bool:
    """True in the process that opened the pipeline's run (where ``kedro run`` runs)."""
    return _state.run is not None and _state.pid == os.getpid() and _state.opened_here


def ends_run(status: str) -> bool:
    """Whether closing the pipeline with ``status`` ends the run (see CairnSettings.end)."""
    return _state.end == "always" or (_state.end == "on_failure" and status != "FINISHED")


def in_worker() -> bool:
    """True in a process that resumed the run (a ParallelRunner worker) rather than opened it."""
    return _state.run is not None and _state.pid == os.getpid() and not _state.opened_here


def guarded(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """``fn(*args)``, or None and a warning if it fails: tracking never fails the pipeline."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # any failure of tracking is reported, not raised
        log.warning("cairn: could not %s: %s: %s", what, type(exc).__name__, exc)
        return None


@contextmanager
def guard(what: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:  # see guarded
        log.warning("cairn: could not %s: %s: %s", what, type(exc).__name__, exc)


def flush_worker() -> None:
    """A worker process ends with ``os._exit`` (no atexit): what it logged must be sent (or spooled) now."""
    if in_worker():
        import cairn

        guarded("flush the run from a worker", cairn.flush, 30.0)
