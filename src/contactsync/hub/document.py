"""A customer as stored: validation, normalisation, the matching key and the content hash.

A request body (Contacthub shape) becomes a :class:`CustomerDoc`: ``data`` holds ``base``
(without subscriptions), ``extended``, ``extra``, ``tags`` and ``consents`` with null-valued
keys dropped and the email trimmed and lower-cased; subscriptions travel beside it because
they go through the consent rules.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import fastjsonschema
import orjson

from contactsync.errors import FieldProblem, invalid
from contactsync.hub.schema import SECTION_LIMIT, customer_validator, problem_from

EMAIL_RE = re.compile(
    r"^[^@\s\"(),:;<>\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
KEY_SEPARATOR = "\x1f"


@dataclass
class CustomerDoc:
    external_id: str | None
    enabled: bool
    data: dict[str, Any]
    subscriptions: list[dict[str, Any]] | None  # None: the body did not mention them

    def content_json(self) -> bytes:
        return orjson.dumps(self.data, option=orjson.OPT_SORT_KEYS)

    def content_hash(self, data_json: bytes | None = None) -> str:
        body = data_json if data_json is not None else self.content_json()
        head = f"{self.external_id or ''}{KEY_SEPARATOR}{int(self.enabled)}{KEY_SEPARATOR}".encode()
        return hashlib.md5(head + body, usedforsecurity=False).hexdigest()  # change detection only

    def as_body(self) -> dict[str, Any]:
        """The document in request-body shape (for merging a PATCH onto it)."""
        body: dict[str, Any] = {
            **self.data,
            "externalId": self.external_id,
            "enabled": self.enabled,
        }
        return body


def normalise_email(value: str) -> str:
    return value.strip().lower()


def prune_nulls(value: Any) -> Any:
    """Drop null-valued keys (and objects left empty) from nested dicts; lists keep their items."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if v is None:
                continue
            if isinstance(v, (dict, list)):
                v = prune_nulls(v)
                if not v and isinstance(v, dict):
                    continue
            out[k] = v
        return out
    if isinstance(value, list):
        return [prune_nulls(v) if isinstance(v, (dict, list)) else v for v in value]
    return value


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON merge patch: objects merge, null removes, anything else (lists too) replaces."""
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):  # RFC 7396: merge onto {} when the target is no object
            current = out.get(key)
            out[key] = merge_patch(current if isinstance(current, dict) else {}, value)
        else:
            out[key] = value
    return out


def parse_customer(body: Any, extended_schema: dict[str, Any]) -> CustomerDoc:
    """Validate a customer body and normalise it; raise InputError listing what is wrong."""
    if not isinstance(body, dict):
        raise invalid([FieldProblem("", "the body must be a JSON object")])
    try:
        dumped = orjson.dumps(body)
    except TypeError as e:  # e.g. an integer beyond 64 bits
        raise invalid([FieldProblem("", f"a value cannot be stored: {e}", "E203")]) from None
    if len(dumped) > SECTION_LIMIT:  # only then can one section be too large
        problems = [
            FieldProblem(section, f"larger than {SECTION_LIMIT // 1024} KB", "E204")
            for section in ("base", "extended", "extra")
            if body.get(section) is not None and len(orjson.dumps(body[section])) > SECTION_LIMIT
        ]
        if problems:
            raise invalid(problems)
    try:
        customer_validator(extended_schema)(body)
    except fastjsonschema.JsonSchemaValueException as e:
        raise invalid([problem_from(e)]) from None

    base = dict(body.get("base") or {})
    subscriptions = base.pop("subscriptions", None)
    contacts = base.get("contacts")
    if isinstance(contacts, dict) and isinstance(contacts.get("email"), str):
        email = normalise_email(contacts["email"])
        if not EMAIL_RE.match(email):
            raise invalid(
                [FieldProblem("base.contacts.email", f"{email!r} is not a valid email address", "E201")]
            )
        base["contacts"] = {**contacts, "email": email}
    _check_unique_ids(subscriptions or [], "base.subscriptions")
    data: dict[str, Any] = {
        "base": base,
        "extended": body.get("extended"),
        "extra": body.get("extra"),
        "tags": body.get("tags"),
        "consents": body.get("consents"),
    }
    # prune only when the body has a null somewhere (the common bulk record has none)
    data = prune_nulls(data) if b"null" in dumped else {k: v for k, v in data.items() if v is not None}
    tags = data.setdefault("tags", {})
    tags.setdefault("auto", [])
    tags.setdefault("manual", [])
    enabled = body.get("enabled")
    return CustomerDoc(
        external_id=body.get("externalId"),
        enabled=True if enabled is None else bool(enabled),
        data=data,
        subscriptions=subscriptions,
    )


def _check_unique_ids(items: Sequence[dict[str, Any]], path: str) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item["id"] in seen:
            raise invalid([FieldProblem(f"{path}.{i}.id", f"duplicate id {item['id']!r}")])
        seen.add(item["id"])


def lookup(doc: CustomerDoc, path: str) -> Any:
    """The value at a dotted property path (``base.contacts.email``, ``externalId``)."""
    if path == "externalId":
        return doc.external_id
    node: Any = doc.data
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def match_key(doc: CustomerDoc, properties: Sequence[str], case_sensitive: bool) -> str | None:
    """The normalised values of the matching properties; None when one of them is missing."""
    values = []
    for path in properties:
        value = lookup(doc, path)
        if value is None or value == "":
            return None
        text = str(value).strip()
        values.append(text if case_sensitive else text.lower())
    return KEY_SEPARATOR.join(values)
