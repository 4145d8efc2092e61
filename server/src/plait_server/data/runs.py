"""Flow runs and task runs: idempotent creation, state writes judged by the rules, queries.

Every state write names the version of the state it read. The write happens in one
transaction: the runs are read (and locked, on PostgreSQL), each item is checked (found? the
version current? the transition allowed by ``rules.POLICY``?), and the accepted changes are
applied with ``UPDATE ... WHERE id = :id AND version = :expected`` (compare-and-set) and
recorded in the state history. A batch reports per item; one refused item does not stop the
others.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, bindparam, delete, func, select, text
from sqlalchemy.dialects.postgresql import JSONB

from plait_server.data import rules
from plait_server.data.common import MAX_LIMIT, check_labels, check_limit, check_text, check_time, cut, new_id
from plait_server.data.driver import INDEX_SCANS_ONLY, Driver, array_literal
from plait_server.data.records import (
    FlowRunRecord,
    Page,
    StateRecord,
    StateWrite,
    StateWriteResult,
    TaskRunRecord,
)
from plait_server.data.states import ACTIVE, CANCELLING, FINISHED, RUNNING, SCHEDULED, WAITING, state_type
from plait_server.data.store import RetryTransaction
from plait_server.db import models
from plait_server.db.models import utcnow
from plait_server.errors import ApiError, BadInput, InvalidTransition, NotFound, VersionConflict

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from plait_server.data.store import Store

__all__ = ["FlowRunFilter", "FlowRuns", "TaskRunFilter", "TaskRuns"]

flow_t = models.Flow.__table__
run_t = models.FlowRun.__table__
task_run_t = models.TaskRun.__table__
state_t = models.RunState.__table__

_RUN_ORDERS = {
    "CREATED": run_t.c.created,
    "SCHEDULED_START_TIME": run_t.c.scheduled_start_time,
    "START_TIME": run_t.c.start_time,
    "END_TIME": run_t.c.end_time,
    "UPDATED": run_t.c.updated,
    "NAME": run_t.c.name,
    "STATE": run_t.c.state,
}
_TASK_RUN_ORDERS = {
    "TASK_SLUG": task_run_t.c.task_slug,
    "CREATED": task_run_t.c.created,
    "START_TIME": task_run_t.c.start_time,
    "UPDATED": task_run_t.c.updated,
    "STATE": task_run_t.c.state,
}


@dataclass
class FlowRunFilter:
    """Which flow runs a query returns; every field given narrows the result."""

    ids: list[str] | None = None
    flow_id: str | None = None
    flow_group_id: str | None = None
    flow_name: str | None = None
    states: list[str] | None = None
    state_types: list[str] | None = None
    #: Runs that have all of these labels.
    labels: list[str] | None = None
    scheduled_after: datetime | None = None
    scheduled_before: datetime | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass
class TaskRunFilter:
    flow_run_id: str | None = None
    ids: list[str] | None = None
    task_slug: str | None = None
    map_index: int | None = None
    states: list[str] | None = None
    state_types: list[str] | None = None


@dataclass(slots=True)
class TaskRunStateItem:
    """One task-run state write: the task run by key (flow run, task slug, map index), the
    version read (0 for a task run not created yet) and the new state."""

    flow_run_id: str
    task_slug: str
    version: int
    state: StateWrite
    map_index: int = -1
    #: Start the task run over (a new attempt of its flow run runs it again): allowed from a
    #: finished state, to a waiting one, while the flow run is Running.
    restart: bool = False


class FlowRuns:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- creation -------------------------------------------------------------------------------

    def create(
        self,
        *,
        flow_id: str | None = None,
        flow_group_id: str | None = None,
        flow_name: str | None = None,
        project: str | None = None,
        parameters: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        labels: list[str] | None = None,
        scheduled_start_time: datetime | None = None,
        idempotency_key: str | None = None,
        name: str | None = None,
        auto_scheduled: bool = False,
    ) -> tuple[FlowRunRecord, bool]:
        """Create a flow run in ``Scheduled``, or return the run that has this idempotency key.

        Returns ``(run, created)``. The key is unique per flow group, enforced by the database
        (``INSERT ... ON CONFLICT DO NOTHING``), so concurrent calls with one key create one run.
        """
        # By id (what clients and the UI send): the flow is read in the write's transaction, on
        # the driver's cursor (one transaction per run created). By group or name: the newest
        # unarchived version, found first.
        found = None if flow_id else self.store.flows.find(flow_id, flow_group_id, flow_name, project, full=False)
        store = self.store

        def write(conn: Connection) -> tuple[FlowRunRecord, bool]:
            db = Driver(conn)
            flow = found or _flow_for_run(db, flow_id or "")
            if flow.archived:
                raise BadInput(f"Flow {flow.name!r} version {flow.version} is archived; run its newest version")
            checked = _check_parameters(flow.name, flow.parameters, parameters)
            if context is not None and not isinstance(context, dict):
                raise BadInput("context must be an object", field="context")
            run_labels = check_labels(labels) if labels is not None else list(flow.labels)
            key = check_text(idempotency_key, "idempotency_key", 200, required=False)
            when = check_time(scheduled_start_time, "scheduled_start_time") or utcnow()
            run_id = new_id()
            run_name = check_text(name, "name", 200, required=False) or f"{flow.name}-{when:%Y%m%d-%H%M%S}-{run_id[:6]}"
            now = utcnow()
            run = FlowRunRecord(
                id=run_id,
                flow_id=flow.id,
                flow_group_id=flow.flow_group_id,
                name=run_name,
                parameters=checked,
                context=context or {},
                labels=run_labels,
                idempotency_key=key,
                auto_scheduled=auto_scheduled,
                scheduled_start_time=when,
                state="Scheduled",
                state_type=SCHEDULED,
                state_message=None,
                state_timestamp=now,
                version=1,
                run_count=0,
                start_time=None,
                end_time=None,
                heartbeat=None,
                agent_id=None,
                created=now,
                updated=now,
            )
            insert_run, insert_state = _create_statements(db.sqlite)
            json_text = _json_text
            stamp = db.to_db(now)
            inserted = db.execute(
                insert_run,
                (
                    run_id,
                    flow.id,
                    flow.flow_group_id,
                    run_name,
                    json_text(checked),
                    json_text(run.context),
                    json_text(run_labels),
                    key,
                    auto_scheduled,
                    db.to_db(when),
                    "Scheduled",
                    SCHEDULED,
                    stamp,
                    stamp,
                    stamp,
                ),
            )
            if not inserted:  # the key has a run already (ON CONFLICT DO NOTHING): that one
                existing = conn.execute(
                    select(run_t).where(run_t.c.flow_group_id == flow.flow_group_id, run_t.c.idempotency_key == key)
                ).one()
                return FlowRunRecord(**existing._mapping), False
            db.execute(insert_state, (run_id, db.to_db(when), stamp))
            return run, True

        run, created = store.write(write)
        if created:
            store.changed("flow_run", [run.id])
        return run, created

    # -- state writes ---------------------------------------------------------------------------

    def set_states(self, items: list[tuple[str, int, StateWrite]], *, restart: bool = False) -> list[StateWriteResult]:
        """Write flow-run states: ``[(flow_run_id, version_read, state), ...]``, one result per item.

        Items for one run apply in order (the second names the version the first produced).
        """
        if len(items) > MAX_LIMIT:
            raise BadInput(f"At most {MAX_LIMIT} states per call; got {len(items)}")
        checked: list[tuple[int, str, int, StateWrite, str] | StateWriteResult] = []
        for i, (run_id, version, state) in enumerate(items):
            try:
                checked.append((i, run_id, version, state, _check_state(state)))
            except ApiError as exc:
                checked.append(_refused(i, exc, id=run_id, flow_run_id=run_id))
        store = self.store

        def write(conn: Connection) -> list[StateWriteResult]:
            db = Driver(conn)
            ids = sorted({c[1] for c in checked if not isinstance(c, StateWriteResult)})
            current = {
                r.id: r
                for r in conn.execute(
                    store.lock(
                        select(
                            run_t.c.id,
                            run_t.c.state,
                            run_t.c.state_type,
                            run_t.c.version,
                            run_t.c.run_count,
                            run_t.c.start_time,
                            run_t.c.end_time,
                        )
                        .where(run_t.c.id.in_(ids))
                        .order_by(run_t.c.id)
                    )
                )
            }
            live: dict[str, dict[str, Any]] = {k: dict(v._mapping) for k, v in current.items()}
            results: list[StateWriteResult] = []
            history: list[dict[str, Any]] = []
            changed: dict[str, tuple[int, dict[str, Any]]] = {}  # id -> (version read in the db, row)
            now = utcnow()
            for c in checked:
                if isinstance(c, StateWriteResult):
                    results.append(c)
                    continue
                i, run_id, version, state, new_type = c
                row = live.get(run_id)
                if row is None:
                    results.append(
                        _refused(i, NotFound(f"No flow run with id {run_id!r}"), id=run_id, flow_run_id=run_id)
                    )
                    continue
                refusal = _judge(rules.FLOW_RUN, row, version, state, new_type, None, restart, conn)
                if refusal is not None:
                    results.append(_refused(i, refusal, row, id=run_id, flow_run_id=run_id))
                    continue
                stamp = state.timestamp or now
                _apply(row, state, new_type, stamp, now)
                changed.setdefault(run_id, (current[run_id].version, row))
                history.append(_history_row(db, run_id, None, row, state, stamp))
                results.append(
                    StateWriteResult(
                        i,
                        True,
                        id=run_id,
                        flow_run_id=run_id,
                        version=row["version"],
                        state=row["state"],
                        state_type=row["state_type"],
                    )
                )
            _compare_and_set(db, "flow_run", changed)
            db.insert_many(state_t, _HISTORY_INSERT, history)
            # A run that stops being under way gives back what its process held.
            _left_active(
                conn,
                [
                    i
                    for i, (_, row) in changed.items()
                    if current[i].state_type in ACTIVE and row["state_type"] not in ACTIVE
                ],
            )
            return results

        results = store.write(write)
        done = [r.id for r in results if r.ok and r.id]
        if done:
            store.changed("flow_run", done)
        return sorted(results, key=lambda r: r.index)

    def cancel(self, flow_run_id: str) -> FlowRunRecord:
        """Cancel a run: one that has not started ends ``Cancelled`` at once; one under way goes
        ``Cancelling`` (its process stops at the next task boundary and ends ``Cancelled``)."""
        for _ in range(10):
            run = self.get(flow_run_id)
            if run.state_type in FINISHED:
                raise InvalidTransition(
                    f"Flow run {flow_run_id!r} has already finished ({run.state}); there is nothing to cancel",
                    rule="FinishedIsFinal",
                    state=run.state,
                    version=run.version,
                )
            if run.state_type == CANCELLING:
                return run
            target = "Cancelled" if run.state_type in WAITING else "Cancelling"
            (result,) = self.set_states([(run.id, run.version, StateWrite(target, message="Cancelled by a user."))])
            if result.ok:
                return self.get(flow_run_id)
            if result.code != VersionConflict.code:
                raise InvalidTransition(result.message or "refused", rule=result.rule, state=result.state)
        raise VersionConflict(f"Flow run {flow_run_id!r} kept changing; try again")

    # -- reads ----------------------------------------------------------------------------------

    def get(self, flow_run_id: str) -> FlowRunRecord:
        with self.store.read() as conn:
            row = conn.execute(select(run_t).where(run_t.c.id == flow_run_id)).first()
        if row is None:
            raise NotFound(f"No flow run with id {flow_run_id!r}", id=flow_run_id)
        return FlowRunRecord(**row._mapping)

    def list(
        self,
        where: FlowRunFilter | None = None,
        order_by: str = "CREATED",
        descending: bool = True,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Page[FlowRunRecord]:
        limit, offset = check_limit(limit, offset)
        where = where or FlowRunFilter()
        column = _RUN_ORDERS.get(order_by)
        if column is None:
            raise BadInput(f"Cannot order flow runs by {order_by!r}; use one of {', '.join(_RUN_ORDERS)}")
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if where.ids is not None:
            params["ids"] = where.ids[:MAX_LIMIT]
        for name in ("flow_id", "flow_group_id", "flow_name", "states", "state_types"):
            value = getattr(where, name)
            if value:
                params[name] = value
        labels = check_labels(where.labels, "labels")
        for i, label in enumerate(labels):
            params[f"label_{i}"] = label
        for name in ("scheduled_after", "scheduled_before", "created_after", "created_before"):
            value = check_time(getattr(where, name), "time filter")
            if value is not None:
                params[name] = value
        shape = ("flow_run", self.store.sqlite, tuple(sorted(params)), order_by, descending)
        count, page = _statements(shape, lambda: self._statements(params, len(labels), column, descending))
        with self.store.read() as conn:
            total = conn.execute(count, params).scalar_one()
            rows = conn.execute(page, params).all()
        return Page([FlowRunRecord(**r._mapping) for r in rows], total, limit, offset)

    def _statements(self, params: dict[str, Any], labels: int, column: Any, descending: bool) -> tuple[Any, Any]:
        """The count and page statements of a list with these parameters (``bindparam`` names)."""
        conditions: list[Any] = []
        if "ids" in params:
            conditions.append(run_t.c.id.in_(bindparam("ids", expanding=True)))
        if "flow_id" in params:
            conditions.append(run_t.c.flow_id == bindparam("flow_id"))
        if "flow_group_id" in params:
            conditions.append(run_t.c.flow_group_id == bindparam("flow_group_id"))
        if "flow_name" in params:
            conditions.append(run_t.c.flow_id.in_(select(flow_t.c.id).where(flow_t.c.name == bindparam("flow_name"))))
        if "states" in params:
            conditions.append(run_t.c.state.in_(bindparam("states", expanding=True)))
        if "state_types" in params:
            conditions.append(run_t.c.state_type.in_(bindparam("state_types", expanding=True)))
        for i in range(labels):
            conditions.append(self._label_condition(i))
        for name, column_, op in (
            ("scheduled_after", run_t.c.scheduled_start_time, ">="),
            ("scheduled_before", run_t.c.scheduled_start_time, "<"),
            ("created_after", run_t.c.created, ">="),
            ("created_before", run_t.c.created, "<"),
        ):
            if name in params:
                value = bindparam(name, type_=column_.type)
                conditions.append(column_ >= value if op == ">=" else column_ < value)
        count = select(func.count()).select_from(run_t).where(*conditions)
        page = (
            select(run_t)
            .where(*conditions)
            .order_by(column.desc() if descending else column.asc(), run_t.c.id)
            .limit(bindparam("limit"))
            .offset(bindparam("offset"))
        )
        return count, page

    def history(self, flow_run_id: str, after: int | None = None, limit: int | None = None) -> list[StateRecord]:
        """The flow run's states, oldest first."""
        return _history(self.store, state_t.c.flow_run_id == flow_run_id, state_t.c.task_run_id.is_(None), after, limit)

    def _has_label(self, label: str, i: int) -> Any:
        """The condition "the run has ``label``" (the ``i``-th of a query's labels)."""
        if self.store.sqlite:
            return text(
                f"EXISTS (SELECT 1 FROM json_each(flow_run.labels) WHERE json_each.value = :label_{i})"
            ).bindparams(bindparam(f"label_{i}", label))
        return run_t.c.labels.cast(JSONB).contains([label])

    def _label_condition(self, i: int) -> Any:
        """The condition "the run has the label in parameter ``label_{i}``" (statements built once)."""
        if self.store.sqlite:
            return text(f"EXISTS (SELECT 1 FROM json_each(flow_run.labels) WHERE json_each.value = :label_{i})")
        return run_t.c.labels.cast(JSONB).contains(func.jsonb_build_array(bindparam(f"label_{i}", type_=String())))


class TaskRuns:
    def __init__(self, store: Store) -> None:
        self.store = store

    def set_states(self, items: list[TaskRunStateItem], *, restart: bool = False) -> list[StateWriteResult]:
        """Write task-run states, creating task runs on their first state (``version`` 0).

        Task runs are named by (flow run, task slug, map index); map index -1 is the task
        itself (or a mapped task's parent), 0.. its children. Items for one task run apply in
        order. The result of each item carries the task run's id and new version.
        """
        if len(items) > MAX_LIMIT:
            raise BadInput(f"At most {MAX_LIMIT} states per call; got {len(items)}")
        checked: list[tuple[int, TaskRunStateItem, str] | StateWriteResult] = []
        for i, item in enumerate(items):
            try:
                check_text(item.task_slug, "task_slug", 300)
                if item.map_index < -1:
                    raise BadInput(f"map_index must be -1 (not mapped) or 0 and up, got {item.map_index}")
                if item.version < 0:
                    raise BadInput(f"version must be 0 (a new task run) or more, got {item.version}")
                checked.append((i, item, _check_state(item.state)))
            except ApiError as exc:
                checked.append(
                    _refused(i, exc, flow_run_id=item.flow_run_id, task_slug=item.task_slug, map_index=item.map_index)
                )
        store = self.store

        def write(conn: Connection) -> list[StateWriteResult]:
            db = Driver(conn)
            good = [c for c in checked if not isinstance(c, StateWriteResult)]
            # Its first statement also turns sequential scans off (driver.INDEX_SCANS_ONLY).
            flow_runs = _flow_run_types(db, sorted({c[1].flow_run_id for c in good}))
            live = _task_runs_by_key(db, good)
            read_version = {key: row["version"] for key, row in live.items()}
            results: list[StateWriteResult] = []
            history: list[tuple[Any, ...]] = []
            created: dict[tuple[str, str, int], dict[str, Any]] = {}
            changed: dict[str, tuple[int, dict[str, Any]]] = {}
            touched: set[tuple[str, str, int]] = set()
            now = utcnow()
            for c in checked:
                if isinstance(c, StateWriteResult):
                    results.append(c)
                    continue
                i, item, new_type = c
                key = (item.flow_run_id, item.task_slug, item.map_index)
                where = {"flow_run_id": item.flow_run_id, "task_slug": item.task_slug, "map_index": item.map_index}
                flow_run_type = flow_runs.get(item.flow_run_id)
                if flow_run_type is None:
                    results.append(_refused(i, NotFound(f"No flow run with id {item.flow_run_id!r}"), **where))
                    continue
                row = live.get(key)
                stamp = item.state.timestamp or now
                if row is None:
                    if item.version != 0:
                        results.append(
                            _refused(
                                i,
                                NotFound(
                                    f"No task run {item.task_slug!r} (map index {item.map_index}) in flow run "
                                    f"{item.flow_run_id!r}; write its first state with version 0"
                                ),
                                **where,
                            )
                        )
                        continue
                    t = rules.Transition(
                        rules.TASK_RUN,
                        None,
                        None,
                        item.state.type,
                        new_type,
                        flow_run_type,
                        restart or item.restart,
                        conn,
                    )
                    refused = rules.check(t)
                    if refused is not None:
                        results.append(_refused(i, _invalid(rules.TASK_RUN, refused), **where))
                        continue
                    row = {
                        **where,
                        "id": new_id(),
                        "state": None,
                        "state_type": None,
                        "version": 0,
                        "run_count": 0,
                        "start_time": None,
                        "end_time": None,
                        "result_location": None,
                    }
                    _apply(row, item.state, new_type, stamp, now)
                    live[key] = row
                    created[key] = row
                else:
                    refusal = _judge(
                        rules.TASK_RUN,
                        row,
                        item.version,
                        item.state,
                        new_type,
                        flow_run_type,
                        restart or item.restart,
                        conn,
                    )
                    if refusal is not None:
                        results.append(_refused(i, refusal, row, id=row["id"], **where))
                        continue
                    _apply(row, item.state, new_type, stamp, now)
                    if key not in created:
                        changed.setdefault(row["id"], (read_version[key], row))
                history.append(_history_row(db, item.flow_run_id, row["id"], row, item.state, stamp))
                touched.add(key)
                results.append(
                    StateWriteResult(
                        i,
                        True,
                        id=row["id"],
                        version=row["version"],
                        state=row["state"],
                        state_type=row["state_type"],
                        **where,
                    )
                )
            if created:
                new_rows = [_task_run_insert(db, r, now) for r in created.values()]
                if db.sqlite:
                    db.insert_many("task_run", _TASK_RUN_INSERT, new_rows)
                else:
                    # Another writer may have created one of them since we looked: start over.
                    inserted = db.insert_many(
                        task_run_t,
                        _TASK_RUN_INSERT,
                        new_rows,
                        " ON CONFLICT (flow_run_id, task_slug, map_index) DO NOTHING",
                    )
                    if inserted != len(new_rows):
                        raise RetryTransaction()
            _compare_and_set(db, "task_run", changed)
            db.insert_many(state_t, _HISTORY_INSERT, history)
            # Concurrency slots are held while a task run runs: a task run that finished, or
            # waits for a retry, gives its slots back.
            _release_slots(
                conn, [k for k, row in live.items() if row["state_type"] in _RELEASES_SLOTS and k in touched]
            )
            return results

        results = store.write(write)
        done = [r.id for r in results if r.ok and r.id]
        if done:
            store.changed("task_run", done)
        return sorted(results, key=lambda r: r.index)

    def get(self, task_run_id: str) -> TaskRunRecord:
        with self.store.read() as conn:
            row = conn.execute(select(task_run_t).where(task_run_t.c.id == task_run_id)).first()
        if row is None:
            raise NotFound(f"No task run with id {task_run_id!r}", id=task_run_id)
        return _task_run_record(row)

    def list(
        self,
        where: TaskRunFilter | None = None,
        order_by: str = "TASK_SLUG",
        descending: bool = False,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Page[TaskRunRecord]:
        limit, offset = check_limit(limit, offset)
        where = where or TaskRunFilter()
        params: dict[str, Any] = {}
        if where.flow_run_id:
            params["flow_run_id"] = where.flow_run_id
        if where.ids is not None:
            params["ids"] = where.ids[:MAX_LIMIT]
        if where.task_slug:
            params["task_slug"] = where.task_slug
        if where.map_index is not None:
            params["map_index"] = where.map_index
        if where.states:
            params["states"] = where.states
        if where.state_types:
            params["state_types"] = where.state_types
        if not params:
            raise BadInput("Filter task runs by flow run (flow_run_id) or by ids")
        column = _TASK_RUN_ORDERS.get(order_by)
        if column is None:
            raise BadInput(f"Cannot order task runs by {order_by!r}; use one of {', '.join(_TASK_RUN_ORDERS)}")
        params.update(limit=limit, offset=offset)
        shape = ("task_run", tuple(sorted(params)), order_by, descending)
        count, page = _statements(shape, lambda: _task_run_statements(params, column, descending))
        with self.store.read() as conn:
            total = conn.execute(count, params).scalar_one()
            rows = conn.execute(page, params).all()
        return Page([_task_run_record(r) for r in rows], total, limit, offset)

    def counts(self, flow_run_id: str) -> dict[str, int]:
        """``{state: count}`` of a flow run's task runs."""
        with self.store.read() as conn:
            rows = conn.execute(
                select(task_run_t.c.state, func.count())
                .where(task_run_t.c.flow_run_id == flow_run_id)
                .group_by(task_run_t.c.state)
            ).all()
        return {state: n for state, n in rows}

    def history(self, task_run_id: str, after: int | None = None, limit: int | None = None) -> list[StateRecord]:
        """The task run's states, oldest first."""
        return _history(self.store, state_t.c.task_run_id == task_run_id, None, after, limit)


# --- the write path ----------------------------------------------------------------------------


def _check_state(state: StateWrite) -> str:
    new_type = state_type(state.type)
    if state.result_location is not None and (
        not isinstance(state.result_location, str) or len(state.result_location) > 2000
    ):
        raise BadInput("state.result_location must be a location (a URI) of at most 2000 characters")
    state.start_time = check_time(state.start_time, "state.start_time")
    state.timestamp = check_time(state.timestamp, "state.timestamp")
    if state.run_count is not None and not 0 <= state.run_count < 1_000_000:
        raise BadInput(f"state.run_count must be between 0 and 999999, got {state.run_count}")
    return new_type


def _judge(
    run: str,
    row: dict[str, Any],
    version: int,
    state: StateWrite,
    new_type: str,
    flow_run_type: str | None,
    restart: bool,
    conn: Connection,
) -> ApiError | None:
    if version != row["version"]:
        return VersionConflict(
            f"The {run} is at version {row['version']} ({row['state']}), not {version}: someone changed it "
            "since you read it; read it again and decide",
            state=row["state"],
            version=row["version"],
        )
    t = rules.Transition(run, row["state"], row["state_type"], state.type, new_type, flow_run_type, restart, conn)
    refused = rules.check(t)
    return None if refused is None else _invalid(run, refused)


def _invalid(run: str, refused: tuple[rules.Rule, str]) -> InvalidTransition:
    rule, reason = refused
    return InvalidTransition(f"Refused by rule {rule.name}: {reason}", rule=rule.name)


def _apply(row: dict[str, Any], state: StateWrite, new_type: str, stamp: datetime, now: datetime) -> None:
    """Move ``row`` (a run's current values) to ``state``, in memory."""
    if new_type == RUNNING and row["state_type"] != RUNNING:
        row["run_count"] = state.run_count if state.run_count is not None else row["run_count"] + 1
        if row["start_time"] is None:
            row["start_time"] = stamp
    elif state.run_count is not None:
        row["run_count"] = state.run_count
    if new_type in FINISHED:
        row["end_time"] = stamp
    elif row["state_type"] in FINISHED:
        row["end_time"] = None  # a restart
    if "result_location" in row and state.result_location is not None:
        row["result_location"] = state.result_location
    row["state"] = state.type
    row["state_type"] = new_type
    row["state_message"] = cut(state.message)
    row["state_timestamp"] = stamp
    row["version"] += 1
    row["updated"] = now


_CAS_COLUMNS = (
    "state",
    "state_type",
    "state_message",
    "state_timestamp",
    "version",
    "run_count",
    "start_time",
    "end_time",
    "updated",
)
_TASK_RUN_INSERT = (
    "id",
    "flow_run_id",
    "task_slug",
    "map_index",
    "state",
    "state_type",
    "state_message",
    "state_timestamp",
    "version",
    "run_count",
    "result_location",
    "start_time",
    "end_time",
    "created",
    "updated",
)
_HISTORY_INSERT = (
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


def _flow_run_types(db: Driver, ids: list[str]) -> dict[str, str]:
    """``{flow run id: state type}``, locked against changes (``FOR SHARE``) on PostgreSQL.

    On PostgreSQL, the statement also turns sequential scans off (``INDEX_SCANS_ONLY``) for the
    rest of the transaction (when it finds a flow run: without one nothing is written).
    """
    found: dict[str, str] = {}
    for chunk in _chunks(ids, 500):
        if db.sqlite:
            sql = f"SELECT id, state_type FROM flow_run WHERE id IN ({db.marks(len(chunk))}) ORDER BY id"
            found.update(db.fetch(sql, chunk))
        else:
            sql = (
                f"SELECT id, state_type FROM flow_run WHERE id = ANY(%s::text[]) AND {INDEX_SCANS_ONLY} "
                "ORDER BY id FOR SHARE"
            )
            found.update(db.fetch(sql, [array_literal(chunk)]))
    return found


_TASK_RUN_READ = (
    "id",
    "flow_run_id",
    "task_slug",
    "map_index",
    "state",
    "state_type",
    "version",
    "run_count",
    "start_time",
    "end_time",
    "result_location",
)


def _task_runs_by_key(db: Driver, good: list[Any]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """The current rows of the task runs the items name, by (flow run, slug, map index).

    One query per (flow run, task slug) and up to 500 map indexes, on the table's unique index;
    rows locked (``FOR UPDATE``, in id order) on PostgreSQL. Times stay in the database's form.
    """
    wanted: dict[tuple[str, str], set[int]] = {}
    for c in good:
        item = c[1]
        wanted.setdefault((item.flow_run_id, item.task_slug), set()).add(item.map_index)
    columns = ", ".join(_TASK_RUN_READ)
    found: dict[tuple[str, str, int], dict[str, Any]] = {}
    for (flow_run_id, slug), indexes in sorted(wanted.items()):
        for chunk in _chunks(sorted(indexes), 500):
            if db.sqlite:
                sql = (
                    f"SELECT {columns} FROM task_run WHERE flow_run_id = ? AND task_slug = ? "
                    f"AND map_index IN ({db.marks(len(chunk))}) ORDER BY id"
                )
                rows = db.fetch(sql, [flow_run_id, slug, *chunk])
            else:
                # The range bounds the index scan whatever the planner's estimates: for a flow
                # run created since the table's statistics were taken it expects one row per
                # (flow run, slug), keeps ``= ANY`` out of the index condition and reads every
                # task run of the flow run (all 10,000 children of a map, at every batch).
                sql = (
                    f"SELECT {columns} FROM task_run WHERE flow_run_id = %s AND task_slug = %s "
                    "AND map_index >= %s AND map_index <= %s AND map_index = ANY(%s::integer[]) ORDER BY id FOR UPDATE"
                )
                rows = db.fetch(sql, [flow_run_id, slug, chunk[0], chunk[-1], array_literal(chunk)])
            for r in rows:
                row = dict(zip(_TASK_RUN_READ, r, strict=True))
                found[(row["flow_run_id"], row["task_slug"], row["map_index"])] = row
    return found


def _compare_and_set(db: Driver, table: str, changed: dict[str, tuple[int, dict[str, Any]]]) -> None:
    """Apply the final values of the changed runs with ``WHERE id = :id AND version = :expected``."""
    if not changed:
        return
    columns = _CAS_COLUMNS + (("result_location",) if table == "task_run" else ())
    to_db = db.to_db
    params = [
        (*[to_db(v) if type(v) is datetime else v for v in map(row.__getitem__, columns)], run_id, expected)
        for run_id, (expected, row) in changed.items()
    ]
    done = db.update_many(task_run_t if table == "task_run" else run_t, columns, ("id", "version"), params)
    if done != len(params):
        # Another transaction changed a run between our read and our write; on SQLite the write
        # lock rules that out, on PostgreSQL the row locks do. Start over rather than guess.
        raise RetryTransaction()


def _history_row(
    db: Driver, flow_run_id: str, task_run_id: str | None, row: dict[str, Any], state: StateWrite, stamp: datetime
) -> tuple[Any, ...]:
    return (
        flow_run_id,
        task_run_id,
        state.type,
        row["state_type"],
        row["state_message"],
        state.result_location,
        db.to_db(state.start_time),
        db.to_db(stamp),
        row["version"],
    )


def _task_run_insert(db: Driver, row: dict[str, Any], now: datetime) -> tuple[Any, ...]:
    to_db = db.to_db
    stamp = to_db(now)
    return (
        row["id"],
        row["flow_run_id"],
        row["task_slug"],
        row["map_index"],
        row["state"],
        row["state_type"],
        row["state_message"],
        to_db(row["state_timestamp"]),
        row["version"],
        row["run_count"],
        row["result_location"],
        to_db(row["start_time"]),
        to_db(row["end_time"]),
        stamp,
        stamp,
    )


def _refused(index: int, exc: ApiError, row: dict[str, Any] | None = None, **where: Any) -> StateWriteResult:
    return StateWriteResult(
        index,
        False,
        version=row["version"] if row else exc.extensions.get("version"),
        state=row["state"] if row else exc.extensions.get("state"),
        state_type=row["state_type"] if row else None,
        code=exc.code,
        message=exc.message,
        rule=exc.extensions.get("rule"),
        **where,
    )


def _check_parameters(flow_name: str, declared: list[dict[str, Any]], given: Any) -> dict[str, Any]:
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise BadInput("parameters must be an object of name: value", field="parameters")
    names = {p["name"]: p for p in declared if isinstance(p, dict) and "name" in p}
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise BadInput(
            f"Flow {flow_name!r} has no parameter {', '.join(map(repr, unknown))}; its parameters: "
            f"{', '.join(sorted(names)) or 'none'}",
            field="parameters",
        )
    secret = sorted(n for n in given if names[n].get("secret"))
    if secret:
        raise BadInput(
            f"Parameter {', '.join(map(repr, secret))} of flow {flow_name!r} is secret: the server never stores "
            "secret values. Give it to the run where it executes (plait.secrets.Secret, the agent's environment).",
            field="parameters",
        )
    missing = sorted(n for n, p in names.items() if p.get("required") and n not in given)
    if missing:
        raise BadInput(f"Flow {flow_name!r} needs parameter {', '.join(map(repr, missing))}", field="parameters")
    return given


def _history(store: Store, condition: Any, extra: Any, after: int | None, limit: int | None) -> list[StateRecord]:
    limit, _ = check_limit(limit, 0, default=MAX_LIMIT)
    query = select(state_t).where(condition)
    if extra is not None:
        query = query.where(extra)
    if after is not None:
        query = query.where(state_t.c.id > after)
    with store.read() as conn:
        rows = conn.execute(query.order_by(state_t.c.id).limit(limit)).all()
    return [StateRecord(**r._mapping) for r in rows]


#: The statements of list queries by their shape (which filters, which order): built once, so
#: SQLAlchemy neither builds them nor computes their cache key again (most of a page's cost).
_STATEMENTS: dict[Any, tuple[Any, Any]] = {}
#: Shapes kept (the oldest goes first): clients use a few; odd ones must not fill memory.
_MAX_SHAPES = 256


def _statements(shape: Any, build: Any) -> tuple[Any, Any]:
    found = _STATEMENTS.get(shape)
    if found is None:
        found = build()
        if len(_STATEMENTS) >= _MAX_SHAPES:
            _STATEMENTS.pop(next(iter(_STATEMENTS)), None)
        _STATEMENTS[shape] = found
    return found


def _task_run_statements(params: dict[str, Any], column: Any, descending: bool) -> tuple[Any, Any]:
    conditions: list[Any] = []
    for name in ("flow_run_id", "task_slug", "map_index"):
        if name in params:
            conditions.append(task_run_t.c[name] == bindparam(name))
    if "ids" in params:
        conditions.append(task_run_t.c.id.in_(bindparam("ids", expanding=True)))
    if "states" in params:
        conditions.append(task_run_t.c.state.in_(bindparam("states", expanding=True)))
    if "state_types" in params:
        conditions.append(task_run_t.c.state_type.in_(bindparam("state_types", expanding=True)))
    order = [column.desc() if descending else column.asc(), task_run_t.c.map_index, task_run_t.c.id]
    count = select(func.count()).select_from(task_run_t).where(*conditions)
    page = select(task_run_t).where(*conditions).order_by(*order).limit(bindparam("limit")).offset(bindparam("offset"))
    return count, page


def _task_run_record(row: Any) -> TaskRunRecord:
    m = dict(row._mapping)
    m.pop("heartbeat", None)
    return TaskRunRecord(**m)


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


#: Task-run state types in which a task run holds no concurrency slot.
_RELEASES_SLOTS = FINISHED | {SCHEDULED}


def _left_active(conn: Connection, flow_run_ids: list[str]) -> None:
    """Flow runs that stopped being under way: revoke their run-scoped keys, release their slots."""
    if flow_run_ids:
        from plait_server.data.concurrency import release_run_slots
        from plait_server.data.keys import revoke_run_tokens

        revoke_run_tokens(conn, flow_run_ids)
        release_run_slots(conn, flow_run_ids)


def _release_slots(conn: Connection, keys: list[tuple[str, str, int]]) -> None:
    if keys:
        from plait_server.data.concurrency import release_task_slots

        release_task_slots(conn, keys)


def delete_unstarted_auto_scheduled(conn: Connection, flow_group_id: str) -> int:
    """Delete the scheduler's runs of a flow group that have not started (a paused schedule, a
    new version). Only runs still in their first state (version 1): a run that was claimed and
    rescheduled, say, has a history worth keeping."""
    doomed = select(run_t.c.id).where(
        run_t.c.flow_group_id == flow_group_id,
        run_t.c.auto_scheduled.is_(True),
        run_t.c.state_type == SCHEDULED,
        run_t.c.version == 1,
    )
    conn.execute(delete(state_t).where(state_t.c.flow_run_id.in_(doomed)))
    return conn.execute(delete(run_t).where(run_t.c.id.in_(doomed))).rowcount


# -- creating a run (on the driver's cursor) ----------------------------------------------------


def _json_text(value: Any) -> str:
    """A JSON column's value as SQLAlchemy's ``JSON`` type writes it (``json.dumps``)."""
    return json.dumps(value)


@functools.cache
def _create_statements(sqlite: bool) -> tuple[str, str]:
    """The two inserts of a new run (the run, ignoring a taken idempotency key; its first
    state), with the dialect's placeholders; JSON columns cast on PostgreSQL (``JSONB``)."""
    mark = "?" if sqlite else "%s"
    json_mark = mark if sqlite else "CAST(%s AS JSONB)"
    insert_run = (
        "INSERT INTO flow_run (id, flow_id, flow_group_id, name, parameters, context, labels, idempotency_key, "
        "auto_scheduled, scheduled_start_time, state, state_type, state_message, state_timestamp, version, "
        f"run_count, reschedule_count, created, updated) VALUES ({mark}, {mark}, {mark}, {mark}, {json_mark}, "
        f"{json_mark}, {json_mark}, {mark}, {mark}, {mark}, {mark}, {mark}, NULL, {mark}, 1, 0, 0, {mark}, {mark}) "
        "ON CONFLICT (flow_group_id, idempotency_key) DO NOTHING"
    )
    insert_state = (
        "INSERT INTO run_state (flow_run_id, task_run_id, state, state_type, message, result_location, "
        f"start_time, timestamp, version) VALUES ({mark}, NULL, 'Scheduled', '{SCHEDULED}', NULL, NULL, "
        f"{mark}, {mark}, 1)"
    )
    return insert_run, insert_state


@dataclass(slots=True)
class _RunFlow:
    """What creating a run needs of its flow version."""

    id: str
    flow_group_id: str
    name: str
    version: int
    archived: bool
    parameters: list[dict[str, Any]]
    labels: list[str]


def _flow_for_run(db: Driver, flow_id: str) -> _RunFlow:
    rows = db.fetch(
        f"SELECT id, flow_group_id, name, version, archived, parameters, labels FROM flow WHERE id = {db.mark}",
        (flow_id,),
    )
    if not rows:
        raise NotFound(f"No flow with id {flow_id!r}", id=flow_id)
    id_, group, name, version, archived, parameters, labels = rows[0]
    if db.sqlite:  # JSON as text, booleans as integers
        parameters, labels, archived = json.loads(parameters), json.loads(labels), bool(archived)
    return _RunFlow(id_, group, name, version, archived, parameters, labels)
