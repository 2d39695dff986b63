"""Commands: console users (``contactsync user create|list|passwd|role|delete``)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from contactsync.cli import app, database, emit, handles_errors, out
from contactsync.cli.admin import JsonFlag, WorkspaceOpt, workspace_id
from contactsync.web import auth

user_app = typer.Typer(no_args_is_help=True, help="Console users (web console sign-in, roles).")
app.add_typer(user_app, name="user")

StdinFlag = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input (for scripts).")
]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@user_app.command("create")
@handles_errors
def user_create(
    name: str,
    role: Annotated[auth.Role, typer.Option(help="admin, editor or viewer.")] = auth.Role.VIEWER,
    language: Annotated[str | None, typer.Option(help="en or it (default: the browser's).")] = None,
    password_stdin: StdinFlag = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a console user; the password is prompted for (twice) or read from stdin."""
    db = database()
    user = auth.create_user(db, workspace_id(db, workspace), name, _password(password_stdin), role, language)
    emit(
        {"id": user.id, "name": user.name, "role": user.role.value, "workspaceId": user.workspace_id},
        as_json,
        lambda v: out.print(f"console user {v['name']} ({v['role']}) created", highlight=False),
    )


@user_app.command("list")
@handles_errors
def user_list(workspace: WorkspaceOpt = None, as_json: JsonFlag = False) -> None:
    """List console users."""
    db = database()
    rows = auth.list_users(db, workspace_id(db, workspace))

    def table(rows: list[dict[str, Any]]) -> None:
        t = Table("name", "role", "language", "locked", "created", "last sign-in")
        for r in rows:
            t.add_row(
                r["name"],
                r["role"],
                r["language"] or "browser",
                "yes" if r["locked"] else "",
                r["createdAt"],
                r["lastLoginAt"] or "",
            )
        out.print(t)

    emit(rows, as_json, table)


@user_app.command("passwd")
@handles_errors
def user_passwd(name: str, password_stdin: StdinFlag = False) -> None:
    """Set a user's password; it also unlocks the user and signs out their sessions."""
    db = database()
    auth.get_user(db, name)  # an unknown name fails before the prompt
    auth.set_password(db, name, _password(password_stdin))
    out.print(f"password of {name} changed", highlight=False)


@user_app.command("role")
@handles_errors
def user_role(name: str, role: Annotated[auth.Role, typer.Argument(help="admin, editor or viewer.")]) -> None:
    """Change a user's role (the last admin of a workspace keeps theirs)."""
    user = auth.set_role(database(), name, role)
    out.print(f"{user.name} is now {user.role.value}", highlight=False)


@user_app.command("delete")
@handles_errors
def user_delete(name: str) -> None:
    """Delete a console user and end their sessions."""
    auth.delete_user(database(), name)
    out.print(f"console user {name} deleted", highlight=False)
