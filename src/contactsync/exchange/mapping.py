"""File columns ↔ hub customer properties, subscriptions and the matching key.

An input mapping names, for each file column, a customer property path (``externalId``,
``base.firstName``, ``base.contacts.email``, ``extended.loyalty.points``, ``tags.manual``…);
subscription columns name a subscription system. A row becomes a customer record in the
Contacthub shape, with each cell converted to the property's type (integers, numbers and
booleans of the extended schema; lists split on ``;``). Empty cells are left out, so an
``append`` import never blanks a property the file does not fill.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contactsync.errors import FieldProblem, RecordError, invalid
from contactsync.hub.consent import Status
from contactsync.hub.document import normalise_email
from contactsync.hub.workspaces import UniquenessPolicy, Workspace

KEY_SEPARATOR = "\x1f"  # as hub.document's matching keys
_TOP = ("externalId", "base", "extended", "tags", "consents")
_TRUE = frozenset({"1", "true", "yes", "y", "t", "si", "sì", "x"})
_FALSE = frozenset({"0", "false", "no", "n", "f"})
SUBSCRIPTION_VALUES = {
    **dict.fromkeys(_TRUE | {"subscribed"}, Status.SUBSCRIBED),
    **dict.fromkeys(_FALSE | {"unsubscribed"}, Status.UNSUBSCRIBED),
    "pending": Status.PENDING,
    "cleaned": Status.CLEANED,
}


@dataclass(frozen=True)
class SubscriptionColumn:
    column: str
    subscription_id: str
    reason_column: str | None = None


Convert = Callable[[str], Any]


def check_property(path: str) -> str | None:
    """None when ``path`` is a property path a mapping can name, else the reason it is not."""
    head, _, rest = path.partition(".")
    if head not in _TOP:
        return f"{path!r} is not a customer property (start with {', '.join(_TOP)})"
    if head == "externalId" and rest:
        return "externalId has no sub-properties"
    if head != "externalId" and not rest:
        return f"name a property inside {head!r}, e.g. {head}.something"
    if head == "base" and rest.split(".")[0] == "subscriptions":
        return "map subscription columns in `subscriptions`, not as properties"
    if head == "tags" and rest not in ("manual", "auto"):
        return "tags are tags.manual or tags.auto"
    return None


OUTPUT_TOP = ("id", "externalId", "nodeId", "enabled", "registeredAt", "updatedAt")
SUBSCRIPTION_FIELDS = ("id", "status", "reason", "updatedAt", "registeredAt", "optedOutAt", "name")


def check_output_property(path: str) -> str | None:
    """None when an output column can show ``path`` (see the displacer), else the reason it cannot."""
    head, _, rest = path.partition(".")
    if path in OUTPUT_TOP:
        return None
    if head == "subscription":
        if rest in SUBSCRIPTION_FIELDS:
            return None
        return f"a subscription column is one of subscription.{', subscription.'.join(SUBSCRIPTION_FIELDS)}"
    if head == "subscriptions":
        return None if rest else "name the subscription system: subscriptions.<id> (its status)"
    if head in ("base", "extended", "tags", "consents") and rest:
        return None
    return (
        f"{path!r} is not a property to export ({', '.join(OUTPUT_TOP)}, base.…, extended.…, tags.…, "
        "subscriptions.<id>, subscription.…)"
    )


def _schema_type(schema: Mapping[str, Any], parts: Sequence[str]) -> str | None:
    """The JSON type the extended schema gives a property (the first non-null one)."""
    node: Any = schema
    for part in parts:
        props = node.get("properties") if isinstance(node, Mapping) else None
        if not isinstance(props, Mapping) or part not in props:
            return None
        node = props[part]
    kind = node.get("type") if isinstance(node, Mapping) else None
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return kind if isinstance(kind, str) else None


def _converter(path: str, kind: str | None) -> Convert:
    def to_int(text: str) -> Any:
        try:
            return int(text)
        except ValueError:
            raise RecordError(f"{path}: {text!r} is not an integer", code="E624") from None

    def to_float(text: str) -> Any:
        try:
            return float(text.replace(",", ".")) if text.count(",") == 1 and "." not in text else float(text)
        except ValueError:
            raise RecordError(f"{path}: {text!r} is not a number", code="E624") from None

    def to_bool(text: str) -> Any:
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise RecordError(f"{path}: {text!r} is not a boolean (true/false, yes/no, 1/0)", code="E624")

    def to_list(text: str) -> Any:
        return [part.strip() for part in text.split(";") if part.strip()]

    if kind == "integer":
        return to_int
    if kind == "number":
        return to_float
    if kind == "boolean":
        return to_bool
    if kind == "array" or path.startswith("tags."):
        return to_list
    return str


def _compile(
    fields: Sequence[tuple[str, tuple[str, ...], Convert]],
) -> Callable[[Mapping[str, str]], dict[str, Any]]:
    """A function that builds the nested record of a row for these fields, written out as straight
    code (one dict per object of the record, no loop over the paths): it runs for every row.

    No text of the mapping goes into the code: column names, property names and converters
    are bound as constants ``_k<i>``, ``_p<i>``, ``_c<i>``.
    """
    scope: dict[str, Any] = {}
    objects: dict[tuple[str, ...], str] = {(): "n0"}  # object path → its variable
    lines = ["def build(values):", "    get = values.get", "    n0 = {}"]
    parents: list[tuple[str, str, str]] = []  # (variable, parent variable, key constant)
    for i, (column, parts, convert) in enumerate(fields):
        for depth in range(1, len(parts)):
            path = parts[:depth]
            if path not in objects:
                var = f"n{len(objects)}"
                objects[path] = var
                key = f"_p{i}_{depth}"
                scope[key] = parts[depth - 1]
                lines.append(f"    {var} = {{}}")
                parents.append((var, objects[parts[: depth - 1]], key))
        scope[f"_k{i}"], scope[f"_p{i}"], scope[f"_c{i}"] = column, parts[-1], convert
        value = "t" if convert is str else f"_c{i}(t)"
        lines += [
            f"    t = get(_k{i})",
            "    if t:",
            "        t = t.strip()",
            "        if t:",
            f"            {objects[parts[:-1]]}[_p{i}] = {value}",
        ]
    for var, parent, key in reversed(parents):  # children before their parents
        lines += [f"    if {var}:", f"        {parent}[{key}] = {var}"]
    lines.append("    return n0")
    exec("\n".join(lines), scope)  # noqa: S102 - generated from constants only, see above
    build: Callable[[Mapping[str, str]], dict[str, Any]] = scope["build"]
    return build


class Mapper:
    """Turns the cells of one row into a customer record, and computes the row's matching key."""

    def __init__(
        self,
        ws: Workspace,
        mapping: Mapping[str, str],
        subscriptions: Sequence[SubscriptionColumn] = (),
    ) -> None:
        self.ws = ws
        self.mapping = dict(mapping)
        self.subscriptions = list(subscriptions)
        self._fields: list[tuple[str, tuple[str, ...], Convert]] = []
        for column, path in self.mapping.items():
            parts = tuple(path.split("."))
            kind = _schema_type(ws.extended_schema, parts[1:]) if parts[0] == "extended" else None
            self._fields.append((column, parts, _converter(path, kind)))
        self._build = _compile(self._fields)
        by_property = {path: column for column, path in self.mapping.items()}
        self.key_columns: list[tuple[str, bool]] | None = None  # (column, is an email)
        if ws.uniqueness_policy != UniquenessPolicy.NO_CHECK and all(
            p in by_property for p in ws.matching_properties
        ):
            self.key_columns = [(by_property[p], p == "base.contacts.email") for p in ws.matching_properties]

    @property
    def columns(self) -> list[str]:
        """Every column the mapping reads."""
        cols = list(self.mapping)
        for s in self.subscriptions:
            cols.append(s.column)
            if s.reason_column:
                cols.append(s.reason_column)
        return list(dict.fromkeys(cols))

    def missing_key_properties(self) -> list[str]:
        mapped = set(self.mapping.values())
        return [p for p in self.ws.matching_properties if p not in mapped]

    def key(self, values: Mapping[str, str]) -> str | None:
        """The row's matching key as the hub computes it; None when a key cell is empty."""
        if self.key_columns is None:
            return None
        parts = []
        case_sensitive = self.ws.case_sensitive
        for column, is_email in self.key_columns:
            text = (values.get(column) or "").strip()
            if not text:
                return None
            if is_email:
                text = normalise_email(text)
            parts.append(text if case_sensitive else text.lower())
        return KEY_SEPARATOR.join(parts)

    def record(self, values: Mapping[str, str]) -> dict[str, Any]:
        """The customer record of a row; RecordError (E624) when a cell does not convert."""
        record = self._build(values)
        if self.subscriptions:
            items = self.subscription_items(values)
            if items:
                record.setdefault("base", {})["subscriptions"] = items
        return record

    def subscription_items(self, values: Mapping[str, str]) -> list[dict[str, Any]]:
        items = []
        for s in self.subscriptions:
            text = (values.get(s.column) or "").strip()
            if not text:
                continue
            status = SUBSCRIPTION_VALUES.get(text.lower())
            if status is None:
                raise RecordError(
                    f"{s.column}: {text!r} is not a subscription status "
                    "(subscribed, unsubscribed, pending, cleaned, yes/no, 1/0)",
                    code="E624",
                )
            item: dict[str, Any] = {"id": s.subscription_id, "status": status.value}
            reason = (values.get(s.reason_column) or "").strip() if s.reason_column else ""
            if reason:
                item["reason"] = reason
            items.append(item)
        return items

    def key_record(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Only the matching properties (and subscriptions) of a record: what an import that must
        not overwrite profiles sends for an existing customer."""
        out: dict[str, Any] = {}
        for path in self.ws.matching_properties:
            parts = path.split(".")
            src: Any = record
            for part in parts:
                src = src.get(part) if isinstance(src, Mapping) else None
            if src is None:
                continue
            node = out
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = src
        subs = (
            record.get("base", {}).get("subscriptions") if isinstance(record.get("base"), Mapping) else None
        )
        if subs:
            out.setdefault("base", {})["subscriptions"] = subs
        return out


def check_mapping(
    mapping: Mapping[str, str],
    subscriptions: Sequence[SubscriptionColumn],
    *,
    output: bool = False,
    prefix: str = "mapping",
) -> None:
    """Refuse property paths a mapping cannot name (InputError E634 with the problems)."""
    check = check_output_property if output else check_property
    problems = [
        FieldProblem(f"{prefix}.{column}", reason, "E634")
        for column, path in mapping.items()
        if (reason := check(path)) is not None
    ]
    seen: dict[str, str] = {}
    for column, path in mapping.items():
        if path in seen:
            problems.append(
                FieldProblem(f"{prefix}.{column}", f"{path} is already mapped from {seen[path]!r}", "E634")
            )
        seen[path] = column
    ids = [s.subscription_id for s in subscriptions]
    if len(set(ids)) != len(ids):
        problems.append(FieldProblem("subscriptions", "a subscription system is mapped twice", "E634"))
    if problems:
        raise invalid(problems)
