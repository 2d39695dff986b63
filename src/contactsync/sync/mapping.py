"""Both sides seen through the source's maps: a :class:`View` of the mapped values.

A view holds, per hub property path, the value normalised for comparison (trimmed strings,
empty → None, e-mail addresses lower-cased) and, per hub subscription id, the status. Views
of the hub customer, of the provider record and of the link's base are what the 3-way merge
compares, so a value that only differs in case or blanks is never a change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from contactsync.connectors.base import RemoteRecord, WriteItem
from contactsync.hub.consent import Status
from contactsync.sync.settings import SyncSettings


@dataclass
class View:
    fields: dict[str, Any] = field(default_factory=dict)
    subs: dict[str, Status | None] = field(default_factory=dict)

    def to_json(self) -> str:
        return orjson.dumps({"f": self.fields, "s": self.subs}, option=orjson.OPT_SORT_KEYS).decode()

    @classmethod
    def from_json(cls, text: str) -> View:
        data = orjson.loads(text)
        return cls(data.get("f", {}), {k: Status(v) if v else None for k, v in data.get("s", {}).items()})


def normalise(path: str, value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
        if path.endswith("email"):
            return value.lower()
    return value


def get_path(doc: dict[str, Any], path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path, creating objects on the way (None removes the property)."""
    parts = path.split(".")
    node = doc
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


class Mapping:
    """The source's maps, compiled for one run."""

    def __init__(self, settings: SyncSettings) -> None:
        self.settings = settings
        self.fields = settings.field_map
        self.to_provider_field = {m.hub: m.provider for m in self.fields}
        self.list_of = {m.hub: m.provider for m in settings.subscription_map}
        self.sub_of = {m.provider: m.hub for m in settings.subscription_map}
        self.webform = {m.hub: m.webform_code for m in settings.subscription_map if m.webform_code}

    def hub_view(self, customer: dict[str, Any]) -> View:
        fields = {m.hub: normalise(m.hub, get_path(customer, m.hub)) for m in self.fields}
        statuses = {s["id"]: s.get("status") for s in get_path(customer, "base.subscriptions") or []}
        subs = {sid: Status(statuses[sid]) if statuses.get(sid) else None for sid in self.list_of}
        return View(fields, subs)

    def provider_view(self, record: RemoteRecord) -> View:
        fields = {m.hub: normalise(m.hub, record.fields.get(m.provider)) for m in self.fields}
        subs = {sid: record.lists.get(list_id) for sid, list_id in self.list_of.items()}
        return View(fields, subs)

    def match_values(self, view: View) -> list[tuple[str, Any]]:
        """(hub path, value) of each match key that has a value, in priority order."""
        return [(k, view.fields[k]) for k in self.settings.match_keys if view.fields.get(k) is not None]

    def write_item(
        self, key: str, remote_id: str | None, view: View, fields: dict[str, Any], subs: dict[str, Status]
    ) -> WriteItem:
        """The provider upsert carrying ``fields``/``subs`` (hub names) for a record seen as ``view``."""
        match = {self.to_provider_field[k]: v for k, v in self.match_values(view)}
        return WriteItem(
            key=key,
            remote_id=remote_id,
            fields={self.to_provider_field[k]: v for k, v in fields.items()},
            match=match,
            lists={self.list_of[sid]: status for sid, status in subs.items()},
        )

    def hub_patch(self, fields: dict[str, Any]) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        for path, value in fields.items():
            set_path(doc, path, value)
        return doc
