"""Values the fuzzer (or a careless client) sends that the database cannot hold: a clear
``BAD_INPUT``, never a 500. Each test was a 500 before its fix."""

from __future__ import annotations

import uuid

from test_api import register, unique

from plait.client import FlowRunState

LATE = "9999-12-31T23:00:00-05:00"  # valid ISO 8601, but past year 9999 in UTC
EARLY = "0001-01-01T00:30:00+01:00"  # before year 1 in UTC


def test_times_out_of_range_in_utc_are_bad_input(server):
    flow = register(server, unique("times"))
    for when in (LATE, EARLY):
        answer = server.graphql(
            "mutation($i: CreateFlowRunInput!) { create_flow_run(input: $i) { created } }",
            {"i": {"flow_id": flow.id, "scheduled_start_time": when}},
        )
        (error,) = answer["errors"]
        assert error["extensions"]["code"] == "BAD_INPUT"
        assert "scheduled_start_time is out of range once in UTC" in error["message"]
        listed = server.graphql(
            "query($f: FlowRunFilterInput) { flow_runs(filter: $f) { total } }", {"f": {"created_after": when}}
        )
        assert listed["errors"][0]["extensions"]["code"] == "BAD_INPUT"


def test_a_state_time_out_of_range_refuses_that_item_only(server):
    flow = register(server, unique("state-times"))
    run = server.client().create_flow_run(flow_id=flow.id)
    answer = server.graphql(
        "mutation($s: [FlowRunStateInput!]!) { set_flow_run_states(states: $s) { ok version error { code message } } }",
        {
            "s": [
                {"flow_run_id": run.id, "version": 1, "state": {"type": "Scheduled", "start_time": LATE}},
                {"flow_run_id": run.id, "version": 1, "state": {"type": "Submitted", "timestamp": EARLY}},
                {"flow_run_id": run.id, "version": 1, "state": {"type": "Submitted"}},
            ]
        },
    )
    first, second, third = answer["data"]["set_flow_run_states"]
    assert first["error"]["code"] == second["error"]["code"] == "BAD_INPUT"
    assert "state.start_time is out of range" in first["error"]["message"]
    assert third["ok"] and third["version"] == 2


def test_a_nul_character_in_an_id_is_not_a_server_error(server):
    answer = server.graphql("query($id: ID!) { flow_run(id: $id) { id } }", {"id": f"{uuid.uuid4()}\x00"})
    (error,) = answer["errors"]
    assert error["extensions"]["code"] in ("NOT_FOUND", "BAD_INPUT")  # SQLite stores NUL; PostgreSQL refuses it


def test_a_nul_character_in_a_log_message_is_not_a_server_error(server):
    flow = register(server, unique("nul"))
    run = server.client().create_flow_run(flow_id=flow.id)
    answer = server.graphql(
        "mutation($l: [LogInput!]!) { write_run_logs(logs: $l) { count } }",
        {"l": [{"flow_run_id": run.id, "message": "before\x00after"}]},
    )
    if "errors" in answer:
        assert answer["errors"][0]["extensions"]["code"] == "BAD_INPUT"
        assert "NUL" in answer["errors"][0]["message"]
    else:
        assert answer["data"]["write_run_logs"]["count"] == 1


def test_a_nul_character_in_a_batch_of_states_is_not_a_server_error(server):
    """A batch is one statement on PostgreSQL (its rows as JSON): a value the database refuses
    fails the batch with BAD_INPUT and stores none of it, as one parameter would."""
    flow = register(server, unique("nul-batch"))
    client = server.client()
    run = client.create_flow_run(flow_id=flow.id)
    assert all(
        o.ok
        for o in client.set_flow_run_states(
            [FlowRunState(run.id, 1, {"type": "Submitted"}), FlowRunState(run.id, 2, {"type": "Running"})]
        )
    )
    states = [
        {"flow_run_id": run.id, "task_slug": "inc", "map_index": i, "version": 0, "state": {"type": "Pending"}}
        for i in range(3)
    ]
    states[1]["state"]["message"] = "before\x00after"
    answer = server.graphql(
        "mutation($s: [TaskRunStateInput!]!) { set_task_run_states(states: $s) { ok } }", {"s": states}
    )
    if "errors" in answer:
        assert answer["errors"][0]["extensions"]["code"] == "BAD_INPUT"
        assert client.task_runs(run.id)[1] == 0
    else:
        assert [o["ok"] for o in answer["data"]["set_task_run_states"]] == [True, True, True]
