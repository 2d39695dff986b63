"""A customer as stored: validation, normalisation, the matching key and the content hash.

A request body (Contacthub shape) becomes a :class:`CustomerDoc`: ``data`` holds ``base``
(without subscriptions), ``extended``, ``extra``, ``tags`` and ``consents`` with null-valued
keys dropped and the email trimmed and lower-cased; subscriptions travel beside it because
they go through the consent rules.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
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
_HEAD_ENABLED = f"{KEY_SEPARATOR}1{KEY_SEPARATOR}".encode()
_HEAD_DISABLED = f"{KEY_SEPARATOR}0{KEY_SEPARATOR}".encode()


@dataclass(slots=True)
class CustomerDoc:
    external_id: str | None
    enabled: bool
    data: dict[str, Any]
    subscriptions: list[dict[str, Any]] | None  # None: the body did not mention them

    def content_json(self) -> bytes:
        return orjson.dumps(self.data, option=orjson.OPT_SORT_KEYS)

    def content_hash(self, data_json: bytes | None = None) -> str:
        """MD5 of ``externalId``, enabled and the stored JSON (change detection only)."""
        body = data_json if data_json is not None else self.content_json()
        # the bytes of f"{external_id or ''}\x1f{int(enabled)}\x1f" + body
        if self.enabled is True:
            head = _HEAD_ENABLED
        elif self.enabled is False:
            head = _HEAD_DISABLED
        else:
            head = f"{KEY_SEPARATOR}{int(self.enabled)}{KEY_SEPARATOR}".encode()
        if self.external_id:
            head = self.external_id.encode() + head
        return hashlib.md5(head + body, usedforsecurity=False).hexdigest()

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


def checked_email(value: str) -> str | None:
    """The address normalised, or None when the customer schema refuses it (too long, or not
    an address): what the plain-body fast paths check before taking a body."""
    if len(value) > 254:
        return None
    email = normalise_email(value)
    return email if EMAIL_RE.match(email) else None


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
    return customer_parser(extended_schema)(body)


CustomerParser = Callable[[Any], CustomerDoc]


def customer_parser(extended_schema: dict[str, Any]) -> CustomerParser:
    """:func:`parse_customer` for one workspace's extended schema.

    A plain body (strings in base, contacts and address, tags: see :func:`parse_plain`)
    takes a hand-written check that accepts exactly what the full validator accepts in that
    subset and builds the same document; any other body goes through the workspace's
    compiled validator, which also reports every problem. The validator is compiled on
    first use (a load of plain records never needs it: 24 MB and 0.1 s spared).
    """
    validators: list[Callable[[Any], Any]] = []

    def parse(body: Any) -> CustomerDoc:
        doc = parse_plain(body)
        if doc is None:
            if not validators:
                validators.append(customer_validator(extended_schema))
            doc = _normalise(body, _full_check(body, validators[0]))
        return doc

    return parse


def _full_check(body: Any, validator: Callable[[Any], Any]) -> bool:
    """Validate with the compiled JSON-schema validator; True when the body's JSON has ``null``."""
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
        validator(body)
    except fastjsonschema.JsonSchemaValueException as e:
        raise invalid([problem_from(e)]) from None
    return b"null" in dumped


# -- plain records ----------------------------------------------------------------------------
# The names below are all {"type": ["string", "null"]} in the customer schema (hub.schema:
# customer_schema, BASE_SCHEMA) with no other keyword, save the maxLength of externalId (255)
# and base.contacts.email (254), checked in parse_plain; nodeId is {"type": "string"}.
_TOP_STRINGS = frozenset({"externalId", "id", "extra", "registeredAt", "updatedAt", "nodeId"})
_TOP_NULLABLE = frozenset(
    {"externalId", "id", "extra", "registeredAt", "updatedAt", "base", "tags", "enabled"}
)
_BASE_STRINGS = frozenset({"title", "prefix", "firstName", "lastName", "middleName", "gender"})
_BASE_OBJECTS = {  # {"type": ["object", "null"], "additionalProperties": false} of the names above
    "contacts": frozenset({"email", "fax", "mobilePhone", "phone"}),
    "address": frozenset({"street", "city", "country", "region", "province", "zip"}),
    "credential": frozenset({"username", "password"}),
    "socialProfile": frozenset({"facebook", "google", "instagram", "linkedin", "qzone", "twitter"}),
}
_TAG_LISTS = frozenset({"auto", "manual"})  # {"type": ["array", "null"], "items": {"type": "string"}}
# the keys of a plain body, with quotes, colon, comma and a null or boolean value, plus its
# braces and brackets, take less than this many bytes of JSON (39 keys of at most 13 letters)
_PLAIN_KEYS_JSON = 1024


def parse_plain(body: Any) -> CustomerDoc | None:
    """The document of a valid plain body, built without the JSON-schema validator; None
    for any other body (valid or not), which then takes :func:`_full_check`.

    A plain body is a dict holding only: ``externalId``, ``id``, ``extra``, ``registeredAt``,
    ``updatedAt`` (string or null), ``nodeId`` (string), ``enabled`` (boolean or null),
    ``tags`` (null, or an object with ``auto``/``manual`` lists of strings or null), and
    ``base`` (null, or an object of the simple name fields, strings or null, and of the
    ``contacts``, ``address``, ``credential`` and ``socialProfile`` objects of strings or
    null). Every such body is valid for the customer schema whatever the workspace's
    extended schema (which only sees ``extended``), unless externalId or the e-mail is too
    long or the e-mail malformed: those go to the full path too, as do strings that orjson
    cannot encode and bodies that might exceed :data:`SECTION_LIMIT`. The document is the
    one :func:`_normalise` builds: ``tests/unit/test_plain_parse.py`` checks both paths
    against each other on generated bodies.
    """
    if type(body) is not dict:
        return None
    strings: list[str] = []  # every string of the body, to look at once at the end
    keep = strings.append
    null = False  # whether the body's JSON has "null" in it (see _normalise)
    base_in: dict[str, Any] | None = None
    tags_in: dict[str, Any] | None = None
    external_id = extra = None
    enabled = True
    for key, value in body.items():
        if type(key) is not str:  # orjson refuses other keys: E203 on the full path
            return None
        kind = type(value)
        if kind is str:
            if key not in _TOP_STRINGS:
                return None
            keep(value)
            if key == "externalId":
                if len(value) > 255:
                    return None
                external_id = value
            elif key == "extra":
                extra = value
        elif kind is dict:
            if key == "base":
                for bkey, bvalue in value.items():
                    if type(bkey) is not str:
                        return None
                    bkind = type(bvalue)
                    if bkind is str:
                        if bkey not in _BASE_STRINGS:
                            return None
                        keep(bvalue)
                    elif bkind is dict:
                        names = _BASE_OBJECTS.get(bkey)
                        if names is None:
                            return None
                        for okey, ovalue in bvalue.items():
                            if type(okey) is not str or okey not in names:
                                return None
                            if type(ovalue) is str:
                                keep(ovalue)
                            elif ovalue is None:
                                null = True
                            else:
                                return None
                    elif bvalue is None:
                        if bkey not in _BASE_STRINGS and bkey not in _BASE_OBJECTS:
                            return None
                        null = True
                    else:
                        return None
                base_in = value
            elif key == "tags":
                for tkey, tvalue in value.items():
                    if type(tkey) is not str or tkey not in _TAG_LISTS:
                        return None
                    if tvalue is None:
                        null = True
                        continue
                    if type(tvalue) is not list:
                        return None
                    for item in tvalue:
                        if type(item) is not str:
                            return None
                    strings.extend(tvalue)
                tags_in = value
            else:
                return None
        elif value is None:
            if key not in _TOP_NULLABLE:
                return None
            null = True
        elif kind is bool and key == "enabled":
            enabled = value
        else:
            return None
    # "\0" cannot be part of "null" nor of "\n" + "ull" (which orjson writes \null), so the
    # joined text has them exactly when one of the strings has
    joined = "\0".join(strings)
    if not joined.isascii():
        try:
            joined.encode()
        except UnicodeEncodeError:  # a lone surrogate: orjson refuses it (E203 on the full path)
            return None
    if not null and ("null" in joined or "\null" in joined):
        null = True
    # a string takes at most 6 bytes of JSON per character (\u00XX) plus quotes and comma
    if 6 * len(joined) + 3 * len(strings) + _PLAIN_KEYS_JSON > SECTION_LIMIT:
        return None  # it might be too large (E204): the full path tells
    # the document _normalise builds: shallow copies, the e-mail normalised; with a null
    # somewhere, nulls and the objects they leave empty go (prune_nulls)
    if null:
        base = {}
        if base_in:
            for bkey, bvalue in base_in.items():
                if type(bvalue) is dict:
                    inner = {k: v for k, v in bvalue.items() if v is not None}
                    if inner:
                        base[bkey] = inner
                elif bvalue is not None:
                    base[bkey] = bvalue
        tags = {k: v for k, v in tags_in.items() if v is not None} if tags_in else {}
    else:
        base = dict(base_in) if base_in else {}
        tags = dict(tags_in) if tags_in is not None else {}
    contacts = base.get("contacts")
    if contacts is not None:
        email = contacts.get("email")
        if email is not None:
            email = checked_email(email)
            if email is None:
                return None  # E201 on the full path
            base["contacts"] = {**contacts, "email": email}
    data: dict[str, Any] = {"base": base} if base or not null else {}
    if extra is not None:
        data["extra"] = extra
    data["tags"] = tags
    tags.setdefault("auto", [])
    tags.setdefault("manual", [])
    return CustomerDoc(external_id, enabled, data, None)


def _normalise(body: dict[str, Any], has_null: bool) -> CustomerDoc:
    """The stored document of a valid body (``has_null``: its JSON has ``null`` somewhere)."""
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
    data = prune_nulls(data) if has_null else {k: v for k, v in data.items() if v is not None}
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


def match_key_function(
    properties: Sequence[str], case_sensitive: bool
) -> Callable[[CustomerDoc], str | None]:
    """:func:`match_key` with the property paths split once (for the bulk path)."""
    paths = [None if p == "externalId" else tuple(p.split(".")) for p in properties]

    def key(doc: CustomerDoc) -> str | None:
        values = []
        for path in paths:
            value: Any
            if path is None:
                value = doc.external_id
            else:
                value = doc.data
                for part in path:
                    if not isinstance(value, dict):
                        value = None
                        break
                    value = value.get(part)
            if value is None or value == "":
                return None
            text = str(value).strip()
            values.append(text if case_sensitive else text.lower())
        return KEY_SEPARATOR.join(values)

    return key
