"""Flow runs and task runs: types, queries and the state-writing mutations (batched)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from plait_server.api.common import State, StateInput, StateWriteOutcome, plain_input, state_of
from plait_server.api.context import needs
from plait_server.api.flows import Flow
from plait_server.data.records import FlowRunRecord, TaskRunRecord
from plait_server.data.runs import FlowRunFilter, TaskRunFilter, TaskRunStateItem


@strawberry.type(description="One run of one task, or of one mapped child (map_index 0 and up).")
class TaskRun:
    id: strawberry.ID
    flow_run_id: strawberry.ID
    task_slug: str
    map_index: int = strawberry.field(description="-1 for the task itself (or a mapped task's parent).")
    state: str
    state_type: str
    state_message: str | None
    state_timestamp: datetime
    version: int
    run_count: int
    result_location: str | None = strawberry.field(description="Where the result was stored; never the value.")
    start_time: datetime | None
    end_time: datetime | None
    created: datetime
    updated: datetime

    @classmethod
    def of(cls, r: TaskRunRecord) -> TaskRun:
        return cls(**{f: getattr(r, f) for f in cls.__annotations__})

    @strawberry.field(description="Every state this task run entered, oldest first.")
    def states(self, info: Info, after: int | None = None, limit: int = 1000) -> list[State]:
        return [state_of(s) for s in info.context.store.task_runs.history(self.id, after, limit)]


@strawberry.type
class TaskRunPage:
    items: list[TaskRun]
    total: int
    limit: int
    offset: int
    has_more: bool


@strawberry.type
class StateCount:
    state: str
    count: int


@strawberry.type(description="One run of a flow version.")
class FlowRun:
    id: strawberry.ID
    flow_id: strawberry.ID
    flow_group_id: strawberry.ID
    name: str
    parameters: JSON
    context: JSON
    labels: list[str]
    idempotency_key: str | None
    auto_scheduled: bool
    scheduled_start_time: datetime
    state: str
    state_type: str
    state_message: str | None
    state_timestamp: datetime
    version: int = strawberry.field(description="The state's version: name it when you write the next state.")
    run_count: int
    start_time: datetime | None
    end_time: datetime | None
    heartbeat: datetime | None
    agent_id: str | None
    created: datetime
    updated: datetime
    reschedule_count: int = strawberry.field(description="How often the server rescheduled it after its process died.")

    @classmethod
    def of(cls, r: FlowRunRecord) -> FlowRun:
        return cls(**{f: getattr(r, f) for f in cls.__annotations__})

    @strawberry.field(description="The flow version this run runs.")
    def flow(self, info: Info) -> Flow:
        return Flow.of(info.context.flow(self.flow_id), brief=True)

    @strawberry.field(description="Every state this flow run entered, oldest first.")
    def states(self, info: Info, after: int | None = None, limit: int = 1000) -> list[State]:
        return [state_of(s) for s in info.context.store.runs.history(self.id, after, limit)]

    @strawberry.field(description="This run's task runs (children after their parent).")
    def task_runs(self, info: Info, limit: int = 100, offset: int = 0) -> TaskRunPage:
        page = info.context.store.task_runs.list(TaskRunFilter(flow_run_id=self.id), limit=limit, offset=offset)
        return TaskRunPage(
            items=[TaskRun.of(t) for t in page.items],
            total=page.total,
            limit=page.limit,
            offset=page.offset,
            has_more=page.has_more,
        )

    @strawberry.field(description="How many task runs are in each state.")
    def task_run_counts(self, info: Info) -> list[StateCount]:
        counts = info.context.store.task_runs.counts(self.id)
        return [StateCount(state=s, count=n) for s, n in sorted(counts.items())]


@strawberry.type
class FlowRunPage:
    items: list[FlowRun]
    total: int
    limit: int
    offset: int
    has_more: bool


@strawberry.enum
class FlowRunOrder(Enum):
    CREATED = "CREATED"
    SCHEDULED_START_TIME = "SCHEDULED_START_TIME"
    START_TIME = "START_TIME"
    END_TIME = "END_TIME"
    UPDATED = "UPDATED"
    NAME = "NAME"
    STATE = "STATE"


@strawberry.enum
class TaskRunOrder(Enum):
    TASK_SLUG = "TASK_SLUG"
    CREATED = "CREATED"
    START_TIME = "START_TIME"
    UPDATED = "UPDATED"
    STATE = "STATE"


@strawberry.input
class FlowRunFilterInput:
    ids: list[strawberry.ID] | None = None
    flow_id: strawberry.ID | None = None
    flow_group_id: strawberry.ID | None = None
    flow_name: str | None = None
    states: list[str] | None = strawberry.field(default=None, description='State names: ["Running", "Failed"].')
    state_types: list[str] | None = strawberry.field(default=None, description='Types: ["RUNNING", "FAILED"].')
    labels: list[str] | None = strawberry.field(default=None, description="Runs that have all of these labels.")
    scheduled_after: datetime | None = None
    scheduled_before: datetime | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@strawberry.input
class TaskRunFilterInput:
    flow_run_id: strawberry.ID | None = None
    ids: list[strawberry.ID] | None = None
    task_slug: str | None = None
    map_index: int | None = None
    states: list[str] | None = None
    state_types: list[str] | None = None


@plain_input
@strawberry.input(description="Name the flow by id, by flow group, or by name (and project).")
class CreateFlowRunInput:
    flow_id: strawberry.ID | None = None
    flow_group_id: strawberry.ID | None = None
    flow_name: str | None = None
    project: str | None = None
    parameters: JSON | None = None
    context: JSON | None = None
    labels: list[str] | None = strawberry.field(default=None, description="Default: the flow's labels.")
    scheduled_start_time: datetime | None = strawberry.field(default=None, description="Default: now.")
    idempotency_key: str | None = strawberry.field(
        default=None, description="One run per key and flow group: a repeated call returns the same run."
    )
    name: str | None = None


@strawberry.type
class CreateFlowRunResult:
    flow_run: FlowRun
    created: bool = strawberry.field(description="False when a run with this idempotency key already existed.")


@plain_input
@strawberry.input
class FlowRunStateInput:
    flow_run_id: strawberry.ID
    version: int = strawberry.field(description="The version of the state you read (compare-and-set).")
    state: StateInput


@plain_input(into=TaskRunStateItem)  # resolvers get the data layer's items (state: a StateWrite)
@strawberry.input
class TaskRunStateInput:
    flow_run_id: strawberry.ID
    task_slug: str
    map_index: int = -1
    version: int = strawberry.field(description="The version you read; 0 creates the task run.")
    state: StateInput
    restart: bool = strawberry.field(
        default=False,
        description="Start a finished task run over (a new attempt of its Running flow run runs it again).",
    )


@strawberry.type
class RunQueries:
    @strawberry.field(extensions=needs("read"), description="Flow runs, newest first by default.")
    def flow_runs(
        self,
        info: Info,
        filter: FlowRunFilterInput | None = None,
        order_by: FlowRunOrder = FlowRunOrder.CREATED,
        descending: bool = True,
        limit: int = 100,
        offset: int = 0,
    ) -> FlowRunPage:
        f = filter or FlowRunFilterInput()
        page = info.context.store.runs.list(
            FlowRunFilter(
                ids=f.ids,
                flow_id=f.flow_id,
                flow_group_id=f.flow_group_id,
                flow_name=f.flow_name,
                states=f.states,
                state_types=f.state_types,
                labels=f.labels,
                scheduled_after=f.scheduled_after,
                scheduled_before=f.scheduled_before,
                created_after=f.created_after,
                created_before=f.created_before,
            ),
            order_by.value,
            descending,
            limit,
            offset,
        )
        return FlowRunPage(
            items=[FlowRun.of(r) for r in page.items],
            total=page.total,
            limit=page.limit,
            offset=page.offset,
            has_more=page.has_more,
        )

    @strawberry.field(extensions=needs("read", run_key=True))
    def flow_run(self, info: Info, id: strawberry.ID) -> FlowRun:
        info.context.own_run(id)
        return FlowRun.of(info.context.store.runs.get(id))

    @strawberry.field(extensions=needs("read", run_key=True), description="Task runs of a flow run (or by ids).")
    def task_runs(
        self,
        info: Info,
        filter: TaskRunFilterInput,
        order_by: TaskRunOrder = TaskRunOrder.TASK_SLUG,
        descending: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> TaskRunPage:
        if info.context.key.flow_run_id is not None:
            info.context.own_run(filter.flow_run_id or "")
        page = info.context.store.task_runs.list(
            TaskRunFilter(
                flow_run_id=filter.flow_run_id,
                ids=filter.ids,
                task_slug=filter.task_slug,
                map_index=filter.map_index,
                states=filter.states,
                state_types=filter.state_types,
            ),
            order_by.value,
            descending,
            limit,
            offset,
        )
        return TaskRunPage(
            items=[TaskRun.of(t) for t in page.items],
            total=page.total,
            limit=page.limit,
            offset=page.offset,
            has_more=page.has_more,
        )

    @strawberry.field(extensions=needs("read"))
    def task_run(self, info: Info, id: strawberry.ID) -> TaskRun:
        return TaskRun.of(info.context.store.task_runs.get(id))


@strawberry.type
class RunMutations:
    @strawberry.mutation(extensions=needs("run"), description="Create a flow run (idempotent with a key).")
    def create_flow_run(self, info: Info, input: CreateFlowRunInput) -> CreateFlowRunResult:
        run, created = info.context.store.runs.create(
            flow_id=input.flow_id,
            flow_group_id=input.flow_group_id,
            flow_name=input.flow_name,
            project=input.project,
            parameters=input.parameters,
            context=input.context,
            labels=input.labels,
            scheduled_start_time=input.scheduled_start_time,
            idempotency_key=input.idempotency_key,
            name=input.name,
        )
        return CreateFlowRunResult(flow_run=FlowRun.of(run), created=created)

    @strawberry.mutation(
        extensions=needs("run", run_key=True), description="Write flow-run states; one outcome per item."
    )
    def set_flow_run_states(self, info: Info, states: list[FlowRunStateInput]) -> list[StateWriteOutcome]:
        if info.context.key.flow_run_id is not None:
            for s in states:
                info.context.own_run(s.flow_run_id)
        # s.state is the data layer's StateWrite already (StateInput is built into one).
        results = info.context.store.runs.set_states([(s.flow_run_id, s.version, s.state) for s in states])
        return [StateWriteOutcome.of(r) for r in results]

    @strawberry.mutation(
        extensions=needs("run", run_key=True),
        description="Write task-run states (version 0 creates the task run); per item.",
    )
    def set_task_run_states(self, info: Info, states: list[TaskRunStateInput]) -> list[StateWriteOutcome]:
        # The items arrive as the data layer's TaskRunStateItem (see TaskRunStateInput).
        items: list[TaskRunStateItem] = states  # type: ignore[assignment]
        if info.context.key.flow_run_id is not None:
            for s in items:
                info.context.own_run(s.flow_run_id)
        return [StateWriteOutcome.of(r) for r in info.context.store.task_runs.set_states(items)]

    @strawberry.mutation(
        extensions=needs("run"),
        description="Cancel a flow run: Cancelled if it has not started, else Cancelling (it stops at the next task).",
    )
    def cancel_flow_run(self, info: Info, flow_run_id: strawberry.ID) -> FlowRun:
        return FlowRun.of(info.context.store.runs.cancel(flow_run_id))
