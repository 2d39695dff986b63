"""The ``contactsync`` command line. Commands are thin adapters over the hub services."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import orjson
import typer
from rich.console import Console

from contactsync.errors import AuthError, ContactsyncError, InputError, NotFoundError
from contactsync.settings import get_settings
from contactsync.store.db import Database

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="contactsync: a customer hub that keeps contacts and subscriptions in sync.",
)
err = Console(stderr=True)
out = Console()

P = ParamSpec("P")
R = TypeVar("R")


def database() -> Database:
    settings = get_settings()
    return Database(settings.database_url, sqlite_cache_mb=settings.sqlite_cache_mb)


def emit(value: Any, as_json: bool, human: Callable[[Any], None] | None = None) -> None:
    """Print data: JSON for scripts (``--json``), a readable form otherwise."""
    if as_json or human is None:
        sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        human(value)


def exit_code(error: ContactsyncError) -> int:
    if isinstance(error, (InputError, NotFoundError)):
        return 2
    if isinstance(error, AuthError):
        return 3
    return 1


def handles_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn domain errors into one line with the code and what to do next, and an exit code."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ContactsyncError as e:
            err.print(f"[red]error {e.code}[/red]: {e.message}", highlight=False)
            for p in e.problems[1:]:
                err.print(f"  {p.path}: {p.message} ({p.code})", highlight=False)
            if e.hint:
                err.print(f"  what to do: {e.hint}", highlight=False)
            raise typer.Exit(exit_code(e)) from None

    return wrapper


def main() -> None:
    from contactsync.cli import admin, hub  # noqa: F401 - registers the commands

    app()
