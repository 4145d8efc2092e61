"""Agents: registration, heartbeats, and claiming due flow runs.

An agent registers under its name (a restarted agent keeps its record), sends a heartbeat at
every poll, and **claims** due runs: in one transaction the server picks flow runs that are
``Scheduled``, due, and whose labels the agent has, oldest first, and moves each
``Scheduled -> Submitted`` with the state-version compare-and-set every state write uses. On
PostgreSQL the candidates are read with ``FOR UPDATE SKIP LOCKED``, so agents polling side by
side take different runs instead of waiting for each other; on SQLite the single writer does
the same. A run can be claimed once: the second claim of a run finds it ``Submitted``.

Flow-run concurrency limits per label (``concurrency_limit`` rows of kind ``label``) are
enforced here, at claim time: a run with label ``gpu`` is left waiting while as many runs with
that label as the limit allows are under way (``Submitted``, ``Running``, ``Cancelling``).

Each claimed run gets a run-scoped API key (``ApiKeys.create_run_token``) that the agent hands
to the run's process; it is revoked when the run stops being under way.
"""

from __future__ import annotations

import socket
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import JSONB

from plait_server.data import rules
from plait_server.data.common import check_labels, check_text, new_id
from plait_server.data.records import AgentRecord, ClaimedRun, RunStatus, StateWrite
from plait_server.data.states import ACTIVE, SCHEDULED
from plait_server.db import models
from plait_server.db.models import utcnow
from plait_server.errors import BadInput, NotFound

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from plait_server.data.store import Store

__all__ = ["Agents"]

agent_t = models.Agent.__table__
run_t = models.FlowRun.__table__
limit_t = models.ConcurrencyLimit.__table__

#: The most runs one claim may take.
MAX_CLAIM = 100
#: The most due runs one claim reads looking for runs no concurrency limit holds back.
MAX_SCAN = 2000


class Agents:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- registration and heartbeats --------------------------------------------------------------

    def register(
        self,
        name: str,
        type: str = "local",
        labels: list[str] | None = None,
        max_runs: int | None = None,
        hostname: str | None = None,
        core_version: str | None = None,
    ) -> AgentRecord:
        """Register an agent by name (a restarted agent keeps its id and history)."""
        name = check_text(name, "name", 200)
        type = check_text(type, "type", 50)
        labels = check_labels(labels)
        if max_runs is not None and not 1 <= max_runs <= 10_000:
            raise BadInput(f"max_runs must be between 1 and 10000, got {max_runs}", field="max_runs")
        hostname = check_text(hostname, "hostname", 200, required=False) or socket.gethostname()[:200]
        now = utcnow()
        values = {
            "type": type,
            "labels": labels,
            "max_runs": max_runs,
            "hostname": hostname,
            "core_version": check_text(core_version, "core_version", 50, required=False),
            "started": now,
            "last_seen": now,
        }
        store = self.store

        def write(conn: Connection) -> str:
            conn.execute(
                store.insert_ignoring_conflicts(agent_t, ["name"]),
                {"id": new_id(), "name": name, "created": now, **values},
            )
            conn.execute(update(agent_t).where(agent_t.c.name == name).values(**values))
            return conn.execute(select(agent_t.c.id).where(agent_t.c.name == name)).scalar_one()

        agent_id = store.write(write)
        store.changed("agent", [agent_id])
        return self.get(agent_id)

    def heartbeat(self, agent_id: str, flow_run_ids: list[str] | None = None) -> list[RunStatus]:
        """Record that the agent is alive, and that the processes of ``flow_run_ids`` are.

        The flow runs' heartbeats are renewed too (a run whose process is still starting, or
        whose own heartbeats are slow, is not taken for dead while its agent sees it alive).
        Returns where each of those runs stands, so the agent learns about cancellations and
        about runs the server ended.
        """
        ids = sorted(set(flow_run_ids or []))
        if len(ids) > 10_000:
            raise BadInput("At most 10000 flow runs per agent heartbeat")
        now = utcnow()

        def write(conn: Connection) -> int:
            found = conn.execute(update(agent_t).where(agent_t.c.id == agent_id).values(last_seen=now)).rowcount
            if found and ids:
                conn.execute(
                    update(run_t)
                    .where(run_t.c.id.in_(ids), run_t.c.agent_id == agent_id, run_t.c.state_type.in_(ACTIVE))
                    .values(heartbeat=now)
                )
            return found

        if not self.store.write(write):
            raise NotFound(f"No agent with id {agent_id!r}; register it first", id=agent_id)
        if not ids:
            return []
        with self.store.read() as conn:
            rows = conn.execute(
                select(
                    run_t.c.id,
                    run_t.c.state,
                    run_t.c.state_type,
                    run_t.c.version,
                    run_t.c.state_timestamp,
                    run_t.c.state_message,
                ).where(run_t.c.id.in_(ids))
            ).all()
        return [RunStatus(**r._mapping) for r in rows]

    # -- claims -----------------------------------------------------------------------------------

    def claim(self, agent_id: str, limit: int = 10, now: datetime | None = None) -> list[ClaimedRun]:
        """Claim up to ``limit`` due runs whose labels the agent has: ``Scheduled -> Submitted``.

        Oldest scheduled first. Runs over a label's concurrency limit are left for later.
        """
        if not 1 <= limit <= MAX_CLAIM:
            raise BadInput(f"limit must be between 1 and {MAX_CLAIM}, got {limit}", field="limit")
        agent = self.get(agent_id)
        now = now or utcnow()
        store = self.store

        from plait_server.data.driver import Driver
        from plait_server.data.runs import _HISTORY_INSERT, _apply, _compare_and_set, _history_row, _judge

        def write(conn: Connection) -> list[tuple[str, str]]:
            db = Driver(conn)
            query = (
                select(run_t.c.id, run_t.c.state, run_t.c.state_type, run_t.c.version, run_t.c.labels)
                .add_columns(run_t.c.run_count, run_t.c.start_time, run_t.c.end_time)
                .where(
                    run_t.c.state_type == SCHEDULED,
                    run_t.c.state == "Scheduled",
                    run_t.c.scheduled_start_time <= now,
                    self._labels_within(agent.labels),
                )
                .order_by(run_t.c.scheduled_start_time, run_t.c.id)
            )
            if not store.sqlite:
                query = query.with_for_update(skip_locked=True, of=run_t)
            chosen: list[Any] = []
            room: dict[str, int] = {}
            seen: set[str] = set()
            page = max(limit * 4, 100)
            # Runs held back by a label's concurrency limit must not hide the runs behind them:
            # read on, a page at a time, up to MAX_SCAN candidates.
            for offset in range(0, MAX_SCAN, page):
                candidates = conn.execute(query.limit(page).offset(offset)).all()
                fresh = {label for c in candidates for label in (c.labels or [])} - seen
                room.update(self._label_room(conn, fresh))
                seen |= fresh
                for c in candidates:
                    limited = [label for label in c.labels or [] if label in room]
                    if any(room[label] <= 0 for label in limited):
                        continue
                    for label in limited:
                        room[label] -= 1
                    chosen.append(c)
                    if len(chosen) == limit:
                        break
                if len(chosen) == limit or len(candidates) < page:
                    break
            if not chosen:
                return []
            changed: dict[str, tuple[int, dict[str, Any]]] = {}
            history = []
            state = StateWrite("Submitted", message=f"Claimed by agent {agent.name!r}.", timestamp=now)
            for c in chosen:
                row = dict(c._mapping)
                row.pop("labels")
                if _judge(rules.FLOW_RUN, row, c.version, state, "SUBMITTED", None, False, conn) is not None:
                    continue
                _apply(row, state, "SUBMITTED", now, now)
                changed[c.id] = (c.version, row)
                history.append(_history_row(db, c.id, None, row, state, now))
            if not changed:
                return []
            _compare_and_set(db, "flow_run", changed)
            db.insert_many("run_state", _HISTORY_INSERT, history)
            conn.execute(update(run_t).where(run_t.c.id.in_(list(changed))).values(agent_id=agent.id, heartbeat=None))
            return [(run_id, store.keys.create_run_token(conn, run_id, agent.name)) for run_id in changed]

        claimed = store.write(write)
        if not claimed:
            return []
        store.changed("flow_run", [run_id for run_id, _ in claimed])
        from plait_server.data.runs import FlowRunFilter

        ids = [run_id for run_id, _ in claimed]
        runs = {r.id: r for r in store.runs.list(FlowRunFilter(ids=ids), limit=len(ids)).items}
        return [ClaimedRun(runs[run_id], token) for run_id, token in claimed]

    def _labels_within(self, labels: list[str]) -> Any:
        """SQL: the run's labels are all among ``labels`` (a run without labels matches any agent)."""
        if self.store.sqlite:
            if not labels:
                return text("json_array_length(flow_run.labels) = 0")
            names = [f"agent_label_{i}" for i in range(len(labels))]
            clause = text(
                "NOT EXISTS (SELECT 1 FROM json_each(flow_run.labels) WHERE json_each.value NOT IN "
                f"({', '.join(':' + n for n in names)}))"
            )
            return clause.bindparams(*(bindparam(n, v) for n, v in zip(names, labels, strict=True)))
        return run_t.c.labels.cast(JSONB).contained_by(labels)

    def _label_room(self, conn: Connection, labels: set[str]) -> dict[str, int]:
        """For each label with a flow-run concurrency limit: how many more runs may start now."""
        if not labels:
            return {}
        limits = dict(
            conn.execute(
                self.store.lock(
                    select(limit_t.c.name, limit_t.c.max_running)
                    .where(limit_t.c.kind == "label", limit_t.c.name.in_(sorted(labels)))
                    .order_by(limit_t.c.name)
                )
            ).all()
        )
        room = {}
        for i, (label, limit) in enumerate(sorted(limits.items())):
            running = conn.execute(
                select(func.count())
                .select_from(run_t)
                .where(run_t.c.state_type.in_(ACTIVE), self.store.runs._has_label(label, i))
            ).scalar_one()
            room[label] = limit - running
        return room

    # -- reads ------------------------------------------------------------------------------------

    def get(self, agent_id: str) -> AgentRecord:
        with self.store.read() as conn:
            row = conn.execute(select(agent_t).where(agent_t.c.id == agent_id)).first()
        if row is None:
            raise NotFound(f"No agent with id {agent_id!r}", id=agent_id)
        return AgentRecord(**row._mapping)

    def list(self, seen_after: datetime | None = None) -> list[AgentRecord]:
        """Agents, most recently seen first (``seen_after``: only those seen since)."""
        query = select(agent_t)
        if seen_after is not None:
            query = query.where(agent_t.c.last_seen >= seen_after)
        with self.store.read() as conn:
            rows = conn.execute(query.order_by(agent_t.c.last_seen.desc(), agent_t.c.id)).all()
        return [AgentRecord(**r._mapping) for r in rows]

    def running_counts(self) -> dict[str, int]:
        """``{agent id: flow runs under way}``."""
        with self.store.read() as conn:
            rows = conn.execute(
                select(run_t.c.agent_id, func.count())
                .where(and_(run_t.c.state_type.in_(ACTIVE), run_t.c.agent_id.is_not(None)))
                .group_by(run_t.c.agent_id)
            ).all()
        return dict(rows)
