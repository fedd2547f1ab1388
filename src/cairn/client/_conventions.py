"""Conventions: the tags the SDK fills in for a run, a run's compliance report, and the client calls that set
and read a workspace's (or an experiment's) conventions."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Any

from cairn.client._errors import CairnError
from cairn.client._source import entry_point, user
from cairn.client._transport import Transport

log = logging.getLogger("cairn")
# the libraries a run's framework is named after, most specific first (transformers imports torch)
FRAMEWORKS = (("transformers", "transformers"), ("torch", "pytorch"), ("tensorflow", "tensorflow"),
              ("keras", "keras"), ("jax", "jax"), ("xgboost", "xgboost"), ("lightgbm", "lightgbm"),
              ("catboost", "catboost"), ("sklearn", "sklearn"))


def framework() -> str | None:
    """The machine-learning library the process has imported, if any."""
    return next((name for module, name in FRAMEWORKS if module in sys.modules), None)


_signed_in: dict[tuple[str | None, str], str] = {}


def developer(transport: Transport, tracking_uri: str | None, token: str | None) -> str:
    """Who develops the run: the signed-in user when a token says who that is (asked once per token), else
    the OS user."""
    if not token:
        return user()
    if (tracking_uri, token) not in _signed_in:
        try:
            me = transport.request("GET", "/api/v1/auth/me")
            _signed_in[(tracking_uri, token)] = str(me["user"]["name"]) if me.get("auth") else user()
        except (CairnError, KeyError, TypeError):
            return user()
    return _signed_in[(tracking_uri, token)]


def filled_tags(explicit: dict[str, str], developer: str | None = None) -> dict[str, str]:
    """The convention tags the SDK knows by itself (who, notebook or script, framework); a tag the user gave
    always wins, so only the others are returned."""
    tags = {"developer": developer or user(), "format": "notebook" if entry_point() == "notebook" else "script"}
    found = framework()
    if found is not None:
        tags["framework"] = found
    return {k: v for k, v in tags.items() if k not in explicit}


@dataclass(frozen=True)
class RuleCheck:
    rule: str
    met: bool
    missing: list[str]
    message: str


@dataclass(frozen=True)
class Compliance:
    """A run's standing under the conventions in force: ``compliant`` is None when none are."""

    mode: str
    scope: str
    compliant: bool | None
    rules: list[RuleCheck] = field(default_factory=list)

    @property
    def missing(self) -> dict[str, list[str]]:
        return {r.rule: r.missing for r in self.rules if not r.met}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Compliance:
        return cls(d["mode"], d["scope"], d["compliant"],
                   [RuleCheck(r["rule"], r["met"], list(r["missing"]), r["message"]) for r in d["rules"]])

    def __str__(self) -> str:
        if self.compliant is None:
            return "no conventions are in force"
        lines = [f"{'compliant' if self.compliant else 'NOT compliant'} ({self.mode}, set on the {self.scope})"]
        lines += [f"  {'met ' if r.met else 'MISS'}  {r.rule}: {r.message}" for r in self.rules]
        return "\n".join(lines)


@dataclass(frozen=True)
class ConventionSettings:
    mode: str
    scope: str
    rules: dict[str, dict[str, Any]]
    updated_by: str
    updated_at: int | None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ConventionSettings:
        return cls(d["mode"], d["scope"], dict(d["rules"]), d["updated_by"], d["updated_at"])


def compliance_of(transport: Transport, run_id: str) -> Compliance:
    return Compliance.from_json(transport.request("GET", f"/api/v1/runs/{run_id}/compliance"))


def warn_once(run_id: str, report: Compliance) -> None:
    """The one warning a run in a ``warn`` workspace gets when it ends short of the conventions."""
    if report.mode == "warn" and report.compliant is False:
        missing = "; ".join(f"{rule}: {', '.join(items)}" for rule, items in report.missing.items())
        log.warning("cairn: run %s does not meet this workspace's conventions (%s)", run_id, missing)


class ConventionsMixin:
    """The Client's conventions calls."""

    _t: Transport

    def set_conventions(self, mode: str, *, preset: str | None = None, rules: dict[str, Any] | None = None,
                        experiment: str | int | None = None) -> ConventionSettings:
        """Set the workspace's conventions (``mode`` off, warn or enforce; ``preset`` recommended or minimal;
        ``rules`` turns single rules on, off or sets their parameters), or with ``experiment`` that one's."""
        body = {"mode": mode, "preset": preset, "rules": rules, "experiment_id": self._scope_id(experiment)}
        return ConventionSettings.from_json(self._t.request("PUT", "/api/v1/conventions", json=body))

    def get_conventions(self, experiment: str | int | None = None) -> ConventionSettings:
        """The conventions in force for the workspace, or for one experiment (its own, else the workspace's)."""
        found = self._scope_id(experiment)
        params = {"experiment_id": found} if found is not None else None
        return ConventionSettings.from_json(self._t.request("GET", "/api/v1/conventions", params=params))

    def clear_conventions(self, experiment: str | int) -> ConventionSettings:
        """Remove an experiment's own conventions: the workspace's apply to it again."""
        params = {"experiment_id": self._scope_id(experiment)}
        return ConventionSettings.from_json(self._t.request("DELETE", "/api/v1/conventions", params=params))

    def check_run(self, run_id: str) -> Compliance:
        """Which conventions the run meets and which it misses, and why."""
        return compliance_of(self._t, run_id)

    def _scope_id(self, experiment: str | int | None) -> int | None:
        if experiment is None or isinstance(experiment, int):
            return experiment
        return int(self._t.request("GET", "/api/v1/experiments/by-name", params={"name": experiment})["experiment_id"])
