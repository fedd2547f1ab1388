"""The hooks: one Cairn run per pipeline run.

``after_context_created`` reads cairn.yml; ``before_pipeline_run`` opens the run (or joins it: ``run.id`` /
``CAIRN_RUN_ID``, ``run.key`` / ``CAIRN_RUN_KEY``), tags it with the Kedro context, logs the parameters and
the datasets the pipeline reads; node hooks, which ParallelRunner calls in its workers, record each node's
duration and outcome and each dataset written; ``after_pipeline_run`` / ``on_pipeline_error`` end the run as
``run.end`` says. The SDK is imported only when a pipeline runs, so the plugin costs other ``kedro`` commands
next to nothing.
"""

from __future__ import annotations

import os
import time
from typing import Any

from kedro.framework.hooks import hook_impl

from cairn.integrations.kedro import runtime
from cairn.integrations.kedro.config import CairnSettings
from cairn.integrations.kedro.tracking import (
    dataset_reference,
    kedro_tags,
    log_parameters,
    metric_key,
    pipeline_datasets,
)

MAX_ERROR = 2000


class CairnHooks:
    """Registered through the ``kedro.hooks`` entry point as :data:`hooks`."""

    def __init__(self) -> None:
        self._context: Any = None
        self._settings: CairnSettings | None = None
        self._started: dict[str, float] = {}
        self._catalog: Any = None

    # session and pipeline (the process that runs ``kedro run``) --------------------------------------
    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._context = context
        self._settings = runtime.guarded("read cairn.yml", _read_settings, context)

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        self._catalog = catalog
        with runtime.guard("start the Cairn run"):
            self._open_run(run_params, pipeline, catalog)

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], run_result: Any, pipeline: Any, catalog: Any) -> None:
        self._close_run("FINISHED")

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        run = runtime.current_run() if runtime.in_pipeline_process() else None
        if run is not None:
            runtime.guarded("record the error", run.set_tags, {"kedro.error": _describe_error(error)})
        self._close_run("FAILED")

    # nodes (ParallelRunner calls these in its workers) ------------------------------------------------
    @hook_impl
    def before_node_run(self, node: Any, catalog: Any) -> None:
        self._catalog = catalog
        self._started[node.name] = time.perf_counter()

    @hook_impl
    def after_node_run(self, node: Any) -> None:
        self._node_done(node, "completed")

    @hook_impl
    def on_node_error(self, error: Exception, node: Any) -> None:
        self._node_done(node, "failed", {"kedro.failed_node": node.name, "kedro.error": _describe_error(error)})
        runtime.flush_worker()

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, node: Any) -> None:
        settings = self._settings or CairnSettings()
        if not settings.log_datasets or self._catalog is None:
            return
        with runtime.guard(f"record dataset {dataset_name}"):
            run = runtime.current_run()
            ref = dataset_reference(self._catalog, dataset_name, "output") if run is not None else None
            if ref is not None:
                run.log_dataset(**ref.fields)
                run.set_tags(ref.tags)
        runtime.flush_worker()

    # internals ----------------------------------------------------------------------------------------
    def _open_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        from kedro.framework.project import PACKAGE_NAME

        import cairn

        settings = self._settings or CairnSettings.from_dict({})
        package = PACKAGE_NAME or "kedro"
        tags = {**kedro_tags(run_params, package), **settings.run_tags}
        uri, workspace = settings.tracking_uri, settings.workspace
        experiment = settings.experiment or package
        if settings.run_id:
            run = cairn.start_run(run_id=settings.run_id, tags=tags, tracking_uri=uri, workspace=workspace)
        else:
            name = settings.run_name or _run_name(run_params, package)
            run = cairn.start_run(experiment, name=name, tags=tags, run_key=settings.run_key, nested=False,
                                  source_dir=run_params.get("project_path"), tracking_uri=uri, workspace=workspace)
            if run.joined:
                run.set_tags(tags)
        exported = {runtime.RUN_ID_ENV: run.id, **settings.tracking_env(), **_worker_start(settings)}
        runtime.set_pipeline_run(run, exported, end=_ends(settings, run))
        if settings.log_params and self._context is not None:
            log_parameters(run, self._context.params, settings.params_include, settings.params_exclude)
        if settings.log_datasets:
            for ref in pipeline_datasets(pipeline, catalog):
                run.log_dataset(**ref.fields)
                run.set_tags(ref.tags)

    def _close_run(self, status: str) -> None:
        run = runtime.current_run() if runtime.in_pipeline_process() else None
        if run is None:
            return
        try:
            if runtime.ends_run(status):
                runtime.guarded("end the Cairn run", run.finish, status)
            else:
                runtime.guarded("flush the Cairn run", run.detach)
        finally:
            runtime.clear_pipeline_run()

    def _node_done(self, node: Any, outcome: str, extra: dict[str, str] | None = None) -> None:
        settings = self._settings or CairnSettings()
        started = self._started.pop(node.name, None)
        with runtime.guard(f"record node {node.name}"):
            run = runtime.current_run()
            if run is None:
                return
            if settings.log_node_timing:
                if started is not None:
                    run.log_metric(metric_key("kedro.node", node.name, "seconds"), time.perf_counter() - started)
                run.set_tags({metric_key("kedro.node", node.name, ""): outcome, **(extra or {})})
            elif extra:
                run.set_tags(extra)
        if outcome == "completed":
            runtime.flush_worker()


def _read_settings(context: Any) -> CairnSettings:
    """cairn.yml through the project's config loader (with its environments); none at all is fine."""
    from kedro.config import MissingConfigException

    loader = context.config_loader
    patterns = getattr(loader, "config_patterns", None)
    if isinstance(patterns, dict) and "cairn" not in patterns:
        patterns["cairn"] = ["cairn*", "cairn*/**"]
    try:
        raw = loader["cairn"]
    except (MissingConfigException, KeyError):
        raw = {}
    return CairnSettings.from_dict(dict(raw or {}))


def _run_name(run_params: dict[str, Any], package: str) -> str:
    names = [n for n in (run_params.get("pipeline_names") or []) if n and n != "__default__"]
    return "+".join(names) if names else package


def _ends(settings: CairnSettings, run: Any) -> str:
    """Whether this session ends the run: ``auto`` ends a run it created or joined by key (each invocation
    of a keyed pipeline leaves it with its own outcome; the next one resumes it), and leaves one given by id
    (an orchestrator's, a parent process's) RUNNING for its owner unless the pipeline failed."""
    if settings.end != "auto":
        return settings.end
    return "on_failure" if settings.run_id else "always"


def _worker_start(settings: CairnSettings) -> dict[str, str]:
    """With the embedded store, ParallelRunner's workers are spawned, not forked: a forked child inherits
    SQLite's in-process lock bookkeeping of the parent's connections, and its own writes could then wait on
    a lock that no live connection holds (SQLite: never carry a connection across fork). A project's own
    ``KEDRO_MP_CONTEXT`` is kept."""
    embedded = not (settings.tracking_uri or os.environ.get("CAIRN_TRACKING_URI"))
    return {"KEDRO_MP_CONTEXT": "spawn"} if embedded and "KEDRO_MP_CONTEXT" not in os.environ else {}


def _describe_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:MAX_ERROR]


hooks = CairnHooks()
