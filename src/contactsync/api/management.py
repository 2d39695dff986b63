"""Management API (``/api/v1``): workspaces, nodes and API tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from contactsync.api.auth import Admin, Db, Member
from contactsync.hub import tokens, workspaces
from contactsync.hub.workspaces import NodeKind

router = APIRouter(prefix="/workspaces/{wid}")


class NodeIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    kind: NodeKind = NodeKind.STANDARD
    members: list[str] = []


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: tokens.Role
    nodeId: str | None = None


@router.get("/nodes", tags=["nodes"])
def list_nodes(wid: str, db: Db, who: Member) -> dict[str, Any]:
    return {"elements": [n.as_json() for n in workspaces.list_nodes(db, wid)]}


@router.post("/nodes", status_code=201, tags=["nodes"])
def create_node(wid: str, body: Annotated[NodeIn, Body()], db: Db, who: Admin) -> dict[str, Any]:
    node = workspaces.create_node(db, wid, body.name, kind=body.kind, members=body.members)
    return node.as_json()


@router.get("/tokens", tags=["tokens"])
def list_tokens(wid: str, db: Db, who: Admin) -> dict[str, Any]:
    return {"elements": tokens.list_tokens(db, wid)}


@router.post("/tokens", status_code=201, tags=["tokens"])
def create_token(wid: str, body: Annotated[TokenIn, Body()], db: Db, who: Admin) -> dict[str, Any]:
    """Create a token; the ``token`` value is shown once and stored only as a hash."""
    token, info = tokens.create_token(db, wid, body.role, body.name, body.nodeId)
    return {**info, "token": token}


@router.delete("/tokens/{token_id}", tags=["tokens"])
def revoke_token(wid: str, token_id: str, db: Db, who: Admin) -> dict[str, Any]:
    tokens.revoke_token(db, wid, token_id=token_id)
    return {"revoked": token_id}
