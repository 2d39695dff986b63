"""Nodes, customer search and the customer page (every role reads them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from contactsync.hub import browse, workspaces
from contactsync.sync import sources
from contactsync.web.deps import Db, Env, Viewer
from contactsync.web.render import redirect, render

router = APIRouter()


@router.get("/")
def home(session: Viewer) -> Response:
    return redirect("/nodes")


@router.get("/nodes")
def node_list(request: Request, db: Db, session: Viewer) -> Response:
    nodes = workspaces.list_nodes(db, session.user.workspace_id)
    sizes = browse.node_sizes(db, session.user.workspace_id, nodes)
    return render(request, "nodes.html", nodes=nodes, sizes=sizes)


@router.get("/nodes/{node_id}")
def customer_list(
    request: Request,
    node_id: str,
    db: Db,
    session: Viewer,
    q: str = "",
    page: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> Response:
    found = browse.search_customers(db, session.user.workspace_id, node_id, q, page=page)
    return render(request, "customers.html", found=found, q=q)


@router.get("/customers/{customer_id}")
def customer_page(request: Request, customer_id: str, db: Db, env: Env, session: Viewer) -> Response:
    view = browse.customer_view(db, session.user.workspace_id, customer_id)
    names = {f"sync:{s.id}": s.name for s in sources.list_sources(env, session.user.workspace_id)}
    return render(request, "customer.html", source_names=names, **view)
