"""/api/v1/conventions: what a workspace (or one experiment) requires of its runs; a run's compliance."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from cairn.server.api import transaction as tx
from cairn.server.api.auth import Access, requires
from cairn.server.api.common import Route
from cairn.server.schemas import conventions as schemas
from cairn.server.services import conventions
from cairn.server.services.validation import MAX_ID

router = APIRouter(prefix="/api/v1", tags=["conventions"], route_class=Route)
EXPERIMENT = Query(None, ge=1, le=MAX_ID, description="an experiment's conventions instead of the workspace's")


@router.get("/conventions/rules")
def list_rules(access: Access = requires("conventions.read")) -> schemas.RulesOut:
    """The rules with their default parameters, the presets and the modes."""
    return schemas.RulesOut(**conventions.describe())


@router.get("/conventions")
def get_conventions(request: Request, experiment_id: int | None = EXPERIMENT,
                    access: Access = requires("conventions.read")) -> schemas.ConventionsOut:
    """The conventions in force: the experiment's own, else the workspace's (``scope`` says which)."""
    return schemas.conventions_out(tx.read(request, access, conventions.get_conventions, experiment_id))


@router.put("/conventions")
def set_conventions(body: schemas.ConventionsSet, request: Request,
                    access: Access = requires("conventions.manage")) -> schemas.ConventionsOut:
    """Set the workspace's conventions (or, with ``experiment_id``, that experiment's). Maintainers; audited."""
    view = tx.write(request, access, conventions.set_conventions, body.mode, preset=body.preset, rules=body.rules,
                experiment_id=body.experiment_id)
    return schemas.conventions_out(view)


@router.delete("/conventions")
def clear_conventions(request: Request, experiment_id: int = Query(ge=1, le=MAX_ID),
                      access: Access = requires("conventions.manage")) -> schemas.ConventionsOut:
    """Remove an experiment's own conventions; answers what is in force for it now."""
    return schemas.conventions_out(tx.write(request, access, conventions.clear_conventions, experiment_id))


@router.get("/runs/{run_id}/compliance")
def get_compliance(run_id: str, request: Request, access: Access = requires("run.read")) -> schemas.ComplianceOut:
    """Which conventions the run meets and which it misses, rule by rule, under the conventions in force now."""
    return schemas.compliance_out(tx.read(request, access, conventions.run_report, run_id))


@router.get("/models/{name}/versions/{version}/compliance")
def get_version_compliance(name: str, version: str, request: Request,
                           access: Access = requires("model.read")) -> schemas.ComplianceOut:
    """A model version's standing: its source run's conventions and, with ``registry_ready``, what a protected
    registry requires of it."""
    return schemas.compliance_out(tx.read(request, access, conventions.version_compliance, name, version))
