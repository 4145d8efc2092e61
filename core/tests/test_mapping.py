"""Mapping (plait/tasks.py ``map``/``unmapped``/``flatten`` and the runner's children)."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

import plait
from plait import Flow, flatten, task, unmapped
from plait.engine.executors import LocalExecutor
from plait.errors import TaskBindError
from plait.states import Failed, Mapped, Success, TriggerFailed


@task
def inc(x):
    return x + 1


@task
def double(x):
    return 2 * x


@task
def add(x, y):
    return x + y


@task
def total(xs):
    return sum(xs)


@task
def listed(xs):
    return list(xs)


@task
def upto(n):
    return list(range(n))


@task
def same(x):
    return x


@task
def inverse(x):
    return 1 / x


@task
def five():
    return 5


def test_map_runs_once_per_item(any_executor):
    with Flow("m") as flow:
        out = inc.map([1, 2, 3])
    state = flow.run(executor=any_executor)
    mapped = state.result[out]
    assert isinstance(mapped, Mapped)
    assert mapped.result == [2, 3, 4]
    assert [type(s) for s in mapped.map_states] == [Success, Success, Success]


def test_unmapped_value_goes_whole_to_every_child(executor):
    with Flow("m") as flow:
        out = add.map([1, 2], y=unmapped(10))
        listy = add.map([[1], [2]], y=unmapped([0]))
    state = flow.run(executor=executor)
    assert state.result[out].result == [11, 12]
    assert state.result[listy].result == [[1, 0], [2, 0]]


def test_unmapped_task_result(executor):
    with Flow("m") as flow:
        out = add.map(upto(3), y=unmapped(five()))
    assert flow.run(executor=executor).result[out].result == [5, 6, 7]


def test_flatten_constant_and_mapped_result(executor):
    with Flow("m") as flow:
        flat_const = inc.map(flatten([[1, 2], [3]]))
        nested = upto.map([1, 2, 3])  # [[0], [0, 1], [0, 1, 2]]
        flat_mapped = inc.map(flatten(nested))
        whole = listed(flatten(nested))
    state = flow.run(executor=executor)
    assert state.result[flat_const].result == [2, 3, 4]
    assert state.result[flat_mapped].result == [1, 1, 2, 1, 2, 3]
    assert state.result[whole].result == [0, 0, 1, 0, 1, 2]


def test_map_over_a_map(any_executor):
    with Flow("m") as flow:
        out = double.map(inc.map([1, 2, 3]))
    state = flow.run(executor=any_executor)
    assert state.result[out].result == [4, 6, 8]
    assert len(state.result[out].map_states) == 3


def test_map_over_map_runs_depth_first_on_local_executor():
    order = []

    @task
    def first(x):
        order.append(("first", x))
        return x

    @task
    def second(x):
        order.append(("second", x))
        return x

    @task
    def third(x):
        order.append(("third", x))
        return x

    with Flow("depth") as flow:
        third.map(second.map(first.map([0, 1, 2])))
    assert flow.run(executor=LocalExecutor()).is_successful()
    # child 0 goes all the way down before child 1 of the first map starts
    assert order.index(("second", 0)) < order.index(("first", 1))
    assert order.index(("third", 0)) < order.index(("first", 1))
    assert order[:3] == [("first", 0), ("second", 0), ("third", 0)]
    assert sorted(order) == sorted((name, i) for name in ("first", "second", "third") for i in range(3))


def test_map_feeding_a_reduce_gets_the_list(any_executor):
    with Flow("m") as flow:
        squares = double.map(upto(4))
        result = total(squares)
        as_list = listed(squares)
    state = flow.run(executor=any_executor)
    assert state.result[result].result == 12
    assert state.result[as_list].result == [0, 2, 4, 6]


def test_map_over_empty_list(executor):
    with Flow("m") as flow:
        empty = inc.map(upto(0))
        downstream = double.map(empty)
        result = total(empty)
    state = flow.run(executor=executor)
    assert state.is_successful()
    assert isinstance(state.result[empty], Mapped)
    assert state.result[empty].map_states == [] and state.result[empty].result == []
    assert state.result[downstream].result == []
    assert state.result[result].result == 0


def test_mismatched_lengths_map_the_shortest(executor):
    with Flow("m") as flow:
        out = add.map([1, 2, 3], [10, 20])
    state = flow.run(executor=executor)
    assert state.result[out].result == [11, 22]


def test_failing_child_does_not_stop_its_siblings(any_executor):
    with Flow("m") as flow:
        inverses = inverse.map([1, 0, 2])
        result = total(inverses)
    state = flow.run(executor=any_executor)
    assert state.is_failed()
    mapped = state.result[inverses]
    assert isinstance(mapped, Mapped)
    assert mapped.is_failed() and not mapped.is_successful()
    kids = mapped.map_states
    assert [type(k) for k in kids] == [Success, Failed, Success]
    assert kids[0].result == 1.0 and kids[2].result == 0.5
    assert isinstance(kids[1].result, ZeroDivisionError)
    assert "inverse" in kids[1].traceback
    assert isinstance(state.result[result], TriggerFailed)


def test_failing_child_only_stops_its_own_chain(executor):
    with Flow("m") as flow:
        out = double.map(inverse.map([1, 0, 2]))
    kids = flow.run(executor=executor).result[out].map_states
    assert kids[0].result == 2.0 and kids[2].result == 1.0
    assert isinstance(kids[1], TriggerFailed)


def test_mapping_over_a_non_iterable_result_fails_naming_the_type(executor):
    with Flow("m") as flow:
        out = inc.map(five())
    state = flow.run(executor=executor)
    assert state.is_failed()
    failed = state.result[out]
    assert isinstance(failed, Failed)
    assert "int" in failed.message and "not iterable" in failed.message
    assert "'five'" in failed.message


def test_mapping_over_a_non_iterable_constant_fails_at_bind_time():
    with Flow("m"), pytest.raises(TaskBindError, match=r"Task 'inc' cannot map over input 'x': a int \(5\)"):
        inc.map(5)


def test_map_index_in_context(executor):
    @task
    def where(x):
        return (plait.context.map_index, plait.context.task_full_name)

    with Flow("m") as flow:
        out = where.map(["a", "b"])
        single = where("c")
    state = flow.run(executor=executor)
    assert state.result[out].result == [(0, "where[0]"), (1, "where[1]")]
    assert state.result[single].result == (None, "where")


def test_mapped_children_of_a_skipped_upstream_skip(executor):
    @task
    def maybe(x):
        if x == 1:
            raise plait.signals.SKIP("odd one")
        return x

    with Flow("m") as flow:
        out = double.map(maybe.map([0, 1, 2]))
    state = flow.run(executor=executor)
    assert state.is_successful()
    assert [k.name for k in state.result[out].map_states] == ["Success", "Skipped", "Success"]


def test_finished_task_runs_are_small():
    """The issue promises at most 2 KB per finished task run beyond its result."""

    @task
    def nothing(x):
        return None

    with Flow("mem") as flow:
        nothing.map(list(range(10_000)))
    flow.run()  # compile the plan and warm caches outside the measurement
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        state = flow.run()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert state.is_successful()
    per_run = (after - before) / 10_000
    print(f"retained per finished task run: {per_run:.0f} bytes")
    assert per_run < 1024, per_run


def test_flatten_into_a_plain_task_of_a_non_iterable_fails_that_task():
    with Flow("m") as flow:
        out = listed(flatten(five()))
        after = inc(1)
    state = flow.run()
    failed = state.result[out]
    assert type(failed) is Failed
    assert "cannot flatten input 'xs'" in failed.message and "int" in failed.message
    assert state.result[after].result == 2


def test_flatten_of_a_failed_upstream_is_left_to_the_trigger(executor):
    @task
    def broken():
        raise ValueError("x")

    with Flow("m") as flow:
        out = listed(flatten(broken()))
    assert type(flow.run(executor=executor).result[out]) is TriggerFailed


def test_map_over_a_skipped_upstream_skips(executor):
    @task
    def nothing_today():
        raise plait.signals.SKIP("no data")

    with Flow("m") as flow:
        kids = inc.map(nothing_today())
        grandkids = inc.map(kids)
        opted_out = same(nothing_today(), task_args={"skip_on_upstream_skip": False})
    state = flow.run(executor=executor)
    assert state.is_successful()
    assert type(state.result[kids]).__name__ == "Skipped"
    assert type(state.result[grandkids]).__name__ == "Skipped"
    assert state.result[opted_out].result is None


def test_handler_replacing_a_mapped_tasks_running_state_stops_its_children():
    ran = []

    @task
    def record(x):
        ran.append(x)
        return x

    def parent_only(task, old, new):
        if new.is_running() and plait.context.map_index is None:
            return plait.states.Skipped("not today")
        return None

    with Flow("m") as flow:
        kids = record.map([1, 2], task_args={"state_handlers": [parent_only]})
        after = record.map(kids)
    state = flow.run()
    assert ran == []
    assert state.result[kids].message == "not today"
    assert state.result[after].is_skipped()


def test_a_skipped_child_is_its_skip_signal_in_the_mapped_result_and_for_a_reduce(any_executor):
    from plait.control_flow import FilterTask
    from plait.signals import SKIP

    @task
    def odd_only(x):
        if x % 2 == 0:
            raise SKIP(f"{x} is even")
        return x

    @task
    def describe(items):
        return [type(i).__name__ for i in items]

    with Flow("skips") as flow:
        kept = odd_only.map([1, 2, 3])
        described = describe(kept)
        filtered = FilterTask()(kept)
    state = flow.run(executor=any_executor)
    assert state.is_successful()
    mapped = state.result[kept]
    assert mapped.result[0] == 1 and mapped.result[2] == 3
    assert isinstance(mapped.result[1], SKIP) and mapped.map_states[1].is_skipped()
    assert state.result[described].result == ["int", "SKIP", "int"]
    assert state.result[filtered].result == [1, 3]
