"""The worker: claims run requests from the queue and runs them, beating while it runs.

Each worker thread runs one request at a time; ``worker_threads`` of them run in a process
(``contactsync serve`` or ``contactsync worker``), and any number of processes may share the
queue. Every so often a worker also queues again the requests of dead workers.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from contactsync.errors import ContactsyncError, TransientError
from contactsync.scheduling import queue, targets
from contactsync.scheduling.queue import Request
from contactsync.settings import Settings
from contactsync.store.db import Database

log = logging.getLogger(__name__)

RETRY_BASE_MS = 5_000  # a busy target is tried again after 5 s, 10 s, 20 s …
RECLAIM_EVERY_S = 10.0


class Worker:
    def __init__(self, db: Database, settings: Settings, name: str = "worker-1") -> None:
        self.db = db
        self.settings = settings
        self.id = f"{socket.gethostname()}:{os.getpid()}/{name}"
        self._last_reclaim = 0.0

    def run(self, stop: threading.Event) -> None:
        """Claim and run requests until ``stop`` is set; a running request is finished first."""
        while not stop.is_set():
            try:
                worked = self.run_one()
            except Exception:  # the database went away, … : keep the worker alive
                log.exception("worker tick failed", extra={"action": "worker.error"})
                worked = False
            if not worked:
                stop.wait(self.settings.worker_poll_seconds)

    def run_one(self) -> bool:
        """Run the next due request, if any; True when one ran."""
        if time.monotonic() - self._last_reclaim >= RECLAIM_EVERY_S:
            self._last_reclaim = time.monotonic()
            queue.reclaim_stale(
                self.db,
                stale_ms=int(self.settings.worker_stale_seconds * 1000),
                max_attempts=self.settings.worker_max_attempts,
            )
        request = queue.claim(self.db, self.id)
        if request is None:
            return False
        self.execute(request)
        return True

    def execute(self, request: Request) -> None:
        done = threading.Event()
        beating = threading.Thread(
            target=self._beat, args=(request, done), name=f"beat-{request.id}", daemon=True
        )
        beating.start()
        log.info(
            "running %s %s (%s), request %s",
            request.target_kind,
            request.target_id,
            request.trigger,
            request.id,
            extra={"action": "worker.start", "request": request.id},
        )
        try:
            fn = targets.get(request.target_kind)
            fn(self.db, self.settings, request.target_id, request.trigger, request.id)
        except TransientError as e:
            done.set()
            if request.attempts < self.settings.worker_max_attempts:
                delay = RETRY_BASE_MS * 2 ** (request.attempts - 1)
                queue.retry_later(self.db, request, self.id, delay, e.code, e.message)
                log.info(
                    "request %s retried in %d ms: %s", request.id, delay, e, extra={"action": "worker.retry"}
                )
            else:
                queue.finish(self.db, request.id, self.id, code=e.code, error=e.message)
        except ContactsyncError as e:
            done.set()
            queue.finish(self.db, request.id, self.id, code=e.code, error=e.message)
            log.warning("request %s failed: %s", request.id, e, extra={"action": "worker.failed"})
        except Exception as e:
            done.set()
            queue.finish(self.db, request.id, self.id, code="E999", error=f"{type(e).__name__}: {e}")
            log.exception("request %s failed (a bug)", request.id, extra={"action": "worker.bug"})
        else:
            done.set()
            queue.finish(self.db, request.id, self.id)
            log.info("request %s done", request.id, extra={"action": "worker.done", "request": request.id})
        beating.join()

    def _beat(self, request: Request, done: threading.Event) -> None:
        while not done.wait(self.settings.worker_heartbeat_seconds):
            try:
                if not queue.heartbeat(self.db, request.id, self.id):
                    log.warning(
                        "request %s was taken from this worker", request.id, extra={"action": "worker.lost"}
                    )
                    return
            except Exception:
                log.exception("heartbeat failed", extra={"action": "worker.beat_error"})
