"""Request and response models of the conventions API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from cairn.server.schemas.tracking import Strict
from cairn.server.services.conventions import Conventions, Report
from cairn.server.services.validation import MAX_ID


class ConventionsSet(Strict):
    """``preset`` gives a starting set of rules; ``rules`` turns rules on (true or parameters) or off (false)."""

    mode: str
    preset: str | None = None
    rules: dict[str, Any] | None = None
    experiment_id: int | None = Field(default=None, ge=1, le=MAX_ID)


class ConventionsOut(BaseModel):
    mode: str
    scope: str  # "workspace" or "experiment": where the conventions in force were set
    rules: dict[str, dict[str, Any]]
    updated_by: str
    updated_at: int | None


class RuleOut(BaseModel):
    rule: str
    met: bool
    missing: list[str]
    message: str


class ComplianceOut(BaseModel):
    mode: str
    scope: str
    compliant: bool | None  # None: no conventions are in force
    rules: list[RuleOut]


class RulesOut(BaseModel):
    modes: list[str]
    rules: dict[str, dict[str, Any]]
    presets: dict[str, list[str]]


def conventions_out(view: Conventions) -> ConventionsOut:
    return ConventionsOut(mode=view.mode, scope=view.scope, rules=view.rules, updated_by=view.updated_by,
                          updated_at=view.updated_at)


def compliance_out(report: Report) -> ComplianceOut:
    return ComplianceOut(mode=report.mode, scope=report.scope, compliant=report.compliant,
                         rules=[RuleOut(rule=r.rule, met=r.met, missing=r.missing, message=r.message)
                                for r in report.rules])
