"""Logs: written in batches of up to 1,000 records, read in order with a cursor."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from plait_server.data.common import MAX_LIMIT, check_limit, check_time
from plait_server.data.records import LogPage, LogRecord
from plait_server.db import models
from plait_server.db.models import utcnow
from plait_server.errors import BadInput, NotFound

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from plait_server.data.store import Store

__all__ = ["LogInput", "Logs"]

log_t = models.Log.__table__
run_t = models.FlowRun.__table__

#: The longest log message kept; longer ones are cut, with a note.
MAX_LOG_MESSAGE = 100_000


@dataclass(slots=True)
class LogInput:
    """One log record to store."""

    flow_run_id: str
    message: str
    level: int = logging.INFO
    logger: str = "plait"
    timestamp: datetime | None = None
    task_run_id: str | None = None
    task_slug: str | None = None
    map_index: int | None = None


class Logs:
    def __init__(self, store: Store) -> None:
        self.store = store

    def write(self, records: list[LogInput]) -> int:
        """Store ``records`` (at most 1,000) in one transaction; returns how many were stored.

        Every record's flow run must exist; otherwise nothing is stored (``NOT_FOUND`` names it).
        """
        if len(records) > MAX_LIMIT:
            raise BadInput(f"At most {MAX_LIMIT} log records per call; got {len(records)}. Send them in batches.")
        if not records:
            return 0
        now = utcnow()
        rows = [_row(r, now, i) for i, r in enumerate(records)]
        run_ids = sorted({r["flow_run_id"] for r in rows})

        def write(conn: Connection) -> int:
            found = set(conn.execute(select(run_t.c.id).where(run_t.c.id.in_(run_ids))).scalars())
            missing = [r for r in run_ids if r not in found]
            if missing:
                raise NotFound(f"No flow run with id {missing[0]!r}; no log record was stored", id=missing[0])
            conn.execute(log_t.insert(), rows)
            return len(rows)

        count = self.store.write(write)
        self.store.changed("log", run_ids)
        return count

    def read(
        self,
        flow_run_id: str,
        *,
        after: str | None = None,
        limit: int | None = None,
        task_run_id: str | None = None,
        min_level: int | None = None,
    ) -> LogPage:
        """The flow run's logs after the cursor ``after`` (from a previous page), in order."""
        limit, _ = check_limit(limit, 0, default=MAX_LIMIT)
        query = select(log_t).where(log_t.c.flow_run_id == flow_run_id)
        if after:
            try:
                query = query.where(log_t.c.id > int(after))
            except ValueError:
                raise BadInput(f"after must be a cursor from an earlier page, got {after!r:.40}") from None
        if task_run_id:
            query = query.where(log_t.c.task_run_id == task_run_id)
        if min_level is not None:
            query = query.where(log_t.c.level >= min_level)
        with self.store.read() as conn:
            rows = conn.execute(query.order_by(log_t.c.id).limit(limit + 1)).all()
            if not rows and not after:
                exists = conn.execute(select(run_t.c.id).where(run_t.c.id == flow_run_id)).first()
                if exists is None:
                    raise NotFound(f"No flow run with id {flow_run_id!r}", id=flow_run_id)
        more = len(rows) > limit
        items = [LogRecord(**r._mapping) for r in rows[:limit]]
        cursor = str(items[-1].id) if items else after
        return LogPage(items, cursor, more)


def _row(record: LogInput, now: datetime, index: int) -> dict[str, Any]:
    if not isinstance(record.message, str):
        raise BadInput(f"log record {index}: message must be a string")
    message = record.message
    if len(message) > MAX_LOG_MESSAGE:
        message = message[:MAX_LOG_MESSAGE] + f"... [{len(record.message) - MAX_LOG_MESSAGE} characters cut]"
    if not 0 <= record.level <= 100:
        raise BadInput(f"log record {index}: level must be between 0 and 100 (logging.INFO is 20), got {record.level}")
    if not isinstance(record.logger, str) or len(record.logger) > 200:
        raise BadInput(f"log record {index}: logger must be a name of at most 200 characters")
    if record.task_slug is not None and len(record.task_slug) > 300:
        raise BadInput(f"log record {index}: task_slug is at most 300 characters")
    if record.map_index is not None and record.map_index < -1:
        raise BadInput(f"log record {index}: map_index must be -1 or more")
    return {
        "flow_run_id": record.flow_run_id,
        "task_run_id": record.task_run_id,
        "task_slug": record.task_slug,
        "map_index": record.map_index,
        "level": record.level,
        "logger": record.logger,
        "timestamp": check_time(record.timestamp, f"log record {index}: timestamp") or now,
        "message": message,
    }
