"""The ``contactsync`` command line. Commands are thin adapters over the hub services."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import orjson
import typer
from rich.console import Console

from contactsync.errors import AuthError, ConfigError, ContactsyncError, InputError, NotFoundError
from contactsync.settings import get_settings
from contactsync.store.db import Database

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="contactsync: a customer hub that keeps contacts and subscriptions in sync.",
)
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)  # long lines (tokens, URLs) stay whole for copy and paste

P = ParamSpec("P")
R = TypeVar("R")


def database(*, migrated: bool = True) -> Database:
    """The configured database; ``migrated`` refuses one without the schema.

    Checked up front so that a data command on a fresh database says what to do instead of
    failing on the first missing table. Only the commands that migrate pass False.
    """
    settings = get_settings()
    db = Database(settings.database_url, sqlite_cache_mb=settings.sqlite_cache_mb)
    _opened.append(db)
    if migrated and not db.has_schema():
        where = db.url.render_as_string(hide_password=True)
        raise ConfigError(
            f"the database at {where} has no contactsync schema; run `contactsync migrate`",
            code="E102",
        )
    return db


_opened: list[Database] = []  # closed when the command ends (commands also run in-process in tests)


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
        finally:
            while _opened:
                _opened.pop().dispose()

    return wrapper


def main() -> None:
    from contactsync.cli import (  # noqa: F401 - registers the commands
        admin,
        exchange,
        frontend,
        hub,
        schedules,
        sync,
        users,
        webhooks,
    )

    app()
