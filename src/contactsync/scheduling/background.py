"""The background threads of a process: scheduler, real-time push, workers, registered loops.

``contactsync serve`` starts them beside the API; ``contactsync worker`` runs them alone.
Other features add their loops (e.g. webhook deliveries) with :func:`register_loops`; the
modules that register run targets or loops are imported by :func:`load_modules`.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from contactsync.scheduling.realtime import Realtime
from contactsync.scheduling.scheduler import Scheduler
from contactsync.scheduling.worker import Worker
from contactsync.settings import Settings
from contactsync.store.db import Database

log = logging.getLogger(__name__)

LoopFn = Callable[[threading.Event], None]  # runs until the event is set
LoopFactory = Callable[[Database, Settings], list[tuple[str, LoopFn]]]

# Modules that register run targets or loops when imported. Exchange jobs may not exist in
# this build yet: a module missing from the list is skipped (any other import error is raised).
MODULES = (
    "contactsync.scheduling.source_runs",
    "contactsync.exchange.jobs",
    "contactsync.notify.webhooks",
    "contactsync.hub.optin",
    "contactsync.retention",
)

_factories: list[LoopFactory] = []


def register_loops(factory: LoopFactory) -> None:
    """Have every background process run the loops ``factory(db, settings)`` returns."""
    if factory not in _factories:
        _factories.append(factory)


def load_modules() -> None:
    for name in MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise


@dataclass
class Background:
    stop_event: threading.Event
    threads: list[threading.Thread] = field(default_factory=list)

    def stop(self, timeout: float = 30.0) -> bool:
        """Ask every loop to stop and wait up to ``timeout`` seconds in all; True when all did.

        A run still going after that is left to the process exit: its request is queued again
        by the next worker that sees the process gone.
        """
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self.threads if t.is_alive()]
        if alive:
            log.warning(
                "still running at stop: %s", ", ".join(alive), extra={"action": "background.stop_timeout"}
            )
        return not alive

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.threads]


def _supervised(name: str, fn: LoopFn, stop: threading.Event) -> Callable[[], None]:
    """Run a loop; restart it (after a growing pause) when it raises or returns early."""

    def run() -> None:
        failures = 0
        while not stop.is_set():
            try:
                fn(stop)
                failures = 0
            except Exception:
                failures += 1
                log.exception("background loop %s failed", name, extra={"action": "background.loop_error"})
            if not stop.is_set():
                stop.wait(min(60.0, 2.0**failures))

    return run


def start(db: Database, settings: Settings, *, scheduler: bool = True) -> Background:
    """Start the scheduler and real-time push (unless ``scheduler`` is False), the workers and
    every registered loop, as daemon threads."""
    load_modules()
    stop = threading.Event()
    loops: list[tuple[str, LoopFn]] = []
    if scheduler:
        loops.append(("scheduler", Scheduler(db, settings).run))
        loops.append(("realtime", Realtime(db, settings).run))
    for n in range(1, settings.worker_threads + 1):
        loops.append((f"worker-{n}", Worker(db, settings, f"worker-{n}").run))
    for factory in _factories:
        loops.extend(factory(db, settings))
    background = Background(stop)
    for name, fn in loops:
        thread = threading.Thread(target=_supervised(name, fn, stop), name=name, daemon=True)
        thread.start()
        background.threads.append(thread)
    log.info("background started: %s", ", ".join(background.names), extra={"action": "background.start"})
    return background
