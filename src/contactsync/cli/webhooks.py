"""Commands: webhooks (outbound registrations, the delivery log, redelivery; inbound tokens)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from contactsync.cli import app, database, emit, handles_errors, out
from contactsync.cli.admin import JsonFlag, WorkspaceOpt, workspace_id
from contactsync.errors import not_found
from contactsync.notify import delivery, webhooks
from contactsync.secrets import SecretBox
from contactsync.settings import get_settings
from contactsync.sync import inbound
from contactsync.sync.sources import SyncEnv

webhooks_app = typer.Typer(
    no_args_is_help=True, help="Webhooks: signed event deliveries to your systems; inbound provider tokens."
)
app.add_typer(webhooks_app, name="webhooks")


def _env() -> SyncEnv:
    return SyncEnv(database(), SecretBox.from_settings(get_settings()))


def _table(rows: list[dict[str, Any]]) -> None:
    t = Table("id", "url", "events", "node", "enabled")
    for r in rows:
        t.add_row(r["id"], r["url"], ", ".join(r["events"]), r["nodeId"] or "all", str(r["enabled"]))
    out.print(t)


@webhooks_app.command("list")
@handles_errors
def webhooks_list(workspace: WorkspaceOpt = None, as_json: JsonFlag = False) -> None:
    """List the registered webhooks (never their secrets)."""
    db = database()
    emit(webhooks.list_webhooks(db, workspace_id(db, workspace)), as_json, _table)


@webhooks_app.command("create")
@handles_errors
def webhooks_create(
    url: str,
    event: Annotated[
        list[str] | None,
        typer.Option("--event", "-e", help="An event type to send (repeat it); default: all (*)."),
    ] = None,
    node: Annotated[str | None, typer.Option(help="Only the events of this node (id or name).")] = None,
    description: Annotated[str, typer.Option(help="What the webhook is for.")] = "",
    workspace: WorkspaceOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a webhook; prints its signing secret once (keep it in the receiver)."""
    env = _env()
    hook, secret = webhooks.create_webhook(
        env.db,
        env.box,
        workspace_id(env.db, workspace),
        url=url,
        events=event or [webhooks.ALL],
        node=node,
        description=description,
    )

    def human(v: dict[str, Any]) -> None:
        out.print(f"webhook {v['id']} → {v['url']} ({', '.join(v['events'])})", highlight=False)
        out.print(f"signing secret (shown once): {v['secret']}", highlight=False)

    emit({**hook, "secret": secret}, as_json, human)


@webhooks_app.command("delete")
@handles_errors
def webhooks_delete(webhook_id: str, workspace: WorkspaceOpt = None) -> None:
    """Delete a webhook and its delivery log."""
    db = database()
    webhooks.delete_webhook(db, workspace_id(db, workspace), webhook_id)
    out.print(f"webhook {webhook_id} deleted", highlight=False)


@webhooks_app.command("deliveries")
@handles_errors
def webhooks_deliveries(
    webhook_id: str,
    status: Annotated[str | None, typer.Option(help="pending, delivered or failed.")] = None,
    delivery_id: Annotated[
        str | None, typer.Option("--id", help="Show one delivery: its payload and every attempt.")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    workspace: WorkspaceOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """The delivery log of a webhook."""
    db = database()
    wid = workspace_id(db, workspace)
    webhooks.get_webhook(db, wid, webhook_id)
    if delivery_id:
        one = delivery.get_delivery(db, wid, delivery_id)

        def attempts(v: dict[str, Any]) -> None:
            out.print(f"{v['id']} {v['eventType']} {v['eventId']}: {v['status']}", highlight=False)
            t = Table("at", "status", "error", "answer")
            for a in v["log"]:
                t.add_row(a["at"], str(a["statusCode"] or "-"), a["error"] or "", (a["response"] or "")[:60])
            out.print(t)

        emit(one, as_json, attempts)
        return
    rows = delivery.list_deliveries(db, wid, webhook_id=webhook_id, status=status, limit=limit)

    def table(rows: list[dict[str, Any]]) -> None:
        t = Table("id", "event", "status", "attempts", "last answer", "next attempt")
        for r in rows:
            last = str(r["lastStatusCode"] or r["lastError"] or "")
            t.add_row(
                r["id"], r["eventType"], r["status"], str(r["attempts"]), last, r["nextAttemptAt"] or ""
            )
        out.print(t)

    emit(rows, as_json, table)


@webhooks_app.command("redeliver")
@handles_errors
def webhooks_redeliver(
    webhook_id: str, delivery_id: str, workspace: WorkspaceOpt = None, as_json: JsonFlag = False
) -> None:
    """Send a delivery again (same event id and payload) as soon as the service runs it."""
    db = database()
    wid = workspace_id(db, workspace)
    if delivery.get_delivery(db, wid, delivery_id)["webhookId"] != webhook_id:
        raise not_found("delivery", delivery_id)
    found = delivery.redeliver(db, wid, delivery_id)
    emit(found, as_json, lambda v: out.print(f"delivery {v['id']} queued again", highlight=False))


@webhooks_app.command("token")
@handles_errors
def webhooks_token(source: str, workspace: WorkspaceOpt = None, as_json: JsonFlag = False) -> None:
    """Make a new inbound webhook token for a source (the old one stops working); prints the
    URL to register with the provider, once."""
    env = _env()
    made = inbound.rotate_token(
        env, workspace_id(env.db, workspace), source, get_settings().effective_public_url()
    )
    emit(made, as_json, lambda v: out.print(f"url: {v['url']}", highlight=False))


@webhooks_app.command("events")
@handles_errors
def webhooks_events(
    source: str,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    workspace: WorkspaceOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """The latest inbound provider events of a source and what became of them."""
    env = _env()
    rows = inbound.list_events(env, workspace_id(env.db, workspace), source, limit)

    def table(rows: list[dict[str, Any]]) -> None:
        t = Table("received", "type", "status", "records", "run", "error")
        for r in rows:
            error = f"{r['errorCode']}: {r['error']}" if r["errorCode"] else ""
            t.add_row(
                r["receivedAt"], r["type"], r["status"], str(len(r["remoteIds"])), r["runId"] or "", error
            )
        out.print(t)

    emit(rows, as_json, table)
