"""Authentication and roles for the API: bearer tokens checked against their hashes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Path, Request

from contactsync.errors import ForbiddenError
from contactsync.hub.tokens import Principal, Role, authenticate
from contactsync.settings import Settings
from contactsync.store.db import Database


def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


Db = Annotated[Database, Depends(database)]


def settings(request: Request) -> Settings:
    conf: Settings = request.app.state.settings
    return conf


Conf = Annotated[Settings, Depends(settings)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def principal(request: Request, db: Db) -> Principal:
    return authenticate(db, _bearer(request))


def requires(*roles: Role) -> Callable[..., Principal]:
    """A dependency: an authenticated principal of one of ``roles`` in the path's workspace."""

    def dependency(who: Annotated[Principal, Depends(principal)], wid: Annotated[str, Path()]) -> Principal:
        if who.workspace_id != wid:
            raise ForbiddenError("this token belongs to another workspace", code="E111")
        if who.role not in roles:
            wanted = " or ".join(r.value for r in roles)
            raise ForbiddenError(f"this operation needs a token with role {wanted}", code="E111")
        return who

    return dependency


def check_node(who: Principal, node_id: Any) -> None:
    """A source token bound to a node may only touch that node."""
    if who.node_id is not None and node_id != who.node_id:
        raise ForbiddenError(f"this token may only access node {who.node_id}", code="E111")


def list_node(who: Principal, node_id: str | None) -> str | None:
    """The node a list reads: the one asked for, else the token's own; never another one."""
    if node_id is None:
        node_id = who.node_id
    check_node(who, node_id)
    return node_id


Member = Annotated[Principal, Depends(requires(Role.ADMIN, Role.USER, Role.SOURCE))]
Admin = Annotated[Principal, Depends(requires(Role.ADMIN))]
