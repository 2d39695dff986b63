"""Exchange jobs: what a batch module does on a node, where its files live, in which format.

A job is created from a JSON spec (API body, CLI file)::

    {"name": "daily-contacts", "node": "main", "module": "importer",
     "endpoint": {"url": "sftp://crm@files.example.com:22/outbox", "private_key": "-----BEGIN…",
                  "known_hosts": "[files.example.com]:22 ssh-ed25519 AAAA…"},
     "file": "contacts_{date:%Y%m%d}*.csv", "format": {"format": "csv", "delimiter": ";"},
     "mapping": {"email": "base.contacts.email", "first_name": "base.firstName"},
     "subscriptions": [{"column": "newsletter", "id": "newsletter"}],
     "options": {"mode": "append"}, "timezone": "Europe/Rome", "recipients": ["ops@example.com"]}

The endpoint's password, private key and passphrase (and a database URL's password) are
sealed with :mod:`contactsync.secrets`, stored apart from the URL and shown masked.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from contactsync.errors import ConfigError, FieldProblem, InputError, invalid, not_found
from contactsync.exchange import presets
from contactsync.exchange.codecs import CsvFormat, Format, format_from_options
from contactsync.exchange.mapping import Mapper, SubscriptionColumn, check_mapping
from contactsync.exchange.periods import zone
from contactsync.hub.consent import Status
from contactsync.hub.document import EMAIL_RE
from contactsync.hub.ids import new_id
from contactsync.hub.times import format_time, now_ms
from contactsync.hub.workspaces import (
    Node,
    UniquenessPolicy,
    Workspace,
    load_node,
    load_workspace,
    require_writable,
)
from contactsync.secrets import SecretBox, mask
from contactsync.settings import Settings
from contactsync.store import exchange as store
from contactsync.store import workspaces as ws_store
from contactsync.store.db import Database

SCHEDULE_KIND = "exchange"
SECRET_FIELDS = ("password", "private_key", "passphrase")
FILE_SCHEMES = ("file", "sftp")


class Module(StrEnum):
    IMPORTER = "importer"
    UPDATER = "updater"
    DISPLACER = "displacer"
    EXPORTER = "exporter"

    @property
    def reads_files(self) -> bool:
        return self in (Module.IMPORTER, Module.UPDATER)


@dataclass
class ExchangeEnv:
    """What exchange services need: the database, the settings and the key box."""

    db: Database
    settings: Settings
    box: SecretBox

    @classmethod
    def of(cls, db: Database, settings: Settings) -> ExchangeEnv:
        return cls(db, settings, SecretBox.from_settings(settings))


# --- the spec ------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EndpointSpec(_Strict):
    url: str = Field(min_length=1)
    password: SecretStr | None = None
    private_key: SecretStr | None = None
    passphrase: SecretStr | None = None
    known_hosts: str = ""
    table: str | None = None  # a client database: read this table …
    query: str | None = None  # … or the rows of this query


class SubscriptionSpec(_Strict):
    column: str = Field(min_length=1)
    id: str = Field(min_length=1)
    reason_column: str | None = None


class ImporterOptions(_Strict):
    mode: Literal["append", "overwrite"] = "append"
    update_existing_only: bool = False
    insert_only: bool = False
    overwrite_profile: bool = True
    overwrite_subscriptions: bool = True
    guard_percent: float = Field(10.0, ge=0, le=100)


class UpdaterOptions(_Strict):
    operation_column: str = Field("operation", min_length=1)
    overwrite_subscriptions: bool = True


class DisplacerOptions(_Strict):
    rows: Literal["customer", "subscription"] = "customer"
    subscriptions_included: list[str] = []
    subscriptions_excluded: list[str] = []
    statuses: list[Status] = []
    reasons_included: list[str] = []
    reasons_excluded: list[str] = []
    changed: Literal["all", "previous_day", "since"] = "all"
    changed_since: str | None = None


class ExporterOptions(_Strict):
    period: Literal["previous_day", "last_7_days", "last_30_days", "range", "all"] = "previous_day"
    date_from: str | None = None
    date_to: str | None = None


OPTIONS: dict[Module, type[_Strict]] = {
    Module.IMPORTER: ImporterOptions,
    Module.UPDATER: UpdaterOptions,
    Module.DISPLACER: DisplacerOptions,
    Module.EXPORTER: ExporterOptions,
}


class JobSpec(_Strict):
    name: str = Field(min_length=1, max_length=200)
    node: str = Field(min_length=1)
    module: Module
    endpoint: EndpointSpec
    file: str | None = None  # input: a glob with date placeholders; output: the file name
    format: dict[str, Any] = {"format": "csv"}
    mapping: dict[str, str] = {}  # column → property path
    subscriptions: list[SubscriptionSpec] = []
    options: dict[str, Any] = {}
    timezone: str = "UTC"
    recipients: list[str] = []
    failed_report_on_endpoint: bool = False
    move_processed: bool = True
    batch_size: int = Field(50_000, ge=1, le=50_000)  # rows per transaction (importer)
    preset: str | None = None


def _problems(e: ValidationError, prefix: str = "") -> list[FieldProblem]:
    return [
        FieldProblem(prefix + ".".join(str(p) for p in err["loc"]), err["msg"], "E200") for err in e.errors()
    ]


# --- the job -------------------------------------------------------------------------------------


@dataclass
class Job:
    id: str
    workspace_id: str
    node_id: str
    spec: JobSpec  # endpoint secrets left out: they are in ``secrets``
    secrets: dict[str, str] = field(repr=False)
    created_at: int = 0
    updated_at: int = 0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def module(self) -> Module:
        return self.spec.module

    @property
    def origin(self) -> str:
        """How the journal and the consent ledger name this job's writes."""
        return f"exchange:{self.id}"

    @property
    def is_database(self) -> bool:
        return not _is_file_url(self.spec.endpoint.url)

    def options(self) -> Any:
        return OPTIONS[self.module].model_validate(self.spec.options)

    def format(self, settings: Settings | None = None) -> Format:
        return format_from_options(self.spec.format, settings)

    def subscription_columns(self) -> list[SubscriptionColumn]:
        return [SubscriptionColumn(s.column, s.id, s.reason_column) for s in self.spec.subscriptions]

    def file_pattern(self) -> str:
        if self.spec.file:
            return self.spec.file
        ext = "xml" if self.spec.format.get("format") == "xml" else "csv"
        if self.module.reads_files:
            return f"*.{ext}"
        return f"{self.spec.name}_{{date:%Y%m%d}}.{ext}"

    def as_json(self) -> dict[str, Any]:
        spec = self.spec.model_dump(mode="json", exclude={"endpoint"})
        endpoint = self.spec.endpoint.model_dump(mode="json", exclude=set(SECRET_FIELDS), exclude_none=True)
        return {
            "id": self.id,
            "workspaceId": self.workspace_id,
            "nodeId": self.node_id,
            **spec,
            "endpoint": {**endpoint, **mask(self.secrets)},
            "createdAt": format_time(self.created_at),
            "updatedAt": format_time(self.updated_at),
        }


def _is_file_url(url: str) -> bool:
    return urllib.parse.urlsplit(url).scheme in FILE_SCHEMES


def _split_endpoint(endpoint: EndpointSpec) -> tuple[EndpointSpec, dict[str, str]]:
    """The endpoint without secrets (a password in the URL included), and the secrets."""
    secrets = {
        name: value.get_secret_value()
        for name in SECRET_FIELDS
        if (value := getattr(endpoint, name)) is not None and value.get_secret_value()
    }
    url = endpoint.url
    if _is_file_url(url):
        parts = urllib.parse.urlsplit(url)
        if parts.password:
            secrets.setdefault("password", urllib.parse.unquote(parts.password))
            netloc = parts.hostname or ""
            if parts.port:
                netloc = f"{netloc}:{parts.port}"
            if parts.username:
                netloc = f"{parts.username}@{netloc}"
            url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    else:
        try:
            parsed = sa.engine.make_url(url)
        except (sa.exc.ArgumentError, ValueError):
            raise invalid(
                [
                    FieldProblem(
                        "endpoint.url",
                        "not a file://, sftp:// or database URL (e.g. postgresql://user@host/db)",
                        "E634",
                    )
                ]
            ) from None
        if parsed.password:
            secrets.setdefault("password", str(parsed.password))
            url = parsed.set(password=None).render_as_string(hide_password=False)
    clean = endpoint.model_copy(
        update={"url": url, "password": None, "private_key": None, "passphrase": None}
    )
    return clean, secrets


def _check(spec: JobSpec, ws: Workspace, node: Node, settings: Settings | None) -> None:
    """Refuse settings that do not fit together, listing every problem."""
    problems: list[FieldProblem] = []
    module = spec.module
    try:
        options = OPTIONS[module].model_validate(spec.options)
    except ValidationError as e:
        raise invalid(_problems(e, "options.")) from None
    try:
        fmt = format_from_options(spec.format, settings)
    except InputError as e:
        raise invalid([FieldProblem(f"format.{p.path}", p.message, p.code) for p in e.problems]) from None
    subs = [SubscriptionColumn(s.column, s.id, s.reason_column) for s in spec.subscriptions]
    check_mapping(spec.mapping, subs, output=not module.reads_files)
    if not module.reads_files and subs:
        problems.append(
            FieldProblem("subscriptions", "subscription columns are read by input jobs only", "E634")
        )
    if module == Module.EXPORTER and spec.mapping:
        problems.append(
            FieldProblem("mapping", "the exporter's columns are fixed (see docs/exchange.md)", "E634")
        )
    if zone(spec.timezone) is None:
        problems.append(FieldProblem("timezone", f"{spec.timezone!r} is not a time zone name", "E634"))
    for i, address in enumerate(spec.recipients):
        if not EMAIL_RE.match(address.strip().lower()):
            problems.append(FieldProblem(f"recipients.{i}", f"{address!r} is not an email address", "E634"))
    endpoint = spec.endpoint
    if _is_file_url(endpoint.url):
        if endpoint.table or endpoint.query:
            problems.append(
                FieldProblem("endpoint.table", "only a database endpoint has a table or query", "E634")
            )
    else:
        if not module.reads_files:
            problems.append(
                FieldProblem(
                    "endpoint.url", f"the {module} writes files: give a file:// or sftp:// URL", "E634"
                )
            )
        elif bool(endpoint.table) == bool(endpoint.query):
            problems.append(
                FieldProblem(
                    "endpoint.table", "a database endpoint needs a table or a query (one of them)", "E634"
                )
            )
    if module.reads_files:
        require_writable(node)
        mapper = Mapper(ws, spec.mapping, subs)
        if not spec.mapping and not subs:
            problems.append(FieldProblem("mapping", "map at least one file column to a property", "E634"))
        needs_key = module == Module.UPDATER or (
            isinstance(options, ImporterOptions)
            and (options.mode == "overwrite" or options.update_existing_only or options.insert_only)
        )
        if ws.uniqueness_policy == UniquenessPolicy.NO_CHECK and needs_key:
            problems.append(
                FieldProblem(
                    "options",
                    "the workspace matches no customers (policy NO_CHECK): the updater, overwrite, "
                    "insert-only and update-only need a matching policy",
                    "E634",
                )
            )
        elif ws.uniqueness_policy != UniquenessPolicy.NO_CHECK:
            problems += [
                FieldProblem(
                    "mapping", f"map a column to {p}: it is a matching property of the workspace", "E634"
                )
                for p in mapper.missing_key_properties()
            ]
        if isinstance(options, ImporterOptions) and options.insert_only and options.update_existing_only:
            problems.append(
                FieldProblem(
                    "options.insert_only", "insert_only and update_existing_only exclude each other", "E634"
                )
            )
        if isinstance(options, UpdaterOptions) and options.operation_column in spec.mapping:
            problems.append(
                FieldProblem(
                    "options.operation_column", "the operation column cannot be mapped to a property", "E634"
                )
            )
        if isinstance(fmt, CsvFormat) and not fmt.header:
            wanted = set(mapper.columns) | (
                {options.operation_column} if isinstance(options, UpdaterOptions) else set()
            )
            missing = sorted(wanted - set(fmt.columns))
            if missing:
                problems.append(
                    FieldProblem(
                        "format.columns", f"name the mapped columns too: {', '.join(missing)}", "E634"
                    )
                )
    if isinstance(options, DisplacerOptions):
        if options.changed == "since" and not options.changed_since:
            problems.append(FieldProblem("options.changed_since", "give the date for changed=since", "E634"))
        if options.rows == "customer" and any(p.startswith("subscription.") for p in spec.mapping.values()):
            problems.append(
                FieldProblem("options.rows", "subscription.* columns need rows=subscription", "E634")
            )
    if isinstance(options, ExporterOptions) and options.period == "range" and not options.date_from:
        problems.append(
            FieldProblem("options.date_from", "give date_from (and date_to) for period=range", "E634")
        )
    if problems:
        raise invalid(problems)


# --- CRUD ----------------------------------------------------------------------------------------


def _resolve_node(conn: Any, workspace_id: str, ref: str) -> Node:
    row = ws_store.get_node(conn, workspace_id, ref) or ws_store.get_node_by_name(conn, workspace_id, ref)
    if row is None:
        raise not_found("node", ref)
    return load_node(conn, workspace_id, row.id)


def parse_spec(body: Mapping[str, Any]) -> JobSpec:
    if not isinstance(body, Mapping):
        raise invalid([FieldProblem("", "a job is a JSON object", "E200")])
    try:
        return JobSpec.model_validate(presets.expand(dict(body)))
    except ValidationError as e:
        raise invalid(_problems(e)) from None


def _job(env: ExchangeEnv, row: Any) -> Job:
    stored = orjson.loads(row.options)
    spec = JobSpec.model_validate(
        {
            **stored,
            "name": row.name,
            "node": row.node_id,
            "module": row.module,
            "endpoint": {**stored.get("endpoint", {}), "url": row.endpoint},
        }
    )
    return Job(
        row.id, row.workspace_id, row.node_id, spec, env.box.open(row.secrets), row.created_at, row.updated_at
    )


def _values(env: ExchangeEnv, spec: JobSpec, node: Node, secrets: dict[str, str]) -> dict[str, Any]:
    endpoint = spec.endpoint.model_dump(mode="json", exclude={"url", *SECRET_FIELDS}, exclude_none=True)
    options = spec.model_dump(mode="json", exclude={"name", "node", "module", "endpoint"})
    return {
        "node_id": node.id,
        "name": spec.name,
        "module": spec.module.value,
        "endpoint": spec.endpoint.url,
        "secrets": env.box.seal(secrets),
        "options": orjson.dumps({**options, "endpoint": endpoint}).decode(),
    }


def create_job(env: ExchangeEnv, workspace_id: str, body: Mapping[str, Any]) -> Job:
    spec = parse_spec(body)
    endpoint, secrets = _split_endpoint(spec.endpoint)
    spec = spec.model_copy(update={"endpoint": endpoint})
    job_id = new_id()
    with env.db.write() as conn:
        ws = load_workspace(conn, workspace_id)
        node = _resolve_node(conn, workspace_id, spec.node)
        _check(spec, ws, node, env.settings)
        if store.get_job(conn, workspace_id, spec.name) is not None:
            raise ConfigError(f"a job named {spec.name!r} exists already; pick another name", code="E634")
        at = now_ms()
        store.insert_job(
            conn,
            {
                "id": job_id,
                "workspace_id": workspace_id,
                "created_at": at,
                "updated_at": at,
                **_values(env, spec, node, secrets),
            },
        )
    return get_job(env, workspace_id, job_id)


def get_job(env: ExchangeEnv, workspace_id: str, ref: str) -> Job:
    with env.db.read() as conn:
        load_workspace(conn, workspace_id)
        row = store.get_job(conn, workspace_id, ref)
    if row is None:
        raise not_found("exchange job", ref)
    return _job(env, row)


def job_by_id(env: ExchangeEnv, job_id: str) -> Job:
    with env.db.read() as conn:
        row = store.get_job_by_id(conn, job_id)
    if row is None:
        raise not_found("exchange job", job_id)
    return _job(env, row)


def list_jobs(env: ExchangeEnv, workspace_id: str) -> list[Job]:
    with env.db.read() as conn:
        load_workspace(conn, workspace_id)
        return [_job(env, row) for row in store.list_jobs(conn, workspace_id)]


def update_job(env: ExchangeEnv, workspace_id: str, ref: str, body: Mapping[str, Any]) -> Job:
    """Change a job: top-level keys of ``body`` replace the job's; ``endpoint`` is merged onto the
    stored one, so credentials not given stay (``null`` removes one)."""
    if not isinstance(body, Mapping):
        raise invalid([FieldProblem("", "a change is a JSON object", "E200")])
    job = get_job(env, workspace_id, ref)
    current = job.spec.model_dump(mode="json", exclude={"endpoint"})
    current["node"] = job.node_id
    endpoint = {
        **job.spec.endpoint.model_dump(mode="json", exclude=set(SECRET_FIELDS), exclude_none=True),
        **job.secrets,
    }
    given_endpoint = body.get("endpoint")
    if isinstance(given_endpoint, Mapping):
        if "url" in given_endpoint and given_endpoint["url"] != endpoint["url"]:
            endpoint.pop("password", None)  # a password belongs to its server
        endpoint = {k: v for k, v in {**endpoint, **given_endpoint}.items() if v is not None}
    spec = parse_spec({**current, **{k: v for k, v in body.items() if k != "endpoint"}, "endpoint": endpoint})
    clean, secrets = _split_endpoint(spec.endpoint)
    spec = spec.model_copy(update={"endpoint": clean})
    with env.db.write() as conn:
        ws = load_workspace(conn, workspace_id)
        node = _resolve_node(conn, workspace_id, spec.node)
        _check(spec, ws, node, env.settings)
        other = store.get_job(conn, workspace_id, spec.name)
        if other is not None and other.id != job.id:
            raise ConfigError(f"a job named {spec.name!r} exists already; pick another name", code="E634")
        store.update_job(conn, job.id, {**_values(env, spec, node, secrets), "updated_at": now_ms()})
    return get_job(env, workspace_id, job.id)


def delete_job(env: ExchangeEnv, workspace_id: str, ref: str) -> None:
    """Delete a job with its runs, failed rows and schedule (customers stay)."""
    from contactsync.scheduling import schedules

    job = get_job(env, workspace_id, ref)
    with env.db.write() as conn:
        store.delete_job(conn, job.id)
        schedules.delete_schedule(conn, SCHEDULE_KIND, job.id)


# --- the scheduler's target ----------------------------------------------------------------------


def _run_target(db: Database, settings: Settings, target_id: str, trigger: str, request_id: str) -> None:
    from contactsync.exchange.runs import run_scheduled

    run_scheduled(ExchangeEnv.of(db, settings), target_id, trigger, request_id)


def _register() -> None:
    from contactsync.scheduling import targets

    targets.register(SCHEDULE_KIND, _run_target)


_register()
