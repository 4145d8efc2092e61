"""Pipelining on a real LocalCluster: a task whose upstream tasks are running is sent along with
them, so a chain runs on the cluster without waiting for the driver at every step; the states,
results and the changes handlers and observers see are those of the local executor."""

from __future__ import annotations

from collections import Counter

import pytest
from plait_dask import DaskExecutor

import plait
from plait import Flow, flatten, signals, task
from plait.engine.runner import FlowRunner
from plait.executors import LocalExecutor
from plait.states import Failed
from plait.triggers import any_failed

# --- tasks (module level: the workers import them by name) -----------------------------------


@task
def inc(x):
    return x + 1


@task
def source():
    return 1


@task
def fails(x):
    raise ValueError(f"cannot take {x}")


@task(max_retries=1)
def flaky(x):
    if plait.context.task_run_count == 1:
        raise ValueError("first attempt fails")
    return x + 100


@task
def skips(x):
    raise signals.SKIP("nothing to do")


@task(trigger=any_failed)
def cleanup(x):
    return "cleaned"


@task
def pairs(n):
    return [[i, i] for i in range(n)]


@task
def count(xs):
    return len(xs)


@task(tags=["dask-resource:GPU=1"])
def inc_on_gpu(x):
    return x + 1


@task(tags=["dask-resource:GPU=1"])
def restrictions(x):
    from distributed import get_worker
    from distributed.worker import thread_state

    worker = get_worker()
    return dict(worker.state.tasks[thread_state.key].resource_restrictions or {})


class Recording(DaskExecutor):
    """A DaskExecutor that logs each submission and each completion, in order."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.log: list[tuple[str, str]] = []

    def submit(self, fn, *args, **kwargs):
        task = next((a for a in args if isinstance(a, plait.Task)), None)
        name = task.slug if task is not None else "?"
        future = super().submit(fn, *args, **kwargs)
        self.log.append(("sent", name))
        future.add_done_callback(lambda f: self.log.append(("back", name)))
        return future


def chain(n: int, step=inc) -> tuple[Flow, plait.Task]:
    with Flow(f"chain-{n}") as flow:
        x = step(0)
        for _ in range(n - 1):
            x = step(x)
    return flow, x


def changes(flow: Flow, executor) -> list[tuple[str, str, str]]:
    seen = []
    FlowRunner(flow, task_observers=[lambda t, old, new: seen.append((t.slug, old.name, new.name))]).run(
        executor=executor, wait_for_retries=True
    )
    return seen


def outcome(state) -> dict[str, tuple[str, object]]:
    return {t.slug: (s.name, s.result if s.is_successful() else None) for t, s in state.result.items()}


# --- a chain runs ahead of the driver ---------------------------------------------------------


def test_a_chain_is_sent_at_once_and_gives_the_local_result(address):
    flow, last = chain(50)
    executor = Recording(address)
    state = flow.run(executor=executor)
    assert state.is_successful()
    assert state.result[last].result == 50
    first_back = next(i for i, (what, _) in enumerate(executor.log) if what == "back")
    # every task of the chain went out before the first one came back
    assert [name for what, name in executor.log[:first_back]] == [t.slug for t in flow.sorted_tasks()]


def test_observers_see_the_chain_in_run_order_as_on_the_local_executor(address):
    flow, _ = chain(30)
    assert changes(flow, DaskExecutor(address)) == changes(flow, LocalExecutor())


def test_a_long_chain_is_batched(address):
    flow, last = chain(400)
    executor = Recording(address)
    state = flow.run(executor=executor)
    assert state.result[last].result == 400
    assert sum(1 for what, _ in executor.log if what == "sent") == 400  # each task run once


# --- the driver decides when the upstream tasks do not all succeed -------------------------------


def test_a_failure_in_the_middle_stops_the_chain_as_locally(address):
    with Flow("failing") as flow:
        x = inc(0)
        x = fails(x)
        for _ in range(5):
            x = inc(x)
        cleanup(x)
    local = flow.run(executor=LocalExecutor())
    dask = flow.run(executor=DaskExecutor(address))
    assert outcome(dask) == outcome(local)
    assert [s.name for s in dask.result.values()].count("TriggerFailed") == 5
    assert Counter(changes(flow, DaskExecutor(address))) == Counter(changes(flow, LocalExecutor()))


def test_a_retried_task_in_the_middle_is_waited_for(address):
    with Flow("retrying") as flow:
        x = inc(0)
        x = flaky(x)
        last = inc(inc(x))
    state = flow.run(executor=DaskExecutor(address))
    assert state.is_successful()
    assert state.result[last].result == 1 + 100 + 2
    assert changes(flow, DaskExecutor(address)) == changes(flow, LocalExecutor())


def test_a_skip_in_the_middle_skips_the_rest_as_locally(address):
    with Flow("skipping") as flow:
        inc(inc(skips(inc(0))))
    local = flow.run(executor=LocalExecutor())
    dask = flow.run(executor=DaskExecutor(address))
    assert outcome(dask) == outcome(local)
    assert [s.name for s in dask.result.values()].count("Skipped") == 3


def test_an_upstream_state_handler_that_fails_a_success_is_respected(address):
    def fail_it(task, old, new):
        if new.is_successful():
            return Failed("the handler says no")
        return None

    with Flow("handled") as flow:
        x = inc(0, task_args={"state_handlers": [fail_it]})
        last = inc(x)
    executor = Recording(address)
    state = flow.run(executor=executor)
    assert state.result[x].name == "Failed"
    assert state.result[last].name == "TriggerFailed"
    assert ("sent", last.slug) not in executor.log  # not sent ahead: its upstream's worker saw a Success


def test_a_task_with_another_trigger_waits_for_the_driver(address):
    with Flow("trigger") as flow:
        x = fails(inc(0))
        done = cleanup(x)
    executor = Recording(address)
    state = flow.run(executor=executor)
    assert state.result[done].result == "cleaned"
    assert executor.log.index(("back", x.slug)) < executor.log.index(("sent", done.slug))


# --- shapes --------------------------------------------------------------------------------


def test_a_fan_out_after_a_running_task_runs_side_by_side_with_the_right_inputs(address):
    with Flow("fan-out") as flow:
        src = source()
        leaves = [inc(src) for _ in range(40)]
    state = flow.run(executor=DaskExecutor(address))
    assert [state.result[leaf].result for leaf in leaves] == [2] * 40


def test_a_diamond_and_a_reduce(address):
    with Flow("diamond") as flow:
        a = inc(0)
        b, c = inc(a), inc(inc(a))
        last = count([b, c, a])
    state = flow.run(executor=DaskExecutor(address))
    assert state.result[last].result == 3
    assert outcome(state) == outcome(flow.run(executor=LocalExecutor()))


def test_a_chain_across_worker_resources(address):
    with Flow("resources") as flow:
        x = inc(0)
        for i in range(9):
            x = (inc_on_gpu if i % 2 else inc)(x)
        asked = restrictions(x)
    executor = Recording(address)
    state = flow.run(executor=executor)
    assert state.result[x].result == 10
    assert state.result[asked].result == {"GPU": 1.0}  # sent ahead, with its resources
    assert executor.log.index(("sent", asked.slug)) < executor.log.index(("back", x.slug))


@pytest.mark.parametrize("batch_size", [1, 3])
def test_a_chain_with_any_batch_size(address, batch_size):
    flow, last = chain(20)
    assert flow.run(executor=DaskExecutor(address, batch_size=batch_size)).result[last].result == 20


def test_maps_and_flattened_inputs_still_wait_for_the_driver(address):
    with Flow("mapped") as flow:
        rows = pairs(4)
        items = inc.map(flatten(rows))
        last = count(items)
    state = flow.run(executor=DaskExecutor(address))
    assert state.result[items].result == [1, 1, 2, 2, 3, 3, 4, 4]
    assert state.result[last].result == 8
    assert outcome(state) == outcome(flow.run(executor=LocalExecutor()))


def test_a_resumed_chain_keeps_what_succeeded(address):
    with Flow("resumed") as flow:
        a = inc(0)
        b = fails(a)
        c = inc(b)
    first = flow.run(executor=DaskExecutor(address))
    assert first.result[a].name == "Success" and first.result[c].name == "TriggerFailed"
    again = flow.run(executor=DaskExecutor(address), resume_from=first)
    assert again.result[a].result == 1
    assert again.result[b].name == "Failed"
