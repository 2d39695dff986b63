"""The source form (seed 000's page): form fields ↔ draft values ↔ the source service's spec.

Field names: ``name``, ``description``, ``node``, ``read``/``write`` (the sync direction as
the node's read/write boxes), ``opt.<option>`` (provider options; credentials are password
fields never filled back), ``map.<i>.hub|provider|match`` (one row per hub field),
``sub.<i>.hub|provider|webform`` (subscription rows) and the sync settings.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
from pydantic import SecretStr

from contactsync.connectors import registry
from contactsync.errors import FieldProblem, InputError, invalid
from contactsync.sync.oauth import TOKEN_FIELDS, supports_sign_in
from contactsync.sync.settings import ConflictPolicy, DeleteBehaviour, Direction
from contactsync.sync.sources import Source

HUB_FIELDS = [
    ("base.contacts.email", "Email"),
    ("base.firstName", "First name"),
    ("base.lastName", "Last name"),
    ("base.contacts.mobilePhone", "Mobile phone"),
    ("base.contacts.phone", "Phone"),
    ("base.dob", "Date of birth"),
    ("base.gender", "Gender"),
    ("base.title", "Title"),
    ("base.address.city", "City"),
    ("base.address.country", "Country"),
    ("externalId", "External id"),
]
FREQUENCIES = ("", "5", "15", "60", "360", "1440")  # minutes; "" = manual only
ADVANCED = (
    "base_url",
    "auth_url",
    "token_url",
    "revoke_url",
    "page_size",
    "bulk_threshold",
    "activity_timeout_s",
)


@dataclass(frozen=True)
class OptionField:
    name: str
    kind: str  # text, secret, number, json, checkbox
    required: bool
    default: Any
    advanced: bool


def option_fields(provider: str) -> list[OptionField]:
    """The provider's options as form fields (OAuth tokens come from "Sign in", not the form)."""
    config = registry.get(provider).config
    secret = set(config.secret_fields())
    oauth = supports_sign_in(provider)
    out = []
    for name, info in config.model_fields.items():
        if oauth and name in TOKEN_FIELDS:
            continue
        annotation = info.annotation
        origin = typing.get_origin(annotation)
        if name in secret:
            kind = "secret"
        elif annotation in (int, float):
            kind = "number"
        elif annotation is bool:
            kind = "checkbox"
        elif origin is dict or annotation is dict:
            kind = "json"
        else:
            kind = "text"
        default = info.get_default() if not info.is_required() else None
        if isinstance(default, SecretStr) or (kind == "json" and not default):
            default = None
        out.append(OptionField(name, kind, info.is_required(), default, name in ADVANCED))
    return out


def hub_fields(extended_names: list[str], values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The hub fields offered for mapping: the usual ones, the workspace's extended properties,
    and any other path the source already maps."""
    rows = list(HUB_FIELDS) + [(f"extended.{n}", n) for n in extended_names]
    known = {path for path, _ in rows}
    rows += [(m["hub"], m["hub"]) for m in values.get("field_map", []) if m.get("hub") not in known]
    return rows


def _rows(form: Mapping[str, Any], prefix: str, keys: tuple[str, ...]) -> list[dict[str, str]]:
    found: dict[int, dict[str, str]] = {}
    for key, value in form.items():
        if not key.startswith(prefix + "."):
            continue
        index, _, field = key[len(prefix) + 1 :].partition(".")
        if index.isdigit() and field in keys:
            found.setdefault(int(index), {})[field] = str(value).strip()
    return [found[i] for i in sorted(found)]


def parse(form: Mapping[str, Any], provider: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Form data → (plain values, credentials typed in)."""
    options: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    for f in option_fields(provider):
        raw = str(form.get(f"opt.{f.name}", "") or "").strip()
        if f.kind == "checkbox":
            options[f.name] = f"opt.{f.name}" in form
        elif f.kind == "secret":
            if raw:
                secrets[f.name] = raw
        elif raw:
            options[f.name] = raw
    field_map = [
        {"hub": r["hub"], "provider": r.get("provider", ""), "match": r.get("match") == "on"}
        for r in _rows(form, "map", ("hub", "provider", "match"))
        if r.get("hub")
    ]
    subs = [
        {"hub": r.get("hub", ""), "provider": r.get("provider", ""), "webform": r.get("webform", "")}
        for r in _rows(form, "sub", ("hub", "provider", "webform"))
        if any(r.values())
    ]
    values = {
        "name": str(form.get("name", "")).strip(),
        "description": str(form.get("description", "")).strip(),
        "node": str(form.get("node", "")),
        "read": "read" in form,
        "write": "write" in form,
        "provider": provider,
        "options": options,
        "field_map": field_map,
        "subs": subs,
        "sync_from": str(form.get("sync_from", "")).strip(),
        "frequency": str(form.get("frequency", "")),
        "debug": "debug" in form,
        "enabled": "enabled" in form,
        "conflict_policy": str(form.get("conflict_policy", ConflictPolicy.NEWEST_WINS.value)),
        "delete_behaviour": str(form.get("delete_behaviour", DeleteBehaviour.IGNORE.value)),
    }
    return values, secrets


def blank(provider: str, node_id: str, redirect_uri: str) -> dict[str, Any]:
    options = {"redirect_uri": redirect_uri} if supports_sign_in(provider) else {}
    return {
        "name": "",
        "description": "",
        "node": node_id,
        "read": True,
        "write": True,
        "provider": provider,
        "options": options,
        "field_map": [],
        "subs": [],
        "sync_from": "",
        "frequency": "15",
        "debug": False,
        "enabled": True,
        "conflict_policy": ConflictPolicy.NEWEST_WINS.value,
        "delete_behaviour": DeleteBehaviour.IGNORE.value,
    }


def from_source(source: Source) -> dict[str, Any]:
    s = source.settings
    matches = set(s.match_keys)
    sync_from = ""
    if s.sync_from is not None:
        sync_from = datetime.fromtimestamp(s.sync_from / 1000, UTC).date().isoformat()
    return {
        "name": source.name,
        "description": source.description,
        "node": source.node_id,
        "read": s.direction.allows("provider"),
        "write": s.direction.allows("hub"),
        "provider": source.provider,
        "options": {k: v for k, v in source.options.items() if v is not None},
        "field_map": [{"hub": m.hub, "provider": m.provider, "match": m.hub in matches} for m in s.field_map],
        "subs": [
            {"hub": m.hub, "provider": m.provider, "webform": m.webform_code or ""}
            for m in s.subscription_map
        ],
        "sync_from": sync_from,
        "frequency": "" if s.frequency_minutes is None else str(s.frequency_minutes),
        "debug": s.debug,
        "enabled": source.enabled,
        "conflict_policy": s.conflict_policy.value,
        "delete_behaviour": s.delete_behaviour.value,
    }


def guess_mapping(values: dict[str, Any], description: Mapping[str, Any]) -> None:
    """First time the provider's fields show: map the email to the provider's email field and
    make it the match field (the user changes it as they like)."""
    if any(m.get("provider") for m in values.get("field_map", [])):
        return
    email = next((f["name"] for f in description.get("fields", []) if f.get("type") == "email"), None)
    if email:
        values["field_map"] = [{"hub": "base.contacts.email", "provider": email, "match": True}]


def _direction(values: Mapping[str, Any]) -> Direction:
    if values.get("read") and values.get("write"):
        return Direction.BOTH
    if values.get("read"):
        return Direction.TO_PROVIDER
    if values.get("write"):
        return Direction.TO_HUB
    raise invalid([FieldProblem("read", "tick read and/or write: the source must sync one way at least")])


def _sync_from(text: str) -> int | None:
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise invalid([FieldProblem("sync_from", f"{text!r} is not a date (YYYY-MM-DD)", "E203")]) from None
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def sync_settings(values: Mapping[str, Any], *, aggregate: bool) -> dict[str, Any]:
    mapped = [m for m in values.get("field_map", []) if m.get("provider")]
    if not mapped:
        raise InputError(
            "map at least one hub field to a provider field (click Show additional fields)",
            code="E811",
            problems=[FieldProblem("map", "no field is mapped", "E811")],
        )
    matches = [m["hub"] for m in mapped if m.get("match")]
    if not matches:
        raise InputError(
            "select one or more matching fields: they locate each record on the provider",
            code="E811",
            problems=[FieldProblem("match", "no match field is ticked", "E811")],
        )
    subs = [] if aggregate else values.get("subs", [])
    frequency = values.get("frequency") or ""
    return {
        "field_map": [{"hub": m["hub"], "provider": m["provider"]} for m in mapped],
        "match_keys": matches,
        "subscription_map": [
            {"hub": s["hub"], "provider": s["provider"], "webform_code": s.get("webform") or None}
            for s in subs
            if s.get("hub") or s.get("provider")
        ],
        "direction": _direction(values).value,
        "sync_from": _sync_from(values.get("sync_from") or ""),
        "frequency_minutes": int(frequency) if frequency.isdigit() else None,
        "debug": bool(values.get("debug")),
        "conflict_policy": values.get("conflict_policy") or ConflictPolicy.NEWEST_WINS.value,
        "delete_behaviour": values.get("delete_behaviour") or DeleteBehaviour.IGNORE.value,
    }


def config(values: Mapping[str, Any], secrets: Mapping[str, str], provider: str) -> dict[str, Any]:
    """The provider config the service takes: options (JSON ones parsed) and credentials."""
    kinds = {f.name: f.kind for f in option_fields(provider)}
    out: dict[str, Any] = {}
    for name, value in (values.get("options") or {}).items():
        if kinds.get(name) == "json" and isinstance(value, str):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                raise invalid([FieldProblem(f"opt.{name}", "not valid JSON", "E100")]) from None
        out[name] = value
    return {**out, **secrets}


def spec(values: Mapping[str, Any], secrets: Mapping[str, str], *, aggregate: bool) -> dict[str, Any]:
    """What :func:`contactsync.sync.sources.create_source` takes."""
    return {
        "name": values.get("name", ""),
        "description": values.get("description", ""),
        "node": values.get("node", ""),
        "provider": values["provider"],
        "config": config(values, secrets, values["provider"]),
        "sync": sync_settings(values, aggregate=aggregate),
        "enabled": bool(values.get("enabled")),
    }
