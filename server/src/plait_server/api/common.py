"""Types shared by the type families: pages, state-write results, errors."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import strawberry
from strawberry.types.base import StrawberryList, StrawberryOptional, has_object_definition
from strawberry.types.enum import has_enum_definition

from plait_server.data.records import StateWrite, StateWriteResult

T = TypeVar("T")


def plain_input(cls: type[T] | None = None, *, into: Callable[..., Any] | None = None) -> Any:
    """Build ``cls`` (a ``@strawberry.input``) straight from the value graphql-core coerced.

    Strawberry's generic conversion resolves each field's type annotation again for every
    item it converts; for a batched write of 100 states that was a third of the request's
    time. An input type whose fields are scalars (``JSON`` included), lists of scalars, or
    other plain inputs needs none of that: graphql-core has already checked and parsed every
    value, so the fields are taken as they are. This sets the type definition's ``from_input``,
    strawberry's hook for input types that build their own value; the schema is unchanged.

    ``into``: build this class instead (the data layer's record of the same fields, so a
    batch of 100 states is not built twice, once as input types and again as records); the
    resolvers then receive ``into`` objects. Its parameters must take every field's Python name.
    """
    if cls is None:
        return lambda klass: plain_input(klass, into=into)
    definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    fields: list[tuple[str, str, Callable[[Any], Any] | None]] = []
    for field in definition.fields:
        kind = field.type
        while isinstance(kind, StrawberryOptional):
            kind = kind.of_type
        convert: Callable[[Any], Any] | None = None
        if isinstance(kind, StrawberryList):
            item = kind.of_type
            while isinstance(item, StrawberryOptional):
                item = item.of_type
            if has_object_definition(item) or has_enum_definition(item) or isinstance(item, StrawberryList):
                raise TypeError(f"plain_input({cls.__name__}): field {field.python_name} is a list of non-scalars")
            convert = list  # a copy: graphql-core shares default values between requests
        elif has_enum_definition(kind):
            raise TypeError(f"plain_input({cls.__name__}): field {field.python_name} is an enum")
        elif has_object_definition(kind):
            nested = kind.__strawberry_definition__.from_input
            if nested is None:
                raise TypeError(f"plain_input({cls.__name__}): mark {kind.__name__} plain_input first")
            convert = _nested(kind, nested)
        fields.append((field.name or field.python_name, field.python_name, convert))
    if into is not None:
        accepted = inspect.signature(into).parameters
        missing = [python for _, python, _ in fields if python not in accepted]
        if missing:
            raise TypeError(f"plain_input({cls.__name__}, into={into.__name__}): it takes no {', '.join(missing)}")

    def from_input(klass: type[T], value: Mapping[str, Any], context: Any) -> Any:
        kwargs = {}
        for graphql_name, python_name, convert in fields:
            if graphql_name in value:
                v = value[graphql_name]
                kwargs[python_name] = v if convert is None or v is None else convert(v)
        return (into or klass)(**kwargs)

    # It uses neither its class nor its context; what it does is kept for compiled builders
    # (api/execution.py's _compile_built): its fields and what it builds.
    from_input.plain = True  # type: ignore[attr-defined]
    from_input.fields = fields  # type: ignore[attr-defined]
    from_input.builds = into or cls  # type: ignore[attr-defined]
    definition.from_input = from_input
    return cls


def _nested(kind: type, build: Callable[..., Any]) -> Callable[[Any], Any]:
    return lambda value: build(kind, value, None)


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


@plain_input(into=StateWrite)  # resolvers get the data layer's StateWrite
@strawberry.input(description="A state to enter. Results travel by location, never by value.")
class StateInput:
    type: str = strawberry.field(description='The state\'s name: "Running", "Success", "Submitted"...')
    message: str | None = None
    result_location: str | None = strawberry.field(default=None, description="Where the result was stored (a URI).")
    start_time: datetime | None = strawberry.field(default=None, description="Scheduled and Retrying: when due.")
    timestamp: datetime | None = strawberry.field(default=None, description="When it happened (default: now).")
    run_count: int | None = None


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
