"""Flows: types, queries (flows, flow, flow_group) and mutations (register_flow, archive_flow,
set_schedule_active)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from plait_server.api.context import needs
from plait_server.data.flows import FlowFilter
from plait_server.data.records import FlowGroupRecord, FlowRecord, TaskRecord


@strawberry.type(description="A task of a flow version, as registered.")
class Task:
    id: strawberry.ID
    slug: str
    name: str
    type: str | None
    tags: list[str]
    mapped: bool
    max_retries: int

    @classmethod
    def of(cls, r: TaskRecord) -> Task:
        return cls(
            id=r.id, slug=r.slug, name=r.name, type=r.type, tags=r.tags, mapped=r.mapped, max_retries=r.max_retries
        )


# A run's ``flow`` is read without its two big documents; these read them when they are asked for.
def _definition(root: Flow, info: Info) -> JSON:
    return root.full(info).definition


def _storage(root: Flow, info: Info) -> JSON:
    return root.full(info).storage


@strawberry.type(description="One registered version of a flow: its metadata, never its code.")
class Flow:
    id: strawberry.ID
    flow_group_id: strawberry.ID
    project: str
    name: str
    version: int
    fingerprint: str = strawberry.field(description="sha256 of the metadata: equal for the same flow structure.")
    definition: JSON = strawberry.field(
        resolver=_definition, description="Tasks, edges, parameters, schedule (no constant values)."
    )
    storage: JSON = strawberry.field(resolver=_storage, description="Where agents find the flow's code.")
    schedule: JSON | None
    parameters: JSON
    labels: list[str]
    core_version: str | None
    archived: bool
    schedule_active: bool
    created: datetime
    #: The record it was made of; without its two big documents when ``brief``.
    record: strawberry.Private[FlowRecord]
    brief: strawberry.Private[bool] = False

    @classmethod
    def of(cls, r: FlowRecord, brief: bool = False) -> Flow:
        """The flow version of record ``r``; ``brief``: ``r`` was read without ``definition``
        and ``storage`` (``Flows.find(full=False)``), which are then read when asked for."""
        return cls(
            id=r.id,
            flow_group_id=r.flow_group_id,
            project=r.project,
            name=r.name,
            version=r.version,
            fingerprint=r.fingerprint,
            schedule=r.schedule,
            parameters=r.parameters,
            labels=r.labels,
            core_version=r.core_version,
            archived=r.archived,
            schedule_active=r.schedule_active,
            created=r.created,
            record=r,
            brief=brief,
        )

    def full(self, info: Info) -> FlowRecord:
        """The whole record (read now if this one was made brief)."""
        return info.context.flow(self.id, full=True) if self.brief else self.record

    @strawberry.field(
        description="How agents run this version, a table per agent kind (Flow(run_config=...)), e.g. "
        '{"docker": {"image": "..."}}; null when the flow sets none.'
    )
    def run_config(self, info: Info) -> JSON | None:
        definition = self.full(info).definition
        value = definition.get("run_config") if isinstance(definition, dict) else None
        return value if isinstance(value, dict) and value else None

    @strawberry.field(description="The flow's tasks, by slug.")
    def tasks(self, info: Info) -> list[Task]:
        return [Task.of(t) for t in info.context.store.flows.tasks(self.id)]


@strawberry.type(description="A flow's identity across versions (project and name).")
class FlowGroup:
    id: strawberry.ID
    project: str
    name: str
    schedule_active: bool
    created: datetime
    updated: datetime

    @classmethod
    def of(cls, r: FlowGroupRecord) -> FlowGroup:
        return cls(
            id=r.id,
            project=r.project,
            name=r.name,
            schedule_active=r.schedule_active,
            created=r.created,
            updated=r.updated,
        )

    @strawberry.field(description="Every version, newest first.")
    def versions(self, info: Info) -> list[Flow]:
        return [Flow.of(f) for f in info.context.store.flows.versions(self.id)]


@strawberry.type
class FlowPage:
    items: list[Flow]
    total: int
    limit: int
    offset: int
    has_more: bool


@strawberry.enum
class FlowOrder(Enum):
    CREATED = "CREATED"
    NAME = "NAME"
    VERSION = "VERSION"
    PROJECT = "PROJECT"


@strawberry.input
class FlowFilterInput:
    ids: list[strawberry.ID] | None = None
    flow_group_id: strawberry.ID | None = None
    project: str | None = None
    name: str | None = None
    name_like: str | None = strawberry.field(default=None, description="A part of the name, any case.")
    include_archived: bool = False


@strawberry.input(description="What `plait register` sends.")
class RegisterFlowInput:
    metadata: JSON = strawberry.field(description="plait.registration.flow_metadata(flow).")
    storage: JSON = strawberry.field(description='A storage reference, e.g. {"type": "file", "path": ...}.')
    project: str = "default"
    labels: list[str] | None = None
    core_version: str | None = None


@strawberry.type
class RegisterFlowResult:
    flow: Flow
    changed: bool = strawberry.field(description="False when the flow was already registered as it is.")


@strawberry.type
class FlowQueries:
    @strawberry.field(extensions=needs("read"), description="Flows, newest first by default.")
    def flows(
        self,
        info: Info,
        filter: FlowFilterInput | None = None,
        order_by: FlowOrder = FlowOrder.CREATED,
        descending: bool = True,
        limit: int = 100,
        offset: int = 0,
    ) -> FlowPage:
        f = filter or FlowFilterInput()
        page = info.context.store.flows.list(
            FlowFilter(
                ids=f.ids,
                flow_group_id=f.flow_group_id,
                project=f.project,
                name=f.name,
                name_like=f.name_like,
                include_archived=f.include_archived,
            ),
            order_by.value,
            descending,
            limit,
            offset,
        )
        return FlowPage(
            items=[Flow.of(r) for r in page.items],
            total=page.total,
            limit=page.limit,
            offset=page.offset,
            has_more=page.has_more,
        )

    @strawberry.field(extensions=needs("read"))
    def flow(self, info: Info, id: strawberry.ID) -> Flow:
        return Flow.of(info.context.store.flows.get(id))

    @strawberry.field(extensions=needs("read"))
    def flow_group(self, info: Info, id: strawberry.ID) -> FlowGroup:
        return FlowGroup.of(info.context.store.flows.group(id))


@strawberry.type
class FlowMutations:
    @strawberry.mutation(extensions=needs("admin"), description="Register a flow; unchanged flows are a no-op.")
    def register_flow(self, info: Info, input: RegisterFlowInput) -> RegisterFlowResult:
        result = info.context.store.flows.register(
            metadata=input.metadata,
            storage=input.storage,
            project=input.project,
            labels=input.labels,
            core_version=input.core_version,
        )
        return RegisterFlowResult(flow=Flow.of(result.flow), changed=result.changed)

    @strawberry.mutation(extensions=needs("admin"), description="Archive a flow version: no new runs.")
    def archive_flow(self, info: Info, flow_id: strawberry.ID) -> Flow:
        return Flow.of(info.context.store.flows.archive(flow_id))

    @strawberry.mutation(extensions=needs("admin"), description="Turn a flow's schedule on or off.")
    def set_schedule_active(self, info: Info, flow_group_id: strawberry.ID, active: bool) -> FlowGroup:
        return FlowGroup.of(info.context.store.flows.set_schedule_active(flow_group_id, active))
