"""The MailUp-compatible frontend: list mapping, IP allow-list, personal-data fields, and the
subscribe / unsubscribe / check operations behind ``/frontend/xml*.aspx``.

A MailUp ``List`` id names one node and subscription system (ids are unique in the
installation, as in one MailUp console). Calls are allowed only from the addresses on the
allow-list of the list's workspace (MailUp's Manage > Web Services > FrontEnd). The
operations raise domain errors; the interface turns outcomes and errors into MailUp's codes.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection, Row

from contactsync.errors import ConfigError, FieldProblem, ForbiddenError, InputError, NotFoundError, invalid
from contactsync.hub import subscribe as sub
from contactsync.hub.consent import Status
from contactsync.hub.context import WriteContext
from contactsync.hub.schema import BASE_SCHEMA
from contactsync.hub.times import format_time, now_ms
from contactsync.hub.workspaces import load_node, load_workspace
from contactsync.settings import Settings
from contactsync.store import optin as store
from contactsync.store import workspaces as ws_store
from contactsync.store.db import Database

log = logging.getLogger("contactsync.frontend")

ORIGIN = "frontend"

#: MailUp's default personal-data fields of a new console (Settings > Codes table); a console
#: may have renamed them, so each workspace can map codes itself (`contactsync frontend field`).
DEFAULT_FIELDS = {
    "campo1": "base.firstName",
    "campo2": "base.lastName",
    "campo4": "base.address.city",
    "campo5": "base.address.province",
    "campo6": "base.address.zip",
    "campo7": "base.address.region",
    "campo8": "base.address.country",
    "campo9": "base.address.street",
    "campo10": "base.contacts.fax",
    "campo11": "base.contacts.phone",
}


@dataclass(frozen=True)
class Caller:
    ip: str | None
    user_agent: str | None


# --- configuration ----------------------------------------------------------------------------


def _network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise invalid(
            [FieldProblem("network", f"{value!r} is not an IP address or CIDR network", "E709")]
        ) from None


def _list_id(value: Any) -> str:
    text = str(value).strip()
    if not text.isdigit() or len(text) > 18:
        raise invalid([FieldProblem("list", f"{value!r} is not a MailUp list id (an integer)", "E709")])
    return str(int(text))


def _node_id(conn: Connection, workspace_id: str, node: str) -> str:
    """A node by id or by name."""
    found = ws_store.get_node_by_name(conn, workspace_id, node)
    return str(found.id) if found is not None else load_node(conn, workspace_id, node).id


def map_list(
    db: Database,
    workspace_id: str,
    list_id: Any,
    node: str,
    subscription_id: str,
    *,
    list_guid: str | None = None,
    webform_code: str | None = None,
) -> dict[str, Any]:
    """Map (or re-map) a MailUp list id to a node and subscription system."""
    lid = _list_id(list_id)
    (sid,) = sub.checked_subscription_ids([subscription_id], "subscription")
    with db.write() as conn:
        load_workspace(conn, workspace_id)
        node_id = _node_id(conn, workspace_id, node)
        existing = store.get_lists(conn, [lid]).get(lid)
        if existing is not None and existing.workspace_id != workspace_id:
            raise ConfigError(f"list id {lid} is already mapped in another workspace", code="E709")
        row = {
            "list_id": lid,
            "workspace_id": workspace_id,
            "node_id": node_id,
            "subscription_id": sid,
            "list_guid": (list_guid or "").strip().lower() or None,
            "webform_code": webform_code or None,
            "created_at": existing.created_at if existing is not None else now_ms(),
        }
        store.upsert_list(conn, row)
        return _list_json(store.get_lists(conn, [lid])[lid])


def unmap_list(db: Database, workspace_id: str, list_id: Any) -> None:
    lid = _list_id(list_id)
    with db.write() as conn:
        if not store.delete_list(conn, workspace_id, lid):
            raise NotFoundError(f"list id {lid} is not mapped in this workspace", code="E706")


def allow(db: Database, workspace_id: str, network: str, note: str = "") -> tuple[str, bool]:
    """Add an address or network to the allow-list; returns it normalised and whether it is new."""
    net = _network(network)
    with db.write() as conn:
        load_workspace(conn, workspace_id)
        added = store.add_allowed(
            conn, {"workspace_id": workspace_id, "network": net, "note": note[:255], "created_at": now_ms()}
        )
    return net, added


def disallow(db: Database, workspace_id: str, network: str) -> str:
    net = _network(network)
    with db.write() as conn:
        if not store.remove_allowed(conn, workspace_id, net):
            raise NotFoundError(f"{net} is not on the allow-list", code="E120")
    return net


def set_field(db: Database, workspace_id: str, code: str, path: str | None) -> dict[str, str]:
    """Map a personal-data field code (``campo7``) to a customer property path; None: the default."""
    key = code.strip().lower()
    if not key or len(key) > 32:
        raise invalid([FieldProblem("code", f"{code!r} is not a field code such as campo7", "E709")])
    if path is not None:
        _check_path(path)
    with db.write() as conn:
        load_workspace(conn, workspace_id)
        store.set_field(conn, workspace_id, key, path)
        return {**DEFAULT_FIELDS, **store.field_map(conn, workspace_id)}


def _check_path(path: str) -> None:
    parts = path.split(".")
    ok = parts[0] == "extended" and len(parts) > 1 and all(parts)
    if parts[0] == "base" and len(parts) > 1:
        schema: Any = BASE_SCHEMA
        ok = True
        for part in parts[1:]:
            props = schema.get("properties", {}) if isinstance(schema, dict) else {}
            if part not in props or part == "subscriptions":
                ok = False
                break
            schema = props[part]
        ok = ok and "string" in (schema.get("type") or [])
    if not ok:
        raise invalid(
            [FieldProblem("path", f"{path!r} is not a text property (base.… or extended.…)", "E709")]
        )


def configuration(db: Database, workspace_id: str) -> dict[str, Any]:
    """The workspace's frontend configuration: lists, allow-list and fields."""
    with db.read() as conn:
        load_workspace(conn, workspace_id)
        return {
            "lists": [_list_json(r) for r in store.list_lists(conn, workspace_id)],
            "allowedIps": [
                {"network": r.network, "note": r.note, "createdAt": format_time(r.created_at)}
                for r in store.list_allowed(conn, workspace_id)
            ],
            "fields": {**DEFAULT_FIELDS, **store.field_map(conn, workspace_id)},
        }


def _list_json(row: Row[Any]) -> dict[str, Any]:
    return {
        "list": int(row.list_id),
        "nodeId": row.node_id,
        "subscriptionId": row.subscription_id,
        "listGuid": row.list_guid,
        "webformCode": row.webform_code,
    }


# --- the operations ---------------------------------------------------------------------------


def _allowed(ip: str | None, networks: Sequence[str]) -> bool:
    if not ip:
        return False
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in ipaddress.ip_network(n) for n in networks)


def _refused(ip: str | None) -> ForbiddenError:
    return ForbiddenError(f"the address {ip} is not on the frontend allow-list", code="E707")


def resolve(db: Database, list_param: str | None, caller: Caller) -> list[Row[Any]]:
    """The mapped lists of a ``List`` parameter, once the caller's address is allowed for each.

    An address allowed nowhere is refused before the lists are even looked at, so that an
    unregistered caller learns nothing about which list ids exist.
    """
    ids = [p.strip() for p in (list_param or "").split(",") if p.strip()]
    with db.read() as conn:
        everywhere = store.allowed_networks(conn)
        if not _allowed(caller.ip, [n for nets in everywhere.values() for n in nets]):
            raise _refused(caller.ip)
        if not ids:
            raise invalid([FieldProblem("List", "the List parameter is required", "E708")])
        try:
            keys = [_list_id(i) for i in ids]
        except InputError:
            raise NotFoundError(f"list {list_param!r} is not mapped", code="E706") from None
        found = store.get_lists(conn, keys)
    missing = [k for k in keys if k not in found]
    if missing:
        raise NotFoundError(f"list {', '.join(missing)} is not mapped", code="E706")
    rows = [found[k] for k in dict.fromkeys(keys)]
    for row in rows:
        if not _allowed(caller.ip, everywhere.get(row.workspace_id, [])):
            raise _refused(caller.ip)
    return rows


def _guid_checked(row: Row[Any], params: Mapping[str, str]) -> None:
    given = params.get("listguid", "").strip().lower()
    if row.list_guid and given != row.list_guid:
        raise invalid([FieldProblem("ListGuid", "ListGuid does not match the List", "E708")])


def _email(params: Mapping[str, str]) -> str:
    if not params.get("email", "").strip():
        raise invalid(
            [FieldProblem("Email", "the Email parameter is required (Sms alone is not supported)", "E206")]
        )
    return sub.checked_email(params["email"], "Email")


def _profile(conn: Connection, workspace_id: str, params: Mapping[str, str]) -> dict[str, Any]:
    names = (
        [n.strip().lower() for n in params.get("csvfldnames", "").split(";")]
        if params.get("csvfldnames")
        else []
    )
    values = params.get("csvfldvalues", "").split(";") if params.get("csvfldvalues") is not None else []
    if names and len(names) != len(values):
        raise invalid(
            [FieldProblem("csvFldValues", f"{len(names)} field names but {len(values)} values", "E708")]
        )
    fields = {**DEFAULT_FIELDS, **store.field_map(conn, workspace_id)}
    profile: dict[str, Any] = {}
    for name, value in zip(names, values, strict=True):
        path = fields.get(name)
        if path is None:
            log.info(
                "frontend field %s is not mapped; ignored", name, extra={"action": "frontend.field_ignored"}
            )
            continue
        if not value.strip():
            continue
        parts = path.split(".")
        here = profile
        for part in parts[:-1]:
            here = here.setdefault(part, {})
        here[parts[-1]] = value.strip()
    mobile = params.get("sms", "").strip()
    if mobile:
        prefix = params.get("prefix", "").strip()
        profile.setdefault("base", {}).setdefault("contacts", {})["mobilePhone"] = prefix + mobile
    return profile


def _truthy(value: str | None, default: bool) -> bool:
    if value is None or not value.strip():
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _context(row: Row[Any], caller: Caller) -> WriteContext:
    return WriteContext(
        origin=ORIGIN, actor=f"frontend list {row.list_id}", ip=caller.ip, user_agent=caller.user_agent
    )


def subscribe(
    db: Database, settings: Settings, params: Mapping[str, str], caller: Caller
) -> list[sub.Outcome]:
    """xmlSubscribe: subscribe ``Email`` to each ``List`` (double opt-in unless ``Confirm=0``).

    Lists of the same node are subscribed together, with one confirmation email.
    """
    rows = resolve(db, params.get("list"), caller)
    email = _email(params)
    double = _truthy(params.get("confirm"), True)
    language = params.get("lang", "en").strip().lower()[:2]
    groups: dict[tuple[str, str], list[Row[Any]]] = {}
    for row in rows:
        groups.setdefault((row.workspace_id, row.node_id), []).append(row)
    outcomes = []
    for (workspace_id, node_id), lists in groups.items():
        with db.read() as conn:
            profile = _profile(conn, workspace_id, params)
        first = lists[0]
        req = sub.SubscribeRequest(
            node_id=node_id,
            email=email,
            subscription_ids=tuple(r.subscription_id for r in lists),
            profile=profile or None,
            double_opt_in=double,
            webform_code=first.webform_code or f"mailup-list:{first.list_id}",
            language=language,
        )
        outcomes.append(sub.subscribe(db, settings, workspace_id, req, _context(first, caller)))
    return outcomes


def unsubscribe(db: Database, params: Mapping[str, str], caller: Caller) -> sub.Outcome:
    """xmlUnSubscribe: unsubscribe ``Email`` from ``List`` (checked against ``ListGuid``)."""
    row = resolve(db, params.get("list"), caller)[0]
    _guid_checked(row, params)
    email = _email(params)
    return sub.unsubscribe(
        db,
        row.workspace_id,
        row.node_id,
        email,
        [row.subscription_id],
        _context(row, caller),
        reason="FRONTEND_UNSUBSCRIBE",
    )


def check(db: Database, params: Mapping[str, str], caller: Caller) -> Status | None:
    """xmlChkSubscriber: the status of ``Email`` in ``List``; None when it has none."""
    row = resolve(db, params.get("list"), caller)[0]
    _guid_checked(row, params)
    email = _email(params)
    found = sub.status(db, row.workspace_id, row.node_id, email)
    for s in found["subscriptions"]:
        if s["id"] == row.subscription_id:
            return Status(s["status"])
    return None
