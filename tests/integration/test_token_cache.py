"""The in-process cache of verified API tokens (hub/tokens.py) against the live service.

A verified token is trusted for ``tokens.CACHE_SECONDS`` without a database read. A token
revoked through this process (API, console) is refused at once; one revoked by another
process (``contactsync token revoke`` beside the server) at the latest after that TTL.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from contactsync.errors import AuthError
from contactsync.hub import tokens
from contactsync.hub.ids import new_id
from contactsync.hub.times import now_ms
from contactsync.store import tokens as token_store
from contactsync.store.db import Database
from tests.conftest import Hub


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def nodes_url(base: str, hub: Hub) -> str:
    return f"{base}/api/v1/workspaces/{hub.workspace_id}/nodes"


@pytest.fixture
def other_process(hub: Hub) -> Iterator[Database]:
    """A second handle on the same database, as `contactsync token …` in another process has."""
    other = Database(hub.db.url.render_as_string(hide_password=False))
    yield other
    other.dispose()


def test_a_verified_token_is_not_read_again_within_the_ttl(hub: Hub) -> None:
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(args[2])

    first = tokens.authenticate(hub.db, hub.token)
    event.listen(hub.db.engine, "before_cursor_execute", seen)
    try:
        again = tokens.authenticate(hub.db, hub.token)
    finally:
        event.remove(hub.db.engine, "before_cursor_execute", seen)
    assert again == first
    assert again.workspace_id == hub.workspace_id and again.role == tokens.Role.ADMIN
    assert statements == []


def test_a_token_revoked_through_the_api_is_refused_at_once(live_server: str, hub: Hub) -> None:
    token, info = tokens.create_token(hub.db, hub.workspace_id, tokens.Role.USER, "app")
    assert httpx.get(nodes_url(live_server, hub), headers=bearer(token)).status_code == 200

    r = httpx.delete(
        f"{live_server}/api/v1/workspaces/{hub.workspace_id}/tokens/{info['id']}", headers=hub.headers
    )
    assert r.status_code == 200

    refused = httpx.get(nodes_url(live_server, hub), headers=bearer(token))
    assert (refused.status_code, refused.json()["code"]) == (401, "E110")
    # the other tokens stay valid
    assert httpx.get(nodes_url(live_server, hub), headers=hub.headers).status_code == 200


def test_a_token_revoked_by_another_process_is_refused_after_the_ttl(
    live_server: str, hub: Hub, other_process: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokens, "CACHE_SECONDS", 1.0)  # the mechanism of the 5 s default, shorter
    token, info = tokens.create_token(hub.db, hub.workspace_id, tokens.Role.SOURCE, "form")
    assert httpx.get(nodes_url(live_server, hub), headers=bearer(token)).status_code == 200  # cached now

    tokens.revoke_token(other_process, hub.workspace_id, token_id=info["id"])  # not seen by the server
    time.sleep(tokens.CACHE_SECONDS + 0.1)

    assert httpx.get(nodes_url(live_server, hub), headers=bearer(token)).status_code == 401


def test_a_refused_token_is_not_remembered(live_server: str, hub: Hub, other_process: Database) -> None:
    """A token refused once (not made yet) works as soon as another process has stored it."""
    token = tokens.TOKEN_PREFIX + "made-by-the-cli-a-moment-later"
    assert httpx.get(nodes_url(live_server, hub), headers=bearer(token)).status_code == 401

    row = {
        "id": new_id(),
        "workspace_id": hub.workspace_id,
        "name": "cli",
        "role": tokens.Role.USER.value,
        "node_id": None,
        "token_hash": hashlib.sha256(token.encode()).hexdigest(),
        "prefix": token[:10],
        "created_at": now_ms(),
        "revoked_at": None,
    }
    with other_process.write() as conn:
        token_store.insert(conn, row)

    assert httpx.get(nodes_url(live_server, hub), headers=bearer(token)).status_code == 200


def test_the_cache_is_per_database_handle(hub: Hub, other_process: Database) -> None:
    """What one handle has verified is not trusted through another (e.g. a re-created file)."""
    tokens.authenticate(hub.db, hub.token)
    tokens.revoke_token(other_process, hub.workspace_id, name="test-admin")

    with pytest.raises(AuthError) as refused:
        tokens.authenticate(other_process, hub.token)
    assert refused.value.code == "E110"
