"""The customer's JSON schema (Contacthub's base/consents/tags model) and its validators.

The schema follows the published Contacthub customer schema (``base`` with
``additionalProperties: false``, every leaf nullable). ``extended`` is validated against
the workspace's own JSON Schema. Validation errors become :class:`FieldProblem` with the
dotted path of the offending field and a stable code.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import fastjsonschema
import orjson

from contactsync.errors import FieldProblem, invalid

SECTION_LIMIT = 64 * 1024  # bytes of JSON per base / extended / extra section

_DATE_TIME = {"type": ["string", "null"], "format": "date-time"}


def _str(**extra: Any) -> dict[str, Any]:
    return {"type": ["string", "null"], **extra}


def _enum(*values: str) -> dict[str, Any]:
    return {"type": ["string", "null"], "enum": [*values, None]}


def _obj(properties: dict[str, Any], *, nullable: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "type": ["object", "null"] if nullable else "object",
        "additionalProperties": False,
        "properties": properties,
        **extra,
    }


def _items(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    item = _obj(properties, nullable=False)
    if required:
        item["required"] = required
    return {"type": ["array", "null"], "items": item}


_CONSENT_LEAF = _obj({k: {"type": ["boolean", "null"]} for k in ("status", "limitation", "objection")})

CONSENTS_SCHEMA = _obj(
    {
        "disclaimer": _obj({"date": _DATE_TIME, "version": _str()}),
        "marketing": _obj(
            {
                "traditional": _obj({k: _CONSENT_LEAF for k in ("telephonic", "papery")}),
                "automatic": _obj({k: _CONSENT_LEAF for k in ("sms", "email", "push", "im", "telephonic")}),
            }
        ),
        "profiling": _obj({k: _CONSENT_LEAF for k in ("classic", "online")}),
        "softSpam": _obj({k: _CONSENT_LEAF for k in ("email", "papery")}),
        "thirdPartyTransfer": _obj({k: _CONSENT_LEAF for k in ("profiling", "marketing")}),
    }
)

SUBSCRIPTION_SCHEMA = _obj(
    {
        "id": {"type": "string", "minLength": 1, "maxLength": 255},
        "name": _str(),
        "type": _str(),
        "kind": _enum("DIGITAL_MESSAGE", "SERVICE", "OTHER"),
        "subscribed": {"type": ["boolean", "null"]},
        "enable": {"type": ["boolean", "null"]},  # the Swagger spec's name for `subscribed`
        "status": _enum("pending", "subscribed", "unsubscribed", "cleaned"),
        "reason": _str(maxLength=255),
        "startDate": _DATE_TIME,
        "endDate": _DATE_TIME,
        "registeredAt": _DATE_TIME,
        "updatedAt": _DATE_TIME,
        "subscriberId": _str(),
        "preferences": _items({"key": _str(), "value": _str()}),
        "consentEvidence": _obj(
            {
                "type": {"type": "string", "enum": ["DOUBLE_OPT_IN", "EXPLICIT"]},
                "date": {"type": "string", "format": "date-time"},
                "ip": _str(maxLength=64),
                "userAgent": _str(maxLength=512),
                "webformCode": _str(maxLength=255),
            },
            required=["type", "date"],
        ),
    },
    nullable=False,
    required=["id"],
)

BASE_SCHEMA = _obj(
    {
        "pictureUrl": _str(format="uri"),
        "title": _str(),
        "prefix": _str(),
        "firstName": _str(),
        "lastName": _str(),
        "middleName": _str(),
        "gender": _str(),
        "dob": _str(format="date"),
        "locale": _str(pattern="^[a-z]{2}(_([a-zA-Z]{2}){1,2})?_[A-Z]{2}$"),
        "timezone": _enum(*sorted(zoneinfo.available_timezones())),
        "contacts": _obj(
            {
                # format checked by hub.document, which trims and lower-cases first
                "email": _str(maxLength=254),
                "fax": _str(),
                "mobilePhone": _str(),
                "phone": _str(),
                "otherContacts": _items(
                    {
                        "name": {"type": "string"},
                        "type": _enum("MOBILE", "PHONE", "EMAIL", "FAX", "OTHER"),
                        "value": {"type": "string"},
                    }
                ),
                "mobileDevices": _items(
                    {
                        "identifier": {"type": "string"},
                        "appId": {"type": "string"},
                        "name": {"type": "string"},
                        "type": _enum("IOS", "ANDROID", "WINDOWS_PHONE", "FIREOS"),
                        "notificationService": _enum("APN", "GCM", "WNS", "ADM", "SNS"),
                    }
                ),
            }
        ),
        "address": _obj(
            {
                **{k: _str() for k in ("street", "city", "country", "region", "province", "zip")},
                "geo": _obj({"lat": {"type": ["number", "null"]}, "lon": {"type": ["number", "null"]}}),
            }
        ),
        "credential": _obj({"username": _str(), "password": _str()}),
        "educations": _items(
            {
                "id": {"type": "string"},
                "schoolType": _enum("PRIMARY_SCHOOL", "SECONDARY_SCHOOL", "HIGH_SCHOOL", "COLLEGE", "OTHER"),
                "schoolName": _str(),
                "schoolConcentration": _str(),
                "startYear": {"type": ["integer", "null"]},
                "endYear": {"type": ["integer", "null"]},
                "isCurrent": {"type": ["boolean", "null"]},
            },
            required=["id"],
        ),
        "likes": _items(
            {
                "id": {"type": "string"},
                "category": _str(),
                "name": _str(),
                "createdTime": _DATE_TIME,
            },
            required=["id"],
        ),
        "socialProfile": _obj(
            {k: _str() for k in ("facebook", "google", "instagram", "linkedin", "qzone", "twitter")}
        ),
        "jobs": _items(
            {
                "id": {"type": "string"},
                "companyIndustry": _str(),
                "companyName": _str(),
                "jobTitle": _str(),
                "startDate": _str(format="date"),
                "endDate": _str(format="date"),
                "isCurrent": {"type": ["boolean", "null"]},
            },
            required=["id"],
        ),
        "subscriptions": {"type": ["array", "null"], "items": SUBSCRIPTION_SCHEMA},
    }
)

TAGS_SCHEMA = _obj(
    {
        "auto": {"type": ["array", "null"], "items": {"type": "string"}},
        "manual": {"type": ["array", "null"], "items": {"type": "string"}},
    }
)

#: The default extended-properties schema of a new workspace: no extended properties yet.
EMPTY_EXTENDED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {},
}

_READ_ONLY = {"type": ["string", "null"]}


def customer_schema(extended: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of a customer body, with the workspace's extended schema."""
    ext = dict(extended)
    ext_type = ext.get("type", "object")
    ext["type"] = [ext_type, "null"] if isinstance(ext_type, str) else [*ext_type, "null"]
    return _obj(
        {
            "id": _READ_ONLY,
            "nodeId": {"type": "string"},
            "externalId": _str(maxLength=255),
            "base": BASE_SCHEMA,
            "extended": ext,
            "extra": _str(),
            "consents": CONSENTS_SCHEMA,
            "tags": TAGS_SCHEMA,
            "enabled": {"type": ["boolean", "null"]},
            "registeredAt": _READ_ONLY,
            "updatedAt": _READ_ONLY,
            "sourceInfo": {"type": ["object", "null"]},
        },
        nullable=False,
    )


Validator = Callable[[Any], Any]

_DATE_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(:\d\d(\.\d+)?)?([Zz]|[+-]\d\d:?\d\d)?$")


def _is_date_time(value: Any) -> bool:
    """Contacthub writes ``+0000`` (no colon), which strict RFC 3339 refuses: accept both."""
    return not isinstance(value, str) or bool(_DATE_TIME_RE.match(value))


_FORMATS: dict[str, Callable[[Any], bool]] = {"date-time": _is_date_time}


@lru_cache(maxsize=64)
def _compile(schema_json: bytes) -> Validator:
    validator: Validator = fastjsonschema.compile(orjson.loads(schema_json), formats=_FORMATS)
    return validator


def validator_for(schema: dict[str, Any]) -> Validator:
    return _compile(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))


@lru_cache(maxsize=64)
def _customer_validator(extended_json: bytes) -> Validator:
    return validator_for(customer_schema(orjson.loads(extended_json)))


def customer_validator(extended: dict[str, Any]) -> Validator:
    """The validator of customer bodies for a workspace's extended schema (compiled once)."""
    return _customer_validator(orjson.dumps(extended, option=orjson.OPT_SORT_KEYS))


def check_extended_schema(schema: Any) -> None:
    """Refuse an extended-properties schema that is not a usable JSON Schema object."""
    problems: list[FieldProblem] = []
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        problems.append(FieldProblem("", "the extended schema must be a JSON Schema of type object"))
    else:
        try:
            customer_validator(schema)
        except fastjsonschema.JsonSchemaDefinitionException as e:
            problems.append(FieldProblem("", f"not a valid JSON Schema: {e}"))
    if problems:
        raise invalid(problems)


def validate(value: Any, schema: dict[str, Any], prefix: str = "") -> None:
    """Validate ``value``; raise an InputError with the field path of the first problem."""
    try:
        validator_for(schema)(value)
    except fastjsonschema.JsonSchemaValueException as e:
        raise invalid([problem_from(e, prefix)]) from None


def problem_from(e: fastjsonschema.JsonSchemaValueException, prefix: str = "") -> FieldProblem:
    path = _path(str(e.name or "data"), prefix)
    message = str(e.message).removeprefix(str(e.name)).strip() or str(e.message)
    rule = e.rule
    if rule == "additionalProperties":
        extra = sorted(set(e.value) - set((e.definition or {}).get("properties", {})))
        name = f"{path}.{extra[0]}" if path and extra else (extra[0] if extra else path)
        return FieldProblem(name, f"unknown property {extra[0] if extra else ''!s}", "E202")
    if rule == "required":
        return FieldProblem(path, message, "E206")
    return FieldProblem(path, message, "E203")


def _path(name: str, prefix: str) -> str:
    path = re.sub(r"^data\.?", "", name)
    path = re.sub(r"\[(\d+)\]", r".\1", path)
    return f"{prefix}.{path}".strip(".") if prefix else path
