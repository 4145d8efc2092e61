"""The data layer's entry point: ``Store(engine)`` and its transactions.

Everything the API (and the web UI) reads or writes goes through a ``Store``::

    store = Store(make_engine("sqlite:///server.db"))
    result = store.flows.register(project="default", metadata=..., storage=..., labels=[])
    run, created = store.runs.create(flow_id=result.flow.id, idempotency_key="2024-01-01")
    store.runs.set_states([(run.id, run.version, StateWrite("Submitted"))])

Writes go through ``Store.write(fn)``, which runs ``fn(connection)`` in one transaction:

- on SQLite, under a process-wide lock and ``BEGIN IMMEDIATE``: writers queue instead of
  failing with ``database is locked``; readers are never blocked (WAL);
- on PostgreSQL, side by side; the data layer locks the rows it changes, and a transaction
  that hits a deadlock or a serialization failure is run again.

On PostgreSQL a request of the API takes one pooled connection for all it does
(``Store.request()``): the API key check, its reads and its write transaction run on it, one
after the other, so a request pays for one checkout (and its pre-ping) instead of one per step.

After a write commits, the callbacks registered with ``on_change`` hear which kind of object
changed and which ids (the UI's live updates and server-side events listen there).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from plait_server.db.engine import is_sqlite

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from plait_server.data.agents import Agents
    from plait_server.data.attempts import Attempts
    from plait_server.data.concurrency import ConcurrencyLimits
    from plait_server.data.events import ServerEvents
    from plait_server.data.flows import Flows
    from plait_server.data.keys import ApiKeys
    from plait_server.data.logs import Logs
    from plait_server.data.runs import FlowRuns, TaskRuns
    from plait_server.data.summaries import Summaries

__all__ = ["Store"]

logger = logging.getLogger("plait_server.store")

R = TypeVar("R")

#: How many times a write transaction is tried when the database says "try again".
WRITE_ATTEMPTS = 6

# PostgreSQL errors after which the whole transaction may simply be run again.
_RETRY_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected


class RetryTransaction(Exception):
    """Raised inside a write to run it again from the start (a lost race the code noticed)."""


class Store:
    """The server's data: flows, runs, states, logs and API keys, over one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        from plait_server.data.agents import Agents
        from plait_server.data.attempts import Attempts, RunPolicy
        from plait_server.data.concurrency import ConcurrencyLimits
        from plait_server.data.events import ServerEvents
        from plait_server.data.flows import Flows
        from plait_server.data.keys import ApiKeys
        from plait_server.data.logs import Logs
        from plait_server.data.runs import FlowRuns, TaskRuns
        from plait_server.data.summaries import Summaries

        self.engine = engine
        self.sqlite = is_sqlite(engine)
        self._write_lock = threading.Lock()
        # The connection of the request this thread serves (Store.request), on PostgreSQL.
        self._local = threading.local()
        self._listeners: list[Callable[[str, list[str]], None]] = []
        self.flows: Flows = Flows(self)
        self.runs: FlowRuns = FlowRuns(self)
        self.task_runs: TaskRuns = TaskRuns(self)
        self.logs: Logs = Logs(self)
        self.keys: ApiKeys = ApiKeys(self)
        # Orchestration: agents and their claims, attempts of runs (heartbeats, crashes,
        # restarts), concurrency limits, server events; ``policy`` holds the timings.
        self.policy = RunPolicy()
        self.agents: Agents = Agents(self)
        self.attempts: Attempts = Attempts(self)
        self.concurrency: ConcurrencyLimits = ConcurrencyLimits(self)
        self.events: ServerEvents = ServerEvents(self)
        #: Read-only summaries for the web UI (runs per hour, Gantt groups, live changes).
        self.summaries: Summaries = Summaries(self)

    # -- transactions ---------------------------------------------------------------------------

    @contextmanager
    def request(self) -> Iterator[None]:
        """Serve one request on one pooled connection (PostgreSQL; on SQLite, nothing).

        Inside it, ``connect()``, ``read()`` and ``write()`` on this thread use that connection
        (one checkout and one pre-ping for the request, not one per step) while it is free: a
        read or write opened inside another one's transaction gets a connection of its own, as
        outside a request, and so does everything after the connection was lost (a retried
        write checks out a new, pinged one).
        """
        if self.sqlite or getattr(self._local, "conn", None) is not None:
            yield
            return
        conn = self.engine.connect()
        self._local.conn = conn
        try:
            yield
        finally:
            self._local.conn = None
            conn.close()

    def connect(self) -> Any:
        """A connection to use in a ``with`` block: the request's (left open at the block's end)
        when it is free, else a new one from the pool."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.invalidated or conn.in_transaction():
            return self.engine.connect()
        return nullcontext(conn)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection in a read transaction (one consistent snapshot on SQLite's WAL)."""
        with self.connect() as conn, conn.begin():
            yield conn

    def write(self, fn: Callable[[Connection], R]) -> R:
        """Run ``fn(connection)`` in one write transaction, again if the database asks for it."""
        delay = 0.01
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                if self.sqlite:
                    with self._write_lock, self.engine.connect() as conn:
                        conn.execution_options(plait_write=True)
                        with conn.begin():
                            return fn(conn)
                with self.connect() as conn, conn.begin():
                    return fn(conn)
            except RetryTransaction:
                if attempt == WRITE_ATTEMPTS:
                    raise
            except (OperationalError, DBAPIError) as exc:
                if attempt == WRITE_ATTEMPTS or not self._transient(exc):
                    raise
                logger.info("write transaction retried (%s): %s", attempt, str(exc.orig)[:200])
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        raise AssertionError("unreachable")

    def _transient(self, exc: DBAPIError) -> bool:
        if self.sqlite:
            text = str(exc.orig).lower()
            return "database is locked" in text or "database is busy" in text
        return getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES

    # -- change notifications --------------------------------------------------------------------

    def on_change(self, callback: Callable[[str, list[str]], None]) -> Callable[[], None]:
        """Call ``callback(kind, ids)`` after each committed write; returns a function that stops it.

        ``kind`` is ``"flow"``, ``"flow_run"``, ``"task_run"``, ``"log"`` or ``"api_key"``. A
        callback runs on the writer's thread and must be quick; one that raises is logged.
        """
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def changed(self, kind: str, ids: list[str]) -> None:
        for callback in list(self._listeners):
            try:
                callback(kind, ids)
            except Exception:
                logger.exception("change listener %r failed", callback)

    # -- helpers for the areas -------------------------------------------------------------------

    def insert_ignoring_conflicts(self, table: Any, index_elements: list[str]) -> Any:
        """``INSERT ... ON CONFLICT (index_elements) DO NOTHING`` for this database."""
        if self.sqlite:
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        return insert(table).on_conflict_do_nothing(index_elements=index_elements)

    def lock(self, select: Any, *, shared: bool = False) -> Any:
        """``select`` with ``FOR UPDATE`` (``FOR SHARE`` when ``shared``) on PostgreSQL.

        On SQLite the write transaction already holds the database's only write lock.
        """
        if self.sqlite:
            return select
        return select.with_for_update(read=shared)

    def dispose(self) -> None:
        self.engine.dispose()
