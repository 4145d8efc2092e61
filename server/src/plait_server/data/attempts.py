"""The attempts of a flow run: heartbeats, what happens when a process dies, and restarts.

A flow run is *under way* (``Submitted``, ``Running``, ``Cancelling``) while a process holds it.
That process sends a heartbeat every ``RunPolicy.heartbeat_interval`` seconds (its agent renews
it too while it sees the process alive). When the heartbeats stop, or the agent reports that
the process exited before the run finished, ``crashed()`` settles the run in one transaction:

1. **the zombie killer's step**: every task run still ``Running`` is ended ``Failed`` ("no
   heartbeat: the process running it died"), or ``Retrying`` when the task has retries left and
   the flow run will run again, so the next attempt picks it up;
2. **Lazarus's step**: the flow run, which now has no live task run, goes back to ``Scheduled``
   (at most ``RunPolicy.max_reschedules`` times), then ``Failed`` with the reason; a run that
   was being cancelled ends ``Cancelled``.

Its run-scoped keys are revoked and its concurrency slots released, so a process that was only
cut off (not dead) can no longer write to the run: the next attempt owns it. A server event
(``flow_run_rescheduled`` or ``flow_run_crashed``) is recorded for the plugins.

``restart()`` is the user's "restart from failed": a finished run's failed task runs go back to
``Pending`` and the run to ``Scheduled``; the next attempt reuses the stored results of the
task runs that succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from plait_server.data import rules
from plait_server.data.records import FlowRunRecord, RunStatus, ServerEventRecord, StateWrite
from plait_server.data.states import (
    ACTIVE,
    CANCELLING,
    FINISHED,
    RUNNING,
    SUCCESS,
    state_type,
)
from plait_server.db import models
from plait_server.db.models import utcnow
from plait_server.errors import InvalidTransition, NotFound

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from plait_server.data.store import Store

__all__ = ["Attempts", "CrashOutcome", "RunPolicy", "write_flow_run_state", "write_task_run_states"]

run_t = models.FlowRun.__table__
task_run_t = models.TaskRun.__table__
task_t = models.Task.__table__
flow_t = models.Flow.__table__
state_t = models.RunState.__table__

_RUN_COLUMNS = (
    run_t.c.id,
    run_t.c.flow_id,
    run_t.c.state,
    run_t.c.state_type,
    run_t.c.state_timestamp,
    run_t.c.version,
    run_t.c.run_count,
    run_t.c.start_time,
    run_t.c.end_time,
    run_t.c.heartbeat,
    run_t.c.reschedule_count,
    run_t.c.agent_id,
)
_TASK_RUN_COLUMNS = (
    task_run_t.c.id,
    task_run_t.c.task_slug,
    task_run_t.c.map_index,
    task_run_t.c.state,
    task_run_t.c.state_type,
    task_run_t.c.version,
    task_run_t.c.run_count,
    task_run_t.c.start_time,
    task_run_t.c.end_time,
    task_run_t.c.result_location,
)


@dataclass
class RunPolicy:
    """How the server judges runs under way (``[server]`` settings of the same names)."""

    #: Seconds between a flow-run process's heartbeats (the server tells processes this value).
    heartbeat_interval: float = 30.0
    #: A run under way with no heartbeat for this many intervals is taken for dead.
    missed_heartbeats: int = 3
    #: How many times Lazarus reschedules a run whose process died before it fails it.
    max_reschedules: int = 3
    #: A ``Scheduled`` run not claimed this many seconds after its start time is late.
    late_after: float = 300.0
    #: An agent not heard from for this many seconds is lost.
    agent_lost_after: float = 120.0

    @property
    def dead_after(self) -> float:
        """Seconds without a heartbeat after which a run under way is taken for dead."""
        return self.heartbeat_interval * self.missed_heartbeats


@dataclass(slots=True)
class CrashOutcome:
    """What ``crashed()`` did: the flow run's new state and the task runs it ended."""

    flow_run_id: str
    state: str
    task_runs_ended: int
    event: ServerEventRecord | None


class Attempts:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- heartbeats -------------------------------------------------------------------------------

    def heartbeat(self, flow_run_id: str) -> RunStatus:
        """Record a heartbeat of the run's process; returns where the run stands.

        A run that is no longer under way (cancelled before it started, rescheduled, finished)
        gets no heartbeat; its status tells the process to stop.
        """
        now = utcnow()

        def write(conn: Connection) -> None:
            conn.execute(
                update(run_t).where(run_t.c.id == flow_run_id, run_t.c.state_type.in_(ACTIVE)).values(heartbeat=now)
            )

        self.store.write(write)
        return self.status(flow_run_id)

    def status(self, flow_run_id: str) -> RunStatus:
        with self.store.read() as conn:
            row = conn.execute(
                select(
                    run_t.c.id,
                    run_t.c.state,
                    run_t.c.state_type,
                    run_t.c.version,
                    run_t.c.state_timestamp,
                    run_t.c.state_message,
                ).where(run_t.c.id == flow_run_id)
            ).first()
        if row is None:
            raise NotFound(f"No flow run with id {flow_run_id!r}", id=flow_run_id)
        return RunStatus(**row._mapping)

    def stale_runs(self, before: datetime, limit: int = 500) -> list[str]:
        """Flow runs under way whose last sign of life (heartbeat, or the state change that put
        them under way) is older than ``before``."""
        with self.store.read() as conn:
            rows = conn.execute(
                select(run_t.c.id, run_t.c.heartbeat, run_t.c.state_timestamp)
                .where(run_t.c.state_type.in_(ACTIVE))
                .where(
                    (run_t.c.heartbeat < before) | (run_t.c.heartbeat.is_(None) & (run_t.c.state_timestamp < before))
                )
                .order_by(run_t.c.id)
                .limit(limit)
            ).all()
        return [r.id for r in rows]

    # -- a process died ------------------------------------------------------------------------

    def crashed(
        self, flow_run_id: str, reason: str, by: str, stale_before: datetime | None = None
    ) -> CrashOutcome | None:
        """Settle a run under way whose process died (see the module docstring).

        ``by`` names who noticed (``"zombie killer"``, ``"agent"``), for messages. With
        ``stale_before``, nothing happens if the run showed a sign of life since (a heartbeat
        that arrived between the caller's read and this write). Returns ``None`` when the run
        was not under way (any more).
        """
        policy = self.store.policy
        store = self.store

        from plait_server.data.concurrency import release_run_slots
        from plait_server.data.keys import revoke_run_tokens

        def write(conn: Connection) -> tuple[CrashOutcome, ServerEventRecord | None] | None:
            row = conn.execute(store.lock(select(*_RUN_COLUMNS).where(run_t.c.id == flow_run_id))).first()
            if row is None or row.state_type not in ACTIVE:
                return None
            if stale_before is not None:
                last = row.heartbeat or row.state_timestamp
                if last >= stale_before:
                    return None
            now = utcnow()
            cancelling = row.state_type == CANCELLING
            reschedule = not cancelling and row.reschedule_count < policy.max_reschedules
            # The zombie killer's step: the task runs the dead process was running.
            running = conn.execute(
                store.lock(
                    select(*_TASK_RUN_COLUMNS)
                    .where(task_run_t.c.flow_run_id == flow_run_id, task_run_t.c.state_type.in_([RUNNING, CANCELLING]))
                    .order_by(task_run_t.c.id)
                )
            ).all()
            retries = {}
            if running and reschedule:
                retries = dict(
                    conn.execute(
                        select(task_t.c.slug, task_t.c.max_retries).where(
                            task_t.c.flow_id == row.flow_id, task_t.c.slug.in_({r.task_slug for r in running})
                        )
                    ).all()
                )
            task_message = f"No heartbeat: the process running it died ({reason})."
            updates = []
            for tr in running:
                if cancelling:
                    new = StateWrite("Cancelled", message=f"The flow run was being cancelled and {reason}.")
                elif reschedule and tr.run_count <= retries.get(tr.task_slug, 0):
                    new = StateWrite("Retrying", message=task_message, start_time=now, run_count=tr.run_count)
                else:
                    new = StateWrite("Failed", message=task_message)
                updates.append((tr, new))
            ended = write_task_run_states(conn, flow_run_id, row.state_type, updates, now)
            # Lazarus's step: the flow run itself.
            if cancelling:
                new = StateWrite("Cancelled", message=f"Cancelled: {reason}.")
            elif reschedule:
                new = StateWrite(
                    "Scheduled",
                    message=(
                        f"Rescheduled by the server ({by}, {row.reschedule_count + 1} of {policy.max_reschedules}): "
                        f"{reason}."
                    ),
                    start_time=now,
                )
            else:
                new = StateWrite(
                    "Failed",
                    message=f"Failed: {reason}; it was rescheduled {policy.max_reschedules} times already.",
                )
            version = write_flow_run_state(conn, row, new, now)
            if version is None:
                return None
            conn.execute(
                update(run_t)
                .where(run_t.c.id == flow_run_id)
                .values(
                    agent_id=None,
                    heartbeat=None,
                    reschedule_count=row.reschedule_count + (1 if reschedule else 0),
                )
            )
            revoke_run_tokens(conn, [flow_run_id])
            release_run_slots(conn, [flow_run_id])
            event = None
            if not cancelling:
                event = store.events.record(
                    conn,
                    kind="flow_run_rescheduled" if reschedule else "flow_run_crashed",
                    subject_id=flow_run_id,
                    occurrence=str(version),
                    flow_run_id=flow_run_id,
                    agent_id=row.agent_id,
                    state=new.type,
                    message=new.message or reason,
                )
            return CrashOutcome(flow_run_id, new.type, ended, event), event

        done = store.write(write)
        if done is None:
            return None
        outcome, event = done
        store.changed("flow_run", [flow_run_id])
        if outcome.task_runs_ended:
            store.changed("task_run", [flow_run_id])
        if event is not None:
            store.events.emit([event])
        return outcome

    def process_exited(
        self, flow_run_id: str, exit_code: int, agent_name: str | None = None, agent_id: str | None = None
    ) -> FlowRunRecord:
        """An agent saw the run's process exit: settle the run if the process did not end it.

        Agents report with the run's run-scoped key, which names the attempt; with ``agent_id``,
        a run now held by another agent (a later attempt) is left alone.
        """
        run = self.store.runs.get(flow_run_id)
        if run.state_type in ACTIVE and (agent_id is None or run.agent_id == agent_id):
            how = f"with code {exit_code}" if exit_code >= 0 else f"killed by signal {-exit_code}"
            where = f" (agent {agent_name!r})" if agent_name else ""
            self.crashed(flow_run_id, f"its process exited {how} before the run finished{where}", by="agent")
        return self.store.runs.get(flow_run_id)

    # -- restart from failed ----------------------------------------------------------------------

    def restart(self, flow_run_id: str) -> FlowRunRecord:
        """Restart a finished flow run that did not succeed: its failed (and cancelled) task runs
        go back to ``Pending`` and the run to ``Scheduled``, due at once. The next attempt keeps
        the task runs that succeeded and reuses their stored results."""
        store = self.store

        def write(conn: Connection) -> None:
            row = conn.execute(store.lock(select(*_RUN_COLUMNS).where(run_t.c.id == flow_run_id))).first()
            if row is None:
                raise NotFound(f"No flow run with id {flow_run_id!r}", id=flow_run_id)
            if row.state_type not in FINISHED:
                raise InvalidTransition(
                    f"Flow run {flow_run_id!r} is {row.state}: only a finished run can be restarted",
                    rule="RestartOnlyFinishedRuns",
                    state=row.state,
                    version=row.version,
                )
            if row.state_type == SUCCESS:
                raise InvalidTransition(
                    f"Flow run {flow_run_id!r} succeeded ({row.state}); there is nothing to restart. "
                    "Create a new run instead",
                    rule="RestartOnlyFailedRuns",
                    state=row.state,
                    version=row.version,
                )
            now = utcnow()
            new = StateWrite("Scheduled", message="Restarted from failed.", start_time=now)
            version = write_flow_run_state(conn, row, new, now, restart=True)
            if version is None:
                raise InvalidTransition(f"Flow run {flow_run_id!r} changed while it was restarted; try again")
            conn.execute(
                update(run_t).where(run_t.c.id == flow_run_id).values(agent_id=None, heartbeat=None, reschedule_count=0)
            )
            task_runs = conn.execute(
                store.lock(
                    select(*_TASK_RUN_COLUMNS).where(task_run_t.c.flow_run_id == flow_run_id).order_by(task_run_t.c.id)
                )
            ).all()
            failed_parents = {tr.task_slug for tr in task_runs if tr.map_index >= 0 and tr.state_type not in (SUCCESS,)}
            reset = []
            for tr in task_runs:
                again = tr.state_type not in (SUCCESS,) and state_type(tr.state) != "PENDING"
                if tr.map_index < 0 and tr.task_slug in failed_parents:
                    again = True
                if again:
                    reset.append((tr, StateWrite("Pending", message="Reset by a restart of the flow run.")))
            write_task_run_states(conn, flow_run_id, "SCHEDULED", reset, now, restart=True)

        store.write(write)
        store.changed("flow_run", [flow_run_id])
        store.changed("task_run", [flow_run_id])
        return store.runs.get(flow_run_id)


# --- writes the rules judge, inside a caller's transaction ---------------------------------------


def write_flow_run_state(
    conn: Connection, row: Any, new: StateWrite, now: datetime, restart: bool = False
) -> int | None:
    """Move one flow run (``row``, read and locked by the caller) to ``new``; its new version,
    or ``None`` when a rule refuses (the caller decides what that means)."""
    from plait_server.data.driver import Driver
    from plait_server.data.runs import _HISTORY_INSERT, _apply, _compare_and_set, _history_row, _judge

    db = Driver(conn)
    current = dict(row._mapping)
    new_type = state_type(new.type)
    if _judge(rules.FLOW_RUN, current, row.version, new, new_type, None, restart, conn) is not None:
        return None
    _apply(current, new, new_type, now, now)
    _compare_and_set(db, "flow_run", {row.id: (row.version, current)})
    db.insert_many("run_state", _HISTORY_INSERT, [_history_row(db, row.id, None, current, new, now)])
    return current["version"]


def write_task_run_states(
    conn: Connection,
    flow_run_id: str,
    flow_run_type: str,
    updates: list[tuple[Any, StateWrite]],
    now: datetime,
    restart: bool = False,
) -> int:
    """Move task runs (rows read and locked by the caller) to new states; how many moved.

    A transition a rule refuses is skipped (these are the server's own writes on behalf of a
    process that is gone; the rules still have the last word).
    """
    from plait_server.data.driver import Driver
    from plait_server.data.runs import _HISTORY_INSERT, _apply, _compare_and_set, _history_row, _judge

    db = Driver(conn)
    changed: dict[str, tuple[int, dict[str, Any]]] = {}
    history = []
    for tr, new in updates:
        current = dict(tr._mapping)
        current["flow_run_id"] = flow_run_id
        new_type = state_type(new.type)
        again = restart and current["state_type"] in FINISHED
        if _judge(rules.TASK_RUN, current, tr.version, new, new_type, flow_run_type, again, conn) is not None:
            continue
        _apply(current, new, new_type, now, now)
        changed[tr.id] = (tr.version, current)
        history.append(_history_row(db, flow_run_id, tr.id, current, new, now))
    if changed:
        _compare_and_set(db, "task_run", changed)
        db.insert_many("run_state", _HISTORY_INSERT, history)
    return len(changed)
