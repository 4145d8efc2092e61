"""The scheduler service on the data layer, on SQLite and PostgreSQL: the next runs of every
active schedule, exactly the core's times, replica-safe, paused and replaced."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from plait_server.services import Scheduler
from plait_server.services.scheduler import idempotency_key
from sqlalchemy import func, select

from plait import Flow, Parameter, task
from plait.registration import flow_metadata
from plait.schedules import CronClock, IntervalClock, IntervalSchedule, Schedule, filters

START = datetime(2024, 1, 1, tzinfo=UTC)


@task
def report(region):
    return region


def make_flow(name: str, schedule: Schedule | None, region_default: str = "eu") -> Flow:
    with Flow(name, schedule=schedule) as flow:
        report(Parameter("region", default=region_default))
    return flow


def register(store, flow: Flow):
    return store.flows.register(
        metadata=flow_metadata(flow), storage={"type": "file", "path": "/srv/x.py", "flow": flow.name}
    )


def runs_of(store, group_id: str):
    from plait_server.data import FlowRunFilter

    return sorted(
        store.runs.list(FlowRunFilter(flow_group_id=group_id), limit=1000).items, key=lambda r: r.scheduled_start_time
    )


def test_the_next_runs_are_the_schedules_own_times_with_its_parameters_and_zone(store):
    # Two clocks (one in London across the spring DST change), a weekday filter: the core's rules.
    schedule = Schedule(
        clocks=[
            CronClock("30 1 * * *", timezone="Europe/London", parameter_defaults={"region": "uk"}),
            IntervalClock(timedelta(hours=12), start_date=START, parameter_defaults={"region": "us"}),
        ],
        filters=[filters.is_weekday],
    )
    flow = make_flow("daily-report", schedule)
    group = register(store, flow).flow.flow_group_id
    now = datetime(2026, 3, 26, 12, tzinfo=UTC)  # DST starts in London on Sunday 29 March 2026
    stats = Scheduler(store).run_pass(now)
    assert stats.groups == 1 and stats.runs_created == 10
    runs = runs_of(store, group)
    expected = schedule.next(10, after=now)
    assert [r.scheduled_start_time for r in runs] == [e.start_time.astimezone(UTC) for e in expected]
    assert [r.parameters for r in runs] == [e.parameter_defaults for e in expected]
    # The context keeps the start time in the clock's zone: plait.context.today is what flow.run() gives.
    assert [r.context["scheduled_start_time"] for r in runs] == [e.start_time.isoformat() for e in expected]
    assert all(r.state == "Scheduled" and r.auto_scheduled for r in runs)
    assert [r.idempotency_key for r in runs] == [idempotency_key(e.start_time, e.parameter_defaults) for e in expected]


def test_a_pass_keeps_ten_ahead_and_one_with_nothing_to_do_creates_nothing(store):
    flow = make_flow("hourly", IntervalSchedule(timedelta(hours=1), start_date=START))
    group = register(store, flow).flow.flow_group_id
    scheduler = Scheduler(store)
    now = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
    assert scheduler.run_pass(now).runs_created == 10
    # Nothing is due: the group's next check is its next run's start, so the pass reads nothing.
    assert scheduler.run_pass(now + timedelta(minutes=10)).groups == 0
    # One run's time passed: one new run keeps ten ahead.
    later = now + timedelta(hours=1)
    stats = scheduler.run_pass(later)
    assert (stats.groups, stats.runs_created) == (1, 1)
    runs = runs_of(store, group)
    assert len(runs) == 11 and len({r.scheduled_start_time for r in runs}) == 11
    assert sum(1 for r in runs if r.scheduled_start_time > later) == 10
    # A second scheduler (another replica, or this one restarted) creates no duplicate.
    assert Scheduler(store).run_pass(later + timedelta(hours=3)).runs_created == 3
    assert Scheduler(store).run_pass(later + timedelta(hours=3)).runs_created == 0
    assert len(runs_of(store, group)) == 14


def test_replicas_racing_create_each_run_once(store):
    flows = [make_flow(f"race-{i}", IntervalSchedule(timedelta(minutes=1), start_date=START)) for i in range(20)]
    for flow in flows:
        register(store, flow)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    barrier = threading.Barrier(4)
    errors = []

    def replica() -> None:
        scheduler = Scheduler(store, batch=7)
        for step in range(5):  # the replicas share one clock: each pass starts together
            barrier.wait()
            try:
                scheduler.run_pass(now + timedelta(minutes=step, seconds=3))
            except Exception as exc:  # pragma: no cover - shown by the assertion below
                errors.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    from plait_server.db import models

    run_t = models.FlowRun.__table__
    with store.read() as conn:
        duplicates = conn.execute(
            select(run_t.c.flow_group_id, run_t.c.scheduled_start_time, func.count())
            .group_by(run_t.c.flow_group_id, run_t.c.scheduled_start_time)
            .having(func.count() > 1)
        ).all()
        total = conn.execute(select(func.count()).select_from(run_t)).scalar_one()
    assert duplicates == []
    assert total == 20 * 14  # 00:01..00:10 at the first pass, one more at each of the four others


def test_pausing_deletes_unstarted_runs_and_a_new_version_replaces_them(store):
    from plait_server.data import StateWrite

    flow = make_flow("pausable", IntervalSchedule(timedelta(hours=1), start_date=START))
    group = register(store, flow).flow.flow_group_id
    scheduler = Scheduler(store)
    now = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
    scheduler.run_pass(now)
    runs = runs_of(store, group)
    started = runs[0]
    store.runs.set_states([(started.id, started.version, StateWrite("Submitted"))])
    store.flows.set_schedule_active(group, False)
    left = runs_of(store, group)
    assert [r.id for r in left] == [started.id]  # the claimed run stays; the nine others are gone
    assert scheduler.run_pass(now).groups == 0  # a paused schedule is not looked at
    store.flows.set_schedule_active(group, True)
    assert scheduler.run_pass(now).runs_created == 9  # the claimed run's time is taken by its key
    # A new version (here: another default) replaces the unstarted runs with its own.
    v2 = register(store, make_flow("pausable", IntervalSchedule(timedelta(hours=1), start_date=START), "us"))
    assert v2.changed and v2.flow.version == 2
    assert [r.id for r in runs_of(store, group)] == [started.id]
    assert scheduler.run_pass(now).runs_created == 9
    assert {r.flow_id for r in runs_of(store, group) if r.id != started.id} == {v2.flow.id}


def test_a_flow_without_schedule_or_with_an_unreadable_one_is_looked_at_rarely(store, caplog):
    register(store, make_flow("manual", None))
    scheduler = Scheduler(store)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert scheduler.run_pass(now).groups == 1
    assert scheduler.run_pass(now + timedelta(minutes=5)).groups == 0


def test_a_clock_with_labels_gives_its_runs_those_labels_instead_of_the_flows(store):
    schedule = Schedule(
        clocks=[
            IntervalClock(timedelta(days=1), start_date=START, labels=["gpu"]),
            IntervalClock(timedelta(days=1), start_date=START + timedelta(hours=12)),
        ]
    )
    flow = make_flow("labelled", schedule)
    registered = store.flows.register(
        metadata=flow_metadata(flow), storage={"type": "file", "path": "/srv/x.py", "flow": flow.name}, labels=["etl"]
    )
    Scheduler(store).run_pass(datetime(2026, 1, 1, 6, tzinfo=UTC))
    runs = runs_of(store, registered.flow.flow_group_id)
    assert [(r.scheduled_start_time.hour, r.labels) for r in runs[:3]] == [(12, ["etl"]), (0, ["gpu"]), (12, ["etl"])]
