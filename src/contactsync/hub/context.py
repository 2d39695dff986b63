"""Who and what is writing: recorded in the journal and the consent ledger."""

from __future__ import annotations

from dataclasses import dataclass


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
