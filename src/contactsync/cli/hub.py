"""Commands: node, customers."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from contactsync.cli import app, database, emit, handles_errors, out
from contactsync.cli.admin import JsonFlag, WorkspaceOpt, workspace_id
from contactsync.hub import customers, workspaces
from contactsync.hub.workspaces import NodeKind
from contactsync.settings import get_settings

node_app = typer.Typer(no_args_is_help=True, help="Nodes: the customer bases of a workspace.")
customers_app = typer.Typer(no_args_is_help=True, help="Read customers.")
app.add_typer(node_app, name="node")
app.add_typer(customers_app, name="customers")


@node_app.command("create")
@handles_errors
def node_create(
    name: str,
    kind: Annotated[
        NodeKind, typer.Option(help="standard, or aggregate (read-only union of --member nodes).")
    ] = NodeKind.STANDARD,
    member: Annotated[
        list[str] | None, typer.Option(help="Member node id of an aggregate node (repeat).")
    ] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a node."""
    db = database()
    node = workspaces.create_node(db, workspace_id(db, workspace), name, kind=kind, members=member or [])
    emit(
        node.as_json(),
        as_json,
        lambda v: out.print(f"node {v['id']} ({v['name']}, {v['kind']})", highlight=False),
    )


@node_app.command("list")
@handles_errors
def node_list(workspace: WorkspaceOpt = None, as_json: JsonFlag = False) -> None:
    """List the nodes of a workspace."""
    db = database()
    rows = [n.as_json() for n in workspaces.list_nodes(db, workspace_id(db, workspace))]

    def table(rows: list[dict[str, Any]]) -> None:
        t = Table("id", "name", "kind", "members")
        for r in rows:
            t.add_row(r["id"], r["name"], r["kind"], ", ".join(r["members"]))
        out.print(t)

    emit(rows, as_json, table)


@customers_app.command("get")
@handles_errors
def customers_get(customer_id: str, workspace: WorkspaceOpt = None, as_json: JsonFlag = False) -> None:
    """Show one customer."""
    db = database()
    emit(
        customers.get(db, workspace_id(db, workspace), customer_id),
        as_json,
        lambda v: out.print_json(data=v),
    )


@customers_app.command("find")
@handles_errors
def customers_find(
    node: Annotated[str, typer.Option(help="Node id.")],
    email: Annotated[str | None, typer.Option(help="Exact email (case-insensitive).")] = None,
    external_id: Annotated[str | None, typer.Option("--external-id", help="External id.")] = None,
    query: Annotated[str | None, typer.Option(help="A Contacthub query document (JSON).")] = None,
    page: int = 0,
    size: Annotated[int, typer.Option(help="Page size, 1 to the max_page_size setting.")] = 20,
    workspace: WorkspaceOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Find customers of a node by email, external id or query."""
    if email:
        condition = {
            "type": "atomic",
            "attribute": "base.contacts.email",
            "operator": "EQUALS",
            "value": email,
        }
        query = orjson.dumps(
            {"name": "q", "query": {"type": "simple", "are": {"condition": condition}}}
        ).decode()
    db = database()
    result = customers.list_page(
        db,
        workspace_id(db, workspace),
        node,
        external_id=external_id,
        query=query,
        page=page,
        size=size,
        max_size=get_settings().max_page_size,
    )

    def table(result: dict[str, Any]) -> None:
        t = Table("id", "email", "name", "externalId", "updated")
        for c in result["elements"]:
            base = c["base"]
            name = " ".join(x for x in (base.get("firstName"), base.get("lastName")) if x)
            t.add_row(
                c["id"],
                base.get("contacts", {}).get("email", ""),
                name,
                c["externalId"] or "",
                c["updatedAt"],
            )
        out.print(t)
        p = result["page"]
        out.print(
            f"page {p['number']} of {p['totalPages']}, {p['totalElements']} customers",
            highlight=False,
        )

    emit(result, as_json, table)
