"""Agents' claims, run-scoped keys, heartbeats, crashes (zombie killer, Lazarus), restarts,
concurrency limits and server events, on the data layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from plait_server.data import FlowRunFilter, StateWrite, TaskRunFilter, TaskRunStateItem
from plait_server.errors import InvalidTransition
from plait_server.services import Watchdog

from plait import Flow, Parameter, task
from plait.registration import flow_metadata


@task(tags=["db"], max_retries=1)
def load(n):
    return n


@task
def report(x):
    return x


def register(store, name: str, labels=None):
    with Flow(name) as flow:
        report(load(Parameter("n", default=1)))
    return store.flows.register(
        metadata=flow_metadata(flow), storage={"type": "file", "path": "/srv/x.py", "flow": name}, labels=labels
    ).flow


def due_runs(store, flow, count: int, labels=None):
    past = datetime.now(UTC) - timedelta(seconds=5)
    return [
        store.runs.create(flow_id=flow.id, scheduled_start_time=past, labels=labels, idempotency_key=f"k{i}")[0]
        for i in range(count)
    ]


def start(store, run_id: str) -> int:
    run = store.runs.get(run_id)
    (result,) = store.runs.set_states([(run_id, run.version, StateWrite("Running"))])
    assert result.ok, result
    return result.version


def test_two_agents_racing_claim_each_run_once(store):
    flow = register(store, "race")
    runs = due_runs(store, flow, 40)
    agents = [store.agents.register(f"agent-{i}") for i in range(4)]
    claimed: list[list] = [[] for _ in agents]
    barrier = threading.Barrier(len(agents))

    def poll(i: int) -> None:
        barrier.wait()
        while True:
            got = store.agents.claim(agents[i].id, limit=3)
            if not got:
                return
            claimed[i].extend(got)

    threads = [threading.Thread(target=poll, args=(i,)) for i in range(len(agents))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [c.flow_run.id for batch in claimed for c in batch]
    assert sorted(ids) == sorted(r.id for r in runs)  # every run claimed, none twice
    for batch, agent in zip(claimed, agents, strict=True):
        for c in batch:
            assert c.flow_run.state == "Submitted" and c.flow_run.agent_id == agent.id
    history = store.runs.history(runs[0].id)
    assert [s.state for s in history] == ["Scheduled", "Submitted"]


def test_agents_claim_only_due_runs_whose_labels_they_have(store):
    flow = register(store, "labelled")
    plain = due_runs(store, flow, 1)[0]
    gpu = store.runs.create(flow_id=flow.id, labels=["gpu"], scheduled_start_time=datetime.now(UTC))[0]
    later = store.runs.create(flow_id=flow.id, scheduled_start_time=datetime.now(UTC) + timedelta(hours=1))[0]
    cpu_agent = store.agents.register("cpu", labels=["cpu"])
    gpu_agent = store.agents.register("gpu", labels=["gpu", "cpu"])
    assert [c.flow_run.id for c in store.agents.claim(cpu_agent.id, 10)] == [plain.id]
    assert [c.flow_run.id for c in store.agents.claim(gpu_agent.id, 10)] == [gpu.id]
    assert store.agents.claim(gpu_agent.id, 10) == []
    assert store.runs.get(later.id).state == "Scheduled"


def test_a_label_concurrency_limit_holds_runs_back_at_claim_time(store):
    flow = register(store, "limited")
    runs = due_runs(store, flow, 5, labels=["warehouse"])
    store.concurrency.set("warehouse", 2, kind="label")
    agent = store.agents.register("one", labels=["warehouse"])
    first = store.agents.claim(agent.id, 10)
    assert len(first) == 2
    assert store.agents.claim(agent.id, 10) == []
    # One ends: one more may start.
    done = first[0].flow_run
    start(store, done.id)
    run = store.runs.get(done.id)
    store.runs.set_states([(done.id, run.version, StateWrite("Success"))])
    assert len(store.agents.claim(agent.id, 10)) == 1
    assert store.concurrency.get("warehouse", "label").in_use == 2
    assert len(runs) == 5


def test_runs_held_back_by_a_label_limit_do_not_hide_the_runs_behind_them(store):
    flow = register(store, "starved")
    past = datetime.now(UTC) - timedelta(minutes=10)
    for i in range(300):  # many runs of a limited label, due first
        store.runs.create(flow_id=flow.id, labels=["gpu"], scheduled_start_time=past, idempotency_key=f"g{i}")
    plain = store.runs.create(flow_id=flow.id, scheduled_start_time=datetime.now(UTC) - timedelta(seconds=1))[0]
    store.concurrency.set("gpu", 1, kind="label")
    agent = store.agents.register("busy", labels=["gpu"])
    claimed = {c.flow_run.id for c in store.agents.claim(agent.id, 5)}
    assert len(claimed) == 2 and plain.id in claimed


def test_a_run_scoped_key_works_while_its_run_is_under_way_and_is_revoked_after(store):
    flow = register(store, "token")
    run = due_runs(store, flow, 1)[0]
    agent = store.agents.register("token-agent")
    (claimed,) = store.agents.claim(agent.id, 1)
    key = store.keys.authenticate(claimed.token)
    assert key is not None and key.flow_run_id == run.id and key.scope == "run"
    assert claimed.token not in {k.name for k in store.keys.list()}  # run keys are not listed
    version = start(store, run.id)
    store.runs.set_states([(run.id, version, StateWrite("Success"))])
    assert store.keys.authenticate(claimed.token) is None


def test_a_dead_run_is_rescheduled_then_failed_and_its_task_runs_ended(store):
    store.policy.max_reschedules = 1
    flow = register(store, "dies")
    run = due_runs(store, flow, 1)[0]
    agent = store.agents.register("mortal")
    store.agents.claim(agent.id, 1)
    start(store, run.id)
    store.task_runs.set_states([TaskRunStateItem(run.id, "load", 0, StateWrite("Running", run_count=1))])
    store.concurrency.set("db", 1)
    assert store.concurrency.acquire(run.id, "load").granted

    outcome = store.attempts.crashed(run.id, "its process died", by="test")
    assert outcome.state == "Scheduled" and outcome.task_runs_ended == 1
    after = store.runs.get(run.id)
    assert after.state == "Scheduled" and after.reschedule_count == 1 and "Rescheduled" in after.state_message
    (task_run,) = store.task_runs.list(TaskRunFilter(flow_run_id=run.id)).items
    assert task_run.state == "Retrying"  # it has a retry left and the run goes on
    assert store.concurrency.get("db").in_use == 0  # its slot is released

    # The next attempt dies too: no reschedule left, so the run fails.
    store.agents.claim(agent.id, 1)
    start(store, run.id)
    store.task_runs.set_states([TaskRunStateItem(run.id, "load", task_run.version, StateWrite("Running", run_count=2))])
    outcome = store.attempts.crashed(run.id, "its process died again", by="test")
    assert outcome.state == "Failed"
    (task_run,) = store.task_runs.list(TaskRunFilter(flow_run_id=run.id)).items
    assert task_run.state == "Failed" and "No heartbeat" in task_run.state_message
    store.events.wait_emitted(10)
    kinds = [e.kind for e in store.events.list() if e.flow_run_id == run.id]
    assert kinds == ["flow_run_rescheduled", "flow_run_crashed"]
    # A crash of a run that is no longer under way changes nothing.
    assert store.attempts.crashed(run.id, "again", by="test") is None


def test_the_watchdog_settles_runs_whose_heartbeats_stopped_and_spares_living_ones(store):
    from plait_server.db import models
    from sqlalchemy import update

    flow = register(store, "watched")
    dead, alive = due_runs(store, flow, 2)
    agent = store.agents.register("watched-agent")
    store.agents.claim(agent.id, 2)
    start(store, dead.id)
    start(store, alive.id)
    store.attempts.heartbeat(alive.id)
    now = datetime.now(UTC)
    long_ago = now - timedelta(seconds=store.policy.dead_after + 1)
    run_t = models.FlowRun.__table__
    store.write(lambda conn: conn.execute(update(run_t).where(run_t.c.id == dead.id).values(heartbeat=long_ago)))
    # A watchdog that just started gives everybody a fresh allowance (the server was down).
    assert Watchdog(store, started=now).run_pass(now).crashed == 0
    stats = Watchdog(store, started=now - timedelta(hours=1)).run_pass(now)
    assert stats.crashed == 1
    assert store.runs.get(dead.id).state == "Scheduled"
    assert store.runs.get(alive.id).state == "Running"


def test_late_runs_and_lost_agents_are_announced_once(store):
    flow = register(store, "late")
    store.runs.create(flow_id=flow.id, scheduled_start_time=datetime.now(UTC) - timedelta(seconds=600))
    store.agents.register("quiet")
    watchdog = Watchdog(store, started=datetime.now(UTC) - timedelta(hours=1))
    now = datetime.now(UTC) + timedelta(seconds=store.policy.agent_lost_after + 1)
    first = watchdog.run_pass(now)
    again = Watchdog(store, started=datetime.now(UTC) - timedelta(hours=1)).run_pass(now)  # another replica
    assert (first.late, first.lost_agents) == (1, 1)
    assert (again.late, again.lost_agents) == (0, 0)
    store.events.wait_emitted(10)
    kinds = sorted(e.kind for e in store.events.list())
    assert kinds == ["agent_lost", "flow_run_late"]


def test_restart_resets_failed_task_runs_and_requeues_the_run(store):
    flow = register(store, "restartable")
    run = due_runs(store, flow, 1)[0]
    agent = store.agents.register("restarter")
    store.agents.claim(agent.id, 1)
    start(store, run.id)
    store.task_runs.set_states(
        [
            TaskRunStateItem(run.id, "n", 0, StateWrite("Success")),
            TaskRunStateItem(run.id, "load", 0, StateWrite("Success", result_location="/r/load.pkl")),
            TaskRunStateItem(run.id, "report", 0, StateWrite("Failed", message="boom")),
        ]
    )
    with pytest.raises(InvalidTransition, match="only a finished run"):
        store.attempts.restart(run.id)
    current = store.runs.get(run.id)
    store.runs.set_states([(run.id, current.version, StateWrite("Failed"))])
    restarted = store.attempts.restart(run.id)
    assert restarted.state == "Scheduled" and restarted.end_time is None
    states = {t.task_slug: t.state for t in store.task_runs.list(TaskRunFilter(flow_run_id=run.id)).items}
    assert states == {"n": "Success", "load": "Success", "report": "Pending"}
    assert [c.flow_run.id for c in store.agents.claim(agent.id, 5)] == [run.id]
    # A run that succeeded has nothing to restart.
    version = start(store, run.id)
    store.runs.set_states([(run.id, version, StateWrite("Success"))])
    with pytest.raises(InvalidTransition, match="nothing to restart"):
        store.attempts.restart(run.id)


def test_a_new_attempt_restarts_finished_task_runs_only_while_its_flow_run_runs(store):
    flow = register(store, "again")
    run = due_runs(store, flow, 1)[0]
    version = start(store, run.id)
    (done,) = store.task_runs.set_states([TaskRunStateItem(run.id, "n", 0, StateWrite("Success"))])
    again = TaskRunStateItem(run.id, "n", done.version, StateWrite("Pending"), restart=True)
    (ok,) = store.task_runs.set_states([again])
    assert ok.ok and ok.state == "Pending"
    store.runs.set_states([(run.id, version, StateWrite("Success"))])
    (refused,) = store.task_runs.set_states(
        [TaskRunStateItem(run.id, "n", ok.version, StateWrite("Pending"), restart=True)]
    )
    assert not refused.ok and refused.rule == "TaskRunRestartsOnlyInLiveFlowRuns"


def test_task_concurrency_slots_across_flow_runs(store):
    flow = register(store, "slots")
    a, b, c = due_runs(store, flow, 3)
    for run in (a, b, c):
        start(store, run.id)
    store.concurrency.set("db", 2)
    assert store.concurrency.acquire(a.id, "load").granted
    assert store.concurrency.acquire(a.id, "load").granted  # asking again is harmless
    assert store.concurrency.acquire(b.id, "load").granted
    answer = store.concurrency.acquire(c.id, "load")
    assert not answer.granted and answer.full == ["db"]
    assert store.concurrency.acquire(c.id, "report").granted  # no limited tag: no slot needed
    # a's task run finishes: its slot goes back, c gets one.
    store.task_runs.set_states(
        [
            TaskRunStateItem(a.id, "load", 0, StateWrite("Running")),
            TaskRunStateItem(a.id, "load", 1, StateWrite("Success")),
        ]
    )
    assert store.concurrency.acquire(c.id, "load").granted
    assert store.concurrency.get("db").in_use == 2
    # A flow run that ends gives back every slot its task runs held.
    run = store.runs.get(b.id)
    store.runs.set_states([(b.id, run.version, StateWrite("Cancelled"))])
    assert store.concurrency.get("db").in_use == 1
    with pytest.raises(InvalidTransition):
        store.concurrency.acquire(b.id, "load")  # its flow run is over: its tasks must not start
    assert len(store.runs.list(FlowRunFilter(flow_id=flow.id)).items) == 3
