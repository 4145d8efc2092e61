"""The server's tables, as SQLAlchemy 2 declarative models.

The models define the schema (Alembic's migrations in ``plait_server/migrations`` create it);
the data layer (``plait_server.data``) reads and writes through SQLAlchemy Core on
``Model.__table__``, which keeps the hot write paths free of ORM bookkeeping.

What is stored is metadata only: flows' structure (never code or constant values), runs'
parameters and states with result *locations*, logs and hashed API keys. Times are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Agent",
    "ApiKey",
    "Base",
    "ConcurrencyLimit",
    "ConcurrencySlot",
    "Flow",
    "FlowGroup",
    "FlowRun",
    "Log",
    "Project",
    "RunState",
    "ServerEvent",
    "Task",
    "TaskRun",
    "utcnow",
]

# Names for constraints and indexes, so migrations can refer to them on every database.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime in Python; naive UTC in the database (SQLite has no time zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the server stores aware UTC times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


#: JSON documents: JSONB on PostgreSQL, JSON text elsewhere.
JSONDoc = JSON().with_variant(JSONB(), "postgresql")
#: Auto-increment integer keys (BIGINT on PostgreSQL; SQLite's rowid alias must be INTEGER).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime()}


class Project(Base):
    """A namespace for flows (``default`` unless registration names another)."""

    __tablename__ = "project"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created: Mapped[datetime] = mapped_column(default=utcnow)


class FlowGroup(Base):
    """A flow's stable identity across versions: (project, flow name).

    Runs, schedules and idempotency keys belong to the group, so a new version keeps them.
    """

    __tablename__ = "flow_group"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("project.id"))
    name: Mapped[str] = mapped_column(String(200))
    schedule_active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: When the scheduler last created runs for this group (it scans the oldest first).
    scheduled_at: Mapped[datetime | None] = mapped_column(index=True)
    #: When the scheduler looks at this group next (null: at its next pass); the column it advances.
    next_schedule_check: Mapped[datetime | None] = mapped_column(index=True)
    #: The scheduled start time of the newest run the scheduler created (null: none, or deleted).
    scheduled_until: Mapped[datetime | None]
    created: Mapped[datetime] = mapped_column(default=utcnow)
    updated: Mapped[datetime] = mapped_column(default=utcnow)


class Flow(Base):
    """One registered version of a flow: its metadata (never its code) and storage reference."""

    __tablename__ = "flow"
    __table_args__ = (
        UniqueConstraint("flow_group_id", "version"),
        Index("ix_flow_flow_group_id_archived", "flow_group_id", "archived"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    flow_group_id: Mapped[str] = mapped_column(ForeignKey("flow_group.id"))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    #: sha256 of the canonical metadata; equal fingerprints mean the same flow structure.
    fingerprint: Mapped[str] = mapped_column(String(64))
    #: sha256 of metadata, storage and labels: registration with an equal one is a no-op.
    registration_hash: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    storage: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    schedule: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    parameters: Mapped[list[Any]] = mapped_column(JSONDoc)
    labels: Mapped[list[str]] = mapped_column(JSONDoc)
    core_version: Mapped[str | None] = mapped_column(String(50))
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(default=utcnow)


class Task(Base):
    """A task of a flow version, as registered (slug, name, tags; no code, no constants)."""

    __tablename__ = "task"
    __table_args__ = (UniqueConstraint("flow_id", "slug"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    flow_id: Mapped[str] = mapped_column(ForeignKey("flow.id"))
    slug: Mapped[str] = mapped_column(String(300))
    name: Mapped[str] = mapped_column(String(300))
    type: Mapped[str | None] = mapped_column(String(300))
    tags: Mapped[list[str]] = mapped_column(JSONDoc)
    mapped: Mapped[bool] = mapped_column(Boolean, default=False)
    max_retries: Mapped[int] = mapped_column(Integer, default=0)


class FlowRun(Base):
    """One run of a flow version, with its current state and the version of that state."""

    __tablename__ = "flow_run"
    __table_args__ = (
        # Idempotent creation: one run per (flow group, key), enforced by the database.
        UniqueConstraint("flow_group_id", "idempotency_key"),
        # Agents and the scheduler: due runs by state; the UI: runs of a flow by time.
        Index("ix_flow_run_state_type_scheduled_start_time", "state_type", "scheduled_start_time"),
        Index("ix_flow_run_flow_group_id_scheduled_start_time", "flow_group_id", "scheduled_start_time"),
        Index("ix_flow_run_state_type_heartbeat", "state_type", "heartbeat"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    flow_id: Mapped[str] = mapped_column(ForeignKey("flow.id"), index=True)
    flow_group_id: Mapped[str] = mapped_column(ForeignKey("flow_group.id"))
    name: Mapped[str] = mapped_column(String(200))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    context: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    labels: Mapped[list[str]] = mapped_column(JSONDoc)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    #: Created by the scheduler (such runs are deleted when their schedule is paused).
    auto_scheduled: Mapped[bool] = mapped_column(Boolean, default=False)
    scheduled_start_time: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(50))
    state_type: Mapped[str] = mapped_column(String(20))
    state_message: Mapped[str | None] = mapped_column(Text)
    state_timestamp: Mapped[datetime]
    #: Bumped by every state write; a write names the version it read (compare-and-set).
    version: Mapped[int] = mapped_column(Integer, default=1)
    #: How many times the run was started (a rescheduled run starts again).
    run_count: Mapped[int] = mapped_column(Integer, default=0)
    #: How many times the server rescheduled it after its process died (Lazarus).
    reschedule_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    start_time: Mapped[datetime | None]
    end_time: Mapped[datetime | None]
    heartbeat: Mapped[datetime | None]
    agent_id: Mapped[str | None] = mapped_column(String(36))
    created: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated: Mapped[datetime] = mapped_column(default=utcnow)


class TaskRun(Base):
    """One run of one task (or one mapped child) in a flow run; ``map_index`` -1 for the task itself."""

    __tablename__ = "task_run"
    # Every query of task runs names a flow run (the unique index) or ids (the primary key); a
    # state write changes no indexed column, so on PostgreSQL it is a heap-only (HOT) update,
    # with room left on each page for it (migration 0003: fillfactor 70).
    __table_args__ = (UniqueConstraint("flow_run_id", "task_slug", "map_index"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    flow_run_id: Mapped[str] = mapped_column(ForeignKey("flow_run.id"))
    task_slug: Mapped[str] = mapped_column(String(300))
    map_index: Mapped[int] = mapped_column(Integer, default=-1)
    state: Mapped[str] = mapped_column(String(50))
    state_type: Mapped[str] = mapped_column(String(20))
    state_message: Mapped[str | None] = mapped_column(Text)
    state_timestamp: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)
    run_count: Mapped[int] = mapped_column(Integer, default=0)
    #: Where the task's result was stored (a URI), never the result itself.
    result_location: Mapped[str | None] = mapped_column(Text)
    start_time: Mapped[datetime | None]
    end_time: Mapped[datetime | None]
    heartbeat: Mapped[datetime | None]
    created: Mapped[datetime] = mapped_column(default=utcnow)
    updated: Mapped[datetime] = mapped_column(default=utcnow)


class RunState(Base):
    """The history: every state a flow run (``task_run_id`` null) or task run entered."""

    __tablename__ = "run_state"
    __table_args__ = (
        Index("ix_run_state_flow_run_id_id", "flow_run_id", "id"),
        Index("ix_run_state_task_run_id_id", "task_run_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # No foreign keys (migration 0004): a history row is written by the data layer in the
    # transaction that changes (and locks, or creates) its run, so a per-row check could never
    # fail, and on PostgreSQL it cost two lookups and row locks per state.
    flow_run_id: Mapped[str] = mapped_column(String(36))
    task_run_id: Mapped[str | None] = mapped_column(String(36))
    state: Mapped[str] = mapped_column(String(50))
    state_type: Mapped[str] = mapped_column(String(20))
    message: Mapped[str | None] = mapped_column(Text)
    result_location: Mapped[str | None] = mapped_column(Text)
    #: For Scheduled and Retrying: when the run is due.
    start_time: Mapped[datetime | None]
    timestamp: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer)


class Log(Base):
    """A log record of a flow run (or of one of its task runs); ``id`` orders and pages them."""

    __tablename__ = "log"
    __table_args__ = (
        Index("ix_log_flow_run_id_id", "flow_run_id", "id"),
        Index("ix_log_task_run_id_id", "task_run_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    flow_run_id: Mapped[str] = mapped_column(ForeignKey("flow_run.id"))
    task_run_id: Mapped[str | None] = mapped_column(String(36))
    task_slug: Mapped[str | None] = mapped_column(String(300))
    map_index: Mapped[int | None] = mapped_column(Integer)
    level: Mapped[int] = mapped_column(Integer)
    logger: Mapped[str] = mapped_column(String(200))
    timestamp: Mapped[datetime]
    message: Mapped[str] = mapped_column(Text)


class ApiKey(Base):
    """An API key: only its sha256 hash is stored; ``prefix`` identifies it in lists."""

    __tablename__ = "api_key"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(10))
    created: Mapped[datetime] = mapped_column(default=utcnow)
    revoked: Mapped[datetime | None]
    last_used: Mapped[datetime | None]
    #: A run-scoped key (given to one flow run's process): it may only read and report that run.
    flow_run_id: Mapped[str | None] = mapped_column(String(36), index=True)


class Agent(Base):
    """An agent: a process that claims due flow runs and starts them where the code lives."""

    __tablename__ = "agent"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    type: Mapped[str] = mapped_column(String(50))
    labels: Mapped[list[str]] = mapped_column(JSONDoc)
    max_runs: Mapped[int | None] = mapped_column(Integer)
    hostname: Mapped[str | None] = mapped_column(String(200))
    core_version: Mapped[str | None] = mapped_column(String(50))
    created: Mapped[datetime] = mapped_column(default=utcnow)
    #: When the agent (re)started, and when it was last heard from.
    started: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ConcurrencyLimit(Base):
    """At most ``max_running`` at once: flow runs with a label (``kind`` "label", checked when an
    agent claims a run) or task runs with a tag (``kind`` "tag", a slot per running task run)."""

    __tablename__ = "concurrency_limit"
    __table_args__ = (UniqueConstraint("kind", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(100))
    max_running: Mapped[int] = mapped_column(Integer)
    created: Mapped[datetime] = mapped_column(default=utcnow)
    updated: Mapped[datetime] = mapped_column(default=utcnow)


class ConcurrencySlot(Base):
    """A task run holding one slot of a tag's concurrency limit (released when it stops running)."""

    __tablename__ = "concurrency_slot"
    __table_args__ = (
        UniqueConstraint("tag", "flow_run_id", "task_slug", "map_index"),
        Index("ix_concurrency_slot_flow_run_id", "flow_run_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tag: Mapped[str] = mapped_column(String(100))
    flow_run_id: Mapped[str] = mapped_column(String(36))
    task_slug: Mapped[str] = mapped_column(String(300))
    map_index: Mapped[int] = mapped_column(Integer)
    acquired: Mapped[datetime] = mapped_column(default=utcnow)


class ServerEvent(Base):
    """Something the server noticed on its own (a dead run, a late run, a lost agent).

    One row per occurrence, under a UNIQUE constraint: of several server processes noticing the
    same thing, the one whose insert succeeds tells the plugins (``plait_server_event``).
    """

    __tablename__ = "server_event"
    __table_args__ = (
        UniqueConstraint("kind", "subject_id", "occurrence"),
        Index("ix_server_event_created", "created"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(50))
    subject_id: Mapped[str] = mapped_column(String(36))
    occurrence: Mapped[str] = mapped_column(String(64))
    flow_run_id: Mapped[str | None] = mapped_column(String(36))
    agent_id: Mapped[str | None] = mapped_column(String(36))
    flow_name: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str | None] = mapped_column(String(50))
    message: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(default=utcnow)
