"""contactsync: a self-hosted customer hub that keeps contacts and subscriptions in sync."""

from __future__ import annotations

__version__ = "0.1.0"
