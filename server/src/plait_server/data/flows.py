"""Flows: registration (versions, archiving), schedules on/off, and queries."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, select, update

from plait.registration import canonical_json, flow_fingerprint, sanitize_metadata
from plait_server.data.common import check_labels, check_limit, check_text, new_id
from plait_server.data.records import FlowGroupRecord, FlowRecord, Page, RegisterResult, TaskRecord
from plait_server.db import models
from plait_server.db.models import utcnow
from plait_server.errors import BadInput, NotFound

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from plait_server.data.store import Store

__all__ = ["FlowFilter", "Flows"]

project_t = models.Project.__table__
group_t = models.FlowGroup.__table__
flow_t = models.Flow.__table__
task_t = models.Task.__table__

_FLOW_COLUMNS = (flow_t, project_t.c.name.label("project_name"), group_t.c.schedule_active)
_BRIEF_FLOW_COLUMNS = (
    *(c for c in flow_t.c if c.name not in ("definition", "storage")),
    project_t.c.name.label("project_name"),
    group_t.c.schedule_active,
)
_ORDERS = {
    "CREATED": flow_t.c.created,
    "NAME": flow_t.c.name,
    "VERSION": flow_t.c.version,
    "PROJECT": project_t.c.name,
}


@dataclass
class FlowFilter:
    """Which flows a query returns; every field given narrows the result."""

    ids: list[str] | None = None
    flow_group_id: str | None = None
    project: str | None = None
    name: str | None = None
    #: A substring of the name, case-insensitive.
    name_like: str | None = None
    include_archived: bool = False


class Flows:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- writes ---------------------------------------------------------------------------------

    def register(
        self,
        *,
        metadata: dict[str, Any],
        storage: dict[str, Any],
        project: str = "default",
        labels: list[str] | None = None,
        core_version: str | None = None,
    ) -> RegisterResult:
        """Register a flow version; an unchanged flow (same metadata, storage and labels) is a no-op.

        A changed flow becomes a new version (``version`` + 1) and the previous versions are
        archived. Constant values and secret parameter defaults in ``metadata`` are dropped
        here too, whoever sent them.
        """
        metadata = _check_metadata(metadata)
        project = check_text(project, "project", 200)
        if not isinstance(storage, dict) or not isinstance(storage.get("type"), str):
            raise BadInput('storage must be an object with a "type" (e.g. {"type": "file", "path": ...})')
        labels = check_labels(labels)
        fingerprint = flow_fingerprint(metadata)
        registration = hashlib.sha256(canonical_json([fingerprint, storage, labels]).encode()).hexdigest()
        store = self.store

        def write(conn: Connection) -> tuple[str, bool]:
            conn.execute(
                store.insert_ignoring_conflicts(project_t, ["name"]),
                {"id": new_id(), "name": project, "created": utcnow()},
            )
            project_id = conn.execute(select(project_t.c.id).where(project_t.c.name == project)).scalar_one()
            now = utcnow()
            conn.execute(
                store.insert_ignoring_conflicts(group_t, ["project_id", "name"]),
                {
                    "id": new_id(),
                    "project_id": project_id,
                    "name": metadata["name"],
                    "schedule_active": True,
                    "created": now,
                    "updated": now,
                },
            )
            group_id = conn.execute(
                store.lock(
                    select(group_t.c.id).where(group_t.c.project_id == project_id, group_t.c.name == metadata["name"])
                )
            ).scalar_one()
            latest = conn.execute(
                select(flow_t.c.id, flow_t.c.version, flow_t.c.registration_hash, flow_t.c.archived)
                .where(flow_t.c.flow_group_id == group_id)
                .order_by(flow_t.c.version.desc())
                .limit(1)
            ).first()
            if latest is not None and not latest.archived and latest.registration_hash == registration:
                return latest.id, False
            flow_id = new_id()
            conn.execute(
                update(flow_t)
                .where(flow_t.c.flow_group_id == group_id, flow_t.c.archived.is_(False))
                .values(archived=True)
            )
            conn.execute(
                flow_t.insert(),
                {
                    "id": flow_id,
                    "flow_group_id": group_id,
                    "version": 1 if latest is None else latest.version + 1,
                    "name": metadata["name"],
                    "fingerprint": fingerprint,
                    "registration_hash": registration,
                    "definition": metadata,
                    "storage": storage,
                    "schedule": metadata.get("schedule"),
                    "parameters": metadata.get("parameters") or [],
                    "labels": labels,
                    "core_version": core_version,
                    "archived": False,
                    "created": now,
                },
            )
            conn.execute(
                group_t.update()
                .where(group_t.c.id == group_id)
                .values(updated=now, next_schedule_check=None, scheduled_until=None)
            )
            # A new version replaces the previous one's runs that have not started: the
            # scheduler creates them again from the new version (its schedule, its code).
            from plait_server.data.runs import delete_unstarted_auto_scheduled

            delete_unstarted_auto_scheduled(conn, group_id)
            tasks = _task_rows(flow_id, metadata)
            if tasks:
                conn.execute(task_t.insert(), tasks)
            return flow_id, True

        flow_id, changed = store.write(write)
        if changed:
            store.changed("flow", [flow_id])
        return RegisterResult(self.get(flow_id), changed)

    def archive(self, flow_id: str) -> FlowRecord:
        """Archive a flow version: it stays visible (with its runs) but gets no new runs."""

        def write(conn: Connection) -> None:
            done = conn.execute(update(flow_t).where(flow_t.c.id == flow_id).values(archived=True))
            if done.rowcount == 0:
                raise NotFound(f"No flow with id {flow_id!r}", id=flow_id)

        self.store.write(write)
        self.store.changed("flow", [flow_id])
        return self.get(flow_id)

    def set_schedule_active(self, flow_group_id: str, active: bool) -> FlowGroupRecord:
        """Turn a flow's schedule on or off. Turning it off deletes the runs the scheduler created
        that have not started yet (they would otherwise still run)."""
        from plait_server.data.runs import delete_unstarted_auto_scheduled

        def write(conn: Connection) -> None:
            done = conn.execute(
                update(group_t)
                .where(group_t.c.id == flow_group_id)
                .values(
                    schedule_active=active,
                    updated=utcnow(),
                    scheduled_at=None,
                    next_schedule_check=None,
                    scheduled_until=None,
                )
            )
            if done.rowcount == 0:
                raise NotFound(f"No flow group with id {flow_group_id!r}", id=flow_group_id)
            if not active:
                delete_unstarted_auto_scheduled(conn, flow_group_id)

        self.store.write(write)
        self.store.changed("flow_group", [flow_group_id])
        return self.group(flow_group_id)

    # -- reads ----------------------------------------------------------------------------------

    def get(self, flow_id: str) -> FlowRecord:
        with self.store.read() as conn:
            row = conn.execute(_by_id(True), {"flow_id": flow_id}).first()
        if row is None:
            raise NotFound(f"No flow with id {flow_id!r}", id=flow_id)
        return _flow_record(row)

    def find(
        self,
        flow_id: str | None = None,
        flow_group_id: str | None = None,
        name: str | None = None,
        project: str | None = None,
        *,
        full: bool = True,
    ) -> FlowRecord:
        """The flow version named by id, or the newest unarchived version of a group or of a name.

        ``full=False`` leaves out the two big documents, ``definition`` and ``storage`` (the
        record has them empty): what creating a run needs, without parsing a big flow's
        structure for every run.
        """
        if flow_id:
            if full:
                return self.get(flow_id)
            with self.store.read() as conn:
                row = conn.execute(_by_id(False), {"flow_id": flow_id}).first()
            if row is None:
                raise NotFound(f"No flow with id {flow_id!r}", id=flow_id)
            return _flow_record(row)
        query = _flow_select(full).where(flow_t.c.archived.is_(False))
        if flow_group_id:
            query = query.where(flow_t.c.flow_group_id == flow_group_id)
            what = f"flow group {flow_group_id!r}"
        elif name:
            query = query.where(flow_t.c.name == name)
            if project:
                query = query.where(project_t.c.name == project)
            what = f"flow named {name!r}" + (f" in project {project!r}" if project else "")
        else:
            raise BadInput("Name the flow: its id, its flow group id, or its name")
        with self.store.read() as conn:
            rows = conn.execute(query.order_by(flow_t.c.version.desc()).limit(2)).all()
        if not rows:
            raise NotFound(f"No registered (unarchived) {what}")
        if name and not flow_group_id and len({r.flow_group_id for r in rows}) > 1:
            raise BadInput(f"Several projects have a flow named {name!r}; name the project too")
        return _flow_record(rows[0])

    def list(
        self,
        where: FlowFilter | None = None,
        order_by: str = "CREATED",
        descending: bool = True,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Page[FlowRecord]:
        limit, offset = check_limit(limit, offset)
        where = where or FlowFilter()
        conditions = []
        if where.ids is not None:
            conditions.append(flow_t.c.id.in_(where.ids[:1000]))
        if where.flow_group_id:
            conditions.append(flow_t.c.flow_group_id == where.flow_group_id)
        if where.project:
            conditions.append(project_t.c.name == where.project)
        if where.name:
            conditions.append(flow_t.c.name == where.name)
        if where.name_like:
            conditions.append(func.lower(flow_t.c.name).contains(where.name_like.lower(), autoescape=True))
        if not where.include_archived:
            conditions.append(flow_t.c.archived.is_(False))
        column = _ORDERS.get(order_by)
        if column is None:
            raise BadInput(f"Cannot order flows by {order_by!r}; use one of {', '.join(_ORDERS)}")
        order = [column.desc() if descending else column.asc(), flow_t.c.id]
        query = _flow_select().where(*conditions)
        with self.store.read() as conn:
            total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
            rows = conn.execute(query.order_by(*order).limit(limit).offset(offset)).all()
        return Page([_flow_record(r) for r in rows], total, limit, offset)

    def versions(self, flow_group_id: str) -> list[FlowRecord]:
        with self.store.read() as conn:
            rows = conn.execute(
                _flow_select().where(flow_t.c.flow_group_id == flow_group_id).order_by(flow_t.c.version.desc())
            ).all()
        return [_flow_record(r) for r in rows]

    def tasks(self, flow_id: str) -> list[TaskRecord]:
        with self.store.read() as conn:
            rows = conn.execute(select(task_t).where(task_t.c.flow_id == flow_id).order_by(task_t.c.slug)).all()
        return [TaskRecord(**r._mapping) for r in rows]

    def group(self, flow_group_id: str) -> FlowGroupRecord:
        with self.store.read() as conn:
            row = conn.execute(
                select(group_t, project_t.c.name.label("project"))
                .join(project_t, project_t.c.id == group_t.c.project_id)
                .where(group_t.c.id == flow_group_id)
            ).first()
        if row is None:
            raise NotFound(f"No flow group with id {flow_group_id!r}", id=flow_group_id)
        m = row._mapping
        return FlowGroupRecord(
            id=m["id"],
            project_id=m["project_id"],
            project=m["project"],
            name=m["name"],
            schedule_active=m["schedule_active"],
            created=m["created"],
            updated=m["updated"],
        )


def _flow_select(full: bool = True) -> Any:
    columns = _FLOW_COLUMNS if full else _BRIEF_FLOW_COLUMNS
    return (
        select(*columns)
        .join(group_t, group_t.c.id == flow_t.c.flow_group_id)
        .join(project_t, project_t.c.id == group_t.c.project_id)
    )


@functools.cache
def _by_id(full: bool) -> Any:
    """A flow version by id (``flow_id``), built once: every run created and every page of runs
    reads one, and building the statement cost more than running it."""
    return _flow_select(full).where(flow_t.c.id == bindparam("flow_id"))


def _flow_record(row: Any) -> FlowRecord:
    m = row._mapping
    return FlowRecord(
        id=m["id"],
        flow_group_id=m["flow_group_id"],
        project=m["project_name"],
        name=m["name"],
        version=m["version"],
        fingerprint=m["fingerprint"],
        definition=m.get("definition", {}),
        storage=m.get("storage", {}),
        schedule=m["schedule"],
        parameters=m["parameters"],
        labels=m["labels"],
        core_version=m["core_version"],
        archived=m["archived"],
        schedule_active=m["schedule_active"],
        created=m["created"],
    )


def _check_metadata(metadata: Any) -> dict[str, Any]:
    if not isinstance(metadata, dict):
        raise BadInput("metadata must be an object (plait.registration.flow_metadata(flow))", field="metadata")
    check_text(metadata.get("name"), "metadata.name", 200)
    tasks = metadata.get("tasks")
    if not isinstance(tasks, list) or not all(
        isinstance(t, dict) and isinstance(t.get("slug"), str) and isinstance(t.get("name"), str) for t in tasks
    ):
        raise BadInput("metadata.tasks must be a list of objects with a slug and a name", field="metadata.tasks")
    slugs = [t["slug"] for t in tasks]
    if len(set(slugs)) != len(slugs):
        raise BadInput("metadata.tasks has two tasks with one slug", field="metadata.tasks")
    if any(len(s) > 300 or len(t["name"]) > 300 for s, t in zip(slugs, tasks, strict=True)):
        raise BadInput("metadata.tasks: slugs and names are at most 300 characters", field="metadata.tasks")
    for key, kind in (("edges", list), ("parameters", list)):
        if not isinstance(metadata.get(key, []), kind):
            raise BadInput(f"metadata.{key} must be a list", field=f"metadata.{key}")
    parameters = metadata.get("parameters") or []
    if not all(isinstance(p, dict) and isinstance(p.get("name"), str) for p in parameters):
        raise BadInput("metadata.parameters must be objects with a name", field="metadata.parameters")
    schedule = metadata.get("schedule")
    if schedule is not None and not isinstance(schedule, dict):
        raise BadInput("metadata.schedule must be an object or null", field="metadata.schedule")
    return sanitize_metadata(metadata)


def _task_rows(flow_id: str, metadata: dict[str, Any]) -> list[dict[str, Any]]:
    mapped = {e.get("downstream") for e in metadata.get("edges") or [] if isinstance(e, dict) and e.get("mapped")}
    rows = []
    for t in metadata["tasks"]:
        options = t.get("options") if isinstance(t.get("options"), dict) else {}
        tags = options.get("tags") if isinstance(options.get("tags"), list) else []
        retries = options.get("max_retries")
        rows.append(
            {
                "id": new_id(),
                "flow_id": flow_id,
                "slug": t["slug"],
                "name": t["name"],
                "type": str(t.get("type"))[:300] if t.get("type") is not None else None,
                "tags": [str(x) for x in tags],
                "mapped": t["slug"] in mapped,
                "max_retries": retries if isinstance(retries, int) and not isinstance(retries, bool) else 0,
            }
        )
    return rows
