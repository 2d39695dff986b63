"""Mailchimp members ↔ the engine's records: fields, list statuses, write plans (pure).

**Fields** keep Mailchimp's names: ``email_address`` (the match key, mandatory), the audience's
merge tags (``FNAME``, ``LNAME``, ``PHONE``, ``BIRTHDAY``, custom ones …), ``language``,
``vip``, ``email_type``, and read-only ``status``, ``unsubscribe_reason``, ``last_changed``,
``timestamp_opt``, ``timestamp_signup``, ``member_rating``. Address merge fields (an object of
six parts) are left out. Mailchimp returns an empty merge field as ``""``; we read it as None
and write None as ``""``.

**Lists.** The source's audience is one list (id = the audience id); each interest (group) of
the audience is another, ``interest:<interest id>``.

================  ==========================================================================
Mailchimp         our status
================  ==========================================================================
``subscribed``    ``subscribed`` on the audience
``pending``       ``pending`` (the double opt-in confirmation is not done)
``unsubscribed``  ``unsubscribed``
``cleaned``       ``cleaned`` (the address bounced)
``transactional`` nothing: the person never subscribed to marketing email
``archived``      a deletion (a tombstone), never a status
interest ``true`` ``subscribed`` on that interest (``pending`` while the member is pending);
                  ``false`` reads as nothing: not being in a group is not an unsubscribe
================  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from contactsync.connectors.base import FieldInfo, RecordProblem, RemoteRecord, WriteItem, WriteResult
from contactsync.hub.consent import Status

INTEREST = "interest:"
TOP_LEVEL = ("language", "vip", "email_type")
READ_ONLY = (
    "status",
    "unsubscribe_reason",
    "last_changed",
    "timestamp_opt",
    "timestamp_signup",
    "member_rating",
)
FIELD_TYPES = {"number": "number", "phone": "phone", "date": "date"}  # every other merge type: string

STANDARD_FIELDS = [
    FieldInfo("email_address", "Email address", "email", required=True),
    FieldInfo("language", "Language", "string"),
    FieldInfo("vip", "VIP", "boolean"),
    FieldInfo("email_type", "Email type (html or text)", "string"),
    FieldInfo("status", "Mailchimp status", "string", writable=False),
    FieldInfo("unsubscribe_reason", "Unsubscribe reason", "string", writable=False),
    FieldInfo("last_changed", "Last changed", "datetime", writable=False),
    FieldInfo("timestamp_opt", "Opt-in time", "datetime", writable=False),
    FieldInfo("timestamp_signup", "Signup time", "datetime", writable=False),
    FieldInfo("member_rating", "Member rating", "integer", writable=False),
]

READ_STATUS = {
    "subscribed": Status.SUBSCRIBED,
    "pending": Status.PENDING,
    "unsubscribed": Status.UNSUBSCRIBED,
    "cleaned": Status.CLEANED,
}


def merge_field_info(spec: Mapping[str, Any]) -> FieldInfo | None:
    """A merge field as the mapping UI shows it (None for address fields)."""
    if spec.get("type") == "address":
        return None
    kind = FIELD_TYPES.get(str(spec.get("type")), "string")
    return FieldInfo(str(spec["tag"]), str(spec.get("name") or spec["tag"]), kind, bool(spec.get("required")))


def member_fields(member: Mapping[str, Any], merge_types: Mapping[str, str]) -> dict[str, Any]:
    """A member as flat fields (``merge_types``: tag → Mailchimp type, of the audience)."""
    out: dict[str, Any] = {"email_address": member.get("email_address")}
    merges = member.get("merge_fields") or {}
    for tag, kind in merge_types.items():
        if kind != "address":
            value = merges.get(tag)
            out[tag] = None if value in (None, "") else value
    for name in (*TOP_LEVEL, *READ_ONLY):
        value = member.get(name)
        out[name] = None if value == "" else value
    return out


def member_lists(member: Mapping[str, Any], list_id: str) -> dict[str, Status]:
    status = READ_STATUS.get(str(member.get("status")))
    out: dict[str, Status] = {list_id: status} if status is not None else {}
    in_group = Status.PENDING if status is Status.PENDING else Status.SUBSCRIBED
    for interest, chosen in (member.get("interests") or {}).items():
        if chosen:
            out[INTEREST + interest] = in_group
    return out


def member_record(member: Mapping[str, Any], list_id: str, merge_types: Mapping[str, str]) -> RemoteRecord:
    changed = member.get("last_changed")
    return RemoteRecord(
        remote_id=str(member["contact_id"]),
        fields=member_fields(member, merge_types),
        lists=member_lists(member, list_id),
        updated_at=epoch_ms(str(changed)) if changed else None,
    )


# ---------------------------------------------------------------------- writes


@dataclass
class Plan:
    """A write item checked and translated into Mailchimp's terms."""

    index: int
    item: WriteItem
    email: str | None
    email_set: bool  # the item changes the address
    merges: dict[str, Any] = field(default_factory=dict)
    top: dict[str, Any] = field(default_factory=dict)
    interests: dict[str, bool] = field(default_factory=dict)
    status: Status | None = None  # wanted on the audience

    def patch_body(self, *, with_status: bool) -> dict[str, Any]:
        """The PATCH body: only what the item sets. ``subscribed`` is never sent here: it goes
        through the compliance check (:func:`resubscribe_step`)."""
        body: dict[str, Any] = {}
        if self.email_set and self.email:
            body["email_address"] = self.email
        if self.merges:
            body["merge_fields"] = dict(self.merges)
        if self.interests:
            body["interests"] = dict(self.interests)
        body.update(self.top)
        if with_status and self.status is not None and self.status is not Status.SUBSCRIBED:
            body["status"] = self.status.value
        return body

    def create_body(self) -> dict[str, Any]:
        body = self.patch_body(with_status=False)
        body["email_address"] = self.email
        body["status"] = self.status.value if self.status is not None else "transactional"
        return body


def plan(
    index: int, item: WriteItem, list_id: str, merge_types: Mapping[str, str], interests: set[str]
) -> Plan | WriteResult:
    """Check one item; a WriteResult with a problem when it cannot be written."""
    value = item.fields.get("email_address", item.match.get("email_address"))
    email = str(value).strip() if value not in (None, "") else None
    if email is None and (item.remote_id is None or "email_address" in item.fields):
        return problem(item.key, "E420", "Mailchimp needs an email address (email_address is empty)")
    out = Plan(index, item, email, "email_address" in item.fields)
    for name, value in item.fields.items():
        if name == "email_address" or name in READ_ONLY:
            continue
        if name in TOP_LEVEL:
            if name == "vip":
                out.top[name] = bool(value)
            elif name == "email_type" and value not in ("html", "text", None):
                return problem(item.key, "E424", f"email_type must be html or text, not {value!r}")
            elif value is not None:
                out.top[name] = str(value)
            continue
        kind = merge_types.get(name)
        if kind is None:
            return problem(item.key, "E424", f"{name!r} is not a merge field of this Mailchimp audience")
        if kind == "address":
            return problem(
                item.key, "E424", f"{name} is an address merge field, which contactsync does not sync"
            )
        if value in (None, ""):
            out.merges[name] = ""
        elif kind == "number":
            try:
                number = float(value)
            except (TypeError, ValueError):
                return problem(item.key, "E424", f"{name} must be a number, not {value!r}")
            out.merges[name] = int(number) if number.is_integer() else number
        else:
            out.merges[name] = str(value)
    for lst, status in item.lists.items():
        if lst == list_id:
            out.status = status
        elif lst.startswith(INTEREST) and lst[len(INTEREST) :] in interests:
            out.interests[lst[len(INTEREST) :]] = status in (Status.SUBSCRIBED, Status.PENDING)
        else:
            return problem(
                item.key, "E422", f"{lst!r} is neither this Mailchimp audience nor one of its groups"
            )
    return out


def resubscribe_step(current: str) -> str | None:
    """For a member whose Mailchimp status is ``current`` and who should be subscribed: the
    status to write next (None: nothing, it is subscribed). An opted-out member is never set
    back to ``subscribed``: ``pending`` asks the person to confirm instead."""
    if current == "subscribed":
        return None
    if current in ("unsubscribed", "cleaned"):
        return "pending"
    return "subscribed"  # pending, transactional, archived


def problem(
    key: str, code: str, message: str, *, retryable: bool = False, remote_id: str | None = None
) -> WriteResult:
    return WriteResult(key, remote_id=remote_id, problem=RecordProblem(code, message, retryable))


def epoch_ms(text: str) -> int:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
