"""API tokens (admins): create one (its value is shown once), list them, revoke one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from contactsync.errors import ContactsyncError
from contactsync.hub import tokens, workspaces
from contactsync.web.deps import Admin, Db, PostedAdmin
from contactsync.web.render import redirect, render

router = APIRouter()


def _page(request: Request, db: Db, workspace_id: str, status: int = 200, **context: Any) -> Response:
    return render(
        request,
        "tokens.html",
        status=status,
        tokens=tokens.list_tokens(db, workspace_id),
        roles=[r.value for r in tokens.Role],
        nodes=workspaces.list_nodes(db, workspace_id),
        **context,
    )


@router.get("/tokens")
def token_list(request: Request, db: Db, session: Admin) -> Response:
    return _page(request, db, session.user.workspace_id)


@router.post("/tokens")
def create_token(
    request: Request,
    db: Db,
    session: PostedAdmin,
    name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "user",
    node: Annotated[str, Form()] = "",
) -> Response:
    wid = session.user.workspace_id
    try:
        token, info = tokens.create_token(db, wid, role, name.strip() or "console", node or None)
    except ContactsyncError as e:
        return _page(request, db, wid, error=e, status=400)
    return _page(request, db, wid, created=info, token=token, status=201)


@router.post("/tokens/{token_id}/revoke")
def revoke_token(token_id: str, db: Db, session: PostedAdmin) -> Response:
    tokens.revoke_token(db, session.user.workspace_id, token_id=token_id)
    return redirect("/tokens", notice="token_revoked")
