"""plait/engine/runner.py: state handlers, on_failure, observers and the flow run's state."""

from __future__ import annotations

import pytest

import plait
from plait import Flow, task
from plait.engine.runner import FlowRunner
from plait.errors import FlowRunError, ParameterError
from plait.states import Cancelled, Failed, Pending, Running, Skipped, Success


@task
def one():
    return 1


@task
def boom():
    raise ValueError("boom")


@task
def plus_one(x):
    return x + 1


def _recorder(log):
    def record(obj, old, new):
        log.append((obj.name, old.name, new.name))

    return record


# -- task state handlers ---------------------------------------------------------------


def test_task_handler_sees_every_transition(any_executor):
    log = []
    with Flow("h") as flow:
        a = one(task_args={"state_handlers": [_recorder(log)]})
        plus_one(a, task_args={"state_handlers": [_recorder(log)]})
    flow.run(executor=any_executor)
    assert log == [
        ("one", "Pending", "Running"),
        ("one", "Running", "Success"),
        ("plus_one", "Pending", "Running"),
        ("plus_one", "Running", "Success"),
    ]


def test_task_handler_gets_task_and_states():
    got = []

    def handler(task, old, new):
        got.append((task, old, new))

    with Flow("h") as flow:
        a = one(task_args={"state_handlers": [handler]})
    state = flow.run()
    (t1, old1, new1), (t2, old2, new2) = got
    assert t1 is a and t2 is a
    assert type(old1) is Pending and type(new1) is Running and old2 is new1
    assert new2 is state.result[a] and new2.result == 1


def test_handler_returned_state_replaces_the_new_one(any_executor):
    def skip_instead(task, old, new):
        if isinstance(new, Failed):
            return Skipped("failure forgiven")
        return None

    with Flow("h") as flow:
        b = boom(task_args={"state_handlers": [skip_instead]})
        after = plus_one(b)
    state = flow.run(executor=any_executor)
    assert type(state.result[b]) is Skipped
    assert state.result[b].message == "failure forgiven"
    assert type(state.result[after]) is Skipped
    assert state.is_successful()


def test_handlers_chain_in_order():
    def first(task, old, new):
        if isinstance(new, Success):
            return Success("first", result=new.result * 10)
        return None

    def second(task, old, new):
        if isinstance(new, Success):
            return Success("second", result=new.result + 1)
        return None

    with Flow("h") as flow:
        a = one(task_args={"state_handlers": [first, second]})
    assert flow.run().result[a].result == 11


def raising_handler(task, old, new):
    raise RuntimeError("handler bug")


def test_raising_task_handler_fails_the_task_naming_the_handler(any_executor, caplog):
    with Flow("h") as flow:
        a = one(task_args={"state_handlers": [raising_handler]})
        after = plus_one(a)
    state = flow.run(executor=any_executor)
    final = state.result[a]
    assert type(final) is Failed
    assert "raising_handler" in final.message and "'one'" in final.message
    assert isinstance(final.result, RuntimeError)
    assert state.result[after].name == "TriggerFailed"
    assert state.is_failed()
    assert any("raising_handler" in r.getMessage() for r in caplog.records)


def test_raising_handler_on_a_mapped_task_does_not_hang(executor):
    with Flow("h") as flow:
        kids = plus_one.map([1, 2], task_args={"state_handlers": [raising_handler]})
        after = plus_one.map(kids)
    state = flow.run(executor=executor)
    assert state.is_failed()
    assert state.result[kids].is_failed()
    assert state.result[after].is_failed()


def test_handler_returning_a_non_state_fails_the_task():
    with Flow("h") as flow:
        a = one(task_args={"state_handlers": [lambda t, o, n: "oops"]})
    final = flow.run().result[a]
    assert type(final) is Failed
    assert "returned str, not a State or None" in final.message


def test_handlers_chain_what_each_returns_as_in_prefect_1():
    from plait.errors import StateHandlerError
    from plait.testing import TaskRunner, raise_on_exception

    seen = []

    def looks(obj, old, new):
        seen.append(new)

    # a false value changes nothing; anything else is the next handler's new state
    a = one.copy(state_handlers=[lambda t, o, n: 0, lambda t, o, n: "odd", looks])
    with Flow("h") as flow:
        flow.add_task(a)
    final = flow.run().result[a]
    assert "odd" in seen and not any(isinstance(s, str) and s != "odd" for s in seen)
    assert type(final) is Failed and "returned str, not a State or None" in final.message
    # a later handler that returns a State repairs the chain
    b = one.copy(state_handlers=[lambda t, o, n: "odd", lambda t, o, n: Success("fixed", result=5)])
    assert TaskRunner(b).run().result == 5

    # under raise_on_exception: the next handler's own error, or a clear one at the end
    def needs_a_state(obj, old, new):
        assert new.is_finished() or new.is_running() or new.is_pending()

    with raise_on_exception():
        with pytest.raises(AttributeError):
            TaskRunner(one.copy(state_handlers=[lambda t, o, n: True, needs_a_state])).run()
        with pytest.raises(StateHandlerError, match="returned bool"):
            TaskRunner(one.copy(state_handlers=[lambda t, o, n: True])).run()
        with pytest.raises(StateHandlerError, match="returned bool"):
            TaskRunner(one.copy(), state_handlers=[lambda r, o, n: True]).run()
        with pytest.raises(StateHandlerError, match="of flow 'f'"):
            Flow("f", tasks=[one.copy()], state_handlers=[lambda f, o, n: 1]).run()
    state = Flow("f", tasks=[one.copy()], state_handlers=[lambda f, o, n: 1]).run()
    assert state.is_failed() and "returned int" in state.message


def test_state_handler_must_be_callable():
    with pytest.raises(TypeError, match="state handler 3 is not callable"):
        task(state_handlers=[3])(lambda: None)
    with pytest.raises(TypeError, match="Flow 'f': state handler 3 is not callable"):
        Flow("f", state_handlers=[3])


# -- on_failure ---------------------------------------------------------------------------


def test_on_failure_called_once_with_the_failed_state(any_executor):
    calls = []

    def on_failure(task, state):
        calls.append((task.name, state))

    with Flow("h") as flow:
        b = boom(task_args={"on_failure": on_failure, "max_retries": 1})
        one(task_args={"on_failure": on_failure})
    state = flow.run(executor=any_executor)
    assert len(calls) == 1
    name, failed = calls[0]
    assert name == "boom"
    assert type(failed) is Failed and isinstance(failed.result, ValueError)
    assert failed.message == state.result[b].message


def test_raising_on_failure_is_reported():
    def bad_callback(task, state):
        raise RuntimeError("callback bug")

    with Flow("h") as flow:
        b = boom(task_args={"on_failure": bad_callback})
    final = flow.run().result[b]
    assert type(final) is Failed
    assert "bad_callback" in final.message


# -- flow state handlers --------------------------------------------------------------------


def test_flow_handler_sees_every_transition():
    log = []
    with Flow("fh", state_handlers=[_recorder(log)]) as flow:
        one()
    flow.run()
    assert log == [("fh", "Pending", "Running"), ("fh", "Running", "Success")]


def test_flow_handler_returned_state_replaces():
    def veto(flow, old, new):
        if isinstance(new, Success):
            return Failed("vetoed", result=new.result)
        return None

    with Flow("fh", state_handlers=[veto]) as flow:
        a = one()
    state = flow.run()
    assert type(state) is Failed and state.message == "vetoed"
    assert state.result[a].result == 1


def test_flow_handler_stops_the_run_before_it_starts():
    ran = []

    @task
    def record():
        ran.append(1)

    def refuse(flow, old, new):
        if isinstance(new, Running):
            return Cancelled("not today")
        return None

    with Flow("fh", state_handlers=[refuse]) as flow:
        record()
    state = flow.run()
    assert type(state) is Cancelled and ran == []


def test_raising_flow_handler_fails_the_run_naming_it(executor):
    def flow_bug(flow, old, new):
        if isinstance(new, Success):
            raise RuntimeError("flow handler bug")

    with Flow("fh", state_handlers=[flow_bug]) as flow:
        one()
    state = flow.run(executor=executor)
    assert type(state) is Failed
    assert "flow_bug" in state.message and "'fh'" in state.message


# -- observers and interruption ---------------------------------------------------------------


def test_observers_see_task_and_flow_changes(any_executor):
    task_log, flow_log = [], []
    with Flow("obs") as flow:
        plus_one(one())
    FlowRunner(flow, task_observers=[_recorder(task_log)], flow_observers=[_recorder(flow_log)]).run(
        executor=any_executor
    )
    assert task_log == [
        ("one", "Pending", "Running"),
        ("one", "Running", "Success"),
        ("plus_one", "Pending", "Running"),
        ("plus_one", "Running", "Success"),
    ]
    assert flow_log == [("obs", "Pending", "Running"), ("obs", "Running", "Success")]


def test_keyboard_interrupt_cancels_the_run():
    @task
    def interrupt():
        raise KeyboardInterrupt

    with Flow("ki") as flow:
        a = one()
        i = interrupt(upstream_tasks=[a])
        later = plus_one(a, upstream_tasks=[i])
    state = flow.run()
    assert type(state) is Cancelled
    assert state.result[a].result == 1
    assert type(state.result[later]) is Cancelled


def test_flow_can_run_again():
    with Flow("again") as flow:
        a = one()
    first, second = flow.run(), flow.run()
    assert first.result[a].result == second.result[a].result == 1
    assert first.result[a] is not second.result[a]


def test_handlers_see_the_task_context(any_executor):
    seen = []

    def handler(task, old, new):
        seen.append((plait.context.flow_name, plait.context.task_name, plait.context.map_index, new.name))

    with Flow("hc") as flow:
        plus_one.map([1, 2], task_args={"state_handlers": [handler]})
    flow.run(executor=any_executor)
    assert sorted(seen, key=str) == sorted(
        [
            ("hc", "plus_one", None, "Running"),
            ("hc", "plus_one", 0, "Running"),
            ("hc", "plus_one", 0, "Success"),
            ("hc", "plus_one", 1, "Running"),
            ("hc", "plus_one", 1, "Success"),
            ("hc", "plus_one", None, "Mapped"),
        ],
        key=str,
    )
    assert seen[0][2] is None and seen[-1] == ("hc", "plus_one", None, "Mapped")


def test_parameters_and_context_must_be_dicts():
    with Flow("types") as flow:
        one()
    with pytest.raises(ParameterError, match=r"Flow 'types': parameters must be a dict of name -> value, got int: 5"):
        flow.run(parameters=5)
    with pytest.raises(FlowRunError, match=r"Flow 'types': context must be a dict of key -> value, got list"):
        flow.run(context=["today"])


def veto_running(task, old, new):
    if isinstance(new, Running):
        return Skipped("vetoed")
    return None


def test_handler_replacing_running_decides_the_state(any_executor):
    with Flow("h") as flow:
        a = one(task_args={"state_handlers": [veto_running]})
        after = plus_one(a)
    state = flow.run(executor=any_executor)
    assert type(state.result[a]) is Skipped and state.result[a].message == "vetoed"
    assert type(state.result[after]) is Skipped


def test_flow_handler_raising_at_start_runs_nothing():
    ran = []

    @task
    def record():
        ran.append(1)

    def refuse_to_start(flow, old, new):
        if isinstance(new, Running):
            raise RuntimeError("no start")

    with Flow("fh", state_handlers=[refuse_to_start]) as flow:
        record()
    state = flow.run()
    assert type(state) is Failed and "refuse_to_start" in state.message
    assert ran == []


# --- Prefect 1's FlowRunner arguments --------------------------------------------------------------


def _pair():
    with Flow("pair") as flow:
        a = one()
        b = plus_one(a)
    return flow, a, b


def test_a_final_state_given_to_run_is_returned_without_running():
    flow, a, _b = _pair()
    given = Failed("stopped elsewhere")
    assert FlowRunner(flow).run(state=given) is given
    state = flow.run(state=Success("done"))
    assert state.is_successful() and state.message == "done"
    assert all(s.is_pending() for s in state.result.values()) and a in state.result


def test_a_flow_run_scheduled_for_later_does_not_start_and_a_due_one_does():
    from datetime import UTC, datetime, timedelta

    from plait.states import Scheduled

    flow, _a, b = _pair()
    later = Scheduled(start_time=datetime.now(UTC) + timedelta(hours=1))
    assert FlowRunner(flow).run(state=later) is later
    due = Scheduled(start_time=datetime.now(UTC) - timedelta(minutes=1))
    assert FlowRunner(flow).run(state=due).result[b].result == 2


def test_return_tasks_narrows_the_result_and_a_stranger_fails_the_run():
    flow, a, b = _pair()
    state = FlowRunner(flow).run(return_tasks=[b])
    assert state.is_successful() and list(state.result) == [b]
    assert set(FlowRunner(flow).run().result) == {a, b}  # default: every task
    bad = FlowRunner(flow).run(return_tasks=[plus_one])
    assert bad.is_failed() and "not a task of the flow" in bad.message


def test_runner_state_handlers_see_every_flow_state_change_after_the_flows_own():
    seen = []

    def flow_handler(flow, old, new):
        seen.append(("flow", new.name))

    def runner_handler(runner, old, new):
        assert isinstance(runner, FlowRunner)
        seen.append(("runner", new.name))
        if new.is_successful():
            return Success("rewritten by the runner's handler", new.result)

    flow, _a, _b = _pair()
    flow.state_handlers.append(flow_handler)
    state = FlowRunner(flow, state_handlers=[runner_handler]).run()
    assert state.message == "rewritten by the runner's handler"
    assert seen == [("flow", "Running"), ("runner", "Running"), ("flow", "Success"), ("runner", "Success")]
    with pytest.raises(TypeError, match="not callable"):
        FlowRunner(flow, state_handlers=["nope"])


def test_the_runner_has_a_logger():
    flow, _a, _b = _pair()
    FlowRunner(flow).logger.info("hello from a test")


# --- one pass (Prefect 1's FlowRunner.run) and task_states ------------------------------------


def _flaky(fail_times, **options):
    calls = []

    @task(max_retries=2, retry_delay=0, **options)
    def flaky(x=0):
        calls.append(plait.context.task_run_count)
        if len(calls) <= fail_times:
            raise ConnectionError("down")
        return x + 1

    return flaky, calls


def test_one_pass_leaves_a_retry_to_the_next_pass_and_flow_run_waits_for_it():
    from plait.states import Retrying

    flaky, calls = _flaky(1)

    @task
    def after(y):
        return y * 10

    @task
    def independent():
        return "ran"

    with Flow("one-pass") as flow:
        retried = flaky(1)
        out = after(retried)
        other = independent()
    first = FlowRunner(flow).run()
    assert isinstance(first, Running) and "flaky" in first.message
    states = first.result
    assert isinstance(states[retried], Retrying) and states[retried].run_count == 1
    assert states[out].is_pending() and states[other].result == "ran"  # the rest of the flow went on
    second = FlowRunner(flow).run(task_states=states)
    assert second.is_successful() and second.result[out].result == 20
    assert calls == [1, 2]  # attempt 2, counted from the Retrying state
    assert second.result[other] is states[other]  # finished: kept, not run again

    calls.clear()
    assert flow.run().result[out].result == 20 and calls == [1, 2]  # flow.run(): to the end
    calls.clear()
    assert FlowRunner(flow).run(wait_for_retries=True).is_successful() and calls == [1, 2]


def test_task_states_keep_failures_future_retries_pauses_and_running_states():
    from datetime import UTC, datetime, timedelta

    from plait.states import Paused, Retrying, TriggerFailed

    ran = []

    @task
    def step(name, after=None):
        ran.append(name)
        return name

    with Flow("given") as flow:
        a = step("a")
        b = step("b", a)
        c = step("c")
        d = step("d", c)
        e = step("e")
        f = step("f")
    later = Retrying(start_time=datetime.now(UTC) + timedelta(hours=1), run_count=1)
    given = {a: Failed("before"), c: later, e: Paused(), f: Running()}
    state = FlowRunner(flow).run(task_states=given)
    assert ran == []  # nothing could run: a failed, c waits for its retry, e is paused, f runs elsewhere
    assert isinstance(state, Running)
    assert state.result[a] is given[a] and isinstance(state.result[b], TriggerFailed)
    assert state.result[c] is later and state.result[d].is_pending()
    assert state.result[e] is given[e] and state.result[f] is given[f]
    # flow.run() with the same states: the pause stops the flow run
    assert isinstance(flow.run(task_states={e: Paused()}), Paused)


def test_task_states_of_a_mapped_task_keep_its_finished_children():
    from datetime import UTC, datetime, timedelta

    from plait.states import Mapped, Retrying

    seen = []

    @task(max_retries=1, retry_delay=0)
    def inverse(x):
        seen.append((x, plait.context.task_run_count))
        return 1 / x

    with Flow("children") as flow:
        out = inverse.map([4, 0, 2])
    first = FlowRunner(flow).run()
    assert isinstance(first, Running)
    children = first.result[out].map_states
    assert [type(c).__name__ for c in children] == ["Success", "Retrying", "Success"]
    again = FlowRunner(flow).run(task_states=first.result)
    # only the retrying child ran again (attempt 2), and failed for good
    assert seen[-1] == (0, 2) and len(seen) == 4
    assert [type(c).__name__ for c in again.result[out].map_states] == ["Success", "Failed", "Success"]
    assert again.result[out].map_states[0] is children[0]
    # a child with no state runs; one retrying later is kept (one pass) or waited for
    later = Retrying(start_time=datetime.now(UTC) + timedelta(hours=1), run_count=1)
    state = FlowRunner(flow).run(task_states={out: Mapped(map_states=[None, later, Success(result=9)])})
    assert isinstance(state, Running)
    kids = state.result[out].map_states
    assert kids[0].result == 0.25 and kids[1] is later and kids[2].result == 9


def test_resume_from_still_runs_again_what_did_not_succeed():
    flaky, calls = _flaky(0)

    @task
    def boom():
        raise ValueError("no")

    with Flow("resume") as flow:
        ok = flaky(1)
        bad = boom()
    first = flow.run()
    assert first.result[ok].is_successful() and first.result[bad].is_failed()
    again = flow.run(resume_from=first)
    assert again.result[ok] is first.result[ok] and again.result[bad] is not first.result[bad]
    kept = flow.run(task_states=first.result)  # Prefect 1's task_states: the failure is kept
    assert kept.result[bad] is first.result[bad]
    assert calls == [1]
