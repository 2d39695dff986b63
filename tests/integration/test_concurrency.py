"""Two writers creating the same customer at once: one wins, the other gets the existing id."""

from __future__ import annotations

import threading

import pytest

from contactsync.errors import ConflictError
from contactsync.hub import customers
from contactsync.store import workspaces as ws_store
from tests.conftest import Hub


@pytest.mark.parametrize("round_", range(5))
def test_concurrent_creates_of_one_customer(hub: Hub, round_: int) -> None:
    barrier = threading.Barrier(2)
    results: list[object] = []

    def create() -> None:
        barrier.wait()
        try:
            results.append(
                customers.create(
                    hub.db,
                    hub.workspace_id,
                    {"nodeId": hub.node_id, "base": {"contacts": {"email": f"race{round_}@example.com"}}},
                )
            )
        except ConflictError as e:
            results.append(e)

    threads = [threading.Thread(target=create) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = [r for r in results if isinstance(r, tuple)]
    conflicts = [r for r in results if isinstance(r, ConflictError)]
    assert len(created) == 1 and len(conflicts) == 1
    assert conflicts[0].data == {"customer": {"id": created[0][0]["id"]}}
    with hub.db.read() as conn:
        assert ws_store.count_customers(conn, [hub.node_id]) == 1
