"""Live updates for open pages: Server-Sent Events fed by the database, woken by ``Store.on_change``.

A flow-run page opens one event stream (``/flow-runs/ID/events``). The stream reads what
changed from the database, after two cursors the page was rendered with: the id of the last
state in the run's history and the id of the last log record (both tables have an index on
``(flow_run_id, id)``, so a read is a short index range, however big the run). It reads:

- at once when this process commits a write (``Store.on_change`` wakes every stream; a write
  through this server reaches open pages within a few tens of milliseconds), and
- every ``poll_interval`` seconds (0.5) otherwise, which is how writes made by *other* server
  processes on the same database (several ``plait server start`` behind a load balancer, on
  one PostgreSQL) reach the page: within about half a second.

A stream checks its API key again before it sends anything after a key was revoked in this
process (``ChangeHub.key_changes``), and every 30 seconds in any case (a key revoked through
another server process): a revoked key's open pages stop getting updates.

On PostgreSQL, ids are taken when a row is inserted but become visible when its transaction
commits, so a later id can be seen before an earlier one. The feed therefore reads again the
ids of the last ``reread_window`` seconds (2), skipping those it already sent: a transaction
that commits within 2 seconds of taking its ids is never missed (the server's write
transactions last milliseconds). On SQLite writers commit one at a time, in id order, and no
window is needed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plait_server.data.store import Store
    from plait_server.data.summaries import FlowRunChanges

__all__ = ["ChangeHub", "FlowRunFeed"]

logger = logging.getLogger("plait_server.ui")


class ChangeHub:
    """Wakes the open event streams when this process commits a write.

    One ``Store.on_change`` listener for the whole app; streams wait on ``wait()``. The listener
    runs on the writer's thread and only schedules a wake-up on the event loop (cheap, never
    blocks the write path).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.closing = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: set[asyncio.Event] = set()
        self._stop: Callable[[], None] | None = None
        self._pending = False
        self._lock = threading.Lock()
        #: Counts the API-key writes (created, revoked) this process committed: an open stream
        #: whose count is behind checks its key again before it sends anything more.
        self.key_changes = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = self.store.on_change(self._changed)

    def stop(self) -> None:
        """End the open streams (the server is stopping); safe from any thread."""
        self.closing.set()
        if self._stop is not None:
            self._stop()
            self._stop = None
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._wake)
            except RuntimeError:
                pass

    def _changed(self, kind: str, ids: list[str]) -> None:
        loop = self._loop
        if kind == "api_key":
            with self._lock:
                self.key_changes += 1
        elif kind not in ("flow_run", "task_run", "log"):
            return
        if loop is None:
            return
        if not self._waiters:
            # No open page waits (the common case for an API under load): nothing to wake, and
            # a wake-up of the event loop per write costs the writers. A stream that starts to
            # wait just after this still reads within its poll interval, as it would have if
            # the wake-up had reached the loop before it waited.
            return
        with self._lock:
            # Many writes in a row wake the streams once.
            if self._pending:
                return
            self._pending = True
        try:
            loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop is closed: the server is stopping
            pass

    def _wake(self) -> None:
        with self._lock:
            self._pending = False
        for event in list(self._waiters):
            event.set()

    async def wait(self, timeout: float) -> None:
        """Until this process commits a write, or ``timeout`` seconds pass."""
        event = asyncio.Event()
        self._waiters.add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(event)


class FlowRunFeed:
    """The changes to one flow run after a pair of cursors, with the PostgreSQL re-read window
    (see the module docstring). Not thread-safe: one per stream.

    The window: each read starts after the cursors of the last read made at least
    ``reread_window`` seconds ago (the settled cursors), and skips the ids already sent. An id
    taken at time t is visible by t + d (d: its transaction's duration); the first read after
    that starts below it as long as d + the poll interval < the window.
    """

    def __init__(
        self,
        store: Store,
        flow_run_id: str,
        state_cursor: int,
        log_cursor: int,
        *,
        min_level: int | None = None,
        task_slug: str | None = None,
        reread_window: float = 2.0,
    ) -> None:
        self.store = store
        self.flow_run_id = flow_run_id
        self.state_cursor = state_cursor
        self.log_cursor = log_cursor
        self.min_level = min_level
        self.task_slug = task_slug
        self.reread_window = 0.0 if store.sqlite else reread_window
        self._settled = (state_cursor, log_cursor)
        self._reads: deque[tuple[float, int, int]] = deque()
        self._sent_states: set[int] = set()
        self._sent_logs: set[int] = set()

    def read(self) -> FlowRunChanges:
        now = time.monotonic()
        if self.reread_window:
            while self._reads and self._reads[0][0] <= now - self.reread_window:
                _, s, lg = self._reads.popleft()
                self._settled = (s, lg)
            settled_states, settled_logs = self._settled
            self._sent_states = {i for i in self._sent_states if i > settled_states}
            self._sent_logs = {i for i in self._sent_logs if i > settled_logs}
        else:
            settled_states, settled_logs = self.state_cursor, self.log_cursor
        changes, state_ids, log_ids = self.store.summaries.changes(
            self.flow_run_id,
            settled_states,
            settled_logs,
            min_level=self.min_level,
            task_slug=self.task_slug,
            skip_states=self._sent_states,
            skip_logs=self._sent_logs,
        )
        self.state_cursor = max(self.state_cursor, changes.state_cursor)
        self.log_cursor = max(self.log_cursor, changes.log_cursor)
        if self.reread_window:
            self._sent_states.update(state_ids)
            self._sent_logs.update(log_ids)
            self._reads.append((now, self.state_cursor, self.log_cursor))
        return changes
