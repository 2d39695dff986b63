"""The two-way engine against the in-process provider: matching, 3-way merge, consent,
deletes, guards, dry runs and echo suppression, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from contactsync.connectors import memory
from contactsync.errors import ConfigError
from contactsync.hub import customers as hub_customers
from contactsync.hub.consent import Status
from contactsync.secrets import SecretBox, new_key
from contactsync.store import sync as sync_store
from contactsync.sync import sources
from contactsync.sync.engine import RunResult, run_source
from contactsync.sync.sources import Source, SyncEnv
from tests.conftest import Hub

_names = itertools.count()

FIELD_MAP = [
    {"hub": "base.contacts.email", "provider": "email"},
    {"hub": "base.firstName", "provider": "first_name"},
    {"hub": "base.lastName", "provider": "last_name"},
    {"hub": "base.address.city", "provider": "city"},
]


@pytest.fixture
def env(hub: Hub) -> SyncEnv:
    return SyncEnv(hub.db, SecretBox([new_key().encode()]))


@pytest.fixture
def user_db() -> memory.MemoryUserDb:
    return memory.user_db(f"test-{next(_names)}")


def make_source(env: SyncEnv, hub: Hub, udb: memory.MemoryUserDb, **sync: Any) -> Source:
    spec = {
        "name": f"src-{udb.name}",
        "node": hub.node_id,
        "provider": "memory",
        "config": {"user_db": udb.name, "api_key": "memory-key"},
        "sync": {
            "field_map": FIELD_MAP,
            "match_keys": ["base.contacts.email"],
            "subscription_map": [{"hub": "newsletter", "provider": "news", "webform_code": "WF-1"}],
            **sync,
        },
    }
    return sources.create_source(env, hub.workspace_id, spec)


def run(env: SyncEnv, source: Source, **kwargs: Any) -> RunResult:
    result = run_source(env, sources.get_source(env, source.workspace_id, source.id), **kwargs)
    assert result.status == "succeeded", result.error
    return result


def customer(hub: Hub, email: str, **base: Any) -> dict[str, Any]:
    body = {"nodeId": hub.node_id, "base": {"contacts": {"email": email}, **base}}
    return hub_customers.create(hub.db, hub.workspace_id, body)[0]


def hub_by_email(hub: Hub) -> dict[str, dict[str, Any]]:
    page = hub_customers.list_page(hub.db, hub.workspace_id, hub.node_id, size=1000, max_size=1000)
    return {c["base"]["contacts"]["email"]: c for c in page["elements"] if c["base"].get("contacts")}


def sub_status(c: dict[str, Any], sid: str = "newsletter") -> str | None:
    return next((s["status"] for s in c["base"].get("subscriptions", []) if s["id"] == sid), None)


def test_first_sync_both_ways_then_an_idle_run_writes_nothing(
    env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb
) -> None:
    source = make_source(env, hub, user_db)
    customer(
        hub, "ann@example.com", firstName="Ann", subscriptions=[{"id": "newsletter", "subscribed": True}]
    )
    user_db.add(
        {"email": "Bob@Example.com", "first_name": "Bob", "city": "Rome"}, {"news": Status.SUBSCRIBED}
    )

    first = run(env, source)
    assert first.counts.hub.created == 1 and first.counts.provider.created == 1

    people = hub_by_email(hub)
    assert people["bob@example.com"]["base"]["firstName"] == "Bob"
    assert people["bob@example.com"]["base"]["address"]["city"] == "Rome"
    assert sub_status(people["bob@example.com"]) == "subscribed"
    ann_remote = user_db.by_email["ann@example.com"]
    assert user_db.rows[ann_remote].fields["first_name"] == "Ann"
    assert user_db.rows[ann_remote].lists["news"] == Status.SUBSCRIBED

    second = run(env, source)
    third = run(env, source)
    for idle in (second, third):
        c = idle.counts
        assert (c.hub.created, c.hub.updated, c.provider.created, c.provider.updated) == (0, 0, 0, 0)


def test_edits_on_both_sides_merge_per_field(env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb) -> None:
    source = make_source(env, hub, user_db, conflict_policy="hub_wins")
    c = customer(hub, "ann@example.com", firstName="Ann", lastName="Lee")
    run(env, source)
    rid = user_db.by_email["ann@example.com"]

    hub_customers.patch(hub.db, hub.workspace_id, c["id"], {"base": {"firstName": "Anna"}})
    user_db.edit(rid, {"last_name": "Leigh", "city": "Milan"})
    run(env, source)

    now = hub_by_email(hub)["ann@example.com"]["base"]
    assert (now["firstName"], now["lastName"], now["address"]["city"]) == ("Anna", "Leigh", "Milan")
    assert user_db.rows[rid].fields["first_name"] == "Anna"

    # both sides change the same field: the policy decides
    hub_customers.patch(hub.db, hub.workspace_id, c["id"], {"base": {"firstName": "HubName"}})
    user_db.edit(rid, {"first_name": "ProviderName"})
    result = run(env, source)
    assert result.counts.conflicts == 1
    assert hub_by_email(hub)["ann@example.com"]["base"]["firstName"] == "HubName"
    assert user_db.rows[rid].fields["first_name"] == "HubName"


@pytest.mark.parametrize(
    ("policy", "expected"), [("provider_wins", "P"), ("hub_wins", "H"), ("newest_wins", "P")]
)
def test_conflict_policies(
    env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb, policy: str, expected: str
) -> None:
    source = make_source(env, hub, user_db, conflict_policy=policy)
    c = customer(hub, "ann@example.com", firstName="Ann")
    run(env, source)
    rid = user_db.by_email["ann@example.com"]
    hub_customers.patch(hub.db, hub.workspace_id, c["id"], {"base": {"firstName": "H"}})
    user_db.edit(rid, {"first_name": "P"})  # later than the hub's edit: newest wins → P
    run(env, source)
    assert hub_by_email(hub)["ann@example.com"]["base"]["firstName"] == expected
    assert user_db.rows[rid].fields["first_name"] == expected


def test_unsubscribes_travel_both_ways_and_are_never_undone(
    env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb
) -> None:
    source = make_source(env, hub, user_db)
    a = customer(hub, "a@example.com", subscriptions=[{"id": "newsletter", "subscribed": True}])
    customer(hub, "b@example.com", subscriptions=[{"id": "newsletter", "subscribed": True}])
    run(env, source)
    ra, rb = user_db.by_email["a@example.com"], user_db.by_email["b@example.com"]

    # a unsubscribes in the hub, b at the provider
    hub_customers.patch(
        hub.db,
        hub.workspace_id,
        a["id"],
        {"base": {"subscriptions": [{"id": "newsletter", "subscribed": False}]}},
    )
    user_db.edit(rb, lists={"news": Status.UNSUBSCRIBED})
    run(env, source)
    assert user_db.rows[ra].lists["news"] == Status.UNSUBSCRIBED
    assert sub_status(hub_by_email(hub)["b@example.com"]) == "unsubscribed"

    # the provider resubscribes b (an import there, say): automatic, so refused, and pushed back
    user_db.edit(rb, lists={"news": Status.SUBSCRIBED})
    result = run(env, source)
    assert sub_status(hub_by_email(hub)["b@example.com"]) == "unsubscribed"
    assert user_db.rows[rb].lists["news"] == Status.UNSUBSCRIBED
    with env.db.read() as conn:
        records = sync_store.run_records_page(conn, result.run_id, after_id=0, limit=100)
    assert any(r.code == "E301" for r in records)

    # an unsubscribe on one side and a resubscribe on the other in the same run: opt-out wins
    hub_customers.patch(
        hub.db,
        hub.workspace_id,
        a["id"],
        {"base": {"subscriptions": [{"id": "newsletter", "status": "unsubscribed"}]}},
    )
    user_db.edit(ra, lists={"news": Status.SUBSCRIBED})
    run(env, source)
    assert sub_status(hub_by_email(hub)["a@example.com"]) == "unsubscribed"
    assert user_db.rows[ra].lists["news"] == Status.UNSUBSCRIBED
    ledger = hub_customers.consent_ledger(hub.db, hub.workspace_id, hub_by_email(hub)["b@example.com"]["id"])
    assert any(e.get("webformCode") == "WF-1" for e in ledger)


@pytest.mark.parametrize("behaviour", ["ignore", "unsubscribe", "archive", "delete"])
def test_provider_deletes_follow_the_delete_behaviour(
    env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb, behaviour: str
) -> None:
    source = make_source(env, hub, user_db, delete_behaviour=behaviour)
    customer(hub, "a@example.com", subscriptions=[{"id": "newsletter", "subscribed": True}])
    run(env, source)
    user_db.remove(user_db.by_email["a@example.com"])
    run(env, source)
    people = hub_by_email(hub)
    if behaviour == "delete":
        assert people == {}
        return
    a = people["a@example.com"]
    assert sub_status(a) == ("unsubscribed" if behaviour == "unsubscribe" else "subscribed")
    assert a["enabled"] is (behaviour != "archive")


def test_hub_deletes_reach_the_provider(env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb) -> None:
    source = make_source(env, hub, user_db, delete_behaviour="delete")
    a = customer(hub, "a@example.com")
    run(env, source)
    rid = user_db.by_email["a@example.com"]
    hub_customers.delete(hub.db, hub.workspace_id, a["id"])
    result = run(env, source)
    assert result.counts.provider.deleted == 1
    assert rid not in user_db.live()


def test_guard_stops_a_mass_delete_before_writing(
    env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb
) -> None:
    source = make_source(env, hub, user_db, delete_behaviour="delete")
    for i in range(40):
        customer(hub, f"p{i}@example.com")
    run(env, source)
    for rid in list(user_db.live())[:20]:
        user_db.remove(rid)
    result = run_source(env, sources.get_source(env, hub.workspace_id, source.id))
    assert result.status == "stopped" and result.error_code == "E405"
    assert len(hub_by_email(hub)) == 40


def test_dry_run_plans_and_writes_nothing(env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb) -> None:
    source = make_source(env, hub, user_db)
    customer(hub, "a@example.com", firstName="A")
    user_db.add({"email": "b@example.com", "first_name": "B"})
    result = run(env, source, dry_run=True)
    assert result.counts.hub.created == 1 and result.counts.provider.created == 1
    assert result.plan is not None and len(result.plan["samples"]) == 2
    assert set(hub_by_email(hub)) == {"a@example.com"}
    assert len(user_db.live()) == 1
    # and the real run after it still does everything
    real = run(env, source)
    assert real.counts.hub.created == 1 and real.counts.provider.created == 1


def test_ambiguous_and_incomplete_records_are_skipped_with_a_code(
    env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb
) -> None:
    source = make_source(env, hub, user_db, match_keys=["base.lastName", "base.contacts.email"])
    customer(hub, "a@example.com", lastName="Rossi")
    customer(hub, "b@example.com", lastName="Rossi")
    user_db.add({"email": "c@example.com", "last_name": "Rossi"})
    hub_customers.create(hub.db, hub.workspace_id, {"nodeId": hub.node_id, "base": {"lastName": "Verdi"}})
    result = run(env, source)
    with env.db.read() as conn:
        records = sync_store.run_records_page(conn, result.run_id, after_id=0, limit=100)
    codes = {r.code for r in records if r.action == "skipped"}
    # c matches two Rossi in the hub, and a and b share their first match value: not guessed
    assert "E421" in codes
    assert "E420" in codes  # Verdi has no email, which the provider requires
    assert "c@example.com" not in hub_by_email(hub)
    assert len(user_db.live()) == 1 and user_db.rows["m1"].fields["email"] == "c@example.com"


def test_one_source_per_node_and_one_node_per_user_db(
    env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb
) -> None:
    make_source(env, hub, user_db)
    with pytest.raises(ConfigError) as e:
        make_source(env, hub, memory.user_db(f"other-{next(_names)}"))
    assert e.value.code == "E400"


def test_source_credentials_are_sealed_and_masked(
    env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb
) -> None:
    user_db.api_key = "s3cret-key"
    spec = {
        "name": "sealed",
        "node": hub.node_id,
        "provider": "memory",
        "config": {"user_db": user_db.name, "api_key": "s3cret-key"},
        "sync": {"field_map": FIELD_MAP[:1], "match_keys": ["base.contacts.email"]},
    }
    source = sources.create_source(env, hub.workspace_id, spec)
    assert "s3cret" not in str(source.as_json())
    with env.db.read() as conn:
        row = sync_store.get_source(conn, hub.workspace_id, source.id)
    assert row is not None and "s3cret" not in row.secrets and "s3cret" not in row.options


def test_consent_writes_are_recorded_with_the_source_as_origin(
    env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb
) -> None:
    source = make_source(env, hub, user_db)
    user_db.add({"email": "b@example.com"}, {"news": Status.SUBSCRIBED})
    run(env, source)
    b = hub_by_email(hub)["b@example.com"]
    ledger = hub_customers.consent_ledger(hub.db, hub.workspace_id, b["id"])
    assert ledger and ledger[0]["origin"] == f"sync:{source.id}"


# --- seed 000's table: what a change to a source needs -----------------------------------------


def _other_node(hub: Hub, name: str) -> str:
    from contactsync.hub import workspaces

    return workspaces.create_node(hub.db, hub.workspace_id, name).id


def _refused(env: SyncEnv, hub: Hub, source: Source, changes: dict[str, Any], code: str) -> None:
    with pytest.raises(ConfigError) as e:
        sources.update_source(env, hub.workspace_id, source.id, changes)
    assert e.value.code == code, e.value.message


def test_changing_the_node_needs_it_disabled_and_both_nodes_empty(
    env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb
) -> None:
    source = make_source(env, hub, user_db)
    new_node = _other_node(hub, "new")
    _refused(env, hub, source, {"node": new_node}, "E401")
    sources.update_source(env, hub.workspace_id, source.id, {"enabled": False})
    customer(hub, "a@example.com")
    _refused(env, hub, source, {"node": new_node}, "E402")  # the current node is not empty
    hub_customers.delete(hub.db, hub.workspace_id, hub_by_email(hub)["a@example.com"]["id"])
    hub_customers.create(
        hub.db, hub.workspace_id, {"nodeId": new_node, "base": {"contacts": {"email": "b@x.it"}}}
    )
    _refused(env, hub, source, {"node": new_node}, "E402")  # the new node is not empty
    third = _other_node(hub, "third")
    assert sources.update_source(env, hub.workspace_id, source.id, {"node": third}).node_id == third


def test_changing_credentials_needs_it_disabled(env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb) -> None:
    source = make_source(env, hub, user_db)
    customer(hub, "a@example.com")
    user_db.api_key = "rotated"
    _refused(env, hub, source, {"config": {"api_key": "rotated"}}, "E401")
    sources.update_source(env, hub.workspace_id, source.id, {"enabled": False})
    # same user DB: a node with customers is fine (our deviation from the seed, see sync/sources.py)
    changed = sources.update_source(env, hub.workspace_id, source.id, {"config": {"api_key": "rotated"}})
    assert changed.secrets["api_key"] == "rotated"


def test_changing_the_user_db_needs_it_disabled_the_node_and_the_new_user_db_empty(
    env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb
) -> None:
    source = make_source(env, hub, user_db)
    other = memory.user_db(f"other-{next(_names)}")
    change = {"config": {"user_db": other.name}}
    _refused(env, hub, source, change, "E401")
    sources.update_source(env, hub.workspace_id, source.id, {"enabled": False})
    c = customer(hub, "a@example.com")
    _refused(env, hub, source, change, "E402")
    hub_customers.delete(hub.db, hub.workspace_id, c["id"])
    rid = other.add({"email": "z@example.com"})
    _refused(env, hub, source, change, "E403")
    other.remove(rid)
    assert sources.update_source(env, hub.workspace_id, source.id, change).user_db == f"memory:{other.name}"


def test_changing_node_and_user_db_together(env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb) -> None:
    source = make_source(env, hub, user_db)
    sources.update_source(env, hub.workspace_id, source.id, {"enabled": False})
    other = memory.user_db(f"other-{next(_names)}")
    new_node = _other_node(hub, "new")
    hub_customers.create(
        hub.db, hub.workspace_id, {"nodeId": new_node, "base": {"contacts": {"email": "b@x.it"}}}
    )
    _refused(env, hub, source, {"node": new_node, "config": {"user_db": other.name}}, "E402")
    empty = _other_node(hub, "empty")
    moved = sources.update_source(
        env, hub.workspace_id, source.id, {"node": empty, "config": {"user_db": other.name}}
    )
    assert (moved.node_id, moved.user_db) == (empty, f"memory:{other.name}")


@pytest.mark.parametrize(
    "change",
    [
        {"sync": {"subscription_map": [{"hub": "newsletter", "provider": "offers"}]}},
        {"sync": {"field_map": FIELD_MAP[:2]}},
    ],
    ids=["subscription map", "field map"],
)
def test_changing_the_maps_needs_it_disabled(
    env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb, change: dict[str, Any]
) -> None:
    source = make_source(env, hub, user_db)
    customer(hub, "a@example.com")
    _refused(env, hub, source, change, "E401")
    sources.update_source(env, hub.workspace_id, source.id, {"enabled": False})
    sources.update_source(env, hub.workspace_id, source.id, change)  # a non-empty node is fine here


def test_aggregate_nodes_get_no_subscription_sync(
    env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb
) -> None:
    from contactsync.hub import workspaces
    from contactsync.hub.workspaces import NodeKind

    agg = workspaces.create_node(
        hub.db, hub.workspace_id, "all", kind=NodeKind.AGGREGATE, members=[hub.node_id]
    )
    spec = {
        "name": "agg",
        "node": agg.id,
        "provider": "memory",
        "config": {"user_db": user_db.name},
        "sync": {
            "field_map": FIELD_MAP,
            "match_keys": ["base.contacts.email"],
            "subscription_map": [{"hub": "newsletter", "provider": "news"}],
            "direction": "to_provider",
        },
    }
    with pytest.raises(ConfigError) as e:
        sources.create_source(env, hub.workspace_id, spec)
    assert e.value.code == "E400" and "subscriptions" in e.value.message
