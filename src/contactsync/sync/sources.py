"""Sources: one node ↔ one provider user DB, and the rules that keep that true.

The seeds' principle is *one source, one node, one user DB*:

* one source per node (a unique index), one node per provider user DB (a unique index on
  the user DB identity the connector reports), no subscription sync on aggregate nodes (and,
  since aggregates are read-only, only ``to_provider`` there);
* a new source needs an empty user DB, unless the user asks for an explicit
  ``initial_merge`` by match keys (our addition; the first run logs every merged record);
* what a change needs (seed 000's table, as we apply it):

  ===========================  ========  ==================  ==============  ============
  change                       disabled  current node empty  new node empty  user DB empty
  ===========================  ========  ==================  ==============  ============
  node                         x         x                   x
  credentials                  x
  node and credentials         x         x                   x
  user DB                      x         x                                   x
  node and user DB             x         x                   x               x
  subscription map             x
  field map / match keys       x
  ===========================  ========  ==================  ==============  ============

  Credentials alone only need the source disabled (the seed also asks for an empty node):
  we detect a change of user DB from what the new credentials reach, and apply the user DB
  row then; asking to empty a node to rotate an expired API key would make rotation unusable.

Credentials are sealed with :mod:`contactsync.secrets` and never leave this module unmasked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from pydantic import SecretStr, ValidationError
from sqlalchemy.engine import Connection, Row

from contactsync.connectors import registry
from contactsync.connectors.base import Connector, ConnectorConfig, ConnectorContext, Description
from contactsync.errors import ConfigError, FieldProblem, invalid, not_found
from contactsync.hub.ids import new_id
from contactsync.hub.times import format_time, now_ms
from contactsync.hub.workspaces import Node, NodeKind, load_node
from contactsync.secrets import SecretBox, mask
from contactsync.store import sync as store
from contactsync.store import workspaces as ws_store
from contactsync.store.db import Database
from contactsync.sync.settings import Direction, SyncSettings


@dataclass
class SyncEnv:
    """What sync services need: the database, the key box, and the seams tests inject
    (the HTTP client connectors use, and their sleep)."""

    db: Database
    box: SecretBox
    http: httpx.Client | None = None
    sleep: Callable[[float], None] | None = None
    clock: Callable[[], float] | None = None  # monotonic seconds, paired with ``sleep``


@dataclass
class Source:
    id: str
    workspace_id: str
    node_id: str
    name: str
    description: str
    provider: str
    options: dict[str, Any]
    secrets: dict[str, str] = field(repr=False)
    user_db: str
    settings: SyncSettings
    enabled: bool
    hub_cursor: int
    provider_cursor: str | None
    created_at: int
    updated_at: int

    @property
    def origin(self) -> str:
        """How the journal and the consent ledger name this source's writes."""
        return f"sync:{self.id}"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workspaceId": self.workspace_id,
            "nodeId": self.node_id,
            "name": self.name,
            "description": self.description,
            "provider": self.provider,
            "config": {**self.options, **mask(self.secrets)},
            "userDb": self.user_db,
            "sync": self.settings.model_dump(mode="json"),
            "enabled": self.enabled,
            "createdAt": format_time(self.created_at),
            "updatedAt": format_time(self.updated_at),
        }


def _source(env: SyncEnv, row: Row[Any]) -> Source:
    return Source(
        id=row.id,
        workspace_id=row.workspace_id,
        node_id=row.node_id,
        name=row.name,
        description=row.description,
        provider=row.provider,
        options=orjson.loads(row.options),
        secrets=env.box.open(row.secrets),
        user_db=row.user_db,
        settings=SyncSettings.model_validate_json(row.settings),
        enabled=bool(row.enabled),
        hub_cursor=int(row.hub_cursor),
        provider_cursor=row.provider_cursor,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def parse_settings(values: Mapping[str, Any]) -> SyncSettings:
    try:
        return SyncSettings.model_validate(dict(values))
    except ValidationError as e:
        problems = [
            FieldProblem("sync." + ".".join(str(p) for p in err["loc"]), err["msg"], "E200")
            for err in e.errors()
        ]
        raise invalid(problems) from None


def _split_config(
    provider: registry.Provider, config: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Validate a provider config and split it into options (plain) and secrets (sealed)."""
    parsed = provider.parse_config(config)
    secret_names = set(parsed.secret_fields())
    options: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    for name, value in parsed:
        if name in secret_names:
            if value is not None:
                secrets[name] = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        else:
            options[name] = value
    return orjson.loads(orjson.dumps(options)), secrets


def connector_for(env: SyncEnv, source: Source) -> Connector:
    """A connector for ``source``; rotated credentials are sealed and stored before use."""
    provider = registry.get(source.provider)
    config = provider.parse_config({**source.options, **source.secrets})

    def save_secrets(values: Mapping[str, str]) -> None:
        source.secrets.update(values)
        with env.db.write() as conn:
            store.update_source(conn, source.id, {"secrets": env.box.seal(source.secrets)})

    return provider.create(config, _context(env, save_secrets))


def _context(
    env: SyncEnv, save_secrets: Callable[[Mapping[str, str]], None] | None = None
) -> ConnectorContext:
    ctx = ConnectorContext(http=env.http)
    if save_secrets is not None:
        ctx.save_secrets = save_secrets
    if env.sleep is not None:
        ctx.sleep = env.sleep
    if env.clock is not None:
        ctx.clock = env.clock
    return ctx


def _probe(env: SyncEnv, provider_name: str, config: ConnectorConfig, secrets: dict[str, str]) -> Description:
    """Check and describe the provider side; credentials it rotates meanwhile go into ``secrets``
    (they are sealed with the source, since the old refresh token is dead once used)."""
    provider = registry.get(provider_name)
    conn = provider.create(config, _context(env, secrets.update))
    try:
        conn.check()
        return conn.describe()
    finally:
        conn.close()


def _check_maps(settings: SyncSettings, description: Description) -> None:
    problems: list[FieldProblem] = []
    known = {f.name for f in description.fields}
    for i, m in enumerate(settings.field_map):
        if m.provider not in known:
            names = ", ".join(sorted(known))
            problems.append(
                FieldProblem(
                    f"sync.field_map.{i}.provider", f"no field {m.provider!r}; fields: {names}", "E100"
                )
            )
    lists = {li.id for li in description.lists}
    for i, s in enumerate(settings.subscription_map):
        if s.provider not in lists:
            names = ", ".join(sorted(lists)) or "none"
            problems.append(
                FieldProblem(
                    f"sync.subscription_map.{i}.provider", f"no list {s.provider!r}; lists: {names}", "E100"
                )
            )
    if problems:
        raise invalid(problems)


def _check_node(conn: Connection, node: Node, settings: SyncSettings, source_id: str | None) -> None:
    if node.kind == NodeKind.AGGREGATE:
        if settings.subscription_map:
            raise ConfigError(
                f"node {node.name!r} is an aggregate node: subscriptions cannot be synced there; "
                "remove the subscription map or pick a standard node",
                code="E400",
            )
        if settings.direction != Direction.TO_PROVIDER:
            raise ConfigError(
                f"node {node.name!r} is an aggregate node (read-only): "
                "only direction to_provider works there",
                code="E400",
            )
    other = store.source_for_node(conn, node.id)
    if other is not None and other.id != source_id:
        raise ConfigError(
            f"node {node.name!r} already has source {other.name!r}: one source per node", code="E400"
        )


def _check_user_db(conn: Connection, provider: str, user_db: str, source_id: str | None) -> None:
    other = store.source_for_user_db(conn, provider, user_db)
    if other is not None and other.id != source_id:
        raise ConfigError(
            f"this user DB ({user_db}) is already synced with another node by source {other.name!r}; "
            "a user DB can be synced with one node only",
            code="E400",
        )


def _require_empty_user_db(description: Description, settings: SyncSettings) -> None:
    if description.record_count and not settings.initial_merge:
        raise ConfigError(
            f"the user DB {description.user_db} holds {description.record_count} records; use an empty "
            "user DB, or set initial_merge to merge its records with the node's by match keys",
            code="E403",
        )


def _require_empty_node(conn: Connection, node: Node, which: str) -> None:
    count = ws_store.count_customers(conn, [node.id])
    if count:
        raise ConfigError(
            f"the {which} node {node.name!r} has {count} customers; this change needs it empty", code="E402"
        )


def _resolve_node(conn: Connection, workspace_id: str, ref: str) -> Node:
    row = ws_store.get_node(conn, workspace_id, ref) or ws_store.get_node_by_name(conn, workspace_id, ref)
    if row is None:
        raise not_found("node", ref)
    return load_node(conn, workspace_id, row.id)


def create_source(env: SyncEnv, workspace_id: str, spec: Mapping[str, Any]) -> Source:
    """Create a source after checking the credentials, the maps and the one-to-one rules."""
    name = str(spec.get("name") or "").strip()
    if not name:
        raise invalid([FieldProblem("name", "a source needs a name", "E206")])
    provider = registry.get(str(spec.get("provider") or ""))
    settings = parse_settings(spec.get("sync") or {})
    options, secrets = _split_config(provider, spec.get("config") or {})
    with env.db.read() as conn:
        node = _resolve_node(conn, workspace_id, str(spec.get("node") or ""))
        if store.get_source(conn, workspace_id, name) is not None:
            raise ConfigError(f"a source named {name!r} exists already; pick another name", code="E400")
        _check_node(conn, node, settings, None)
    description = _probe(env, provider.name, provider.parse_config({**options, **secrets}), secrets)
    _check_maps(settings, description)
    at = now_ms()
    with env.db.write() as conn:
        _check_node(conn, node, settings, None)
        _check_user_db(conn, provider.name, description.user_db, None)
        _require_empty_user_db(description, settings)
        source_id = new_id()
        store.insert_source(
            conn,
            {
                "id": source_id,
                "workspace_id": workspace_id,
                "node_id": node.id,
                "name": name,
                "description": str(spec.get("description") or ""),
                "provider": provider.name,
                "options": orjson.dumps(options).decode(),
                "secrets": env.box.seal(secrets),
                "user_db": description.user_db,
                "settings": settings.model_dump_json(),
                "enabled": bool(spec.get("enabled", True)),
                "hub_cursor": 0,
                "provider_cursor": None,
                "created_at": at,
                "updated_at": at,
            },
        )
        row = store.get_source(conn, workspace_id, source_id)
    assert row is not None
    return _source(env, row)


def get_source(env: SyncEnv, workspace_id: str, ref: str) -> Source:
    with env.db.read() as conn:
        row = store.get_source(conn, workspace_id, ref)
    if row is None:
        raise not_found("source", ref)
    return _source(env, row)


def list_sources(env: SyncEnv, workspace_id: str) -> list[Source]:
    with env.db.read() as conn:
        return [_source(env, r) for r in store.list_sources(conn, workspace_id)]


def all_sources(env: SyncEnv) -> list[Source]:
    with env.db.read() as conn:
        return [_source(env, r) for r in store.all_sources(conn)]


def update_source(env: SyncEnv, workspace_id: str, ref: str, changes: Mapping[str, Any]) -> Source:
    """Apply ``changes`` (name, description, enabled, node, config, sync) under seed 000's table."""
    source = get_source(env, workspace_id, ref)
    provider = registry.get(source.provider)
    settings = source.settings
    if "sync" in changes:
        settings = parse_settings({**source.settings.model_dump(), **dict(changes["sync"])})
    options, secrets = source.options, source.secrets
    if "config" in changes:
        given = dict(changes["config"])
        # masked values sent back unchanged keep the stored secret
        merged = {**source.options, **source.secrets, **{k: v for k, v in given.items() if v != "********"}}
        options, secrets = _split_config(provider, merged)
    values: dict[str, Any] = {"settings": settings.model_dump_json(), "updated_at": now_ms()}
    for key in ("name", "description"):
        if key in changes:
            values[key] = str(changes[key])
    credentials_changed = options != source.options or secrets != source.secrets
    map_changed = (settings.field_map, settings.match_keys) != (
        source.settings.field_map,
        source.settings.match_keys,
    )
    subs_changed = settings.subscription_map != source.settings.subscription_map
    description: Description | None = None
    rotated_secrets = False
    if credentials_changed or map_changed or subs_changed:
        rotated = dict(secrets)
        description = _probe(env, provider.name, provider.parse_config({**options, **secrets}), rotated)
        _check_maps(settings, description)
        if rotated != secrets:  # keep what the provider rotated (not a change of credentials)
            secrets, rotated_secrets = rotated, True
    user_db_changed = description is not None and description.user_db != source.user_db
    with env.db.write() as conn:
        current_node = load_node(conn, workspace_id, source.node_id)
        node = (
            _resolve_node(conn, workspace_id, str(changes["node"])) if changes.get("node") else current_node
        )
        node_changed = node.id != current_node.id
        _check_node(conn, node, settings, source.id)
        if node_changed or credentials_changed or user_db_changed or subs_changed or map_changed:
            what = [
                label
                for label, changed in (
                    ("node", node_changed),
                    ("credentials", credentials_changed),
                    ("user DB", user_db_changed),
                    ("subscription map", subs_changed),
                    ("field map", map_changed),
                )
                if changed
            ]
            if source.enabled:
                raise ConfigError(
                    f"changing the {' and '.join(what)} of source {source.name!r} needs it disabled first",
                    code="E401",
                )
        if node_changed or user_db_changed:
            _require_empty_node(conn, current_node, "current")
        if node_changed:
            _require_empty_node(conn, node, "new")
            values["node_id"] = node.id
        if user_db_changed and description is not None:
            _check_user_db(conn, provider.name, description.user_db, source.id)
            _require_empty_user_db(description, settings)
            values["user_db"] = description.user_db
        if node_changed or user_db_changed:
            values.update(hub_cursor=0, provider_cursor=None)
            store.drop_links(conn, source.id)
        if credentials_changed or rotated_secrets:
            values.update(options=orjson.dumps(options).decode(), secrets=env.box.seal(secrets))
        if "enabled" in changes:
            values["enabled"] = bool(changes["enabled"])
        store.update_source(conn, source.id, values)
    return get_source(env, workspace_id, source.id)


def delete_source(env: SyncEnv, workspace_id: str, ref: str) -> None:
    source = get_source(env, workspace_id, ref)
    with env.db.write() as conn:
        store.delete_source(conn, source.id)


def revoke_access(env: SyncEnv, workspace_id: str, ref: str) -> Source:
    """Revoke the provider grant where the provider supports it, forget the credentials and
    disable the source; it needs new credentials before it runs again."""
    source = get_source(env, workspace_id, ref)
    connector = connector_for(env, source)
    try:
        revoke = getattr(connector, "revoke", None)
        if callable(revoke) and source.secrets:
            revoke()
    finally:
        connector.close()
    with env.db.write() as conn:
        store.update_source(
            conn, source.id, {"secrets": env.box.seal({}), "enabled": False, "updated_at": now_ms()}
        )
    return get_source(env, workspace_id, source.id)


def check_source(env: SyncEnv, workspace_id: str, ref: str) -> Description:
    source = get_source(env, workspace_id, ref)
    connector = connector_for(env, source)
    try:
        connector.check()
        return connector.describe()
    finally:
        connector.close()


def describe_json(description: Description) -> dict[str, Any]:
    return {
        "userDb": description.user_db,
        "recordCount": description.record_count,
        "fields": [vars(f) for f in description.fields],
        "lists": [vars(li) for li in description.lists],
    }
