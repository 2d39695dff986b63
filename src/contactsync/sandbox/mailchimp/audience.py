"""One Mailchimp audience (a *list* in API v3) in memory: merge fields, interests, members and
the status rules of Mailchimp's API, with the webhook events each change fires.

Every change goes through :class:`Audience`; it raises :class:`ApiError` with Mailchimp's titles
("Member Exists", "Member In Compliance State", "Forgotten Email Not Subscribed" …) and returns
the :class:`Event` list the change fires, tagged with its source (``api``, ``admin`` for the
account owner in Mailchimp's UI, ``user`` for the person on a form or an email link).

Status rules (shared/providers.md §5.3):

* ``subscribed, unsubscribed, cleaned, pending, transactional`` are writable; ``archived`` is
  what ``DELETE`` leaves behind (the member is hidden from listings unless asked by status).
* A member who ever unsubscribed or was cleaned is in a *compliance state*: the API refuses to
  set it back to ``subscribed`` (400 "Member In Compliance State"); ``pending`` is allowed for
  an unsubscribed member (Mailchimp emails a confirmation) and refused for a cleaned one. Only
  the person lifts the state: confirming that email, or subscribing on a form (``user``).
* A permanently deleted address is *forgotten*: it cannot be added again through the API.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JsonDict = dict[str, Any]

WRITABLE_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
STATUSES = (*WRITABLE_STATUSES, "archived")
OPTED_OUT = frozenset({"unsubscribed", "cleaned"})
SOURCES = ("user", "admin", "api")
EVENTS = ("subscribe", "unsubscribe", "profile", "cleaned", "upemail", "campaign")
MERGE_TYPES = frozenset(
    {"text", "number", "address", "phone", "date", "url", "imageurl", "radio", "dropdown", "birthday", "zip"}
)
ADDRESS_KEYS = ("addr1", "addr2", "city", "state", "zip", "country")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ERROR_DOCS = "https://mailchimp.com/developer/marketing/docs/errors/"


class ApiError(Exception):
    """An error answer in Mailchimp's problem-detail shape."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        errors: list[JsonDict] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.errors = errors
        self.headers = dict(headers or {})

    def body(self) -> JsonDict:
        out: JsonDict = {
            "type": ERROR_DOCS,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": secrets.token_hex(16),
        }
        if self.errors:
            out["errors"] = self.errors
        return out


def not_found() -> ApiError:
    return ApiError(404, "Resource Not Found", "The requested resource could not be found.")


def invalid(detail: str, errors: list[JsonDict] | None = None) -> ApiError:
    return ApiError(400, "Invalid Resource", detail, errors=errors)


@dataclass(frozen=True)
class Event:
    """A list-webhook event: ``data`` is nested (``{"merges": {"FNAME": …}}``)."""

    type: str
    source: str
    list_id: str
    data: JsonDict
    fired_at: float


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 of the lower-cased address."""
    return hashlib.md5(email.strip().lower().encode("utf-8"), usedforsecurity=False).hexdigest()


def iso(ts: float) -> str:
    """Mailchimp's timestamps: ISO 8601 with an explicit UTC offset, second resolution."""
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def parse_iso(value: str) -> float:
    text = value.strip().replace(" ", "+")
    if len(text) == 10:
        text += "T00:00:00+00:00"
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"{value!r} is not an ISO 8601 time such as 2015-10-21T15:41:36+00:00.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@dataclass
class Audience:
    id: str
    name: str
    created_at: float
    web_id: int
    double_optin: bool = False
    merge_fields: dict[int, JsonDict] = field(default_factory=dict)
    categories: dict[str, JsonDict] = field(default_factory=dict)  # id → category with "interests"
    members: dict[str, JsonDict] = field(default_factory=dict)  # contact_id → member (with _ keys)
    by_hash: dict[str, str] = field(default_factory=dict)  # subscriber_hash → contact_id
    forgotten: set[str] = field(default_factory=set)  # hashes of permanently deleted addresses
    webhooks: dict[str, JsonDict] = field(default_factory=dict)
    confirmations: list[str] = field(default_factory=list)  # addresses sent an opt-in confirmation
    _merge_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _order: itertools.count[int] = field(default_factory=itertools.count)

    # ------------------------------------------------------------------ merge fields, interests

    def add_merge_field(self, body: Mapping[str, Any]) -> JsonDict:
        name = str(body.get("name") or "").strip()
        kind = str(body.get("type") or "")
        if not name or kind not in MERGE_TYPES:
            raise invalid(
                "A merge field needs a name and a type.",
                [{"field": "type", "message": f"type must be one of {', '.join(sorted(MERGE_TYPES))}"}],
            )
        merge_id = next(self._merge_ids)
        tag = str(body.get("tag") or f"MMERGE{merge_id}").upper()
        if not re.fullmatch(r"[A-Z0-9_]{1,10}", tag) or any(
            f["tag"] == tag for f in self.merge_fields.values()
        ):
            raise invalid(f"The merge tag {tag!r} is invalid or already used in this audience.")
        item = {
            "merge_id": merge_id,
            "tag": tag,
            "name": name,
            "type": kind,
            "required": bool(body.get("required", False)),
            "default_value": str(body.get("default_value") or ""),
            "public": bool(body.get("public", True)),
            "display_order": merge_id + 1,
            "options": dict(body.get("options") or {}),
            "help_text": str(body.get("help_text") or ""),
            "list_id": self.id,
        }
        self.merge_fields[merge_id] = item
        return item

    def merge_field(self, merge_id: str) -> JsonDict:
        item = self.merge_fields.get(int(merge_id)) if merge_id.isdigit() else None
        if item is None:
            raise not_found()
        return item

    def add_interest(self, category_title: str, name: str) -> tuple[str, str]:
        category = next((c for c in self.categories.values() if c["title"] == category_title), None)
        if category is None:
            category = {
                "list_id": self.id,
                "id": secrets.token_hex(5),
                "title": category_title,
                "display_order": len(self.categories),
                "type": "checkboxes",
                "interests": {},
            }
            self.categories[category["id"]] = category
        interest_id = secrets.token_hex(5)
        category["interests"][interest_id] = {
            "category_id": category["id"],
            "list_id": self.id,
            "id": interest_id,
            "name": name,
            "subscriber_count": "0",
            "display_order": len(category["interests"]),
        }
        for member in self.members.values():
            member["interests"][interest_id] = False
        return category["id"], interest_id

    def interest_ids(self) -> list[str]:
        return [i for c in self.categories.values() for i in c["interests"]]

    # ------------------------------------------------------------------ finding members

    def find(self, key: str) -> JsonDict | None:
        """A member by subscriber hash, email address or contact_id (archived ones included)."""
        text = key.strip()
        cid = self.by_hash.get(text.lower()) or self.by_hash.get(subscriber_hash(text))
        if cid is None and text in self.members:
            cid = text
        return self.members.get(cid) if cid else None

    def member(self, key: str) -> JsonDict:
        found = self.find(key)
        if found is None:
            raise not_found()
        return found

    def active(self) -> list[JsonDict]:
        return [m for m in self.members.values() if m["status"] != "archived"]

    # ------------------------------------------------------------------ writes

    def add(
        self, body: Mapping[str, Any], now: float, source: str, *, skip_validation: bool = False
    ) -> tuple[JsonDict, list[Event]]:
        """``POST /lists/{id}/members``: a new member; ``status`` is required."""
        email = _email(body.get("email_address"))
        status = _status(body.get("status"), "status")
        if self.find(email) is not None:
            raise ApiError(
                400,
                "Member Exists",
                f"{email} is already a list member. Use PUT to insert or update list members.",
            )
        return self._create(email, status, body, now, source, skip_validation)

    def upsert(
        self, key: str, body: Mapping[str, Any], now: float, source: str, *, skip_validation: bool = False
    ) -> tuple[JsonDict, list[Event]]:
        """``PUT /lists/{id}/members/{subscriber_hash}``: ``status_if_new`` for a new member,
        ``status`` for an existing one."""
        email = _email(body.get("email_address"))
        if body.get("status_if_new") is None and body.get("status") is None:
            raise invalid(
                "The resource submitted could not be validated.",
                [{"field": "status_if_new", "message": "status_if_new is required for a new member."}],
            )
        member = self.find(key)
        if member is None:
            if key.strip().lower() not in (subscriber_hash(email), email.lower()):
                raise (
                    not_found()
                    if self.find(email) is None
                    else invalid("The subscriber hash in the URL does not match the email address.")
                )
            status = _status(body.get("status_if_new") or body.get("status"), "status_if_new")
            return self._create(email, status, body, now, source, skip_validation)
        if member["status"] == "archived":
            status = _status(body.get("status") or body.get("status_if_new"), "status")
            return self._update(member, {**body, "status": status}, now, source, skip_validation)
        return self._update(member, body, now, source, skip_validation)

    def patch(
        self, key: str, body: Mapping[str, Any], now: float, source: str, *, skip_validation: bool = False
    ) -> tuple[JsonDict, list[Event]]:
        """``PATCH /lists/{id}/members/{subscriber_hash}``: only the given properties."""
        return self._update(self.member(key), body, now, source, skip_validation)

    def archive(self, key: str, now: float, source: str) -> list[Event]:
        """``DELETE /lists/{id}/members/{subscriber_hash}``."""
        member = self.member(key)
        if member["status"] == "archived":
            raise not_found()
        member["_before_archive"] = member["status"]
        member["status"] = "archived"
        self._touch(member, now)
        return [self._event("unsubscribe", source, member, now, action="delete", reason="manual")]

    def delete_permanent(self, key: str, now: float, source: str) -> list[Event]:
        """``POST …/actions/delete-permanent``: gone, and the address is forgotten."""
        member = self.member(key)
        event = self._event("unsubscribe", source, member, now, action="delete", reason="manual")
        del self.members[member["contact_id"]]
        self.by_hash.pop(member["id"], None)
        self.forgotten.add(member["id"])
        return [event]

    def confirm(self, key: str, now: float) -> list[Event]:
        """The person clicks the confirmation link of a ``pending`` member."""
        member = self.member(key)
        if member["status"] != "pending":
            raise invalid(f"{member['email_address']} is not pending confirmation.")
        return self._set_status(member, "subscribed", now, "user")

    # ------------------------------------------------------------------ internals

    def _create(
        self,
        email: str,
        status: str,
        body: Mapping[str, Any],
        now: float,
        source: str,
        skip_validation: bool,
    ) -> tuple[JsonDict, list[Event]]:
        digest = subscriber_hash(email)
        if digest in self.forgotten:
            raise ApiError(
                400,
                "Forgotten Email Not Subscribed",
                f"{email} was permanently deleted and cannot be re-imported. "
                "The contact must re-subscribe to get back on the list.",
            )
        merges = self._merge_values(
            body.get("merge_fields") or {}, creating=True, required=not skip_validation
        )
        contact_id = secrets.token_hex(16)
        member: JsonDict = {
            "id": digest,
            "email_address": email,
            "unique_email_id": secrets.token_hex(5),
            "contact_id": contact_id,
            "full_name": "",
            "web_id": 100_000 + len(self.members),
            "email_type": _email_type(body.get("email_type", "html")),
            "status": "transactional",
            "unsubscribe_reason": "",
            "consents_to_one_to_one_messaging": True,
            "merge_fields": merges,
            "interests": dict.fromkeys(self.interest_ids(), False),
            "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
            "ip_signup": str(body.get("ip_signup") or ""),
            "timestamp_signup": str(body.get("timestamp_signup") or ""),
            "ip_opt": str(body.get("ip_opt") or ""),
            "timestamp_opt": "",
            "member_rating": 2,
            "last_changed": iso(now),
            "language": str(body.get("language") or ""),
            "vip": bool(body.get("vip", False)),
            "email_client": "",
            "location": {
                "latitude": 0,
                "longitude": 0,
                "gmtoff": 0,
                "dstoff": 0,
                "country_code": "",
                "timezone": "",
            },
            "source": "API - Generic"
            if source == "api"
            else "Admin Add"
            if source == "admin"
            else "Hosted Form",
            "tags_count": 0,
            "tags": [],
            "list_id": self.id,
            "_lc": now,
            "_seq": next(self._order),
            "_compliance": False,
        }
        member["interests"].update(self._interest_values(body.get("interests") or {}))
        member["full_name"] = _full_name(merges)
        self.members[contact_id] = member
        self.by_hash[digest] = contact_id
        events = self._set_status(member, status, now, source, new=True)
        return member, [e for e in events if e.type == "subscribe"]  # adding opted-out fires nothing

    def _update(
        self, member: JsonDict, body: Mapping[str, Any], now: float, source: str, skip_validation: bool
    ) -> tuple[JsonDict, list[Event]]:
        events: list[Event] = []
        new_email = body.get("email_address")
        changed_profile = False
        if new_email is not None and str(new_email).strip().lower() != member["email_address"].lower():
            email = _email(new_email)
            if self.find(email) is not None:
                raise ApiError(400, "Member Exists", f"{email} is already a list member.")
            if subscriber_hash(email) in self.forgotten:
                raise ApiError(
                    400,
                    "Forgotten Email Not Subscribed",
                    f"{email} was permanently deleted and cannot be re-added.",
                )
            old = member["email_address"]
            self.by_hash.pop(member["id"], None)
            member["email_address"], member["id"] = email, subscriber_hash(email)
            self.by_hash[member["id"]] = member["contact_id"]
            self._touch(member, now)
            events.append(
                Event(
                    "upemail",
                    source,
                    self.id,
                    {
                        "list_id": self.id,
                        "new_id": member["unique_email_id"],
                        "new_email": email,
                        "old_email": old,
                    },
                    now,
                )
            )
        if "merge_fields" in body:
            merges = self._merge_values(body.get("merge_fields") or {}, creating=False)
            if any(member["merge_fields"].get(k) != v for k, v in merges.items()):
                member["merge_fields"].update(merges)
                member["full_name"] = _full_name(member["merge_fields"])
                changed_profile = True
        if "interests" in body:
            values = self._interest_values(body.get("interests") or {})
            if any(member["interests"].get(k) != v for k, v in values.items()):
                member["interests"].update(values)
                changed_profile = True
        for name in ("email_type", "language", "vip"):
            if name in body and body[name] != member[name]:
                member[name] = _email_type(body[name]) if name == "email_type" else body[name]
                changed_profile = True
        if changed_profile:
            self._touch(member, now)
            if member["status"] != "archived":
                events.append(self._event("profile", source, member, now))
        if body.get("status") is not None:
            events += self._set_status(member, _status(body["status"], "status"), now, source)
        return member, events

    def _set_status(
        self, member: JsonDict, status: str, now: float, source: str, *, new: bool = False
    ) -> list[Event]:
        current = member["status"]
        if not new and status == current:
            return []
        before = member.get("_before_archive", current) if current == "archived" else current
        blocked = member["_compliance"] or before in OPTED_OUT
        if (
            source != "user"
            and blocked
            and (status == "subscribed" or (status == "pending" and before == "cleaned"))
        ):
            raise ApiError(
                400,
                "Member In Compliance State",
                f"{member['email_address']} is in a compliance state due to unsubscribe, bounce, or "
                "compliance review and cannot be subscribed.",
            )
        member["status"] = status
        member.pop("_before_archive", None)
        self._touch(member, now)
        if status in OPTED_OUT:
            member["_compliance"] = True
        if status == "pending" and source != "user":
            self.confirmations.append(member["email_address"])
        if status == "subscribed":
            if source == "user":
                member["_compliance"] = False
            member["timestamp_opt"] = iso(now)
            return [self._event("subscribe", source, member, now)]
        if status == "unsubscribed":
            member["unsubscribe_reason"] = {
                "user": "N/A (Unsubscribed by the contact)",
                "admin": "N/A (Unsubscribed by an admin)",
                "api": "N/A (Unsubscribed by API)",
            }[source]
            return [self._event("unsubscribe", source, member, now, action="unsub", reason="manual")]
        if status == "cleaned":
            return [
                Event(
                    "cleaned",
                    source,
                    self.id,
                    {
                        "list_id": self.id,
                        "campaign_id": "",
                        "reason": "hard",
                        "email": member["email_address"],
                    },
                    now,
                )
            ]
        return []

    def _touch(self, member: JsonDict, now: float) -> None:
        member["_lc"] = max(now, member["_lc"])
        member["last_changed"] = iso(member["_lc"])

    def _event(self, kind: str, source: str, member: JsonDict, now: float, **extra: str) -> Event:
        merges = {
            "EMAIL": member["email_address"],
            **{k: _flat(v) for k, v in member["merge_fields"].items()},
        }
        data: JsonDict = {
            "id": member["unique_email_id"],
            "list_id": self.id,
            "email": member["email_address"],
            "email_type": member["email_type"],
            "merges": merges,
            "ip_opt": member["ip_opt"],
            "web_id": str(member["web_id"]),
        }
        if kind == "subscribe":
            data["ip_signup"] = member["ip_signup"]
        data.update(extra)
        return Event(kind, source, self.id, data, now)

    def _merge_values(self, values: Any, *, creating: bool, required: bool = False) -> JsonDict:
        if not isinstance(values, Mapping):
            raise invalid("merge_fields must be an object of merge tag → value.")
        by_tag = {f["tag"]: f for f in self.merge_fields.values()}
        out: JsonDict = {}
        errors: list[JsonDict] = []
        for tag, value in values.items():
            spec = by_tag.get(str(tag).upper())
            if spec is None:
                errors.append({"field": f"merge_fields.{tag}", "message": "Merge field does not exist."})
                continue
            try:
                out[spec["tag"]] = _merge_value(spec, value)
            except ValueError as e:
                errors.append({"field": spec["tag"], "message": str(e)})
        if required:
            for spec in by_tag.values():
                if spec["required"] and out.get(spec["tag"]) in (None, ""):
                    errors.append({"field": spec["tag"], "message": "Please enter a value"})
        if errors:
            raise invalid("Your merge fields were invalid.", errors)
        if creating:
            out = {f["tag"]: _empty(f) for f in by_tag.values()} | out
        return out

    def _interest_values(self, values: Any) -> dict[str, bool]:
        if not isinstance(values, Mapping):
            raise invalid("interests must be an object of interest id → boolean.")
        known = set(self.interest_ids())
        unknown = [k for k in values if k not in known]
        if unknown:
            raise invalid(f"Invalid interest ID: '{unknown[0]}'.")
        return {str(k): bool(v) for k, v in values.items()}


# ---------------------------------------------------------------------- values


def _email(value: Any) -> str:
    text = str(value or "").strip()
    if not EMAIL_RE.match(text):
        raise invalid(
            f"{text or 'An empty address'} looks fake or invalid, please enter a real email address.",
            [{"field": "email_address", "message": "This value should be a valid email."}],
        )
    return text


def _status(value: Any, name: str) -> str:
    if value not in WRITABLE_STATUSES:
        raise invalid(
            "The resource submitted could not be validated.",
            [{"field": name, "message": f"{name} must be one of {', '.join(WRITABLE_STATUSES)}."}],
        )
    return str(value)


def _email_type(value: Any) -> str:
    if value not in ("html", "text"):
        raise invalid("email_type must be html or text.")
    return str(value)


def _merge_value(spec: Mapping[str, Any], value: Any) -> Any:
    kind = spec["type"]
    if value is None or value == "":
        return _empty(spec)
    if kind == "number":
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError("Please enter a number") from None
        return int(number) if number.is_integer() else number
    if kind == "address":
        if not isinstance(value, Mapping) or not all(value.get(k) for k in ("addr1", "city", "state", "zip")):
            raise ValueError("Please enter a complete address")
        return {k: str(value.get(k) or "") for k in ADDRESS_KEYS}
    if kind == "date":
        text = str(value)
        try:
            datetime.strptime(text, "%Y-%m-%d")
        except ValueError:
            raise ValueError("Please enter a date as YYYY-MM-DD") from None
        return text
    if kind == "birthday":
        if not re.fullmatch(r"(0[1-9]|1[0-2])/(0[1-9]|[12]\d|3[01])", str(value)):
            raise ValueError("Please enter a birthday as MM/DD")
        return str(value)
    text = str(value)
    if len(text) > 255:
        raise ValueError("Value must be 255 characters or fewer")
    return text


def _empty(spec: Mapping[str, Any]) -> Any:
    return {k: "" for k in ADDRESS_KEYS} if spec["type"] == "address" else ""


def _flat(value: Any) -> Any:
    if isinstance(value, Mapping):
        return "  ".join(str(v) for v in value.values() if v)
    return value


def _full_name(merges: Mapping[str, Any]) -> str:
    return " ".join(str(merges.get(k) or "") for k in ("FNAME", "LNAME")).strip()


def public(item: Mapping[str, Any]) -> JsonDict:
    return {k: v for k, v in item.items() if not k.startswith("_")}
