"""Prepared operations (``plait_server.api.prepared``) answer exactly as the generic path.

The HTTP endpoint answers a known, simple document of a hot root field (``create_flow_run``)
without strawberry's executor. Every answer must be the one the generic path gives: the same
data, the same errors (message, path, locations, code), on SQLite and PostgreSQL; anything the
prepared form does not handle (a refused permission, a variable graphql-core must coerce, a
document with fragments, directives, literals...) must go to the generic path untouched.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from graphql import parse
from plait_server.api.app import _format_error
from plait_server.api.context import Context
from plait_server.api.prepared import Prepared
from plait_server.api.schema import build_schema

import plait.client as client
from plait import Flow, Parameter, task
from plait.registration import flow_metadata

CREATE = (
    "mutation($input: CreateFlowRunInput!) { create_flow_run(input: $input) { created flow_run { "
    + client._RUN_FIELDS_OWN
    + " } } }"
)


def _input(**given: Any) -> dict[str, Any]:
    """The variables the client sends: every field, None where not given."""
    fields = (
        "flow_id flow_group_id flow_name project parameters context labels scheduled_start_time idempotency_key name"
    )
    return {"input": {f: given.get(f) for f in fields.split()}}


@pytest.fixture
def setup(store):
    @task
    def add(x, y):
        return x + y

    with Flow("prepared-flow") as flow:
        n = Parameter("n", default=1)
        needed = Parameter("needed", required=False)
        add(n, needed)
    registered = store.flows.register(metadata=flow_metadata(flow), storage={"type": "none"}, labels=["x", "a"])
    admin, _ = store.keys.create("admin", "admin")
    reader, _ = store.keys.create("reader", "read")
    schema = build_schema()
    return store, schema, registered.flow, admin, reader


def generic(schema, store, key, document: str, variables: dict[str, Any], operation: str | None = None):
    result = schema.execute_sync(
        document, variable_values=variables, context_value=Context(store, key), operation_name=operation
    )
    return _shape(result.data, result.errors)


def prepared(schema, store, key, document: str, variables: dict[str, Any], operation: str | None = None):
    """The prepared path's answer, or None when it hands the request to the generic path."""
    found = schema.documents.prepared(document, operation)
    if found is None:
        return None
    answer = found.run(Context(store, key), variables)
    if answer is None:
        return None
    return _shape(answer["data"], answer.get("errors"))


def _shape(data: Any, errors: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"data": data}
    if errors:
        out["errors"] = [_format_error(e) for e in errors]
    return out


def both(schema, store, key, variables, document: str = CREATE, operation: str | None = None):
    """The generic answer, then the prepared one (the document is known by then)."""
    first = generic(schema, store, key, document, variables, operation)
    second = prepared(schema, store, key, document, variables, operation)
    return first, second


def test_the_clients_document_is_prepared(setup):
    store, schema, flow, admin, _ = setup
    assert schema.documents.prepared(CREATE, None) is None  # not seen yet: the generic path first
    generic(schema, store, admin, CREATE, _input(flow_id=flow.id))
    assert schema.documents.prepared(CREATE, None) is not None


def test_a_run_created_through_the_prepared_path(setup):
    store, schema, flow, admin, _ = setup
    generic(schema, store, admin, CREATE, _input(flow_id=flow.id))
    when = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC).isoformat()
    answer = prepared(
        schema,
        store,
        admin,
        CREATE,
        _input(flow_id=flow.id, parameters={"n": 3}, context={"c": [1]}, scheduled_start_time=when, name="mine"),
    )
    assert answer is not None and "errors" not in answer
    created = answer["data"]["create_flow_run"]
    assert created["created"] is True
    run = created["flow_run"]
    # Read back through the generic path: the stored run is the one answered.
    stored = generic(
        schema, store, admin, "query($id: ID!) { flow_run(id: $id) { " + client._RUN_FIELDS_OWN + " } }", run
    )
    assert stored == {"data": {"flow_run": run}}
    assert run["name"] == "mine" and run["parameters"] == {"n": 3} and run["labels"] == ["a", "x"]
    assert run["scheduled_start_time"] == "2031-05-06T07:08:09+00:00"
    assert [s.state for s in store.runs.history(run["id"])] == ["Scheduled"]
    assert store.runs.get(run["id"]).context == {"c": [1]}


def test_an_existing_key_gives_the_same_answer(setup):
    store, schema, flow, admin, _ = setup
    variables = _input(flow_id=flow.id, idempotency_key="k-1", labels=["z"])
    generic(schema, store, admin, CREATE, variables)  # creates it
    first, second = both(schema, store, admin, variables)
    assert first["data"]["create_flow_run"]["created"] is False
    assert first == second


@pytest.mark.parametrize(
    "given",
    [
        {"flow_id": "no-such-flow"},
        {"parameters": {"nope": 1}},
        {"parameters": [1, 2]},
        {"context": [1]},
        {"labels": ["", "b"]},
        {"idempotency_key": "k" * 201},
        {"name": "n" * 201},
        {"scheduled_start_time": "9999-12-31T23:00:00-05:00"},
    ],
)
def test_refusals_are_the_same(setup, given):
    store, schema, flow, admin, _ = setup
    variables = _input(**{"flow_id": flow.id, **given})
    first, second = both(schema, store, admin, variables)
    assert first["data"] is None and first["errors"][0]["extensions"]["code"] in ("BAD_INPUT", "NOT_FOUND")
    assert second == first  # the same refusal, from the prepared path


def test_an_archived_flow_is_refused_the_same(setup):
    store, schema, flow, admin, _ = setup
    changed = flow_metadata(_other_flow())
    store.flows.register(metadata=changed, storage={"type": "none"})  # archives the first version
    first, second = both(schema, store, admin, _input(flow_id=flow.id))
    assert "archived" in first["errors"][0]["message"]
    assert second == first


def _other_flow() -> Flow:
    @task
    def other(x):
        return x

    with Flow("prepared-flow") as flow:
        other(Parameter("n", default=2))
    return flow


def test_what_the_prepared_path_leaves_to_the_generic_one(setup, store):
    _, schema, flow, admin, reader = setup
    ok = _input(flow_id=flow.id)
    generic(schema, store, admin, CREATE, ok)
    # A read key: the permission is refused by the generic path, with its error.
    assert prepared(schema, store, reader, CREATE, ok) is None
    refused = generic(schema, store, reader, CREATE, ok)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # A run-scoped key (given to one flow run's process) may not create runs.
    run_key = store.keys.get(admin.id)
    run_key.flow_run_id = "some-run"
    assert prepared(schema, store, run_key, CREATE, ok) is None
    # A value the compiled coercer leaves to graphql-core (an unknown input field).
    bad = {"input": {**ok["input"], "unknown": 1}}
    assert prepared(schema, store, admin, CREATE, bad) is None
    assert generic(schema, store, admin, CREATE, bad)["errors"][0]["extensions"]["code"] == "BAD_INPUT"
    # Another operation name than the document's.
    named = CREATE.replace("mutation(", "mutation Create(", 1)
    generic(schema, store, admin, named, ok, "Create")
    assert prepared(schema, store, admin, named, ok, "Create") is not None
    assert prepared(schema, store, admin, named, ok, "Other") is None


@pytest.mark.parametrize(
    "document",
    [
        # A fragment, an inline fragment, a directive, __typename, a field with arguments.
        "mutation($i: CreateFlowRunInput!) { create_flow_run(input: $i) { ...F } } "
        "fragment F on CreateFlowRunResult { created }",
        "mutation($i: CreateFlowRunInput!) { create_flow_run(input: $i) { ... on CreateFlowRunResult { created } } }",
        "mutation($i: CreateFlowRunInput!, $s: Boolean!) { create_flow_run(input: $i) { created @skip(if: $s) } }",
        "mutation($i: CreateFlowRunInput!) { create_flow_run(input: $i) { __typename created } }",
        "mutation($i: CreateFlowRunInput!) { create_flow_run(input: $i) { flow_run { states { state } } } }",
        "mutation($i: CreateFlowRunInput!) { create_flow_run(input: $i) { flow_run { flow { name } } } }",
        # Two root fields; an argument written as a literal; a variable with a default.
        "mutation($i: CreateFlowRunInput!) { a: create_flow_run(input: $i) { created } "
        "b: create_flow_run(input: $i) { created } }",
        'mutation { create_flow_run(input: {flow_id: "x"}) { created } }',
        'mutation($i: CreateFlowRunInput! = {flow_id: "x"}) { create_flow_run(input: $i) { created } }',
        # The same response name twice (graphql-core merges them), another root field.
        "mutation($i: CreateFlowRunInput!) { create_flow_run(input: $i) { created created } }",
        "mutation($id: ID!) { cancel_flow_run(flow_run_id: $id) { id } }",
    ],
)
def test_documents_that_are_not_prepared(document):
    schema = build_schema()
    assert Prepared.of(schema, parse(document)) is None


def test_aliases_and_partial_selections_answer_the_same(setup):
    store, schema, flow, admin, _ = setup
    document = (
        "mutation M($input: CreateFlowRunInput!) { made: create_flow_run(input: $input) "
        "{ new: created flow_run { ident: id labels parameters } } }"
    )
    assert Prepared.of(schema, parse(document)) is not None
    variables = _input(flow_id=flow.id, idempotency_key="alias-key")
    generic(schema, store, admin, document, variables)
    first, second = both(schema, store, admin, variables, document)
    assert list(first["data"]["made"]) == ["new", "flow_run"]
    assert second == first


# --- set_task_run_states: a batch of states, answered by a list of outcomes -----------------------

STATES = "mutation($s: [TaskRunStateInput!]!) { set_task_run_states(states: $s) { " + client._OUTCOME_FIELDS + " } }"
ALL_FIELDS = (
    "mutation($s: [TaskRunStateInput!]!) { set_task_run_states(states: $s) { index ok id flow_run_id task_slug "
    "map_index version state state_type error { code message rule } } }"
)


def _flow_run(store, flow, *states: str) -> str:
    from plait_server.data import StateWrite

    run, _ = store.runs.create(flow_id=flow.id)
    for version, state in enumerate(states, start=1):
        assert all(r.ok for r in store.runs.set_states([(run.id, version, StateWrite(state))]))
    return run.id


def _items(run_id: str, version: int, state: str, n: int = 3, **extra: Any) -> dict[str, Any]:
    """The variables the client sends for n task runs of task "add"."""
    return {
        "s": [
            {"flow_run_id": run_id, "task_slug": "add", "map_index": i, "version": version, "state": {"type": state}}
            | extra
            for i in range(n)
        ]
    }


def _same_but_ids(answer: dict[str, Any], twin: dict[str, Any], run_ids: tuple[str, str]) -> None:
    """``answer`` and ``twin`` (the same writes on a twin flow run) agree but for ids."""
    ids: dict[str, str] = {run_ids[0]: run_ids[1]}
    for a, b in zip(answer["data"]["set_task_run_states"], twin["data"]["set_task_run_states"], strict=True):
        if a.get("id") is not None:
            ids[a["id"]] = b["id"]

    def swap(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        if isinstance(value, str):
            for old, new in ids.items():
                value = value.replace(old, new)
        return value

    assert swap(answer) == twin


def test_the_clients_batch_document_is_prepared_and_writes_the_same(setup):
    store, schema, flow, admin, _ = setup
    a, b = _flow_run(store, flow, "Submitted", "Running"), _flow_run(store, flow, "Submitted", "Running")
    assert schema.documents.prepared(STATES, None) is None
    for version, state in enumerate(("Pending", "Running", "Success")):
        first = generic(schema, store, admin, STATES, _items(b, version, state))
        second = prepared(schema, store, admin, STATES, _items(a, version, state))
        assert second is not None, "the client's document goes the prepared way once seen"
        assert all(o["ok"] for o in second["data"]["set_task_run_states"]), second
        _same_but_ids(second, first, (a, b))
    # What was stored is the same too.
    assert store.task_runs.counts(a) == store.task_runs.counts(b) == {"Success": 3}


@pytest.mark.parametrize("document", [STATES, ALL_FIELDS])
def test_batch_refusals_answer_the_same(setup, document):
    """Per-item refusals (version conflict, refused transition, unknown flow run, bad values),
    a whole batch refused (too many items), items of several kinds in one batch."""
    store, schema, flow, admin, _ = setup
    running = _flow_run(store, flow, "Submitted", "Running")
    waiting = _flow_run(store, flow)  # Scheduled: its task runs may not start
    generic(schema, store, admin, document, _items(running, 0, "Pending"))  # the task runs exist, version 1
    mixed = {
        "s": [
            *_items(running, 0, "Running")["s"],  # version conflicts: they are at version 1
            *_items(waiting, 0, "Running", n=2)["s"],  # refused: the flow run is not running
            *_items("no-such-run", 0, "Pending", n=1)["s"],
            {"flow_run_id": running, "task_slug": "add", "map_index": -5, "version": 0, "state": {"type": "Pending"}},
            {"flow_run_id": running, "task_slug": "add", "map_index": 7, "version": 0, "state": {"type": "Nope"}},
            {"flow_run_id": running, "task_slug": "", "map_index": 8, "version": 0, "state": {"type": "Pending"}},
        ]
    }
    for variables in (mixed, _items(running, 1, "Pending", n=1001)):
        first, second = both(schema, store, admin, variables, document)
        assert second is not None
        assert second == first
    codes = [o["error"]["code"] for o in first_items(schema, store, admin, document, mixed)]
    assert codes == ["VERSION_CONFLICT"] * 3 + ["INVALID_TRANSITION"] * 2 + ["NOT_FOUND"] + ["BAD_INPUT"] * 3
    too_many = generic(schema, store, admin, document, _items(running, 1, "Pending", n=1001))
    assert too_many["data"] is None and too_many["errors"][0]["extensions"]["code"] == "BAD_INPUT"


def first_items(schema, store, key, document, variables):
    return prepared(schema, store, key, document, variables)["data"]["set_task_run_states"]


def test_batch_values_the_coercer_handles_answer_the_same(setup):
    """Timestamps, messages, run counts, result locations and restarts in the batch."""
    store, schema, flow, admin, _ = setup
    a, b = _flow_run(store, flow, "Submitted", "Running"), _flow_run(store, flow, "Submitted", "Running")
    when = "2031-05-06T07:08:09+00:00"
    steps = [
        (0, {"type": "Running", "timestamp": when, "run_count": 2, "message": "m"}, {}),
        (1, {"type": "Success", "result_location": "s3://b/k", "start_time": None}, {}),
        (2, {"type": "Pending"}, {"restart": True}),
    ]
    generic(schema, store, admin, STATES, _items(b, 0, "Pending", n=1))  # the document is known
    generic(schema, store, admin, STATES, _items(a, 0, "Pending", n=1))
    for version, state, extra in steps:
        variables_a = {"s": [{**_items(a, version + 1, "x", n=1)["s"][0], "state": state, **extra}]}
        variables_b = {"s": [{**_items(b, version + 1, "x", n=1)["s"][0], "state": state, **extra}]}
        first = generic(schema, store, admin, STATES, variables_b)
        second = prepared(schema, store, admin, STATES, variables_a)
        assert second is not None
        _same_but_ids(second, first, (a, b))
    (task_run,) = store.task_runs.list(store_filter(a)).items
    history = store.task_runs.history(task_run.id)
    assert [s.state for s in history] == ["Pending", "Running", "Success", "Pending"]
    assert history[1].timestamp == datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)


def store_filter(run_id: str):
    from plait_server.data.runs import TaskRunFilter

    return TaskRunFilter(flow_run_id=run_id)


def test_what_the_batch_path_leaves_to_the_generic_one(setup):
    store, schema, flow, admin, reader = setup
    run = _flow_run(store, flow, "Submitted", "Running")
    ok = _items(run, 0, "Pending")
    generic(schema, store, admin, STATES, ok)
    # A read key: refused by the generic path, with its error.
    assert prepared(schema, store, reader, STATES, ok) is None
    assert generic(schema, store, reader, STATES, ok)["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # Values the compiled coercer leaves to graphql-core: a string version, a missing field, a
    # null item; graphql-core refuses them.
    for bad in (
        {"s": [{**ok["s"][0], "version": "1"}]},
        {"s": [{k: v for k, v in ok["s"][0].items() if k != "state"}]},
        {"s": [None]},
    ):
        assert prepared(schema, store, admin, STATES, bad) is None
        assert generic(schema, store, admin, STATES, bad)["errors"][0]["extensions"]["code"] == "BAD_INPUT"
    # A single item instead of a list: graphql-core takes it as a list of one.
    single = {"s": {**ok["s"][0], "version": 1, "state": {"type": "Running"}}}
    assert prepared(schema, store, admin, STATES, single) is None
    answer = generic(schema, store, admin, STATES, single)
    assert answer["data"]["set_task_run_states"][0]["ok"] is True


def test_a_run_scoped_key_answers_the_same(setup):
    """A run-scoped key writes its own flow run's task runs; another run's are refused (FORBIDDEN)."""
    store, schema, flow, admin, _ = setup
    own, other = _flow_run(store, flow, "Submitted", "Running"), _flow_run(store, flow, "Submitted", "Running")
    twin = _flow_run(store, flow, "Submitted", "Running")
    run_key = store.keys.get(admin.id)
    run_key.scope = "run"
    generic(schema, store, admin, STATES, _items(twin, 0, "Pending"))  # the document is known
    run_key.flow_run_id = twin
    first = generic(schema, store, run_key, STATES, _items(twin, 1, "Running"))
    run_key.flow_run_id = own
    second = prepared(schema, store, run_key, STATES, _items(own, 0, "Pending"))
    assert second is not None and all(o["ok"] for o in second["data"]["set_task_run_states"])
    refused = both(schema, store, run_key, _items(other, 0, "Pending"), STATES)
    assert refused[0]["data"] is None and refused[0]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert refused[1] == refused[0]
    assert first["data"]["set_task_run_states"][0]["ok"]


@pytest.mark.parametrize(
    "items",
    [
        [{"flow_run_id": "r", "task_slug": "t", "map_index": 2, "version": 1, "state": {"type": "Running"}}],
        # Optional fields left out (defaults: map_index -1, restart false), nulls, every state field.
        [{"flow_run_id": "r", "task_slug": "t", "version": 0, "state": {"type": "Pending", "message": None}}],
        [
            {
                "flow_run_id": "r",
                "task_slug": "t",
                "map_index": 0,
                "version": 3,
                "restart": True,
                "state": {
                    "type": "Retrying",
                    "message": "m",
                    "result_location": "s3://b/k",
                    "start_time": "2031-05-06T07:08:09+02:00",
                    "timestamp": "2031-05-06T07:08:09Z",
                    "run_count": 4,
                },
            }
        ]
        * 3,
        [],
    ],
)
def test_batches_are_built_in_one_pass_as_in_two(items):
    """``_compile_built`` (coerce and build each item at once) gives what the compiled coercer
    and then each item's ``from_input`` give."""
    from graphql import GraphQLList, GraphQLNonNull
    from plait_server.api.execution import _compile, _compile_built

    schema = build_schema()
    item_type = schema._schema.type_map["TaskRunStateInput"]
    variable_type = GraphQLNonNull(GraphQLList(GraphQLNonNull(item_type)))
    build = item_type.extensions["strawberry-definition"].from_input
    two_steps = [build(None, v, None) for v in _compile(variable_type)(items)]
    assert _compile_built(variable_type)(items) == two_steps


@pytest.mark.parametrize(
    "items",
    [
        None,
        {"flow_run_id": "r", "task_slug": "t", "version": 1, "state": {"type": "Running"}},  # not a list
        [None],
        [{"flow_run_id": "r", "task_slug": "t", "version": 1}],  # no state
        [{"flow_run_id": "r", "task_slug": "t", "version": 1, "state": {"type": "Running"}, "extra": 1}],
        [{"flow_run_id": "r", "task_slug": "t", "version": "1", "state": {"type": "Running"}}],
        [{"flow_run_id": "r", "task_slug": "t", "version": 1, "state": {"type": "Running", "timestamp": "never"}}],
    ],
)
def test_what_the_one_pass_builder_leaves_to_graphql_core(items):
    from graphql import GraphQLList, GraphQLNonNull
    from plait_server.api.execution import _compile, _compile_built, _Slow

    schema = build_schema()
    variable_type = GraphQLNonNull(GraphQLList(GraphQLNonNull(schema._schema.type_map["TaskRunStateInput"])))
    with pytest.raises(_Slow):
        _compile_built(variable_type)(items)
    with pytest.raises(_Slow):
        _compile(variable_type)(items)
