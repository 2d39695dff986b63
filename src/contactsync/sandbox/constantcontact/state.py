"""The Constant Contact sandbox's state: its settings, stores and contact internals."""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from contactsync.sandbox.constantcontact.model import (
    DAY,
    EMAIL_RE,
    MAX_LENGTHS,
    PERMISSIONS,
    SUBRESOURCES,
    TOP_LEVEL,
    ApiError,
    App,
    JsonDict,
    LoggedRequest,
    SandboxResponse,
    _Activity,
    _Code,
    _Refresh,
    _Token,
    iso,
)

Route = tuple[str, re.Pattern[str], Callable[..., SandboxResponse]]


class SandboxState:
    """The account's state and the internals that keep contact records consistent; the
    parts of the sandbox (authorization server, contacts, activities) build on it."""

    def __init__(
        self,
        *,
        now: Callable[[], float] | None = None,
        seed: int = 0,
        account_id: str = "a07e1ksandbox",
        organization_name: str = "Sandbox Org",
        access_token_ttl: float = 86_400.0,
        refresh_idle_ttl: float = 180 * DAY,
        code_ttl: float = 300.0,
        rate_limit_per_s: int = 4,
        daily_limit: int = 10_000,
        token_rate_limit_per_s: int = 1,
        retry_after: bool = True,
        error_rate: float = 0.0,
        burst_429: int = 0,
        burst_retry_after: float = 1.0,
        confirmed_opt_in: bool = False,
        activity_seconds: float = 2.0,
        import_max_rows: int = 40_000,
        import_max_bytes: int = 4 * 1024 * 1024,
        consent: bool = True,
    ) -> None:
        self.now: Callable[[], float] = now or time.time
        self.rng = random.Random(seed)
        self.account_id = account_id
        self.organization_name = organization_name
        self.access_token_ttl = access_token_ttl
        self.refresh_idle_ttl = refresh_idle_ttl
        self.code_ttl = code_ttl
        self.rate_limit_per_s = rate_limit_per_s
        self.daily_limit = daily_limit
        self.token_rate_limit_per_s = token_rate_limit_per_s
        self.retry_after = retry_after
        self.error_rate = error_rate
        self.burst_429 = burst_429
        self.burst_retry_after = burst_retry_after
        self.confirmed_opt_in = confirmed_opt_in
        self.activity_seconds = activity_seconds
        self.import_max_rows = import_max_rows
        self.import_max_bytes = import_max_bytes
        self.consent = consent  # False: the user refuses on the consent screen
        self.request_log: list[LoggedRequest] = []
        self.apps: dict[str, App] = {}
        self._lock = threading.RLock()
        self._codes: dict[str, _Code] = {}
        self._tokens: dict[str, _Token] = {}
        self._refresh: dict[str, _Refresh] = {}
        self._contacts: dict[str, JsonDict] = {}
        self._order: list[str] = []  # contact ids in creation order (a cursor's position)
        self._by_email: dict[str, str] = {}
        self._lists: dict[str, JsonDict] = {}
        self._custom_fields: dict[str, JsonDict] = {}
        self._activities: dict[str, _Activity] = {}
        self._recent: dict[str, deque[float]] = {}
        self._daily: dict[tuple[str, int], int] = {}

    # ------------------------------------------------------------------ contact internals

    def _create(self, body: Mapping[str, Any], *, source: str) -> JsonDict:
        email = body.get("email_address")
        if email is not None:
            self._validate_email(email["address"])
            permission = email.get("permission_to_send") or (
                "explicit" if source == "Contact" else "implicit"
            )
            if permission not in PERMISSIONS:
                raise ApiError(
                    400,
                    "contacts.api.validation.error",
                    f"permission_to_send must be one of {', '.join(PERMISSIONS)}.",
                )
        fields = {k: body[k] for k in TOP_LEVEL if body.get(k) is not None}
        self._validate_fields(fields)
        if body.get("list_memberships"):
            self._check_lists(body["list_memberships"])
        custom = self._custom_values(body.get("custom_fields") or [])
        now = self.now()
        cid = str(uuid.uuid4())
        contact: JsonDict = {
            "contact_id": cid,
            **{k: None for k in TOP_LEVEL},
            **fields,
            "create_source": source,
            "update_source": source,
            "deleted_at": None,
            "custom_fields": custom,
            "phone_numbers": list(body.get("phone_numbers") or []),
            "street_addresses": list(body.get("street_addresses") or []),
            "list_memberships": list(dict.fromkeys(body.get("list_memberships") or [])),
            "taggings": list(body.get("taggings") or []),
            "notes": list(body.get("notes") or []),
            "_created": int(now),
            "_updated": int(now),
            "_opt_out": None,
        }
        contact["email_address"] = None
        if email is not None:
            contact["email_address"] = {
                "address": email["address"],
                "permission_to_send": "not_set",
                "created_at": iso(now),
                "updated_at": iso(now),
                "opt_in_source": None,
                "opt_in_date": None,
                "opt_out_source": None,
                "opt_out_date": None,
                "opt_out_reason": None,
                "confirm_status": "off",
            }
            self._set_permission(contact, permission, source, email.get("opt_out_reason"))
            self._by_email[email["address"].strip().lower()] = cid
        self._contacts[cid] = contact
        self._order.append(cid)
        return contact

    def _set_permission(self, contact: JsonDict, permission: str, source: str, reason: str | None) -> None:
        email = contact.get("email_address")
        if email is None or email["permission_to_send"] == permission:
            return
        now = self.now()
        email["permission_to_send"] = permission
        email["updated_at"] = iso(now)
        if permission == "unsubscribed":
            email.update(opt_out_source=source, opt_out_date=iso(now), opt_out_reason=reason)
            contact["_opt_out"] = int(now)
            return
        email.update(opt_out_source=None, opt_out_date=None, opt_out_reason=None)
        contact["_opt_out"] = None
        if permission in ("explicit", "implicit"):
            email["opt_in_date"] = iso(now)
            if email.get("opt_in_source") is None or permission == "explicit":
                email["opt_in_source"] = source
            email["confirm_status"] = (
                "confirmed" if email["confirm_status"] == "pending" else email["confirm_status"]
            )
        elif permission == "pending_confirmation":
            email["confirm_status"] = "pending"

    def _change_email(self, contact: JsonDict, address: str) -> None:
        self._validate_email(address)
        email = contact.get("email_address")
        key = address.strip().lower()
        other = self._by_email.get(key)
        if other is not None and other != contact["contact_id"]:
            raise ApiError(409, "contacts.api.conflict", f"Email already exists for contact {other}.")
        if email is None:
            contact["email_address"] = {
                "address": address,
                "permission_to_send": "not_set",
                "confirm_status": "off",
            }
        elif email["address"] != address:
            self._by_email.pop(email["address"].strip().lower(), None)
            email["address"] = address
            email["updated_at"] = iso(self.now())
        self._by_email[key] = contact["contact_id"]

    def _delete(self, contact: JsonDict) -> None:
        if not contact.get("deleted_at"):
            contact["deleted_at"] = datetime.fromtimestamp(self.now(), UTC).date().isoformat()
            self._touch(contact, "Account")

    def _touch(self, contact: JsonDict, source: str) -> None:
        contact["_updated"] = int(self.now())
        contact["update_source"] = source

    def _contact(self, cid: str) -> JsonDict:
        contact = self._contacts.get(cid)
        if contact is None:
            raise KeyError(f"no contact {cid}")
        return contact

    def _api_contact(self, cid: str) -> JsonDict:
        if not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", cid):
            raise ApiError(404, "contacts.api.not_found", "contact_id is in an invalid format.")
        contact = self._contacts.get(cid)
        if contact is None:
            raise ApiError(404, "contacts.api.not_found", f"Contact {cid} was not found.")
        return contact

    def _render(self, contact: JsonDict, include: frozenset[str] | set[str]) -> JsonDict:
        out: JsonDict = {"contact_id": contact["contact_id"]}
        email = contact.get("email_address")
        if email is not None:
            out["email_address"] = {k: v for k, v in email.items() if v is not None}
        for name in TOP_LEVEL:
            if contact.get(name) is not None:
                out[name] = contact[name]
        out["create_source"] = contact["create_source"]
        out["update_source"] = contact["update_source"]
        out["created_at"] = iso(contact["_created"])
        out["updated_at"] = iso(contact["_updated"])
        if contact.get("deleted_at"):
            out["deleted_at"] = contact["deleted_at"]
        for name in SUBRESOURCES:
            if name in include:
                out[name] = [dict(x) if isinstance(x, dict) else x for x in contact[name]]
        return out

    def _validate_email(self, address: str) -> None:
        if not EMAIL_RE.match(address) or len(address) > 80:
            raise ApiError(
                400, "contacts.api.validation.error", f"The email address {address!r} is not valid."
            )

    def _validate_fields(self, fields: Mapping[str, Any]) -> None:
        for name, value in fields.items():
            if name in ("birthday_month", "birthday_day"):
                top = 12 if name == "birthday_month" else 31
                if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                    raise ApiError(
                        400, "contacts.api.validation.error", f"{name} must be an integer from 1 to {top}."
                    )
            elif not isinstance(value, str):
                raise ApiError(400, "contacts.api.validation.error", f"{name} must be a string.")
            elif len(value) > MAX_LENGTHS.get(name, 255):
                raise ApiError(
                    400,
                    "contacts.api.validation.error",
                    f"{name} must be at most {MAX_LENGTHS.get(name, 255)} characters.",
                )

    def _custom_values(self, items: list[Any]) -> list[JsonDict]:
        if len(items) > 25:
            raise ApiError(400, "contacts.api.validation.error", "A contact holds at most 25 custom fields.")
        out = []
        for item in items:
            cf_id = item.get("custom_field_id") if isinstance(item, dict) else None
            if cf_id not in self._custom_fields:
                raise ApiError(400, "contacts.api.validation.error", f"Custom field {cf_id} does not exist.")
            value = item.get("value")
            if value is not None and (not isinstance(value, str) or len(value) > 255):
                raise ApiError(
                    400,
                    "contacts.api.validation.error",
                    "A custom field value is a string of at most 255 characters.",
                )
            out.append({"custom_field_id": cf_id, "value": value})
        return out

    def _merge_custom(self, contact: JsonDict, cf: JsonDict) -> None:
        for existing in contact["custom_fields"]:
            if existing["custom_field_id"] == cf["custom_field_id"]:
                existing["value"] = cf["value"]
                return
        contact["custom_fields"].append(cf)

    def _check_lists(self, lists: list[Any]) -> None:
        if len(lists) > 50:
            raise ApiError(
                400, "contacts.api.validation.error", "A contact can be a member of at most 50 lists."
            )
        for list_id in lists:
            if list_id not in self._lists:
                raise ApiError(400, "contacts.api.validation.error", f"List {list_id} does not exist.")
