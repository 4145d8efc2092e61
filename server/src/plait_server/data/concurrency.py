"""Concurrency limits: how many flow runs with a label, or task runs with a tag, run at once.

- **Flow runs per label** (kind ``label``): checked when an agent claims runs
  (``Agents.claim``); a run that would exceed a limit of one of its labels stays ``Scheduled``.
- **Task runs per tag** (kind ``tag``), across every flow run: before a task with a limited tag
  starts, its flow-run process asks for a *slot* of each such tag (``acquire``); it gets them
  all or none, and waits and asks again while a limit is full. A slot is a row of
  ``concurrency_slot``, so holders are counted exactly and survive a server restart. Slots are
  released when the task run leaves ``Running`` (its next state write), and all of a flow
  run's slots when the flow run stops being under way (finished, rescheduled, crashed).

On PostgreSQL, the limit's row is locked while slots are counted and taken, so two servers
cannot both give away the last slot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select, tuple_, update

from plait_server.data.common import check_text, new_id
from plait_server.data.records import ConcurrencyLimitRecord, SlotAnswer
from plait_server.data.states import ACTIVE, CANCELLING, RUNNING
from plait_server.db import models
from plait_server.db.models import utcnow
from plait_server.errors import BadInput, InvalidTransition, NotFound

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from plait_server.data.store import Store

__all__ = ["KINDS", "ConcurrencyLimits", "release_run_slots", "release_task_slots"]

limit_t = models.ConcurrencyLimit.__table__
slot_t = models.ConcurrencySlot.__table__
run_t = models.FlowRun.__table__
task_t = models.Task.__table__

#: ``tag``: task runs with the tag, across flow runs; ``label``: flow runs with the label.
KINDS = ("tag", "label")


class ConcurrencyLimits:
    def __init__(self, store: Store) -> None:
        self.store = store

    def set(self, name: str, max_running: int, kind: str = "tag") -> ConcurrencyLimitRecord:
        """Set (create or change) a limit. Lowering it below what runs now stops no run; new
        ones wait until enough have finished."""
        kind = _check_kind(kind)
        name = check_text(name, "name", 100)
        if isinstance(max_running, bool) or not isinstance(max_running, int) or not 0 <= max_running <= 1_000_000:
            raise BadInput(f"A concurrency limit is a whole number from 0 to 1000000, got {max_running!r}")
        now = utcnow()
        store = self.store

        def write(conn: Connection) -> None:
            conn.execute(
                store.insert_ignoring_conflicts(limit_t, ["kind", "name"]),
                {
                    "id": new_id(),
                    "kind": kind,
                    "name": name,
                    "max_running": max_running,
                    "created": now,
                    "updated": now,
                },
            )
            conn.execute(
                update(limit_t)
                .where(limit_t.c.kind == kind, limit_t.c.name == name)
                .values(max_running=max_running, updated=now)
            )

        store.write(write)
        store.changed("concurrency_limit", [f"{kind}:{name}"])
        return self.get(name, kind)

    def delete(self, name: str, kind: str = "tag") -> None:
        """Remove a limit (runs waiting for it go ahead)."""
        kind = _check_kind(kind)

        def write(conn: Connection) -> int:
            gone = conn.execute(delete(limit_t).where(limit_t.c.kind == kind, limit_t.c.name == name)).rowcount
            if kind == "tag":
                conn.execute(delete(slot_t).where(slot_t.c.tag == name))
            return gone

        if not self.store.write(write):
            raise NotFound(f"No {kind} concurrency limit named {name!r}")
        self.store.changed("concurrency_limit", [f"{kind}:{name}"])

    def get(self, name: str, kind: str = "tag") -> ConcurrencyLimitRecord:
        found = [r for r in self.list(kind) if r.name == name]
        if not found:
            raise NotFound(f"No {_check_kind(kind)} concurrency limit named {name!r}")
        return found[0]

    def list(self, kind: str | None = None) -> list[ConcurrencyLimitRecord]:
        """Every limit (of ``kind``) with how much of it is in use now."""
        query = select(limit_t)
        if kind is not None:
            query = query.where(limit_t.c.kind == _check_kind(kind))
        with self.store.read() as conn:
            rows = conn.execute(query.order_by(limit_t.c.kind, limit_t.c.name)).all()
            slots = dict(conn.execute(select(slot_t.c.tag, func.count()).group_by(slot_t.c.tag)).all())
            out = []
            for i, r in enumerate(rows):
                if r.kind == "tag":
                    in_use = slots.get(r.name, 0)
                else:
                    in_use = conn.execute(
                        select(func.count())
                        .select_from(run_t)
                        .where(run_t.c.state_type.in_(ACTIVE), self.store.runs._has_label(r.name, i))
                    ).scalar_one()
                out.append(ConcurrencyLimitRecord(**r._mapping, in_use=in_use))
        return out

    def tag_limits(self) -> dict[str, int]:
        """``{tag: limit}``: what a flow-run process needs to know to ask for slots."""
        with self.store.read() as conn:
            return dict(
                conn.execute(select(limit_t.c.name, limit_t.c.max_running).where(limit_t.c.kind == "tag")).all()
            )

    def acquire(self, flow_run_id: str, task_slug: str, map_index: int = -1) -> SlotAnswer:
        """Take a slot of every limited tag of the task (all or none) for this task run.

        Asking again for slots the task run holds is harmless. Refused (``INVALID_TRANSITION``)
        when the flow run is not running: its tasks must not start.
        """
        store = self.store

        def write(conn: Connection) -> SlotAnswer:
            run = conn.execute(
                store.lock(
                    select(run_t.c.flow_id, run_t.c.state, run_t.c.state_type).where(run_t.c.id == flow_run_id),
                    shared=True,
                )
            ).first()
            if run is None:
                raise NotFound(f"No flow run with id {flow_run_id!r}", id=flow_run_id)
            if run.state_type not in (RUNNING, CANCELLING):
                raise InvalidTransition(
                    f"Flow run {flow_run_id!r} is {run.state}: its tasks cannot start",
                    rule="TaskRunsStartInRunningFlowRuns",
                    state=run.state,
                )
            tags = conn.execute(
                select(task_t.c.tags).where(task_t.c.flow_id == run.flow_id, task_t.c.slug == task_slug)
            ).scalar_one_or_none()
            if not tags:
                return SlotAnswer(True)
            limits = conn.execute(
                store.lock(
                    select(limit_t.c.name, limit_t.c.max_running)
                    .where(limit_t.c.kind == "tag", limit_t.c.name.in_(sorted(set(tags))))
                    .order_by(limit_t.c.name)
                )
            ).all()
            if not limits:
                return SlotAnswer(True)
            held = set(
                conn.execute(
                    select(slot_t.c.tag).where(
                        slot_t.c.flow_run_id == flow_run_id,
                        slot_t.c.task_slug == task_slug,
                        slot_t.c.map_index == map_index,
                    )
                ).scalars()
            )
            full = []
            for tag, limit in limits:
                if tag in held:
                    continue
                used = conn.execute(select(func.count()).select_from(slot_t).where(slot_t.c.tag == tag)).scalar_one()
                if used >= limit:
                    full.append(tag)
            if full:
                return SlotAnswer(False, full=full, held=sorted(held))
            now = utcnow()
            wanted = [
                {
                    "tag": tag,
                    "flow_run_id": flow_run_id,
                    "task_slug": task_slug,
                    "map_index": map_index,
                    "acquired": now,
                }
                for tag, _ in limits
                if tag not in held
            ]
            if wanted:
                conn.execute(
                    store.insert_ignoring_conflicts(slot_t, ["tag", "flow_run_id", "task_slug", "map_index"]), wanted
                )
            return SlotAnswer(True, held=sorted(tag for tag, _ in limits))

        answer = store.write(write)
        if answer.granted and answer.held:
            store.changed("concurrency_limit", answer.held)
        return answer


def release_run_slots(conn: Connection, flow_run_ids: list[str]) -> None:
    """Release every slot held by task runs of these flow runs."""
    if flow_run_ids:
        conn.execute(delete(slot_t).where(slot_t.c.flow_run_id.in_(flow_run_ids)))


def release_task_slots(conn: Connection, keys: list[tuple[str, str, int]]) -> None:
    """Release the slots of these task runs (flow run id, task slug, map index), if any are held."""
    if not keys:
        return
    from plait_server.data.driver import Driver

    run_ids = sorted({k[0] for k in keys})
    db = Driver(conn)
    # Every state write that ends a task run asks this: on the driver's cursor, it is cheap.
    if db.sqlite:
        held = db.fetch(
            f"SELECT 1 FROM concurrency_slot WHERE flow_run_id IN ({db.marks(len(run_ids))}) LIMIT 1", run_ids
        )
    else:
        held = db.fetch("SELECT 1 FROM concurrency_slot WHERE flow_run_id = ANY(%s) LIMIT 1", [run_ids])
    if not held:
        return  # the common case: nobody holds a slot in these runs
    for start in range(0, len(keys), 300):
        chunk = keys[start : start + 300]
        conn.execute(
            delete(slot_t).where(tuple_(slot_t.c.flow_run_id, slot_t.c.task_slug, slot_t.c.map_index).in_(chunk))
        )


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise BadInput(f"A concurrency limit's kind is 'tag' (task runs) or 'label' (flow runs), got {kind!r:.40}")
    return kind
