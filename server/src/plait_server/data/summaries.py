"""Read-only summaries the web UI shows: runs per hour, failing flows, late and upcoming runs,
the last runs of each flow, a flow run's task runs grouped for its Gantt, and the changes to a
flow run since a cursor (its live feed).

Each is one or two indexed queries, so the pages that use them stay fast with a big history:
a 10,000-item map run, or tens of thousands of runs a day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, literal_column, or_, select

from plait_server.data.common import check_limit
from plait_server.data.records import FlowRunRecord, LogRecord, TaskRunRecord
from plait_server.data.runs import _task_run_record
from plait_server.data.states import FAILED, SCHEDULED, STATE_TYPES
from plait_server.db import models
from plait_server.db.models import utcnow

if TYPE_CHECKING:
    from plait_server.data.store import Store

__all__ = ["FlowRunChanges", "HourCount", "RunBrief", "Summaries", "TaskGroup"]

flow_t = models.Flow.__table__
group_t = models.FlowGroup.__table__
project_t = models.Project.__table__
run_t = models.FlowRun.__table__
task_run_t = models.TaskRun.__table__
state_t = models.RunState.__table__
log_t = models.Log.__table__


@dataclass(slots=True)
class HourCount:
    """How many runs scheduled in the hour starting at ``hour`` are in state type ``state_type``."""

    hour: datetime
    state_type: str
    count: int


@dataclass(slots=True)
class RunBrief:
    """A flow run in a list: enough to show it and link to it."""

    id: str
    name: str
    flow_id: str
    flow_group_id: str
    flow_name: str
    state: str
    state_type: str
    scheduled_start_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    labels: list[str] = field(default_factory=list)


@dataclass(slots=True)
class FailingFlow:
    flow_group_id: str
    flow_id: str
    flow_name: str
    project: str
    failures: int
    last_failure: datetime | None
    last_run_id: str


@dataclass(slots=True)
class TaskGroup:
    """A task of a flow run for the Gantt: its own task run (``run``, the parent of a mapped
    task) and, for a mapped task, how many children are in each state and their time span."""

    slug: str
    run: TaskRunRecord | None
    children: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    first_start: datetime | None = None
    last_end: datetime | None = None


@dataclass(slots=True)
class FlowRunChanges:
    """What changed in a flow run since the cursors: its row (if its state changed), the task
    runs whose state changed (current rows), new log records, and the cursors to pass next."""

    run: FlowRunRecord | None
    task_runs: list[TaskRunRecord]
    logs: list[LogRecord]
    state_cursor: int
    log_cursor: int
    more_logs: bool = False
    #: ``{slug: {state: count}}`` of the mapped tasks whose children changed.
    child_counts: dict[str, dict[str, int]] = field(default_factory=dict)


class Summaries:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- the dashboard --------------------------------------------------------------------------

    def runs_by_hour(self, since: datetime, until: datetime) -> list[HourCount]:
        """Runs scheduled in ``[since, until)``, counted per hour and state type (one query)."""
        if self.store.sqlite:
            # SQLite stores times as text "YYYY-MM-DD HH:MM:SS.ffffff": the hour is its first 13 characters.
            hour = func.substr(run_t.c.scheduled_start_time, 1, 13)
        else:
            hour = func.date_trunc("hour", run_t.c.scheduled_start_time)
        query = (
            select(hour.label("hour"), run_t.c.state_type, func.count())
            .where(
                # Every state type, named: the (state type, scheduled start) index then serves the
                # time range (a range scan per type) instead of a scan of the whole table.
                run_t.c.state_type.in_(STATE_TYPES),
                run_t.c.scheduled_start_time >= since,
                run_t.c.scheduled_start_time < until,
            )
            .group_by(literal_column("hour"), run_t.c.state_type)
        )
        with self.store.read() as conn:
            rows = conn.execute(query).all()
        out = []
        for h, state_type, n in rows:
            if isinstance(h, str):
                h = datetime.fromisoformat(h + ":00")
            out.append(HourCount(h.replace(tzinfo=since.tzinfo), state_type, n))
        return sorted(out, key=lambda c: (c.hour, c.state_type))

    def failing_flows(self, since: datetime, limit: int = 10) -> list[FailingFlow]:
        """Flows with failed runs scheduled since ``since``, most recent failure first."""
        failed = (
            select(
                run_t.c.flow_group_id,
                func.count().label("failures"),
                func.max(run_t.c.scheduled_start_time).label("last"),
            )
            .where(run_t.c.state_type == FAILED, run_t.c.scheduled_start_time >= since)
            .group_by(run_t.c.flow_group_id)
            .order_by(func.max(run_t.c.scheduled_start_time).desc())
            .limit(limit)
        )
        with self.store.read() as conn:
            rows = conn.execute(failed).all()
            out = []
            for group_id, failures, _last in rows:
                last = conn.execute(
                    select(run_t.c.id, run_t.c.end_time, run_t.c.flow_id)
                    .where(run_t.c.flow_group_id == group_id, run_t.c.state_type == FAILED)
                    .order_by(run_t.c.scheduled_start_time.desc())
                    .limit(1)
                ).one()
                name = conn.execute(
                    select(group_t.c.name, project_t.c.name)
                    .join(project_t, project_t.c.id == group_t.c.project_id)
                    .where(group_t.c.id == group_id)
                ).one()
                out.append(FailingFlow(group_id, last.flow_id, name[0], name[1], failures, last.end_time, last.id))
        return out

    def late_runs(self, late_after: timedelta, limit: int = 10) -> tuple[list[RunBrief], int]:
        """Runs still ``Scheduled`` more than ``late_after`` past their start time, oldest first,
        and how many there are."""
        before = utcnow() - late_after
        condition = and_(run_t.c.state_type == SCHEDULED, run_t.c.scheduled_start_time < before)
        with self.store.read() as conn:
            total = conn.execute(select(func.count()).select_from(run_t).where(condition)).scalar_one()
            rows = conn.execute(
                _brief_select().where(condition).order_by(run_t.c.scheduled_start_time).limit(limit)
            ).all()
        return [_brief(r) for r in rows], total

    def upcoming_runs(self, limit: int = 10, flow_group_id: str | None = None) -> list[RunBrief]:
        """Runs ``Scheduled`` from now on, soonest first."""
        condition = and_(run_t.c.state_type == SCHEDULED, run_t.c.scheduled_start_time >= utcnow())
        if flow_group_id is not None:
            condition = and_(condition, run_t.c.flow_group_id == flow_group_id)
        with self.store.read() as conn:
            rows = conn.execute(
                _brief_select().where(condition).order_by(run_t.c.scheduled_start_time).limit(limit)
            ).all()
        return [_brief(r) for r in rows]

    # -- the flows page -------------------------------------------------------------------------

    def last_runs(self, flow_group_ids: list[str], per_group: int = 10) -> dict[str, list[RunBrief]]:
        """The last ``per_group`` runs of each group that are due (scheduled up to now), newest first.

        One short query per group on the (flow group, scheduled start) index: a page of flows
        costs the same however long their histories are.
        """
        now = utcnow()
        out: dict[str, list[RunBrief]] = {}
        with self.store.read() as conn:
            for group in flow_group_ids:
                rows = conn.execute(
                    _brief_select()
                    .where(run_t.c.flow_group_id == group, run_t.c.scheduled_start_time <= now)
                    .order_by(run_t.c.scheduled_start_time.desc())
                    .limit(per_group)
                ).all()
                out[group] = [_brief(r) for r in rows]
        return out

    def next_runs(self, flow_group_ids: list[str], per_group: int = 3) -> dict[str, list[RunBrief]]:
        """The next ``per_group`` scheduled runs of each group, soonest first (a query per group)."""
        now = utcnow()
        out: dict[str, list[RunBrief]] = {}
        with self.store.read() as conn:
            for group in flow_group_ids:
                rows = conn.execute(
                    _brief_select()
                    .where(
                        run_t.c.flow_group_id == group,
                        run_t.c.scheduled_start_time > now,
                        run_t.c.state_type == SCHEDULED,
                    )
                    .order_by(run_t.c.scheduled_start_time)
                    .limit(per_group)
                ).all()
                out[group] = [_brief(r) for r in rows]
        return out

    def flow_names(self, flow_ids: list[str]) -> dict[str, tuple[str, int]]:
        """``{flow id: (name, version)}``."""
        if not flow_ids:
            return {}
        with self.store.read() as conn:
            rows = conn.execute(
                select(flow_t.c.id, flow_t.c.name, flow_t.c.version).where(flow_t.c.id.in_(set(flow_ids)))
            ).all()
        return {i: (n, v) for i, n, v in rows}

    # -- a flow run -----------------------------------------------------------------------------

    def task_groups(self, flow_run_id: str) -> list[TaskGroup]:
        """A flow run's task runs for its Gantt: every task's own run, with its mapped children
        counted by state (two queries, however many children)."""
        with self.store.read() as conn:
            parents = conn.execute(
                select(task_run_t).where(task_run_t.c.flow_run_id == flow_run_id, task_run_t.c.map_index == -1)
            ).all()
            children = conn.execute(
                select(
                    task_run_t.c.task_slug,
                    task_run_t.c.state,
                    func.count(),
                    func.min(task_run_t.c.start_time),
                    func.max(task_run_t.c.end_time),
                )
                .where(task_run_t.c.flow_run_id == flow_run_id, task_run_t.c.map_index >= 0)
                .group_by(task_run_t.c.task_slug, task_run_t.c.state)
            ).all()
        groups: dict[str, TaskGroup] = {}
        for row in parents:
            record = _task_run_record(row)
            groups[record.task_slug] = TaskGroup(record.task_slug, record)
        for slug, state, n, first, last in children:
            group = groups.setdefault(slug, TaskGroup(slug, None))
            group.children += n
            group.counts[state] = group.counts.get(state, 0) + n
            first, last = _aware(first), _aware(last)
            if first is not None and (group.first_start is None or first < group.first_start):
                group.first_start = first
            if last is not None and (group.last_end is None or last > group.last_end):
                group.last_end = last
        return list(groups.values())

    def mapped_children(
        self,
        flow_run_id: str,
        task_slug: str,
        limit: int | None = None,
        offset: int | None = None,
        state: str | None = None,
    ) -> tuple[list[TaskRunRecord], int]:
        """One page of a mapped task's children in map-index order, and how many there are."""
        limit, offset = check_limit(limit, offset, default=200)
        condition = and_(
            task_run_t.c.flow_run_id == flow_run_id, task_run_t.c.task_slug == task_slug, task_run_t.c.map_index >= 0
        )
        if state:
            condition = and_(condition, task_run_t.c.state == state)
        with self.store.read() as conn:
            total = conn.execute(select(func.count()).select_from(task_run_t).where(condition)).scalar_one()
            rows = conn.execute(
                select(task_run_t).where(condition).order_by(task_run_t.c.map_index).limit(limit).offset(offset)
            ).all()
        return [_task_run_record(r) for r in rows], total

    def child_counts(self, flow_run_id: str, slugs: list[str]) -> dict[str, dict[str, int]]:
        """``{slug: {state: count}}`` of the mapped children of these tasks."""
        if not slugs:
            return {}
        with self.store.read() as conn:
            rows = conn.execute(
                select(task_run_t.c.task_slug, task_run_t.c.state, func.count())
                .where(
                    task_run_t.c.flow_run_id == flow_run_id,
                    task_run_t.c.task_slug.in_(slugs),
                    task_run_t.c.map_index >= 0,
                )
                .group_by(task_run_t.c.task_slug, task_run_t.c.state)
            ).all()
        out: dict[str, dict[str, int]] = {s: {} for s in slugs}
        for slug, state, n in rows:
            out[slug][state] = n
        return out

    def state_cursor(self, flow_run_id: str) -> int:
        """The id of the flow run's newest state (of the run or of a task run): where a live feed starts."""
        with self.store.read() as conn:
            found = conn.execute(select(func.max(state_t.c.id)).where(state_t.c.flow_run_id == flow_run_id)).scalar()
        return found or 0

    def log_cursor(self, flow_run_id: str) -> int:
        with self.store.read() as conn:
            found = conn.execute(select(func.max(log_t.c.id)).where(log_t.c.flow_run_id == flow_run_id)).scalar()
        return found or 0

    def changes(
        self,
        flow_run_id: str,
        state_cursor: int,
        log_cursor: int,
        *,
        min_level: int | None = None,
        task_slug: str | None = None,
        log_limit: int = 500,
        skip_states: set[int] | None = None,
        skip_logs: set[int] | None = None,
    ) -> tuple[FlowRunChanges, list[int], list[int]]:
        """What changed in a flow run after the cursors (state-history and log ids).

        Returns the changes and the state and log ids read (the caller may read a window again,
        passing the ids it saw as ``skip_*``: on PostgreSQL a transaction that took an id earlier
        can commit after one that took a later id).
        """
        skip_states = skip_states or set()
        skip_logs = skip_logs or set()
        with self.store.read() as conn:
            states = conn.execute(
                select(state_t.c.id, state_t.c.task_run_id)
                .where(state_t.c.flow_run_id == flow_run_id, state_t.c.id > state_cursor)
                .order_by(state_t.c.id)
            ).all()
            states = [s for s in states if s.id not in skip_states]
            run_changed = any(s.task_run_id is None for s in states)
            task_ids = list(dict.fromkeys(s.task_run_id for s in states if s.task_run_id is not None))
            task_runs: list[TaskRunRecord] = []
            for i in range(0, len(task_ids), 500):
                rows = conn.execute(select(task_run_t).where(task_run_t.c.id.in_(task_ids[i : i + 500]))).all()
                task_runs.extend(_task_run_record(r) for r in rows)
            run = None
            if run_changed:
                row = conn.execute(select(run_t).where(run_t.c.id == flow_run_id)).first()
                run = FlowRunRecord(**row._mapping) if row is not None else None
            query = select(log_t).where(log_t.c.flow_run_id == flow_run_id, log_t.c.id > log_cursor)
            log_ids_query = select(log_t.c.id).where(log_t.c.flow_run_id == flow_run_id, log_t.c.id > log_cursor)
            if min_level:
                query = query.where(log_t.c.level >= min_level)
            if task_slug:
                query = query.where(log_t.c.task_slug == task_slug)
            log_rows = conn.execute(query.order_by(log_t.c.id).limit(log_limit + 1)).all()
            more_logs = len(log_rows) > log_limit
            log_rows = log_rows[:log_limit]
            # The cursor passes the logs the filter left out too (up to the last one returned).
            if more_logs:
                read_up_to = log_rows[-1].id
            else:
                read_up_to = conn.execute(log_ids_query.order_by(log_t.c.id.desc()).limit(1)).scalar() or log_cursor
            mapped = sorted({t.task_slug for t in task_runs if t.map_index >= 0})
        logs = [LogRecord(**r._mapping) for r in log_rows if r.id not in skip_logs]
        changes = FlowRunChanges(
            run=run,
            task_runs=sorted(task_runs, key=lambda t: (t.task_slug, t.map_index)),
            logs=logs,
            state_cursor=max([state_cursor, *(s.id for s in states)]),
            log_cursor=max(log_cursor, read_up_to),
            more_logs=more_logs,
        )
        if mapped:
            changes.child_counts = self.child_counts(flow_run_id, mapped)
        return changes, [s.id for s in states], [r.id for r in log_rows]

    def logs(
        self,
        flow_run_id: str,
        *,
        after: int = 0,
        limit: int = 200,
        min_level: int | None = None,
        task_slug: str | None = None,
        map_index: int | None = None,
        until: int | None = None,
    ) -> tuple[list[LogRecord], bool]:
        """A page of a flow run's logs after ``after`` (a log id) and up to ``until`` (a log id,
        included), filtered; and whether more follow."""
        limit, _ = check_limit(limit, 0)
        query = select(log_t).where(log_t.c.flow_run_id == flow_run_id, log_t.c.id > after)
        if until is not None:
            query = query.where(log_t.c.id <= until)
        if min_level:
            query = query.where(log_t.c.level >= min_level)
        if task_slug:
            query = query.where(log_t.c.task_slug == task_slug)
        if map_index is not None:
            query = query.where(
                or_(log_t.c.map_index == map_index, log_t.c.map_index.is_(None))
                if map_index == -1
                else log_t.c.map_index == map_index
            )
        with self.store.read() as conn:
            rows = conn.execute(query.order_by(log_t.c.id).limit(limit + 1)).all()
        return [LogRecord(**r._mapping) for r in rows[:limit]], len(rows) > limit


def _brief_select(*extra: Any) -> Any:
    return select(
        run_t.c.id,
        run_t.c.name,
        run_t.c.flow_id,
        run_t.c.flow_group_id,
        flow_t.c.name.label("flow_name"),
        run_t.c.state,
        run_t.c.state_type,
        run_t.c.scheduled_start_time,
        run_t.c.start_time,
        run_t.c.end_time,
        run_t.c.labels,
        *extra,
    ).join(flow_t, flow_t.c.id == run_t.c.flow_id)


def _brief(row: Any) -> RunBrief:
    m = row._mapping
    return RunBrief(
        id=m["id"],
        name=m["name"],
        flow_id=m["flow_id"],
        flow_group_id=m["flow_group_id"],
        flow_name=m["flow_name"],
        state=m["state"],
        state_type=m["state_type"],
        scheduled_start_time=_aware(m["scheduled_start_time"]),
        start_time=_aware(m["start_time"]),
        end_time=_aware(m["end_time"]),
        labels=list(m["labels"] or []),
    )


def _aware(value: Any) -> datetime | None:
    """Times from aggregate and subquery columns skip the column type: make them aware UTC."""
    from datetime import UTC

    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
