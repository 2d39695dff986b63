"""A source's sync settings: field map, match keys, subscription map and policies."""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Direction(StrEnum):
    TO_PROVIDER = "to_provider"
    TO_HUB = "to_hub"
    BOTH = "both"

    def allows(self, side: str) -> bool:
        """Whether changes may be written to ``side`` (``hub`` or ``provider``)."""
        return self == Direction.BOTH or self.value == f"to_{side}"

    def narrowed(self, other: Direction) -> Direction | None:
        """The direction both allow, or None when they allow nothing in common."""
        if self == Direction.BOTH:
            return other
        if other == Direction.BOTH or other == self:
            return self
        return None


class ConflictPolicy(StrEnum):
    HUB_WINS = "hub_wins"
    PROVIDER_WINS = "provider_wins"
    NEWEST_WINS = "newest_wins"


class DeleteBehaviour(StrEnum):
    IGNORE = "ignore"  # the other side keeps the record; the link is kept as a tombstone
    UNSUBSCRIBE = "unsubscribe"  # the other side's mapped subscriptions become unsubscribed
    ARCHIVE = "archive"  # hub: the customer is disabled; provider: unsubscribed (no archive state)
    DELETE = "delete"  # the other side's record is deleted too


class NullPolicy(StrEnum):
    SKIP = "skip"  # an empty value never clears the other side
    IF_EMPTY = "if_empty"  # a value is only written where the target field is empty
    OVERWRITE = "overwrite"  # the winning value is written, empty or not


_HUB_PATH = re.compile(r"^(externalId|(base|extended|consents)(\.[A-Za-z_][A-Za-z0-9_]*)+)$")


class FieldMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hub: str = Field(description="Hub property path, e.g. base.firstName or base.contacts.email")
    provider: str = Field(description="The provider's field name")
    direction: Direction = Direction.BOTH
    nulls: NullPolicy = NullPolicy.OVERWRITE

    @field_validator("hub")
    @classmethod
    def _hub_path(cls, value: str) -> str:
        if not _HUB_PATH.match(value) or value.startswith("base.subscriptions"):
            raise ValueError(
                "not a hub property path: use externalId, base.…, extended.… or consents.… "
                "(subscriptions go in the subscription map)"
            )
        return value


class SubscriptionMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hub: str = Field(min_length=1, description="Hub subscription system id")
    provider: str = Field(min_length=1, description="Provider list / subscription system id")
    webform_code: str | None = Field(None, description="Recorded in the consent ledger")


class SyncSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field_map: list[FieldMapping] = Field(min_length=1)
    match_keys: list[str] = Field(
        min_length=1, description="Hub paths from the field map that identify a record, in priority order"
    )
    subscription_map: list[SubscriptionMapping] = Field(default_factory=list)
    direction: Direction = Direction.BOTH
    conflict_policy: ConflictPolicy = ConflictPolicy.NEWEST_WINS
    delete_behaviour: DeleteBehaviour = DeleteBehaviour.IGNORE
    sync_from: int | None = Field(None, description="First run: only records changed since (epoch ms)")
    frequency_minutes: int | None = Field(15, ge=1, description="Background sync interval; None = manual")
    debug: bool = Field(False, description="Keep before/after values in the run records")
    mass_change_guard: float = Field(
        10.0, ge=0, le=100, description="Stop before deleting/unsubscribing more than this % of a side"
    )
    initial_merge: bool = Field(
        False, description="Allow a non-empty user DB: its records are merged by match keys"
    )

    @model_validator(mode="after")
    def _consistent(self) -> SyncSettings:
        hubs = [m.hub for m in self.field_map]
        checks = (
            ("field_map", "hub field", hubs),
            ("field_map", "provider field", [m.provider for m in self.field_map]),
            ("subscription_map", "hub subscription", [m.hub for m in self.subscription_map]),
            ("subscription_map", "provider list", [m.provider for m in self.subscription_map]),
        )
        for map_name, what, values in checks:
            dup = next((v for v in values if values.count(v) > 1), None)
            if dup is not None:
                raise ValueError(f"{map_name} maps {what} {dup!r} twice")
        for key in self.match_keys:
            if key not in hubs:
                raise ValueError(f"match key {key!r} is not in the field map")
        return self
