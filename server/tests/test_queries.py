"""The list queries' filters, orders and pages, on SQLite and PostgreSQL.

``FlowRuns.list`` and ``TaskRuns.list`` keep their statements by shape (which filters, which
order) and bind the values; each filter is checked here on its own and together with others,
and the same shape asked twice with other values answers for the new values.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from plait_server.data.records import StateWrite
from plait_server.data.runs import FlowRunFilter, TaskRunFilter, TaskRunStateItem
from plait_server.errors import BadInput


@pytest.fixture
def runs(store):
    """Two flows; five runs with labels, states and start times of their own; task runs in one."""
    from plait import Flow, task
    from plait.registration import flow_metadata

    @task
    def inc(x):
        return x + 1

    @task
    def other(x):
        return x

    flows = []
    for name in ("queries-a", "queries-b"):
        with Flow(name) as flow:
            other(inc.map([1, 2, 3]))
        flows.append(
            store.flows.register(project="default", metadata=flow_metadata(flow), storage={"type": "none"}, labels=[])
        )
    base = datetime(2030, 1, 1, tzinfo=UTC)
    made = []
    for i, (flow, labels) in enumerate([(0, ["a", "b"]), (0, ["a"]), (0, ["b", "c"]), (1, ["a", "c"]), (1, [])]):
        run, _ = store.runs.create(
            flow_id=flows[flow].flow.id, labels=labels, scheduled_start_time=base + timedelta(hours=i)
        )
        made.append(run)
    # Run 1 is Running, run 2 Cancelled; the others stay Scheduled.
    store.runs.set_states([(made[1].id, 1, StateWrite("Submitted")), (made[1].id, 2, StateWrite("Running"))])
    store.runs.set_states([(made[2].id, 1, StateWrite("Cancelled"))])
    items = [TaskRunStateItem(made[1].id, "inc", 0, StateWrite("Pending"), map_index=i) for i in range(5)]
    items.append(TaskRunStateItem(made[1].id, "other", 0, StateWrite("Pending")))
    store.task_runs.set_states(items)
    store.task_runs.set_states(
        [TaskRunStateItem(made[1].id, "inc", 1, StateWrite("Running"), map_index=i) for i in (1, 3)]
    )
    return flows, made, base


def ids(page):
    return [r.id for r in page.items]


def test_flow_run_filters_one_by_one_and_together(store, runs):
    flows, made, base = runs
    mine = FlowRunFilter(ids=[r.id for r in made])

    def listed(order_by="SCHEDULED_START_TIME", descending=False, **where):
        return ids(store.runs.list(FlowRunFilter(ids=mine.ids, **where), order_by, descending))

    assert listed() == [r.id for r in made]
    assert listed(descending=True) == [r.id for r in reversed(made)]
    assert listed(flow_id=flows[1].flow.id) == [made[3].id, made[4].id]
    assert listed(flow_group_id=flows[0].flow.flow_group_id) == [r.id for r in made[:3]]
    assert listed(flow_name="queries-b") == [made[3].id, made[4].id]
    assert listed(states=["Running", "Cancelled"]) == [made[1].id, made[2].id]
    assert listed(state_types=["SCHEDULED"]) == [made[0].id, made[3].id, made[4].id]
    assert listed(labels=["a"]) == [made[0].id, made[1].id, made[3].id]
    assert listed(labels=["a", "c"]) == [made[3].id]
    assert listed(labels=["c", "b"]) == [made[2].id]
    assert listed(labels=["nobody"]) == []
    assert listed(scheduled_after=base + timedelta(hours=1), scheduled_before=base + timedelta(hours=3)) == [
        made[1].id,
        made[2].id,
    ]
    assert listed(created_after=base) == []  # they were created now, long before 2030
    assert listed(created_before=base) == [r.id for r in made]
    assert listed(flow_group_id=flows[0].flow.flow_group_id, labels=["a"], states=["Scheduled"]) == [made[0].id]
    # Same shape, other values: the answer follows the values.
    assert listed(labels=["b"]) == [made[0].id, made[2].id]
    assert listed(flow_id=flows[0].flow.id) == [r.id for r in made[:3]]


def test_flow_run_pages_and_orders(store, runs):
    _flows, made, _base = runs
    where = FlowRunFilter(ids=[r.id for r in made])
    first = store.runs.list(where, "SCHEDULED_START_TIME", False, limit=2, offset=0)
    second = store.runs.list(where, "SCHEDULED_START_TIME", False, limit=2, offset=2)
    last = store.runs.list(where, "SCHEDULED_START_TIME", False, limit=2, offset=4)
    assert (first.total, second.total, last.total) == (5, 5, 5)
    assert ids(first) + ids(second) + ids(last) == [r.id for r in made]
    assert first.has_more and not last.has_more
    by_state = store.runs.list(where, "STATE", False)
    assert [r.state for r in by_state.items] == sorted(r.state for r in by_state.items)
    with pytest.raises(BadInput, match="Cannot order flow runs by 'COLOR'"):
        store.runs.list(where, "COLOR")


def test_task_run_filters_orders_and_pages(store, runs):
    _flows, made, _base = runs
    run_id = made[1].id

    def listed(order_by="TASK_SLUG", descending=False, limit=None, offset=None, **where):
        page = store.task_runs.list(TaskRunFilter(**where), order_by, descending, limit, offset)
        return [(t.task_slug, t.map_index) for t in page.items], page.total

    everything = [("inc", i) for i in range(5)] + [("other", -1)]
    assert listed(flow_run_id=run_id) == (everything, 6)
    assert listed(flow_run_id=run_id, descending=True)[0] == [("other", -1)] + [("inc", i) for i in range(5)]
    assert listed(flow_run_id=run_id, task_slug="inc", map_index=3) == ([("inc", 3)], 1)
    assert listed(flow_run_id=run_id, states=["Running"]) == ([("inc", 1), ("inc", 3)], 2)
    assert listed(flow_run_id=run_id, state_types=["PENDING"], task_slug="inc") == (
        [("inc", 0), ("inc", 2), ("inc", 4)],
        3,
    )
    assert listed(flow_run_id=run_id, limit=2, offset=3) == ([("inc", 3), ("inc", 4)], 6)
    some = [t.id for t in store.task_runs.list(TaskRunFilter(flow_run_id=run_id)).items][:2]
    assert listed(ids=some) == ([("inc", 0), ("inc", 1)], 2)
    assert listed(flow_run_id=made[0].id) == ([], 0)
    with pytest.raises(BadInput, match="Filter task runs by flow run"):
        store.task_runs.list(TaskRunFilter())
