"""The displacer's customer read: the database picks the values out of the documents (one JSON
array per row) instead of Python decoding each document; the cells must be the ones the
decoded document gives, for every kind of value, on SQLite and PostgreSQL."""

# ruff: noqa: F811 - test functions take the imported `ex` fixture as a parameter

from __future__ import annotations

from typing import Any

import orjson

from contactsync.exchange import displacer
from contactsync.hub import customers as hub_customers
from contactsync.hub import workspaces
from contactsync.hub.times import format_time, now_ms
from tests.integration.test_exchange_support import Ex, ex, read_csv  # noqa: F401 - the `ex` fixture

MAPPING = {
    "id": "id",
    "node": "nodeId",
    "ext": "externalId",
    "enabled": "enabled",
    "email": "base.contacts.email",
    "first": "base.firstName",
    "geo": "base.address.geo",
    "lat": "base.address.geo.lat",
    "manual": "tags.manual",
    "score": "extended.score",
    "vip": "extended.vip",
    "prefs": "extended.prefs",
    "deep": "extended.prefs.colour",
    "through_string": "base.firstName.x",
    "missing": "base.lastName",
    "registered": "registeredAt",
    "updated": "updatedAt",
}


def _people(ex: Ex) -> None:
    workspaces.set_extended_schema(
        ex.hub.db,
        ex.hub.workspace_id,
        {
            "type": "object",
            "properties": {
                "score": {"type": "number"},
                "vip": {"type": "boolean"},
                "prefs": {"type": "object"},
            },
        },
    )
    bodies: list[dict[str, Any]] = [
        {
            "externalId": "crm-1",
            "base": {
                "firstName": '=Zoë "quoted" \\ ☃',
                "contacts": {"email": "a@example.com"},
                "address": {"geo": {"lat": 45.5, "lon": 9}},
            },
            "tags": {"manual": ["gold", "[2024]"]},
            "extended": {"score": 12.25, "vip": True, "prefs": {"colour": "blue", "n": [1, 2]}},
        },
        {"base": {"contacts": {"email": "b@example.com"}}, "enabled": False, "extended": {"vip": False}},
    ]
    for body in bodies:
        hub_customers.create(ex.hub.db, ex.hub.workspace_id, {"nodeId": ex.hub.node_id, **body})


def _rows(ex: Ex, mapping: dict[str, str]) -> list[dict[str, str]]:
    name = f"out-{len(list(ex.box.iterdir()))}.csv"
    run = ex.run_one(ex.job("displacer", file=name, mapping=mapping))
    assert run["status"] == "succeeded", run
    return sorted(read_csv(ex.box / name), key=lambda r: r["email"])


def test_database_read_gives_the_cells_of_the_decoded_document(ex: Ex) -> None:
    _people(ex)
    assert displacer.plan_read(list(MAPPING.values())) is not None  # the read under test
    fast = _rows(ex, MAPPING)
    # a subscription column makes the displacer decode each document in Python
    slow = _rows(ex, {**MAPPING, "list": "subscriptions.none"})
    assert displacer.plan_read([*MAPPING.values(), "subscriptions.none"]) is None
    assert fast == [{k: v for k, v in row.items() if k != "list"} for row in slow]

    first, second = fast
    assert first["ext"] == "crm-1" and first["node"] == ex.hub.node_id and first["enabled"] == "true"
    assert first["first"] == '\'=Zoë "quoted" \\ ☃'  # neutralised, characters intact
    assert orjson.loads(first["geo"]) == {"lat": 45.5, "lon": 9} and first["lat"] == "45.5"
    assert first["manual"] == "gold;[2024]"
    assert (first["score"], first["vip"]) == ("12.25", "true")
    assert orjson.loads(first["prefs"]) == {"colour": "blue", "n": [1, 2]} and first["deep"] == "blue"
    assert first["through_string"] == first["missing"] == ""
    assert second["enabled"] == "false" and second["vip"] == "false" and second["manual"] == ""
    by_email = ex.customers()
    assert first["id"] == by_email["a@example.com"]["id"]
    assert first["updated"] == by_email["a@example.com"]["updatedAt"]
    assert first["registered"] == by_email["a@example.com"]["registeredAt"]


def test_database_read_formats_times_and_keeps_one_column_rows(ex: Ex) -> None:
    _people(ex)
    rows = _rows(ex, {"email": "base.contacts.email"})
    assert [r["email"] for r in rows] == ["a@example.com", "b@example.com"]
    plan = displacer.plan_read(["updatedAt"])
    assert plan is not None and plan.columns == ["updated_at"] and plan.paths == []
    assert plan.make((0,)) == (format_time(0),) == ("1970-01-01T00:00:00.000+0000",)
    ms = now_ms()
    assert displacer.plan_read(["registeredAt", "id"]).make((ms, "x")) == (format_time(ms), "x")  # type: ignore[union-attr]


def test_keys_that_are_not_plain_names_take_the_document_path(ex: Ex) -> None:
    assert displacer.plan_read(["extended.a-b"]) is None
    assert displacer.plan_read(["extended.0"]) is None
    assert displacer.plan_read(["subscriptions.1"]) is None


def test_a_node_is_read_alone_whether_it_holds_most_of_the_table_or_little(ex: Ex) -> None:
    _people(ex)
    for email in ("c@example.com", "d@example.com"):
        body = {"nodeId": ex.hub.node_id, "base": {"contacts": {"email": email}}}
        hub_customers.create(ex.hub.db, ex.hub.workspace_id, body)
    other = workspaces.create_node(ex.hub.db, ex.hub.workspace_id, "other")
    hub_customers.create(
        ex.hub.db, ex.hub.workspace_id, {"nodeId": other.id, "base": {"contacts": {"email": "o@example.com"}}}
    )
    mapping = {"email": "base.contacts.email", "node": "nodeId"}
    big = _rows(ex, mapping)  # 4 of 5 customers: on SQLite, one scan of the table
    assert [r["email"] for r in big] == ["a@example.com", "b@example.com", "c@example.com", "d@example.com"]
    assert {r["node"] for r in big} == {ex.hub.node_id}
    # 1 of 5: read through the node's index
    name = "other.csv"
    run = ex.run_one(ex.job("displacer", file=name, mapping=mapping, node=other.id))
    assert run["status"] == "succeeded", run
    assert [(r["email"], r["node"]) for r in read_csv(ex.box / name)] == [("o@example.com", other.id)]
