"""The Mailchimp sandbox checked with Mailchimp's official Python client, and the connector's
behaviour beyond the shared contract: compliance state, batches, the connection cap, faults,
webhooks, deletes.

**Client-library check.** Mailchimp publishes ``mailchimp-marketing`` (PyPI; generated from its
OpenAPI spec, a dev dependency). It builds ``https://{server}.api.mailchimp.com/3.0`` from its
``host`` attribute; the only change here is ``client.api_client.host`` set to the served
sandbox's ``/3.0`` address. Everything else — Basic auth with the API key, paths, query
parameters, JSON bodies, its error handling (``ApiClientError`` with the problem detail) — is
the library's own.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import httpx
import mailchimp_marketing
import pytest
import requests
from mailchimp_marketing.api_client import ApiClientError

from contactsync.connectors import registry
from contactsync.connectors.base import ConnectorContext, WriteItem
from contactsync.connectors.mailchimp import MailchimpConnector
from contactsync.errors import AuthError, ConfigError
from contactsync.hub.consent import Status
from contactsync.sandbox.mailchimp import MailchimpSandbox, ManualClock, read_archive, subscriber_hash


@dataclass
class Receiver:
    """A webhook endpoint on loopback: answers GET 200 (Mailchimp's check), records POSTs."""

    url: str
    posts: list[dict[str, str]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
            got.posts.append(dict(parse_qsl(body, keep_blank_values=True)))
            got.content_types.append(self.headers.get("content-type", ""))
            self.do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    got.url = f"http://127.0.0.1:{server.server_address[1]}/hook?token=s3cret"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield got
    server.shutdown()
    server.server_close()


@pytest.fixture
def sandbox() -> Iterator[MailchimpSandbox]:
    box = MailchimpSandbox()
    yield box
    box.close()


@pytest.fixture
def client(sandbox: MailchimpSandbox) -> Iterator[mailchimp_marketing.Client]:
    with sandbox.serve() as served:
        mc = mailchimp_marketing.Client()
        mc.set_config({"api_key": sandbox.api_key, "server": sandbox.dc})
        mc.api_client.host = served.api_url
        yield mc


def _problem(raised: pytest.ExceptionInfo[ApiClientError]) -> dict[str, Any]:
    """The problem detail of an error. Mailchimp answers errors as ``application/problem+json``,
    which the client does not recognise as JSON: it hands over the text."""
    text = raised.value.text
    if isinstance(text, str):
        text = json.loads(text)
    assert isinstance(text, dict), text
    assert {"type", "title", "status", "detail", "instance"} <= set(text)
    return text


# -- the official client against the sandbox ------------------------------------------------


def test_official_client_ping_lists_and_merge_fields(client: mailchimp_marketing.Client) -> None:
    assert client.ping.get() == {"health_status": "Everything's Chimpy!"}
    created = client.lists.create_list({"name": "Customers", "permission_reminder": "You signed up."})
    lists = client.lists.get_all_lists()
    assert [x["id"] for x in lists["lists"]] == [created["id"]] and lists["total_items"] == 1
    assert client.lists.get_list(created["id"])["name"] == "Customers"
    tags = [f["tag"] for f in client.lists.get_list_merge_fields(created["id"])["merge_fields"]]
    assert tags == ["FNAME", "LNAME", "ADDRESS", "PHONE", "BIRTHDAY"]
    field_ = client.lists.add_list_merge_field(created["id"], {"name": "Plan", "type": "text", "tag": "PLAN"})
    assert client.lists.get_list_merge_field(created["id"], field_["merge_id"])["tag"] == "PLAN"
    with pytest.raises(ApiClientError) as raised:
        client.lists.get_list("nope")
    assert raised.value.status_code == 404 and _problem(raised)["title"] == "Resource Not Found"


def test_official_client_members_upsert_list_update_archive(
    client: mailchimp_marketing.Client, sandbox: MailchimpSandbox
) -> None:
    lid = sandbox.create_list("News")
    ann = "Ann@Example.com"
    member = client.lists.set_list_member(
        lid,
        subscriber_hash(ann),
        {"email_address": ann, "status_if_new": "subscribed", "merge_fields": {"FNAME": "Ann"}},
    )
    assert member["id"] == subscriber_hash("ann@example.com") and member["status"] == "subscribed"
    again = client.lists.set_list_member(  # an upsert: status_if_new is ignored for an existing member
        lid,
        member["id"],
        {"email_address": ann, "status_if_new": "pending", "merge_fields": {"LNAME": "Lee"}},
    )
    assert again["contact_id"] == member["contact_id"] and again["status"] == "subscribed"
    assert again["merge_fields"]["FNAME"] == "Ann" and again["merge_fields"]["LNAME"] == "Lee"
    got = client.lists.get_list_member(lid, "ann@example.com")  # the address works in place of the hash
    assert got["contact_id"] == member["contact_id"]
    since = got["last_changed"]
    client.lists.add_list_member(lid, {"email_address": "bob@example.com", "status": "pending"})
    page = client.lists.get_list_members_info(lid, since_last_changed=since, count=1000)
    assert page["total_items"] == 0  # nothing changed after Ann's last change (same second)
    page = client.lists.get_list_members_info(lid, count=1000)
    assert sorted(m["email_address"] for m in page["members"]) == ["Ann@Example.com", "bob@example.com"]
    assert client.lists.get_list_members_info(lid, status="pending")["total_items"] == 1
    updated = client.lists.update_list_member(lid, member["id"], {"status": "unsubscribed"})
    assert updated["status"] == "unsubscribed"
    client.lists.delete_list_member(lid, member["id"])  # archive
    assert client.lists.get_list_member(lid, member["id"])["status"] == "archived"
    assert client.lists.get_list_members_info(lid, status="archived")["total_items"] == 1
    assert client.lists.get_list_members_info(lid)["total_items"] == 1
    client.lists.delete_list_member_permanent(lid, subscriber_hash("bob@example.com"))
    with pytest.raises(ApiClientError) as raised:
        client.lists.add_list_member(lid, {"email_address": "bob@example.com", "status": "subscribed"})
    assert _problem(raised)["title"] == "Forgotten Email Not Subscribed"


def test_official_client_compliance_state(
    client: mailchimp_marketing.Client, sandbox: MailchimpSandbox
) -> None:
    lid = sandbox.create_list("News")
    [cid] = sandbox.seed_members(lid, [{"email_address": "cy@example.com"}])
    sandbox.unsubscribe(lid, cid)  # the person clicks "unsubscribe"
    for call in (
        lambda: client.lists.update_list_member(lid, cid, {"status": "subscribed"}),
        lambda: client.lists.set_list_member(
            lid,
            subscriber_hash("cy@example.com"),
            {"email_address": "cy@example.com", "status": "subscribed"},
        ),
    ):
        with pytest.raises(ApiClientError) as raised:
            call()
        problem = _problem(raised)
        assert raised.value.status_code == 400 and problem["title"] == "Member In Compliance State"
    assert client.lists.update_list_member(lid, cid, {"status": "pending"})["status"] == "pending"
    assert sandbox.confirmations == ["cy@example.com"]
    sandbox.confirm(lid, cid)  # the person clicks the confirmation link
    assert client.lists.get_list_member(lid, cid)["status"] == "subscribed"


def test_official_client_webhooks_and_delivery(
    client: mailchimp_marketing.Client, sandbox: MailchimpSandbox, receiver: Receiver
) -> None:
    lid = sandbox.create_list("News")
    hook = client.lists.create_list_webhook(
        lid,
        {
            "url": receiver.url,
            "events": {
                "subscribe": True,
                "unsubscribe": True,
                "profile": True,
                "upemail": True,
                "cleaned": True,
            },
            "sources": {"user": True, "admin": True, "api": False},
        },
    )
    assert client.lists.get_list_webhooks(lid)["webhooks"][0]["id"] == hook["id"]
    assert client.lists.get_list_webhook(lid, hook["id"])["sources"]["api"] is False
    client.lists.add_list_member(lid, {"email_address": "api@example.com", "status": "subscribed"})
    [cid] = sandbox.seed_members(
        lid, [{"email_address": "dee@example.com", "merge_fields": {"FNAME": "Dee"}}]
    )
    sandbox.unsubscribe(lid, cid)
    sandbox.edit(lid, cid, email_address="dee.new@example.com")
    sandbox.clean(lid, cid)
    delivered = sandbox.webhooks.wait(4)
    assert [d.type for d in delivered] == ["subscribe", "unsubscribe", "upemail", "cleaned"]  # no API event
    assert all(t == "application/x-www-form-urlencoded" for t in receiver.content_types)
    sub, unsub, upemail, cleaned = receiver.posts
    assert sub["data[email]"] == "dee@example.com" and sub["data[merges][FNAME]"] == "Dee"
    assert sub["data[list_id]"] == lid and sub["data[email_type]"] == "html" and sub["data[id]"]
    assert len(sub["fired_at"]) == 19 and sub["fired_at"][10] == " "
    assert unsub["data[action]"] == "unsub" and unsub["data[reason]"] == "manual"
    assert (upemail["data[old_email]"], upemail["data[new_email]"]) == (
        "dee@example.com",
        "dee.new@example.com",
    )
    assert cleaned["data[reason]"] == "hard" and cleaned["data[email]"] == "dee.new@example.com"
    client.lists.update_list_webhook(lid, hook["id"], {"sources": {"api": True}})
    client.lists.update_list_member(lid, "api@example.com", {"merge_fields": {"FNAME": "Api"}})
    [profile] = [d for d in sandbox.webhooks.wait(5) if d.type == "profile"]
    assert profile.form["data[merges][FNAME]"] == "Api"
    client.lists.delete_list_webhook(lid, hook["id"])
    assert client.lists.get_list_webhooks(lid)["total_items"] == 0
    with pytest.raises(ApiClientError) as raised:  # Mailchimp checks the URL with a GET first
        client.lists.create_list_webhook(lid, {"url": "http://127.0.0.1:9/nothing-listens"})
    assert _problem(raised)["title"] == "Invalid Resource"


def test_official_client_batches(client: mailchimp_marketing.Client, sandbox: MailchimpSandbox) -> None:
    lid = sandbox.create_list("News")
    operations = [
        {
            "method": "POST",
            "path": f"/lists/{lid}/members",
            "operation_id": f"op{n}",
            "body": f'{{"email_address": "b{n}@example.com", "status": "subscribed"}}',
        }
        for n in range(3)
    ] + [
        {"method": "POST", "path": f"/lists/{lid}/members", "operation_id": "bad", "body": '{"status": "x"}'}
    ]
    batch = client.batches.start({"operations": operations})
    assert batch["status"] == "pending" and batch["total_operations"] == 4
    seen = [batch["status"]]
    while batch["status"] != "finished":
        batch = client.batches.status(batch["id"])
        seen.append(batch["status"])
    assert seen == ["pending", "preprocessing", "started", "finalizing", "finished"]
    assert (batch["finished_operations"], batch["errored_operations"]) == (4, 1)
    assert [b["id"] for b in client.batches.list()["batches"]] == [batch["id"]]
    results = {
        r["operation_id"]: r
        for r in read_archive(requests.get(batch["response_body_url"], timeout=10).content)
    }
    assert results["op0"]["status_code"] == 200 and "b0@example.com" in results["op0"]["response"]
    assert results["bad"]["status_code"] == 400
    assert len(sandbox.members(lid)) == 3


def test_official_client_wrong_key_and_datacenter(sandbox: MailchimpSandbox) -> None:
    with sandbox.serve() as served:
        mc = mailchimp_marketing.Client()
        mc.set_config({"api_key": "0" * 32 + "-us19"})
        mc.api_client.host = served.api_url
        with pytest.raises(ApiClientError) as raised:
            mc.ping.get()
        assert raised.value.status_code == 401 and _problem(raised)["title"] == "API Key Invalid"
    with httpx.Client(transport=sandbox.transport()) as http:
        wrong = http.get("https://us7.api.mailchimp.com/3.0/ping", auth=("any", sandbox.api_key))
        assert wrong.status_code == 403 and wrong.json()["title"] == "Wrong Datacenter"
        bearer = http.get(
            f"https://{sandbox.dc}.api.mailchimp.com/3.0/ping",
            headers={"authorization": f"Bearer {sandbox.api_key}"},
        )
        assert bearer.status_code == 200


# -- the connector ----------------------------------------------------------------------------


@dataclass
class Env:
    sandbox: MailchimpSandbox
    clock: ManualClock
    list_id: str
    clients: list[httpx.Client] = field(default_factory=list)

    def connector(self, **overrides: Any) -> MailchimpConnector:
        client = httpx.Client(transport=self.sandbox.transport())
        self.clients.append(client)
        ctx = ConnectorContext(http=client, sleep=self.clock.sleep, clock=self.clock.monotonic)
        values = {"api_key": self.sandbox.api_key, "list_id": self.list_id} | overrides
        provider = registry.get("mailchimp")
        conn = provider.create(provider.parse_config(values), ctx)
        assert isinstance(conn, MailchimpConnector)
        return conn


@pytest.fixture
def env() -> Iterator[Env]:
    clock = ManualClock()
    box = MailchimpSandbox(now=clock.now, seed=3)
    environment = Env(box, clock, box.create_list("News"))
    yield environment
    for client in environment.clients:
        client.close()
    box.close()


def subscriber(n: int, status: Status | None = Status.SUBSCRIBED, list_id: str = "") -> WriteItem:
    email = f"p{n}@example.com"
    lists = {list_id: status} if status is not None else {}
    return WriteItem(
        f"hub-{n}", None, {"email_address": email, "FNAME": f"P{n}"}, {"email_address": email}, lists
    )


def test_settings_errors(env: Env) -> None:
    with pytest.raises(ConfigError) as raised:
        env.connector(api_key="no-data-center-suffix!").check()
    assert raised.value.code == "E740"
    with pytest.raises(ConfigError) as raised:
        env.connector(list_id="0000000000").check()
    assert raised.value.code == "E741"
    with pytest.raises(AuthError):
        env.connector(api_key="f" * 32 + "-us19").describe()


def test_a_resubscribe_after_an_unsubscribe_becomes_pending_with_e742(env: Env) -> None:
    conn = env.connector()
    [first] = conn.write([subscriber(1, list_id=env.list_id)])
    assert first.problem is None and first.remote_id is not None
    env.sandbox.unsubscribe(env.list_id, first.remote_id)
    again = WriteItem("hub-1", first.remote_id, {"FNAME": "Back"}, {}, {env.list_id: Status.SUBSCRIBED})
    [result] = conn.write([again])
    assert result.problem is not None and result.problem.code == "E742" and not result.problem.retryable
    assert "pending" in result.problem.message and result.remote_id == first.remote_id
    member = env.sandbox.member(env.list_id, first.remote_id)
    assert member is not None and member["status"] == "pending" and member["merge_fields"]["FNAME"] == "Back"
    assert env.sandbox.confirmations == ["p1@example.com"]
    assert result.record is not None and result.record.lists == {env.list_id: Status.PENDING}
    env.sandbox.clean(env.list_id, first.remote_id)  # a bounce: not even pending
    [bounced] = conn.write([again])
    assert bounced.problem is not None and bounced.problem.code == "E742"
    member = env.sandbox.member(env.list_id, first.remote_id)
    assert member is not None and member["status"] == "cleaned"


def test_pending_and_transactional_members_are_subscribed(env: Env) -> None:
    conn = env.connector()
    ids = env.sandbox.seed_members(
        env.list_id,
        [
            {"email_address": "p1@example.com", "status": "pending"},
            {"email_address": "p2@example.com", "status": "transactional"},
        ],
    )
    results = conn.write([subscriber(1, list_id=env.list_id), subscriber(2, list_id=env.list_id)])
    assert [(r.problem, r.remote_id, r.created) for r in results] == [
        (None, ids[0], False),
        (None, ids[1], False),
    ]
    assert [m["status"] for m in env.sandbox.members(env.list_id)] == ["subscribed", "subscribed"]


def test_an_address_change_keeps_the_remote_id(env: Env) -> None:
    conn = env.connector()
    [created] = conn.write([subscriber(1, list_id=env.list_id)])
    assert created.remote_id is not None
    moved = WriteItem("hub-1", created.remote_id, {"email_address": "new@example.com"}, {})
    [result] = conn.write([moved])
    assert result.problem is None and result.remote_id == created.remote_id
    [record] = conn.fetch([created.remote_id])
    assert record.fields["email_address"] == "new@example.com"
    by_email = conn.fetch(["NEW@example.com", subscriber_hash("new@example.com"), "gone@example.com"])
    assert [r.remote_id for r in by_email] == [created.remote_id]  # one record, under its contact id


def test_delete_modes(env: Env) -> None:
    conn = env.connector()
    ids = [r.remote_id for r in conn.write([subscriber(n, list_id=env.list_id) for n in range(2)])]
    assert all(ids)
    assert [r.problem for r in conn.delete([str(ids[0])])] == [None]
    archived = env.sandbox.member(env.list_id, str(ids[0]), include_archived=True)
    assert archived is not None and archived["status"] == "archived"
    assert conn.fetch([str(ids[0])]) == []
    permanent = env.connector(delete_mode="permanent")
    assert [r.problem for r in permanent.delete([str(ids[1]), str(ids[1])])] == [None, None]
    assert env.sandbox.member(env.list_id, str(ids[1]), include_archived=True) is None
    [refused] = conn.write([subscriber(1, list_id=env.list_id)])
    assert refused.problem is not None and refused.problem.code == "E744"


def test_large_writes_go_through_a_batch(env: Env) -> None:
    conn = env.connector(bulk_threshold=50)
    env.sandbox.seed_members(env.list_id, [{"email_address": "p3@example.com", "status": "unsubscribed"}])
    items = [subscriber(n, list_id=env.list_id) for n in range(60)]
    results = conn.write(items)
    batches = [r for r in env.sandbox.api_requests() if r.method == "POST" and r.path == "/3.0/batches"]
    assert len(batches) == 1
    assert [r.key for r in results] == [i.key for i in items]
    assert sum(r.created for r in results) == 59
    problems = {r.key: r.problem.code for r in results if r.problem}
    assert problems == {"hub-3": "E742"}  # the existing unsubscribed member went one by one
    assert len(env.sandbox.members(env.list_id)) == 60
    member = env.sandbox.member(env.list_id, "p3@example.com")
    assert member is not None and member["status"] == "pending"


def test_the_connection_cap_is_never_exceeded(env: Env) -> None:
    env.sandbox.latency = 0.02  # requests overlap for real
    conn = env.connector(concurrency=10)
    other = env.connector(concurrency=10)  # a second connector of the same key shares the 10 slots
    items = [subscriber(n, list_id=env.list_id) for n in range(40)]
    threads = [threading.Thread(target=c.write, args=(items[k::2],)) for k, c in enumerate((conn, other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert env.sandbox.refused_connections == 0
    assert 1 < env.sandbox.max_in_flight <= 10
    assert len(env.sandbox.members(env.list_id)) == 40


def test_the_sandbox_refuses_an_eleventh_connection(env: Env) -> None:
    env.sandbox.latency = 0.2
    statuses: list[int] = []

    def ping() -> None:
        with httpx.Client(transport=env.sandbox.transport()) as http:
            statuses.append(
                http.get(
                    "https://us19.api.mailchimp.com/3.0/ping", auth=("x", env.sandbox.api_key)
                ).status_code
            )

    threads = [threading.Thread(target=ping) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses.count(429) >= 1 and statuses.count(200) >= 10 - 1


def test_faults_are_retried(env: Env) -> None:
    env.sandbox.burst_429 = 3
    env.sandbox.error_rate = 0.3
    conn = env.connector()
    results = conn.write([subscriber(n, list_id=env.list_id) for n in range(20)])
    assert [r.problem for r in results] == [None] * 20
    assert len(env.sandbox.members(env.list_id)) == 20


def test_ensure_webhook_is_idempotent_and_fires_on_api_changes(env: Env, receiver: Receiver) -> None:
    conn = env.connector()
    conn.ensure_webhook(receiver.url)
    conn.ensure_webhook(receiver.url)
    [hook] = env.sandbox.lists[env.list_id].webhooks.values()
    assert hook["sources"] == {"user": True, "admin": True, "api": True}
    assert {k for k, v in hook["events"].items() if v} == {
        "subscribe",
        "unsubscribe",
        "profile",
        "upemail",
        "cleaned",
    }
    hook["sources"]["api"] = False  # someone unticked it in Mailchimp's UI: ensure_webhook corrects it
    conn.ensure_webhook(receiver.url)
    assert hook["sources"]["api"] is True and len(env.sandbox.lists[env.list_id].webhooks) == 1
    conn.write([subscriber(1, list_id=env.list_id)])
    [delivery] = env.sandbox.webhooks.wait(1)
    assert delivery.type == "subscribe" and delivery.form["data[email]"] == "p1@example.com"
    with pytest.raises(ConfigError) as raised:
        conn.ensure_webhook("http://127.0.0.1:9/closed")
    assert raised.value.code == "E743"


def test_reads_deliver_each_change_once_and_deletions(env: Env) -> None:
    conn = env.connector(page_size=3)
    ids = env.sandbox.seed_members(env.list_id, [{"email_address": f"r{n}@example.com"} for n in range(7)])
    batches = list(conn.read(None))
    assert sorted(r.remote_id for b in batches for r in b.records) == sorted(ids)
    cursor = batches[-1].cursor
    env.clock.advance(3)
    env.sandbox.edit(env.list_id, ids[2], merge_fields={"FNAME": "Edited"})
    env.sandbox.archive(env.list_id, ids[4])
    env.sandbox.unsubscribe(env.list_id, ids[5])
    again = list(conn.read(cursor))
    records = {r.remote_id: r for b in again for r in b.records}
    assert set(records) == {ids[2], ids[5]}
    assert records[ids[2]].fields["FNAME"] == "Edited"
    assert records[ids[5]].lists == {env.list_id: Status.UNSUBSCRIBED}
    assert [d for b in again for d in b.deleted] == [ids[4]]
    idle = list(conn.read(again[-1].cursor))
    assert [r for b in idle for r in b.records] == [] and [d for b in idle for d in b.deleted] == []
