"""Types shared by the type families: pages, state-write results, errors."""

from __future__ import annotations

from datetime import datetime

import strawberry

from plait_server.data.records import StateWrite, StateWriteResult


@strawberry.type(description="Why one item of a batched write was refused.")
class ItemError:
    code: str = strawberry.field(description="NOT_FOUND, VERSION_CONFLICT, INVALID_TRANSITION or BAD_INPUT.")
    message: str
    rule: str | None = strawberry.field(default=None, description="The transition rule that refused it.")


@strawberry.type(description="The outcome of one item of a batched state write, in the order sent.")
class StateWriteOutcome:
    index: int
    ok: bool
    id: strawberry.ID | None = strawberry.field(description="The run's id (task runs: created by the first state).")
    flow_run_id: strawberry.ID | None
    task_slug: str | None
    map_index: int | None
    version: int | None = strawberry.field(description="The run's state version now: name it in the next write.")
    state: str | None = strawberry.field(description="The run's state now (after a refusal: the current one).")
    state_type: str | None
    error: ItemError | None

    @classmethod
    def of(cls, r: StateWriteResult) -> StateWriteOutcome:
        return cls(
            index=r.index,
            ok=r.ok,
            id=r.id,
            flow_run_id=r.flow_run_id,
            task_slug=r.task_slug,
            map_index=r.map_index,
            version=r.version,
            state=r.state,
            state_type=r.state_type,
            error=None if r.ok else ItemError(code=r.code or "BAD_INPUT", message=r.message or "", rule=r.rule),
        )


@strawberry.input(description="A state to enter. Results travel by location, never by value.")
class StateInput:
    type: str = strawberry.field(description='The state\'s name: "Running", "Success", "Submitted"...')
    message: str | None = None
    result_location: str | None = strawberry.field(default=None, description="Where the result was stored (a URI).")
    start_time: datetime | None = strawberry.field(default=None, description="Scheduled and Retrying: when due.")
    timestamp: datetime | None = strawberry.field(default=None, description="When it happened (default: now).")
    run_count: int | None = None

    def to_write(self) -> StateWrite:
        return StateWrite(
            type=self.type,
            message=self.message,
            result_location=self.result_location,
            start_time=self.start_time,
            timestamp=self.timestamp,
            run_count=self.run_count,
        )


@strawberry.type(description="A state a run entered (its history).")
class State:
    id: int
    flow_run_id: strawberry.ID
    task_run_id: strawberry.ID | None
    state: str
    state_type: str
    message: str | None
    result_location: str | None
    start_time: datetime | None
    timestamp: datetime
    version: int


def state_of(r: object) -> State:
    return State(**{f: getattr(r, f) for f in State.__annotations__})
