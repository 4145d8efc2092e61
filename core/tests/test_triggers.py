"""plait/triggers.py: whether a task runs, decided from its upstream states."""

from __future__ import annotations

import pytest

from plait import Flow, signals, task, triggers
from plait.states import Failed, Mapped, Paused, Skipped, Success, TriggerFailed


@task
def ok():
    return "ok"


@task
def bad():
    raise ValueError("bad")


@task
def skipped():
    raise signals.SKIP("skip")


@task
def after():
    return "ran"


@task
def pick(x):
    if x == "fail":
        raise ValueError(x)
    return x


def run_after(executor, trigger, *ups, skip_on_upstream_skip=True):
    with Flow("t") as flow:
        upstream = [u() for u in ups]
        out = after(
            upstream_tasks=upstream,
            task_args={"trigger": trigger, "skip_on_upstream_skip": skip_on_upstream_skip},
        )
    return flow.run(executor=executor), out


@pytest.mark.parametrize(
    ("trigger", "ups", "ran"),
    [
        (triggers.all_successful, (ok, ok), True),
        (triggers.all_successful, (ok, bad), False),
        (triggers.all_finished, (ok, bad), True),
        (triggers.always_run, (bad, bad), True),
        (triggers.all_failed, (bad, bad), True),
        (triggers.all_failed, (ok, bad), False),
        (triggers.any_successful, (ok, bad), True),
        (triggers.any_successful, (bad, bad), False),
        (triggers.any_failed, (ok, bad), True),
        (triggers.any_failed, (ok, ok), False),
        (triggers.some_successful(at_least=2), (ok, ok, bad), True),
        (triggers.some_successful(at_least=2), (ok, bad, bad), False),
        (triggers.some_successful(at_most=1), (ok, bad), True),
        (triggers.some_successful(at_most=1), (ok, ok), False),
        (triggers.some_successful(at_least=0.5), (ok, bad), True),
        (triggers.some_successful(at_least=0.6), (ok, bad), False),
        (triggers.some_failed(at_least=1, at_most=1), (ok, bad), True),
        (triggers.some_failed(at_least=1, at_most=1), (bad, bad), False),
        (triggers.some_failed(at_most=0), (ok, ok), True),
    ],
    ids=lambda v: getattr(v, "__name__", None) if callable(v) else None,
)
def test_trigger_decides(executor, trigger, ups, ran):
    state, out = run_after(executor, trigger, *ups)
    final = state.result[out]
    if ran:
        assert type(final) is Success and final.result == "ran"
    else:
        assert type(final) is TriggerFailed
        assert trigger.__name__ in final.message


def test_default_trigger_is_all_successful():
    assert after.trigger is triggers.all_successful


def test_not_all_skipped():
    state, out = run_after(None, triggers.not_all_skipped, skipped, ok, skip_on_upstream_skip=False)
    assert type(state.result[out]) is Success
    state, out = run_after(None, triggers.not_all_skipped, skipped, skipped, skip_on_upstream_skip=False)
    assert type(state.result[out]) is Skipped
    state, out = run_after(None, triggers.not_all_skipped, ok, bad, skip_on_upstream_skip=False)
    assert type(state.result[out]) is TriggerFailed


def test_skip_wins_over_trigger_unless_opted_out():
    state, out = run_after(None, triggers.always_run, skipped)
    assert type(state.result[out]) is Skipped
    state, out = run_after(None, triggers.always_run, skipped, skip_on_upstream_skip=False)
    assert type(state.result[out]) is Success


def test_some_successful_counts_mapped_children(executor):
    with Flow("t") as flow:
        kids = pick.map(["a", "fail", "b", "fail"])
        two = after(upstream_tasks=[kids], task_args={"trigger": triggers.some_successful(at_least=2)})
        three = after(upstream_tasks=[kids], task_args={"trigger": triggers.some_successful(at_least=3)})
        half = after(upstream_tasks=[kids], task_args={"trigger": triggers.some_failed(at_most=0.5)})
    state = flow.run(executor=executor)
    assert isinstance(state.result[kids], Mapped)
    assert type(state.result[two]) is Success
    assert type(state.result[three]) is TriggerFailed
    assert type(state.result[half]) is Success


def test_manual_only_pauses_the_task_and_the_flow(executor):
    with Flow("t") as flow:
        first = ok()
        gate = after(upstream_tasks=[first], task_args={"trigger": triggers.manual_only})
        later = after(upstream_tasks=[gate])
    state = flow.run(executor=executor)
    assert type(state.result[gate]) is Paused
    assert state.result[gate].is_pending()
    assert type(state) is Paused
    assert "after" in state.message
    assert not state.result[later].is_finished()
    resumed = flow.run(executor=executor, context={"resume": True})
    assert resumed.is_successful()
    assert resumed.result[later].result == "ran"


def test_a_trigger_that_raises_fails_the_task_naming_it():
    def broken(states):
        raise RuntimeError("trigger bug")

    state, out = run_after(None, broken, ok)
    final = state.result[out]
    assert type(final) is Failed
    assert "broken" in final.message and "trigger bug" in final.message


def test_trigger_must_be_callable():
    with pytest.raises(TypeError, match="trigger must be callable"):
        task(trigger="all_successful")(lambda: None)


def test_manual_only_pauses_a_root_task_too(executor):
    with Flow("t") as flow:
        gate = after(task_args={"trigger": triggers.manual_only})
    state = flow.run(executor=executor)
    assert type(state.result[gate]) is Paused
    assert type(state) is Paused
    assert flow.run(executor=executor, context={"resume": True}).result[gate].result == "ran"


@task(cache_for=3600)
def cached_once():
    return "cached"


@task
def echo(x):
    return x


def test_default_trigger_reads_every_kind_of_upstream_state(executor):
    # The runner answers the default trigger without calling it when every upstream state is a
    # plain Success; every other kind of upstream state must still reach the trigger's rules.
    with Flow("kinds") as flow:
        cached = cached_once()
        after_cached = after(upstream_tasks=[cached])
        all_ok = pick.map(["a", "b"])
        after_all_ok = after(upstream_tasks=[all_ok])
        some_bad = pick.map(["a", "fail"])
        after_some_bad = after(upstream_tasks=[some_bad])
        after_skip = after(upstream_tasks=[skipped()])
        after_mixed = after(upstream_tasks=[ok(), bad()])
        child_after_bad = echo.map(pick.map(["a", "fail"]))
    flow.run(executor=executor)  # fills the cache: the next run's cached_once ends Cached
    state = flow.run(executor=executor)
    results = state.result
    assert type(results[cached]).__name__ == "Cached"
    assert type(results[after_cached]) is Success
    assert type(results[after_all_ok]) is Success
    assert type(results[after_some_bad]) is TriggerFailed
    assert type(results[after_skip]) is Skipped
    assert type(results[after_mixed]) is TriggerFailed
    kids = results[child_after_bad].map_states
    assert type(kids[0]) is Success and kids[0].result == "a"
    assert type(kids[1]) is TriggerFailed


def test_counting_triggers_let_a_task_without_upstream_tasks_run():
    for make in (triggers.some_successful, triggers.some_failed):
        assert make()([]) is True
        assert make(at_least=2, at_most=4)([]) is True
        assert make(at_least=0.1, at_most=0.5)(set()) is True


def test_a_task_skipped_after_an_upstream_skip_says_why():
    from plait.states import Skipped
    from plait.testing import run_task

    @task
    def after():
        return 1

    state = run_task(after, upstream_states=[Skipped()])
    assert isinstance(state, Skipped)
    assert "skip_on_upstream_skip" in state.message
