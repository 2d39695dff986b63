"""Workspaces and nodes, the matching policy and the extended-properties schema."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy.engine import Connection, Row

from contactsync.errors import (
    ConfigError,
    ConflictError,
    FieldProblem,
    ReadOnlyError,
    invalid,
    not_found,
)
from contactsync.hub.document import CustomerDoc, match_key
from contactsync.hub.ids import new_id
from contactsync.hub.schema import EMPTY_EXTENDED_SCHEMA, check_extended_schema
from contactsync.hub.times import now_ms
from contactsync.store import customers as customer_store
from contactsync.store import workspaces as store
from contactsync.store.db import Database


class UniquenessPolicy(StrEnum):
    NO_CHECK = "NO_CHECK"  # duplicates allowed
    BLOCK = "BLOCK"  # a create that collides answers 409 with the existing id
    MERGE = "MERGE"  # a create that collides updates the existing customer


class NodeKind(StrEnum):
    STANDARD = "standard"
    AGGREGATE = "aggregate"


DEFAULT_MATCHING = ("base.contacts.email",)
MATCHABLE = (
    {"externalId"}
    | {f"base.{p}" for p in ("firstName", "lastName", "dob")}
    | {f"base.contacts.{p}" for p in ("email", "mobilePhone", "phone")}
)


@dataclass(frozen=True)
class Workspace:
    id: str
    name: str
    matching_properties: tuple[str, ...]
    case_sensitive: bool
    uniqueness_policy: UniquenessPolicy
    extended_schema: dict[str, Any] = field(hash=False, compare=False)

    def key_of(self, doc: CustomerDoc) -> str | None:
        if self.uniqueness_policy == UniquenessPolicy.NO_CHECK:
            return None
        return match_key(doc, self.matching_properties, self.case_sensitive)

    def matching_json(self) -> dict[str, Any]:
        return {
            "properties": list(self.matching_properties),
            "caseSensitive": self.case_sensitive,
            "customerUniquenessPolicy": self.uniqueness_policy.value,
        }


@dataclass(frozen=True)
class Node:
    id: str
    workspace_id: str
    name: str
    kind: NodeKind
    members: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workspaceId": self.workspace_id,
            "name": self.name,
            "kind": self.kind.value,
            "members": list(self.members),
        }


def workspace_from_row(row: Row[Any]) -> Workspace:
    return Workspace(
        id=row.id,
        name=row.name,
        matching_properties=tuple(orjson.loads(row.matching_properties)),
        case_sensitive=bool(row.case_sensitive),
        uniqueness_policy=UniquenessPolicy(row.uniqueness_policy),
        extended_schema=orjson.loads(row.extended_schema),
    )


def node_from_row(row: Row[Any]) -> Node:
    return Node(row.id, row.workspace_id, row.name, NodeKind(row.kind), tuple(orjson.loads(row.members)))


def create_workspace(db: Database, name: str, *, workspace_id: str | None = None) -> Workspace:
    row = {
        "id": workspace_id or new_id(),
        "name": name,
        "matching_properties": orjson.dumps(list(DEFAULT_MATCHING)).decode(),
        "case_sensitive": False,
        "uniqueness_policy": UniquenessPolicy.BLOCK.value,
        "extended_schema": orjson.dumps(EMPTY_EXTENDED_SCHEMA).decode(),
        "created_at": now_ms(),
    }
    with db.write() as conn:
        store.insert_workspace(conn, row)
        return workspace_from_row(store.get_workspace(conn, row["id"]))  # type: ignore[arg-type]


def load_workspace(conn: Connection, workspace_id: str) -> Workspace:
    row = store.get_workspace(conn, workspace_id)
    if row is None:
        raise not_found("workspace", workspace_id)
    return workspace_from_row(row)


def get_workspace(db: Database, workspace_id: str) -> Workspace:
    with db.read() as conn:
        return load_workspace(conn, workspace_id)


def list_workspaces(db: Database) -> list[Workspace]:
    with db.read() as conn:
        return [workspace_from_row(r) for r in store.list_workspaces(conn)]


def default_workspace(db: Database) -> Workspace:
    """The installation's workspace (the first one)."""
    found = list_workspaces(db)
    if not found:
        raise ConfigError(
            "no workspace yet: run `contactsync demo` or `contactsync workspace create`", code="E100"
        )
    return found[0]


def set_matching_policy(
    db: Database,
    workspace_id: str,
    *,
    properties: Sequence[str],
    case_sensitive: bool,
    policy: UniquenessPolicy,
) -> Workspace:
    """Change the matching policy and re-key every customer; refused if that makes duplicates."""
    problems = [
        FieldProblem(f"properties.{i}", f"{p!r} cannot identify a customer; use one of {sorted(MATCHABLE)}")
        for i, p in enumerate(properties)
        if p not in MATCHABLE
    ]
    if not properties:
        problems.append(FieldProblem("properties", "at least one property is needed"))
    if problems:
        raise invalid(problems)
    with db.write() as conn:
        store.update_workspace(
            conn,
            workspace_id,
            {
                "matching_properties": orjson.dumps(list(properties)).decode(),
                "case_sensitive": case_sensitive,
                "uniqueness_policy": policy.value,
            },
        )
        ws = load_workspace(conn, workspace_id)
        _rekey(conn, ws)
        return ws


def _rekey(conn: Connection, ws: Workspace) -> None:
    seen: dict[tuple[str, str], str] = {}
    ids: list[dict[str, Any]] = []
    with customer_store.iter_workspace(conn, ws.id) as found:  # streamed; closed on error too
        for r in found:
            key = ws.key_of(CustomerDoc(r.external_id, True, orjson.loads(r.data), None))
            ids.append({"_id": r.id, "key": None})
            if key is None:
                continue
            other = seen.setdefault((r.node_id, key), r.id)
            if other != r.id:
                raise ConflictError(
                    f"customers {other} and {r.id} would share the matching key {key!r}; "
                    "merge or edit them before changing the policy",
                    code="E300",
                    data={"customer": {"id": other}},
                )
    # clear first so that swapping keys between customers cannot trip the unique index
    customer_store.rekey(conn, ids)
    customer_store.rekey(conn, [{"_id": cid, "key": key} for (_, key), cid in seen.items()])


def set_extended_schema(db: Database, workspace_id: str, schema: dict[str, Any]) -> Workspace:
    check_extended_schema(schema)
    with db.write() as conn:
        load_workspace(conn, workspace_id)
        store.update_workspace(conn, workspace_id, {"extended_schema": orjson.dumps(schema).decode()})
        return load_workspace(conn, workspace_id)


def create_node(
    db: Database,
    workspace_id: str,
    name: str,
    *,
    kind: NodeKind = NodeKind.STANDARD,
    members: Sequence[str] = (),
    node_id: str | None = None,
) -> Node:
    if not name.strip():
        raise invalid([FieldProblem("name", "a node needs a name")])
    if kind == NodeKind.STANDARD and members:
        raise invalid([FieldProblem("members", "only aggregate nodes have members")])
    with db.write() as conn:
        load_workspace(conn, workspace_id)
        if store.get_node_by_name(conn, workspace_id, name):
            raise ConflictError(f"a node named {name!r} already exists", code="E300")
        for i, member in enumerate(members):
            found = store.get_node(conn, workspace_id, member)
            if found is None or found.kind != NodeKind.STANDARD:
                raise invalid(
                    [FieldProblem(f"members.{i}", f"{member} is not a standard node of this workspace")]
                )
        row = {
            "id": node_id or new_id(),
            "workspace_id": workspace_id,
            "name": name.strip(),
            "kind": kind.value,
            "members": orjson.dumps(list(members)).decode(),
            "created_at": now_ms(),
        }
        store.insert_node(conn, row)
        return node_from_row(store.get_node(conn, workspace_id, row["id"]))  # type: ignore[arg-type]


def load_node(conn: Connection, workspace_id: str, node_id: str) -> Node:
    row = store.get_node(conn, workspace_id, node_id)
    if row is None:
        raise not_found("node", node_id)
    return node_from_row(row)


def list_nodes(db: Database, workspace_id: str) -> list[Node]:
    with db.read() as conn:
        load_workspace(conn, workspace_id)
        return [node_from_row(r) for r in store.list_nodes(conn, workspace_id)]


def readable_node_ids(node: Node) -> tuple[str, ...]:
    """The nodes whose customers a read of ``node`` sees: itself, or an aggregate's members."""
    return node.members if node.kind == NodeKind.AGGREGATE else (node.id,)


def require_writable(node: Node) -> None:
    if node.kind == NodeKind.AGGREGATE:
        raise ReadOnlyError(
            f"node {node.name!r} is an aggregate node (read-only); write to one of its member nodes",
            code="E101",
        )
