"""Who and what is writing: recorded in the journal and the consent ledger."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class WriteContext:
    """``origin`` is ``api``, ``import:<job>``, ``sync:<source>``, ``webhook:<source>``, ``cli``…

    ``automatic`` writes (imports, syncs, webhooks) are held to the stricter consent rules.
    """

    origin: str = "api"
    actor: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    automatic: bool = False


API = WriteContext()


def journal_entry(
    workspace_id: str,
    node_id: str | None,
    entity: str,
    entity_id: str,
    operation: str,
    ctx: WriteContext,
    at: int,
    snapshot: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One change-journal row (``snapshot`` only for a DELETE)."""
    return {
        "workspace_id": workspace_id,
        "node_id": node_id or "",
        "entity": entity,
        "entity_id": entity_id,
        "operation": operation,
        "origin": ctx.origin,
        "at": at,
        "snapshot": orjson.dumps(snapshot).decode() if snapshot is not None else None,
    }
