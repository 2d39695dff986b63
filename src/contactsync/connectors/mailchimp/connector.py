"""The Mailchimp connector: one audience of one account, through the Marketing API v3.

**Identity.** The user DB is one audience (``mailchimp:<account id>:<list id>``); a record is a
member and its remote id is the member's ``contact_id``, which stays when the address changes
(the ``subscriber_hash`` does not). Mailchimp's member endpoints take the hash, the address or
the contact_id, so :meth:`fetch` accepts all three.

**Reads** follow ``since_last_changed`` (see :mod:`.feed`); archived members are the deletions.
Permanently deleted members vanish without a trace: only a webhook (``unsubscribe`` with
``action=delete``) tells of them.

**Writes** one by one (a pool of ``concurrency`` threads, at most 10: Mailchimp's cap of
simultaneous connections per API key, shared by every connector of the key in this process):
a new record is ``POST``ed (created), an existing one ``PATCH``ed with only what the item sets.
From ``bulk_threshold`` items on, the plain ones go through one ``/batches`` job, polled with
``ctx.sleep``, whose results archive is read back; the rest go one by one.

**Consent.** Mailchimp refuses to set a member who unsubscribed or bounced back to
``subscribed`` ("Member In Compliance State"), and so does the connector, whatever Mailchimp
would allow: it writes ``pending`` instead (Mailchimp emails the person a confirmation) and
reports the record with E742, so the run's records say why. A cleaned (bounced) address gets
no ``pending`` either: Mailchimp refuses it.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

import httpx

from contactsync.connectors.base import (
    Capabilities,
    ConnectorContext,
    Description,
    FieldInfo,
    ListInfo,
    ReadBatch,
    RemoteRecord,
    WriteItem,
    WriteResult,
)
from contactsync.connectors.http import ProviderHttp
from contactsync.connectors.mailchimp import feed
from contactsync.connectors.mailchimp.config import CAPABILITIES, PROVIDER, Config, DeleteMode
from contactsync.connectors.mailchimp.mapping import (
    INTEREST,
    STANDARD_FIELDS,
    Plan,
    epoch_ms,
    member_record,
    merge_field_info,
    plan,
    problem,
    resubscribe_step,
)
from contactsync.errors import AuthError, ConfigError, TransientError
from contactsync.hub.consent import Status

MAX_CONNECTIONS = 10
WEBHOOK_EVENTS = {"subscribe": True, "unsubscribe": True, "profile": True, "upemail": True, "cleaned": True}
WEBHOOK_SOURCES = {"user": True, "admin": True, "api": True}
MAX_FAILURES = 5  # items failing for transient reasons in one write before it gives up

_SLOTS: dict[str, threading.BoundedSemaphore] = {}
_SLOTS_LOCK = threading.Lock()
T = TypeVar("T")


def _slots(api_key: str) -> threading.BoundedSemaphore:
    """One semaphore per API key and process: every connector of a key shares the 10 slots."""
    with _SLOTS_LOCK:
        return _SLOTS.setdefault(api_key, threading.BoundedSemaphore(MAX_CONNECTIONS))


class MailchimpConnector:
    provider: ClassVar[str] = PROVIDER
    capabilities: ClassVar[Capabilities] = CAPABILITIES

    def __init__(self, config: Config, ctx: ConnectorContext) -> None:
        self.config = config
        self.ctx = ctx
        key = config.api_key.get_secret_value()
        self.api = ProviderHttp(
            ctx, base_url=config.api_url(), rate_limit_per_s=None, max_attempts=8, timeout_s=120.0
        )
        self._slots = _slots(key)
        token = base64.b64encode(f"contactsync:{key}".encode()).decode()
        self._auth = {"Authorization": f"Basic {token}", "Accept": "application/json"}
        self._merge_types: dict[str, str] | None = None  # tag → Mailchimp merge type
        self._interests: dict[str, str] | None = None  # interest id → "category: name"

    # ------------------------------------------------------------------ HTTP

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._slots:
            response = self.api.request(method, path, headers=self._auth, **kwargs)
        if response.status_code in (401, 403):
            raise AuthError(f"Mailchimp refused the API key: {_message(response)}", code="E112")
        return response

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self._call("GET", path, params=params or {})
        if response.status_code == 404 and path.startswith(self._list_path()):
            raise ConfigError(
                f"the Mailchimp audience {self.config.list_id!r} does not exist in this account", code="E741"
            )
        if response.status_code != 200:
            raise TransientError(f"Mailchimp refused GET {path}: {_message(response)}", code="E501")
        body: dict[str, Any] = response.json()
        return body

    def _list_path(self) -> str:
        return f"/lists/{quote(self.config.list_id, safe='')}"

    def _member_path(self, key: str) -> str:
        return f"{self._list_path()}/members/{quote(key.strip(), safe='')}"

    # ------------------------------------------------------------------ protocol

    def check(self) -> None:
        self._get("/ping")
        self._get(self._list_path(), {"fields": "id,name"})

    def describe(self) -> Description:
        account = self._get("/", {"fields": "account_id"}).get("account_id")
        audience = self._get(self._list_path(), {"fields": "id,name"})
        specs = self._merge_fields()
        interests = self._interest_names(fresh=True)
        extra = [f for f in (merge_field_info(s) for s in specs) if f is not None]
        lists = [ListInfo(self.config.list_id, str(audience.get("name") or self.config.list_id))]
        lists += [ListInfo(INTEREST + iid, name) for iid, name in interests.items()]
        count = self._get(f"{self._list_path()}/members", {"count": 1, "fields": "total_items"})
        fields: list[FieldInfo] = [STANDARD_FIELDS[0], *extra, *STANDARD_FIELDS[1:]]
        return Description(
            fields, lists, int(count.get("total_items") or 0), f"{PROVIDER}:{account}:{self.config.list_id}"
        )

    def read(self, cursor: str | None, *, since: int | None = None) -> Iterator[ReadBatch]:
        position = feed.Cursor.parse(cursor)
        self._merge_fields()
        types = self._types()
        path = f"{self._list_path()}/members"

        def get_page(params: dict[str, Any]) -> dict[str, Any]:
            return self._get(path, params)

        size = self.config.page_size
        first = cursor is None
        for page in feed.pages(get_page, position.members, page_size=size, since_ms=since if first else None):
            records = [member_record(m, self.config.list_id, types) for m in page]
            yield ReadBatch(records, [], position.dump())
        if position.archived is None:  # first read: start the deletions from the newest archive
            newest = get_page(
                {"status": "archived", "count": 1, "sort_field": "last_changed", "sort_dir": "DESC"}
            )
            position.archived = feed.Position()
            for member in newest.get("members") or []:
                position.archived.at = epoch_ms(str(member["last_changed"])) // 1000
                position.archived.seen = {str(member["contact_id"]): feed.digest(member)}
            yield ReadBatch([], [], position.dump())
            return
        for page in feed.pages(get_page, position.archived, page_size=size, status="archived"):
            yield ReadBatch([], [str(m["contact_id"]) for m in page], position.dump())

    def fetch(self, remote_ids: Sequence[str]) -> list[RemoteRecord]:
        self._merge_fields()
        types = self._types()

        def one(key: str) -> RemoteRecord | None:
            response = self._call("GET", self._member_path(key))
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise TransientError(
                    f"Mailchimp refused to show member {key}: {_message(response)}", code="E501"
                )
            member = response.json()
            if member.get("status") == "archived":
                return None
            return member_record(member, self.config.list_id, types)

        found = self._parallel(one, list(dict.fromkeys(remote_ids)))
        return list({r.remote_id: r for r in found if r is not None}.values())

    def write(self, items: Sequence[WriteItem]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(items)
        types = self._types(fresh=True)
        interests = (
            set(self._interest_names())
            if any(k.startswith(INTEREST) for i in items for k in i.lists)
            else set()
        )
        plans: list[Plan] = []
        for index, item in enumerate(items):
            checked = plan(index, item, self.config.list_id, types, interests)
            if isinstance(checked, WriteResult):
                results[index] = checked
            else:
                plans.append(checked)
        one_by_one = plans
        if len(items) >= self.config.bulk_threshold:
            from contactsync.connectors.mailchimp.bulk import bulk_eligible, write_bulk

            bulk = [p for p in plans if bulk_eligible(p)]
            one_by_one = [p for p in plans if not bulk_eligible(p)]
            if bulk:
                for p, result in write_bulk(self, bulk):
                    if result is None:
                        one_by_one.append(p)
                    else:
                        results[p.index] = result
        for p, result in zip(one_by_one, self._parallel(self._guarded, one_by_one), strict=True):
            results[p.index] = result
        return [
            r if r is not None else problem(i.key, "E501", "not written", retryable=True)
            for i, r in zip(items, results, strict=True)
        ]

    def delete(self, remote_ids: Sequence[str]) -> list[WriteResult]:
        def one(remote_id: str) -> WriteResult:
            if self.config.delete_mode is DeleteMode.PERMANENT:
                response = self._call("POST", self._member_path(remote_id) + "/actions/delete-permanent")
            else:
                response = self._call("DELETE", self._member_path(remote_id))
            if response.status_code in (200, 204, 404):  # absent (or archived already) counts as deleted
                return WriteResult(remote_id, remote_id=remote_id)
            return problem(remote_id, "E422", _message(response), remote_id=remote_id)

        return self._parallel(one, list(remote_ids))

    def ensure_webhook(self, url: str) -> None:
        """Register ``url`` as a webhook of the audience for subscribe, unsubscribe, profile,
        upemail and cleaned events from every source (idempotent: an existing one is kept, or
        corrected)."""
        path = f"{self._list_path()}/webhooks"
        for hook in self._get(path).get("webhooks") or []:
            if hook.get("url") != url:
                continue
            events, sources = hook.get("events") or {}, hook.get("sources") or {}
            if all(events.get(k) for k in WEBHOOK_EVENTS) and all(sources.get(k) for k in WEBHOOK_SOURCES):
                return
            fix = {"events": {**events, **WEBHOOK_EVENTS}, "sources": WEBHOOK_SOURCES}
            response = self._call("PATCH", f"{path}/{hook['id']}", json=fix)
            if response.status_code != 200:
                raise ConfigError(
                    f"Mailchimp refused to update the webhook: {_message(response)}", code="E743"
                )
            return
        body = {
            "url": url,
            "events": {**WEBHOOK_EVENTS, "campaign": False},
            "sources": WEBHOOK_SOURCES,
        }
        response = self._call("POST", path, json=body)
        if response.status_code != 200:
            raise ConfigError(f"Mailchimp refused the webhook URL {url}: {_message(response)}", code="E743")

    def close(self) -> None:
        self.api.close()

    # ------------------------------------------------------------------ audience

    def _merge_fields(self) -> list[dict[str, Any]]:
        body = self._get(f"{self._list_path()}/merge-fields", {"count": 1000})
        specs = list(body.get("merge_fields") or [])
        self._merge_types = {str(s["tag"]): str(s["type"]) for s in specs}
        return specs

    def _types(self, *, fresh: bool = False) -> dict[str, str]:
        if self._merge_types is None or fresh:
            self._merge_fields()
        assert self._merge_types is not None
        return self._merge_types

    def _interest_names(self, *, fresh: bool = False) -> dict[str, str]:
        if self._interests is None or fresh:
            found: dict[str, str] = {}
            path = f"{self._list_path()}/interest-categories"
            for category in self._get(path, {"count": 1000}).get("categories") or []:
                inner = self._get(f"{path}/{category['id']}/interests", {"count": 1000})
                for interest in inner.get("interests") or []:
                    found[str(interest["id"])] = f"{category.get('title')}: {interest.get('name')}"
            self._interests = found
        return self._interests

    # ------------------------------------------------------------------ writing one by one

    def _parallel(self, work: Callable[[str], T] | Callable[[Any], T], inputs: Sequence[Any]) -> list[T]:
        if len(inputs) <= 1 or self.config.concurrency == 1:
            return [work(x) for x in inputs]
        with ThreadPoolExecutor(max_workers=min(self.config.concurrency, MAX_CONNECTIONS)) as pool:
            return list(pool.map(work, inputs))

    def _guarded(self, p: Plan) -> WriteResult:
        """One item; a transient failure fails the item (retried next run), a rate limit the write."""
        try:
            return self.write_one(p)
        except TransientError as e:
            if e.code == "E502":
                raise
            return problem(p.item.key, e.code, e.message, retryable=True, remote_id=p.item.remote_id)

    def write_one(self, p: Plan) -> WriteResult:
        item = p.item
        if item.remote_id:
            result = self._update(p, item.remote_id, created=False)
            if result is not None:
                return result
            if p.email is None:
                return problem(item.key, "E420", "the member is gone from Mailchimp and has no email address")
        return self._create(p)

    def _create(self, p: Plan) -> WriteResult:
        response = self._call("POST", f"{self._list_path()}/members", json=p.create_body())
        if response.status_code == 200:
            return self._settled(p, response.json(), created=True)
        title = _title(response)
        if title == "Member Exists":
            result = self._update(p, str(p.email), created=False)
            if result is not None:
                return result
        return self._refused(p, response)

    def _update(self, p: Plan, key: str, *, created: bool) -> WriteResult | None:
        """PATCH what the item sets (None: no such member)."""
        body = p.patch_body(with_status=True)
        if body:
            response = self._call("PATCH", self._member_path(key), json=body)
        else:
            response = self._call("GET", self._member_path(key))
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            return self._refused(p, response)
        member = response.json()
        if member.get("status") == "archived" and p.status is None:  # re-added: back as a contact
            response = self._call("PATCH", self._member_path(key), json={"status": "transactional"})
            if response.status_code != 200:
                return self._refused(p, response)
            member = response.json()
        return self._settled(p, member, created=created)

    def _settled(self, p: Plan, member: dict[str, Any], *, created: bool) -> WriteResult:
        """Finish a write: a member who should be subscribed goes through the compliance check."""
        key, remote_id = p.item.key, str(member["contact_id"])
        if p.status is Status.SUBSCRIBED:
            step = resubscribe_step(str(member.get("status")))
            if step == "subscribed":
                response = self._call("PATCH", self._member_path(remote_id), json={"status": "subscribed"})
                if response.status_code == 200:
                    member = response.json()
                elif _title(response) == "Member In Compliance State":
                    step = "pending" if member.get("status") != "pending" else None
                    if step is None:
                        return self._compliance(p, member)
                else:
                    return self._refused(p, response, remote_id=remote_id)
            if step == "pending":
                if member.get("status") == "cleaned":
                    return self._compliance(p, member)
                response = self._call("PATCH", self._member_path(remote_id), json={"status": "pending"})
                if response.status_code != 200:
                    return self._refused(p, response, remote_id=remote_id)
                return self._compliance(p, response.json())
        types = self._types()
        return WriteResult(
            key,
            remote_id=remote_id,
            created=created,
            record=member_record(member, self.config.list_id, types),
        )

    def _compliance(self, p: Plan, member: dict[str, Any]) -> WriteResult:
        status = str(member.get("status"))
        if status == "cleaned":
            why = "bounced (cleaned): Mailchimp will not send to it again, so it stays cleaned"
        else:
            why = "opted out before: it is now pending, and Mailchimp emails the person a confirmation link"
        result = problem(
            p.item.key,
            "E742",
            f"{member.get('email_address')} is in Mailchimp's compliance state and was not set back to "
            f"subscribed; the address {why}",
            remote_id=str(member["contact_id"]),
        )
        result.record = member_record(member, self.config.list_id, self._types())
        return result

    def _refused(self, p: Plan, response: httpx.Response, *, remote_id: str | None = None) -> WriteResult:
        if _title(response) == "Forgotten Email Not Subscribed":
            return problem(p.item.key, "E744", _message(response), remote_id=remote_id)
        if response.status_code >= 500 or response.status_code == 429:
            return problem(p.item.key, "E501", _message(response), retryable=True, remote_id=remote_id)
        return problem(p.item.key, "E422", _message(response), remote_id=remote_id or p.item.remote_id)

    # ------------------------------------------------------------------ batches

    def run_batch(self, operations: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Run ``/batches`` operations; their results by ``operation_id``."""
        response = self._call("POST", "/batches", json={"operations": operations})
        if response.status_code != 200:
            raise TransientError(f"Mailchimp refused the batch: {_message(response)}", code="E501")
        batch = response.json()
        deadline = self.ctx.clock() + self.config.batch_timeout_s
        delay = 1.0
        while batch.get("status") != "finished":
            if self.ctx.clock() >= deadline:
                raise TransientError(
                    f"the Mailchimp batch {batch.get('id')} did not finish within "
                    f"{self.config.batch_timeout_s:.0f} s",
                    code="E501",
                )
            self.ctx.sleep(delay)
            delay = min(delay * 1.5, 10.0)
            batch = self._get(f"/batches/{batch['id']}")
        archive = self.api.request("GET", str(batch["response_body_url"]))  # storage: no API key
        if archive.status_code != 200:
            raise TransientError(
                f"the Mailchimp batch results could not be read (HTTP {archive.status_code})", code="E501"
            )
        out: dict[str, dict[str, Any]] = {}
        with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
            for entry in tar.getmembers():
                handle = tar.extractfile(entry) if entry.isfile() else None
                if handle is not None:
                    out.update({str(r.get("operation_id")): r for r in json.loads(handle.read())})
        return out


def _title(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("title") or "") if isinstance(body, dict) else ""


def _message(response: httpx.Response) -> str:
    """Mailchimp's own words (a problem detail, with the field errors of a validation)."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if not isinstance(body, dict):
        return f"HTTP {response.status_code}"
    text = f"{body.get('title') or 'HTTP ' + str(response.status_code)}: {body.get('detail') or ''}".rstrip(
        ": "
    )
    errors = [
        f"{e.get('field')}: {e.get('message')}" for e in body.get("errors") or [] if isinstance(e, dict)
    ]
    return text + (f" ({'; '.join(errors)})" if errors else "")
