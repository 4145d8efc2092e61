"""The schema's executor (``plait_server.api.execution``) answers exactly as strawberry's stock one.

Its shortcuts (compiled variable coercion, plain scalar fields read without graphql-core's
per-field machinery) must never change an answer: every document here runs through both
executors and the answers (data and errors, with their messages, paths and locations) must be
equal. The documents cover what the shortcuts skip and what they must hand back to
graphql-core: aliases, fragments, directives, ``__typename``, nulls in non-null fields, values
a scalar refuses, attributes that are exceptions, variables that are missing, defaulted,
mistyped, nested, lists given as single values, one-of inputs.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest
import strawberry
from plait_server.api.execution import FastExecutor, executor_class
from strawberry.scalars import JSON


@strawberry.enum
class Color(Enum):
    RED = "RED"
    BLUE = "BLUE"


@strawberry.type
class Item:
    id: strawberry.ID
    name: str
    count: int
    ratio: float | None
    color: Color
    when: datetime
    data: JSON
    tags: list[str]
    maybe: int | None
    label: str

    @strawberry.field
    def computed(self, factor: int = 2) -> int:
        return self.count * factor


@strawberry.type
class Wrapper:
    id: strawberry.ID
    part: Item | None
    must: Item


def item(i: int, **changes: Any) -> Item:
    values: dict[str, Any] = {
        "id": f"id-{i}",
        "name": f"item {i}",
        "count": i,
        "ratio": i / 4,
        "color": Color.RED if i % 2 else Color.BLUE,
        "when": datetime(2024, 6, 1, 12, i, tzinfo=UTC),
        "data": {"i": i, "nested": [1, {"a": None}]},
        "tags": [f"t{i}", "x"],
        "maybe": None if i % 3 else i,
        "label": "plain",
    }
    values.update(changes)
    return Item(**values)


@strawberry.input
class Inner:
    x: int
    y: str = "default y"
    when: datetime | None = None


@strawberry.input
class Outer:
    inners: list[Inner]
    name: str | None = None
    color: Color = Color.RED
    ids: list[strawberry.ID] | None = None
    data: JSON | None = None
    flags: list[bool] = strawberry.field(default_factory=lambda: [True])


@strawberry.input(one_of=True)
class Choice:
    a: int | None = strawberry.UNSET
    b: str | None = strawberry.UNSET


def describe(value: Any) -> Any:
    """What a resolver received, as JSON (so both executors' conversions can be compared)."""
    if isinstance(value, list):
        return [describe(v) for v in value]
    if isinstance(value, Enum):
        return f"enum {value.value}"
    if isinstance(value, datetime):
        return f"datetime {value.isoformat()}"
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return {type(value).__name__: {k: describe(v) for k, v in vars(value).items()}}
    if value is strawberry.UNSET:
        return "UNSET"
    return value


@strawberry.type
class Query:
    @strawberry.field
    def items(self, n: int = 3) -> list[Item]:
        return [item(i) for i in range(n)]

    @strawberry.field
    def bad_null(self) -> Item:
        return item(1, name=None)  # a non-null field that is null

    @strawberry.field
    def bad_list(self) -> list[Item]:
        return [item(1), item(2, label=None), item(3)]

    @strawberry.field
    def too_big(self) -> Item:
        return item(1, count=2**40)  # Int cannot serialize it

    @strawberry.field
    def not_finite(self) -> Item:
        return item(1, ratio=math.nan)

    @strawberry.field
    def an_exception(self) -> Item:
        return item(1, label=ValueError("this attribute is an exception"))

    @strawberry.field
    def wrong_enum(self) -> Item:
        return item(1, color="GREEN")

    @strawberry.field
    def wrapped(self) -> list[Wrapper]:
        return [Wrapper(id=str(i), part=item(i) if i % 2 else None, must=item(i + 10)) for i in range(4)]

    @strawberry.field
    def wrapped_bad(self) -> list[Wrapper | None]:
        return [Wrapper(id="1", part=None, must=item(1)), None, Wrapper(id="3", part=None, must=None)]

    @strawberry.field
    def echo(self, input: Outer) -> JSON:
        return describe(input)

    @strawberry.field
    def echo_many(self, inputs: list[Outer], count: int | None = None) -> JSON:
        return {"inputs": describe(inputs), "count": count}

    @strawberry.field
    def choose(self, choice: Choice) -> JSON:
        return describe(choice)

    @strawberry.field
    def ident(self, id: strawberry.ID, when: datetime | None = None) -> JSON:
        return [id, describe(when)]


def schemas() -> tuple[strawberry.Schema, strawberry.Schema]:
    config = strawberry.schema.config.StrawberryConfig(auto_camel_case=False)
    stock = strawberry.Schema(query=Query, config=config)
    fast = strawberry.Schema(query=Query, config=config, execution_context_class=executor_class())
    return stock, fast


STOCK, FAST = schemas()


def answer(schema: strawberry.Schema, document: str, variables: Any = None, operation: str | None = None) -> Any:
    result = schema.execute_sync(document, variable_values=variables, operation_name=operation)
    errors = sorted((e.formatted for e in result.errors or []), key=repr)
    return {"data": result.data, "errors": errors}


ALL_FIELDS = "id name count ratio color when data tags maybe label computed"

DOCUMENTS: list[tuple[str, Any, str | None]] = [
    ("{ items { " + ALL_FIELDS + " } }", None, None),
    ("{ items(n: 5) { __typename first: name name again: name computed(factor: 10) id } }", None, None),
    ("{ items { ...F ... on Item { count } } } fragment F on Item { id tags }", None, None),
    (
        "query($yes: Boolean!, $no: Boolean!) { items { id name @include(if: $yes) count @skip(if: $yes) "
        "label @include(if: $no) } }",
        {"yes": True, "no": False},
        None,
    ),
    ("{ wrapped { id part { name count when } must { id color tags data } } }", None, None),
    ("{ wrapped { id part { name computed } } }", None, None),
    ("{ wrapped_bad { id part { name } must { name } } }", None, None),
    ("{ wrapped_bad { id } }", None, None),
    ("{ bad_null { id name } }", None, None),
    ("{ bad_list { id label } }", None, None),
    ("{ too_big { id count } }", None, None),
    ("{ not_finite { id ratio } }", None, None),
    ("{ an_exception { id label } }", None, None),
    ("{ wrong_enum { id color } }", None, None),
    ("{ items { name } } query Other { items(n: 1) { id } }", None, None),  # two operations, no name
    ("query A { items { name } } query B { items(n: 1) { id } }", None, "B"),
]

ECHO = "query($i: Outer!) { echo(input: $i) }"
ECHO_MANY = "query($i: [Outer!]!, $c: Int) { echo_many(inputs: $i, count: $c) }"
ECHO_DEFAULT = "query($i: Outer! = {inners: [{x: 7}]}) { echo(input: $i) }"
CHOOSE = "query($c: Choice!) { choose(choice: $c) }"
IDENT = "query($id: ID!, $w: DateTime) { ident(id: $id, when: $w) }"

VARIABLES: list[tuple[str, Any]] = [
    (ECHO, {"i": {"inners": [{"x": 1}, {"x": 2, "y": "two", "when": "2024-06-01T12:00:00+02:00"}]}}),
    (ECHO, {"i": {"inners": [], "name": None, "color": "BLUE", "ids": ["a", 7], "data": {"deep": [[[1]]]}}}),
    (ECHO, {"i": {"inners": [{"x": 1}], "flags": [False, True]}}),
    (ECHO, {"i": {"inners": {"x": 3}}}),  # a single value for a list: a list of one
    (ECHO, {"i": {"inners": [{"x": 1}], "ids": "one"}}),
    (ECHO, {"i": {"inners": [{"x": "1"}]}}),  # a string for an Int
    (ECHO, {"i": {"inners": [{"x": 1.0}]}}),  # an integral float for an Int
    (ECHO, {"i": {"inners": [{"x": 1.5}]}}),
    (ECHO, {"i": {"inners": [{"x": True}]}}),
    (ECHO, {"i": {"inners": [{"x": 2**31}]}}),
    (ECHO, {"i": {"inners": [{"y": "no x"}]}}),  # a required field missing
    (ECHO, {"i": {"inners": [{"x": 1, "z": 2}]}}),  # an unknown field
    (ECHO, {"i": {"inners": [None]}}),  # null in a list of non-null
    (ECHO, {"i": {"inners": [{"x": 1}], "color": "GREEN"}}),
    (ECHO, {"i": {"inners": [{"x": 1, "when": "yesterday"}]}}),
    (ECHO, {"i": {"inners": [{"x": None}]}}),
    (ECHO, {"i": None}),
    (ECHO, {"i": "a string"}),
    (ECHO, {"i": [{"inners": []}]}),
    (ECHO, {}),  # the variable missing
    (ECHO, {"i": {"inners": [{"x": 1}]}, "extra": 1}),
    (ECHO_MANY, {"i": [{"inners": [{"x": 1}]}, {"inners": [{"x": 2}], "name": "b"}], "c": 3}),
    (ECHO_MANY, {"i": [{"inners": [{"x": 1}]}]}),  # a nullable variable not given
    (ECHO_MANY, {"i": [{"inners": [{"x": 1}]}], "c": None}),
    (ECHO_MANY, {"i": [{"inners": [{"x": 1}]}, {"inners": [{"x": "bad"}]}], "c": 1}),
    (ECHO_MANY, {"i": ({"inners": [{"x": 1}]},)}),
    (ECHO_DEFAULT, {}),
    (ECHO_DEFAULT, {"i": {"inners": [{"x": 8}]}}),
    (CHOOSE, {"c": {"a": 1}}),
    (CHOOSE, {"c": {"b": "x"}}),
    (CHOOSE, {"c": {"a": 1, "b": "x"}}),
    (CHOOSE, {"c": {}}),
    (IDENT, {"id": 12, "w": "2024-06-01T12:00:00Z"}),
    (IDENT, {"id": "abc", "w": None}),
    (IDENT, {"id": 1.5}),
    (IDENT, {"id": None}),
]


def test_the_schema_runs_on_the_fast_executor():
    from plait_server.api.schema import build_schema

    assert issubclass(build_schema().execution_context_class, FastExecutor)


@pytest.mark.parametrize(("document", "variables", "operation"), DOCUMENTS)
def test_output_is_the_same_as_strawberrys_own(document, variables, operation):
    assert answer(FAST, document, variables, operation) == answer(STOCK, document, variables, operation)


@pytest.mark.parametrize(("document", "variables"), VARIABLES)
def test_variables_are_coerced_as_graphql_core_does(document, variables):
    assert answer(FAST, document, variables) == answer(STOCK, document, variables)


@pytest.mark.parametrize(("document", "variables"), VARIABLES)
def test_coerced_variables_are_graphql_cores(document, variables):
    """What resolvers get through ``info.variable_values``, defaults filled in, is the same."""
    from graphql import parse
    from graphql.execution import Executor

    def coerced(executor: type) -> Any:
        try:
            built = executor.build(FAST._schema, parse(document), raw_variable_values=variables)
        except Exception as exc:  # strawberry's one-of check raises from graphql-core's coercion
            return type(exc), str(exc)
        if isinstance(built, list):
            return sorted(e.message for e in built)
        return built.variable_values.coerced, {k: s.value for k, s in built.variable_values.sources.items()}

    assert coerced(FAST.execution_context_class) == coerced(Executor)


def test_defaults_shared_between_requests_are_not_changed_by_one():
    # A field's default list is graphql-core's, the same object for every request.
    first = answer(FAST, ECHO, {"i": {"inners": [{"x": 1}]}})
    again = answer(FAST, ECHO, {"i": {"inners": [{"x": 2}]}})
    assert first["data"]["echo"]["Outer"]["flags"] == again["data"]["echo"]["Outer"]["flags"] == [True]


def test_the_common_documents_take_the_shortcut():
    """The batched writes and the pages clients send must not fall back to the slow path
    (nothing else would notice: the answers are the same either way)."""
    from graphql import parse
    from plait_server.api.schema import build_schema

    import plait.client as client

    schema = build_schema()
    executor = schema.execution_context_class
    write = "mutation($s: [TaskRunStateInput!]!) { set_task_run_states(states: $s) { " + client._OUTCOME_FIELDS + " } }"
    states = [
        {"flow_run_id": "r", "task_slug": "t", "map_index": i, "version": 0, "state": {"type": "Pending"}}
        for i in range(100)
    ]
    assert executor._fast_start(schema._schema, parse(write), None, {"s": states}) is not None
    assert executor._fast_start(schema._schema, parse(write), None, {"s": [{"bad": 1}]}) is None


def test_the_real_schema_answers_the_same(store):
    """The hot documents of ``plait.client`` on real data, through both executors."""
    from plait_server.api.context import Context
    from plait_server.api.schema import build_schema
    from plait_server.data.records import StateWrite
    from plait_server.data.runs import TaskRunStateItem

    import plait.client as client
    from plait import Flow, task
    from plait.registration import flow_metadata

    @task
    def inc(x):
        return x + 1

    with Flow("same-answers") as flow:
        inc.map([1, 2, 3])
    registered = store.flows.register(
        project="default", metadata=flow_metadata(flow), storage={"type": "none"}, labels=["a"]
    )
    run, _ = store.runs.create(flow_id=registered.flow.id)
    store.runs.set_states([(run.id, 1, StateWrite("Submitted")), (run.id, 2, StateWrite("Running"))])
    store.task_runs.set_states(
        [TaskRunStateItem(run.id, "inc", 0, StateWrite("Pending"), map_index=i) for i in range(5)]
    )
    record, _secret = store.keys.create("reader", "admin")
    fast = build_schema()
    stock = build_schema()
    stock.execution_context_class = strawberry.schema.schema.StrawberryGraphQLCoreExecutionContext
    documents = [
        (
            "query($f: TaskRunFilterInput!, $l: Int!, $o: Int!) { task_runs(filter: $f, limit: $l, offset: $o) "
            "{ items { " + client._TASK_RUN_FIELDS + " } total has_more } }",
            {"f": {"flow_run_id": run.id}, "l": 3, "o": 1},
        ),
        ("query($l: Int!) { flow_runs(limit: $l) { items { " + client._RUN_FIELDS + " } total } }", {"l": 5}),
        (
            "query($id: ID!) { flow_run(id: $id) { id labels parameters task_run_counts { state count } } }",
            {"id": run.id},
        ),
        ("query($id: ID!) { flow_run(id: $id) { id } }", {"id": "no-such-run"}),
        (
            "mutation($s: [TaskRunStateInput!]!) { set_task_run_states(states: $s) { "
            + client._OUTCOME_FIELDS
            + " } }",
            {
                "s": [
                    {
                        "flow_run_id": run.id,
                        "task_slug": "inc",
                        "map_index": 0,
                        "version": 7,
                        "state": {"type": "Running"},
                    }
                ]
            },
        ),
        ("{ me { id name scope created revoked flow_run_id } transition_rules { rule runs } }", None),
    ]
    for document, variables in documents:
        answers = []
        for schema in (fast, stock):
            result = schema.execute_sync(document, variable_values=variables, context_value=Context(store, record))
            answers.append((result.data, [e.formatted for e in result.errors or []]))
        assert answers[0] == answers[1], document
