"""The console's pages over HTTP: customers, the source form and its rules, the sync log, tokens."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from contactsync.connectors import memory
from contactsync.hub import customers as hub_customers
from contactsync.hub.bulk import UpsertMode, upsert_customers
from contactsync.hub.consent import Status
from contactsync.hub.context import WriteContext
from contactsync.store import browse
from contactsync.store.db import Database
from contactsync.store.tables import customers, journal
from tests.conftest import Hub
from tests.integration.test_console_auth import csrf_of, make_user, signed_in

SECRET = "memory-key-s3cret"


@pytest.fixture
def admin(live_server: str, hub: Hub) -> Iterator[httpx.Client]:
    make_user(hub)
    with signed_in(live_server, "ada") as client:
        yield client


def _people(hub: Hub, n: int) -> None:
    rows = [
        {
            "externalId": f"crm-{i}",
            "base": {
                "firstName": f"Name{i:02d}",
                "lastName": "Lovelace" if i == 7 else f"Surname{i:02d}",
                "contacts": {"email": f"person{i:02d}@example.com"},
            },
        }
        for i in range(n)
    ]
    upsert_customers(
        hub.db,
        hub.workspace_id,
        hub.node_id,
        rows,
        ctx=WriteContext(origin="import:job-1"),
        mode=UpsertMode.REPLACE,
    )


def test_customer_search_pages_and_customer_page(hub: Hub, admin: httpx.Client) -> None:
    _people(hub, 30)
    listing = admin.get(f"/nodes/{hub.node_id}")
    assert listing.status_code == 200 and "30 customers" in listing.text
    assert listing.text.count("/customers/") == 25 and 'rel="next"' in listing.text
    second = admin.get(f"/nodes/{hub.node_id}?page=1")
    assert second.text.count("/customers/") == 5 and 'rel="next"' not in second.text

    by_email = admin.get(f"/nodes/{hub.node_id}", params={"q": "PERSON0"})
    assert by_email.text.count("/customers/") == 10
    exact = admin.get(f"/nodes/{hub.node_id}", params={"q": "person07@example.com"})
    assert exact.text.count("/customers/") == 1 and "Lovelace" in exact.text
    by_name = admin.get(f"/nodes/{hub.node_id}", params={"q": "love"})
    assert by_name.text.count("/customers/") == 1 and "person07@example.com" in by_name.text
    first = admin.get(f"/nodes/{hub.node_id}", params={"q": "name07"})  # a first name: the scan
    assert first.text.count("/customers/") == 1 and "person07@example.com" in first.text
    page_one = admin.get(f"/nodes/{hub.node_id}", params={"q": "person"})
    assert page_one.text.count("/customers/") == 25 and 'rel="next"' in page_one.text
    page_two = admin.get(f"/nodes/{hub.node_id}", params={"q": "person", "page": 1})  # still the emails
    assert page_two.text.count("/customers/") == 5 and "person29@example.com" in page_two.text
    none = admin.get(f"/nodes/{hub.node_id}", params={"q": "%"})  # LIKE wildcards are literal
    assert none.text.count("/customers/") == 0 and "No customer matches" in none.text

    cid = re.search(r'href="/customers/([^"]+)"', exact.text)[1]  # type: ignore[index]
    hub_customers.patch(
        hub.db,
        hub.workspace_id,
        cid,
        {"base": {"subscriptions": [{"id": "newsletter", "status": "unsubscribed", "reason": "asked"}]}},
    )
    page = admin.get(f"/customers/{cid}")
    assert page.status_code == 200
    assert "person07@example.com" in page.text and "Lovelace" in page.text
    assert "status-unsubscribed" in page.text  # subscription and its ledger entry
    timeline = page.text.split('id="timeline"')[1]
    assert timeline.index("origin-api") < timeline.index("origin-import")  # newest first: API, then import
    assert admin.get("/customers/nope").status_code == 404


def test_search_and_timeline_use_indexes(sqlite_db: Database) -> None:
    """Email search reads a range of the node/match-key index, last-name search one of the last-name
    index, a timeline the journal's entity index."""

    def plan(conn: sa.Connection, query: sa.Select[Any]) -> str:
        compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
        return " ".join(str(r[3]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))

    by_email = (
        sa.select(customers)
        .where(customers.c.node_id.in_(["n"]), customers.c.match_key >= "ada", customers.c.match_key < "adb")
        .order_by(customers.c.match_key)
    )
    timeline = sa.select(journal.c.seq).where(journal.c.entity_id == "c").order_by(journal.c.seq.desc())
    with sqlite_db.read() as conn:
        last_name = browse._last_name(conn)
        by_name = sa.select(customers).where(
            customers.c.node_id.in_(["n"]), last_name >= "lov", last_name < "lox"
        )
        assert "ix_customers_node_id_last_name (node_id=? AND <expr>>? AND <expr><?)" in plan(conn, by_name)
        assert "uq_customers_node_id_match_key (node_id=? AND match_key>? AND match_key<?)" in plan(
            conn, by_email
        )
        assert "ix_journal_entity_id_seq (entity_id=?)" in plan(conn, timeline)


def _form(admin: httpx.Client, hub: Hub, udb: memory.MemoryUserDb, **extra: str) -> dict[str, str]:
    return {
        "csrf_token": csrf_of(admin, "/sources/new"),
        "provider": "memory",
        "name": "crm",
        "description": "the CRM",
        "node": hub.node_id,
        "read": "on",
        "write": "on",
        "opt.user_db": udb.name,
        "opt.api_key": SECRET,
        "enabled": "on",
        "frequency": "15",
        **extra,
    }


def test_new_source_form_rules_and_masked_credentials(
    live_server: str, hub: Hub, admin: httpx.Client
) -> None:
    udb = memory.user_db(f"console-form-{hub.workspace_id}")
    udb.api_key = SECRET
    fields = admin.post("/sources/new", data=_form(admin, hub, udb, action="fields"))
    assert fields.status_code == 200, fields.text
    assert "E-mail" in fields.text and "Newsletter" in fields.text  # the provider's fields and lists
    assert SECRET not in fields.text and "stored — leave empty to keep" in fields.text
    draft = re.search(r'name="draft" value="([^"]+)"', fields.text)[1]  # type: ignore[index]

    unmatched = _form(admin, hub, udb, action="save", draft=draft, **{"opt.api_key": ""})
    unmatched.update({"map.0.hub": "base.contacts.email", "map.0.provider": "email"})
    refused = admin.post("/sources/new", data=unmatched)
    assert refused.status_code == 400 and "E811" in refused.text and "matching fields" in refused.text

    added = admin.post(
        "/sources/new",
        data={
            **_form(admin, hub, udb, action="add_sub", draft=draft, **{"opt.api_key": ""}),
            "sub.0.hub": "newsletter",
            "sub.0.provider": "news",
        },
    )
    assert 'name="sub.1.hub"' in added.text and 'value="newsletter"' in added.text

    good = {
        **_form(admin, hub, udb, action="save", draft=draft, **{"opt.api_key": ""}),
        "map.0.hub": "base.contacts.email",
        "map.0.provider": "email",
        "map.0.match": "on",
        "map.1.hub": "base.firstName",
        "map.1.provider": "first_name",
        "sub.0.hub": "newsletter",
        "sub.0.provider": "news",
        "sub.0.webform": "WF-1",
    }
    created = admin.post("/sources/new", data=good)
    assert created.status_code == 303, created.text
    source_id = created.headers["location"].split("/")[2]
    settings = admin.get(f"/sources/{source_id}/settings")
    assert SECRET not in settings.text and 'value="WF-1"' in settings.text
    assert 'value="first_name" selected' in settings.text

    other = memory.user_db(f"console-form2-{hub.workspace_id}")
    second = admin.post(
        "/sources/new",
        data={
            **good,
            "csrf_token": csrf_of(admin, "/sources/new"),
            "draft": "",
            "name": "crm2",
            "opt.user_db": other.name,
            "opt.api_key": "memory-key",
        },
    )
    assert second.status_code == 400 and "E400" in second.text and "one source per node" in second.text

    edit = {**good, "csrf_token": csrf_of(admin), "draft": "", "map.1.provider": "last_name"}
    enabled = admin.post(f"/sources/{source_id}/settings", data=edit)
    assert enabled.status_code == 400 and "E401" in enabled.text and "needs it disabled first" in enabled.text
    off = {k: v for k, v in edit.items() if k != "enabled"}  # untick "Enabled", keep the map: allowed
    assert (
        admin.post(f"/sources/{source_id}/settings", data={**off, "map.1.provider": "first_name"}).status_code
        == 303
    )
    changed = admin.post(f"/sources/{source_id}/settings", data={**off, "csrf_token": csrf_of(admin)})
    assert changed.status_code == 303
    assert 'value="last_name" selected' in admin.get(f"/sources/{source_id}/settings").text


def _wait(admin: httpx.Client, run_url: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        fragment = admin.get(run_url + "/progress").text
        if 'data-status="running"' not in fragment:
            return fragment
        time.sleep(0.1)
    raise AssertionError("the run did not finish")


def test_sync_now_log_drill_down_and_csv(hub: Hub, admin: httpx.Client) -> None:
    from tests.integration.test_console_auth import memory_source

    source = memory_source(hub, "crm")
    udb = memory.user_db(f"console-{hub.workspace_id}-crm")
    udb.add({"email": "new@example.com"}, {"news": Status.SUBSCRIBED})
    udb.add({"email": "=cmd@example.com"})
    hub_customers.create(
        hub.db, hub.workspace_id, {"nodeId": hub.node_id, "base": {"contacts": {"email": "hub@example.com"}}}
    )

    started = admin.post(f"/sources/{source.id}/runs", data={"csrf_token": csrf_of(admin)})
    assert started.status_code == 303
    run_url = started.headers["location"]
    page = admin.get(run_url)
    assert page.status_code == 200
    fragment = _wait(admin, run_url)
    assert 'data-status="succeeded"' in fragment

    log = admin.get(f"/sources/{source.id}/log")
    hub_side = log.text.split('id="log-hub"')[1].split("</table>")[0]
    provider_side = log.text.split('id="log-provider"')[1].split("</table>")[0]
    assert "action=created" in hub_side and ">2</a>" in hub_side  # two contacts created in the hub
    assert (
        "action=created" in provider_side and ">1</a>" in provider_side
    )  # one customer created at the provider

    records = admin.get(f"{run_url}/records", params={"side": "hub", "action": "created"})
    assert (
        "new@example.com" in records.text
        and "hub@example.com" not in records.text
        and "Contacts" in records.text
    )
    download = admin.get(f"{run_url}/records.csv", params={"side": "hub", "action": "created"})
    assert download.headers["content-disposition"].startswith("attachment;")
    rows = list(csv.reader(io.StringIO(download.text)))
    assert rows[0][:4] == ["side", "action", "record_name", "source_module"]
    assert sorted(r[2] for r in rows[1:]) == ["'=cmd@example.com", "new@example.com"]  # no formula cells
    assert admin.get(f"{run_url}/records", params={"side": "elsewhere"}).status_code == 400


def test_tokens_are_shown_once_and_revoked(hub: Hub, admin: httpx.Client) -> None:
    created = admin.post(
        "/tokens", data={"csrf_token": csrf_of(admin, "/tokens"), "name": "crm-sync", "role": "user"}
    )
    assert created.status_code == 201
    token = re.search(r'id="token-value" value="([^"]+)"', created.text)[1]  # type: ignore[index]
    assert token.startswith("cs_")
    listing = admin.get("/tokens")
    assert "crm-sync" in listing.text and token not in listing.text and token[:10] in listing.text
    api = httpx.get(
        f"{str(admin.base_url).rstrip('/')}/api/v1/workspaces/{hub.workspace_id}/nodes",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert api.status_code == 200
    row = next(r for r in listing.text.split("<tr>") if "crm-sync" in r)
    token_id = re.search(r'action="/tokens/([^"]+)/revoke"', row)[1]  # type: ignore[index]
    assert admin.post(f"/tokens/{token_id}/revoke", data={"csrf_token": csrf_of(admin)}).status_code == 303
    api = httpx.get(
        f"{str(admin.base_url).rstrip('/')}/api/v1/workspaces/{hub.workspace_id}/nodes",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert api.status_code == 401


def test_service_index_moved_and_health_kept(live_server: str) -> None:
    about = httpx.get(f"{live_server}/about.json")
    assert about.status_code == 200 and about.json()["console"] == "/"
    assert httpx.get(f"{live_server}/healthz").json()["status"] == "ok"
    assert httpx.get(f"{live_server}/").status_code == 303  # the console asks to sign in


def test_webhooks_secret_shown_once_and_admin_only(live_server: str, hub: Hub, admin: httpx.Client) -> None:
    created = admin.post(
        "/webhooks",
        data={
            "csrf_token": csrf_of(admin, "/webhooks"),
            "url": "https://crm.example.com/hooks",
            "events": ["subscription.unsubscribed", "customer.created"],
            "description": "CRM",
        },
    )
    assert created.status_code == 201, created.text
    secret = re.search(r'id="secret-value" value="([^"]+)"', created.text)[1]  # type: ignore[index]
    assert secret.startswith("whsec_")
    listing = admin.get("/webhooks")
    assert "https://crm.example.com/hooks" in listing.text and secret not in listing.text
    assert "subscription.unsubscribed, customer.created" in listing.text
    bad = admin.post("/webhooks", data={"csrf_token": csrf_of(admin, "/webhooks"), "url": "ftp://x"})
    assert bad.status_code == 400 and "E730" in bad.text
    make_user(hub, "ed", "editor")
    with signed_in(live_server, "ed") as editor:
        assert editor.get("/webhooks").status_code == 403
        assert editor.get("/exchange").status_code == 200
        assert editor.get("/exchange/new").status_code == 403
