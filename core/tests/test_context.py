"""plait/context.py: what a running task knows about its run."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

import plait
from plait import Flow, Parameter, context, task

KEYS = (
    "flow_name",
    "flow_run_id",
    "scheduled_start_time",
    "date",
    "today",
    "yesterday",
    "tomorrow",
    "parameters",
    "task_name",
    "task_run_id",
    "task_tags",
    "map_index",
    "task_run_count",
)


@task(tags=["io", "daily"])
def snapshot(n=None, item=None):
    data = {key: getattr(plait.context, key) for key in KEYS}
    data["via_get"] = plait.context.get("task_name")
    data["logger"] = type(plait.context.logger).__name__
    return data


def test_context_keys_inside_tasks(any_executor):
    with Flow("ctx") as flow:
        n = Parameter("n", default=3)
        single = snapshot(n)
        mapped = snapshot.map(item=[10, 20])
    state = flow.run(executor=any_executor)
    assert state.is_successful()
    one = state.result[single].result
    kids = state.result[mapped].result
    assert one["flow_name"] == "ctx"
    uuid.UUID(one["flow_run_id"])
    start = one["scheduled_start_time"]
    assert isinstance(start, datetime) and start.tzinfo is not None
    day = start.date()
    assert one["date"] == start and one["today"] == day.isoformat()  # date: a datetime (Prefect 1)
    assert one["yesterday"] == (day - timedelta(days=1)).isoformat()
    assert one["tomorrow"] == (day + timedelta(days=1)).isoformat()
    assert one["parameters"] == {"n": 3}
    assert one["task_name"] == one["via_get"] == "snapshot"
    uuid.UUID(one["task_run_id"])
    assert one["task_tags"] == {"io", "daily"}
    assert one["map_index"] is None
    assert one["task_run_count"] == 1
    assert one["logger"] == "RunLogger"
    assert [k["map_index"] for k in kids] == [0, 1]
    assert {k["flow_run_id"] for k in kids} == {one["flow_run_id"]}
    assert len({one["task_run_id"], kids[0]["task_run_id"], kids[1]["task_run_id"]}) == 3


def test_each_flow_run_has_its_own_id():
    with Flow("ctx") as flow:
        s = snapshot()
    first = flow.run().result[s].result["flow_run_id"]
    second = flow.run().result[s].result["flow_run_id"]
    assert first != second


def test_scheduled_start_time_override_changes_date_keys(any_executor):
    with Flow("ctx") as flow:
        s = snapshot()
    start = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
    got = flow.run(executor=any_executor, context={"scheduled_start_time": start}).result[s].result
    assert got["scheduled_start_time"] == start
    assert got["date"] == start and got["today"] == "2026-03-01"
    assert got["yesterday"] == "2026-02-28"
    assert got["tomorrow"] == "2026-03-02"


def test_backfill_loop_over_dates():
    @task
    def today():
        return plait.context.today

    with Flow("backfill") as flow:
        t = today()
    days = [date(2026, 1, 30) + timedelta(days=i) for i in range(3)]
    seen = [
        flow.run(context={"scheduled_start_time": datetime(d.year, d.month, d.day, tzinfo=UTC)}).result[t].result
        for d in days
    ]
    assert seen == ["2026-01-30", "2026-01-31", "2026-02-01"]


def test_context_overrides_and_extra_keys(executor):
    @task
    def read():
        return plait.context.today, plait.context.get("region"), plait.context.get("absent", "dflt")

    with Flow("ctx") as flow:
        r = read()
    got = flow.run(executor=executor, context={"today": "2000-01-01", "region": "eu"}).result[r].result
    assert got == ("2000-01-01", "eu", "dflt")


def test_bad_scheduled_start_time():
    with Flow("ctx") as flow:
        snapshot()
    with pytest.raises(TypeError, match="scheduled_start_time must be a datetime, got str"):
        flow.run(context={"scheduled_start_time": "2026-01-01"})


def test_context_outside_a_run():
    assert context.get("flow_name") is None
    assert context.get("task_name", "none") == "none"
    with pytest.raises(AttributeError, match=r"plait\.context has no key 'flow_name'"):
        _ = context.flow_name


def test_context_local_layers_values():
    with context.local(flow_name="outer", scheduled_start_time=datetime(2026, 5, 5, tzinfo=UTC)):
        assert context.flow_name == "outer"
        assert context.yesterday == "2026-05-04"
        with context.local(flow_name="inner"):
            assert context.flow_name == "inner"
            assert context.today == "2026-05-05"
        assert context.flow_name == "outer"
    assert context.get("flow_name") is None


def test_task_run_count_counts_attempts():
    @task(max_retries=2)
    def attempts():
        if context.task_run_count < 3:
            raise ValueError("not yet")
        return context.task_run_count

    with Flow("ctx") as flow:
        a = attempts()
    assert flow.run().result[a].result == 3


def test_task_will_retry_is_true_only_while_handlers_see_a_failure_that_is_retried():
    seen = []

    def handler(t, old, new):
        seen.append((old.name, new.name, plait.context.get("task_will_retry")))

    attempts = []

    @task(max_retries=1, retry_delay=0, state_handlers=[handler])
    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first")
        return 1

    with Flow("retry") as flow:
        flaky()

    assert flow.run().is_successful()
    assert ("Running", "Failed", True) in seen
    assert all(will is False for _old, new, will in seen if new != "Failed")


# --- plait.context as Prefect 1's mutable context ---------------------------------------------------


def test_keys_set_on_the_context_last_until_the_end_of_their_block():
    assert "answer" not in context
    with context(answer=1):
        context.answer = 2
        assert context["answer"] == 2
        context["other"] = "x"
        context.update(third=3, answer=4)
        assert context.setdefault("answer", 99) == 4
        assert context.setdefault("fourth", 5) == 5
        del context["other"]
        assert "other" not in context
        assert {"answer": 4, "third": 3, "fourth": 5}.items() <= context.copy().items()
    for key in ("answer", "third", "fourth"):
        assert key not in context


def test_assigning_a_module_name_still_patches_the_module(monkeypatch):
    calls = []
    monkeypatch.setattr(context, "get", lambda key, default=None: calls.append(key) or default)
    assert context.get("x") is None and calls == ["x"]


def test_a_flow_block_is_a_context_scope_naming_its_flow():
    assert "flow" not in context
    with Flow("outer") as outer:
        assert context.flow is outer
        context.label = "outer"
        with Flow("inner") as inner:
            assert context.flow is inner
            context.label = "inner"
        assert context.label == "outer" and context.flow is outer
    assert "flow" not in context and "label" not in context


def test_a_key_set_by_one_task_run_does_not_reach_the_next():
    @task
    def setter():
        context.shared = "mine"
        return context.shared

    @task
    def reader(_):
        return context.get("shared")

    with Flow("scoped-keys") as flow:
        first = setter()
        second = reader(first)
    state = flow.run()
    assert state.result[first].result == "mine"
    assert state.result[second].result is None


def test_date_is_a_datetime_and_a_given_date_moves_the_day_keys(any_executor, caplog):
    with Flow("ctx") as flow:
        s = snapshot()
    start = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
    # a datetime given as date: the day strings follow it, not the scheduled start
    got = (
        flow.run(
            executor=any_executor,
            context={"scheduled_start_time": start, "date": datetime(2027, 1, 31, 23, 0, tzinfo=UTC)},
        )
        .result[s]
        .result
    )
    assert got["date"] == datetime(2027, 1, 31, 23, 0, tzinfo=UTC) and got["scheduled_start_time"] == start
    assert (got["yesterday"], got["today"], got["tomorrow"]) == ("2027-01-30", "2027-01-31", "2027-02-01")
    # ISO text around the run is parsed (read in the start's zone when it has none)
    with context(date="2027-06-15 08:30:00"):
        got = flow.run(executor=any_executor, context={"scheduled_start_time": start}).result[s].result
    assert got["date"] == datetime(2027, 6, 15, 8, 30, tzinfo=UTC) and got["today"] == "2027-06-15"
    # a day string given explicitly still wins
    got = flow.run(context={"date": "2027-06-15", "today": "mine"}).result[s].result
    assert got["today"] == "mine" and got["tomorrow"] == "2027-06-16"
    # text that is not a date is kept as given, with a warning; the days come from the start
    with caplog.at_level("WARNING", logger="plait"):
        got = flow.run(context={"scheduled_start_time": start, "date": "someday"}).result[s].result
    assert got["date"] == "someday" and got["today"] == "2026-03-01"
    assert any("'someday'" in r.getMessage() and "not a datetime" in r.getMessage() for r in caplog.records)


def test_a_result_location_can_format_the_date(tmp_path):
    from plait.results import LocalResult

    @task(checkpoint=True, result=LocalResult(dir=tmp_path, location="{date:%Y/%m}/{today}-{task_name}.pkl"))
    def made():
        return plait.context.date.strftime("%d %b")

    with Flow("dated") as flow:
        out = made()
    state = flow.run(context={"scheduled_start_time": datetime(2026, 2, 3, 4, 5, tzinfo=UTC)})
    assert state.result[out].result == "03 Feb"
    assert (tmp_path / "2026/02/2026-02-03-made.pkl").exists()
