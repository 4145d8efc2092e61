"""Server events: recorded once per occurrence, then handed to the plugins.

``record(conn, ...)`` inserts an event inside the caller's transaction with
``INSERT ... ON CONFLICT DO NOTHING`` on (kind, subject, occurrence): when several server
processes notice the same thing, one insert wins and only that process announces it.
``emit(events)`` (after the transaction commits) calls the ``plait_server_event`` hook on a
background thread, so a slow or failing plugin never holds up the server's loops or a request.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from plait_server.data.common import check_limit
from plait_server.data.records import ServerEventRecord
from plait_server.db import models
from plait_server.db.models import utcnow

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from plait_server.data.store import Store

__all__ = ["ServerEvents"]

logger = logging.getLogger("plait_server.events")

event_t = models.ServerEvent.__table__
run_t = models.FlowRun.__table__
flow_t = models.Flow.__table__
agent_t = models.Agent.__table__


class ServerEvents:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: queue.Queue[ServerEventRecord | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition(self._lock)

    def record(
        self,
        conn: Connection,
        *,
        kind: str,
        subject_id: str,
        occurrence: str,
        message: str,
        flow_run_id: str | None = None,
        agent_id: str | None = None,
        state: str | None = None,
    ) -> ServerEventRecord | None:
        """Insert the event unless this occurrence is recorded already; the new record, or ``None``."""
        flow_name = None
        if flow_run_id is not None:
            flow_name = conn.execute(
                select(flow_t.c.name).join(run_t, run_t.c.flow_id == flow_t.c.id).where(run_t.c.id == flow_run_id)
            ).scalar_one_or_none()
        row = {
            "kind": kind,
            "subject_id": subject_id,
            "occurrence": occurrence[:64],
            "flow_run_id": flow_run_id,
            "agent_id": agent_id,
            "flow_name": flow_name,
            "state": state,
            "message": message,
            "created": utcnow(),
        }
        inserted = conn.execute(
            self.store.insert_ignoring_conflicts(event_t, ["kind", "subject_id", "occurrence"]).returning(event_t.c.id),
            row,
        ).first()
        if inserted is None:
            return None
        return ServerEventRecord(id=inserted.id, **row)

    def list(
        self, *, after: int | None = None, kinds: list[str] | None = None, limit: int | None = None
    ) -> list[ServerEventRecord]:
        """Events in the order they were recorded (``after``: only those with a greater id)."""
        limit, _ = check_limit(limit, 0)
        query = select(event_t)
        if after is not None:
            query = query.where(event_t.c.id > after)
        if kinds:
            query = query.where(event_t.c.kind.in_(kinds))
        with self.store.read() as conn:
            rows = conn.execute(query.order_by(event_t.c.id).limit(limit)).all()
        return [ServerEventRecord(**r._mapping) for r in rows]

    # -- telling the plugins ----------------------------------------------------------------------

    def emit(self, events: list[ServerEventRecord]) -> None:
        """Hand recorded events to the ``plait_server_event`` hook (in order, on a background thread)."""
        if not events:
            return
        self._ensure_thread()
        with self._lock:
            self._pending += len(events)
        for event in events:
            self._queue.put(event)

    def wait_emitted(self, timeout: float | None = None) -> bool:
        """Wait until every emitted event has been handed to the plugins (for tests and shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="plait-server-events", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            record = self._queue.get()
            if record is None:
                return
            try:
                self._dispatch(record)
            except Exception:
                logger.exception("announcing server event %s %s failed", record.kind, record.subject_id)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _dispatch(self, record: ServerEventRecord) -> None:
        from plait.events import ServerEvent
        from plait.hooks.manager import get_hooks

        extra: dict[str, Any] = {}
        run_name = agent_name = None
        with self.store.read() as conn:
            if record.flow_run_id is not None:
                run_name = conn.execute(
                    select(run_t.c.name).where(run_t.c.id == record.flow_run_id)
                ).scalar_one_or_none()
            if record.agent_id is not None:
                agent_name = conn.execute(
                    select(agent_t.c.name).where(agent_t.c.id == record.agent_id)
                ).scalar_one_or_none()
        event = ServerEvent(
            kind=record.kind,
            message=record.message,
            time=record.created,
            id=record.id,
            flow_name=record.flow_name,
            flow_run_id=record.flow_run_id,
            flow_run_name=run_name,
            state=record.state,
            agent_id=record.agent_id,
            agent_name=agent_name,
            extra=extra,
        )
        logger.info("server event %s: %s", event.kind, event.message)
        get_hooks().server_event(event)
