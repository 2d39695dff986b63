"""Constant Contact (API v3): contacts, their lists and their permission to send.

**Identity.** The user DB is the whole CC account (``constantcontact:<encoded_account_id>``
from ``GET /account/summary``); a record is a contact, its remote id the ``contact_id``. Fields
use CC's names: ``email_address`` (the address; the match key and mandatory), ``first_name``,
``last_name``, ``job_title``, ``company_name``, ``phone_number`` (the first phone number),
``birthday_month``, ``birthday_day``, ``anniversary``, custom fields as ``cf:<name>`` (CC's own
import naming), and read-only ``permission_to_send``, ``opt_in_*``, ``opt_out_*``, ``created_at``,
``updated_at``.

**Status mapping.** CC keeps one permission per contact (``email_address.permission_to_send``)
for the whole account, plus the lists the contact is a member of. Per list we report:

==========================  ===========================================================
CC                          our status for the list
==========================  ===========================================================
``explicit``, ``implicit``  ``subscribed`` on each list the contact is a member of
``pending_confirmation``    ``pending`` on each member list (confirmed opt-in not done)
``not_set``, ``temp_hold``  ``pending`` on each member list (no permission to send yet)
``unsubscribed``            ``unsubscribed`` on **every** list of the account: CC's unsubscribe
                            is account-wide, whatever the memberships still say
not a member of a list      nothing: removal from a list is not an unsubscribe, so it is
                            not reported as one
==========================  ===========================================================

CC has no ``cleaned`` state (bounces do not change a contact), so reads never say ``cleaned``.
Writes go the other way: ``subscribed``/``pending`` add the list membership; ``unsubscribed``
and ``cleaned`` remove it. An ``unsubscribed`` that leaves the contact on no list at all becomes
CC's account-wide unsubscribe (``opt_out_source: Account``) so the opt-out is recorded; one
list out of several only loses its membership, because CC's unsubscribe would stop every list.
A contact CC has as ``unsubscribed`` is set back to ``explicit`` only when the item itself asks
for ``subscribed`` (the engine applied the consent rules before asking), and then stays only on
the lists the item asks for: the memberships CC kept through the opt-out are dropped, so a
re-opt-in to one list never revives the others. Any other write — profile fields, ``pending``
— leaves the opt-out alone. ``subscribed`` turns ``not_set`` and
``pending_confirmation`` into ``explicit``; a new contact asked only ``pending`` is created as
``pending_confirmation``.

**Reads** page ``GET /contacts?status=all&updated_after=…&include=…&limit=500`` through
``_links.next``; deleted contacts (``deleted_at``) become tombstones. The cursor is the newest
``updated_at`` seen (CC keeps seconds) with a digest of the contacts updated in that very second:
the next read asks from one second earlier and skips only those it already delivered unchanged,
so a change in the same second is re-read, never lost (at-least-once). The cursor moves on the
last page only, because CC does not promise an order.

**Writes** of fewer than ``bulk_threshold`` items go one by one: the contact is found by
``remote_id`` or by email (one GET), then created (``POST /contacts/sign_up_form`` when a list is
asked ``subscribed``, else ``POST /contacts``) or replaced (read-modify-``PUT``, skipped when
nothing changes). Larger writes send the new, only-``subscribed`` items through the
``contacts_json_import`` bulk activity (split by both of CC's caps: 40,000 contacts and 4 MB per
request), poll it with ``ctx.sleep``, then read the contacts back by email; every other item
goes one by one. Deletes of more than a few ids use the ``contact_delete`` activity (500 ids each).

**Limits.** Every request goes through :class:`ProviderHttp` at 4 requests/second (CC's limit per
API key) with retries on 429/5xx; the token endpoint allows 1 request/second. When the daily
10,000 requests are spent, CC keeps answering 429 and the run stops with E502; it resumes from
its cursor the next day.

**Tokens.** OAuth2 authorization code with PKCE (S256). Access tokens last 24 hours; refresh
tokens rotate: a used one is dead. A refreshed pair is persisted with ``ctx.save_secrets``
before anything uses it, so a crash can never leave only a dead refresh token stored.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

import httpx
from pydantic import Field, SecretStr

from contactsync.connectors import registry
from contactsync.connectors.base import (
    Capabilities,
    ConnectorConfig,
    ConnectorContext,
    Description,
    FieldInfo,
    ListInfo,
    ReadBatch,
    RecordProblem,
    RemoteRecord,
    WriteItem,
    WriteResult,
)
from contactsync.connectors.http import ProviderHttp
from contactsync.errors import AuthError, ConfigError, TransientError
from contactsync.hub.consent import Status

PROVIDER = "constantcontact"
API_URL = "https://api.cc.email/v3"
AUTHORIZE_URL = "https://authz.constantcontact.com/oauth2/default/v1/authorize"
TOKEN_URL = "https://authz.constantcontact.com/oauth2/default/v1/token"  # noqa: S105 (a URL)
REVOKE_URL = "https://authz.constantcontact.com/oauth2/default/v1/revoke"
# account_read for the account id (GET /account/summary), contact_data for contacts, lists and
# activities, offline_access for a refresh token
SCOPES = "account_read contact_data offline_access"
INCLUDE = "list_memberships,custom_fields,phone_numbers"
PAGE_SIZE = 500
IMPORT_MAX_ROWS = 40_000  # CC's cap on contacts per import
IMPORT_MAX_BYTES = 4 * 1024 * 1024 - 64 * 1024  # CC's 4 MB cap, less a margin for the envelope
DELETE_BATCH = 500  # contact_ids per contact_delete activity
DELETE_ONE_BY_ONE = 10  # up to this many ids, DELETE each
SEEN_CAP = 1_000  # digests kept in the cursor for the newest second
MAX_CONSECUTIVE_FAILURES = 5  # per-item provider failures in a row before the write gives up
TERMINAL_STATES = frozenset({"completed", "cancelled", "failed", "timed_out"})

TEXT_FIELDS = ("first_name", "last_name", "job_title", "company_name", "anniversary")
INT_FIELDS = ("birthday_month", "birthday_day")
PROFILE_FIELDS = (*TEXT_FIELDS, *INT_FIELDS)
EMAIL_FIELDS = (
    "opt_in_source",
    "opt_in_date",
    "opt_out_source",
    "opt_out_date",
    "opt_out_reason",
    "confirm_status",
)
READ_ONLY = frozenset(
    {"permission_to_send", *EMAIL_FIELDS, "created_at", "updated_at", "create_source", "update_source"}
)
OPTED_OUT = frozenset({Status.UNSUBSCRIBED, Status.CLEANED})
ADDING = frozenset({Status.SUBSCRIBED, Status.PENDING})


class Permission(StrEnum):
    """CC's ``permission_to_send``: one value for the whole account."""

    EXPLICIT = "explicit"
    IMPLICIT = "implicit"
    NOT_SET = "not_set"
    PENDING_CONFIRMATION = "pending_confirmation"
    TEMP_HOLD = "temp_hold"
    UNSUBSCRIBED = "unsubscribed"


SENDABLE = frozenset({Permission.EXPLICIT, Permission.IMPLICIT})


class Config(ConnectorConfig):
    """A Constant Contact source: the app's credentials and the account's tokens. Which lists
    sync is chosen in the source's subscription map, not here."""

    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    redirect_uri: str = Field(min_length=1)
    access_token: SecretStr | None = None
    refresh_token: SecretStr | None = None
    base_url: str = API_URL
    auth_url: str = AUTHORIZE_URL
    token_url: str = TOKEN_URL
    revoke_url: str = REVOKE_URL
    page_size: int = Field(PAGE_SIZE, ge=1, le=PAGE_SIZE)  # contacts per read request
    bulk_threshold: int = Field(500, ge=1)  # writes of this many items or more use bulk activities
    activity_timeout_s: float = Field(3600.0, gt=0)  # how long to wait for one bulk activity


CAPABILITIES = Capabilities(
    change_feed=True,
    delete_feed=True,
    webhooks=False,  # CC's webhooks are partner-only billing events
    bulk=True,
    max_page_size=PAGE_SIZE,
    rate_limit_per_s=4,
    daily_limit=10_000,
    concurrency=1,
)

STANDARD_FIELDS = [
    FieldInfo("email_address", "Email", "email", required=True),
    FieldInfo("first_name", "First name", "string"),
    FieldInfo("last_name", "Last name", "string"),
    FieldInfo("job_title", "Job title", "string"),
    FieldInfo("company_name", "Company", "string"),
    FieldInfo("phone_number", "Phone", "phone"),
    FieldInfo("birthday_month", "Birthday month", "integer"),
    FieldInfo("birthday_day", "Birthday day", "integer"),
    FieldInfo("anniversary", "Anniversary", "string"),
    FieldInfo("permission_to_send", "Permission to send", "string", writable=False),
    FieldInfo("opt_in_source", "Opt-in source", "string", writable=False),
    FieldInfo("opt_in_date", "Opt-in date", "datetime", writable=False),
    FieldInfo("opt_out_source", "Opt-out source", "string", writable=False),
    FieldInfo("opt_out_date", "Opt-out date", "datetime", writable=False),
    FieldInfo("opt_out_reason", "Opt-out reason", "string", writable=False),
    FieldInfo("confirm_status", "Confirm status", "string", writable=False),
    FieldInfo("created_at", "Created", "datetime", writable=False),
    FieldInfo("updated_at", "Updated", "datetime", writable=False),
    FieldInfo("create_source", "Created by", "string", writable=False),
    FieldInfo("update_source", "Updated by", "string", writable=False),
]


# ---------------------------------------------------------------------- mapping (pure)


def list_statuses(contact: Mapping[str, Any], account_lists: Sequence[str]) -> dict[str, Status]:
    """Our status per list for one CC contact (see the module docstring for the table)."""
    permission = (contact.get("email_address") or {}).get("permission_to_send", Permission.NOT_SET)
    members = list(contact.get("list_memberships") or [])
    if permission == Permission.UNSUBSCRIBED:
        return dict.fromkeys([*account_lists, *members], Status.UNSUBSCRIBED)
    status = Status.SUBSCRIBED if permission in SENDABLE else Status.PENDING
    return dict.fromkeys(members, status)


def contact_fields(contact: Mapping[str, Any], custom_names: Mapping[str, str]) -> dict[str, Any]:
    """A CC contact as flat fields in CC's names (``custom_names``: custom_field_id → name)."""
    email = contact.get("email_address") or {}
    phones = contact.get("phone_numbers") or []
    out: dict[str, Any] = {"email_address": email.get("address")}
    out.update({name: contact.get(name) for name in PROFILE_FIELDS})
    out["phone_number"] = phones[0].get("phone_number") if phones else None
    out["permission_to_send"] = email.get("permission_to_send")
    out.update({name: email.get(name) for name in EMAIL_FIELDS})
    for name in ("created_at", "updated_at", "create_source", "update_source"):
        out[name] = contact.get(name)
    out.update({f"cf:{name}": None for name in custom_names.values()})
    for cf in contact.get("custom_fields") or []:
        out[f"cf:{custom_names.get(cf['custom_field_id'], cf['custom_field_id'])}"] = cf.get("value")
    return out


def contact_record(
    contact: Mapping[str, Any], account_lists: Sequence[str], custom_names: Mapping[str, str]
) -> RemoteRecord:
    updated = contact.get("updated_at")
    return RemoteRecord(
        remote_id=str(contact["contact_id"]),
        fields=contact_fields(contact, custom_names),
        lists=list_statuses(contact, account_lists),
        updated_at=_epoch_ms(updated) if updated else None,
    )


def plan_lists(
    permission: str, members: Sequence[str], wanted: Mapping[str, Status]
) -> tuple[str, list[str]]:
    """The permission and memberships to write for ``wanted`` list statuses on a contact that
    has ``permission`` and ``members`` today (see the module docstring for the rules)."""
    subscribe = any(s == Status.SUBSCRIBED for s in wanted.values())
    add = [x for x, s in wanted.items() if s in ADDING]
    drop = {x for x, s in wanted.items() if s in OPTED_OUT}
    if permission == Permission.UNSUBSCRIBED and not subscribe:
        return permission, [m for m in members if m not in drop]  # never resubscribed by accident
    if permission == Permission.UNSUBSCRIBED:  # the re-opt-in covers the lists asked, no other
        return Permission.EXPLICIT, add
    kept = [m for m in members if m not in drop]
    after = kept + [x for x in add if x not in kept]
    if drop and not add and not after and Status.UNSUBSCRIBED in wanted.values():
        return Permission.UNSUBSCRIBED, after  # off the last list: record the opt-out account-wide
    if subscribe and permission in (Permission.NOT_SET, Permission.PENDING_CONFIRMATION):
        return Permission.EXPLICIT, after
    return permission, after


# ---------------------------------------------------------------------- the connector


@dataclass
class _Item:
    """A write item checked and translated into CC's terms."""

    index: int
    item: WriteItem
    email: str | None
    profile: dict[str, Any]  # top-level CC properties to set (None clears)
    custom: dict[str, str | None]  # custom_field_id → value (None removes)
    custom_by_name: dict[str, str | None]  # cf:<name> → value, for imports
    phone: str | None
    phone_set: bool


@dataclass
class _Cursor:
    at: int | None = None  # epoch seconds of the newest updated_at seen
    seen: dict[str, str] = field(default_factory=dict)  # contact_id → digest, for that second

    @classmethod
    def parse(cls, text: str | None) -> _Cursor:
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(int(data["t"]), {str(k): str(v) for k, v in data.get("seen", {}).items()})
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"the stored Constant Contact cursor is unreadable: {text[:80]!r}") from None

    def dump(self) -> str | None:
        if self.at is None:
            return None
        return json.dumps({"t": self.at, "seen": self.seen}, separators=(",", ":"), sort_keys=True)


class ConstantContactConnector:
    provider: ClassVar[str] = PROVIDER
    capabilities: ClassVar[Capabilities] = CAPABILITIES

    def __init__(self, config: Config, ctx: ConnectorContext) -> None:
        self.config = config
        self.ctx = ctx
        self.api = ProviderHttp(
            ctx,
            base_url=config.base_url,
            rate_limit_per_s=4,
            max_attempts=10,
            limit_key=f"constantcontact:{config.client_id}",  # CC counts requests per API key
        )
        self.auth = ProviderHttp(ctx, base_url=config.token_url, rate_limit_per_s=1, max_attempts=4)
        self._access = config.access_token.get_secret_value() if config.access_token else None
        self._refresh = config.refresh_token.get_secret_value() if config.refresh_token else None
        self._expires: float | None = None  # ctx.clock() deadline, when known
        self._token_lock = threading.Lock()
        split = urlsplit(config.base_url)
        self._origin = f"{split.scheme}://{split.netloc}"
        self._lists: list[ListInfo] | None = None
        self._custom: dict[str, str] | None = None  # custom_field_id → name

    # ------------------------------------------------------------------ OAuth

    def authorization_url(self, state: str) -> tuple[str, str]:
        """Where to send the account owner to authorize, and the PKCE code verifier to keep
        for :meth:`exchange_code`."""
        verifier = secrets.token_urlsafe(64)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = {
            "client_id": self.config.client_id,
            "redirect_uri": self.config.redirect_uri,
            "response_type": "code",
            "scope": SCOPES,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        return f"{self.config.auth_url}?{urlencode(query)}", verifier

    def exchange_code(self, code: str, verifier: str) -> None:
        """Trade the authorization code for tokens; they are saved before this returns."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.config.redirect_uri,
            "code_verifier": verifier,
        }
        with self._token_lock:
            self._store(self._token_request(form, "authorize"))

    def revoke(self) -> None:
        """Revoke the refresh and access tokens at CC (the "revoke access" button)."""
        with self._token_lock:
            for token, hint in ((self._refresh, "refresh_token"), (self._access, "access_token")):
                if not token:
                    continue
                response = self.auth.request(
                    "POST",
                    self.config.revoke_url,
                    data={"token": token, "token_type_hint": hint},
                    headers=self._client_auth(),
                )
                if response.status_code >= 400:
                    raise AuthError(
                        f"Constant Contact refused to revoke the {hint}: {_message(response)}", code="E112"
                    )
            self._access = self._refresh = None
            self._expires = None

    def _client_auth(self) -> dict[str, str]:
        pair = f"{self.config.client_id}:{self.config.client_secret.get_secret_value()}"
        return {
            "Authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
            "Accept": "application/json",
        }

    def _token_request(self, form: Mapping[str, str], what: str) -> dict[str, Any]:
        response = self.auth.request(
            "POST", self.config.token_url, data=dict(form), headers=self._client_auth()
        )
        if response.status_code != 200:
            raise AuthError(
                f"Constant Contact refused to {what} the source ({_message(response)}); authorize it again",
                code="E112",
            )
        body: dict[str, Any] = response.json()
        if not body.get("access_token"):
            raise AuthError("Constant Contact's token answer holds no access token", code="E112")
        return body

    def _store(self, tokens: Mapping[str, Any]) -> None:
        """Persist a new token pair first, then use it (the old refresh token is dead already)."""
        access = str(tokens["access_token"])
        refresh = str(tokens.get("refresh_token") or self._refresh or "")
        self.ctx.save_secrets({"access_token": access, "refresh_token": refresh})
        self._access, self._refresh = access, refresh or None
        lifetime = float(tokens.get("expires_in") or 0)
        self._expires = self.ctx.clock() + lifetime - 60 if lifetime > 60 else None

    def _renew(self, stale: str | None) -> None:
        with self._token_lock:
            if self._access and self._access != stale:
                return  # another thread renewed meanwhile
            if not self._refresh:
                raise AuthError(
                    "the Constant Contact source is not connected: authorize it first", code="E112"
                )
            self._store(
                self._token_request({"grant_type": "refresh_token", "refresh_token": self._refresh}, "renew")
            )

    def _token(self) -> str:
        expired = self._expires is not None and self.ctx.clock() >= self._expires
        if not self._access or expired:
            self._renew(self._access)
        if not self._access:
            raise AuthError("the Constant Contact source is not connected: authorize it first", code="E112")
        return self._access

    # ------------------------------------------------------------------ HTTP

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API request: the bearer token, renewed once on a 401."""
        if path.startswith("/v3/"):
            path = self._origin + path  # CC's _links are absolute paths
        token = self._token()
        response = self.api.request(method, path, headers=_bearer(token), **kwargs)
        if response.status_code == 401:
            self._renew(token)
            response = self.api.request(method, path, headers=_bearer(self._token()), **kwargs)
            if response.status_code == 401:
                raise AuthError(
                    f"Constant Contact refused the access token: {_message(response)}", code="E112"
                )
        if response.status_code == 403:
            raise AuthError(
                f"Constant Contact refused the request ({_message(response)}); authorize the source again "
                f"with the scopes {SCOPES}",
                code="E112",
            )
        return response

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        # no params= for a _links href: httpx would drop the query string it carries
        response = self._call("GET", path, params=dict(params)) if params else self._call("GET", path)
        if response.status_code != 200:
            raise ConfigError(f"Constant Contact refused GET {path}: {_message(response)}")
        body: dict[str, Any] = response.json()
        return body

    def _pages(self, path: str, params: Mapping[str, Any], key: str) -> Iterator[list[dict[str, Any]]]:
        body = self._get(path, params)
        while True:
            yield list(body.get(key) or [])
            href = ((body.get("_links") or {}).get("next") or {}).get("href")
            if not href:
                return
            body = self._get(href)

    # ------------------------------------------------------------------ protocol

    def check(self) -> None:
        self._account_id()

    def describe(self) -> Description:
        account = self._account_id()
        lists = self._account_lists(fresh=True)
        custom = self._custom_fields(fresh=True)
        count = self._get("/contacts", {"include_count": "true", "limit": 1}).get("contacts_count", 0)
        extra = [FieldInfo(f"cf:{name}", name.replace("_", " "), "string") for name in custom.values()]
        return Description(STANDARD_FIELDS + extra, lists, int(count), f"{PROVIDER}:{account}")

    def read(self, cursor: str | None, *, since: int | None = None) -> Iterator[ReadBatch]:
        previous = _Cursor.parse(cursor)
        lists = [x.id for x in self._account_lists(fresh=True)]
        custom = self._custom_fields(fresh=True)
        params: dict[str, Any] = {"status": "all", "include": INCLUDE, "limit": self.config.page_size}
        if previous.at is not None:
            params["updated_after"] = _iso(previous.at - 1)  # that second again: CC keeps seconds
        elif since is not None:
            params["updated_after"] = _iso_ms(since - 1)
        newest, newest_seen = previous.at, dict(previous.seen)
        pages = self._pages("/contacts", params, "contacts")
        page = next(pages)
        while True:
            following = next(pages, None)
            records, deleted = [], []
            for contact in page:
                cid = str(contact["contact_id"])
                digest = _digest(contact)
                updated = _epoch_ms(contact["updated_at"]) // 1000 if contact.get("updated_at") else None
                if updated is not None and updated == previous.at and previous.seen.get(cid) == digest:
                    continue  # delivered by the last read, unchanged since
                if updated is not None:
                    if newest is None or updated > newest:
                        newest, newest_seen = updated, {}
                    if updated == newest:
                        newest_seen[cid] = digest
                if contact.get("deleted_at"):
                    deleted.append(cid)
                else:
                    records.append(contact_record(contact, lists, custom))
            if following is None:
                seen = newest_seen if len(newest_seen) <= SEEN_CAP else {}
                yield ReadBatch(records, deleted, _Cursor(newest, seen).dump())
                return
            yield ReadBatch(records, deleted, cursor)
            page = following

    def fetch(self, remote_ids: Sequence[str]) -> list[RemoteRecord]:
        records = []
        for remote_id in remote_ids:
            response = self._call("GET", f"/contacts/{remote_id}", params={"include": INCLUDE})
            if response.status_code == 404:
                continue
            if response.status_code != 200:
                raise ConfigError(f"Constant Contact refused GET /contacts/{remote_id}: {_message(response)}")
            contact = response.json()
            if not contact.get("deleted_at"):
                records.append(self._record(contact))
        return records

    def write(self, items: Sequence[WriteItem]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(items)
        prepared: list[_Item] = []
        custom = self._custom_fields() if any(k.startswith("cf:") for i in items for k in i.fields) else {}
        for index, item in enumerate(items):
            checked = self._prepare(index, item, custom)
            if isinstance(checked, WriteResult):
                results[index] = checked
            else:
                prepared.append(checked)
        one_by_one = prepared
        if len(items) >= self.config.bulk_threshold:
            bulk = [p for p in prepared if _bulk_eligible(p)]
            if bulk:
                one_by_one = [p for p in prepared if not _bulk_eligible(p)]
                for p, result in self._write_bulk(bulk):
                    if result is None:
                        one_by_one.append(p)  # CC has them unsubscribed: the PUT path resubscribes
                    else:
                        results[p.index] = result
        failures = 0
        for p in sorted(one_by_one, key=lambda x: x.index):
            try:
                results[p.index] = self._write_one(p)
                failures = 0
            except TransientError as e:
                failures += 1
                if e.code == "E502" or failures >= MAX_CONSECUTIVE_FAILURES:
                    raise
                results[p.index] = _problem(p.item.key, e.code, e.message, retryable=True)
        return [
            r if r is not None else _problem(i.key, "E501", "not written", retryable=True)
            for i, r in zip(items, results, strict=True)
        ]

    def delete(self, remote_ids: Sequence[str]) -> list[WriteResult]:
        if len(remote_ids) <= DELETE_ONE_BY_ONE:
            return [self._delete_one(rid) for rid in remote_ids]
        results: list[WriteResult] = []
        for start in range(0, len(remote_ids), DELETE_BATCH):
            chunk = list(remote_ids[start : start + DELETE_BATCH])
            response = self._call("POST", "/activities/contact_delete", json={"contact_ids": chunk})
            if response.status_code not in (200, 201, 202):
                results += [_problem(rid, "E422", _message(response), remote_id=rid) for rid in chunk]
                continue
            activity = self._wait(response.json())
            if activity.get("state") == "completed":
                results += [WriteResult(rid, remote_id=rid) for rid in chunk]
            else:
                why = _activity_failure(activity)
                results += [_problem(rid, "E501", why, retryable=True, remote_id=rid) for rid in chunk]
        return results

    def close(self) -> None:
        self.api.close()
        self.auth.close()

    # ------------------------------------------------------------------ account, lists, fields

    def _account_id(self) -> str:
        body = self._get("/account/summary")
        account = body.get("encoded_account_id")
        if not account:
            raise ConfigError("Constant Contact's account summary holds no account id")
        return str(account)

    def _account_lists(self, *, fresh: bool = False) -> list[ListInfo]:
        if self._lists is None or fresh:
            found: list[ListInfo] = []
            for page in self._pages("/contact_lists", {"limit": 1000}, "lists"):
                found += [
                    ListInfo(str(x["list_id"]), str(x["name"])) for x in page if not x.get("deleted_at")
                ]
            self._lists = found
        return self._lists

    def _custom_fields(self, *, fresh: bool = False) -> dict[str, str]:
        if self._custom is None or fresh:
            found: dict[str, str] = {}
            for page in self._pages("/contact_custom_fields", {"limit": 100}, "custom_fields"):
                found.update({str(x["custom_field_id"]): str(x["name"]) for x in page})
            self._custom = found
        return self._custom

    # ------------------------------------------------------------------ writing one by one

    def _prepare(self, index: int, item: WriteItem, custom: Mapping[str, str]) -> _Item | WriteResult:
        ids = {name: cid for cid, name in custom.items()}
        email_value = item.fields.get("email_address", item.match.get("email_address"))
        email = str(email_value).strip() if email_value not in (None, "") else None
        if email is None and (item.remote_id is None or "email_address" in item.fields):
            return _problem(
                item.key, "E420", "Constant Contact needs an email address (email_address is empty)"
            )
        out = _Item(index, item, email, {}, {}, {}, None, False)
        for name, value in item.fields.items():
            if name == "email_address" or name in READ_ONLY:
                continue
            if name in TEXT_FIELDS:
                out.profile[name] = None if value in (None, "") else str(value)
            elif name in INT_FIELDS:
                try:
                    out.profile[name] = None if value in (None, "") else int(value)
                except (TypeError, ValueError):
                    return _problem(item.key, "E424", f"{name} must be a whole number, not {value!r}")
            elif name == "phone_number":
                out.phone, out.phone_set = (None if value in (None, "") else str(value)), True
            elif name.startswith("cf:"):
                if name[3:] not in ids:
                    return _problem(
                        item.key,
                        "E422",
                        f"the custom field {name[3:]!r} does not exist in this Constant Contact account",
                    )
                text = None if value in (None, "") else str(value)
                out.custom[ids[name[3:]]] = text
                out.custom_by_name[name] = text
            else:
                return _problem(item.key, "E424", f"{name!r} is not a Constant Contact contact field")
        return out

    def _write_one(self, p: _Item, current: dict[str, Any] | None = None) -> WriteResult:
        item = p.item
        if current is None and item.remote_id:
            response = self._call("GET", f"/contacts/{item.remote_id}", params={"include": INCLUDE})
            if response.status_code == 200:
                current = response.json()
            elif response.status_code != 404:
                return _problem(item.key, "E422", _message(response))
        if current is None and p.email:
            current = self._find(p.email)
        if current is None:
            if p.email is None:
                return _problem(
                    item.key, "E420", "the contact is gone from Constant Contact and has no email address"
                )
            return self._create(p)
        return self._update(p, current)

    def _find(self, email: str) -> dict[str, Any] | None:
        params = {"email": email, "status": "all", "include": INCLUDE, "limit": 1}
        found = self._get("/contacts", params).get("contacts") or []
        return dict(found[0]) if found else None

    def _create(self, p: _Item) -> WriteResult:
        item, email = p.item, str(p.email)
        wanted = item.lists
        subscribed = [x for x, s in wanted.items() if s == Status.SUBSCRIBED]
        adding = [x for x, s in wanted.items() if s in ADDING]
        profile = {k: v for k, v in p.profile.items() if v is not None}
        custom = [{"custom_field_id": k, "value": v} for k, v in p.custom.items() if v is not None]
        if (
            subscribed
        ):  # the person asked: CC's sign-up form upsert (explicit, or pending under confirmed opt-in)
            body: dict[str, Any] = {"email_address": email, **profile, "list_memberships": adding}
            if custom:
                body["custom_fields"] = custom
            if p.phone:
                body["phone_number"] = p.phone
            response = self._call("POST", "/contacts/sign_up_form", json=body)
            if response.status_code not in (200, 201):
                return _problem(item.key, "E422", _message(response))
            answer = response.json()
            return WriteResult(
                item.key, remote_id=str(answer["contact_id"]), created=answer.get("action") == "created"
            )
        if adding:
            permission = Permission.PENDING_CONFIRMATION
        elif any(s == Status.UNSUBSCRIBED for s in wanted.values()):
            permission = Permission.UNSUBSCRIBED
        else:
            permission = Permission.NOT_SET
        body = {
            "email_address": {"address": email, "permission_to_send": str(permission)},
            "create_source": "Account",
            **profile,
            "list_memberships": adding,
            "custom_fields": custom,
        }
        if p.phone:
            body["phone_numbers"] = [{"phone_number": p.phone, "kind": "other"}]
        response = self._call("POST", "/contacts", json=body)
        if response.status_code == 409:  # created meanwhile: update it instead
            current = self._find(email)
            if current is not None:
                return self._update(p, current)
        if response.status_code not in (200, 201):
            return _problem(item.key, "E422", _message(response))
        contact = response.json()
        return WriteResult(
            item.key, remote_id=str(contact["contact_id"]), created=True, record=self._record(contact)
        )

    def _update(self, p: _Item, current: dict[str, Any]) -> WriteResult:
        item = p.item
        cid = str(current["contact_id"])
        email = current.get("email_address") or {}
        permission, members = plan_lists(
            str(email.get("permission_to_send", Permission.NOT_SET)),
            current.get("list_memberships") or [],
            item.lists,
        )
        body: dict[str, Any] = {"update_source": "Account"}
        for name in PROFILE_FIELDS:  # a PUT nulls the properties it does not carry
            value = p.profile[name] if name in p.profile else current.get(name)
            if value is not None:
                body[name] = value
        address = p.email or email.get("address")
        body["email_address"] = {"address": address, "permission_to_send": permission}
        values = {cf["custom_field_id"]: cf.get("value") for cf in current.get("custom_fields") or []}
        values.update(p.custom)
        body["custom_fields"] = [
            {"custom_field_id": k, "value": v} for k, v in values.items() if v is not None
        ]
        body["list_memberships"] = members
        phones = [dict(x) for x in current.get("phone_numbers") or []]
        if p.phone_set:
            rest = phones[1:]
            first = [{"phone_number": p.phone, "kind": phones[0].get("kind", "other") if phones else "other"}]
            body["phone_numbers"] = (first if p.phone else []) + [
                {"phone_number": x["phone_number"], "kind": x.get("kind", "other")} for x in rest
            ]
        if not current.get("deleted_at") and not _changes(current, body):
            return WriteResult(item.key, remote_id=cid, record=self._record(current))
        response = self._call("PUT", f"/contacts/{cid}", json=body)
        if response.status_code != 200:
            return _problem(item.key, "E422", _message(response), remote_id=cid)
        return WriteResult(item.key, remote_id=cid, record=self._record(response.json()))

    def _delete_one(self, remote_id: str) -> WriteResult:
        response = self._call("DELETE", f"/contacts/{remote_id}")
        if response.status_code in (200, 204, 404):  # absent counts as deleted
            return WriteResult(remote_id, remote_id=remote_id)
        return _problem(remote_id, "E422", _message(response), remote_id=remote_id)

    def _record(self, contact: Mapping[str, Any]) -> RemoteRecord:
        return contact_record(contact, [x.id for x in self._account_lists()], self._custom_fields())

    # ------------------------------------------------------------------ writing in bulk

    def _write_bulk(self, items: list[_Item]) -> list[tuple[_Item, WriteResult | None]]:
        """Import ``items`` (new contacts asked ``subscribed`` only); a None result asks for the
        one-by-one path."""
        out: list[tuple[_Item, WriteResult | None]] = []
        groups: dict[tuple[str, ...], list[_Item]] = {}
        for p in items:
            groups.setdefault(tuple(sorted(p.item.lists)), []).append(p)
        imported: list[_Item] = []
        errors: list[str] = []
        started: str | None = None
        for lists, members in groups.items():
            for chunk in _import_chunks(members, lists):
                body = {"import_data": [_import_row(p) for p in chunk], "list_ids": list(lists)}
                response = self._call("POST", "/activities/contacts_json_import", json=body)
                if response.status_code not in (200, 201, 202):
                    out += [(p, _problem(p.item.key, "E422", _message(response))) for p in chunk]
                    continue
                activity = self._wait(response.json())
                started = min(filter(None, [started, str(activity.get("created_at") or "")]), default=None)
                if activity.get("state") != "completed":
                    why = _activity_failure(activity)
                    out += [(p, _problem(p.item.key, "E501", why, retryable=True)) for p in chunk]
                    continue
                errors += [str(e) for e in activity.get("activity_errors") or []]
                imported += chunk
        if not imported:
            return out
        found = self._read_back(started)
        for p in imported:
            contact = found.get(str(p.email).lower()) or self._find(str(p.email))
            if contact is None:
                hint = next(
                    (e for e in errors if str(p.email) in e), "; ".join(errors[:3]) or "no reason given"
                )
                out.append(
                    (p, _problem(p.item.key, "E422", f"Constant Contact did not import the contact: {hint}"))
                )
            elif (contact.get("email_address") or {}).get("permission_to_send") == Permission.UNSUBSCRIBED:
                out.append((p, None))
            else:
                created = bool(started) and str(contact.get("created_at") or "") >= str(started)
                out.append(
                    (
                        p,
                        WriteResult(
                            p.item.key,
                            str(contact["contact_id"]),
                            created=created,
                            record=self._record(contact),
                        ),
                    )
                )
        return out

    def _read_back(self, started: str | None) -> dict[str, dict[str, Any]]:
        params: dict[str, Any] = {"status": "all", "include": INCLUDE, "limit": PAGE_SIZE}
        if started:
            params["updated_after"] = _iso(_epoch_ms(started) // 1000 - 1)
        found: dict[str, dict[str, Any]] = {}
        for page in self._pages("/contacts", params, "contacts"):
            for contact in page:
                address = (contact.get("email_address") or {}).get("address")
                if address and not contact.get("deleted_at"):
                    found[str(address).lower()] = contact
        return found

    def _wait(self, activity: Mapping[str, Any]) -> dict[str, Any]:
        """Poll a bulk activity until it ends (sleeping through ``ctx.sleep``)."""
        current = dict(activity)
        deadline = self.ctx.clock() + self.config.activity_timeout_s
        delay = 1.0
        while current.get("state") not in TERMINAL_STATES:
            if self.ctx.clock() >= deadline:
                raise TransientError(
                    f"the Constant Contact activity {current.get('activity_id')} did not finish within "
                    f"{self.config.activity_timeout_s:.0f} s",
                    code="E501",
                )
            self.ctx.sleep(delay)
            delay = min(delay * 1.5, 10.0)
            href = ((current.get("_links") or {}).get("self") or {}).get("href")
            current = self._get(href or f"/activities/{current['activity_id']}")
        return current


# ---------------------------------------------------------------------- helpers


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


def _message(response: httpx.Response) -> str:
    """CC's own words for a refusal."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if isinstance(body, list):
        texts = [str(e.get("error_message") or e.get("error_key")) for e in body if isinstance(e, dict)]
        if texts:
            return "; ".join(texts)
    if isinstance(body, dict) and (body.get("error_description") or body.get("error")):
        return str(body.get("error_description") or body.get("error"))
    return f"HTTP {response.status_code}"


def _problem(
    key: str, code: str, message: str, *, retryable: bool = False, remote_id: str | None = None
) -> WriteResult:
    return WriteResult(key, remote_id=remote_id, problem=RecordProblem(code, message, retryable))


def _bulk_eligible(p: _Item) -> bool:
    lists = p.item.lists
    return (
        p.item.remote_id is None
        and p.email is not None
        and bool(lists)
        and all(s == Status.SUBSCRIBED for s in lists.values())
    )


def _import_row(p: _Item) -> dict[str, Any]:
    row: dict[str, Any] = {"email": p.email}
    row.update({k: v for k, v in p.profile.items() if v is not None})
    if p.phone:
        row["phone"] = p.phone
    row.update({k: v for k, v in p.custom_by_name.items() if v is not None})
    return row


def _import_chunks(items: list[_Item], lists: Sequence[str]) -> Iterator[list[_Item]]:
    """Split an import by CC's caps: rows per request and bytes per request."""
    envelope = len(json.dumps({"import_data": [], "list_ids": list(lists)}).encode())
    chunk: list[_Item] = []
    size = envelope
    for p in items:
        row = len(json.dumps(_import_row(p)).encode()) + 2
        if chunk and (len(chunk) >= IMPORT_MAX_ROWS or size + row > IMPORT_MAX_BYTES):
            yield chunk
            chunk, size = [], envelope
        chunk.append(p)
        size += row
    if chunk:
        yield chunk


def _activity_failure(activity: Mapping[str, Any]) -> str:
    errors = "; ".join(str(e) for e in (activity.get("activity_errors") or [])[:3])
    return f"the Constant Contact activity ended {activity.get('state')}" + (f": {errors}" if errors else "")


def _changes(current: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    email = current.get("email_address") or {}
    if body["email_address"] != {
        "address": email.get("address"),
        "permission_to_send": email.get("permission_to_send"),
    }:
        return True
    for name in PROFILE_FIELDS:
        if body.get(name) != current.get(name):
            return True
    cur_custom = {
        cf["custom_field_id"]: cf.get("value")
        for cf in current.get("custom_fields") or []
        if cf.get("value") is not None
    }
    if {cf["custom_field_id"]: cf["value"] for cf in body["custom_fields"]} != cur_custom:
        return True
    if list(body["list_memberships"]) != list(current.get("list_memberships") or []):
        return True
    if "phone_numbers" in body:
        now = [(x.get("phone_number"), x.get("kind")) for x in current.get("phone_numbers") or []]
        return [(x["phone_number"], x["kind"]) for x in body["phone_numbers"]] != now
    return False


def _digest(contact: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(contact, sort_keys=True).encode()).hexdigest()[:16]


def _epoch_ms(text: str) -> int:
    value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_ms(ms: int) -> str:
    moment = datetime.fromtimestamp(0, UTC) + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _create(config: Any, ctx: ConnectorContext) -> ConstantContactConnector:
    return ConstantContactConnector(config, ctx)


registry.register(
    registry.Provider(
        name=PROVIDER, label="Constant Contact", config=Config, capabilities=CAPABILITIES, factory=_create
    )
)

__all__ = [
    "CAPABILITIES",
    "Config",
    "ConstantContactConnector",
    "Permission",
    "contact_fields",
    "contact_record",
    "list_statuses",
    "plan_lists",
]
