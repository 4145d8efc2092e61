"""The web UI's queries (``plait_server.data.summaries``) and its live feed, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from plait_server.data import StateWrite, TaskRunStateItem
from plait_server.data.logs import LogInput
from plait_server.db import models
from plait_server.db.models import utcnow
from plait_server.ui.live import FlowRunFeed

from plait import Flow, Parameter, task
from plait.registration import flow_metadata


@task
def one(x):
    return x


@task
def many(x):
    return x


def register(store, name="ui-data"):
    with Flow(name) as flow:
        many.map(one(Parameter("n", default=1)))
    return store.flows.register(metadata=flow_metadata(flow), storage={"type": "none"}).flow


def finished_run(store, flow, when, final="Success"):
    run, _ = store.runs.create(flow_id=flow.id, scheduled_start_time=when)
    results = store.runs.set_states(
        [
            (run.id, 1, StateWrite("Submitted", timestamp=when)),
            (run.id, 2, StateWrite("Running", timestamp=when)),
            (run.id, 3, StateWrite(final, timestamp=when + timedelta(seconds=5))),
        ]
    )
    assert all(r.ok for r in results)
    return run


def running_run(store, flow):
    run, _ = store.runs.create(flow_id=flow.id)
    assert all(
        r.ok for r in store.runs.set_states([(run.id, 1, StateWrite("Submitted")), (run.id, 2, StateWrite("Running"))])
    )
    return run


def test_dashboard_summaries(store):
    flow = register(store)
    now = utcnow()
    hour = (now - timedelta(hours=3)).replace(minute=10, second=0, microsecond=0)
    finished_run(store, flow, hour)
    finished_run(store, flow, hour + timedelta(minutes=5), "Failed")
    last_failed = finished_run(store, flow, hour + timedelta(minutes=40), "Failed")
    late, _ = store.runs.create(flow_id=flow.id, scheduled_start_time=now - timedelta(minutes=30))
    soon, _ = store.runs.create(flow_id=flow.id, scheduled_start_time=now + timedelta(minutes=30))

    s = store.summaries
    counts = {
        (c.hour, c.state_type): c.count for c in s.runs_by_hour(now - timedelta(hours=24), now + timedelta(hours=1))
    }
    start = hour.replace(minute=0)
    assert counts[(start, "SUCCESS")] == 1 and counts[(start, "FAILED")] == 2
    late_hour = (now - timedelta(minutes=30)).replace(minute=0, second=0, microsecond=0)
    assert counts[(late_hour, "SCHEDULED")] >= 1

    (failing,) = s.failing_flows(now - timedelta(hours=24))
    assert (failing.flow_name, failing.failures, failing.last_run_id) == ("ui-data", 2, last_failed.id)

    late_runs, total = s.late_runs(timedelta(minutes=5))
    assert [r.id for r in late_runs] == [late.id] and total == 1
    assert [r.id for r in s.upcoming_runs()] == [soon.id]

    last = s.last_runs([flow.flow_group_id], per_group=2)[flow.flow_group_id]
    assert last[0].id == late.id and len(last) == 2
    assert [r.id for r in s.next_runs([flow.flow_group_id])[flow.flow_group_id]] == [soon.id]


def test_task_groups_fold_mapped_children_with_counts(store):
    flow = register(store, "ui-groups")
    run = running_run(store, flow)
    t0 = utcnow()
    items = [TaskRunStateItem(run.id, "one", 0, StateWrite("Running", timestamp=t0))]
    items += [
        TaskRunStateItem(run.id, "many", 0, StateWrite("Running", timestamp=t0 + timedelta(seconds=i)), map_index=i)
        for i in range(5)
    ]
    store.task_runs.set_states(items)
    store.task_runs.set_states(
        [
            TaskRunStateItem(run.id, "many", 1, StateWrite("Success", timestamp=t0 + timedelta(seconds=9)), map_index=i)
            for i in range(3)
        ]
    )
    groups = {g.slug: g for g in store.summaries.task_groups(run.id)}
    assert groups["one"].run.state == "Running" and groups["one"].children == 0
    many_group = groups["many"]
    assert many_group.run is None and many_group.children == 5
    assert many_group.counts == {"Success": 3, "Running": 2}
    assert many_group.first_start == t0 and many_group.last_end == t0 + timedelta(seconds=9)

    page, total = store.summaries.mapped_children(run.id, "many", limit=2, offset=2)
    assert total == 5 and [c.map_index for c in page] == [2, 3]
    assert store.summaries.child_counts(run.id, ["many"]) == {"many": {"Success": 3, "Running": 2}}


def test_the_live_feed_sends_each_change_once_after_its_cursors(store):
    flow = register(store, "ui-feed")
    run = running_run(store, flow)
    s = store.summaries
    feed = FlowRunFeed(store, run.id, s.state_cursor(run.id), s.log_cursor(run.id))
    assert feed.read().task_runs == []

    store.task_runs.set_states([TaskRunStateItem(run.id, "one", 0, StateWrite("Running"))])
    store.logs.write([LogInput(run.id, "first"), LogInput(run.id, "hidden debug", level=10)])
    changes = feed.read()
    assert [(t.task_slug, t.state) for t in changes.task_runs] == [("one", "Running")]
    assert [entry.message for entry in changes.logs] == ["first", "hidden debug"]
    again = feed.read()
    assert again.task_runs == [] and again.logs == [] and again.run is None

    store.runs.set_states([(run.id, 3, StateWrite("Failed"))])
    assert feed.read().run.state == "Failed"

    # A filtered feed skips what the filter leaves out, and its cursor moves past it.
    filtered = FlowRunFeed(store, run.id, 0, 0, min_level=20, task_slug=None)
    assert [entry.message for entry in filtered.read().logs] == ["first"]
    store.logs.write([LogInput(run.id, "debug again", level=10)])
    assert filtered.read().logs == []


def test_the_live_feed_sees_a_transaction_that_commits_after_a_later_one(store):
    """On PostgreSQL, an id taken first can become visible after a later one: the feed reads
    the last seconds again (on SQLite, writers commit one at a time in id order)."""
    flow = register(store, "ui-late-commit")
    run = running_run(store, flow)
    (first,) = store.task_runs.set_states([TaskRunStateItem(run.id, "one", 0, StateWrite("Running"))])
    feed = FlowRunFeed(store, run.id, store.summaries.state_cursor(run.id), store.summaries.log_cursor(run.id))
    if store.sqlite:
        assert feed.reread_window == 0
        return
    state_t = models.RunState.__table__
    slow = store.engine.connect()
    transaction = slow.begin()
    # The slow writer takes its id now (an earlier one) ...
    slow.execute(
        state_t.insert(),
        {
            "flow_run_id": run.id,
            "task_run_id": first.id,
            "state": "Success",
            "state_type": "SUCCESS",
            "timestamp": utcnow(),
            "version": 9,
        },
    )
    # ... a fast writer commits a later id, and the feed sees it ...
    store.task_runs.set_states([TaskRunStateItem(run.id, "many", 0, StateWrite("Running"), map_index=0)])
    assert [t.task_slug for t in feed.read().task_runs] == ["many"]
    # ... then the slow one commits: the next read still finds it, and nothing twice.
    transaction.commit()
    slow.close()
    assert [t.task_slug for t in feed.read().task_runs] == ["one"]
    assert feed.read().task_runs == []


def test_the_demo_history_is_claimed_by_agents_and_keeps_late_runs_late(store):
    from plait_server.data.runs import FlowRunFilter
    from plait_server.demo_data import big_map_run, fill

    history = fill(store, runs=12)
    assert set(history.agents) == {"agent-eu-1", "agent-eu-2"}
    runs = store.runs.list(FlowRunFilter(), limit=100).items
    finished = [r for r in runs if r.state_type in ("SUCCESS", "FAILED")]
    assert len(finished) == 12
    # Every run an agent would have run was claimed by one of them.
    assert {r.agent_id for r in finished} == set(history.agents.values())
    assert store.runs.get(history.running_run).agent_id == history.agents["agent-eu-1"]
    # The running run's load task holds one slot of the db limit.
    limits = {(limit.kind, limit.name): limit for limit in store.concurrency.list()}
    assert limits[("tag", "db")].in_use == 1 and limits[("label", "gpu")].max_running == 1
    # The late runs wait for an agent with the label gpu, which neither agent has.
    late, total = store.summaries.late_runs(timedelta(minutes=5))
    assert total == 2 and all(r.labels == ["gpu"] for r in late)
    assert store.agents.claim(history.agents["agent-eu-2"], limit=10) == []

    map_run = big_map_run(store, 40, history.flows["image-batch"], agent_id=history.agents["agent-eu-2"])
    run = store.runs.get(map_run)
    assert run.state == "Success" and run.agent_id == history.agents["agent-eu-2"]
    assert store.summaries.mapped_children(map_run, "process", limit=1, offset=0)[1] == 40
