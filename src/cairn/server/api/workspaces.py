"""/api/v1/workspaces (members, roles, grants) and /api/v1/events (the workspace's audit log)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from cairn.server.api import transaction as tx
from cairn.server.api.accounts import event_query
from cairn.server.api.auth import Access, requires
from cairn.server.api.common import JSON, Route
from cairn.server.schemas import collab as schemas
from cairn.server.schemas.tracking import Empty
from cairn.server.services import events, removal, workspaces
from cairn.server.services.validation import MAX_ID

router = APIRouter(prefix="/api/v1", tags=["workspaces"], route_class=Route)
WORKSPACE = "/workspaces/{workspace}"
KIND = Path(pattern="^(users|teams)$")


def _who(kind: str, name: str) -> dict[str, str]:
    return {"user": name} if kind == "users" else {"team": name}


@router.get("/workspaces", response_model=schemas.WorkspaceList)
def list_workspaces(request: Request, access: Access = requires("account.self")) -> Response:
    rows = tx.read_instance(request, workspaces.list_workspaces, access.identity)
    return JSON({"workspaces": [schemas.workspace_out(row, role) for row, role in rows]})


@router.post("/workspaces", status_code=201, response_model=schemas.Workspace)
def create_workspace(body: schemas.WorkspaceCreate, request: Request,
                     access: Access = requires("admin.manage")) -> Response:
    """A new workspace, with a ``dev`` registry and a protected ``prod`` one. Server admins only."""
    row = tx.write_instance(request, workspaces.create_workspace, access.actor, body.name, body.description,
                            require_approval=body.require_approval, client_addr=access.client_addr)
    return JSON(schemas.workspace_out(row), status_code=201)


@router.get(WORKSPACE, response_model=schemas.Workspace)
def get_workspace(workspace: str, request: Request, access: Access = requires("workspace.read")) -> Response:
    def get(session: Any, ctx: Any) -> Any:
        return schemas.workspace_out(workspaces.get_workspace(session, ctx.workspace), ctx.guard.role)
    return JSON(tx.read(request, access, get))


@router.patch(WORKSPACE, response_model=schemas.Workspace)
def update_workspace(workspace: str, body: schemas.WorkspaceUpdate, request: Request,
                     access: Access = requires("workspace.manage")) -> Response:
    def update(session: Any, ctx: Any) -> Any:
        row = workspaces.update_workspace(session, ctx, description=body.description,
                                          require_approval=body.require_approval)
        return schemas.workspace_out(row, ctx.guard.role)
    return JSON(tx.write(request, access, update))


@router.delete(WORKSPACE, response_model=Empty)
def delete_workspace(workspace: str, request: Request, access: Access = requires("admin.manage")) -> Response:
    """Delete a workspace holding no active experiment or model. Server admins only, like creating one."""
    tx.write_instance(request, removal.delete_workspace, access.actor, workspace, access.client_addr)
    request.app.state.db.cache.clear()  # its name -> id, so a workspace made again under the name is found
    return JSON({})


@router.get(WORKSPACE + "/members", response_model=schemas.MemberList)
def list_members(workspace: str, request: Request, access: Access = requires("workspace.read")) -> Response:
    return JSON({"members": [schemas.member_out(m) for m in tx.read(request, access, workspaces.list_members)]})


@router.post(WORKSPACE + "/members", status_code=201, response_model=schemas.WorkspaceMember)
def add_member(workspace: str, body: schemas.MemberAdd, request: Request,
               access: Access = requires("workspace.manage")) -> Response:
    member = tx.write(request, access, workspaces.add_member, body.role, user=body.user, team=body.team)
    return JSON(schemas.member_out(member), status_code=201)


@router.patch(WORKSPACE + "/members/{kind}/{name}", response_model=schemas.WorkspaceMember)
def set_member_role(workspace: str, name: str, body: schemas.RoleChange, request: Request, kind: str = KIND,
                    access: Access = requires("workspace.manage")) -> Response:
    member = tx.write(request, access, workspaces.set_member_role, body.role, **_who(kind, name))
    return JSON(schemas.member_out(member))


@router.delete(WORKSPACE + "/members/{kind}/{name}", response_model=Empty)
def remove_member(workspace: str, name: str, request: Request, kind: str = KIND,
                  access: Access = requires("workspace.manage")) -> Response:
    tx.write(request, access, workspaces.remove_member, **_who(kind, name))
    return JSON({})


@router.get(WORKSPACE + "/grants", response_model=schemas.GrantList)
def list_grants(workspace: str, request: Request, access: Access = requires("workspace.read")) -> Response:
    return JSON({"grants": tx.read(request, access, workspaces.list_grants)})


@router.post(WORKSPACE + "/grants", status_code=201, response_model=schemas.NewGrant)
def add_grant(workspace: str, body: schemas.GrantCreate, request: Request,
              access: Access = requires("workspace.manage")) -> Response:
    row = tx.write(request, access, workspaces.grant, body.resource_type, body.resource, body.role, user=body.user,
                   team=body.team)
    return JSON({"id": row.id, "resource_type": body.resource_type, "resource": body.resource, "role": body.role,
                 **({"user": body.user} if body.user else {"team": body.team})}, status_code=201)


@router.delete(WORKSPACE + "/grants/{grant_id}", response_model=Empty)
def revoke_grant(workspace: str, request: Request, grant_id: int = Path(ge=1, le=MAX_ID),
                 access: Access = requires("workspace.manage")) -> Response:
    tx.write(request, access, workspaces.revoke_grant, grant_id)
    return JSON({})


@router.get("/events", response_model=schemas.EventPage)
def list_events(request: Request, since: str | None = Query(None, max_length=64),
                until: str | None = Query(None, max_length=64), actor: str | None = Query(None, max_length=250),
                action: str | None = Query(None, max_length=64), object_type: str | None = Query(None, max_length=64),
                object_id: str | None = Query(None, max_length=250), max_results: int = Query(100, ge=1, le=1000),
                page_token: str | None = Query(None, max_length=32),
                access: Access = requires("audit.read")) -> Response:
    """The workspace's audit log, oldest first. Owners only; append-only (no route edits or deletes)."""
    query = event_query(since, until, actor, action, object_type, object_id, max_results, page_token)

    def read(session: Any, ctx: Any) -> Any:
        return events.list_events(session, ctx.workspace_id, query)
    return JSON(schemas.event_page_out(tx.read(request, access, read), max_results))
