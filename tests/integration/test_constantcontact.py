"""The Constant Contact connector against the CC sandbox: OAuth with PKCE and rotating refresh
tokens, faults and rate limits, bulk activities and their caps, and the official client library.

**Client-library check.** Constant Contact publishes an official, OpenAPI-generated Python
client for API v3 on PyPI, ``constant-contact-api-client`` (by "Constant Contact Public API",
webservices@constantcontact.com; a dev dependency). Its ``Configuration(host=...)`` takes a base
URL, so the tests below run it unchanged against :meth:`ConstantContactSandbox.serve` on
loopback: every response is parsed by the library's own pydantic models (strict types, e.g.
``deleted_at`` is a date), and its error bodies by ``APIErrorSchemaInner``.

Time is a :class:`ManualClock`: the connector's rate limiter, its backoff and its polling sleep
on it, so the 4 requests/second limit and activities cost no real time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from contactsync.connectors import registry
from contactsync.connectors.base import ConnectorContext, WriteItem
from contactsync.connectors.constantcontact import ConstantContactConnector, contact_record
from contactsync.errors import AuthError, TransientError
from contactsync.hub.consent import Status
from contactsync.sandbox.constantcontact import ConstantContactSandbox, ManualClock, s256

CLIENT_ID = "cc-test-client"
CLIENT_SECRET = "cc-test-secret"
REDIRECT = "https://hub.example.com/oauth/constantcontact/callback"
TOKEN_PATH = "/oauth2/default/v1/token"


@dataclass
class Env:
    """A sandbox, its clock, and a log of what the connector sent and saved, in order."""

    sandbox: ConstantContactSandbox
    clock: ManualClock
    events: list[tuple[str, Any]] = field(default_factory=list)
    clients: list[httpx.Client] = field(default_factory=list)

    def context(self) -> ConnectorContext:
        client = httpx.Client(transport=_Recording(self))
        self.clients.append(client)
        return ConnectorContext(
            http=client,
            save_secrets=lambda secrets: self.events.append(("save", dict(secrets))),
            sleep=self.clock.sleep,
            clock=self.clock.monotonic,
        )

    def connector(self, *, tokens: bool = True, **overrides: Any) -> ConstantContactConnector:
        values: dict[str, Any] = {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uri": REDIRECT,
        }
        if tokens:
            issued = self.sandbox.issue_tokens(CLIENT_ID)
            values |= {"access_token": issued["access_token"], "refresh_token": issued["refresh_token"]}
        provider = registry.get("constantcontact")
        conn = provider.create(provider.parse_config(values | overrides), self.context())
        assert isinstance(conn, ConstantContactConnector)
        return conn

    def token_requests(self) -> list[dict[str, str]]:
        return [body for kind, body in self.events if kind == "token"]


class _Recording(httpx.BaseTransport):
    def __init__(self, env: Env) -> None:
        self.env = env
        self.inner = env.sandbox.transport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == TOKEN_PATH:
            form = {k: v[0] for k, v in parse_qs(request.read().decode()).items()}
            self.env.events.append(("token", form))
        else:
            self.env.events.append(
                ("api", (request.method, request.url.path, request.headers.get("authorization")))
            )
        return self.inner.handle_request(request)


@pytest.fixture
def env() -> Iterator[Env]:
    clock = ManualClock()
    sandbox = ConstantContactSandbox(now=clock.now, seed=7)
    sandbox.register_app(CLIENT_ID, CLIENT_SECRET, [REDIRECT])
    environment = Env(sandbox, clock)
    yield environment
    for client in environment.clients:
        client.close()


def authorize(env: Env, url: str) -> tuple[str, str]:
    """The account owner's browser: follow the authorization URL to the redirect; (code, state)."""
    with httpx.Client(transport=env.sandbox.transport()) as browser:
        response = browser.get(url)
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert "error" not in query, query
    return query["code"], query["state"]


def subscribed(n: int, lists: list[str], tag: str = "p") -> WriteItem:
    email = f"{tag}{n}@example.com"
    return WriteItem(
        f"hub-{tag}{n}",
        None,
        {"email_address": email, "first_name": f"First{n}"},
        {"email_address": email},
        dict.fromkeys(lists, Status.SUBSCRIBED),
    )


# -- OAuth -----------------------------------------------------------------------------------


def test_pkce_authorization_code_flow_end_to_end(env: Env) -> None:
    conn = env.connector(tokens=False)
    url, verifier = conn.authorization_url("state-42")
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"] == [s256(verifier)]
    assert query["scope"] == ["account_read contact_data offline_access"]
    code, state = authorize(env, url)
    assert state == "state-42"

    with pytest.raises(AuthError) as refused:
        conn.exchange_code(code, verifier[::-1])  # a wrong verifier: PKCE verification fails
    assert refused.value.code == "E112" and "PKCE" in refused.value.message
    assert not [e for e in env.events if e[0] == "save"]

    conn.exchange_code(code, verifier)
    [(_, saved)] = [e for e in env.events if e[0] == "save"]
    assert env.sandbox.access_token_valid(saved["access_token"])
    assert env.sandbox.refresh_token_valid(saved["refresh_token"])
    conn.check()
    assert conn.describe().user_db == "constantcontact:a07e1ksandbox"

    with pytest.raises(AuthError):  # an authorization code is good for one exchange only
        conn.exchange_code(code, verifier)


def test_an_authorization_code_expires_after_five_minutes(env: Env) -> None:
    conn = env.connector(tokens=False)
    url, verifier = conn.authorization_url("s")
    code, _ = authorize(env, url)
    env.clock.advance(301)
    with pytest.raises(AuthError):
        conn.exchange_code(code, verifier)


def test_a_wrong_client_secret_is_refused(env: Env) -> None:
    conn = env.connector(tokens=False, client_secret="not-the-secret")
    url, verifier = conn.authorization_url("s")
    code, _ = authorize(env, url)
    with pytest.raises(AuthError) as refused:
        conn.exchange_code(code, verifier)
    assert "Client authentication failed" in refused.value.message


def test_refresh_tokens_rotate_and_each_new_pair_is_saved_before_it_is_used(env: Env) -> None:
    conn = env.connector()
    first_refresh = conn._refresh
    assert first_refresh is not None
    conn.check()
    env.sandbox.expire_access_tokens()  # the 24 h are up: the API answers 401
    conn.check()

    [renewal] = env.token_requests()
    assert renewal == {"grant_type": "refresh_token", "refresh_token": first_refresh}
    saves = [(i, e[1]) for i, e in enumerate(env.events) if e[0] == "save"]
    assert len(saves) == 1
    save_at, saved = saves[0]
    second_refresh = saved["refresh_token"]
    assert second_refresh != first_refresh
    # the old refresh token died when it was used
    assert not env.sandbox.refresh_token_valid(first_refresh)
    env.clock.advance(1)  # the token endpoint takes 1 request a second
    with httpx.Client(transport=env.sandbox.transport()) as client:
        reuse = client.post(
            "https://authz.constantcontact.com" + TOKEN_PATH,
            data={"grant_type": "refresh_token", "refresh_token": first_refresh},
            auth=(CLIENT_ID, CLIENT_SECRET),
        )
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    # the new access token was saved before the first API request that carries it
    carrying = [
        i for i, e in enumerate(env.events) if e[0] == "api" and e[1][2] == f"Bearer {saved['access_token']}"
    ]
    assert carrying and save_at < carrying[0]

    env.clock.advance(1)
    env.sandbox.expire_access_tokens()
    conn.check()
    uses = [
        i for i, e in enumerate(env.events) if e[0] == "token" and e[1].get("refresh_token") == second_refresh
    ]
    assert len(uses) == 1 and save_at < uses[0]  # saved, then used: never the other way round
    later_saves = [i for i, e in enumerate(env.events) if e[0] == "save" and i > uses[0]]
    assert later_saves  # and the third pair is saved in turn
    assert not env.sandbox.refresh_token_valid(second_refresh)


def test_a_known_expiry_is_renewed_before_the_request_not_after_a_401(env: Env) -> None:
    conn = env.connector(tokens=False)
    url, verifier = conn.authorization_url("s")
    code, _ = authorize(env, url)
    conn.exchange_code(code, verifier)
    env.clock.advance(86_400)
    env.events.clear()
    conn.check()
    kinds = [e[0] for e in env.events]
    assert kinds == ["token", "save", "api"]


def test_when_the_saved_pair_cannot_be_stored_the_new_tokens_are_not_used(env: Env) -> None:
    conn = env.connector()
    env.sandbox.expire_access_tokens()

    def failing(_secrets: Any) -> None:
        raise OSError("disk full")

    conn.ctx.save_secrets = failing
    env.events.clear()
    with pytest.raises(OSError):
        conn.check()
    assert [e[0] for e in env.events] == ["api", "token"]  # no API request with the unsaved token


def test_revoke_ends_access(env: Env) -> None:
    conn = env.connector()
    access, refresh = conn._access, conn._refresh
    assert access and refresh
    conn.check()
    conn.revoke()
    assert not env.sandbox.refresh_token_valid(refresh)
    assert not env.sandbox.access_token_valid(access)
    again = env.connector(access_token=access, refresh_token=refresh)
    with pytest.raises(AuthError) as refused:
        again.check()
    assert refused.value.code == "E112"


def test_a_token_without_account_read_cannot_identify_the_account(env: Env) -> None:
    tokens = env.sandbox.issue_tokens(CLIENT_ID, scope="contact_data offline_access")
    conn = env.connector(access_token=tokens["access_token"], refresh_token=tokens["refresh_token"])
    with pytest.raises(AuthError) as refused:
        conn.check()
    assert "account_read" in refused.value.message


# -- faults and limits -----------------------------------------------------------------------


@pytest.mark.slow
def test_a_429_burst_and_a_30_percent_5xx_storm_lose_nothing_and_never_exceed_4_per_second(env: Env) -> None:
    news = env.sandbox.create_list("News")
    rows = [{"email_address": f"seed{n}@example.com", "first_name": f"S{n}"} for n in range(2000)]
    seeded = env.sandbox.seed_contacts(rows)
    env.sandbox.error_rate, env.sandbox.burst_429 = 0.3, 3
    conn = env.connector(bulk_threshold=10_000)  # every write one by one: the most requests

    records = []
    for batch in conn.read(None):
        records += batch.records
    assert sorted(r.remote_id for r in records) == sorted(seeded)

    env.sandbox.burst_429 = 3
    items = [subscribed(n, [news]) for n in range(500)]
    results = conn.write(items)
    problems = [r.problem for r in results if r.problem is not None]
    assert all(p.retryable for p in problems)  # a provider hiccup: the next run writes them
    retried = {r.key: r for r in conn.write([i for i, r in zip(items, results, strict=True) if r.problem])}
    results = [retried.get(r.key, r) for r in results]
    assert [r.problem for r in results] == [None] * 500
    stored = {c["email_address"]["address"]: c for c in env.sandbox.contacts()}
    for n, result in enumerate(results):
        contact = stored[f"p{n}@example.com"]
        assert contact["contact_id"] == result.remote_id and contact["list_memberships"] == [news]

    statuses = [r.status for r in env.sandbox.api_requests()]
    assert statuses.count(429) >= 6 and statuses.count(500) + statuses.count(503) > 300
    assert env.sandbox.max_requests_per_window(1.0) <= 4


def test_the_daily_limit_stops_the_run_with_e502(env: Env) -> None:
    env.sandbox.daily_limit = 10
    env.sandbox.seed_contacts([{"email_address": f"d{n}@example.com"} for n in range(30)])
    conn = env.connector(page_size=1)
    with pytest.raises(TransientError) as stopped:
        for _ in conn.read(None):
            pass
    assert stopped.value.code == "E502"
    assert len(env.sandbox.api_requests()) == 11  # no retries once the day is spent


# -- bulk activities -------------------------------------------------------------------------


def test_a_bulk_write_of_1000_goes_through_an_import_activity_with_polling(env: Env) -> None:
    news = env.sandbox.create_list("News")
    env.sandbox.create_custom_field("Shoe size")
    conn = env.connector()
    items = [subscribed(n, [news]) for n in range(1000)]
    for n, it in enumerate(items):
        it.fields["cf:Shoe_size"] = str(36 + n % 10)
    results = conn.write(items)
    assert [r.problem for r in results] == [None] * 1000
    assert all(r.created for r in results)
    paths = [(r.method, r.path) for r in env.sandbox.api_requests()]
    assert paths.count(("POST", "/v3/activities/contacts_json_import")) == 1
    polls = [p for p in paths if p[0] == "GET" and p[1].startswith("/v3/activities/")]
    assert len(polls) >= 1
    assert not any(p == ("POST", "/v3/contacts/sign_up_form") for p in paths)
    stored = {c["contact_id"]: c for c in env.sandbox.contacts()}
    assert len(stored) == 1000
    for n, result in enumerate(results):
        contact = stored[str(result.remote_id)]
        assert contact["email_address"]["address"] == f"p{n}@example.com"
        assert contact["email_address"]["permission_to_send"] == "implicit"
        assert contact["list_memberships"] == [news]
        assert result.record is not None and result.record.fields["cf:Shoe_size"] == str(36 + n % 10)
        assert result.record.lists == {news: Status.SUBSCRIBED}


def _import_request(rows: int, list_id: str, pad: int = 0) -> bytes:
    data = [{"email": f"r{n}@example.com", **({"cf:Notes": "n" * pad} if pad else {})} for n in range(rows)]
    return json.dumps({"import_data": data, "list_ids": [list_id]}).encode()


def _post_import(env: Env, body: bytes) -> httpx.Response:
    token = env.sandbox.issue_tokens(CLIENT_ID)["access_token"]
    with httpx.Client(transport=env.sandbox.transport()) as client:
        return client.post(
            "https://api.cc.email/v3/activities/contacts_json_import",
            content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )


@pytest.mark.slow
def test_an_import_of_40001_rows_is_refused_and_the_connector_splits_it(env: Env) -> None:
    news = env.sandbox.create_list("News")
    refused = _post_import(env, _import_request(40_001, news))
    assert refused.status_code == 400
    assert "40001" in refused.json()[0]["error_message"]

    conn = env.connector()
    before = len(env.sandbox.api_requests())
    results = conn.write([subscribed(n, [news], "big") for n in range(40_001)])
    assert [r.problem for r in results] == [None] * 40_001
    sent = env.sandbox.api_requests()[before:]
    imports = [r for r in sent if r.path == "/v3/activities/contacts_json_import"]
    assert [r.status for r in imports] == [201, 201]
    assert len(env.sandbox.contacts()) == 40_001
    assert len({r.remote_id for r in results}) == 40_001


@pytest.mark.slow
def test_an_import_over_4_mb_is_refused_and_the_connector_splits_it(env: Env) -> None:
    news = env.sandbox.create_list("News")
    env.sandbox.create_custom_field("Notes")
    too_big = _import_request(14_000, news, pad=300)
    assert len(too_big) > 4 * 1024 * 1024
    assert _post_import(env, too_big).status_code == 413

    conn = env.connector()
    before = len(env.sandbox.api_requests())
    items = [subscribed(n, [news], "wide") for n in range(14_000)]
    for it in items:
        it.fields["cf:Notes"] = "n" * 250  # ~390 bytes a row: 5.4 MB in all
        it.fields["last_name"] = "l" * 50
    results = conn.write(items)
    assert [r.problem for r in results] == [None] * 14_000
    sent = env.sandbox.api_requests()[before:]
    imports = [r for r in sent if r.path == "/v3/activities/contacts_json_import"]
    assert len(imports) == 2 and {r.status for r in imports} == {201}
    assert len(env.sandbox.contacts()) == 14_000


def test_a_bulk_delete_uses_contact_delete_activities_of_500(env: Env) -> None:
    ids = env.sandbox.seed_contacts([{"email_address": f"x{n}@example.com"} for n in range(1200)])
    conn = env.connector()
    results = conn.delete([*ids, "00000000-0000-0000-0000-000000000000"])
    assert [r.problem for r in results] == [None] * 1201
    paths = [r.path for r in env.sandbox.api_requests() if r.method == "POST"]
    assert paths.count("/v3/activities/contact_delete") == 3
    assert env.sandbox.contacts() == []


# -- consent ---------------------------------------------------------------------------------


def test_writes_never_resubscribe_an_unsubscribed_contact_by_accident(env: Env) -> None:
    news, offers = env.sandbox.create_list("News"), env.sandbox.create_list("Offers")
    [cid] = env.sandbox.seed_contacts(
        [
            {
                "email_address": "u@example.com",
                "permission_to_send": "explicit",
                "list_memberships": [news, offers],
            }
        ]
    )
    env.sandbox.unsubscribe(cid, reason="too many emails")
    conn = env.connector()

    def permission() -> str:
        contact = env.sandbox.contact(cid)
        assert contact is not None
        return str(contact["email_address"]["permission_to_send"])

    for lists in ({}, {news: Status.PENDING}):
        [result] = conn.write([WriteItem("k", cid, {"first_name": "Still"}, {}, lists)])
        assert result.problem is None and permission() == "unsubscribed"
    # bulk writes do not either: CC's import does not add an unsubscribed contact to lists
    many = [WriteItem(f"n{n}", None, {"email_address": f"n{n}@example.com"}, {}, {}) for n in range(3)]
    conn.write(many)
    assert permission() == "unsubscribed"

    # an explicit ask for one list re-opts in to that list only
    [result] = conn.write([WriteItem("k", cid, {}, {}, {offers: Status.SUBSCRIBED})])
    assert result.problem is None and permission() == "explicit"
    contact = env.sandbox.contact(cid)
    assert contact is not None and contact["list_memberships"] == [offers]


def test_an_unsubscribe_from_the_last_list_is_recorded_account_wide(env: Env) -> None:
    news, offers = env.sandbox.create_list("News"), env.sandbox.create_list("Offers")
    conn = env.connector()
    [created] = conn.write([subscribed(1, [news, offers])])
    assert created.remote_id is not None
    cid = created.remote_id
    conn.write([WriteItem("k", cid, {}, {}, {news: Status.UNSUBSCRIBED})])
    contact = env.sandbox.contact(cid)
    assert contact is not None and contact["email_address"]["permission_to_send"] == "explicit"
    assert contact["list_memberships"] == [offers]
    conn.write([WriteItem("k", cid, {}, {}, {offers: Status.UNSUBSCRIBED})])
    contact = env.sandbox.contact(cid)
    assert contact is not None and contact["email_address"]["permission_to_send"] == "unsubscribed"
    assert contact["email_address"]["opt_out_source"] == "Account"
    record = contact_record(contact, [news, offers], {})
    assert record.lists == {news: Status.UNSUBSCRIBED, offers: Status.UNSUBSCRIBED}


def test_status_mapping_reads_pending_and_account_wide_unsubscribes(env: Env) -> None:
    news, offers = env.sandbox.create_list("News"), env.sandbox.create_list("Offers")
    ids = env.sandbox.seed_contacts(
        [
            {
                "email_address": "a@example.com",
                "permission_to_send": "pending_confirmation",
                "list_memberships": [news],
            },
            {"email_address": "b@example.com", "permission_to_send": "temp_hold", "list_memberships": [news]},
            {
                "email_address": "c@example.com",
                "permission_to_send": "implicit",
                "list_memberships": [offers],
            },
            {"email_address": "d@example.com", "permission_to_send": "unsubscribed", "list_memberships": []},
        ]
    )
    conn = env.connector()
    got = {r.remote_id: r.lists for batch in conn.read(None) for r in batch.records}
    assert got[ids[0]] == {news: Status.PENDING}
    assert got[ids[1]] == {news: Status.PENDING}
    assert got[ids[2]] == {offers: Status.SUBSCRIBED}  # not on News: no status there
    assert got[ids[3]] == {news: Status.UNSUBSCRIBED, offers: Status.UNSUBSCRIBED}


# -- the sandbox's own answers ---------------------------------------------------------------


def test_sandbox_errors_have_constant_contacts_shapes(env: Env) -> None:
    [cid] = env.sandbox.seed_contacts([{"email_address": "dup@example.com"}])
    token = env.sandbox.issue_tokens(CLIENT_ID)["access_token"]
    with httpx.Client(transport=env.sandbox.transport(), base_url="https://api.cc.email/v3") as client:
        unauthorized = client.get("/contacts", headers={"Authorization": "Bearer nope"})
        assert unauthorized.status_code == 401
        assert unauthorized.json() == [
            {"error_key": "unauthorized", "error_message": "The access token used is invalid."}
        ]
        auth = {"Authorization": f"Bearer {token}"}
        conflict = client.post(
            "/contacts",
            json={"email_address": {"address": "DUP@example.com"}, "create_source": "Account"},
            headers=auth,
        )
        assert conflict.status_code == 409 and cid in conflict.json()[0]["error_message"]
        assert client.get("/contacts", params={"limit": 501}, headers=auth).status_code == 400
        no_lists = client.post(
            "/contacts/sign_up_form", json={"email_address": "x@example.com"}, headers=auth
        )
        assert no_lists.status_code == 400 and no_lists.json()[0]["error_key"]
        assert client.get("/contacts/not-a-uuid", headers=auth).json()[0]["error_message"] == (
            "contact_id is in an invalid format."
        )
        throttled = [client.get("/contacts", headers=auth) for _ in range(3)][-1]
        assert throttled.status_code == 429 and throttled.headers["retry-after"] == "1"
        assert throttled.json()[0]["error_key"] == "http.status.too_many_requests"


def test_sandbox_sign_up_form_updates_only_what_it_is_sent_and_sets_explicit(env: Env) -> None:
    news, offers = env.sandbox.create_list("News"), env.sandbox.create_list("Offers")
    [cid] = env.sandbox.seed_contacts(
        [
            {
                "email_address": "s@example.com",
                "first_name": "Ann",
                "last_name": "Lee",
                "list_memberships": [news],
            }
        ]
    )
    env.sandbox.unsubscribe(cid)
    token = env.sandbox.issue_tokens(CLIENT_ID)["access_token"]
    with httpx.Client(transport=env.sandbox.transport()) as client:
        answer = client.post(
            "https://api.cc.email/v3/contacts/sign_up_form",
            json={"email_address": "s@example.com", "first_name": "Anne", "list_memberships": [offers]},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 200 and answer.json() == {"contact_id": cid, "action": "updated"}
    contact = env.sandbox.contact(cid)
    assert contact is not None
    assert (contact["first_name"], contact["last_name"]) == ("Anne", "Lee")
    assert contact["list_memberships"] == [news, offers]
    assert contact["email_address"]["permission_to_send"] == "explicit"


def test_sandbox_lists_deleted_contacts_only_when_asked(env: Env) -> None:
    ids = env.sandbox.seed_contacts([{"email_address": f"z{n}@example.com"} for n in range(3)])
    env.clock.advance(5)
    env.sandbox.delete(ids[0])
    token = env.sandbox.issue_tokens(CLIENT_ID)["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(transport=env.sandbox.transport(), base_url="https://api.cc.email/v3") as client:
        default = client.get("/contacts", params={"include_count": "true"}, headers=auth).json()
        assert default["contacts_count"] == 2
        env.clock.advance(1)
        everything = client.get("/contacts", params={"status": "all"}, headers=auth).json()
        assert len(everything["contacts"]) == 3
        env.clock.advance(1)
        deleted = client.get("/contacts", params={"status": "deleted"}, headers=auth).json()["contacts"]
        assert [c["contact_id"] for c in deleted] == [ids[0]] and deleted[0]["deleted_at"]


def test_sandbox_list_membership_activities_run_when_polled(env: Env) -> None:
    news, offers = env.sandbox.create_list("News"), env.sandbox.create_list("Offers")
    ids = env.sandbox.seed_contacts(
        [{"email_address": f"m{n}@example.com", "list_memberships": [news, offers]} for n in range(3)]
    )
    token = env.sandbox.issue_tokens(CLIENT_ID)["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(transport=env.sandbox.transport(), base_url="https://api.cc.email/v3") as client:
        started = client.post(
            "/activities/remove_list_memberships",
            json={"source": {"contact_ids": ids[:2]}, "list_ids": [news]},
            headers=auth,
        )
        assert started.status_code == 201 and started.json()["state"] == "initialized"
        href = started.json()["_links"]["self"]["href"]
        assert env.sandbox.contact(ids[0])["list_memberships"] == [news, offers]  # type: ignore[index]
        env.clock.advance(1)
        states = [client.get(href.removeprefix("/v3"), headers=auth).json() for _ in range(2)]
    assert [s["state"] for s in states] == ["processing", "completed"]
    assert states[-1]["status"] == {"items_total_count": 2, "items_completed_count": 2, "list_count": 1}
    memberships = [env.sandbox.contact(cid)["list_memberships"] for cid in ids]  # type: ignore[index]
    assert memberships == [[offers], [offers], [news, offers]]


# -- the official client library -------------------------------------------------------------


@pytest.fixture
def official() -> Iterator[tuple[Any, ConstantContactSandbox, str]]:
    cc = pytest.importorskip("constant_contact_api_client")
    sandbox = ConstantContactSandbox(rate_limit_per_s=1000)
    sandbox.register_app(CLIENT_ID, CLIENT_SECRET, [REDIRECT])
    with sandbox.serve() as served:
        token = sandbox.issue_tokens(CLIENT_ID)["access_token"]
        client = cc.ApiClient(cc.Configuration(host=served.url + "/v3", access_token=token))
        yield client, sandbox, served.url
        client.close() if hasattr(client, "close") else None


def test_the_official_client_library_talks_to_the_sandbox(
    official: tuple[Any, ConstantContactSandbox, str],
) -> None:
    import constant_contact_api_client as cc

    client, sandbox, _ = official
    news = sandbox.create_list("News")
    sandbox.create_custom_field("Shoe size")
    ids = sandbox.seed_contacts(
        [
            {"email_address": f"o{n}@example.com", "first_name": f"O{n}", "list_memberships": [news]}
            for n in range(3)
        ]
    )
    sandbox.delete(ids[0])

    assert cc.AccountServicesApi(client).get_account_details().encoded_account_id == sandbox.account_id
    contacts = cc.ContactsApi(client)
    page = contacts.get_all_contacts(
        status="all", include="list_memberships,custom_fields", limit=2, include_count=True
    )
    assert page.contacts_count == 3 and len(page.contacts) == 2
    assert page.links.next.href.startswith("/v3/contacts?cursor=")
    gone = contacts.get_contact_by_id(ids[0], include="list_memberships")
    assert gone.deleted_at is not None and gone.list_memberships == [news]

    created = contacts.create_or_update_contact(
        cc.CreateOrUpdateContactRequest(
            email_address="new@example.com", first_name="New", list_memberships=[news]
        )
    )
    assert created.action == "created"
    again = contacts.create_or_update_contact(
        cc.CreateOrUpdateContactRequest(
            email_address="new@example.com", last_name="Comer", list_memberships=[news]
        )
    )
    assert (again.action, again.contact_id) == ("updated", created.contact_id)
    one = contacts.get_contact_by_id(created.contact_id, include="list_memberships,custom_fields")
    assert (one.first_name, one.last_name, one.email_address.permission_to_send) == (
        "New",
        "Comer",
        "explicit",
    )

    updated = contacts.update_contact(
        created.contact_id,
        cc.UpdateContactRequest(
            email_address=cc.UpdateContactRequestEmailAddress(
                address="new@example.com", permission_to_send="unsubscribed"
            ),
            first_name="Renamed",
            update_source="Account",
        ),
    )
    assert updated.first_name == "Renamed" and updated.last_name is None  # PUT nulls what it omits
    assert (
        updated.email_address.opt_out_source == "Account" and updated.email_address.opt_out_date is not None
    )

    with pytest.raises(cc.ApiException) as conflict:
        contacts.create_contact(
            cc.CreateContactRequest(
                email_address=cc.CreateContactRequestEmailAddress(address="new@example.com"),
                create_source="Account",
            )
        )
    assert conflict.value.status == 409
    [error] = [cc.APIErrorSchemaInner.from_dict(e) for e in json.loads(conflict.value.body)]
    assert error.error_key == "contacts.api.conflict"

    lists = cc.ContactListsApi(client).get_all_lists(include_count=True, include_membership_count="all")
    assert lists.lists_count == 1 and lists.lists[0].membership_count == 3
    fields = cc.ContactsCustomFieldsApi(client).get_all_custom_fields()
    assert [f.name for f in fields.custom_fields] == ["Shoe_size"]

    bulk = cc.BulkActivitiesApi(client)
    started = bulk.create_import_json_activity(
        cc.CreateImportJSONActivityRequest(
            import_data=[
                cc.CreateImportJSONActivityRequestImportDataInner(email="imp@example.com", first_name="Imp")
            ],
            list_ids=[news],
        )
    )
    assert (
        started.state == "initialized"
        and started.links.var_self.href == f"/v3/activities/{started.activity_id}"
    )
    states = [bulk.get_activity_by_id(started.activity_id).state for _ in range(3)]
    assert states == ["processing", "completed", "completed"]
    done = bulk.get_activity_by_id(started.activity_id)
    assert done.status.person_count == 1 and done.percent_done == 100 and done.completed_at is not None
    deleting = bulk.create_delete_activity(cc.CreateDeleteActivityRequest(contact_ids=[ids[1]]))
    assert deleting.status.items_total_count == 1


def test_the_connector_works_over_real_http(official: tuple[Any, ConstantContactSandbox, str]) -> None:
    _, sandbox, url = official
    news = sandbox.create_list("News")
    tokens = sandbox.issue_tokens(CLIENT_ID)
    clock = ManualClock()  # real HTTP, but the rate limiter need not wait for real
    ctx = ConnectorContext(http=httpx.Client(), sleep=clock.sleep, clock=clock.monotonic)
    config = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": REDIRECT,
        "access_token": tokens["access_token"],
        "refresh_token": tokens["refresh_token"],
        "base_url": url + "/v3",
        "token_url": url + TOKEN_PATH,
    }
    provider = registry.get("constantcontact")
    conn = provider.create(provider.parse_config(config), ctx)
    try:
        [result] = conn.write([subscribed(1, [news])])
        assert result.problem is None and result.created
        [record] = [r for batch in conn.read(None) for r in batch.records]
        assert record.remote_id == result.remote_id and record.lists == {news: Status.SUBSCRIBED}
    finally:
        conn.close()
        assert ctx.http is not None
        ctx.http.close()
