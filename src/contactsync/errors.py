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
    ErrorInfo(
        "E600",
        "file_format_invalid",
        "An exchange job's file format options are invalid (delimiter, encoding, columns, element names).",
        "Fix the format option named in `errors[].path`; see docs/exchange-endpoints.md.",
    ),
    ErrorInfo(
        "E601",
        "line_too_long",
        "A line (CSV) or record (XML) of the file is longer than the limit, so the whole file was "
        "refused and nothing from it was written.",
        "Check that the file is the one expected (a line break may be missing); if long lines are right, "
        "raise `CONTACTSYNC_EXCHANGE_MAX_LINE_BYTES` and run again.",
    ),
    ErrorInfo(
        "E602",
        "xml_unsafe",
        "The XML file declares a DTD or entities, which are refused for safety (entity bombs, "
        "external entities); nothing from it was written.",
        "Export the XML without a DOCTYPE declaration and without entity definitions, then run again.",
    ),
    ErrorInfo(
        "E603",
        "file_unreadable",
        "The file cannot be read as a whole: its header row is broken, or the XML is not well-formed or "
        "has another root element; nothing from it was written.",
        "Fix the file (or the job's format options) as the message says, then run again.",
    ),
    ErrorInfo(
        "E604",
        "malformed_row",
        "The row cannot be parsed: a different number of fields than the header, a stray quote, "
        "or an XML record with nested or repeated fields.",
        "Fix the row in the failed-operations report and import the report again.",
    ),
    ErrorInfo(
        "E605",
        "invalid_encoding",
        "The row holds bytes that are not valid in the file's declared encoding (mixed encodings).",
        "Save the file in one encoding and set the job's `encoding` to it, or fix the row in the "
        "failed-operations report and import the report again.",
    ),
    ErrorInfo(
        "E610",
        "endpoint_invalid",
        "The exchange endpoint's URL or credentials cannot be used (unknown scheme, bad private key, "
        "missing passphrase, unreadable known_hosts line, bad database URL).",
        "Fix the endpoint as the message says; see docs/exchange-endpoints.md for the URL forms.",
    ),
    ErrorInfo(
        "E611",
        "path_outside_root",
        "The path leaves the folder exchange files may use (`..`, a symlink or an absolute path "
        "outside `CONTACTSYNC_EXCHANGE_LOCAL_ROOT`, or a file name with a slash).",
        "Use a path under the exchange root, or move the exchange root (`CONTACTSYNC_EXCHANGE_LOCAL_ROOT`).",
    ),
    ErrorInfo(
        "E612",
        "host_key_unknown",
        "The SFTP server's host key is not in the job's known_hosts, so the connection was refused.",
        "Check the fingerprint in the message with the server's administrator, then add the server's "
        "line (`ssh-keyscan -p PORT HOST`) to the job's known_hosts.",
    ),
    ErrorInfo(
        "E613",
        "host_key_changed",
        "The SFTP server presented a different host key than the one in the job's known_hosts: "
        "the server was reinstalled, or someone is intercepting the connection.",
        "Do not connect until the server's administrator confirms the new fingerprint in the message; "
        "then replace the server's line in the job's known_hosts.",
    ),
    ErrorInfo(
        "E614",
        "endpoint_auth",
        "The SFTP server or client database refused the login (wrong user, password or key).",
        "Check the user name in the URL and the job's password or private key, then run again.",
    ),
    ErrorInfo(
        "E615",
        "endpoint_unreachable",
        "The SFTP server could not be reached, or the connection dropped during a transfer.",
        "Check the host, port and firewall; nothing was lost: the run can be started again.",
    ),
    ErrorInfo(
        "E616",
        "endpoint_not_found",
        "The endpoint's folder or file does not exist.",
        "Create the folder on the endpoint, or fix the path in the job's URL.",
    ),
    ErrorInfo(
        "E617",
        "endpoint_permission",
        "The endpoint refused to read, write, rename or create a file or folder (permissions, "
        "a full disk, a name taken by a folder; the reason is in the message).",
        "Give the job's user the right to read and write the folder and its done/ and failed/ "
        "subfolders, or free space, as the message says.",
    ),
    ErrorInfo(
        "E618",
        "client_db_unreachable",
        "The client database could not be reached or failed while rows were read or written.",
        "Check the database URL, that the server is up and reachable; then run again.",
    ),
    ErrorInfo(
        "E619",
        "client_db_query",
        "The client database refused the table or query of the job (no such table or column, "
        "a syntax error, no permission).",
        "Fix the job's table or query (the database's message says what is wrong) and run again.",
    ),
    # 62x-65x: exchange jobs and their rows
    ErrorInfo(
        "E620",
        "row_missing_key",
        "The row has no value in the column(s) mapped to the workspace's matching properties "
        "(or in the key of an updater), so it cannot be matched to a customer.",
        "Fill the key column of the row (see the failed-operations report) and import the row again.",
    ),
    ErrorInfo(
        "E621",
        "row_duplicate_key",
        "An earlier row of the same file has the same key: only the first one is applied.",
        "Keep one row per customer in the file; merge the duplicates and import the row again if needed.",
    ),
    ErrorInfo(
        "E622",
        "row_record_not_found",
        "The row updates or deletes (`U`/`D`) a customer that the node does not have.",
        "Check the key of the row; use `I` to insert a new customer.",
    ),
    ErrorInfo(
        "E623",
        "row_record_exists",
        "The row inserts (`I`) a customer that the node already has.",
        "Use `U` to update the existing customer, or check the key of the row.",
    ),
    ErrorInfo(
        "E624",
        "row_invalid_value",
        "A cell holds a value that cannot be converted for its field (a number, date, boolean or "
        "subscription status that does not parse).",
        "Fix the cell named in the message (docs/exchange.md lists the accepted values) "
        "and import the row again.",
    ),
    ErrorInfo(
        "E625",
        "row_invalid_operation",
        "The row's operation column is not `I` (insert), `U` (update) or `D` (delete).",
        "Put I, U or D in the operation column of the row and import it again.",
    ),
    ErrorInfo(
        "E630",
        "file_already_processed",
        "A file with the same content (SHA-256) was already processed by this job, so it was skipped.",
        "Nothing to do if it is a resent copy; to process it again run the job with `--force` "
        "(API: `force=true`).",
    ),
    ErrorInfo(
        "E631",
        "exchange_mass_change_guard",
        "The overwrite import stopped before writing: it would delete more of the node's customers "
        "than the job's guard allows (default 10%).",
        "Check that the file is complete; if the deletions are right, run once with `--allow-mass-change` "
        "(API: `allowMassChange=true`) or raise the job's `guard_percent`.",
    ),
    ErrorInfo(
        "E632",
        "job_running",
        "A run of this exchange job is already in progress.",
        "Wait for it to finish (`contactsync exchange runs JOB`); a run whose process died is "
        "resumed by the next run.",
    ),
    ErrorInfo(
        "E633",
        "no_input_file",
        "No file on the endpoint matches the job's input pattern, so there was nothing to import.",
        "Check the endpoint folder and the job's `pattern`; the next scheduled run looks again.",
    ),
    ErrorInfo(
        "E634",
        "job_invalid",
        "The exchange job's settings do not fit together (module, endpoint, mapping or the workspace's "
        "matching properties).",
        "Fix the setting named in the message (see docs/exchange.md) and save the job again.",
    ),
    ErrorInfo(
        "E635",
        "missing_column",
        "The file has no column that the job's mapping names, so none of its rows was imported.",
        "Add the column to the file, or change the job's mapping to the file's column names.",
    ),
    # 66x-67x: schedules and the run queue
    ErrorInfo(
        "E660",
        "invalid_cron",
        "A schedule's cron expression is not valid (it needs 5 fields: minute hour day month weekday), "
        "or it never fires.",
        "Fix the expression, e.g. `0 6 * * 1-5` for 06:00 on weekdays; see docs/scheduling.md.",
    ),
    ErrorInfo(
        "E661",
        "unknown_timezone",
        "A schedule names a time zone that does not exist.",
        "Use an IANA time zone name such as `Europe/Rome` or `UTC`.",
    ),
    ErrorInfo(
        "E662",
        "invalid_schedule_dates",
        "A schedule's start or end is not a date or date-time, or its end is not after its start.",
        "Give ISO dates (`2026-12-01`) or date-times (`2026-12-01T06:00`), with the end after the start.",
    ),
    ErrorInfo(
        "E663",
        "invalid_schedule",
        "A schedule is neither a cron expression nor a valid friendly form (times of day, days of week, "
        "days of month, months).",
        "Send either `cron`, or `times` with optional `days_of_week`, `days_of_month` and `months`.",
    ),
    ErrorInfo(
        "E665",
        "unknown_run_target",
        "A queued run names a kind of target that no loaded module runs (e.g. an exchange job on a "
        "worker that does not have that feature).",
        "Run the same contactsync version for `serve` and every `contactsync worker`, then run it again.",
    ),
    ErrorInfo(
        "E666",
        "target_busy",
        "Another run of the same source or exchange job was in progress, so this run waited.",
        "Nothing to do: the request is retried shortly; if it keeps failing, look at the run in progress.",
    ),
    ErrorInfo(
        "E667",
        "worker_died",
        "The worker running this request stopped (its process died) too many times, so it was given up.",
        "Look at the worker's log for the cause, then start the run again (run now).",
    ),
    # 70x-71x: subscribe / unsubscribe API, double opt-in, MailUp-compatible frontend
    ErrorInfo(
        "E700",
        "optin_link_invalid",
        "The confirmation link is not valid: it was cut, mistyped or altered.",
        "Open the link exactly as it arrived in the email, or subscribe again to get a new one.",
    ),
    ErrorInfo(
        "E701",
        "optin_link_expired",
        "The confirmation link has expired (links are valid for `optin_expiry_hours`, default 48 h).",
        "Subscribe again: a new confirmation email with a fresh link is sent.",
    ),
    ErrorInfo(
        "E702",
        "optin_request_closed",
        "The subscription request of this link was withdrawn: the customer was removed meanwhile.",
        "Subscribe again if you still want to receive the newsletter.",
    ),
    ErrorInfo(
        "E703",
        "optin_needs_smtp",
        "Double opt-in needs an SMTP server to send the confirmation email, and none is configured.",
        "Set `CONTACTSYNC_SMTP_HOST` (and port, security, login), or subscribe with single opt-in.",
    ),
    ErrorInfo(
        "E704",
        "ambiguous_email",
        "More than one customer of the node has this email address, so the one to change is not guessed.",
        "Merge or delete the duplicate customers of the node, then retry.",
    ),
    ErrorInfo(
        "E705",
        "email_unknown",
        "No customer of the node has this email address.",
        "Check the address and the node; subscribe the address first.",
    ),
    ErrorInfo(
        "E706",
        "frontend_list_unknown",
        "The MailUp list id is not mapped to a node and subscription system.",
        "Map it with `contactsync frontend list add LIST_ID --node NODE --subscription ID`.",
    ),
    ErrorInfo(
        "E707",
        "frontend_ip_not_allowed",
        "The caller's IP address is not on the frontend allow-list of the list's workspace (MailUp -1011).",
        "Add the address with `contactsync frontend allow IP_OR_NETWORK`, or call from an allowed address.",
    ),
    ErrorInfo(
        "E708",
        "frontend_bad_parameters",
        "The frontend request's parameters are inconsistent (csvFldNames and csvFldValues differ in "
        "count, a ListGuid does not match its List, or no Email is given).",
        "Send as many values as field names, the List's own ListGuid, and an Email.",
    ),
    ErrorInfo(
        "E709",
        "frontend_config_invalid",
        "A frontend setting is invalid: an IP address or network, a list id or a field path.",
        "Use an IPv4/IPv6 address or CIDR network, an integer list id, and a customer property path.",
    ),
    # 72x-73x: webhooks (outbound deliveries, inbound provider events)
    ErrorInfo(
        "E720",
        "inbound_token_invalid",
        "An inbound webhook request carries no valid token for this source (or names no such source).",
        "Register the URL shown when the source's webhook token was made "
        "(`contactsync webhooks token SOURCE` makes a new one) with the provider.",
    ),
    ErrorInfo(
        "E721",
        "inbound_payload_invalid",
        "An inbound webhook body cannot be read as an event of the source's provider.",
        "Check the provider's webhook settings (method, format); docs/webhooks.md lists the formats read.",
    ),
    ErrorInfo(
        "E722",
        "inbound_replayed",
        "This inbound event was received before (same event id, or the same body and time).",
        "Nothing to do: the first copy is queued or processed, and a replay changes nothing.",
    ),
    ErrorInfo(
        "E723",
        "inbound_stale",
        "The inbound event's timestamp is outside the accepted window (too old or in the future).",
        "Check the clocks; raise `CONTACTSYNC_INBOUND_MAX_AGE_S` if the provider retries late. "
        "The next sync of the source picks up the change anyway.",
    ),
    ErrorInfo(
        "E730",
        "webhook_url_invalid",
        "A webhook URL is not an absolute http:// or https:// URL.",
        "Give the full URL of the receiver, e.g. `https://example.com/hooks/contactsync`.",
    ),
    ErrorInfo(
        "E731",
        "webhook_event_unknown",
        "A webhook names an event type that does not exist.",
        "Use the event types listed in docs/webhooks.md (e.g. `subscription.unsubscribed`), or `*` for all.",
    ),
    ErrorInfo(
        "E732",
        "webhook_delivery_failed",
        "The receiver did not answer a delivery with a 2xx status within the retry window.",
        "Fix the receiver (the delivery log shows each attempt's answer), then redeliver "
        "(`contactsync webhooks redeliver ID`).",
    ),
    # 74x-75x: Mailchimp
    ErrorInfo(
        "E740",
        "mailchimp_api_key_format",
        "The Mailchimp API key has no data-center suffix, so the API's address is unknown.",
        "Copy the whole key (Mailchimp: Profile > Extras > API keys); it ends in its data center (`-us19`).",
    ),
    ErrorInfo(
        "E741",
        "mailchimp_audience_not_found",
        "The Mailchimp account has no audience with the source's `list_id`.",
        "Copy the audience ID (Audience > Settings > Audience name and defaults) into `list_id`.",
    ),
    ErrorInfo(
        "E742",
        "mailchimp_compliance_state",
        "Mailchimp keeps the address in a compliance state (it unsubscribed or bounced), so it was not set "
        "back to subscribed: an unsubscribed one is now pending and Mailchimp emails a confirmation.",
        "Nothing to do: the person is subscribed once they confirm (the next run reads it); a cleaned "
        "(bounced) address needs a new, working address.",
    ),
    ErrorInfo(
        "E743",
        "mailchimp_webhook_refused",
        "Mailchimp refused to register the source's webhook URL (it must answer a GET with 200).",
        "Make the URL reachable from the internet (HTTPS, no login in front of it), then connect again.",
    ),
    ErrorInfo(
        "E744",
        "mailchimp_forgotten_email",
        "The address was permanently deleted from the Mailchimp audience; Mailchimp refuses to add it again.",
        "The person must sign up again through a Mailchimp form; the next run then links the record.",
    ),
    # 80x-82x: the console (users, sessions, CSRF)
    ErrorInfo(
        "E800",
        "login_failed",
        "The console user name or password is wrong.",
        "Check both and sign in again; 5 failures in a row lock the user for 15 minutes.",
    ),
    ErrorInfo(
        "E801",
        "session_expired",
        "The console session is missing, expired or signed out.",
        "Sign in again; sessions last 12 hours.",
    ),
    ErrorInfo(
        "E802",
        "login_locked",
        "Too many failed sign-ins in a row: the console user is locked for a while.",
        "Wait until the time in the message, or have an admin run `contactsync user passwd NAME`.",
    ),
    ErrorInfo(
        "E803",
        "csrf_refused",
        "A console form arrived without this session's CSRF token (a stale page or another site).",
        "Reload the page and submit the form again.",
    ),
    ErrorInfo(
        "E804",
        "console_forbidden",
        "The console user's role does not allow this page or action.",
        "Ask an admin; only admins change sources, credentials, schedules, webhooks and tokens.",
    ),
    ErrorInfo(
        "E805",
        "user_exists",
        "A console user with this name exists already.",
        "Pick another name, or change the existing user with `contactsync user passwd`.",
    ),
    ErrorInfo(
        "E806",
        "weak_password",
        "The console password is too short.",
        "Use at least 12 characters; a passphrase of a few words is easiest.",
    ),
    ErrorInfo(
        "E807",
        "last_admin",
        "The workspace would be left without a console admin.",
        "Create or promote another admin first.",
    ),
    ErrorInfo(
        "E808",
        "oauth_state_unknown",
        "The provider's sign-in answer matches no sign-in started from this console session "
        "(unknown, used or expired state).",
        "Start the sign-in again from the source page; it must finish within 30 minutes.",
    ),
    ErrorInfo(
        "E809",
        "oauth_refused",
        "The provider did not grant access (the account owner refused, or the app is misconfigured).",
        "Check the client id, secret and redirect URI registered at the provider, then sign in again.",
    ),
    ErrorInfo(
        "E810",
        "oauth_unsupported",
        "This provider has no OAuth sign-in: it takes its credentials in the provider options.",
        "Enter the provider's credentials in the form instead.",
    ),
    ErrorInfo(
        "E811",
        "no_match_field",
        "The field mapping of a source has no match field.",
        'Tick "match" on at least one mapped field (usually the email) and save again.',
    ),
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
