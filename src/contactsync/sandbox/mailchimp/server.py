"""The Mailchimp Marketing API v3 sandbox: routing, authentication, limits and faults.

Built from Mailchimp's published API reference and its official Python client
(``mailchimp-marketing``); the facts it encodes are listed with their sources in
``shared/providers.md`` §5. The data and its rules live in :mod:`.audience`, bulk operations
in :mod:`.batches`, webhook delivery in :mod:`.webhooks`. It serves, under ``/3.0``:

* ``/`` (account), ``/ping``; ``/lists`` and ``/lists/{list_id}``;
* ``/lists/{list_id}/merge-fields[/{merge_id}]``, ``/lists/{list_id}/interest-categories[/{id}/interests]``;
* ``/lists/{list_id}/members`` (list with ``status``, ``since_last_changed``,
  ``before_last_changed``, ``sort_field``, ``sort_dir``, ``count`` ≤ 1000, ``offset``, ``fields``,
  ``exclude_fields``; archived members only when asked by status) and
  ``/lists/{list_id}/members/{subscriber_hash}`` GET/PUT/PATCH/DELETE (archive) and
  ``…/actions/delete-permanent``; the path takes the MD5 hash, the address or the contact_id;
* ``/lists/{list_id}/webhooks[/{id}]``: list webhooks, delivered for real (see
  :mod:`.webhooks`) for changes whose source the webhook ticks;
* ``/batches[/{batch_id}]`` and the unauthenticated results archives under ``/batch-results/``.

Authentication is the API key ``<key>-<dc>``: HTTP Basic with any user name, or Bearer. When
the request's host is ``<dc>.api.mailchimp.com`` the data center must be the key's (403 "Wrong
Datacenter"). At most ``max_connections`` requests per key may be in flight at once (Mailchimp
allows 10); one more is answered 429. Errors are problem details: ``type``, ``title``,
``status``, ``detail``, ``instance`` (+ ``errors`` for validation).

Test knobs: ``now`` (a clock such as :class:`ManualClock`), ``latency`` (real seconds each
request takes, so concurrency is observable), ``error_rate`` (a fraction of requests answered
500/503 before they run, from a seeded RNG), ``burst_429`` (that many 429s in a row).
"""

from __future__ import annotations

import base64
import json
import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import httpx

from contactsync.sandbox.mailchimp.audience import (
    EVENTS,
    SOURCES,
    STATUSES,
    ApiError,
    Audience,
    Event,
    JsonDict,
    invalid,
    iso,
    not_found,
    parse_iso,
    public,
)
from contactsync.sandbox.mailchimp.batches import BatchRunner
from contactsync.sandbox.mailchimp.http import (
    PREFIX,
    LoggedRequest,
    Request,
    Response,
    _error,
    _json,
    _Transport,
    serve_http,
)
from contactsync.sandbox.mailchimp.webhooks import Delivery, WebhookDeliverer
from contactsync.sandbox.serving import ServedSandbox

RESULTS_PREFIX = "/batch-results/"
MAX_COUNT = 1000
DEFAULT_MERGE_FIELDS = (
    {"tag": "FNAME", "name": "First Name", "type": "text"},
    {"tag": "LNAME", "name": "Last Name", "type": "text"},
    {"tag": "ADDRESS", "name": "Address", "type": "address"},
    {"tag": "PHONE", "name": "Phone Number", "type": "phone"},
    {"tag": "BIRTHDAY", "name": "Birthday", "type": "birthday"},
)
SORT_FIELDS = {
    "last_changed": "_lc",
    "timestamp_opt": "timestamp_opt",
    "timestamp_signup": "timestamp_signup",
}


Handler = Callable[..., Response]


class MailchimpSandbox:
    """One Mailchimp account with its audiences, in memory."""

    def __init__(
        self,
        *,
        now: Callable[[], float] | None = None,
        seed: int = 0,
        dc: str = "us19",
        api_key: str | None = None,
        account_id: str = "8d3a3db4d97663a9074efcc16",
        account_name: str = "Sandbox Org",
        max_connections: int = 10,
        latency: float = 0.0,
        error_rate: float = 0.0,
        burst_429: int = 0,
        validate_webhooks: bool = True,
        webhook_client: httpx.Client | None = None,
        signing_secret: str | None = None,
        batch_seconds: float = 5.0,
        max_pending_batches: int = 500,
    ) -> None:
        self.now: Callable[[], float] = now or time.time
        self.rng = random.Random(seed)
        self.dc = dc
        self.api_key = api_key or f"{secrets.token_hex(16)}-{dc}"
        self.api_keys = {self.api_key}
        self.account_id = account_id
        self.account_name = account_name
        self.max_connections = max_connections
        self.latency = latency
        self.error_rate = error_rate
        self.burst_429 = burst_429
        self.validate_webhooks = validate_webhooks
        self.webhooks = WebhookDeliverer(client=webhook_client, signing_secret=signing_secret)
        self.batches = BatchRunner(max_pending=max_pending_batches, batch_seconds=batch_seconds)
        self.lists: dict[str, Audience] = {}
        self.request_log: list[LoggedRequest] = []
        self.max_in_flight = 0
        self.refused_connections = 0
        self._in_flight: dict[str, int] = {}
        self._flight_lock = threading.Lock()
        self._lock = threading.RLock()
        lists, members = r"/lists/(?P<lid>[^/]+)", r"/lists/(?P<lid>[^/]+)/members"
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            (m, re.compile(p), h)
            for m, p, h in (
                ("GET", r"/?", self._root),
                ("GET", r"/ping/?", self._ping),
                ("GET", r"/lists/?", self._get_lists),
                ("POST", r"/lists/?", self._post_list),
                ("GET", lists + "/?", self._get_list),
                ("GET", members + "/?", self._get_members),
                ("POST", members + "/?", self._post_member),
                ("GET", members + r"/(?P<key>[^/]+)/?", self._get_member),
                ("PUT", members + r"/(?P<key>[^/]+)/?", self._put_member),
                ("PATCH", members + r"/(?P<key>[^/]+)/?", self._patch_member),
                ("DELETE", members + r"/(?P<key>[^/]+)/?", self._delete_member),
                ("POST", members + r"/(?P<key>[^/]+)/actions/delete-permanent/?", self._delete_permanent),
                ("GET", lists + "/merge-fields/?", self._get_merge_fields),
                ("POST", lists + "/merge-fields/?", self._post_merge_field),
                ("GET", lists + r"/merge-fields/(?P<mid>[^/]+)/?", self._get_merge_field),
                ("PATCH", lists + r"/merge-fields/(?P<mid>[^/]+)/?", self._patch_merge_field),
                ("DELETE", lists + r"/merge-fields/(?P<mid>[^/]+)/?", self._delete_merge_field),
                ("GET", lists + "/interest-categories/?", self._get_categories),
                ("GET", lists + r"/interest-categories/(?P<cid>[^/]+)/interests/?", self._get_interests),
                ("GET", lists + "/webhooks/?", self._get_webhooks),
                ("POST", lists + "/webhooks/?", self._post_webhook),
                ("GET", lists + r"/webhooks/(?P<wid>[^/]+)/?", self._get_webhook),
                ("PATCH", lists + r"/webhooks/(?P<wid>[^/]+)/?", self._patch_webhook),
                ("DELETE", lists + r"/webhooks/(?P<wid>[^/]+)/?", self._delete_webhook),
                ("GET", r"/batches/?", self._get_batches),
                ("POST", r"/batches/?", self._post_batch),
                ("GET", r"/batches/(?P<bid>[^/]+)/?", self._get_batch),
                ("DELETE", r"/batches/(?P<bid>[^/]+)/?", self._delete_batch),
            )
        ]

    # ------------------------------------------------------------------ transports

    def transport(self) -> httpx.BaseTransport:
        """An in-process transport for an ``httpx.Client`` (answers for every host)."""
        return _Transport(self)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> ServedSandbox:
        """The same API behind a real HTTP server on ``host:port`` (0 = a free port)."""
        return serve_http(self, host, port)

    def close(self) -> None:
        self.webhooks.close()

    def handle(self, req: Request) -> Response:
        """Answer one request (both transports call this)."""
        if req.path.startswith(RESULTS_PREFIX):
            return self._logged(req, self._results(req))
        try:
            key = self._authenticate(req)
        except ApiError as e:
            return self._logged(req, _error(e))
        with self._flight_lock:
            flying = self._in_flight.get(key, 0)
            if flying >= self.max_connections:
                self.refused_connections += 1
                refused = ApiError(
                    429,
                    "Too Many Requests",
                    f"You have exceeded the limit of {self.max_connections} simultaneous connections.",
                )
                return self._logged(req, _error(refused))
            self._in_flight[key] = flying + 1
            self.max_in_flight = max(self.max_in_flight, flying + 1)
        try:
            if self.latency:
                time.sleep(self.latency)
            with self._lock:
                try:
                    response = self._dispatch(req)
                except ApiError as e:
                    response = _error(e)
                return self._logged(req, response)
        finally:
            with self._flight_lock:
                self._in_flight[key] -= 1

    def _logged(self, req: Request, response: Response) -> Response:
        with self._lock:
            query = urlencode(req.query, doseq=True)
            self.request_log.append(LoggedRequest(self.now(), req.method, req.path, query, response.status))
        return response

    def _authenticate(self, req: Request) -> str:
        header = req.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        key = ""
        if scheme.lower() == "basic":
            try:
                key = base64.b64decode(value.strip()).decode("utf-8").partition(":")[2]
            except ValueError:
                key = ""
        elif scheme.lower() in ("bearer", "apikey"):
            key = value.strip()
        if not header:
            raise ApiError(
                401,
                "API Key Missing",
                "Your request did not include an API key. Use HTTP Basic with any user name and the key.",
            )
        if key not in self.api_keys:
            raise ApiError(
                401,
                "API Key Invalid",
                "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
            )
        host = req.headers.get("host", "").split(":")[0].lower()
        wanted = key.rpartition("-")[2]
        if host.endswith(".api.mailchimp.com") and host.split(".")[0] != wanted:
            raise ApiError(
                403, "Wrong Datacenter", f"The API key provided is linked to datacenter '{wanted}'."
            )
        return key

    def _dispatch(self, req: Request) -> Response:
        if self.burst_429 > 0:
            self.burst_429 -= 1
            raise ApiError(
                429, "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections."
            )
        if self.error_rate > 0 and self.rng.random() < self.error_rate:
            status = self.rng.choice((500, 503))
            raise ApiError(
                status, "Internal Server Error", "An unexpected internal error has occurred. Please retry."
            )
        if not (req.path == PREFIX or req.path.startswith(PREFIX + "/")):
            raise not_found()
        path = req.path[len(PREFIX) :] or "/"
        allowed = False
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if method == req.method:
                return handler(req, **match.groupdict())
            allowed = True
        if allowed:
            raise ApiError(405, "Method Not Allowed", "The requested method and resource are not compatible.")
        raise not_found()

    # ------------------------------------------------------------------ the account owner and the person

    def create_list(self, name: str, *, double_optin: bool = False, merge_fields: bool = True) -> str:
        with self._lock:
            audience = Audience(
                secrets.token_hex(5), name, self.now(), 100_000 + len(self.lists), double_optin=double_optin
            )
            if merge_fields:
                for spec in DEFAULT_MERGE_FIELDS:
                    audience.add_merge_field(spec)
            self.lists[audience.id] = audience
            return audience.id

    def add_merge_field(self, list_id: str, name: str, type_: str = "text", **options: Any) -> str:
        with self._lock:
            return str(self._list(list_id).add_merge_field({"name": name, "type": type_, **options})["tag"])

    def add_interest(self, list_id: str, category: str, name: str) -> str:
        with self._lock:
            return self._list(list_id).add_interest(category, name)[1]

    def seed_members(self, list_id: str, rows: list[JsonDict], *, source: str = "admin") -> list[str]:
        """Add members as the account owner would (an import); their contact ids."""
        with self._lock:
            audience = self._list(list_id)
            out = []
            for row in rows:
                body = {"status": "subscribed", **row}
                member, events = audience.add(body, self.now(), source, skip_validation=True)
                self._fire(events)
                out.append(str(member["contact_id"]))
            return out

    def edit(self, list_id: str, key: str, *, source: str = "admin", **changes: Any) -> None:
        """Change a member's ``email_address``, ``merge_fields``, ``interests`` … in the UI."""
        with self._lock:
            _, events = self._list(list_id).patch(key, changes, self.now(), source, skip_validation=True)
            self._fire(events)

    def set_status(self, list_id: str, key: str, status: str, *, source: str = "admin") -> None:
        self.edit(list_id, key, source=source, status=status)

    def unsubscribe(self, list_id: str, key: str) -> None:
        """The person clicks "unsubscribe" in an email."""
        self.set_status(list_id, key, "unsubscribed", source="user")

    def subscribe(self, list_id: str, key: str) -> None:
        """The person subscribes again on the audience's form (this lifts a compliance state)."""
        self.set_status(list_id, key, "subscribed", source="user")

    def clean(self, list_id: str, key: str) -> None:
        """The address bounced hard."""
        self.set_status(list_id, key, "cleaned", source="admin")

    def confirm(self, list_id: str, key: str) -> None:
        """The person clicks the link of the opt-in confirmation email."""
        with self._lock:
            self._fire(self._list(list_id).confirm(key, self.now()))

    def archive(self, list_id: str, key: str, *, source: str = "admin") -> None:
        with self._lock:
            self._fire(self._list(list_id).archive(key, self.now(), source))

    def delete_permanent(self, list_id: str, key: str, *, source: str = "admin") -> None:
        with self._lock:
            self._fire(self._list(list_id).delete_permanent(key, self.now(), source))

    def send_campaign(self, list_id: str, subject: str) -> str:
        """A campaign is sent to the audience (fires ``campaign`` webhooks)."""
        with self._lock:
            campaign = secrets.token_hex(5)
            data = {"id": campaign, "subject": subject, "status": "sent", "reason": "", "list_id": list_id}
            self._fire([Event("campaign", "admin", list_id, data, self.now())])
            return campaign

    def member(self, list_id: str, key: str, *, include_archived: bool = False) -> JsonDict | None:
        """The member as ``GET …/members/{key}`` shows it, or None."""
        with self._lock:
            found = self._list(list_id).find(key)
            if found is None or (found["status"] == "archived" and not include_archived):
                return None
            return public(found)

    def members(self, list_id: str, *, include_archived: bool = False) -> list[JsonDict]:
        with self._lock:
            audience = self._list(list_id)
            return [
                public(m) for m in audience.members.values() if include_archived or m["status"] != "archived"
            ]

    @property
    def confirmations(self) -> list[str]:
        """Addresses Mailchimp emailed an opt-in confirmation to (a member set ``pending``)."""
        with self._lock:
            return [email for audience in self.lists.values() for email in audience.confirmations]

    @property
    def deliveries(self) -> list[Delivery]:
        return list(self.webhooks.deliveries)

    def api_requests(self) -> list[LoggedRequest]:
        with self._lock:
            return [r for r in self.request_log if r.path.startswith(PREFIX)]

    # ------------------------------------------------------------------ account, lists

    def _root(self, req: Request) -> Response:
        return _json(
            200,
            {
                "account_id": self.account_id,
                "login_id": "1",
                "account_name": self.account_name,
                "email": "owner@example.com",
                "username": "sandbox",
                "role": "owner",
                "member_since": iso(0),
                "pricing_plan_type": "monthly",
                "total_subscribers": sum(len(a.active()) for a in self.lists.values()),
                "_links": [],
            },
        )

    def _ping(self, req: Request) -> Response:
        return _json(200, {"health_status": "Everything's Chimpy!"})

    def _list(self, lid: str) -> Audience:
        audience = self.lists.get(lid)
        if audience is None:
            raise not_found()
        return audience

    def _render_list(self, audience: Audience) -> JsonDict:
        counts = {s: sum(1 for m in audience.members.values() if m["status"] == s) for s in STATUSES}
        return {
            "id": audience.id,
            "web_id": audience.web_id,
            "name": audience.name,
            "contact": {
                "company": self.account_name,
                "address1": "",
                "city": "",
                "state": "",
                "zip": "",
                "country": "US",
            },
            "permission_reminder": "You signed up on our website.",
            "use_archive_bar": True,
            "campaign_defaults": {
                "from_name": self.account_name,
                "from_email": "owner@example.com",
                "subject": "",
                "language": "en",
            },
            "notify_on_subscribe": "",
            "notify_on_unsubscribe": "",
            "date_created": iso(audience.created_at),
            "list_rating": 0,
            "email_type_option": False,
            "subscribe_url_short": "",
            "subscribe_url_long": "",
            "beamer_address": "",
            "visibility": "prv",
            "double_optin": audience.double_optin,
            "has_welcome": False,
            "marketing_permissions": False,
            "modules": [],
            "stats": {
                "member_count": counts["subscribed"],
                "total_contacts": len(audience.active()),
                "unsubscribe_count": counts["unsubscribed"],
                "cleaned_count": counts["cleaned"],
                "member_count_since_send": counts["subscribed"],
                "unsubscribe_count_since_send": counts["unsubscribed"],
                "cleaned_count_since_send": counts["cleaned"],
                "campaign_count": 0,
                "merge_field_count": len(audience.merge_fields),
                "last_sub_date": "",
                "last_unsub_date": "",
            },
            "_links": [],
        }

    def _get_lists(self, req: Request) -> Response:
        items = [self._render_list(a) for a in self.lists.values()]
        count, offset = _paging(req)
        return _json(
            200,
            _select(req, {"lists": items[offset : offset + count], "total_items": len(items), "_links": []}),
        )

    def _post_list(self, req: Request) -> Response:
        body = _object(req)
        if not body.get("name"):
            raise invalid(
                "The resource submitted could not be validated.", [{"field": "name", "message": "Required"}]
            )
        lid = self.create_list(str(body["name"]), double_optin=bool(body.get("double_optin", False)))
        return _json(200, self._render_list(self.lists[lid]))

    def _get_list(self, req: Request, lid: str) -> Response:
        return _json(200, _select(req, self._render_list(self._list(lid))))

    # ------------------------------------------------------------------ members

    def _render_member(self, member: Mapping[str, Any]) -> JsonDict:
        return public(member) | {"_links": []}

    def _get_members(self, req: Request, lid: str) -> Response:
        audience = self._list(lid)
        status = req.arg("status")
        if status is not None and status not in STATUSES:
            raise invalid(f"status must be one of {', '.join(STATUSES)}.")
        since, before = req.arg("since_last_changed"), req.arg("before_last_changed")
        after = parse_iso(since) if since else None
        until = parse_iso(before) if before else None
        found = [
            m
            for m in audience.members.values()
            if (m["status"] == status if status else m["status"] != "archived")
            and (after is None or int(m["_lc"]) > after)
            and (until is None or int(m["_lc"]) < until)
        ]
        sort_field = req.arg("sort_field")
        if sort_field is not None:
            if sort_field not in SORT_FIELDS:
                raise invalid(f"sort_field must be one of {', '.join(SORT_FIELDS)}.")
            key = SORT_FIELDS[sort_field]
            descending = (req.arg("sort_dir") or "ASC").upper() == "DESC"
            found.sort(key=lambda m: (m[key], m["_seq"]), reverse=descending)
        else:
            found.sort(key=lambda m: m["_seq"])
        count, offset = _paging(req)
        page = [self._render_member(m) for m in found[offset : offset + count]]
        return _json(
            200, _select(req, {"members": page, "list_id": lid, "total_items": len(found), "_links": []})
        )

    def _get_member(self, req: Request, lid: str, key: str) -> Response:
        return _json(200, _select(req, self._render_member(self._list(lid).member(key))))

    def _post_member(self, req: Request, lid: str) -> Response:
        skip = req.arg("skip_merge_validation") == "true"
        member, events = self._list(lid).add(_object(req), self.now(), "api", skip_validation=skip)
        self._fire(events)
        return _json(200, self._render_member(member))

    def _put_member(self, req: Request, lid: str, key: str) -> Response:
        skip = req.arg("skip_merge_validation") == "true"
        member, events = self._list(lid).upsert(key, _object(req), self.now(), "api", skip_validation=skip)
        self._fire(events)
        return _json(200, self._render_member(member))

    def _patch_member(self, req: Request, lid: str, key: str) -> Response:
        skip = req.arg("skip_merge_validation") == "true"
        member, events = self._list(lid).patch(key, _object(req), self.now(), "api", skip_validation=skip)
        self._fire(events)
        return _json(200, self._render_member(member))

    def _delete_member(self, req: Request, lid: str, key: str) -> Response:
        self._fire(self._list(lid).archive(key, self.now(), "api"))
        return Response(204)

    def _delete_permanent(self, req: Request, lid: str, key: str) -> Response:
        self._fire(self._list(lid).delete_permanent(key, self.now(), "api"))
        return Response(204)

    # ------------------------------------------------------------------ merge fields, interests

    def _get_merge_fields(self, req: Request, lid: str) -> Response:
        items = list(self._list(lid).merge_fields.values())
        count, offset = _paging(req)
        body = {
            "merge_fields": items[offset : offset + count],
            "list_id": lid,
            "total_items": len(items),
            "_links": [],
        }
        return _json(200, _select(req, body))

    def _post_merge_field(self, req: Request, lid: str) -> Response:
        return _json(200, self._list(lid).add_merge_field(_object(req)))

    def _get_merge_field(self, req: Request, lid: str, mid: str) -> Response:
        return _json(200, self._list(lid).merge_field(mid))

    def _patch_merge_field(self, req: Request, lid: str, mid: str) -> Response:
        item = self._list(lid).merge_field(mid)
        body = _object(req)
        for name in ("name", "required", "default_value", "public", "display_order", "help_text", "options"):
            if name in body:
                item[name] = body[name]
        return _json(200, item)

    def _delete_merge_field(self, req: Request, lid: str, mid: str) -> Response:
        audience = self._list(lid)
        item = audience.merge_field(mid)
        del audience.merge_fields[item["merge_id"]]
        for member in audience.members.values():
            member["merge_fields"].pop(item["tag"], None)
        return Response(204)

    def _get_categories(self, req: Request, lid: str) -> Response:
        items = [
            {k: v for k, v in c.items() if k != "interests"} for c in self._list(lid).categories.values()
        ]
        return _json(200, {"list_id": lid, "categories": items, "total_items": len(items), "_links": []})

    def _get_interests(self, req: Request, lid: str, cid: str) -> Response:
        category = self._list(lid).categories.get(cid)
        if category is None:
            raise not_found()
        items = list(category["interests"].values())
        return _json(200, {"interests": items, "list_id": lid, "category_id": cid, "total_items": len(items)})

    # ------------------------------------------------------------------ webhooks

    def _get_webhooks(self, req: Request, lid: str) -> Response:
        items = list(self._list(lid).webhooks.values())
        return _json(200, {"webhooks": items, "list_id": lid, "total_items": len(items), "_links": []})

    def _post_webhook(self, req: Request, lid: str) -> Response:
        audience = self._list(lid)
        body = _object(req)
        url = str(body.get("url") or "")
        if not url.startswith(("http://", "https://")):
            raise invalid(
                "The resource submitted could not be validated.",
                [{"field": "url", "message": "A valid URL is required."}],
            )
        if any(w["url"] == url for w in audience.webhooks.values()):
            raise invalid(f"A webhook with the URL {url} already exists for this list.")
        if self.validate_webhooks:
            self._lock.release()  # the check calls out; the receiver may call the API back
            try:
                ok = self.webhooks.validate(url)
            finally:
                self._lock.acquire()
            if not ok:
                raise invalid(
                    "The resource submitted could not be validated.",
                    [
                        {
                            "field": "url",
                            "message": "We couldn't verify the URL: it must answer a GET with 200.",
                        }
                    ],
                )
        hook: JsonDict = {
            "id": secrets.token_hex(5),
            "url": url,
            "events": _flags(body.get("events"), EVENTS, default=True),
            "sources": _flags(body.get("sources"), SOURCES, default=True),
            "list_id": lid,
            "_links": [],
        }
        audience.webhooks[hook["id"]] = hook
        return _json(200, hook)

    def _webhook(self, lid: str, wid: str) -> JsonDict:
        hook = self._list(lid).webhooks.get(wid)
        if hook is None:
            raise not_found()
        return hook

    def _get_webhook(self, req: Request, lid: str, wid: str) -> Response:
        return _json(200, self._webhook(lid, wid))

    def _patch_webhook(self, req: Request, lid: str, wid: str) -> Response:
        hook = self._webhook(lid, wid)
        body = _object(req)
        if "url" in body:
            hook["url"] = str(body["url"])
        if "events" in body:
            hook["events"] |= _flags(body["events"], EVENTS, default=False, only_given=True)
        if "sources" in body:
            hook["sources"] |= _flags(body["sources"], SOURCES, default=False, only_given=True)
        return _json(200, hook)

    def _delete_webhook(self, req: Request, lid: str, wid: str) -> Response:
        self._webhook(lid, wid)
        del self._list(lid).webhooks[wid]
        return Response(204)

    def _fire(self, events: list[Event]) -> None:
        for event in events:
            audience = self.lists.get(event.list_id)
            for hook in list(audience.webhooks.values()) if audience else []:
                if hook["events"].get(event.type) and hook["sources"].get(event.source):
                    self.webhooks.enqueue(hook["url"], event)

    # ------------------------------------------------------------------ batches

    def _get_batches(self, req: Request) -> Response:
        items = [self.batches.render(b, req.origin) for b in self.batches.batches.values()]
        count, offset = _paging(req)
        return _json(
            200, {"batches": items[offset : offset + count], "total_items": len(items), "_links": []}
        )

    def _post_batch(self, req: Request) -> Response:
        return _json(200, self.batches.render(self.batches.start(req.json(), self.now()), req.origin))

    def _get_batch(self, req: Request, bid: str) -> Response:
        def execute(op: Mapping[str, Any]) -> tuple[int, str]:
            path = "/" + str(op["path"]).lstrip("/")
            params = {str(k): [str(v)] for k, v in (op.get("params") or {}).items()}
            inner = Request(
                str(op["method"]),
                PREFIX + path,
                params,
                req.headers,
                str(op.get("body") or "").encode(),
                req.origin,
            )
            try:
                answer = self._dispatch(inner)
            except ApiError as e:
                answer = _error(e)
            return answer.status, answer.body.decode("utf-8")

        return _json(200, self.batches.render(self.batches.poll(bid, self.now(), execute), req.origin))

    def _delete_batch(self, req: Request, bid: str) -> Response:
        self.batches.delete(bid)
        return Response(204)

    def _results(self, req: Request) -> Response:
        bid = req.path[len(RESULTS_PREFIX) :].removesuffix(".tar.gz")
        with self._lock:
            batch = self.batches.batches.get(bid)
            if batch is None or not batch.archive:
                return Response(
                    404, {"content-type": "application/xml"}, b"<Error><Code>NoSuchKey</Code></Error>"
                )
            return Response(200, {"content-type": "application/x-gzip"}, batch.archive)


# ---------------------------------------------------------------------- helpers


def _object(req: Request) -> JsonDict:
    body = req.json()
    if not isinstance(body, dict):
        raise ApiError(400, "JSON Parse Error", "The request body must be a JSON object.")
    return body


def _paging(req: Request) -> tuple[int, int]:
    try:
        count = int(req.arg("count") or 10)
        offset = int(req.arg("offset") or 0)
    except ValueError:
        raise invalid("count and offset must be integers.") from None
    if count < 1 or count > MAX_COUNT or offset < 0:
        raise invalid(f"count must be between 1 and {MAX_COUNT}, offset 0 or more.")
    return count, offset


def _flags(value: Any, names: tuple[str, ...], *, default: bool, only_given: bool = False) -> dict[str, bool]:
    given = value if isinstance(value, Mapping) else {}
    if only_given:
        return {k: bool(v) for k, v in given.items() if k in names}
    return {name: bool(given.get(name, default if not given else False)) for name in names}


def _select(req: Request, body: JsonDict) -> JsonDict:
    """``fields`` / ``exclude_fields``: comma-separated dotted paths (``members.email_address``)."""
    fields = [f for f in (req.arg("fields") or "").split(",") if f]
    exclude = [f for f in (req.arg("exclude_fields") or "").split(",") if f]
    if exclude:
        body = json.loads(json.dumps(body))  # dropping must not touch the stored members
    if fields:
        body = _keep(body, [f.split(".") for f in fields])
    for path in exclude:
        _drop(body, path.split("."))
    return body


def _keep(value: Any, paths: list[list[str]]) -> Any:
    if isinstance(value, list):
        return [_keep(v, paths) for v in value]
    if not isinstance(value, dict) or any(not p for p in paths):
        return value
    out = {}
    for name in dict.fromkeys(p[0] for p in paths):
        if name in value:
            out[name] = _keep(value[name], [p[1:] for p in paths if p[0] == name])
    return out


def _drop(value: Any, path: list[str]) -> None:
    if isinstance(value, list):
        for v in value:
            _drop(v, path)
    elif isinstance(value, dict) and path:
        if len(path) == 1:
            value.pop(path[0], None)
        elif path[0] in value:
            _drop(value[path[0]], path[1:])
