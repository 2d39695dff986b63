"""SQLite writers of one process (store/db.py): queued on an in-process lock, WAL checkpointed aside."""

from __future__ import annotations

import threading

from contactsync.hub import subscribe, workspaces
from contactsync.hub.context import WriteContext
from contactsync.settings import Settings
from contactsync.store.db import Database

CTX = WriteContext(origin="api", actor="token:test")


def test_concurrent_writers_all_commit_without_busy_errors(sqlite_db: Database) -> None:
    ws = workspaces.create_workspace(sqlite_db, "w")
    node = workspaces.create_node(sqlite_db, ws.id, "main")
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for i in range(25):
                req = subscribe.SubscribeRequest(node.id, f"w{t}-{i}@example.com", ("newsletter",))
                subscribe.subscribe(sqlite_db, Settings(), ws.id, req, CTX)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    with sqlite_db.read() as conn:
        count = conn.exec_driver_sql(
            "SELECT count(*) FROM subscriptions WHERE status = 'subscribed'"
        ).scalar()
    assert count == 200


def test_the_checkpoint_thread_starts_with_the_writes_and_stops_with_dispose(sqlite_db: Database) -> None:
    def checkpointers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "sqlite-checkpoint" and t.is_alive()]

    before = len(checkpointers())
    for i in range(Database.CHECKPOINT_EVERY):
        with sqlite_db.write() as conn:
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS scratch (n INTEGER)")
            conn.exec_driver_sql("INSERT INTO scratch VALUES (?)", (i,))
    assert len(checkpointers()) == before + 1

    sqlite_db.dispose()

    assert len(checkpointers()) == before
    with sqlite_db.read() as conn:  # the handle stays usable, as after any dispose
        assert conn.exec_driver_sql("SELECT count(*) FROM scratch").scalar() == Database.CHECKPOINT_EVERY
