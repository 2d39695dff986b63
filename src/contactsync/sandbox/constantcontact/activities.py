"""The Constant Contact sandbox's bulk activities: JSON import, list memberships and deletes,
whose state moves one step per poll or all at once after ``activity_seconds``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from contactsync.sandbox.constantcontact.model import (
    EMAIL_RE,
    IMPORT_COLUMNS,
    ApiError,
    JsonDict,
    SandboxRequest,
    SandboxResponse,
    _Activity,
    _json,
    _object_body,
    iso,
)
from contactsync.sandbox.constantcontact.state import SandboxState


class ActivitiesMixin(SandboxState):
    """Bulk activities and their progress."""

    def activity(self, activity_id: str) -> JsonDict:
        with self._lock:
            self._tick()
            return self._render_activity(self._activities[activity_id])

    # ------------------------------------------------------------------ bulk activities

    def _json_import(self, req: SandboxRequest) -> SandboxResponse:
        if len(req.body) > self.import_max_bytes:
            raise ApiError(
                413,
                "http.status.request_entity_too_large",
                f"The request body exceeds the {self.import_max_bytes // (1024 * 1024)} MB maximum.",
            )
        body = _object_body(req)
        rows = body.get("import_data")
        if not isinstance(rows, list) or not rows:
            raise ApiError(
                400, "contacts.api.validation.error", "import_data must hold at least one contact."
            )
        if len(rows) > self.import_max_rows:
            raise ApiError(
                400,
                "contacts.api.validation.error",
                f"import_data holds {len(rows)} contacts; the maximum is {self.import_max_rows}.",
            )
        lists = body.get("list_ids")
        if not isinstance(lists, list) or not 1 <= len(lists) <= 50:
            raise ApiError(400, "contacts.api.validation.error", "list_ids must hold 1 to 50 list ids.")
        self._check_lists(lists)
        status = {
            "items_total_count": len(rows),
            "items_completed_count": 0,
            "person_count": 0,
            "error_count": 0,
            "correctable_count": 0,
            "cannot_add_to_list_count": 0,
        }
        return self._start("add_contacts", body, status)

    def _membership_activity(self, req: SandboxRequest, kind: str) -> SandboxResponse:
        body = _object_body(req)
        targets = body.get("list_ids")
        if not isinstance(targets, list) or not 1 <= len(targets) <= 50:
            raise ApiError(400, "contacts.api.validation.error", "list_ids must hold 1 to 50 list ids.")
        self._check_lists(targets)
        source = body.get("source")
        if not isinstance(source, dict) or len([k for k, v in source.items() if v]) != 1:
            raise ApiError(
                400, "contacts.api.validation.error", "source must name exactly one kind of contacts."
            )
        if len(source.get("contact_ids") or []) > 500 or len(source.get("list_ids") or []) > 50:
            raise ApiError(
                400, "contacts.api.validation.error", "source holds at most 500 contact_ids or 50 list_ids."
            )
        members = self._source_contacts(source, body.get("exclude") or {})
        status = {"items_total_count": len(members), "items_completed_count": 0, "list_count": len(targets)}
        return self._start(kind, {**body, "_members": members}, status)

    def _add_memberships(self, req: SandboxRequest) -> SandboxResponse:
        return self._membership_activity(req, "add_list_memberships")

    def _remove_memberships(self, req: SandboxRequest) -> SandboxResponse:
        return self._membership_activity(req, "remove_list_memberships")

    def _contact_delete(self, req: SandboxRequest) -> SandboxResponse:
        body = _object_body(req)
        ids, lists = body.get("contact_ids"), body.get("list_ids")
        if bool(ids) == bool(lists):
            raise ApiError(400, "contacts.api.validation.error", "Send either contact_ids or list_ids.")
        if len(ids or []) > 500 or len(lists or []) > 50:
            raise ApiError(400, "contacts.api.validation.error", "At most 500 contact_ids or 50 list_ids.")
        source = {"contact_ids": ids} if ids else {"list_ids": lists}
        members = self._source_contacts(source, {})
        status = {"items_total_count": len(members), "items_completed_count": 0}
        if lists:
            status["list_count"] = len(lists)
        return self._start("contact_delete", {**body, "_members": members}, status)

    def _source_contacts(self, source: Mapping[str, Any], exclude: Mapping[str, Any]) -> list[str]:
        if source.get("contact_ids"):
            members = [str(c) for c in source["contact_ids"]]
        elif source.get("list_ids"):
            wanted = set(source["list_ids"])
            members = [
                c["contact_id"]
                for c in self._contacts.values()
                if wanted & set(c["list_memberships"]) and not c.get("deleted_at")
            ]
        elif source.get("all_active_contacts"):
            members = [
                c["contact_id"]
                for c in self._contacts.values()
                if not c.get("deleted_at") and c["email_address"]["permission_to_send"] != "unsubscribed"
            ]
        else:
            raise ApiError(
                400, "contacts.api.validation.error", "This source is not supported by the sandbox."
            )
        excluded = set(exclude.get("contact_ids") or [])
        return [m for m in members if m not in excluded]

    def _start(self, kind: str, payload: JsonDict, status: JsonDict) -> SandboxResponse:
        now = self.now()
        activity = _Activity(str(uuid.uuid4()), kind, payload, now, updated_at=now, status=status)
        self._activities[activity.activity_id] = activity
        return _json(201, self._render_activity(activity))

    def _get_activity(self, req: SandboxRequest, aid: str) -> SandboxResponse:
        activity = self._activities.get(aid)
        if activity is None:
            raise ApiError(404, "activities.api.not_found", f"Activity {aid} was not found.")
        if activity.state == "initialized":  # each poll moves it one step
            self._advance(activity, "processing")
        elif activity.state == "processing":
            self._advance(activity, "completed")
        return _json(200, self._render_activity(activity))

    def _list_activities(self, req: SandboxRequest) -> SandboxResponse:
        state = req.arg("state")
        found = [a for a in self._activities.values() if state is None or a.state == state]
        return _json(200, {"activities": [self._render_activity(a) for a in found]})

    def _tick(self) -> None:
        """Complete the activities whose time has come."""
        now = self.now()
        for activity in self._activities.values():
            if (
                activity.state in ("initialized", "processing")
                and now - activity.created_at >= self.activity_seconds
            ):
                self._advance(activity, "completed")

    def _advance(self, activity: _Activity, state: str) -> None:
        now = self.now()
        if activity.started_at is None:
            activity.started_at = now
        if state == "completed":
            self._run(activity)
            activity.completed_at = now
        activity.state = state
        activity.updated_at = now

    def _run(self, activity: _Activity) -> None:
        status = activity.status
        if activity.kind == "add_contacts":
            self._run_import(activity)
        elif activity.kind in ("add_list_memberships", "remove_list_memberships"):
            targets = list(activity.payload["list_ids"])
            for cid in activity.payload["_members"]:
                contact = self._contacts.get(cid)
                if contact is None or contact.get("deleted_at"):
                    continue
                memberships = contact["list_memberships"]
                before = list(memberships)
                if activity.kind == "add_list_memberships":
                    memberships.extend(t for t in targets if t not in memberships)
                else:
                    contact["list_memberships"] = [m for m in memberships if m not in targets]
                if contact["list_memberships"] != before:
                    self._touch(contact, "Account")
                status["items_completed_count"] += 1
        elif activity.kind == "contact_delete":
            for cid in activity.payload["_members"]:
                contact = self._contacts.get(cid)
                if contact is None:
                    activity.errors.append(f"Contact {cid} was not found.")
                    continue
                self._delete(contact)
                status["items_completed_count"] += 1

    def _run_import(self, activity: _Activity) -> None:
        status = activity.status
        lists = list(activity.payload["list_ids"])
        names = {cf["name"]: cf["custom_field_id"] for cf in self._custom_fields.values()}
        for line, row in enumerate(activity.payload["import_data"], start=1):
            status["items_completed_count"] += 1
            if not isinstance(row, dict):
                status["error_count"] += 1
                activity.errors.append(f"Line {line}: not a contact object.")
                continue
            email = row.get("email")
            if not isinstance(email, str) or not EMAIL_RE.match(email) or len(email) > 80:
                status["correctable_count"] += 1
                activity.errors.append(f"Line {line}: invalid email address {email!r}.")
                continue
            fields = {k: row[k] for k in IMPORT_COLUMNS if row.get(k) not in (None, "")}
            try:
                self._validate_fields(fields)
            except ApiError as e:
                status["correctable_count"] += 1
                activity.errors.append(f"Line {line}: {e.message}")
                continue
            custom = []
            for key, value in row.items():
                if key.startswith("cf:"):
                    if key[3:] not in names:
                        activity.errors.append(f"Line {line}: no custom field named {key[3:]}.")
                    elif value not in (None, ""):
                        custom.append({"custom_field_id": names[key[3:]], "value": str(value)[:255]})
            status["person_count"] += 1
            cid = self._by_email.get(email.strip().lower())
            if cid is None:
                new = {
                    **fields,
                    "email_address": {"address": email, "permission_to_send": "implicit"},
                    "list_memberships": list(lists),
                    "custom_fields": custom,
                }
                if row.get("phone"):
                    new["phone_numbers"] = [{"phone_number": str(row["phone"]), "kind": "other"}]
                self._create(new, source="Account")
                continue
            contact = self._contacts[cid]
            contact.update(fields)  # existing contacts: only the properties sent change
            for cf in custom:
                self._merge_custom(contact, cf)
            if row.get("phone"):
                contact["phone_numbers"] = [{"phone_number": str(row["phone"]), "kind": "other"}]
            contact["deleted_at"] = None
            if contact["email_address"]["permission_to_send"] == "unsubscribed":
                status["cannot_add_to_list_count"] += 1  # unsubscribed contacts are not added to lists
            else:
                contact["list_memberships"].extend(x for x in lists if x not in contact["list_memberships"])
            self._touch(contact, "Account")

    def _render_activity(self, activity: _Activity) -> JsonDict:
        out: JsonDict = {
            "activity_id": activity.activity_id,
            "state": activity.state,
            "created_at": iso(activity.created_at),
            "updated_at": iso(activity.updated_at),
            "percent_done": {"initialized": 0, "processing": 50}.get(activity.state, 100),
            "activity_errors": list(activity.errors),
            "status": dict(activity.status),
            "_links": {"self": {"href": f"/v3/activities/{activity.activity_id}"}},
        }
        if activity.started_at is not None:
            out["started_at"] = iso(activity.started_at)
        if activity.completed_at is not None:
            out["completed_at"] = iso(activity.completed_at)
        return out
