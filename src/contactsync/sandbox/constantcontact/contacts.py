"""The Constant Contact sandbox's account, contacts, custom fields and lists: the API endpoints
and the helpers that act as a person in CC's own UI."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from contactsync.sandbox.constantcontact.activities import ActivitiesMixin
from contactsync.sandbox.constantcontact.model import (
    INCLUDES,
    PERMISSIONS,
    STATUS_FILTERS,
    SUBRESOURCES,
    TOP_LEVEL,
    ApiError,
    JsonDict,
    SandboxRequest,
    SandboxResponse,
    _b64,
    _includes,
    _int_arg,
    _json,
    _object_body,
    _public,
    _within,
    iso,
    parse_iso,
)


class ContactsMixin(ActivitiesMixin):  # a contact write moves the bulk activities along
    """Contacts, custom fields and lists, through the API and as a user."""

    # ------------------------------------------------------------------ as a user in CC's UI

    def create_list(self, name: str, description: str | None = None) -> str:
        with self._lock:
            return str(self._new_list({"name": name, "description": description})["list_id"])

    def create_custom_field(self, label: str, type_: str = "string") -> str:
        with self._lock:
            return str(self._new_custom_field({"label": label, "type": type_})["custom_field_id"])

    def seed_contacts(self, rows: list[JsonDict]) -> list[str]:
        """Create contacts as the account owner would (``create_source: Account``). A row holds
        ``email_address`` (a string or CC's object), contact properties, and optionally
        ``permission_to_send``, ``list_memberships`` and ``custom_fields``."""
        with self._lock:
            ids = []
            for row in rows:
                body = dict(row)
                email = body.pop("email_address", None)
                permission = body.pop("permission_to_send", "implicit")
                if isinstance(email, str):
                    email = {"address": email, "permission_to_send": permission}
                if email is not None:
                    body["email_address"] = email
                body["create_source"] = "Account"
                ids.append(str(self._create(body, source="Account")["contact_id"]))
            return ids

    def edit(self, contact_id: str, **changes: Any) -> None:
        """Change contact properties (a person editing the contact in CC's UI)."""
        with self._lock:
            contact = self._contact(contact_id)
            for name, value in changes.items():
                if name == "email_address":
                    self._change_email(contact, str(value))
                elif name in SUBRESOURCES:
                    contact[name] = list(value or [])
                else:
                    contact[name] = value
            self._touch(contact, "Account")

    def unsubscribe(self, contact_id: str, *, reason: str | None = None, source: str = "Contact") -> None:
        """The person opts out (account-wide: CC's unsubscribe covers every list)."""
        with self._lock:
            contact = self._contact(contact_id)
            self._set_permission(contact, "unsubscribed", source, reason)
            self._touch(contact, source)

    def set_permission(self, contact_id: str, permission: str, *, source: str = "Account") -> None:
        with self._lock:
            contact = self._contact(contact_id)
            self._set_permission(contact, permission, source, None)
            self._touch(contact, source)

    def add_to_list(self, contact_id: str, list_id: str) -> None:
        with self._lock:
            contact = self._contact(contact_id)
            if list_id not in contact["list_memberships"]:
                contact["list_memberships"].append(list_id)
            self._touch(contact, "Account")

    def remove_from_list(self, contact_id: str, list_id: str) -> None:
        with self._lock:
            contact = self._contact(contact_id)
            if list_id in contact["list_memberships"]:
                contact["list_memberships"].remove(list_id)
            self._touch(contact, "Account")

    def delete(self, contact_id: str) -> None:
        with self._lock:
            self._delete(self._contact(contact_id))

    def contact(self, contact_id: str, *, include_deleted: bool = True) -> JsonDict | None:
        """The contact as ``GET /contacts/{id}?include=<everything>`` shows it (None if absent)."""
        with self._lock:
            self._tick()
            contact = self._contacts.get(contact_id)
            if contact is None or (contact.get("deleted_at") and not include_deleted):
                return None
            return self._render(contact, INCLUDES)

    def find(self, email: str) -> JsonDict | None:
        with self._lock:
            cid = self._by_email.get(email.strip().lower())
            return self.contact(cid) if cid else None

    def contacts(self, *, include_deleted: bool = False) -> list[JsonDict]:
        with self._lock:
            self._tick()
            return [
                self._render(c, INCLUDES)
                for c in self._contacts.values()
                if include_deleted or not c.get("deleted_at")
            ]

    def list_ids(self) -> list[str]:
        with self._lock:
            return list(self._lists)

    def custom_field_names(self) -> dict[str, str]:
        """custom_field_id → name."""
        with self._lock:
            return {k: str(v["name"]) for k, v in self._custom_fields.items()}

    # ------------------------------------------------------------------ account

    def _get_account(self, req: SandboxRequest) -> SandboxResponse:
        return _json(
            200,
            {
                "contact_email": "owner@example.com",
                "contact_phone": "5555550100",
                "country_code": "US",
                "encoded_account_id": self.account_id,
                "first_name": "Sandbox",
                "last_name": "Owner",
                "organization_name": self.organization_name,
                "organization_phone": "5555550100",
                "state_code": "MA",
                "time_zone_id": "US/Eastern",
                "website": "https://example.com",
            },
        )

    # ------------------------------------------------------------------ contacts

    def _list_contacts(self, req: SandboxRequest) -> SandboxResponse:
        cursor = req.arg("cursor")
        if cursor is not None:
            try:
                state = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
                query: dict[str, str] = state["q"]
                after = int(state["after"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "contacts.api.bad.request", "The cursor is invalid.") from None
        else:
            query = {k: v[0] for k, v in req.query.items()}
            after = -1
        limit = _int_arg(query.get("limit"), "limit", 50)
        if not 1 <= limit <= 500:
            raise ApiError(400, "contacts.api.validation.error", "limit must be between 1 and 500.")
        include = _includes(query.get("include"))
        matches = self._matcher(query)
        page: list[JsonDict] = []
        position = after + 1
        while position < len(self._order) and len(page) < limit:
            contact = self._contacts[self._order[position]]
            if matches(contact):
                page.append(contact)
            position += 1
        body: JsonDict = {"contacts": [self._render(c, include) for c in page]}
        if query.get("include_count") == "true":
            body["contacts_count"] = sum(1 for c in self._contacts.values() if matches(c))
        more = any(matches(self._contacts[cid]) for cid in self._order[position:])
        if page and more:
            token = _b64(json.dumps({"q": query, "after": position - 1}).encode())
            body["_links"] = {"next": {"href": f"/v3/contacts?cursor={token}"}}
        return _json(200, body)

    def _matcher(self, query: Mapping[str, str]) -> Callable[[JsonDict], bool]:
        statuses = set((query.get("status") or "").split(",")) - {""}
        if not statuses <= STATUS_FILTERS:
            raise ApiError(
                400,
                "contacts.api.validation.error",
                f"status must be one of {', '.join(sorted(STATUS_FILTERS))}.",
            )
        bounds: dict[str, float] = {}
        for name in (
            "updated_after",
            "updated_before",
            "created_after",
            "created_before",
            "optout_after",
            "optout_before",
        ):
            if query.get(name):
                try:
                    bounds[name] = parse_iso(query[name])
                except ValueError:
                    raise ApiError(
                        400, "contacts.api.validation.error", f"{name} must be an ISO-8601 date."
                    ) from None
        email = (query.get("email") or "").strip().lower()
        lists = set((query.get("lists") or "").split(",")) - {""}
        if len(lists) > 25:
            raise ApiError(400, "contacts.api.validation.error", "lists accepts at most 25 list ids.")

        def matches(contact: JsonDict) -> bool:
            email_address = contact.get("email_address") or {}
            permission = email_address.get("permission_to_send", "not_set")
            deleted = bool(contact.get("deleted_at"))
            if not statuses:
                keep = not deleted
            elif "all" in statuses:
                keep = True
            else:
                keep = ("deleted" in statuses and deleted) or (
                    not deleted
                    and (permission in statuses or ("active" in statuses and permission != "unsubscribed"))
                )
            if not keep:
                return False
            if email and email_address.get("address", "").lower() != email:
                return False
            if lists and not lists & set(contact["list_memberships"]):
                return False
            if not _within(contact["_updated"], bounds.get("updated_after"), bounds.get("updated_before")):
                return False
            if not _within(contact["_created"], bounds.get("created_after"), bounds.get("created_before")):
                return False
            if "optout_after" in bounds or "optout_before" in bounds:
                opt_out = contact.get("_opt_out")
                return opt_out is not None and _within(
                    opt_out, bounds.get("optout_after"), bounds.get("optout_before")
                )
            return True

        return matches

    def _create_contact(self, req: SandboxRequest) -> SandboxResponse:
        body = _object_body(req)
        if body.get("create_source") not in ("Contact", "Account"):
            raise ApiError(
                400, "contacts.api.validation.error", "create_source is required: Contact or Account."
            )
        if not any(body.get(k) for k in ("first_name", "last_name", "email_address", "sms_channel")):
            raise ApiError(
                400,
                "contacts.api.validation.error",
                "At least one of first_name, last_name, email_address or sms_channel is required.",
            )
        email = body.get("email_address")
        if email is not None:
            if not isinstance(email, dict) or not isinstance(email.get("address"), str):
                raise ApiError(400, "contacts.api.validation.error", "email_address.address is required.")
            existing = self._by_email.get(email["address"].strip().lower())
            if existing is not None:
                raise ApiError(409, "contacts.api.conflict", f"Email already exists for contact {existing}.")
        contact = self._create(body, source=str(body["create_source"]))
        return _json(201, self._render(contact, INCLUDES))

    def _sign_up_form(self, req: SandboxRequest) -> SandboxResponse:
        body = _object_body(req)
        lists = body.get("list_memberships")
        if not isinstance(lists, list) or not 1 <= len(lists) <= 50:
            raise ApiError(
                400, "contacts.api.validation.error", "list_memberships must hold 1 to 50 list ids."
            )
        self._check_lists(lists)
        address = body.get("email_address")
        if not isinstance(address, str) or not address:
            raise ApiError(400, "contacts.api.validation.error", "email_address is required.")
        self._validate_email(address)
        fields = {k: body[k] for k in TOP_LEVEL if k in body}
        self._validate_fields(fields)
        custom = self._custom_values(body.get("custom_fields") or [])
        cid = self._by_email.get(address.strip().lower())
        if cid is None:
            permission = "pending_confirmation" if self.confirmed_opt_in else "explicit"
            new = {
                **fields,
                "email_address": {"address": address, "permission_to_send": permission},
                "list_memberships": list(dict.fromkeys(lists)),
                "custom_fields": custom,
            }
            if body.get("phone_number"):
                new["phone_numbers"] = [{"phone_number": body["phone_number"], "kind": "other"}]
            contact = self._create(new, source="Contact")
            return _json(201, {"contact_id": contact["contact_id"], "action": "created"})
        contact = self._contacts[cid]
        contact.update(fields)  # a partial update: only the properties sent change
        for cf in custom:
            self._merge_custom(contact, cf)
        for list_id in lists:
            if list_id not in contact["list_memberships"]:
                contact["list_memberships"].append(list_id)
        if body.get("phone_number"):
            phones = contact["phone_numbers"]
            if phones:
                phones[0]["phone_number"] = body["phone_number"]
            else:
                phones.append({"phone_number": body["phone_number"], "kind": "other"})
        contact["deleted_at"] = None  # updating a deleted contact restores it
        self._set_permission(contact, "explicit", "Contact", None)  # updated contacts become explicit
        self._touch(contact, "Contact")
        return _json(200, {"contact_id": cid, "action": "updated"})

    def _get_contact(self, req: SandboxRequest, cid: str) -> SandboxResponse:
        contact = self._api_contact(cid)
        return _json(200, self._render(contact, _includes(req.arg("include"))))

    def _put_contact(self, req: SandboxRequest, cid: str) -> SandboxResponse:
        contact = self._api_contact(cid)
        body = _object_body(req)
        source = body.get("update_source")
        if source not in ("Contact", "Account"):
            raise ApiError(
                400, "contacts.api.validation.error", "update_source is required: Contact or Account."
            )
        fields = {k: body.get(k) for k in TOP_LEVEL}  # omitted top-level properties become null
        self._validate_fields({k: v for k, v in fields.items() if v is not None})
        email = body.get("email_address")
        if email is not None:
            if not isinstance(email, dict) or not isinstance(email.get("address"), str):
                raise ApiError(400, "contacts.api.validation.error", "email_address.address is required.")
            self._validate_email(email["address"])
            other = self._by_email.get(email["address"].strip().lower())
            if other is not None and other != cid:
                raise ApiError(409, "contacts.api.conflict", f"Email already exists for contact {other}.")
            permission = email.get("permission_to_send")
            if permission is not None and permission not in PERMISSIONS:
                raise ApiError(
                    400,
                    "contacts.api.validation.error",
                    f"permission_to_send must be one of {', '.join(PERMISSIONS)}.",
                )
        if "list_memberships" in body:
            self._check_lists(body["list_memberships"] or [])
        custom = self._custom_values(body["custom_fields"] or []) if "custom_fields" in body else None
        contact.update(fields)
        if email is not None:
            self._change_email(contact, email["address"])
            if email.get("permission_to_send"):
                self._set_permission(
                    contact, email["permission_to_send"], source, email.get("opt_out_reason")
                )
        if custom is not None:
            contact["custom_fields"] = custom
        for name in ("phone_numbers", "street_addresses", "list_memberships", "taggings", "notes"):
            if name in body:  # sub-resources are replaced when sent, kept when omitted
                contact[name] = list(body[name] or [])
        if contact.get("deleted_at"):
            contact["deleted_at"] = None  # a PUT revives a deleted contact
        self._touch(contact, source)
        return _json(200, self._render(contact, INCLUDES))

    def _delete_contact(self, req: SandboxRequest, cid: str) -> SandboxResponse:
        self._delete(self._api_contact(cid))
        return SandboxResponse(204)

    # ------------------------------------------------------------------ custom fields and lists

    def _list_custom_fields(self, req: SandboxRequest) -> SandboxResponse:
        return _json(200, {"custom_fields": [_public(cf) for cf in self._custom_fields.values()]})

    def _create_custom_field(self, req: SandboxRequest) -> SandboxResponse:
        return _json(201, _public(self._new_custom_field(_object_body(req))))

    def _new_custom_field(self, body: Mapping[str, Any]) -> JsonDict:
        label = body.get("label")
        if not isinstance(label, str) or not 1 <= len(label) <= 50:
            raise ApiError(400, "contacts.api.validation.error", "label is required (at most 50 characters).")
        kind = body.get("type", "string")
        if kind not in ("string", "date"):
            raise ApiError(400, "contacts.api.validation.error", "type must be string or date.")
        name = re.sub(r"\s+", "_", label.strip())
        if any(cf["name"] == name for cf in self._custom_fields.values()):
            raise ApiError(409, "contacts.api.conflict", f"A custom field named {name} already exists.")
        if len(self._custom_fields) >= 100:
            raise ApiError(
                400, "contacts.api.validation.error", "An account can have at most 100 custom fields."
            )
        now = iso(self.now())
        cf = {
            "custom_field_id": str(uuid.uuid4()),
            "label": label,
            "name": name,
            "type": kind,
            "created_at": now,
            "updated_at": now,
        }
        self._custom_fields[cf["custom_field_id"]] = cf
        return cf

    def _list_lists(self, req: SandboxRequest) -> SandboxResponse:
        limit = _int_arg(req.arg("limit"), "limit", 50)
        if not 1 <= limit <= 1000:
            raise ApiError(400, "contacts.api.validation.error", "limit must be between 1 and 1000.")
        lists = list(self._lists.values())
        after = _int_arg(req.arg("cursor"), "cursor", 0)
        page = lists[after : after + limit]
        body: JsonDict = {"lists": [self._render_list(x, req.arg("include_membership_count")) for x in page]}
        if req.arg("include_count") == "true":
            body["lists_count"] = len(lists)
        if after + limit < len(lists):
            body["_links"] = {"next": {"href": f"/v3/contact_lists?limit={limit}&cursor={after + limit}"}}
        return _json(200, body)

    def _render_list(self, item: JsonDict, membership: str | None) -> JsonDict:
        out = _public(item)
        if membership in ("active", "all"):
            members = [
                c
                for c in self._contacts.values()
                if item["list_id"] in c["list_memberships"] and not c.get("deleted_at")
            ]
            if membership == "active":
                members = [c for c in members if c["email_address"]["permission_to_send"] != "unsubscribed"]
            out["membership_count"] = len(members)
        return out

    def _create_list_api(self, req: SandboxRequest) -> SandboxResponse:
        return _json(201, _public(self._new_list(_object_body(req))))

    def _new_list(self, body: Mapping[str, Any]) -> JsonDict:
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 255:
            raise ApiError(400, "contacts.api.validation.error", "name is required (at most 255 characters).")
        if any(x["name"] == name for x in self._lists.values()):
            raise ApiError(409, "contacts.api.conflict", f"A list named {name} already exists.")
        if len(self._lists) >= 1000:
            raise ApiError(400, "contacts.api.validation.error", "An account can have at most 1000 lists.")
        now = iso(self.now())
        item: JsonDict = {
            "list_id": str(uuid.uuid4()),
            "name": name,
            "description": body.get("description"),
            "favorite": bool(body.get("favorite", False)),
            "created_at": now,
            "updated_at": now,
        }
        self._lists[item["list_id"]] = item
        return item

    def _get_list(self, req: SandboxRequest, lid: str) -> SandboxResponse:
        item = self._lists.get(lid)
        if item is None:
            raise ApiError(404, "contacts.api.not_found", f"List {lid} was not found.")
        return _json(200, self._render_list(item, req.arg("include_membership_count")))
