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
