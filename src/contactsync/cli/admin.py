"""Commands: serve, worker, migrate, demo, workspace, token, errors."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated, Any

import typer
from rich.table import Table

from contactsync.cli import app, database, emit, err, handles_errors, out
from contactsync.errors import CATALOGUE, catalogue_markdown
from contactsync.hub import tokens, workspaces
from contactsync.hub.bulk import UpsertMode, upsert_customers
from contactsync.hub.context import WriteContext
from contactsync.settings import get_settings
from contactsync.store.db import Database

token_app = typer.Typer(no_args_is_help=True, help="API tokens (stored hashed; shown once).")
workspace_app = typer.Typer(no_args_is_help=True, help="Workspaces.")
app.add_typer(token_app, name="token")
app.add_typer(workspace_app, name="workspace")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
WorkspaceOpt = Annotated[
    str | None, typer.Option("--workspace", "-w", help="Workspace id (default: the first one).")
]

DEMO_CUSTOMERS = [
    {
        "externalId": "demo-1",
        "base": {
            "firstName": "Ada",
            "lastName": "Lovelace",
            "contacts": {"email": "ada@example.com"},
            "subscriptions": [
                {
                    "id": "newsletter",
                    "name": "Newsletter",
                    "kind": "DIGITAL_MESSAGE",
                    "subscribed": True,
                }
            ],
        },
    },
    {
        "externalId": "demo-2",
        "base": {
            "firstName": "Alan",
            "lastName": "Turing",
            "contacts": {"email": "alan@example.com"},
            "subscriptions": [
                {
                    "id": "newsletter",
                    "name": "Newsletter",
                    "kind": "DIGITAL_MESSAGE",
                    "subscribed": False,
                }
            ],
        },
    },
    {
        "externalId": "demo-3",
        "base": {
            "firstName": "Grace",
            "lastName": "Hopper",
            "contacts": {"email": "grace@example.com"},
        },
        "tags": {"manual": ["vip"]},
    },
]


def workspace_id(db: Any, given: str | None) -> str:
    return given or workspaces.default_workspace(db).id


@app.command()
@handles_errors
def migrate() -> None:
    """Create or upgrade the database schema."""
    db = database(migrated=False)
    db.migrate()
    out.print(f"database at {db.url.render_as_string(hide_password=True)} is up to date")


@app.command()
@handles_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    background: Annotated[
        bool,
        typer.Option(
            "--background/--no-background",
            help="Run the scheduler and workers in this process (off: start `contactsync worker`s).",
        ),
    ] = True,
) -> None:
    """Run the API service with the scheduler and workers beside it (migrates first)."""
    import uvicorn

    from contactsync.api import create_app
    from contactsync.scheduling import background as bg

    settings = get_settings()
    db = database(migrated=False)
    db.migrate()
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    threads = bg.start(db, settings) if background else None
    # uvicorn handles SIGTERM/SIGINT, then raises the signal again: land it here, so that the
    # background threads are stopped below instead of the process dying on the spot
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: None)
    try:
        uvicorn.run(
            create_app(db, settings),
            host=host or settings.host,
            port=port or settings.port,
            log_level="info",
        )
    finally:
        if threads is not None:
            threads.stop(settings.worker_stop_seconds)


@app.command()
@handles_errors
def worker(
    scheduler: Annotated[
        bool,
        typer.Option(
            "--scheduler/--no-scheduler",
            help="Also run the scheduler and the real-time push (off: only run queued requests).",
        ),
    ] = True,
) -> None:
    """Run queued source syncs and exchange jobs (and the scheduler) without the API, until
    SIGTERM or Ctrl-C."""
    from contactsync.scheduling import background as bg

    settings = get_settings()
    db = database()
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    threads = bg.start(db, settings, scheduler=scheduler)
    err.print(f"worker running: {', '.join(threads.names)}", highlight=False)
    while not stop.wait(1.0):
        pass
    err.print("stopping: waiting for running requests to finish", highlight=False)
    clean = threads.stop(settings.worker_stop_seconds)
    err.print("worker stopped" if clean else "worker stopped; unfinished runs resume later", highlight=False)


@app.command()
@handles_errors
def demo(as_json: JsonFlag = False) -> None:
    """Seed a demo workspace and node on first use, and print a fresh admin token."""
    settings = get_settings()
    db = database(migrated=False)
    db.migrate()
    ws, node = _demo_node(db)
    tokens.revoke_token(db, ws.id, name="make-run")
    token, _ = tokens.create_token(db, ws.id, tokens.Role.ADMIN, "make-run")
    url = settings.effective_public_url()
    import secrets

    from contactsync.web import auth  # the console's first admin: made once, with a random password

    password = None
    if not auth.list_users(db, ws.id):
        password = secrets.token_urlsafe(12)
        auth.create_user(db, ws.id, "admin", password, auth.Role.ADMIN)
    console = {"url": f"{url}/", "user": "admin", "password": password}
    info = {"url": url, "workspaceId": ws.id, "nodeId": node.id, "token": token, "console": console}
    if as_json:
        emit(info, True)
        return
    out.print(f"contactsync is starting at [bold]{url}[/bold]", highlight=False)
    if password:
        out.print(
            f"  console: {url}/  user [bold]admin[/bold], password [bold]{password}[/bold]"
            "   (shown once; change it with `contactsync user passwd admin`)",
            highlight=False,
        )
    else:
        out.print(
            f"  console: {url}/  (users: `contactsync user list`; reset: `contactsync user passwd NAME`)",
            highlight=False,
        )
    out.print(f"  workspace {ws.id}, node {node.id} ({node.name})", highlight=False)
    out.print(
        f"  admin token: [bold]{token}[/bold]   (new at every start; the previous one is revoked)",
        highlight=False,
    )
    out.print("  try:", highlight=False)
    out.print(
        f"    curl -H 'Authorization: Bearer {token}' "
        f"'{url}/hub/v1/workspaces/{ws.id}/customers?nodeId={node.id}'",
        highlight=False,
        soft_wrap=True,
    )
    out.print(f"  API reference: {url}/hub/v1/docs", highlight=False)


def _demo_node(db: Database) -> tuple[workspaces.Workspace, workspaces.Node]:
    """The first workspace and its first node, seeding the demo ones when missing.

    A workspace made with `workspace create` has no node yet: it gets the demo node `main`,
    empty, since its customers are the user's own business.
    """
    found = workspaces.list_workspaces(db)
    if not found:
        ws = workspaces.create_workspace(db, "demo")
        node = workspaces.create_node(db, ws.id, "main")
        upsert_customers(
            db, ws.id, node.id, DEMO_CUSTOMERS, ctx=WriteContext(origin="demo"), mode=UpsertMode.REPLACE
        )
        return ws, node
    ws = found[0]
    nodes = workspaces.list_nodes(db, ws.id)
    return ws, (nodes[0] if nodes else workspaces.create_node(db, ws.id, "main"))


@workspace_app.command("create")
@handles_errors
def workspace_create(name: str, as_json: JsonFlag = False) -> None:
    """Create a workspace."""
    ws = workspaces.create_workspace(database(), name)
    emit(
        {"id": ws.id, "name": ws.name, **ws.matching_json()},
        as_json,
        lambda v: out.print(f"workspace {v['id']} ({v['name']})"),
    )


@workspace_app.command("list")
@handles_errors
def workspace_list(as_json: JsonFlag = False) -> None:
    """List workspaces."""
    rows = [{"id": w.id, "name": w.name, **w.matching_json()} for w in workspaces.list_workspaces(database())]

    def lines(rows: list[dict[str, Any]]) -> None:
        for w in rows:
            out.print(f"{w['id']}  {w['name']}", highlight=False)

    emit(rows, as_json, lines)


@token_app.command("create")
@handles_errors
def token_create(
    role: Annotated[tokens.Role, typer.Option(help="admin, user or source.")],
    name: Annotated[str, typer.Option(help="A name to recognise the token by.")] = "cli",
    node: Annotated[str | None, typer.Option(help="Bind a source token to one node.")] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API token; it is printed once and stored only as a hash."""
    db = database()
    token, info = tokens.create_token(db, workspace_id(db, workspace), role, name, node)
    emit({**info, "token": token}, as_json, lambda v: out.print(v["token"]))


@token_app.command("list")
@handles_errors
def token_list(workspace: WorkspaceOpt = None, as_json: JsonFlag = False) -> None:
    """List tokens (their prefix only)."""
    db = database()
    rows = tokens.list_tokens(db, workspace_id(db, workspace))

    def table(rows: list[dict[str, Any]]) -> None:
        t = Table("id", "name", "role", "node", "prefix", "created", "revoked")
        for r in rows:
            t.add_row(
                r["id"],
                r["name"],
                r["role"],
                r["nodeId"] or "",
                r["prefix"] + "…",
                r["createdAt"],
                r["revokedAt"] or "",
            )
        out.print(t)

    emit(rows, as_json, table)


@token_app.command("revoke")
@handles_errors
def token_revoke(token_id: str, workspace: WorkspaceOpt = None) -> None:
    """Revoke a token by id."""
    db = database()
    tokens.revoke_token(db, workspace_id(db, workspace), token_id=token_id)
    out.print(f"revoked {token_id}")


@app.command("errors")
def errors_command(
    markdown: Annotated[bool, typer.Option("--markdown", help="Print docs/errors.md instead.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Print the catalogue of error codes: code, name, meaning and what to do."""
    if markdown:
        typer.echo(catalogue_markdown(), nl=False)
        return
    entries = [vars(e) for e in CATALOGUE.values()]

    def table(rows: list[dict[str, str]]) -> None:
        t = Table("code", "name", "meaning", "what to do")
        for r in rows:
            t.add_row(r["code"], r["name"], r["meaning"], r["action"])
        out.print(t)

    emit(entries, as_json, table)


@app.command("settings")
def settings_command(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the settings table of docs/configuration.md instead.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Print every setting: its environment variable and the value in effect (secrets masked)."""
    from contactsync.cli.reference import settings_markdown, settings_values

    if markdown:
        typer.echo(settings_markdown(), nl=False)
        return
    rows = [{"name": n, "env": e, "value": v} for n, e, v in settings_values(get_settings())]

    def table(rows: list[dict[str, str]]) -> None:
        t = Table("setting", "environment variable", "value")
        for r in rows:
            t.add_row(r["name"], r["env"], r["value"])
        out.print(t)

    emit(rows, as_json, table)


@app.command("prune")
@handles_errors
def prune_command(
    days: Annotated[
        int | None,
        typer.Option("--days", help="Keep this many days of history (default: the history_days setting)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would go; delete nothing.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete the service's old logs: finished sync and exchange runs, webhook deliveries,
    inbound events (see the history_days setting). Customers and consent are never touched."""
    from contactsync.hub.times import format_time
    from contactsync.retention import prune

    keep = get_settings().history_days if days is None else days
    report = prune(database(), keep, dry_run=dry_run)
    value = {
        "days": report.days,
        "before": format_time(report.cutoff),
        "dryRun": report.dry_run,
        "counts": report.counts,
    }

    def human(v: dict[str, Any]) -> None:
        verb = "would delete" if dry_run else "deleted"
        t = Table("history", verb)
        for kind, n in report.counts.items():
            t.add_row(kind, f"{n:,}")
        out.print(t)
        out.print(f"{verb} {report.total:,} row(s) older than {keep} days (before {v['before']})")

    emit(value, as_json, human)
