"""The orchestration API against a real server, on SQLite and PostgreSQL: run-scoped keys,
claims, heartbeats, concurrency limits, restarts, and the commands that use them."""

from __future__ import annotations

import subprocess
import uuid

import pytest
from plait_server.testing import PLAIT

from plait.client import FlowRunState, TaskRunState
from plait.errors import ServerError


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def register(server, name: str, labels=None):
    from plait import Flow, Parameter, task
    from plait.registration import flow_metadata

    @task(tags=["db"])
    def load(n):
        return n

    with Flow(name) as flow:
        load(Parameter("n", default=1))
    return server.client().register_flow(
        metadata=flow_metadata(flow), storage={"type": "file", "path": f"/srv/{name}.py", "flow": name}, labels=labels
    )


def claim_one(server, flow, label: str):
    client = server.client()
    run = client.create_flow_run(flow_id=flow.id)
    agent = client.register_agent(unique("agent"), labels=[label])
    claimed = client.claim_flow_runs(agent.id, 10)
    assert [c.flow_run.id for c in claimed] == [run.id]
    return claimed[0], agent


def test_a_run_scoped_key_reads_and_reports_its_own_run_only(fresh_server):
    server = fresh_server.start()
    label = unique("lbl")
    flow = register(server, unique("scoped"), labels=[label])
    claimed, _ = claim_one(server, flow, label)
    other = server.client().create_flow_run(flow_id=flow.id)
    mine = server.client(claimed.token)
    run = mine.run_to_execute(claimed.flow_run.id)
    assert run.state == "Submitted" and run.storage["type"] == "file" and run.fingerprint == flow.fingerprint
    (ok,) = mine.set_flow_run_states([FlowRunState(run.id, run.version, {"type": "Running"})])
    assert ok.ok
    (task_ok,) = mine.set_task_run_states([TaskRunState(run.id, "load", 0, {"type": "Running"})])
    assert task_ok.ok
    assert mine.heartbeat_flow_run(run.id).status.state == "Running"
    assert mine.acquire_concurrency_slots(run.id, "load") == (True, [])
    assert mine.write_run_logs([{"flow_run_id": run.id, "message": "hello", "level": 20, "logger": "t"}]) == 1
    # Another run, or anything else, is out of its reach.
    for attempt in (
        lambda: mine.flow_run(other.id),
        lambda: mine.set_flow_run_states([FlowRunState(other.id, other.version, {"type": "Submitted"})]),
        lambda: mine.heartbeat_flow_run(other.id),
        lambda: mine.flows(),
        lambda: mine.create_flow_run(flow_id=flow.id),
        lambda: mine.claim_flow_runs(str(uuid.uuid4()), 1),
        lambda: mine.write_run_logs([{"flow_run_id": other.id, "message": "x", "level": 20, "logger": "t"}]),
    ):
        with pytest.raises(ServerError) as caught:
            attempt()
        assert caught.value.code == "FORBIDDEN", caught.value
    # Once the run is over, its key is refused.
    current = mine.flow_run(run.id)
    mine.set_task_run_states([TaskRunState(run.id, "load", task_ok.version, {"type": "Success"})])
    mine.set_flow_run_states([FlowRunState(run.id, current.version, {"type": "Success"})])
    with pytest.raises(ServerError) as caught:
        mine.flow_run(run.id)
    assert caught.value.code == "UNAUTHENTICATED"


def test_a_read_key_cannot_claim_and_bad_orchestration_input_is_a_clear_error(server):
    admin = server.client()
    _, read_key = admin.create_api_key(unique("reader"), "read")
    reader = server.client(read_key)
    with pytest.raises(ServerError) as caught:
        reader.register_agent(unique("sneaky"))
    assert caught.value.code == "FORBIDDEN"
    agent = admin.register_agent(unique("agent"))
    for call, code, words in (
        (lambda: admin.claim_flow_runs(agent.id, 0), "BAD_INPUT", "limit must be between 1 and 100"),
        (lambda: admin.claim_flow_runs(str(uuid.uuid4()), 1), "NOT_FOUND", "No agent with id"),
        (lambda: admin.agent_heartbeat(str(uuid.uuid4()), []), "NOT_FOUND", "register it first"),
        (lambda: admin.heartbeat_flow_run(str(uuid.uuid4())), "NOT_FOUND", "No flow run"),
        (lambda: admin.restart_flow_run(str(uuid.uuid4())), "NOT_FOUND", "No flow run"),
        (lambda: admin.set_concurrency_limit("", 2), "BAD_INPUT", "name must be a non-empty string"),
        (lambda: admin.set_concurrency_limit("db", -1), "BAD_INPUT", "whole number from 0"),
        (lambda: admin.delete_concurrency_limit(unique("none")), "NOT_FOUND", "No tag concurrency limit"),
    ):
        with pytest.raises(ServerError) as caught:
            call()
        assert caught.value.code == code and words in str(caught.value), caught.value


def test_agents_heartbeats_claims_and_limits_through_the_api(fresh_server):
    server = fresh_server.start()
    client = server.client()
    label = unique("gpu")
    flow = register(server, unique("api"), labels=[label])
    runs = [client.create_flow_run(flow_id=flow.id) for _ in range(3)]
    client.set_concurrency_limit(label, 2, kind="label")
    agent = client.register_agent(unique("agent"), labels=[label], max_runs=5)
    again = client.register_agent(agent.name, labels=[label], max_runs=7)
    assert again.id == agent.id and again.max_runs == 7  # a restarted agent keeps its record
    claimed = client.claim_flow_runs(agent.id, 10)
    assert len(claimed) == 2 and {c.flow_run.id for c in claimed} < {r.id for r in runs}
    interval, statuses = client.agent_heartbeat(agent.id, [c.flow_run.id for c in claimed])
    assert interval > 0 and {s.state for s in statuses} == {"Submitted"}
    seen = {a.id: a for a in client.agents()}[agent.id]
    assert seen.running == 2 and seen.labels == [label]
    limits = {(c.kind, c.name): c for c in client.concurrency_limits()}
    assert limits[("label", label)].in_use == 2
    # The agent saw a process die: the run is rescheduled (reported with the run's own key).
    dead = claimed[0]
    server.client(dead.token).report_flow_run_exit(dead.flow_run.id, -9, agent.id)
    after = client.flow_run(dead.flow_run.id)
    assert after.state == "Scheduled" and "killed by signal 9" in after.state_message
    client.delete_concurrency_limit(label, kind="label")


@pytest.mark.parametrize("backend", ["sqlite"])  # the commands talk to the API: the database does not matter
def test_the_commands_set_limits_restart_runs_and_list_agents(server, tmp_path):
    env = server.env()
    env["PLAIT__SERVER__URL"], env["PLAIT__SERVER__API_KEY"] = server.url, server.admin_key
    tag = unique("db")

    def plait(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*PLAIT, *args], capture_output=True, text=True, env=env, timeout=60)

    done = plait("concurrency-limit", "set", tag, "3")
    assert done.returncode == 0 and f"At most 3 task runs with tag '{tag}' at once" in done.stdout
    listed = plait("concurrency-limit", "list")
    assert tag in listed.stdout
    bad = plait("concurrency-limit", "set", tag, "many")
    assert bad.returncode == 2 and "is not a valid integer" in bad.stderr
    missing = plait("flow-run", "restart", str(uuid.uuid4()))
    assert missing.returncode == 2 and "No flow run with id" in missing.stderr and "Traceback" not in missing.stderr
    flow = register(server, unique("cli"))
    run = server.client().create_flow_run(flow_id=flow.id)
    unfinished = plait("flow-run", "restart", run.id)
    assert unfinished.returncode == 2 and "only a finished run can be restarted" in unfinished.stderr
    agents = plait("agent", "list")
    assert agents.returncode == 0 and "agents" in agents.stdout
    assert plait("concurrency-limit", "delete", tag).returncode == 0
