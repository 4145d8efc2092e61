"""The server's watchdogs: the zombie killer and Lazarus, late runs and lost agents.

``Watchdog.run_pass()`` looks for

- **runs whose process died**: runs under way (``Submitted``, ``Running``, ``Cancelling``) with
  no heartbeat for ``missed_heartbeats`` intervals. Each is settled by
  ``Attempts.crashed``: the zombie killer ends its running task runs (``Failed``, or
  ``Retrying`` when retries are left), then Lazarus reschedules the run (at most
  ``max_reschedules`` times) or fails it;
- **late runs**: ``Scheduled`` runs that no agent claimed ``late_after`` seconds after their
  start time (a ``flow_run_late`` event, once per run);
- **lost agents**: agents silent for ``agent_lost_after`` seconds (an ``agent_lost`` event, once
  per silence).

A server that was down could not hear anybody: for the first ``dead_after`` seconds after the
watchdog starts, nothing is taken for dead or lost because of a heartbeat missed while it was
down (every run and agent gets a fresh allowance).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, exists, select

from plait_server.data.states import SCHEDULED
from plait_server.db import models
from plait_server.db.models import utcnow

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from plait_server.data.records import ServerEventRecord
    from plait_server.data.store import Store

__all__ = ["Watchdog", "WatchdogStats"]

logger = logging.getLogger("plait_server.watchdog")

run_t = models.FlowRun.__table__
agent_t = models.Agent.__table__
event_t = models.ServerEvent.__table__

#: Late runs and lost agents older than this are not announced any more (a server starting on
#: an old database does not flood anybody).
LOOKBACK = timedelta(days=1)
#: The most events of one kind announced per pass.
PER_PASS = 200


@dataclass
class WatchdogStats:
    crashed: int = 0
    late: int = 0
    lost_agents: int = 0


class Watchdog:
    def __init__(self, store: Store, started: datetime | None = None) -> None:
        self.store = store
        self.started = started or utcnow()

    def run_pass(self, now: datetime | None = None) -> WatchdogStats:
        now = now or utcnow()
        stats = WatchdogStats()
        stats.crashed = self.settle_dead_runs(now)
        stats.late = self.announce_late_runs(now)
        stats.lost_agents = self.announce_lost_agents(now)
        return stats

    def settle_dead_runs(self, now: datetime) -> int:
        """The zombie killer and Lazarus: settle runs under way whose heartbeats stopped."""
        policy = self.store.policy
        before = now - timedelta(seconds=policy.dead_after)
        if self.started >= before:
            return 0  # we were not listening long enough to blame anybody
        reason = f"no heartbeat for {policy.dead_after:g}s ({policy.missed_heartbeats} intervals)"
        settled = 0
        for run_id in self.store.attempts.stale_runs(before):
            try:
                outcome = self.store.attempts.crashed(run_id, reason, by="zombie killer", stale_before=before)
            except Exception:
                logger.exception("settling flow run %s failed; trying again at the next pass", run_id)
                continue
            if outcome is not None:
                settled += 1
                logger.warning(
                    "flow run %s: %s; %d running task run(s) ended, the run is now %s",
                    run_id,
                    reason,
                    outcome.task_runs_ended,
                    outcome.state,
                )
        return settled

    def announce_late_runs(self, now: datetime) -> int:
        policy = self.store.policy
        late_before = now - timedelta(seconds=policy.late_after)
        store = self.store

        with store.read() as conn:
            rows = conn.execute(
                select(run_t.c.id, run_t.c.scheduled_start_time)
                .where(
                    run_t.c.state_type == SCHEDULED,
                    run_t.c.state == "Scheduled",
                    run_t.c.scheduled_start_time < late_before,
                    run_t.c.scheduled_start_time >= late_before - LOOKBACK,
                    ~exists().where(and_(event_t.c.kind == "flow_run_late", event_t.c.subject_id == run_t.c.id)),
                )
                .order_by(run_t.c.scheduled_start_time)
                .limit(PER_PASS)
            ).all()
        if not rows:
            return 0

        def write(conn: Connection) -> list[ServerEventRecord]:
            events = []
            for r in rows:
                late = (now - r.scheduled_start_time).total_seconds()
                event = store.events.record(
                    conn,
                    kind="flow_run_late",
                    subject_id=r.id,
                    occurrence="late",
                    flow_run_id=r.id,
                    state="Scheduled",
                    message=(
                        f"Flow run is late: scheduled for {r.scheduled_start_time:%Y-%m-%d %H:%M:%S} UTC, "
                        f"{late:.0f}s ago, and no agent has claimed it (is an agent with its labels running?)"
                    ),
                )
                if event is not None:
                    events.append(event)
            return events

        events = store.write(write)
        store.events.emit(events)
        return len(events)

    def announce_lost_agents(self, now: datetime) -> int:
        policy = self.store.policy
        lost_before = now - timedelta(seconds=policy.agent_lost_after)
        if self.started >= lost_before:
            return 0
        store = self.store

        with store.read() as conn:
            rows = conn.execute(
                select(agent_t.c.id, agent_t.c.name, agent_t.c.last_seen)
                .where(agent_t.c.last_seen < lost_before, agent_t.c.last_seen >= lost_before - LOOKBACK)
                .where(
                    ~exists().where(
                        and_(
                            event_t.c.kind == "agent_lost",
                            event_t.c.subject_id == agent_t.c.id,
                            event_t.c.created >= agent_t.c.last_seen,
                        )
                    )
                )
                .order_by(agent_t.c.last_seen)
                .limit(PER_PASS)
            ).all()
        if not rows:
            return 0

        def write(conn: Connection) -> list[ServerEventRecord]:
            events = []
            for r in rows:
                event = store.events.record(
                    conn,
                    kind="agent_lost",
                    subject_id=r.id,
                    occurrence=r.last_seen.isoformat(),
                    agent_id=r.id,
                    message=(
                        f"Agent {r.name!r} has not been seen for {(now - r.last_seen).total_seconds():.0f}s "
                        f"(last seen {r.last_seen:%Y-%m-%d %H:%M:%S} UTC); flow runs with its labels will wait"
                    ),
                )
                if event is not None:
                    events.append(event)
            return events

        events = store.write(write)
        store.events.emit(events)
        return len(events)
