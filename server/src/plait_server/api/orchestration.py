"""Orchestration: agents (register, heartbeat, claim runs, report exits), flow-run heartbeats,
restarts, concurrency limits and slots, and the server's events."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.types import Info

from plait_server.api.context import needs
from plait_server.api.runs import FlowRun
from plait_server.data.records import (
    AgentRecord,
    ConcurrencyLimitRecord,
    RunStatus,
    ServerEventRecord,
)


@strawberry.type(description="An agent: it claims due flow runs and starts them where the code lives.")
class Agent:
    id: strawberry.ID
    name: str
    type: str
    labels: list[str]
    max_runs: int | None
    hostname: str | None
    core_version: str | None
    created: datetime
    started: datetime = strawberry.field(description="When it (re)started.")
    last_seen: datetime = strawberry.field(description="Its last heartbeat.")

    @classmethod
    def of(cls, r: AgentRecord) -> Agent:
        return cls(**{f: getattr(r, f) for f in cls.__annotations__ if f != "running"})

    @strawberry.field(description="Flow runs it holds now (Submitted, Running, Cancelling).")
    def running(self, info: Info) -> int:
        return info.context.store.agents.running_counts().get(self.id, 0)


@strawberry.type(description="Where a flow run stands.")
class RunStatusType:
    id: strawberry.ID
    state: str
    state_type: str
    version: int
    state_timestamp: datetime
    state_message: str | None

    @classmethod
    def of(cls, r: RunStatus) -> RunStatusType:
        return cls(**{f: getattr(r, f) for f in cls.__annotations__})


@strawberry.type(description="The answer to an agent's heartbeat.")
class AgentHeartbeat:
    heartbeat_interval: float = strawberry.field(description="Seconds between flow-run heartbeats.")
    runs: list[RunStatusType] = strawberry.field(description="The flow runs it named, where they stand now.")


@strawberry.type(description="The answer to a flow run's heartbeat: a Cancelling state means stop.")
class FlowRunHeartbeat:
    status: RunStatusType
    heartbeat_interval: float = strawberry.field(description="Seconds until the next heartbeat is due.")
    dead_after: float = strawberry.field(
        description="Seconds without a heartbeat after which the run is taken for dead."
    )


@strawberry.type(description="A flow run an agent claimed (now Submitted) and the key its process uses.")
class ClaimedFlowRun:
    flow_run: FlowRun
    token: str = strawberry.field(
        description="A run-scoped API key: it can only read and report this flow run, and is revoked when the run "
        "stops being under way. Pass it to the run's process; never log it."
    )


@strawberry.enum(description="tag: task runs with the tag, across flow runs; label: flow runs with the label.")
class LimitKind(Enum):
    TAG = "tag"
    LABEL = "label"


@strawberry.type(description="At most max_running at once; in_use counts them now.")
class ConcurrencyLimit:
    id: strawberry.ID
    kind: str
    name: str
    max_running: int
    in_use: int
    created: datetime
    updated: datetime

    @classmethod
    def of(cls, r: ConcurrencyLimitRecord) -> ConcurrencyLimit:
        return cls(**{f: getattr(r, f) for f in cls.__annotations__})


@strawberry.type(description="The answer to a task run asking for its tags' concurrency slots.")
class SlotGrant:
    granted: bool
    full: list[str] = strawberry.field(description="The tags whose limits are full (it must wait).")
    held: list[str] = strawberry.field(description="The tags it holds a slot of now.")


@strawberry.type(description="Something the server noticed on its own: a dead or late run, a lost agent.")
class ServerEvent:
    id: int
    kind: str
    subject_id: strawberry.ID
    flow_run_id: strawberry.ID | None
    agent_id: strawberry.ID | None
    flow_name: str | None
    state: str | None
    message: str
    created: datetime

    @classmethod
    def of(cls, r: ServerEventRecord) -> ServerEvent:
        return cls(**{f: getattr(r, f) for f in cls.__annotations__})


@strawberry.input
class RegisterAgentInput:
    name: str
    type: str = "local"
    labels: list[str] | None = None
    max_runs: int | None = None
    hostname: str | None = None
    core_version: str | None = None


@strawberry.type
class OrchestrationQueries:
    @strawberry.field(extensions=needs("read"), description="Agents, most recently seen first.")
    def agents(self, info: Info, seen_after: datetime | None = None) -> list[Agent]:
        return [Agent.of(a) for a in info.context.store.agents.list(seen_after)]

    @strawberry.field(extensions=needs("read", run_key=True), description="Concurrency limits and their use now.")
    def concurrency_limits(self, info: Info, kind: LimitKind | None = None) -> list[ConcurrencyLimit]:
        return [ConcurrencyLimit.of(r) for r in info.context.store.concurrency.list(kind.value if kind else None)]

    @strawberry.field(extensions=needs("read"), description="Server events in order (after: a previous event's id).")
    def server_events(
        self, info: Info, after: int | None = None, kinds: list[str] | None = None, limit: int = 100
    ) -> list[ServerEvent]:
        return [ServerEvent.of(e) for e in info.context.store.events.list(after=after, kinds=kinds, limit=limit)]


@strawberry.type
class OrchestrationMutations:
    @strawberry.mutation(extensions=needs("run"), description="Register an agent by name (a restart keeps its id).")
    def register_agent(self, info: Info, input: RegisterAgentInput) -> Agent:
        return Agent.of(
            info.context.store.agents.register(
                input.name, input.type, input.labels, input.max_runs, input.hostname, input.core_version
            )
        )

    @strawberry.mutation(
        extensions=needs("run"),
        description="An agent is alive, and so are the processes of these flow runs; where each run stands.",
    )
    def agent_heartbeat(
        self, info: Info, agent_id: strawberry.ID, flow_run_ids: list[strawberry.ID] | None = None
    ) -> AgentHeartbeat:
        store = info.context.store
        runs = store.agents.heartbeat(agent_id, list(flow_run_ids or []))
        return AgentHeartbeat(
            heartbeat_interval=store.policy.heartbeat_interval, runs=[RunStatusType.of(r) for r in runs]
        )

    @strawberry.mutation(
        extensions=needs("run"),
        description="Claim up to `limit` due flow runs whose labels the agent has: Scheduled -> Submitted (once each).",
    )
    def claim_flow_runs(self, info: Info, agent_id: strawberry.ID, limit: int = 10) -> list[ClaimedFlowRun]:
        return [
            ClaimedFlowRun(flow_run=FlowRun.of(c.flow_run), token=c.token)
            for c in info.context.store.agents.claim(agent_id, limit)
        ]

    @strawberry.mutation(
        extensions=needs("run", run_key=True),
        description=(
            "An agent saw a flow run's process exit; a run it did not end is settled as crashed. Send it with the "
            "run's own run-scoped key: it names the attempt (a revoked key means the attempt is over already)."
        ),
    )
    def report_flow_run_exit(
        self, info: Info, flow_run_id: strawberry.ID, exit_code: int, agent_id: strawberry.ID | None = None
    ) -> FlowRun:
        info.context.own_run(flow_run_id)
        store = info.context.store
        name = store.agents.get(agent_id).name if agent_id else None
        return FlowRun.of(store.attempts.process_exited(flow_run_id, exit_code, name, agent_id=agent_id))

    @strawberry.mutation(
        extensions=needs("run", run_key=True),
        description="A flow run's process is alive; the answer says where the run stands (Cancelling: stop).",
    )
    def heartbeat_flow_run(self, info: Info, flow_run_id: strawberry.ID) -> FlowRunHeartbeat:
        info.context.own_run(flow_run_id)
        store = info.context.store
        status = store.attempts.heartbeat(flow_run_id)
        return FlowRunHeartbeat(
            status=RunStatusType.of(status),
            heartbeat_interval=store.policy.heartbeat_interval,
            dead_after=store.policy.dead_after,
        )

    @strawberry.mutation(
        extensions=needs("run", run_key=True),
        description="Take a slot of each limited tag of a task (all or none) before the task run starts.",
    )
    def acquire_concurrency_slots(
        self, info: Info, flow_run_id: strawberry.ID, task_slug: str, map_index: int = -1
    ) -> SlotGrant:
        info.context.own_run(flow_run_id)
        answer = info.context.store.concurrency.acquire(flow_run_id, task_slug, map_index)
        return SlotGrant(granted=answer.granted, full=answer.full, held=answer.held)

    @strawberry.mutation(
        extensions=needs("run"),
        description="Restart a failed flow run: its failed task runs go back to Pending, the run to Scheduled.",
    )
    def restart_flow_run(self, info: Info, flow_run_id: strawberry.ID) -> FlowRun:
        return FlowRun.of(info.context.store.attempts.restart(flow_run_id))

    @strawberry.mutation(extensions=needs("admin"), description="Set (create or change) a concurrency limit.")
    def set_concurrency_limit(
        self, info: Info, name: str, max_running: int, kind: LimitKind = LimitKind.TAG
    ) -> ConcurrencyLimit:
        return ConcurrencyLimit.of(info.context.store.concurrency.set(name, max_running, kind.value))

    @strawberry.mutation(extensions=needs("admin"), description="Remove a concurrency limit.")
    def delete_concurrency_limit(self, info: Info, name: str, kind: LimitKind = LimitKind.TAG) -> bool:
        info.context.store.concurrency.delete(name, kind.value)
        return True
