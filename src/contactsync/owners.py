"""Who runs a piece of work, and whether that process still lives.

A sync run, an exchange run and a queued request record their owner as ``host:pid`` (a
worker adds ``/name``). On the same host the process itself answers; on another host only
the heartbeat can, so a run elsewhere counts as dead once it has not beaten for its lease.
"""

from __future__ import annotations

import os
import socket

from contactsync.hub.times import now_ms

LEASE_MS = 5 * 60 * 1000  # a run on another host that has not beaten for this long is dead


def process_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(
    owner: str, heartbeat_at: int | None, *, now: int | None = None, lease_ms: int = LEASE_MS
) -> bool:
    process, _, _ = owner.partition("/")
    host, _, pid = process.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, under another user
            return True
        return True
    return heartbeat_at is not None and (now if now is not None else now_ms()) - heartbeat_at < lease_ms
