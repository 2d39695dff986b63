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
    │   └── ConsentRefusedError the consent rules kept another status (carries the subscription)
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
        "E102",
        "not_migrated",
        "The database has no contactsync schema: it was never migrated.",
        "Run `contactsync migrate` with the same `CONTACTSYNC_DATABASE_URL`, then retry.",
    ),
    ErrorInfo(
        "E103",
        "email_not_configured",
        "No SMTP server is configured, or it refused contactsync's login.",
        "Set `CONTACTSYNC_SMTP_HOST`, `_PORT`, `_SECURITY`, `_USERNAME` and `_PASSWORD`, then retry.",
    ),
    ErrorInfo(
        "E104",
        "email_send_failed",
        "The SMTP server could not be reached or did not accept the message.",
        "Check that the SMTP server is up and reachable; the email is retried on the next attempt.",
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
        "E112",
        "provider_auth",
        "The provider refused the source's credentials (wrong, expired or revoked).",
        "Reconnect the source: enter new credentials or authorize it again (`contactsync source connect`).",
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
        "The consent rules did not let a subscription take the status asked for "
        "(it is in `data.subscription` as it stays).",
        "Collect a new opt-in (double opt-in confirmation, or consent evidence with a newer timestamp).",
    ),
    # 4xx: sources, sync runs and the records they skip
    ErrorInfo(
        "E400",
        "source_rule",
        "The source breaks a rule of sources: one source per node, one node per user DB, "
        "no subscription sync on aggregate nodes.",
        "Pick another node or user DB, or edit the existing source instead of adding one.",
    ),
    ErrorInfo(
        "E401",
        "source_enabled",
        "This change to a source needs the source disabled first.",
        "Disable the source (`contactsync source disable NAME`), change it, then enable it again.",
    ),
    ErrorInfo(
        "E402",
        "node_not_empty",
        "This change needs an empty node, and the node has customers.",
        "Use an empty node, or empty the node first.",
    ),
    ErrorInfo(
        "E403",
        "user_db_not_empty",
        "The provider user DB already holds records.",
        "Use an empty user DB, or ask for an initial merge by match keys (`initial_merge`).",
    ),
    ErrorInfo(
        "E404",
        "run_in_progress",
        "A run of this source is already in progress.",
        "Wait for it to finish (see `contactsync runs SOURCE`); a crashed run is resumed automatically.",
    ),
    ErrorInfo(
        "E405",
        "mass_change_guard",
        "The run stopped before writing: it would delete or unsubscribe more of the other side "
        "than the source's guard allows.",
        "Check the planned changes (`--dry-run`); if they are right, raise the source's guard and run again.",
    ),
    ErrorInfo(
        "E406",
        "source_disabled",
        "The source is disabled.",
        "Enable it (`contactsync source enable NAME`) or run it once with `--force`.",
    ),
    ErrorInfo(
        "E420",
        "mandatory_field_empty",
        "A field the provider requires is empty, so the record was skipped.",
        "Fill the field on the other side, or map another field to it; the next run retries.",
    ),
    ErrorInfo(
        "E421",
        "ambiguous_match",
        "The record matches more than one record on the other side by its match keys, so it was not guessed.",
        "Merge the duplicates on the other side, or add a more specific match key.",
    ),
    ErrorInfo(
        "E422",
        "provider_rejected",
        "The provider refused the record (its reason is in the message).",
        "Fix the value named in the message on the hub or the provider side.",
    ),
    ErrorInfo(
        "E423",
        "no_match_value",
        "The record has no value for any match key, so it cannot be matched or created safely.",
        "Give the record a value for one of the source's match keys.",
    ),
    ErrorInfo(
        "E424",
        "invalid_mapped_value",
        "A mapped value cannot be converted to the target field's type.",
        "Fix the value, or change the field map so that the types agree.",
    ),
    # 5xx: transient
    ErrorInfo(
        "E500",
        "busy",
        "The database is busy or a lock could not be taken in time.",
        "Retry the request in a few seconds.",
    ),
    ErrorInfo(
        "E501",
        "provider_unavailable",
        "The provider kept failing (5xx, timeouts or dropped connections) after retries.",
        "Nothing was lost: run the source again later; it resumes from where it stopped.",
    ),
    ErrorInfo(
        "E502",
        "provider_rate_limited",
        "The provider's rate limit (per second or per day) was reached and retries ran out.",
        "Run again after the limit resets; lower the source's frequency if it happens often.",
    ),
    # 60x-61x: exchange files and endpoints (transports, codecs)
    # 62x-65x: exchange jobs and their rows
    # 66x-67x: schedules and the run queue
    # 70x-71x: subscribe / unsubscribe API, double opt-in, MailUp-compatible frontend
    # 72x-73x: webhooks (outbound deliveries, inbound provider events)
    # 74x-75x: Mailchimp
    # 80x-82x: the console (users, sessions, CSRF)
    # 9xx: bugs
    ErrorInfo(
        "E999",
        "internal_error",
        "An unexpected error inside contactsync: a bug.",
        "Report a bug with the `logref` of the error body; the details are in the service log under it.",
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


class ConsentRefusedError(ConflictError):
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
