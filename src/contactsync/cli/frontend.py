"""Commands: frontend (the MailUp-compatible form endpoints: list mapping, allow-list, fields)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from contactsync.cli import app, database, emit, handles_errors, out
from contactsync.cli.admin import JsonFlag, WorkspaceOpt, workspace_id
from contactsync.hub import frontend

frontend_app = typer.Typer(
    no_args_is_help=True,
    help="MailUp-compatible form endpoints (/frontend/xml*.aspx): list ids, IP allow-list, fields.",
)
list_app = typer.Typer(no_args_is_help=True, help="MailUp list ids → node and subscription system.")
frontend_app.add_typer(list_app, name="list")
app.add_typer(frontend_app, name="frontend")


@list_app.command("add")
@handles_errors
def list_add(
    list_id: Annotated[int, typer.Argument(help="The MailUp list id your forms send as `List`.")],
    node: Annotated[str, typer.Option(help="Node id or name.")],
    subscription: Annotated[str, typer.Option(help="Subscription system id in the hub.")],
    guid: Annotated[
        str | None, typer.Option(help="The list's GUID: xmlUnSubscribe/xmlChkSubscriber must send it.")
    ] = None,
    webform_code: Annotated[
        str | None, typer.Option(help="Webform code recorded in the consent ledger (default mailup-list:ID).")
    ] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Map a MailUp list id to a node and subscription system (again: change the mapping)."""
    db = database()
    row = frontend.map_list(
        db,
        workspace_id(db, workspace),
        list_id,
        node,
        subscription,
        list_guid=guid,
        webform_code=webform_code,
    )
    emit(
        row,
        as_json,
        lambda r: out.print(f"list {r['list']} → node {r['nodeId']}, {r['subscriptionId']}", highlight=False),
    )


@list_app.command("remove")
@handles_errors
def list_remove(list_id: int, workspace: WorkspaceOpt = None) -> None:
    """Remove a list mapping: forms sending this list id get the generic error (1)."""
    db = database()
    frontend.unmap_list(db, workspace_id(db, workspace), list_id)
    out.print(f"list {list_id} removed")


@frontend_app.command("allow")
@handles_errors
def allow(
    address: Annotated[str, typer.Argument(help="An IP address or a CIDR network, e.g. 203.0.113.0/24.")],
    note: Annotated[str, typer.Option(help="What the address is (the web server, the CMS).")] = "",
    workspace: WorkspaceOpt = None,
) -> None:
    """Allow an address to call the frontend endpoints (others get -1011)."""
    db = database()
    network, added = frontend.allow(db, workspace_id(db, workspace), address, note)
    out.print(f"{network} {'allowed' if added else 'was already allowed'}", highlight=False)


@frontend_app.command("deny")
@handles_errors
def deny(address: str, workspace: WorkspaceOpt = None) -> None:
    """Take an address or network off the allow-list."""
    db = database()
    out.print(f"{frontend.disallow(db, workspace_id(db, workspace), address)} removed", highlight=False)


@frontend_app.command("field")
@handles_errors
def field(
    code: Annotated[str, typer.Argument(help="The field code forms send in csvFldNames, e.g. campo7.")],
    path: Annotated[
        str | None, typer.Argument(help="Customer property, e.g. base.address.city or extended.company.")
    ] = None,
    default: Annotated[bool, typer.Option("--default", help="Back to the built-in mapping.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Map a personal-data field code to a customer property."""
    if path is None and not default:
        raise typer.BadParameter("give a property path, or --default")
    db = database()
    fields = frontend.set_field(db, workspace_id(db, workspace), code, None if default else path)
    out.print(f"{code.lower()} → {fields.get(code.lower(), '(ignored)')}", highlight=False)


@frontend_app.command("show")
@handles_errors
def show(workspace: WorkspaceOpt = None, as_json: JsonFlag = False) -> None:
    """Show the lists, the allow-list and the field mapping."""
    db = database()
    conf = frontend.configuration(db, workspace_id(db, workspace))

    def tables(conf: dict[str, Any]) -> None:
        lists = Table("list", "node", "subscription", "list GUID", "webform code", title="lists")
        for r in conf["lists"]:
            lists.add_row(
                str(r["list"]), r["nodeId"], r["subscriptionId"], r["listGuid"] or "", r["webformCode"] or ""
            )
        out.print(lists)
        ips = Table("network", "note", "added", title="allow-list")
        for r in conf["allowedIps"]:
            ips.add_row(r["network"], r["note"], r["createdAt"])
        out.print(ips)
        if not conf["allowedIps"]:
            out.print("no address is allowed yet: every call answers -1011 (`contactsync frontend allow IP`)")
        fields = Table("code", "property", title="fields")
        for code, path in sorted(
            conf["fields"].items(), key=lambda kv: int(kv[0][5:]) if kv[0][5:].isdigit() else 0
        ):
            fields.add_row(code, path)
        out.print(fields)

    emit(conf, as_json, tables)
