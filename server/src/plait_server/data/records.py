"""What the data layer returns: plain, typed records (the API and the UI render them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

__all__ = [
    "ApiKeyRecord",
    "FlowGroupRecord",
    "FlowRecord",
    "FlowRunRecord",
    "LogPage",
    "LogRecord",
    "Page",
    "ProjectRecord",
    "RegisterResult",
    "StateRecord",
    "StateWrite",
    "StateWriteResult",
    "TaskRecord",
    "TaskRunRecord",
]

T = TypeVar("T")


@dataclass(slots=True)
class Page(Generic[T]):
    """One page of a list: ``items``, the ``total`` matching, and the window asked for."""

    items: list[T]
    total: int
    limit: int
    offset: int

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.items) < self.total


@dataclass(slots=True)
class ProjectRecord:
    id: str
    name: str
    created: datetime


@dataclass(slots=True)
class FlowGroupRecord:
    id: str
    project_id: str
    project: str
    name: str
    schedule_active: bool
    created: datetime
    updated: datetime


@dataclass(slots=True)
class FlowRecord:
    id: str
    flow_group_id: str
    project: str
    name: str
    version: int
    fingerprint: str
    definition: dict[str, Any]
    storage: dict[str, Any]
    schedule: dict[str, Any] | None
    parameters: list[dict[str, Any]]
    labels: list[str]
    core_version: str | None
    archived: bool
    schedule_active: bool
    created: datetime


@dataclass(slots=True)
class TaskRecord:
    id: str
    flow_id: str
    slug: str
    name: str
    type: str | None
    tags: list[str]
    mapped: bool
    max_retries: int


@dataclass(slots=True)
class RegisterResult:
    flow: FlowRecord
    changed: bool


@dataclass(slots=True)
class FlowRunRecord:
    id: str
    flow_id: str
    flow_group_id: str
    name: str
    parameters: dict[str, Any]
    context: dict[str, Any]
    labels: list[str]
    idempotency_key: str | None
    auto_scheduled: bool
    scheduled_start_time: datetime
    state: str
    state_type: str
    state_message: str | None
    state_timestamp: datetime
    version: int
    run_count: int
    start_time: datetime | None
    end_time: datetime | None
    heartbeat: datetime | None
    agent_id: str | None
    created: datetime
    updated: datetime
    #: How many times the server rescheduled it after its process died.
    reschedule_count: int = 0


@dataclass(slots=True)
class TaskRunRecord:
    id: str
    flow_run_id: str
    task_slug: str
    map_index: int
    state: str
    state_type: str
    state_message: str | None
    state_timestamp: datetime
    version: int
    run_count: int
    result_location: str | None
    start_time: datetime | None
    end_time: datetime | None
    created: datetime
    updated: datetime


@dataclass(slots=True)
class StateRecord:
    id: int
    flow_run_id: str
    task_run_id: str | None
    state: str
    state_type: str
    message: str | None
    result_location: str | None
    start_time: datetime | None
    timestamp: datetime
    version: int


@dataclass(slots=True)
class LogRecord:
    id: int
    flow_run_id: str
    task_run_id: str | None
    task_slug: str | None
    map_index: int | None
    level: int
    logger: str
    timestamp: datetime
    message: str


@dataclass(slots=True)
class LogPage:
    """Logs in order; pass ``cursor`` back as ``after`` for the next ones."""

    items: list[LogRecord]
    cursor: str | None
    has_more: bool


@dataclass(slots=True)
class ApiKeyRecord:
    id: str
    name: str
    prefix: str
    scope: str
    created: datetime
    revoked: datetime | None
    last_used: datetime | None
    #: Set for a run-scoped key: it may only read and report this flow run.
    flow_run_id: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None


@dataclass(slots=True)
class StateWrite:
    """A state to write: a name and what goes with it (never the result's value)."""

    type: str
    message: str | None = None
    result_location: str | None = None
    start_time: datetime | None = None
    timestamp: datetime | None = None
    run_count: int | None = None


@dataclass(slots=True)
class StateWriteResult:
    """The outcome of one item of a batched state write.

    ``ok`` and the new ``version``; or ``code`` (``NOT_FOUND``, ``VERSION_CONFLICT``,
    ``INVALID_TRANSITION``, ``BAD_INPUT``) with ``message`` (and ``rule`` for a refused
    transition). ``state`` and ``version`` are the run's current ones either way, so a caller
    that lost a race knows where the run stands.
    """

    index: int
    ok: bool
    id: str | None = None
    flow_run_id: str | None = None
    task_slug: str | None = None
    map_index: int | None = None
    version: int | None = None
    state: str | None = None
    state_type: str | None = None
    code: str | None = None
    message: str | None = None
    rule: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --- orchestration: agents, claims, heartbeats, concurrency limits, server events ---------------


@dataclass(slots=True)
class AgentRecord:
    """An agent and when it was last heard from."""

    id: str
    name: str
    type: str
    labels: list[str]
    max_runs: int | None
    hostname: str | None
    core_version: str | None
    created: datetime
    started: datetime
    last_seen: datetime


@dataclass(slots=True)
class ClaimedRun:
    """A flow run an agent claimed (now ``Submitted``), with the run-scoped key its process uses."""

    flow_run: FlowRunRecord
    token: str


@dataclass(slots=True)
class RunStatus:
    """Where a flow run stands, as a heartbeat answer reports it."""

    id: str
    state: str
    state_type: str
    version: int
    state_timestamp: datetime
    state_message: str | None = None


@dataclass(slots=True)
class ConcurrencyLimitRecord:
    """A concurrency limit and how much of it is in use now."""

    id: str
    kind: str
    name: str
    max_running: int
    in_use: int
    created: datetime
    updated: datetime


@dataclass(slots=True)
class SlotAnswer:
    """The answer to a task run asking for its tags' concurrency slots."""

    granted: bool
    #: The tags whose limits are full (empty when granted).
    full: list[str] = field(default_factory=list)
    #: The tags the task run holds a slot of now.
    held: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ServerEventRecord:
    """Something the server noticed on its own: a dead or late run, a lost agent."""

    id: int
    kind: str
    subject_id: str
    occurrence: str
    flow_run_id: str | None
    agent_id: str | None
    flow_name: str | None
    state: str | None
    message: str
    created: datetime
