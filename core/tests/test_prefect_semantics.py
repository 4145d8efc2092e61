"""Prefect 1 semantics (issue 12): a flow ported by changing its imports behaves the same.

One test (or a few) per behaviour of the issue; the expected behaviour is Prefect 1's, read
from its documentation and source.
"""

from __future__ import annotations

import os
import select
from datetime import timedelta

import pytest

import plait
from plait import Flow, Parameter, Task, flatten, signals, task, triggers, unmapped
from plait.engine.runner import FlowRunner
from plait.errors import ParameterError
from plait.executors import ThreadExecutor
from plait.states import (
    Failed,
    Looped,
    Mapped,
    Paused,
    Pending,
    Resume,
    Retrying,
    Running,
    Skipped,
    Success,
    TimedOut,
    TriggerFailed,
)


@task
def numbers(n=3):
    return list(range(n))


@task
def identity(x):
    return x


@task
def record_run():
    calls.append(plait.context.get("map_index"))
    return plait.context.get("map_index")


calls: list = []


@pytest.fixture(autouse=True)
def _clear_calls():
    calls.clear()


# --- 1. task.map(..., upstream_tasks=[...]) maps over mapped upstream tasks ----------------------


def test_map_over_a_mapped_upstream_task_runs_one_child_per_item(executor):
    with Flow("map-upstream") as flow:
        first = identity.map([10, 20, 30])
        after = record_run.map(upstream_tasks=[first])
    state = flow.run(executor=executor)
    assert state.result[after].is_mapped()
    assert sorted(state.result[after].result) == [0, 1, 2]


def test_map_child_waits_for_its_own_upstream_child_only():
    @task
    def maybe_fail(x):
        if x == 2:
            raise ValueError("two")
        return x

    with Flow("map-upstream-fail") as flow:
        first = maybe_fail.map([1, 2, 3])
        after = record_run.map(upstream_tasks=[first])
    state = flow.run()
    kids = state.result[after].map_states
    assert [k.name for k in kids] == ["Success", "TriggerFailed", "Success"]


def test_map_with_unmapped_upstream_task_waits_for_the_whole_of_it():
    with Flow("unmapped-upstream") as flow:
        first = identity.map([1, 2, 3, 4])
        after = identity.map([7, 8], upstream_tasks=[unmapped(first)])
    state = flow.run()
    assert state.result[after].result == [7, 8]  # two children: the unmapped upstream does not count


def test_map_over_plain_upstream_task_result_and_plain_list():
    with Flow("plain-upstream") as flow:
        listing = numbers(4)
        by_task = record_run.map(upstream_tasks=[listing])
        by_value = record_run.map(upstream_tasks=[["a", "b"]])
    state = flow.run()
    assert state.result[by_task].result == [0, 1, 2, 3]
    assert state.result[by_value].result == [0, 1]


# --- 2. a Parameter without a default is required ------------------------------------------------


def test_parameter_without_default_is_required_and_named_before_anything_runs():
    with Flow("params") as flow:
        x = Parameter("x")
        y = Parameter("y", default=None)
        out = record_run(upstream_tasks=[x, y])
    assert x.required and not y.required
    with pytest.raises(ParameterError, match="required parameter 'x'"):
        flow.run()
    assert calls == []
    state = flow.run(parameters={"x": 1})
    assert state.result[out].is_successful()
    assert state.result[y].result is None


# --- 3. a timed-out task stops: TimedOut, and its later side effects never happen ------------------


def test_a_timed_out_task_stops_and_its_later_side_effect_never_happens(executor):
    """Prefect 1: a task that runs past its ``timeout`` ends ``TimedOut`` (result: a ``TimeoutError``).

    Its work must stop too. The task waits on a pipe the test writes to only after the run has
    returned, then writes its side effect to another pipe. A task still running (in a thread,
    say) would get that go-ahead and write; a stopped one never does, and once every copy of
    the pipe's write end is closed (the test's own, and the task's, which closes when its
    process dies) reading it gives end-of-file: no sleep, no race.
    """
    go_read, go_write = os.pipe()
    effect_read, effect_write = os.pipe()

    @task(timeout=0.5)
    def slow():
        mine = os.dup(effect_write)  # the task's own copy of the write end
        os.read(go_read, 1)  # blocks until the test says go, after the run
        os.write(mine, b"late side effect")
        os.close(mine)
        return "late"

    with Flow("timeout") as flow:
        out = slow()
        after = identity(out)
    try:
        state = flow.run(executor=executor)
        os.write(go_write, b"x")  # a task still running would go on now...
        os.close(effect_write)  # ...and hold the only write end left open
        effect_write = None
        ready, _, _ = select.select([effect_read], [], [], 60)
        assert ready, "the timed-out task is still running: its copy of the pipe is open"
        written = os.read(effect_read, 100)
    finally:
        for fd in (go_read, go_write, effect_read, effect_write):
            if fd is not None:
                os.close(fd)
    assert written == b""  # the side effect never happened
    timed_out = state.result[out]
    assert type(timed_out) is TimedOut
    assert timed_out.is_failed()
    assert isinstance(timed_out.result, TimeoutError)
    assert "timed out after 0.5s" in timed_out.message
    assert type(state.result[after]) is TriggerFailed
    assert state.is_failed()


# --- 4. task_states / resume_from: a task given as succeeded never runs again ---------------------


def test_task_given_as_succeeded_does_not_run_when_its_upstream_runs(executor):
    with Flow("resume") as flow:
        source = numbers(2)
        kept = record_run(upstream_tasks=[source])
    state = flow.run(task_states={kept: Success("from before", result="old")}, executor=executor)
    assert calls == []
    assert state.result[source].is_successful()  # the upstream task did run
    assert state.result[kept].result == "old"


def test_resume_state_lets_a_manual_only_task_through():
    @task(trigger=triggers.manual_only)
    def approve():
        return "approved"

    with Flow("approve") as flow:
        ok = approve(upstream_tasks=[numbers(1)])
    assert flow.run().result[ok].is_paused()
    state = flow.run(task_states={ok: Resume()})
    assert state.result[ok].result == "approved"


# --- 5. triggers downstream of a mapped task see each child's state ------------------------------


@task
def fail_on_zero(x):
    if x == 0:
        raise ValueError("zero")
    return x


def test_triggers_count_mapped_children_one_by_one():
    @task(trigger=triggers.any_successful)
    def any_ok():
        return "ran"

    @task(trigger=triggers.all_failed)
    def all_bad():
        return "ran"

    with Flow("triggers") as flow:
        mapped = fail_on_zero.map([0, 1])
        a = any_ok(upstream_tasks=[mapped])
        b = all_bad(upstream_tasks=[mapped])
    state = flow.run()
    assert state.result[a].result == "ran"
    assert type(state.result[b]) is TriggerFailed


def test_prefect_style_trigger_with_edges_and_triggerfail():
    seen = []

    def at_least_one_success(upstream_states):
        seen.append(sorted(e.upstream_task.name for e in upstream_states.keys()))  # noqa: SIM118 - Prefect 1's style
        if not any(s.is_successful() for s in upstream_states.values()):
            raise signals.TRIGGERFAIL("nothing upstream succeeded")
        return True

    @task(trigger=at_least_one_success)
    def after():
        return "ran"

    with Flow("prefect-trigger") as flow:
        bad = fail_on_zero(0)
        good = identity(1)
        runs = after(upstream_tasks=[bad, good])
        blocked = after(upstream_tasks=[bad])
    state = flow.run()
    assert state.result[runs].result == "ran"
    assert sorted(seen) == [["fail_on_zero"], ["fail_on_zero", "identity"]]
    assert type(state.result[blocked]) is TriggerFailed
    assert state.result[blocked].message == "nothing upstream succeeded"


def test_built_in_triggers_called_with_edge_dict_raise_triggerfail():
    edges = {"a": Success(), "b": Failed()}
    assert triggers.any_successful(edges) is True
    with pytest.raises(signals.TRIGGERFAIL):
        triggers.all_successful(edges)
    with pytest.raises(signals.TRIGGERFAIL):
        triggers.all_failed(edges)


# --- 6. flatten() over a mapped upstream: one element fails or skips alone -------------------------


@task
def expand(x):
    if x == 1:
        raise ValueError("one")
    if x == 2:
        raise signals.SKIP("skip two")
    return [x, x * 10]


def test_flatten_over_mapped_upstream_fails_and_skips_only_their_elements(executor):
    with Flow("flatten") as flow:
        parts = expand.map([0, 1, 2, 3])
        out = identity.map(flatten(parts))
    state = flow.run(executor=executor)
    kids = state.result[out].map_states
    assert [k.name for k in kids] == ["Success", "Success", "TriggerFailed", "Skipped", "Success", "Success"]
    assert [k.result for k in kids if type(k) is Success] == [0, 0, 3, 30]


# --- 7. context set around a run reaches its tasks --------------------------------------------------


def test_context_around_flow_run_reaches_tasks_and_does_not_override_parameters(executor):
    @task
    def read():
        return plait.context.get("region"), plait.context.parameters["n"]

    with Flow("ctx") as flow:
        n = Parameter("n", default=1)
        out = read(upstream_tasks=[n])
    with plait.context(region="eu"):
        state = flow.run(executor=executor)
    assert state.result[out].result == ("eu", 1)
    state = flow.run(parameters={"n": 5}, context={"parameters": {"n": 2}, "region": "us"})
    assert state.result[out].result == ("us", 5)
    state = flow.run(context={"parameters": {"n": 2}})
    assert state.result[out].result == (None, 2)
    # parameters in the surrounding context that this flow does not have are left alone
    with plait.context(parameters={"n": 3, "other_flows": 4}):
        assert flow.run(executor=executor).result[out].result == (None, 3)
        assert flow.run(parameters={"n": 6}, executor=executor).result[out].result == (None, 6)
    with pytest.raises(ParameterError, match="no parameter 'other_flows'"):
        flow.run(parameters={"other_flows": 4})


# --- 8. RETRY always retries ------------------------------------------------------------------------


def test_retry_signal_retries_without_max_retries():
    @task
    def again():
        if plait.context.task_run_count < 3:
            raise signals.RETRY("not yet")
        return plait.context.task_run_count

    with Flow("retry") as flow:
        out = again()
    assert flow.run().result[out].result == 3


# --- 9. a signal raised in a state handler sets that state ----------------------------------------


@pytest.mark.parametrize(
    ("signal", "expected"),
    [(signals.PAUSE, Paused), (signals.FAIL, Failed), (signals.SKIP, Skipped), (signals.SUCCESS, Success)],
)
def test_signal_in_state_handler_sets_its_state(signal, expected):
    def handler(obj, old, new):
        if new.is_running():
            raise signal("decided by the handler")

    @task(state_handlers=[handler])
    def work():
        calls.append("ran")

    with Flow("handler-signal") as flow:
        out = work()
    state = flow.run()
    assert type(state.result[out]) is expected
    assert state.result[out].message == "decided by the handler"
    assert calls == []


def test_signal_in_flow_state_handler_sets_the_flow_state():
    def handler(flow, old, new):
        if new.is_successful():
            raise signals.FAIL("not good enough")

    with Flow("flow-handler", state_handlers=[handler]) as flow:
        identity(1)
    state = flow.run()
    assert type(state) is Failed and state.message == "not good enough"


# --- 10. the state sequence: Looped, Failed before Retrying, retries resume a loop ---------------


def test_handlers_see_looped_states_and_failed_before_retrying():
    seen = []
    side_effects = []

    def handler(t, old, new):
        seen.append((type(old).__name__, type(new).__name__))

    @task(max_retries=1, retry_delay=timedelta(0), state_handlers=[handler])
    def loop():
        n = plait.context.get("task_loop_result", 0)
        side_effects.append(n)
        if n == 2 and plait.context.task_run_count == 1:
            raise ValueError("boom at 2")
        if n < 3:
            raise signals.LOOP(result=n + 1)
        return n

    with Flow("loop") as flow:
        out = loop()
    state = flow.run()
    assert state.result[out].result == 3
    assert side_effects == [0, 1, 2, 2, 3]  # the retry went on from iteration 3, not from 0
    assert seen == [
        ("Pending", "Running"),
        ("Running", "Looped"),
        ("Pending", "Running"),
        ("Running", "Looped"),
        ("Pending", "Running"),
        ("Running", "Failed"),
        ("Failed", "Retrying"),
        ("Retrying", "Running"),
        ("Running", "Looped"),
        ("Pending", "Running"),
        ("Running", "Success"),
    ]


def test_observers_and_on_failure_do_not_see_the_failure_before_a_retry():
    observed, failures = [], []

    @task(max_retries=1, retry_delay=0, on_failure=lambda t, s: failures.append(s))
    def flaky():
        if plait.context.task_run_count == 1:
            raise ConnectionError("once")
        return "ok"

    with Flow("observed") as flow:
        flaky()
    FlowRunner(flow, task_observers=[lambda t, o, n: observed.append(n.name)]).run(wait_for_retries=True)
    assert observed == ["Running", "Retrying", "Running", "Success"]
    assert failures == []


# --- 11. Skipped, TriggerFailed and TimedOut carry the signal or exception ------------------------


def test_skipped_and_trigger_failed_states_carry_their_signal():
    @task
    def skip():
        raise signals.SKIP("not today")

    with Flow("results") as flow:
        skipped = skip()
        failed = fail_on_zero(0)
        blocked = identity(failed)
    state = flow.run()
    assert isinstance(state.result[skipped].result, signals.SKIP)
    assert isinstance(state.result[blocked].result, signals.TRIGGERFAIL)
    assert signals.SKIP("x").state.result is not None
    assert type(signals.LOOP("again").state) is Looped


def test_timed_out_state_carries_a_timeout_error():
    import threading

    release = threading.Event()

    @task(timeout=0.05)
    def slow():
        release.wait(30)

    with Flow("timeout") as flow:
        out = slow()
    try:
        state = flow.run().result[out]
    finally:
        release.set()
    assert type(state) is TimedOut
    assert isinstance(state.result, TimeoutError)


# --- 14. the base Task and FlowRunner(flow) ---------------------------------------------------------


def test_base_task_run_returns_none_and_flowrunner_uses_the_flows_executor():
    used = []

    class Recording(ThreadExecutor):
        def submit(self, fn, *args, **kwargs):
            used.append(fn)
            return super().submit(fn, *args, **kwargs)

    with Flow("base", executor=Recording(max_workers=1)) as flow:
        out = Task()()
    state = FlowRunner(flow).run()
    assert state.result[out] == Success("Task run succeeded.", None)
    assert used


# --- states compare by value ------------------------------------------------------------------------


def test_states_compare_by_value():
    assert Success("done", 1) == Success("done", 1)
    assert Success("done", 1) != Success("done", 2)
    assert Success("done") != Failed("done")
    assert Pending() == Pending()
    assert Retrying("r", start_time=None) == Retrying("r")
    assert Mapped("m", [Success(result=1)]) == Mapped("m", [Success(result=1)])
    assert len({Running(), Running()}) == 2  # hashed by identity, usable in sets


# --- Flow: copy, update, replace, save/load, equality ----------------------------------------------


@task
def add_one(x):
    return x + 1


def _small_flow():
    with Flow("small") as flow:
        a = identity(1)
        b = add_one(a)
    return flow, a, b


def test_flow_copy_is_equal_and_independent():
    flow, _a, b = _small_flow()
    copied = flow.copy()
    assert copied == flow and copied is not flow
    with copied:
        add_one(b)
    assert copied != flow
    assert len(flow) == 2 and len(copied) == 3
    assert flow.run().result[b].result == 2


def test_flow_update_and_replace():
    flow, a, b = _small_flow()
    with Flow("other") as other:
        c = add_one(10)
    flow.update(other)
    assert c in flow and flow.run().result[c].result == 11
    new = add_one.copy(name="plus")
    flow.replace(a, new)  # the new task takes a's edges and constants (x=1)
    assert flow.upstream_tasks(b) == {new} and a not in flow
    assert flow.run().result[b].result == 3
    with pytest.raises(plait.errors.TaskBindError, match=r"'noop'.*input 'x'"):
        flow.replace(new, Task(name="noop"))  # a task that cannot take x: refused by name


def test_flow_replace_with_a_value_and_equality_by_structure():
    flow, a, b = _small_flow()
    flow.replace(a, 41)
    state = flow.run()
    assert state.result[b].result == 42
    first, _, _ = _small_flow()
    second, _, _ = _small_flow()
    assert first != second  # different task objects: different structure


def test_flow_save_and_load_keeps_handlers_and_script_functions(tmp_path):
    seen = []

    def handler(t, old, new):
        seen.append(new.name)

    with Flow("saved") as flow:
        out = add_one(identity(1, task_args={"state_handlers": [handler]}))
    path = flow.save(tmp_path / "saved.plait")
    loaded = Flow.load(path)
    assert loaded.name == "saved" and len(loaded) == 2
    state = loaded.run()
    assert [s.result for t, s in state.result.items() if t.name == "add_one"] == [2]
    assert out not in loaded  # a copy of each task, not the same objects
    with pytest.raises(plait.errors.FlowValidationError, match="No saved flow"):
        Flow.load(tmp_path / "missing.plait")


# --- plait.testing.run_task ------------------------------------------------------------------------


def test_run_task_runs_one_task_with_inputs_and_upstream_states():
    from plait.flow import Edge
    from plait.testing import run_task

    assert run_task(add_one, inputs={"x": 1}) == Success("Task run succeeded.", 2)
    assert type(run_task(add_one, inputs={"x": 1}, upstream_states={"up": Failed("no")})) is TriggerFailed
    assert type(run_task(add_one, upstream_states={"up": Skipped()})) is Skipped
    edge = Edge(Task(), add_one, key="x")
    assert run_task(add_one, upstream_states={edge: Success(result=4)}).result == 5

    @task(max_retries=1, retry_on=ConnectionError)
    def flaky():
        raise ConnectionError("down")

    assert type(run_task(flaky)) is Retrying
    assert type(run_task(flaky, run_count=2)) is Failed


def test_retry_on_retries_only_those_exceptions():
    from plait.testing import run_task

    @task(max_retries=3, retry_on=(ConnectionError, TimeoutError))
    def broken():
        raise ValueError("a bug, not a hiccup")

    assert type(run_task(broken)) is Failed
    with pytest.raises(TypeError, match=r"retry_on must be exception classes.*got an instance of str"):
        task(retry_on="ValueError")(lambda: None)


def test_task_run_name_names_each_run_in_context_and_logs(caplog):
    @task(task_run_name="fetch-{day}")
    def fetch(day):
        plait.context.logger.info("fetching")
        return plait.context.task_run_name

    with Flow("named") as flow:
        out = fetch.map(["mon", "tue"])
    state = flow.run()
    assert state.result[out].result == ["fetch-mon", "fetch-tue"]
    assert {r.task_full_name for r in caplog.records if r.getMessage() == "fetching"} == {"fetch-mon", "fetch-tue"}

    @task(task_run_name=lambda **kw: f"load-{kw['table']}-{kw['flow_name']}")
    def load(table):
        return plait.context.task_run_name

    with Flow("named-fn") as flow2:
        done = load("users")
        bad = load("x", task_args={"task_run_name": "load-{nope}"})
    state = flow2.run()
    assert state.result[done].result == "load-users-named-fn"
    assert type(state.result[bad]) is Failed and "'nope'" in state.result[bad].message


def test_pipe_passes_the_result_as_first_input():
    with Flow("pipe") as flow:
        out = identity(1).pipe(add_one).pipe(add_one)
    assert flow.run().result[out].result == 3
