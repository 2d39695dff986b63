"""What a run request runs: one function per kind of target, registered by the module that owns it.

``register("source", fn)`` is done by :mod:`contactsync.scheduling.source_runs`; exchange jobs
register ``"exchange"``. A target function raises a :class:`~contactsync.errors.ContactsyncError`
to fail the request with its code, and a ``TransientError`` with ``E666`` (target busy) to have
it retried shortly.
"""

from __future__ import annotations

from collections.abc import Callable

from contactsync.errors import ConfigError
from contactsync.settings import Settings
from contactsync.store.db import Database

RunFn = Callable[[Database, Settings, str, str, str], None]  # (db, settings, target_id, trigger, request_id)

_registry: dict[str, RunFn] = {}


def register(kind: str, fn: RunFn) -> None:
    """Run ``fn`` for requests of ``kind`` (registering the same kind again replaces it)."""
    _registry[kind] = fn


def get(kind: str) -> RunFn:
    try:
        return _registry[kind]
    except KeyError:
        known = ", ".join(sorted(_registry)) or "none"
        raise ConfigError(
            f"no module runs targets of kind {kind!r} in this process (kinds: {known})", code="E665"
        ) from None


def kinds() -> list[str]:
    return sorted(_registry)
