"""The scheduler service: keep the next runs of every active schedule as ``Scheduled`` flow runs.

For each flow group whose schedule is on, the scheduler keeps the next ``runs_ahead`` (10)
runs of the current version's schedule as flow runs in ``Scheduled``, with their scheduled
start time, the clock's ``parameter_defaults`` as parameters and the start time (in the
clock's zone) in their context, so ``plait.context.today`` is what ``flow.run()`` on that
schedule gives. The times come from the core's ``Schedule`` (clocks, filters, adjustments,
time zones, DST) deserialized from the registered metadata: the same code ``flow.run()`` uses.

**Cost that does not grow with history.** Each flow group has a column the scheduler advances,
``next_schedule_check``: when the group needs looking at again (the start of its next run,
when one fewer run than ``runs_ahead`` will be ahead). A pass reads only the groups that are
due, by that indexed column; a pass with nothing to do is one index lookup.
``scheduled_until`` remembers the newest run created, so a pass computes only the new times.

**Replica-safe by construction.** A scheduled run's idempotency key is its scheduled time (and
the clock's parameters, when several clocks fire at once), under the UNIQUE constraint on
(flow group, idempotency key); the insert is ``ON CONFLICT DO NOTHING``. Two schedulers that
both create a run create one. On PostgreSQL a pass also takes the due groups with
``FOR UPDATE SKIP LOCKED``, so replicas share the work instead of repeating it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select, update

from plait_server.data.common import new_id
from plait_server.data.driver import Driver
from plait_server.data.states import SCHEDULED
from plait_server.db import models
from plait_server.db.models import utcnow

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from plait.schedules import Schedule
    from plait_server.data.store import Store

__all__ = ["PassStats", "Scheduler", "idempotency_key"]

logger = logging.getLogger("plait_server.scheduler")

group_t = models.FlowGroup.__table__
flow_t = models.Flow.__table__

#: Groups taken per transaction.
BATCH = 200
#: A group with nothing ahead (no schedule, or a schedule that ended) is looked at again after this.
RECHECK = timedelta(hours=1)


@dataclass
class PassStats:
    """What one pass did: groups looked at, runs created, seconds taken."""

    groups: int = 0
    runs_created: int = 0
    seconds: float = 0.0


def idempotency_key(start_time: datetime, parameter_defaults: dict[str, Any]) -> str:
    """The key of a scheduled run: its UTC start time, plus its parameters' digest when it has any."""
    key = "scheduled:" + start_time.astimezone(UTC).isoformat()
    if parameter_defaults:
        digest = hashlib.sha256(json.dumps(parameter_defaults, sort_keys=True, default=repr).encode()).hexdigest()
        key += ":" + digest[:16]
    return key


class Scheduler:
    """Creates the scheduled runs of active schedules; ``run_pass()`` does one pass.

    Args:
        store: the data layer.
        runs_ahead: how many future runs each active schedule keeps.
        batch: flow groups handled per transaction.
    """

    def __init__(self, store: Store, runs_ahead: int = 10, batch: int = BATCH) -> None:
        self.store = store
        self.runs_ahead = runs_ahead
        self.batch = batch
        self._schedules: dict[str, Schedule | None] = {}

    def run_pass(self, now: datetime | None = None) -> PassStats:
        """Look at every due flow group once; create the runs they are missing."""
        started = time.perf_counter()
        now = now or utcnow()
        stats = PassStats()
        while True:
            groups, created = self.store.write(lambda conn: self._batch(conn, now))
            stats.groups += groups
            stats.runs_created += created
            if created:
                self.store.changed("flow_run", [])
            if groups < self.batch:
                break
        stats.seconds = time.perf_counter() - started
        if stats.runs_created:
            logger.info(
                "scheduler: %d runs created for %d flows in %.2fs", stats.runs_created, stats.groups, stats.seconds
            )
        return stats

    # -- one batch of groups, in one transaction ----------------------------------------------------

    def _batch(self, conn: Connection, now: datetime) -> tuple[int, int]:
        query = (
            select(group_t.c.id, group_t.c.scheduled_until)
            .where(group_t.c.schedule_active.is_(True))
            .where((group_t.c.next_schedule_check.is_(None)) | (group_t.c.next_schedule_check <= now))
            .order_by(group_t.c.next_schedule_check.is_not(None), group_t.c.next_schedule_check, group_t.c.id)
            .limit(self.batch)
        )
        if not self.store.sqlite:
            query = query.with_for_update(skip_locked=True, of=group_t)
        groups = conn.execute(query).all()
        if not groups:
            return 0, 0
        flows = {
            r.flow_group_id: r
            for r in conn.execute(
                select(
                    flow_t.c.id,
                    flow_t.c.flow_group_id,
                    flow_t.c.name,
                    flow_t.c.schedule,
                    flow_t.c.parameters,
                    flow_t.c.labels,
                ).where(flow_t.c.flow_group_id.in_([g.id for g in groups]), flow_t.c.archived.is_(False))
            )
        }
        runs: list[tuple[Any, ...]] = []
        checks: list[dict[str, Any]] = []
        for group in groups:
            flow = flows.get(group.id)
            schedule = self._schedule(flow) if flow is not None else None
            if schedule is None:
                checks.append(_check(group.id, now + RECHECK, group.scheduled_until, now))
                continue
            new_runs, until, next_check = self._plan(flow, schedule, group.scheduled_until, now)
            runs.extend(new_runs)
            checks.append(_check(group.id, next_check, until, now))
        created = self._insert(conn, runs, now) if runs else 0
        conn.execute(
            update(group_t)
            .where(group_t.c.id == bindparam("g_id"))
            .values(
                next_schedule_check=bindparam("g_next"),
                scheduled_until=bindparam("g_until"),
                scheduled_at=bindparam("g_at"),
            ),
            checks,
        )
        return len(groups), created

    def _plan(
        self, flow: Any, schedule: Schedule, until: datetime | None, now: datetime
    ) -> tuple[list[tuple[Any, ...]], datetime | None, datetime]:
        """The runs to create for ``flow``, the new ``scheduled_until`` and the next check."""
        ahead = self.runs_ahead
        upcoming = iter(schedule.events(now))
        have: list[Any] = []
        if until is not None and until > now:
            # Runs already created up to ``until``: count them instead of creating them again.
            for event in upcoming:
                if event.start_time.astimezone(UTC) > until:
                    upcoming = itertools.chain([event], upcoming)
                    break
                have.append(event)
                if len(have) >= ahead:
                    break
        new_events = list(itertools.islice(upcoming, max(0, ahead - len(have))))
        first = (have or new_events or [None])[0]
        next_check = now + RECHECK if first is None else min(first.start_time.astimezone(UTC), now + RECHECK)
        if not new_events:
            return [], until, next_check
        params = _parameter_names(flow.parameters)
        labels = _json(list(flow.labels or []))
        rows = []
        for event in new_events:
            when = event.start_time.astimezone(UTC)
            defaults = {k: v for k, v in event.parameter_defaults.items() if k in params}
            run_id = new_id()
            rows.append(
                (
                    run_id,
                    flow.id,
                    flow.flow_group_id,
                    f"{flow.name}-{when:%Y%m%d-%H%M%S}-{run_id[:6]}",
                    _json(defaults) if defaults else "{}",
                    # an ISO time needs no JSON escaping
                    f'{{"scheduled_start_time":"{event.start_time.isoformat()}"}}',
                    # a clock's labels, when it has some, replace the flow's (as in Prefect 1)
                    labels if event.labels is None else _json(list(event.labels)),
                    idempotency_key(when, defaults),
                    when,
                )
            )
        return rows, new_events[-1].start_time.astimezone(UTC), next_check

    def _insert(self, conn: Connection, rows: list[tuple[Any, ...]], now: datetime) -> int:
        """Insert the planned runs (those whose key is taken already are left out) and the
        first state of each that went in. Straight to the DBAPI cursor (``Driver``): a first
        pass creates 10 runs per schedule, and SQLAlchemy's per-value processing was most of
        its time."""
        db = Driver(conn)
        to_db = db.to_db
        stamp = to_db(now)
        db.insert_many(
            "flow_run",
            _RUN_INSERT,
            [(*r[:8], True, to_db(r[8]), "Scheduled", SCHEDULED, None, stamp, 1, 0, 0, stamp, stamp) for r in rows],
            suffix=" ON CONFLICT (flow_group_id, idempotency_key) DO NOTHING",
        )
        planned = {r[0]: r[8] for r in rows}
        inserted: list[str] = []
        ids = list(planned)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            found = db.fetch(f"SELECT id FROM flow_run WHERE id IN ({db.marks(len(chunk))})", chunk)
            inserted.extend(r[0] for r in found)
        if not inserted:
            return 0
        db.insert_many(
            "run_state",
            _STATE_INSERT,
            [
                (
                    run_id,
                    None,
                    "Scheduled",
                    SCHEDULED,
                    "Scheduled by the scheduler.",
                    None,
                    to_db(planned[run_id]),
                    stamp,
                    1,
                )
                for run_id in inserted
            ],
        )
        return len(inserted)

    def _schedule(self, flow: Any) -> Schedule | None:
        """The flow version's schedule (deserialized once per version), or ``None``."""
        if flow.id in self._schedules:
            return self._schedules[flow.id]
        schedule = None
        if flow.schedule:
            from plait.schedules import Schedule

            try:
                schedule = Schedule.deserialize(flow.schedule)
            except Exception as exc:
                logger.error(
                    "flow %r (version %s): its schedule cannot be read, no runs are created: %s",
                    flow.name,
                    flow.id,
                    exc,
                )
        if len(self._schedules) > 100_000:
            self._schedules.clear()
        self._schedules[flow.id] = schedule
        return schedule


_RUN_INSERT = (
    "id",
    "flow_id",
    "flow_group_id",
    "name",
    "parameters",
    "context",
    "labels",
    "idempotency_key",
    "auto_scheduled",
    "scheduled_start_time",
    "state",
    "state_type",
    "state_message",
    "state_timestamp",
    "version",
    "run_count",
    "reschedule_count",
    "created",
    "updated",
)
_STATE_INSERT = (
    "flow_run_id",
    "task_run_id",
    "state",
    "state_type",
    "message",
    "result_location",
    "start_time",
    "timestamp",
    "version",
)


def _json(value: Any) -> str:
    """A JSON column's value as the database takes it from the driver (text; jsonb casts it)."""
    return json.dumps(value, separators=(",", ":"))


def _check(group_id: str, next_check: datetime, until: datetime | None, now: datetime) -> dict[str, Any]:
    return {"g_id": group_id, "g_next": next_check, "g_until": until, "g_at": now}


def _parameter_names(parameters: Any) -> set[str]:
    """Names a scheduled run may set: the flow's parameters, except secret ones (never stored)."""
    return {
        p["name"]
        for p in parameters or []
        if isinstance(p, dict) and isinstance(p.get("name"), str) and not p.get("secret")
    }
