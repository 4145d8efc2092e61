"""The API against a real server process, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from plait.client import FlowRunState, TaskRunState
from plait.errors import ServerError


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def register(server, name, constant="42", labels=None):
    from plait.registration import flow_metadata

    return server.client().register_flow(
        metadata=flow_metadata(_flow(name, constant)),
        storage={"type": "file", "path": f"/srv/{name}.py", "flow": name},
        labels=labels,
    )


def _flow(name, constant="42"):
    from plait import Flow, Parameter, task

    @task
    def add(x, y):
        return x + y

    with Flow(name) as flow:
        n = Parameter("n", default=1)
        add(n, int(constant))
    return flow


def state(name, **extra):
    return {"type": name, **extra}


def test_registering_twice_keeps_one_version_and_a_change_makes_another(server):
    name = unique("etl")
    first = register(server, name)
    again = register(server, name)
    assert first.changed and first.version == 1
    assert not again.changed and again.id == first.id and again.version == 1
    changed = register(server, name, constant="43")  # the value is not sent, but the structure is the same...
    assert not changed.changed  # ...so a new constant value is not a new version (values never reach the server)
    labelled = register(server, name, labels=["gpu"])
    assert labelled.changed and labelled.version == 2 and labelled.flow_group_id == first.flow_group_id
    client = server.client()
    assert client.flow(first.id).archived and not client.flow(labelled.id).archived
    assert [f.version for f in client.flows(name=name)] == [2]


def test_fifty_concurrent_creates_with_one_key_make_one_run(server):
    flow = register(server, unique("idem"))
    barrier = threading.Barrier(50)

    def create(_):
        client = server.client()
        barrier.wait()
        return client.create_flow_run(flow_id=flow.id, idempotency_key="2024-06-01T00:00")

    with ThreadPoolExecutor(50) as pool:
        runs = list(pool.map(create, range(50)))
    assert len({r.id for r in runs}) == 1
    assert sum(r.created_now for r in runs) == 1
    found, total = server.client().flow_runs(flow_id=flow.id)
    assert total == 1 and found[0].id == runs[0].id


def test_state_writes_check_versions_and_rules_per_item(server):
    client = server.client()
    flow = register(server, unique("states"))
    run = client.create_flow_run(flow_id=flow.id)
    assert (run.state, run.version) == ("Scheduled", 1)
    # A task run cannot start before its flow run runs.
    (early,) = client.set_task_run_states([TaskRunState(run.id, "add", 0, state("Running"))])
    assert not early.ok and early.code == "INVALID_TRANSITION" and early.rule == "TaskRunsStartInRunningFlowRuns"
    out = client.set_flow_run_states(
        [
            FlowRunState(run.id, 1, state("Submitted")),
            FlowRunState(run.id, 2, state("Running")),
            FlowRunState(run.id, 2, state("Success")),  # stale: somebody else's view
            FlowRunState(str(uuid.uuid4()), 1, state("Running")),
            FlowRunState(run.id, 3, state("Nonsense")),
        ]
    )
    assert [o.ok for o in out] == [True, True, False, False, False]
    assert out[2].code == "VERSION_CONFLICT" and (out[2].state, out[2].version) == ("Running", 3)
    assert out[3].code == "NOT_FOUND"
    assert out[4].code == "BAD_INPUT" and "Unknown state 'Nonsense'" in out[4].message
    tasks = client.set_task_run_states(
        [
            TaskRunState(run.id, "add", 0, state("Pending")),
            TaskRunState(run.id, "add", 1, state("Running")),
            TaskRunState(run.id, "add", 2, state("Success", result_location="s3://bucket/add.json")),
            *[TaskRunState(run.id, "mapped", 0, state("Running"), map_index=i) for i in range(3)],
        ]
    )
    assert all(t.ok for t in tasks) and tasks[2].version == 3
    (done,) = client.set_flow_run_states([FlowRunState(run.id, 3, state("Success"))])
    assert done.ok
    (reopened,) = client.set_flow_run_states([FlowRunState(run.id, 4, state("Running"))])
    assert reopened.code == "INVALID_TRANSITION" and reopened.rule == "FinishedIsFinal"
    (late,) = client.set_task_run_states([TaskRunState(run.id, "mapped", 1, state("Success"), map_index=0)])
    assert late.code == "INVALID_TRANSITION" and late.rule == "TaskRunsFrozenInFinishedFlowRuns"
    task_runs, total = client.task_runs(run.id)
    assert total == 4
    add = next(t for t in task_runs if t.task_slug == "add")
    assert (add.state, add.version, add.result_location, add.run_count) == ("Success", 3, "s3://bucket/add.json", 1)
    history = server.graphql("query($id: ID!) { flow_run(id: $id) { states { state version } } }", {"id": run.id})[
        "data"
    ]["flow_run"]["states"]
    assert [(s["state"], s["version"]) for s in history] == [
        ("Scheduled", 1),
        ("Submitted", 2),
        ("Running", 3),
        ("Success", 4),
    ]


def test_two_claims_of_one_run_one_wins(server):
    client = server.client()
    run = client.create_flow_run(flow_id=register(server, unique("claim")).id)
    barrier = threading.Barrier(8)

    def claim(_):
        c = server.client()
        barrier.wait()
        return c.set_flow_run_states([FlowRunState(run.id, 1, state("Submitted"))])[0]

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(claim, range(8)))
    assert sum(o.ok for o in outcomes) == 1
    assert {o.code for o in outcomes if not o.ok} <= {"VERSION_CONFLICT", "INVALID_TRANSITION"}


def test_cancel_a_waiting_run_ends_it_and_a_running_one_goes_cancelling(server):
    client = server.client()
    flow = register(server, unique("cancel"))
    waiting = client.cancel_flow_run(client.create_flow_run(flow_id=flow.id).id)
    assert waiting.state == "Cancelled"
    running = client.create_flow_run(flow_id=flow.id)
    client.set_flow_run_states(
        [FlowRunState(running.id, 1, state("Submitted")), FlowRunState(running.id, 2, state("Running"))]
    )
    assert client.cancel_flow_run(running.id).state == "Cancelling"
    (start,) = client.set_task_run_states([TaskRunState(running.id, "add", 0, state("Running"))])
    assert start.rule == "TaskRunsStartInRunningFlowRuns"
    with pytest.raises(ServerError) as info:
        client.cancel_flow_run(waiting.id)
    assert info.value.code == "INVALID_TRANSITION"


def test_ten_thousand_log_lines_come_back_in_order(server):
    client = server.client()
    run = client.create_flow_run(flow_id=register(server, unique("logs")).id)
    records = [
        {
            "flow_run_id": run.id,
            "message": f"line {i}",
            "level": 20 if i % 10 else 40,
            "task_slug": "add",
            "map_index": i % 7 - 1,
        }
        for i in range(10_000)
    ]
    assert client.write_run_logs(records) == 10_000
    seen, cursor, more = [], None, True
    while more:
        lines, cursor, more = client.logs(run.id, after=cursor)
        seen.extend(line.message for line in lines)
    assert seen == [f"line {i}" for i in range(10_000)]
    errors, _, _ = client.logs(run.id, min_level=40, limit=5)
    assert [e.message for e in errors] == ["line 0", "line 10", "line 20", "line 30", "line 40"]
    too_many = [{"flow_run_id": run.id, "message": "x"}] * 1001
    answer = server.graphql("mutation($l: [LogInput!]!) { write_run_logs(logs: $l) { count } }", {"l": too_many})
    assert answer["errors"][0]["extensions"]["code"] == "BAD_INPUT"


def test_scopes_and_revocation(server):
    client = server.client()
    _read_id, read_key = client.create_api_key(unique("reader"), "read")
    run_id, run_key = client.create_api_key(unique("agent"), "run")
    flow = register(server, unique("scopes"))
    reader, agent = server.client(read_key), server.client(run_key)
    assert reader.flow(flow.id).id == flow.id
    with pytest.raises(ServerError) as info:
        reader.create_flow_run(flow_id=flow.id)
    assert info.value.code == "FORBIDDEN"
    run = agent.create_flow_run(flow_id=flow.id)
    with pytest.raises(ServerError) as info:
        agent.register_flow(metadata={"name": "x", "tasks": []}, storage={"type": "none"})
    assert info.value.code == "FORBIDDEN"
    with pytest.raises(ServerError) as info:
        agent.create_api_key("more", "admin")
    assert info.value.code == "FORBIDDEN"
    client.revoke_api_key(run_id)
    with pytest.raises(ServerError) as info:
        agent.flow_run(run.id)
    assert info.value.code == "UNAUTHENTICATED"
    me = server.graphql("{ me { scope last_used } }", key=read_key)["data"]["me"]
    assert me["scope"] == "read" and me["last_used"] is not None
    log = server.log.read_text()
    # The admin key is printed once, at the first start; no key ever appears in the request logs.
    assert read_key not in log and run_key not in log and log.count(server.admin_key) == 1


def test_bad_requests_get_codes_never_a_500(server):
    url = f"{server.url}/graphql"
    auth = {"Authorization": f"Bearer {server.admin_key}"}
    cases = [
        (requests.post(url, json={"query": "{ me { id } }"}), 401, "UNAUTHENTICATED"),
        (
            requests.post(url, json={"query": "{ me { id } }"}, headers={"Authorization": "Bearer plait_nope"}),
            401,
            "UNAUTHENTICATED",
        ),
        (requests.post(url, data=b"{not json", headers=auth), 400, "BAD_INPUT"),
        (requests.post(url, json=[{"query": "{ me { id } }"}], headers=auth), 400, "BAD_INPUT"),
        (requests.post(url, json={"query": 5}, headers=auth), 400, "BAD_INPUT"),
        (requests.post(url, json={"query": "{ nope }"}, headers=auth), 200, "BAD_INPUT"),
        (requests.post(url, json={"query": "{ flow(id: 1) { id "}, headers=auth), 200, "BAD_INPUT"),
        (
            requests.post(
                url,
                json={"query": "query($x: Int!) { flow_runs(limit: $x) { total } }", "variables": {"x": "many"}},
                headers=auth,
            ),
            200,
            "BAD_INPUT",
        ),
        (requests.post(url, json={"query": "{ flow_runs(limit: 100000) { total } }"}, headers=auth), 200, "BAD_INPUT"),
        (requests.post(url, json={"query": '{ flow(id: "nope") { id } }'}, headers=auth), 200, "NOT_FOUND"),
        (requests.post(url, data=b"x" * (11 * 1024 * 1024), headers=auth), 413, "BAD_INPUT"),
        (requests.get(url, headers=auth), 405, "BAD_INPUT"),
    ]
    deep = "{ flow_runs { items { flow { tasks { id } } } } }"
    nested = "{ a: me { id } " + " ".join(f"b{i}: me {{ id }}" for i in range(40)) + " }"
    for query in (deep.replace("tasks { id }", "tasks { id }"), nested, "{ me { id } }" + " " * 10 + "#" + "x" * 10):
        response = requests.post(url, json={"query": query}, headers=auth)
        cases.append((response, 200, None))
    for response, status, code in cases:
        assert response.status_code == status, (response.status_code, response.text[:300])
        assert "Traceback" not in response.text
        if code is not None:
            assert response.json()["errors"][0]["extensions"]["code"] == code, response.text[:300]
    too_deep = "{ flow_runs { items { flow { tasks { id } } } } }".replace("{ id }", "{ id }")
    response = requests.post(url, json={"query": nested}, headers=auth)
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_INPUT"  # more than 30 aliases
    assert requests.get(f"{server.url}/health").json()["status"] == "ok"
    _ = too_deep


def test_everything_is_still_there_after_a_restart(fresh_server):
    fresh_server.start()
    client = fresh_server.client()
    flow = register(fresh_server, unique("restart"))
    run = client.create_flow_run(flow_id=flow.id, idempotency_key="k")
    client.write_run_logs([{"flow_run_id": run.id, "message": "kept"}])
    key = fresh_server.admin_key
    fresh_server.stop()
    fresh_server.start()
    assert fresh_server.admin_key == key  # no new key on a database that has keys
    again = fresh_server.client()
    assert again.flow_run(run.id).state == "Scheduled"
    assert again.create_flow_run(flow_id=flow.id, idempotency_key="k").id == run.id
    assert [line.message for line in again.logs(run.id)[0]] == ["kept"]
