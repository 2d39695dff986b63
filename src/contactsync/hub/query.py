"""The Contacthub query language: parsed and checked into a small condition tree.

A query is ``{"name": …, "query": Q}`` where Q is ``{"type": "simple", "are": {"condition": C}}``
or ``{"type": "combined", "conjunction": "INTERSECT"|"UNION"|"EXCEPT", "queries": [Q, …]}``;
C is an atomic condition (``attribute``, ``operator``, ``value``) or a composite one
(``conjunction`` and/or, ``conditions``). ``store.customer_query`` turns the tree into SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from contactsync.errors import FieldProblem, invalid
from contactsync.hub.times import parse_time

SCALAR_OPERATORS = {"EQUALS", "NOT_EQUALS", "GT", "GTE", "LT", "LTE"}
LIST_OPERATORS = {"IN", "NOT_IN", "BETWEEN"}
NULL_OPERATORS = {"IS_NULL", "IS_NOT_NULL"}
OPERATORS = SCALAR_OPERATORS | LIST_OPERATORS | NULL_OPERATORS

COLUMN_ATTRIBUTES = {"id", "externalId", "nodeId", "enabled", "registeredAt", "updatedAt"}
TIME_ATTRIBUTES = {"registeredAt", "updatedAt"}
ARRAY_ATTRIBUTES = {"tags.auto", "tags.manual"}
ARRAY_OPERATORS = {"EQUALS", "NOT_EQUALS", "IN", "NOT_IN"} | NULL_OPERATORS
SUBSCRIPTION_FIELDS = {"id", "status", "subscribed"}
_PATH = re.compile(r"^(base|extended|consents)(\.[A-Za-z0-9_]+)+$|^extra$")


@dataclass(frozen=True)
class Atomic:
    attribute: str
    operator: str
    value: Any = None


@dataclass(frozen=True)
class Group:
    conjunction: str  # "and" | "or" | "not" (one item)
    items: tuple[Condition, ...]


Condition = Atomic | Group


@dataclass(frozen=True)
class Sort:
    attribute: str
    descending: bool


def parse_query(text: str) -> Condition:
    """Parse the ``query`` parameter; raise InputError (E205) with the path of the problem."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise _bad("query", f"not valid JSON ({e})") from None
    if isinstance(doc, dict) and "query" in doc:
        return _query(doc["query"], "query")
    return _query(doc, "")


def _bad(path: str, message: str) -> Exception:
    return invalid([FieldProblem(path.lstrip(".") or "query", message, "E205")])


def _query(q: Any, path: str) -> Condition:
    if not isinstance(q, dict):
        raise _bad(path, "a query must be an object")
    kind = q.get("type")
    if kind == "simple":
        if "did" in q:
            raise _bad(
                f"{path}.did",
                "event conditions (`did`) are not supported; filter events with GET /events",
            )
        are = q.get("are")
        if not isinstance(are, dict) or "condition" not in are:
            raise _bad(f"{path}.are", "a simple query needs `are.condition`")
        return _condition(are["condition"], f"{path}.are.condition")
    if kind == "combined":
        conj = str(q.get("conjunction", "")).upper()
        queries = q.get("queries")
        if conj not in {"INTERSECT", "UNION", "EXCEPT"}:
            raise _bad(f"{path}.conjunction", "must be INTERSECT, UNION or EXCEPT")
        if not isinstance(queries, list) or not queries:
            raise _bad(f"{path}.queries", "must be a non-empty list of queries")
        parsed = tuple(_query(sub, f"{path}.queries.{i}") for i, sub in enumerate(queries))
        if conj == "INTERSECT":
            return Group("and", parsed)
        if conj == "UNION":
            return Group("or", parsed)
        rest = (Group("not", (Group("or", parsed[1:]),)),) if len(parsed) > 1 else ()
        return Group("and", (parsed[0], *rest))
    raise _bad(f"{path}.type", "must be `simple` or `combined`")


def _condition(c: Any, path: str) -> Condition:
    if not isinstance(c, dict):
        raise _bad(path, "a condition must be an object")
    kind = c.get("type")
    if kind == "composite":
        conj = str(c.get("conjunction", "")).lower()
        conditions = c.get("conditions")
        if conj not in {"and", "or"}:
            raise _bad(f"{path}.conjunction", "must be `and` or `or`")
        if not isinstance(conditions, list) or not conditions:
            raise _bad(f"{path}.conditions", "must be a non-empty list of conditions")
        return Group(conj, tuple(_condition(x, f"{path}.conditions.{i}") for i, x in enumerate(conditions)))
    if kind == "atomic":
        return _atomic(c, path)
    raise _bad(f"{path}.type", "must be `atomic` or `composite`")


def _atomic(c: dict[str, Any], path: str) -> Atomic:
    attribute, operator, value = c.get("attribute"), c.get("operator"), c.get("value")
    if not isinstance(attribute, str) or not _known_attribute(attribute):
        raise _bad(f"{path}.attribute", f"unknown attribute {attribute!r}")
    if operator not in OPERATORS:
        raise _bad(
            f"{path}.operator",
            f"unknown operator {operator!r}; use one of {', '.join(sorted(OPERATORS))}",
        )
    if attribute in ARRAY_ATTRIBUTES and operator not in ARRAY_OPERATORS:
        raise _bad(f"{path}.operator", f"{operator} is not available on {attribute}")
    if attribute == "base.subscriptions.subscribed":
        return _subscribed(operator, value, path)
    if operator in NULL_OPERATORS:
        return Atomic(attribute, operator)
    if operator in LIST_OPERATORS:
        if not isinstance(value, list) or any(isinstance(v, (dict, list)) for v in value):
            raise _bad(f"{path}.value", f"{operator} needs a list of values")
        if operator == "BETWEEN" and len(value) != 2:
            raise _bad(f"{path}.value", "BETWEEN needs exactly two values")
        values = [_value(attribute, v, f"{path}.value") for v in value]
        return Atomic(attribute, operator, tuple(values))
    if value is None or isinstance(value, (dict, list)):
        raise _bad(f"{path}.value", f"{operator} needs a single value (use IS_NULL for null)")
    return Atomic(attribute, operator, _value(attribute, value, f"{path}.value"))


def _subscribed(operator: str, value: Any, path: str) -> Atomic:
    """``subscribed`` (Contacthub's boolean) as a condition on our ``status``."""
    if operator not in {"EQUALS", "NOT_EQUALS"} or not isinstance(value, bool):
        raise _bad(path, "base.subscriptions.subscribed takes EQUALS or NOT_EQUALS with true/false")
    positive = value == (operator == "EQUALS")
    return Atomic("base.subscriptions.status", "EQUALS" if positive else "NOT_EQUALS", "subscribed")


def _known_attribute(attribute: str) -> bool:
    if attribute in COLUMN_ATTRIBUTES or attribute in ARRAY_ATTRIBUTES:
        return True
    if attribute.startswith("base.subscriptions."):
        return attribute.removeprefix("base.subscriptions.") in SUBSCRIPTION_FIELDS
    return bool(_PATH.match(attribute))


def _value(attribute: str, value: Any, path: str) -> Any:
    if attribute in TIME_ATTRIBUTES:
        try:
            return parse_time(value)
        except ValueError:
            raise _bad(path, f"{value!r} is not a date-time") from None
    if attribute == "base.contacts.email" and isinstance(value, str):
        return value.strip().lower()
    return value


def parse_sort(text: str | None) -> Sort | None:
    """``field`` or ``field,asc|desc`` (Contacthub's ``sort`` parameter)."""
    if not text:
        return None
    field, _, direction = text.partition(",")
    field = field.strip()
    direction = direction.strip().lower() or "asc"
    if direction not in {"asc", "desc"} or not (
        field in COLUMN_ATTRIBUTES or (_PATH.match(field) and field != "extra")
    ):
        raise invalid(
            [FieldProblem("sort", f"cannot sort by {text!r}; use e.g. `registeredAt,desc`", "E200")]
        )
    return Sort(field, direction == "desc")
