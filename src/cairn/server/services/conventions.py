"""Conventions a workspace (or one experiment) requires of its runs and model versions, and their checks.

A workspace states its conventions once (``experiment_id`` 0); an experiment may override them. Each rule
is on or off, with parameters. The mode says what a miss costs: ``off`` nothing is checked, ``warn`` the
run carries its report, ``enforce`` a run missing required tags is refused when it starts (before any
training happens) and a version that misses anything is refused by a protected registry. What is known only
later (datasets, models) never fails a run: it blocks registration and promotion instead.

Each run keeps its standing in ``runs.compliant`` (None: no conventions in force), updated by the writes
that can change it (tags, datasets, logged models) and by a change of conventions, so that a search on
``conventions.compliant`` reads one column. Changing conventions never alters a run's own data.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from cairn.server.db.models import (
    ConventionsRow,
    DatasetInputRow,
    ExperimentRow,
    LoggedModelRow,
    RunRow,
    RunTagRow,
)
from cairn.server.services import events
from cairn.server.services.context import Context
from cairn.server.services.errors import InvalidInputError, InvalidStateError, NotFoundError, PermissionDeniedError
from cairn.server.services.tenancy import referenced
from cairn.server.services.validation import MAX_ID

MODES = ("off", "warn", "enforce")
WORKSPACE = 0  # the experiment_id of a workspace's own conventions
DEFAULT_TAGS = ("developer", "format", "framework", "task", "variant")
RULES: dict[str, dict[str, Any]] = {  # rule -> its parameters and their defaults
    "required_tags": {"tags": list(DEFAULT_TAGS)},
    "dataset_reference": {"require_version": False},
    "code_reference": {"require_clean": False},
    "consistent_experiment": {},
    "one_model": {},
    "registry_ready": {},
}
RUN_RULES = ("required_tags", "dataset_reference", "code_reference", "consistent_experiment", "one_model")
PRESETS = {"recommended": tuple(RULES), "minimal": ("dataset_reference", "code_reference")}
# where the code reference is read from: what the Cairn SDK captures, what MLflow clients set, or plain tags
CODE_TAGS = {
    "repository": ("cairn.source.git.repo", "mlflow.source.git.repoURL", "repository"),
    "branch": ("cairn.source.git.branch", "mlflow.source.git.branch", "branch"),
    "commit": ("cairn.source.git.commit", "mlflow.source.git.commit", "commit"),
}
TRAINING_ROLES = ("", "training", "train", "input")  # MLflow says training; Kedro hooks say input
_CHUNK = 500


@dataclass(frozen=True)
class Conventions:
    """The conventions in force for one experiment; ``scope`` says where they were set."""

    mode: str = "off"
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    scope: str = "workspace"
    updated_by: str = ""
    updated_at: int | None = None

    @property
    def active(self) -> bool:
        return self.mode != "off" and bool(self.rules)


@dataclass
class RuleResult:
    rule: str
    met: bool
    missing: list[str] = field(default_factory=list)
    message: str = ""


@dataclass
class Report:
    mode: str
    scope: str
    compliant: bool | None
    rules: list[RuleResult] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return [f"{r.rule}: {r.message}" for r in self.rules if not r.met]


@dataclass
class _Facts:
    """What the run rules look at, for one run."""

    tags: dict[str, str] = field(default_factory=dict)
    datasets: list[tuple[str, str, str, str]] = field(default_factory=list)  # uri, digest, version, role
    models: int = 0
    established: tuple[str | None, str | None] = (None, None)  # the experiment's task and training dataset URI


# settings ----------------------------------------------------------------------------------------------


def parse(mode: Any, preset: Any = None, rules: Any = None) -> tuple[str, dict[str, dict[str, Any]]]:
    """Checked settings: the preset's rules with their defaults, then ``rules`` (name -> true, false or an
    object of parameters) on top. Unknown modes, presets, rules and parameters are refused by name."""
    if mode not in MODES:
        raise InvalidInputError(f"unknown mode {str(mode)[:40]!r}: expected one of {', '.join(MODES)}", field="mode")
    if preset is not None and preset not in PRESETS:
        raise InvalidInputError(f"unknown preset {str(preset)[:40]!r}: expected one of {', '.join(PRESETS)}",
                                field="preset")
    chosen = {name: dict(RULES[name]) for name in PRESETS[preset]} if preset is not None else {}
    if rules is None:
        return mode, chosen
    if not isinstance(rules, dict):
        raise InvalidInputError("rules must be an object of rule name to true, false or parameters", field="rules")
    for name, value in rules.items():
        if name not in RULES:
            raise InvalidInputError(f"unknown rule {str(name)[:60]!r}: expected one of {', '.join(RULES)}",
                                    field=f"rules.{str(name)[:60]}")
        if value is False:
            chosen.pop(name, None)
        else:
            chosen[name] = {**RULES[name], **_parameters(name, value)}
    return mode, chosen


def _parameters(rule: str, value: Any) -> dict[str, Any]:
    if value is True:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(f"rule {rule} takes true, false or an object of parameters", field=f"rules.{rule}")
    for key, given in value.items():
        if key not in RULES[rule]:
            known = ", ".join(RULES[rule]) or "none"
            raise InvalidInputError(f"rule {rule} has no parameter {str(key)[:60]!r} (it has: {known})",
                                    field=f"rules.{rule}.{str(key)[:60]}")
        if not isinstance(given, type(RULES[rule][key])):
            raise InvalidInputError(f"rules.{rule}.{key} must be a {type(RULES[rule][key]).__name__}",
                                    field=f"rules.{rule}.{key}")
    if rule == "required_tags" and not all(isinstance(t, str) and 0 < len(t) <= 250 for t in value.get("tags", [])):
        raise InvalidInputError("rules.required_tags.tags must be a list of tag names",
                                field="rules.required_tags.tags")
    return dict(value)


def effective(session: Session, workspace_id: int, experiment_id: int) -> Conventions:
    """The conventions in force for runs of ``experiment_id``: its own, else its workspace's, else off."""
    rows = list(session.scalars(select(ConventionsRow).where(
        ConventionsRow.workspace_id == workspace_id, ConventionsRow.experiment_id.in_((WORKSPACE, experiment_id)))))
    row = max(rows, key=lambda r: r.experiment_id, default=None)
    return _view(row) if row is not None else Conventions()


def _view(row: ConventionsRow) -> Conventions:
    return Conventions(row.mode, dict(row.rules), "workspace" if row.experiment_id == WORKSPACE else "experiment",
                       row.updated_by, row.updated_at)


def get_conventions(session: Session, ctx: Context, experiment_id: int | None = None) -> Conventions:
    if experiment_id is not None:
        _experiment(session, ctx, experiment_id)
    return effective(session, ctx.workspace_id, WORKSPACE if experiment_id is None else experiment_id)


def set_conventions(session: Session, ctx: Context, mode: Any, *, preset: Any = None, rules: Any = None,
                    experiment_id: int | None = None) -> Conventions:
    """Set a workspace's conventions, or one experiment's override (maintainers). The change is an event;
    the runs it covers are re-evaluated (their compliance flag), their data is not touched."""
    mode, chosen = parse(mode, preset, rules)
    key = _authorized_scope(session, ctx, experiment_id)
    row = session.get(ConventionsRow, (ctx.workspace_id, key))
    before = {"mode": row.mode, "rules": row.rules} if row is not None else None
    if row is None:
        row = ConventionsRow(workspace_id=ctx.workspace_id, experiment_id=key)
        session.add(row)
    row.mode, row.rules, row.updated_by, row.updated_at = mode, chosen, ctx.actor, events.now_ms()
    session.flush()
    events.record(session, ctx, "conventions.set", "conventions", _object_id(key), before=before,
                  after={"mode": mode, "rules": chosen})
    recheck(session, ctx.workspace_id, None if key == WORKSPACE else key)
    return _view(row)


def clear_conventions(session: Session, ctx: Context, experiment_id: int) -> Conventions:
    """Remove an experiment's override: its runs follow the workspace's conventions again."""
    key = _authorized_scope(session, ctx, experiment_id)
    row = session.get(ConventionsRow, (ctx.workspace_id, key))
    if row is None:
        raise NotFoundError(f"experiment {experiment_id} has no conventions of its own", field="experiment_id")
    events.record(session, ctx, "conventions.clear", "conventions", _object_id(key),
                  before={"mode": row.mode, "rules": row.rules})
    session.delete(row)
    session.flush()
    recheck(session, ctx.workspace_id, key)
    return effective(session, ctx.workspace_id, key)


def _object_id(key: int) -> str:
    return "workspace" if key == WORKSPACE else f"experiment:{key}"


def _authorized_scope(session: Session, ctx: Context, experiment_id: int | None) -> int:
    if experiment_id is None:
        if not ctx.guard.has("maintainer"):
            raise PermissionDeniedError(f"{ctx.actor} needs the maintainer role in this workspace to set its "
                                        "conventions")
        return WORKSPACE
    ctx.authorize("experiment", _experiment(session, ctx, experiment_id).id, "maintainer")
    return experiment_id


def _experiment(session: Session, ctx: Context, experiment_id: int) -> ExperimentRow:
    row = session.get(ExperimentRow, experiment_id) if 0 < experiment_id <= MAX_ID else None
    if row is None or row.workspace_id != ctx.workspace_id:
        raise NotFoundError(f"experiment {experiment_id} does not exist", field="experiment_id")
    return row


# evaluation ---------------------------------------------------------------------------------------------


def evaluate(conventions: Conventions, facts: _Facts) -> Report:
    if not conventions.active:
        return Report(conventions.mode, conventions.scope, None)
    results = [_CHECKS[name](params, facts) for name, params in conventions.rules.items() if name in RUN_RULES]
    return Report(conventions.mode, conventions.scope, all(r.met for r in results), results)


def _required_tags(params: dict[str, Any], facts: _Facts) -> RuleResult:
    missing = [t for t in params["tags"] if not facts.tags.get(t)]
    return RuleResult("required_tags", not missing, missing,
                      f"missing tags: {', '.join(missing)}" if missing else "all required tags are set")


def _dataset_reference(params: dict[str, Any], facts: _Facts) -> RuleResult:
    with_uri = [d for d in facts.datasets if d[0]]
    if not with_uri:
        return RuleResult("dataset_reference", False, ["dataset"], "no dataset with a URI is logged")
    if params["require_version"] and not any(d[1] or d[2] for d in with_uri):
        return RuleResult("dataset_reference", False, ["dataset version"],
                          "no logged dataset has a digest or a version")
    return RuleResult("dataset_reference", True, message="a dataset with a URI is logged")


def _code_reference(params: dict[str, Any], facts: _Facts) -> RuleResult:
    missing = [name for name, keys in CODE_TAGS.items() if not any(facts.tags.get(k) for k in keys)]
    if params["require_clean"] and facts.tags.get("cairn.source.git.dirty") != "false":
        missing.append("clean working tree")
    return RuleResult("code_reference", not missing, missing,
                      f"missing: {', '.join(missing)}" if missing else "repository, branch and commit are recorded")


def _consistent_experiment(_params: dict[str, Any], facts: _Facts) -> RuleResult:
    task, uri = facts.established
    off = []
    if task is not None and facts.tags.get("task") not in (None, task):
        off.append(f"task (the experiment's is {task!r})")
    uris = {d[0] for d in facts.datasets if d[0] and d[3] in TRAINING_ROLES}
    if uri is not None and uris and uri not in uris:
        off.append(f"training dataset (the experiment's is {uri!r})")
    return RuleResult("consistent_experiment", not off, off,
                      f"differs from the experiment's first run: {', '.join(off)}" if off
                      else "same task and training dataset as the experiment's other runs")


def _one_model(_params: dict[str, Any], facts: _Facts) -> RuleResult:
    met = facts.models <= 1
    return RuleResult("one_model", met, [] if met else ["one model"],
                      "at most one model is logged" if met else f"{facts.models} models are logged (at most one)")


_CHECKS = {"required_tags": _required_tags, "dataset_reference": _dataset_reference,
           "code_reference": _code_reference, "consistent_experiment": _consistent_experiment,
           "one_model": _one_model}


def _load_facts(session: Session, rows: list[RunRow], *, consistency: bool = True) -> dict[str, _Facts]:
    """The facts of many runs in a few queries (a change of conventions re-evaluates every run it covers); what
    the experiment's first runs established is read only for the rule that needs it."""
    facts = {r.id: _Facts() for r in rows}
    ids = list(facts)
    for run_id, key, value in session.execute(select(RunTagRow.run_id, RunTagRow.key, RunTagRow.value).where(
            RunTagRow.run_id.in_(ids))):
        facts[run_id].tags[key] = value
    d = DatasetInputRow
    for run_id, *dataset in session.execute(select(d.run_id, d.uri, d.digest, d.version, d.role).where(
            d.run_id.in_(ids))):
        facts[run_id].datasets.append(tuple(dataset))  # type: ignore[arg-type]
    counted = select(LoggedModelRow.run_id, func.count()).where(LoggedModelRow.run_id.in_(ids),
                                                                  LoggedModelRow.step < 0)
    for model_run, count in session.execute(counted.group_by(LoggedModelRow.run_id)):
        facts[str(model_run)].models = count
    if consistency:
        established = {e: _established(session, e) for e in {r.experiment_id for r in rows}}
        for row in rows:
            facts[row.id].established = established[row.experiment_id]
    return facts


def _established(session: Session, experiment_id: int) -> tuple[str | None, str | None]:
    """The task and training dataset URI of the experiment's first run that has them: what later runs match.
    Read in the (experiment, start time) index's order, stopping at the first run that has one."""
    first = (RunRow.experiment_id == experiment_id, RunRow.lifecycle == "active")
    task = session.scalar(select(RunTagRow.value).join(RunRow, RunRow.id == RunTagRow.run_id).where(
        *first, RunTagRow.key == "task").order_by(RunRow.start_time, RunRow.id).limit(1))
    uri = session.scalar(select(DatasetInputRow.uri).join(RunRow, RunRow.id == DatasetInputRow.run_id).where(
        *first, DatasetInputRow.uri != "", DatasetInputRow.role.in_(TRAINING_ROLES))
        .order_by(RunRow.start_time, RunRow.id, DatasetInputRow.id).limit(1))
    return task, uri


def run_report(session: Session, ctx: Context, run_id: str) -> Report:
    """The run's compliance, rule by rule, under the conventions in force now."""
    from cairn.server.services.runs import get_run_row  # runs calls this module on its writes

    row = get_run_row(session, ctx, run_id)
    conventions = effective(session, row.workspace_id, row.experiment_id)
    if not conventions.active:
        return Report(conventions.mode, conventions.scope, None)
    return evaluate(conventions, _load_facts(session, [row])[row.id])


# write paths --------------------------------------------------------------------------------------------


def check_start(session: Session, ctx: Context, experiment_id: int, tags: dict[str, str]) -> bool | None:
    """A new run's compliance flag. Enforced, a run without its required tags is refused here, before any
    training happens; what only comes later (datasets, models) is not held against it yet."""
    conventions = effective(session, ctx.workspace_id, experiment_id)
    if not conventions.active:
        return None
    consistency = "consistent_experiment" in conventions.rules
    facts = _Facts(tags=dict(tags), established=_established(session, experiment_id) if consistency else (None, None))
    report = evaluate(conventions, facts)
    required = next((r for r in report.rules if r.rule == "required_tags"), None)
    if conventions.mode == "enforce" and required is not None and not required.met:
        raise InvalidInputError(
            f"this {conventions.scope}'s conventions require the run tags {', '.join(required.missing)}: set them "
            "when the run starts", field="tags")
    return report.compliant


def refresh(session: Session, run_id: str, workspace_id: int, experiment_id: int) -> None:
    """Re-evaluate one run's flag after a write that can change it (its tags, datasets or models). With no
    conventions in force (the flag is then None) this costs one small read."""
    conventions = effective(session, workspace_id, experiment_id)
    if not conventions.active:
        return
    row = referenced(session, RunRow, run_id)
    if row is None:
        return
    facts = _load_facts(session, [row], consistency="consistent_experiment" in conventions.rules)
    flag = evaluate(conventions, facts[row.id]).compliant
    if flag != row.compliant:
        session.execute(update(_RUNS).where(_RUNS.c.id == run_id).values(compliant=flag))
        session.expire(row, ["compliant"])


_RUNS: Table = RunRow.__table__  # type: ignore[assignment]


def recheck(session: Session, workspace_id: int, experiment_id: int | None) -> int:
    """Re-evaluate the flags of every run a change of conventions covers (one experiment, or the workspace's
    experiments without conventions of their own); answers how many changed."""
    scope = select(RunRow).where(RunRow.workspace_id == workspace_id)
    if experiment_id is not None:
        scope = scope.where(RunRow.experiment_id == experiment_id)
    else:
        overridden = select(ConventionsRow.experiment_id).where(ConventionsRow.workspace_id == workspace_id,
                                                                ConventionsRow.experiment_id != WORKSPACE)
        scope = scope.where(RunRow.experiment_id.not_in(overridden))
    changed, after = 0, ""
    while True:
        rows = list(session.scalars(scope.where(RunRow.id > after).order_by(RunRow.id).limit(_CHUNK)))
        if not rows:
            return changed
        changed += _recheck_rows(session, rows)
        after = rows[-1].id


def _recheck_rows(session: Session, rows: list[RunRow]) -> int:
    facts = _load_facts(session, rows)
    settings: dict[int, Conventions] = {}
    flags: dict[bool | None, list[str]] = defaultdict(list)
    for row in rows:
        if row.experiment_id not in settings:
            settings[row.experiment_id] = effective(session, row.workspace_id, row.experiment_id)
        flag = evaluate(settings[row.experiment_id], facts[row.id]).compliant
        if flag != row.compliant:
            flags[flag].append(row.id)
    for flag, ids in flags.items():
        session.execute(update(_RUNS).where(_RUNS.c.id.in_(ids)).values(compliant=flag))
    session.expire_all()
    return sum(len(ids) for ids in flags.values())


# the registry --------------------------------------------------------------------------------------------


def version_report(session: Session, workspace_id: int, run_id: str | None, manifest: dict[str, Any],
                   lineage: dict[str, Any]) -> Report:
    """Is a model version fit for a protected registry: its signature and requirements, a source run that meets
    the conventions, and the metrics at the best step of each metric with a goal recorded with it."""
    run = referenced(session, RunRow, run_id) if run_id is not None else None
    experiment_id = run.experiment_id if run is not None else int(lineage.get("experiment_id") or WORKSPACE)
    conventions = effective(session, workspace_id, experiment_id)
    if not conventions.active:
        return Report(conventions.mode, conventions.scope, None)
    report = evaluate(conventions, _load_facts(session, [run])[run.id]) if run is not None else Report(
        conventions.mode, conventions.scope, True, [RuleResult("source_run", False, ["source run"],
                                                               "the model was not logged by a run")])
    if "registry_ready" in conventions.rules:
        report.rules.append(_registry_ready(manifest, lineage))
    report.compliant = all(r.met for r in report.rules)
    return report


def _registry_ready(manifest: dict[str, Any], lineage: dict[str, Any]) -> RuleResult:
    missing = [] if _has_signature(manifest) else ["signature"]
    files: dict[str, Any] = manifest["files"] if isinstance(manifest.get("files"), dict) else {}
    if not (manifest.get("requirements") or any(f in files for f in _REQUIREMENT_FILES)):
        missing.append("requirements")
    goals = [k for k, s in (lineage.get("metrics") or {}).items() if isinstance(s, dict) and s.get("goal")]
    missing += [f"metrics at the best step of {k}" for k in goals if k not in (lineage.get("at_best") or {})]
    return RuleResult("registry_ready", not missing, missing,
                      f"missing: {', '.join(missing)}" if missing else "signature, requirements and best-step "
                      "metrics are recorded")


_REQUIREMENT_FILES = ("requirements.txt", "python_env.yaml", "conda.yaml")  # what MLflow saves with a model


def _has_signature(manifest: dict[str, Any]) -> bool:
    """A Cairn manifest carries its signature; an MLflow model keeps it in its MLmodel file, which the server
    does not parse: the input example MLflow saves beside it (and infers the signature from) stands for it."""
    if manifest.get("flavor") != "mlflow":
        return bool(manifest.get("signature"))
    files: dict[str, Any] = manifest["files"] if isinstance(manifest.get("files"), dict) else {}
    return "input_example.json" in files or "serving_input_example.json" in files


def version_compliance(session: Session, ctx: Context, full_name: str, version: Any) -> Report:
    """A registered version's standing under the conventions in force now (shown on its page)."""
    from cairn.server.services.versions import get_version  # versions calls this module when it registers

    row = get_version(session, ctx, full_name, version).row
    return version_report(session, ctx.workspace_id, row.run_id, row.manifest, row.lineage)


def check_version(session: Session, ctx: Context, protected: bool, run_id: str | None, manifest: dict[str, Any],
                  lineage: dict[str, Any]) -> None:
    """A protected registry of an enforcing workspace refuses a version that misses a convention, naming what."""
    if not protected:
        return
    report = version_report(session, ctx.workspace_id, run_id, manifest, lineage)
    if report.mode == "enforce" and report.compliant is False:
        raise InvalidStateError("this version does not meet the conventions a protected registry requires: "
                                + "; ".join(report.missing), field="conventions")


def describe() -> dict[str, Any]:
    """The rules, their default parameters, and the presets: what a client may choose from."""
    return {"modes": list(MODES), "rules": {k: dict(v) for k, v in RULES.items()},
            "presets": {k: list(v) for k, v in PRESETS.items()}}

