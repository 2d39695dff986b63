"""Reference docs generated from the code: the table of settings and the command reference.

``make docs`` (``scripts/gen_docs.py``) writes each between its two markers in ``docs/``;
``tests/unit/test_docs_current.py`` fails when a file differs from what this module generates,
so a setting or a command cannot be added without its documentation.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import annotated_types
import typer
from sqlalchemy.engine import make_url

from contactsync import cli
from contactsync.secrets import MASK
from contactsync.settings import Settings

# Settings grouped by the prefix of their name, in this order; the first group takes the rest.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Service, database and secrets", ()),
    ("Email (SMTP)", ("smtp_",)),
    ("Data exchange", ("exchange_",)),
    ("Subscriptions", ("optin_",)),
    ("Webhooks and inbound provider events", ("webhook_", "inbound_")),
    ("Scheduling, workers and real-time push", ("scheduler_", "worker_", "realtime_")),
    ("Web console", ("console_",)),
)
SECRET_SETTINGS = frozenset({"secret_keys", "smtp_password"})

_METAVARS = {
    "str": "TEXT",
    "list[str]": "TEXT",
    "int": "INTEGER",
    "int range": "INTEGER",
    "list[int]": "INTEGER",
    "float": "NUMBER",
    "float range": "NUMBER",
    "path": "PATH",
}


@dataclass(frozen=True)
class Section:
    """A generated part of a docs page: the text between ``begin`` and ``end``."""

    path: str  # relative to the repository
    begin: str
    end: str
    render: Callable[[], str]


def env_name(field: str) -> str:
    return f"{Settings.model_config.get('env_prefix', '')}{field}".upper()


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _default(value: Any) -> str:
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def _limits(metadata: list[Any]) -> str:
    words = []
    for m in metadata:
        if isinstance(m, annotated_types.Ge):
            words.append(f"at least {m.ge}")
        elif isinstance(m, annotated_types.Gt):
            words.append(f"more than {m.gt}")
        elif isinstance(m, annotated_types.Le):
            words.append(f"at most {m.le}")
        elif isinstance(m, annotated_types.Lt):
            words.append(f"less than {m.lt}")
    return f" Must be {' and '.join(words)}." if words else ""


def _group(name: str) -> str:
    for title, prefixes in GROUPS[1:]:
        if name.startswith(prefixes):
            return title
    return GROUPS[0][0]


def settings_markdown() -> str:
    """The settings table of docs/configuration.md: one table per group of settings."""
    lines: list[str] = []
    for title, _ in GROUPS:
        fields = [(n, f) for n, f in Settings.model_fields.items() if _group(n) == title]
        if not fields:
            continue
        lines += [
            f"### {title}",
            "",
            "| setting | environment variable | default | meaning |",
            "|---|---|---|---|",
        ]
        for name, field in fields:
            meaning = _cell((field.description or "") + _limits(field.metadata))
            lines.append(f"| `{name}` | `{env_name(name)}` | {_default(field.default)} | {meaning} |")
        lines.append("")
    return "\n".join(lines)


def settings_values(settings: Settings) -> list[tuple[str, str, str]]:
    """Each setting's name, environment variable and current value, secrets masked."""
    rows = []
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if name in SECRET_SETTINGS:
            shown = MASK if value else ""
        elif name == "database_url":
            shown = make_url(value).render_as_string(hide_password=True)
        else:
            shown = str(value)
        rows.append((name, env_name(name), shown))
    return rows


def _registered_app() -> typer.Typer:
    """The ``contactsync`` app with every module of the ``contactsync.cli`` package registered."""
    for module in pkgutil.iter_modules(cli.__path__):
        importlib.import_module(f"{cli.__name__}.{module.name}")
    return cli.app


def _walk(command: Any, ctx: typer.Context, path: str) -> Iterator[tuple[str, Any, typer.Context]]:
    yield path, command, ctx
    subcommands = getattr(command, "commands", None) or {}
    for name in sorted(subcommands):  # sorted: registration order depends on import order
        sub = subcommands[name]
        if not sub.hidden:
            yield from _walk(sub, typer.Context(sub, info_name=name, parent=ctx), f"{path} {name}")


def _is_argument(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "argument"


def _argument_name(param: Any) -> str:
    name = str(param.name).upper() + ("..." if param.nargs == -1 else "")
    return name if param.required else f"[{name}]"


def _option_name(param: Any, ctx: typer.Context) -> str:
    name = ", ".join(sorted(param.opts, key=lambda o: o.startswith("--")))  # -w, --workspace
    if param.secondary_opts:
        return f"{name} / {', '.join(param.secondary_opts)}"
    if param.is_flag:
        return name
    record = param.get_help_record(ctx)
    found = re.findall(r"<([^>]*)>", record[0] if record else "")
    kind = found[-1] if found else "value"
    return f"{name} {_METAVARS.get(kind, kind.upper() if '|' not in kind else kind)}"


def _paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def commands_markdown(app: typer.Typer | None = None) -> str:
    """The command reference of docs/cli.md: every command with its arguments and options."""
    root = typer.main.get_command(app or _registered_app())
    lines: list[str] = []
    for path, command, ctx in _walk(root, typer.Context(root, info_name="contactsync"), "contactsync"):
        if path != "contactsync":
            lines += [f"### {path}", "", *(p + "\n" for p in _paragraphs(command.help or ""))]
        subcommands = getattr(command, "commands", None)
        if subcommands is not None:
            shown = sorted(n for n, c in subcommands.items() if not c.hidden)
            links = [f"[`{n}`](#{path.replace(' ', '-')}-{n})" for n in shown]
            lines += [f"Commands: {', '.join(links)}.", ""]
            continue
        params = [p for p in command.params if not getattr(p, "hidden", False)]
        usage = [path, *(["[OPTIONS]"] if any(not _is_argument(p) for p in params) else [])]
        usage += [_argument_name(p) for p in params if _is_argument(p)]
        lines += ["```text", " ".join(usage), "```", ""]
        if params:
            lines += ["| argument / option | meaning |", "|---|---|"]
            for p in params:
                name = _argument_name(p) if _is_argument(p) else _option_name(p, ctx)
                record = p.get_help_record(ctx)
                lines.append(f"| `{_cell(name)}` | {_cell(record[1] if record else '')} |")
            lines.append("")
    return "\n".join(lines)


SECTIONS = (
    Section(
        "docs/configuration.md",
        "<!-- settings table: generated by contactsync settings --markdown -->",
        "<!-- end of settings table -->",
        settings_markdown,
    ),
    Section(
        "docs/cli.md",
        "<!-- command reference: generated by make docs from the commands' help -->",
        "<!-- end of command reference -->",
        commands_markdown,
    ),
)


def _bounds(text: str, section: Section) -> tuple[int, int]:
    start, end = text.find(section.begin), text.find(section.end)
    if start < 0 or end < start:
        raise ValueError(f"{section.path} lacks the markers {section.begin!r} … {section.end!r}")
    return start + len(section.begin), end


def generated_part(text: str, section: Section) -> str:
    """The text between the section's markers in a docs page."""
    start, end = _bounds(text, section)
    return text[start:end]


def spliced(text: str, section: Section) -> str:
    """The docs page with a freshly generated text between the section's markers."""
    start, end = _bounds(text, section)
    return f"{text[:start]}\n\n{section.render()}\n{text[end:]}"
