"""/api/v1/conventions: what a workspace (or one experiment) requires of its runs; a run's compliance."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from cairn.server.api.auth import Access, requires
from cairn.server.api.common import Route, call
from cairn.server.schemas import conventions as schemas
from cairn.server.services import conventions as svc

router = APIRouter(prefix="/api/v1", tags=["conventions"], route_class=Route)
EXPERIMENT = Query(None, ge=1, le=2**31 - 1, description="an experiment's conventions instead of the workspace's")


@router.get("/conventions/rules")
def list_rules(access: Access = requires("conventions.read")) -> schemas.RulesOut:
    """The rules with their default parameters, the presets and the modes."""
    return schemas.RulesOut(**svc.describe())


@router.get("/conventions")
def get_conventions(request: Request, experiment_id: int | None = EXPERIMENT,
                    access: Access = requires("conventions.read")) -> schemas.ConventionsOut:
    """The conventions in force: the experiment's own, else the workspace's (``scope`` says which)."""
    return schemas.conventions_out(call(request, access, False, svc.get_conventions, experiment_id))


@router.put("/conventions")
def set_conventions(body: schemas.ConventionsSet, request: Request,
                    access: Access = requires("conventions.manage")) -> schemas.ConventionsOut:
    """Set the workspace's conventions (or, with ``experiment_id``, that experiment's). Maintainers; audited."""
    view = call(request, access, True, svc.set_conventions, body.mode, preset=body.preset, rules=body.rules,
                experiment_id=body.experiment_id)
    return schemas.conventions_out(view)


@router.delete("/conventions")
def clear_conventions(request: Request, experiment_id: int = Query(ge=1, le=2**31 - 1),
                      access: Access = requires("conventions.manage")) -> schemas.ConventionsOut:
    """Remove an experiment's own conventions; answers what is in force for it now."""
    return schemas.conventions_out(call(request, access, True, svc.clear_conventions, experiment_id))


@router.get("/runs/{run_id}/compliance")
def get_compliance(run_id: str, request: Request, access: Access = requires("run.read")) -> schemas.ComplianceOut:
    """Which conventions the run meets and which it misses, rule by rule, under the conventions in force now."""
    return schemas.compliance_out(call(request, access, False, svc.run_report, run_id))


@router.get("/models/{name}/versions/{version}/compliance")
def get_version_compliance(name: str, version: str, request: Request,
                           access: Access = requires("model.read")) -> schemas.ComplianceOut:
    """A model version's standing: its source run's conventions and, with ``registry_ready``, what a protected
    registry requires of it."""
    return schemas.compliance_out(call(request, access, False, svc.version_compliance, name, version))
