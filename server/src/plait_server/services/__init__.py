"""The server's background services: the scheduler and the watchdogs, in one loop.

``Services(store, settings).start()`` runs them on a daemon thread (what ``plait server start``
does unless ``[server] scheduler = false``); ``run_forever()`` runs them in the calling thread
(``plait server scheduler``, which needs no HTTP port, so several replicas can run against one
PostgreSQL database). Every pass is safe to run in several processes at once (see each
service's module); a pass that fails (the database restarting, say) is logged and the loop
goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from plait_server.services.scheduler import PassStats, Scheduler
from plait_server.services.watchdog import Watchdog, WatchdogStats

if TYPE_CHECKING:
    from plait_server.data.store import Store
    from plait_server.settings import ServerSettings

__all__ = ["PassStats", "Scheduler", "Services", "Watchdog", "WatchdogStats"]

logger = logging.getLogger("plait_server.services")


class Services:
    """The scheduler (every ``scheduler_interval`` s) and the watchdog (a few times per
    heartbeat interval), on one loop."""

    def __init__(self, store: Store, settings: ServerSettings) -> None:
        self.store = store
        self.settings = settings
        store.policy = settings.run_policy()
        self.scheduler = Scheduler(store, runs_ahead=settings.scheduled_runs)
        self.watchdog = Watchdog(store)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Passes done, for tests and logs.
        self.passes = 0

    @property
    def watchdog_interval(self) -> float:
        return max(0.05, min(self.store.policy.heartbeat_interval / 3, 10.0))

    def start(self) -> Services:
        self._thread = threading.Thread(target=self.run_forever, name="plait-server-services", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.store.events.wait_emitted(timeout=5.0)

    def run_forever(self) -> None:
        logger.info(
            "services: scheduler every %gs (%d runs ahead), watchdog every %gs",
            self.settings.scheduler_interval,
            self.settings.scheduled_runs,
            self.watchdog_interval,
        )
        next_watch = time.monotonic()
        failures = 0
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.scheduler.run_pass()
                if started >= next_watch:
                    self.watchdog.run_pass()
                    next_watch = started + self.watchdog_interval
                failures = 0
            except Exception as exc:
                failures += 1
                log = logger.exception if failures == 1 else logger.warning
                log("services: a pass failed (%s); trying again", type(exc).__name__)
            self.passes += 1
            delay = self.settings.scheduler_interval * (1 if not failures else min(2**failures, 30))
            self._stop.wait(max(0.0, started + delay - time.monotonic()))

    def stop_requested(self) -> bool:
        return self._stop.is_set()
