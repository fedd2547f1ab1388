"""Operators on Cairn's registry. Each returns a small JSON-serialisable dict (the task's XCom value), and
takes templated arguments, so that versions and request ids flow from task to task through XCom."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from airflow.sdk import BaseBranchOperator, BaseOperator
from airflow.sdk.exceptions import AirflowException

import cairn
from cairn.integrations.airflow import _checks
from cairn.integrations.airflow.hooks import CairnHook
from cairn.integrations.airflow.runs import join_dag_run

SUMMARIES = ("last", "min", "max", "mean", "best")
PROMOTE_MODES = ("auto", "direct", "request")


class _CairnOperator(BaseOperator):
    def __init__(self, *, cairn_conn_id: str = CairnHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cairn_conn_id = cairn_conn_id

    def client(self) -> cairn.Client:
        return CairnHook(self.cairn_conn_id).get_conn()


def version_out(version: cairn.ModelVersion) -> dict[str, Any]:
    return {"model": version.name, "version": version.version, "uri": version.uri, "run_id": version.run_id,
            "aliases": list(version.aliases)}


class CairnRegisterModelOperator(_CairnOperator):
    """Register a model a run logged (``source="runs:/<run id>/<model name>"``, or ``run_id`` and
    ``model_name``) as the next version of ``name`` (``"dev.churn"``), with tags and aliases in the same
    call. Returns ``{"model", "version", "uri", "run_id", "aliases"}``."""

    template_fields: Sequence[str] = ("name", "source", "run_id", "model_name", "tags", "aliases", "description")

    def __init__(self, *, name: str, source: str | None = None, run_id: str | None = None,
                 model_name: str = "model", tags: dict[str, str] | None = None, aliases: list[str] | None = None,
                 description: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name, self.source, self.run_id, self.model_name = name, source, run_id, model_name
        self.tags, self.aliases, self.description = tags or {}, aliases or [], description

    def execute(self, context: Any) -> dict[str, Any]:
        if not self.source and not self.run_id:
            raise AirflowException("CairnRegisterModelOperator needs source= (runs:/<run id>/<model>) or run_id=")
        source = self.source or f"runs:/{self.run_id}/{self.model_name}"
        version = self.client().register_model(source, self.name, tags={k: str(v) for k, v in self.tags.items()},
                                               aliases=list(self.aliases), description=self.description)
        return version_out(version)


class CairnSetAliasOperator(_CairnOperator):
    """Point ``alias`` of ``model`` at ``version`` (the move is kept in the alias history with ``reason``).
    Returns ``{"model", "alias", "version", "previous_version"}``."""

    template_fields: Sequence[str] = ("model", "alias", "version", "reason")

    def __init__(self, *, model: str, alias: str, version: Any, reason: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model, self.alias, self.version, self.reason = model, alias, version, reason

    def execute(self, context: Any) -> dict[str, Any]:
        client = self.client()
        number = _checks.version_of(self.version)
        try:
            previous: int | None = client.get_model_version_by_alias(self.model, self.alias).version
        except cairn.NotFoundError:
            previous = None
        client.set_alias(self.model, self.alias, number, reason=self.reason)
        return {"model": self.model, "alias": self.alias, "version": number, "previous_version": previous}


class CairnPromoteModelOperator(_CairnOperator):
    """Promote version ``version`` of ``model`` into another registry (``to="prod.churn"``), or, when that
    registry needs approval, open a promotion request for a second person to decide.

    ``mode``: ``"auto"`` (default) requests when the target registry is protected in a workspace that
    requires approval and promotes directly otherwise; ``"request"`` always requests; ``"direct"`` always
    promotes (and fails where approval is required). Returns ``{"action": "promoted" | "requested",
    "request_id", "model", "version", "source_model", "source_version"}``: ``request_id`` is None after a direct
    promotion, ``version`` None while a request waits. A retried task finds its own pending request
    instead of failing on the duplicate."""

    template_fields: Sequence[str] = ("model", "version", "to", "aliases", "note", "mode")

    def __init__(self, *, model: str, version: Any, to: str, aliases: list[str] | None = None, note: str = "",
                 mode: str = "auto", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model, self.version, self.to, self.aliases, self.note = model, version, to, aliases or [], note
        self.mode = mode

    def execute(self, context: Any) -> dict[str, Any]:
        if self.mode not in PROMOTE_MODES:
            raise AirflowException(f"mode must be one of {', '.join(PROMOTE_MODES)}, got {self.mode!r}")
        client, number = self.client(), _checks.version_of(self.version)
        answer = {"source_model": self.model, "source_version": number, "model": self.to}
        if self.mode == "request" or (self.mode == "auto" and needs_approval(client, self.to)):
            request = self._request(client, number)
            return {**answer, "action": "requested", "request_id": request.id, "version": request.result_version}
        promoted = client.promote(self.model, number, self.to, aliases=list(self.aliases), note=self.note)
        return {**answer, "action": "promoted", "request_id": None, "version": promoted.version}

    def _request(self, client: cairn.Client, number: int) -> cairn.PromotionRequest:
        try:
            return client.request_promotion(self.model, number, self.to, aliases=list(self.aliases),
                                            comment=self.note)
        except cairn.ConflictError:
            mine = [r for r in client.list_promotion_requests(status="pending")
                    if (r.model, r.version, r.to) == (self.model, number, self.to)]
            if not mine:
                raise
            self.log.info("promotion request %s for this version is already pending: using it", mine[0].id)
            return mine[0]


def needs_approval(client: cairn.Client, full_name: str) -> bool:
    """Whether a new version of ``full_name`` (``registry.model``) can only come from an approved request."""
    registry_name = full_name.partition(".")[0]
    registry = next((r for r in client.list_registries() if r.name == registry_name), None)
    if registry is None:
        raise AirflowException(f"no registry {registry_name!r} in workspace {client.config.workspace!r} "
                               f"(from to={full_name!r})")
    return registry.protected and client.get_workspace(client.config.workspace).require_approval


class CairnBranchOnMetricOperator(_CairnOperator, BaseBranchOperator):
    """Compare a summary (``last``, ``min``, ``max``, ``mean`` or ``best``) of ``metric`` between a candidate
    and a baseline, and follow ``if_better`` or ``otherwise`` (the other branch is skipped).

    Candidate and baseline are model URIs (``models:/dev.churn@challenger``, ``models:/prod.churn/4``: the
    run that made the version is compared), ``runs:/<run id>`` or run ids. ``goal`` ("max" or "min") defaults
    to the goal the metric declares in the candidate run. The candidate is better when it improves on the
    baseline by more than zero and by at least ``min_delta``. With no baseline (no champion yet) the DAG
    follows ``on_missing_baseline``: ``"if_better"`` (default), ``"otherwise"`` or ``"fail"``.
    The comparison (both values, the goal, ``better`` and the ``branch`` taken) is pushed to XCom under the
    key ``comparison``."""

    template_fields: Sequence[str] = ("candidate", "baseline", "metric", "summary", "goal", "min_delta",
                                      "if_better", "otherwise")

    def __init__(self, *, candidate: str, baseline: str, metric: str, if_better: str | list[str],
                 otherwise: str | list[str], summary: str = "last", goal: str | None = None, min_delta: Any = 0.0,
                 on_missing_baseline: str = "if_better", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.candidate, self.baseline, self.metric, self.summary = candidate, baseline, metric, summary
        self.goal, self.min_delta, self.if_better, self.otherwise = goal, min_delta, if_better, otherwise
        self.on_missing_baseline = on_missing_baseline

    def choose_branch(self, context: Any) -> str | Iterable[str]:
        if self.summary not in SUMMARIES:
            raise AirflowException(f"summary must be one of {', '.join(SUMMARIES)}, got {self.summary!r}")
        client = self.client()
        candidate_run = run_of(client, self.candidate, "candidate")
        value, goal = summary_value(candidate_run, self.metric, self.summary, self.goal, "candidate")
        try:
            baseline_run: cairn.Run | None = run_of(client, self.baseline, "baseline")
        except cairn.NotFoundError:
            baseline_run = None
        comparison = {"metric": self.metric, "summary": self.summary, "goal": goal, "candidate": value,
                      "candidate_run_id": candidate_run.id, "baseline": None, "baseline_run_id": None,
                      "min_delta": float(self.min_delta)}
        if baseline_run is None:
            better = self._missing_baseline()
        else:
            base, _ = summary_value(baseline_run, self.metric, self.summary, goal, "baseline")
            comparison.update(baseline=base, baseline_run_id=baseline_run.id)
            better = beats(value, base, goal, float(self.min_delta))
        branch = self.if_better if better else self.otherwise
        comparison.update(better=better, branch=branch)
        context["ti"].xcom_push(key="comparison", value=comparison)
        self.log.info("cairn: %s", comparison)
        return branch

    def _missing_baseline(self) -> bool:
        if self.on_missing_baseline == "fail":
            raise AirflowException(f"baseline {self.baseline!r} does not exist")
        if self.on_missing_baseline not in ("if_better", "otherwise"):
            raise AirflowException("on_missing_baseline must be 'if_better', 'otherwise' or 'fail', got "
                                   f"{self.on_missing_baseline!r}")
        return self.on_missing_baseline == "if_better"


def run_of(client: cairn.Client, ref: str, what: str) -> cairn.Run:
    """The run behind a model URI, a ``runs:/`` URI or a run id."""
    ref = ref.strip()
    if ref.startswith("models:/"):
        version = client.resolve_model_uri(ref)
        if version.run_id is None:
            raise AirflowException(f"{what} {ref} (version {version.version}) was not made by a run: it has no "
                                   "metrics to compare")
        return client.get_run(version.run_id)
    return client.get_run(ref.removeprefix("runs:/").partition("/")[0])


def summary_value(run: cairn.Run, metric: str, summary: str, goal: str | None, what: str) -> tuple[float, str]:
    found = run.metrics.get(metric)
    if found is None:
        raise AirflowException(f"{what} run {run.id} has no metric {metric!r} (it has: "
                               f"{', '.join(sorted(run.metrics)) or 'none'})")
    goal = goal or found.goal
    if goal not in ("min", "max"):
        raise AirflowException(f"say whether higher or lower {metric!r} is better: goal='max' or 'min' (the "
                               f"{what} run declares no goal for it)")
    value = getattr(found, summary)
    if value is None:
        raise AirflowException(f"{what} run {run.id}: metric {metric!r} has no {summary} value"
                               + (" (best needs a goal declared with define_metric)" if summary == "best" else ""))
    return float(value), goal


def beats(candidate: float, baseline: float, goal: str, min_delta: float) -> bool:
    improvement = candidate - baseline if goal == "max" else baseline - candidate
    return improvement > 0 and improvement >= min_delta


class CairnEndRunOperator(_CairnOperator):
    """End the Cairn run of this DAG run (the one ``cairn_run`` opened in ``experiment``) with ``status``.
    Put it last; ``trigger_rule="all_done"`` makes it run, and end the run, even when tasks failed.
    Returns ``{"run_id", "status"}``."""

    template_fields: Sequence[str] = ("experiment", "status")

    def __init__(self, *, experiment: str, status: str = "FINISHED", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.experiment, self.status = experiment, status

    def execute(self, context: Any) -> dict[str, Any]:
        run = join_dag_run(CairnHook(self.cairn_conn_id).get_target(), self.experiment, context)
        run.finish(self.status)
        return {"run_id": run.id, "status": run.status}
