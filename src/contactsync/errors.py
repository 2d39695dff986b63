"""Domain errors and the catalogue of their stable codes.

Every error contactsync raises on purpose derives from :class:`ContactsyncError` and carries a
stable code (``E…``) from :data:`CATALOGUE`, a message and a hint that says what to do next.
Only the interfaces (API, CLI, console) turn them into HTTP statuses, exit codes or UI text.
The branches say how a caller must react::

    ContactsyncError
    ├── ConfigError            fix the settings or the request's target, then retry
    │   └── ReadOnlyError      the target cannot be written (aggregate node, role)
    ├── AuthError              authenticate (missing/invalid token)
    │   └── ForbiddenError     the token's role does not allow this
    ├── NotFoundError          the addressed thing does not exist
    ├── InputError             the request/record is invalid: fix the listed fields
    ├── ConflictError          the record collides with an existing one (carries its id)
    ├── TransientError         retry later (locks, provider 429/5xx)
    └── RecordError            one record is skipped with a code; the run goes on

docs/errors.md is generated from :data:`CATALOGUE` (``contactsync errors --markdown``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ErrorInfo:
    code: str
    name: str
    meaning: str
    action: str


_ENTRIES = [
    # 1xx: configuration and access
    ErrorInfo(
        "E100",
        "config_invalid",
        "A setting or configuration value is invalid.",
        "Fix the setting named in the message and retry.",
    ),
    ErrorInfo(
        "E101",
        "read_only_node",
        "The node is an aggregate node: a read-only union of other nodes.",
        "Write to one of its member nodes instead.",
    ),
    ErrorInfo(
        "E110",
        "unauthenticated",
        "The request carries no valid API token.",
        "Send `Authorization: Bearer <token>`; create one with `contactsync token create`.",
    ),
    ErrorInfo(
        "E111",
        "forbidden",
        "The token's role does not allow this operation.",
        "Use a token with the role named in the message (admin, user or source).",
    ),
    ErrorInfo(
        "E120",
        "not_found",
        "The addressed resource does not exist.",
        "Check the id in the URL; list the resources to find the right one.",
    ),
    # 2xx: input
    ErrorInfo(
        "E200",
        "invalid_input",
        "The request or record does not match the expected shape.",
        "Fix the fields listed in `errors[].path` and send it again.",
    ),
    ErrorInfo(
        "E201",
        "invalid_email",
        "An email address is not valid.",
        "Send a valid address such as `name@example.com`.",
    ),
    ErrorInfo(
        "E202",
        "unknown_property",
        "A property is not defined in the customer schema.",
        "Remove it, or define it as an extended property of the workspace first.",
    ),
    ErrorInfo(
        "E203",
        "invalid_value",
        "A value has the wrong type or format for its property.",
        "Send a value of the type named in the message.",
    ),
    ErrorInfo(
        "E204",
        "too_large",
        "A customer section (base, extended, extra) is larger than 64 KB.",
        "Shorten the section; store large data elsewhere and keep a reference.",
    ),
    ErrorInfo(
        "E205",
        "invalid_query",
        "The `query` parameter is not a valid query document.",
        "Fix the query JSON at the path given; see docs/hub-api.md for the grammar.",
    ),
    ErrorInfo(
        "E206",
        "missing_required",
        "A required property is missing.",
        "Add the property named in the message.",
    ),
    # 3xx: conflicts and consent
    ErrorInfo(
        "E300",
        "customer_exists",
        "A customer with the same matching properties already exists in the node.",
        "Update the existing customer (its id is in `data.customer.id`) instead of creating one.",
    ),
    ErrorInfo(
        "E301",
        "consent_refused",
        "A subscription change was refused by the consent rules.",
        "Collect a new opt-in (double opt-in confirmation, or consent evidence with a newer timestamp).",
    ),
    # 5xx: transient
    ErrorInfo(
        "E500",
        "busy",
        "The database is busy or a lock could not be taken in time.",
        "Retry the request in a few seconds.",
    ),
]

CATALOGUE: dict[str, ErrorInfo] = {e.code: e for e in _ENTRIES}


@dataclass
class FieldProblem:
    """One problem with one field of a request or record."""

    path: str
    message: str
    code: str = "E200"

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "message": self.message, "code": self.code, "data": None}


@dataclass
class ContactsyncError(Exception):
    """Root of contactsync's errors."""

    message: str
    code: str = "E100"
    problems: list[FieldProblem] = field(default_factory=list)
    data: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def hint(self) -> str:
        info = CATALOGUE.get(self.code)
        return info.action if info else ""

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ConfigError(ContactsyncError):
    pass


class ReadOnlyError(ConfigError):
    pass


class AuthError(ContactsyncError):
    pass


class ForbiddenError(AuthError):
    pass


class NotFoundError(ContactsyncError):
    pass


class InputError(ContactsyncError):
    pass


class ConflictError(ContactsyncError):
    pass


class TransientError(ContactsyncError):
    pass


class RecordError(ContactsyncError):
    pass


def not_found(what: str, ident: str) -> NotFoundError:
    return NotFoundError(f"{what} {ident} not found", code="E120")


def invalid(problems: list[FieldProblem], message: str | None = None) -> InputError:
    """An InputError for a list of field problems; its code is the first problem's."""
    first = problems[0]
    text = message or (
        f"{first.path}: {first.message}"
        if len(problems) == 1
        else f"{len(problems)} invalid fields, first {first.path}: {first.message}"
    )
    return InputError(text, code=first.code, problems=problems)


def catalogue_markdown() -> str:
    """docs/errors.md, generated from the catalogue."""
    lines = [
        "# Error codes",
        "",
        "Generated from `src/contactsync/errors.py` by `contactsync errors --markdown`; do not edit.",
        "",
        "| code | name | meaning | what to do |",
        "|---|---|---|---|",
    ]
    lines += [f"| {e.code} | `{e.name}` | {e.meaning} | {e.action} |" for e in _ENTRIES]
    return "\n".join(lines) + "\n"
