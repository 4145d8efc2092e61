"""plait/signals.py: a task chooses its own state."""

from __future__ import annotations

import plait
from plait import Flow, signals, task
from plait.states import Failed, Skipped, Success, TriggerFailed


@task
def fail():
    raise signals.FAIL("bad input")


@task
def skip():
    raise signals.SKIP("nothing to do")


@task
def succeed():
    raise signals.SUCCESS("early exit", result=7)


@task
def end_run():
    raise signals.ENDRUN(Skipped("ended by hand", result="r"))


@task
def echo(x=None):
    return ("ran", x)


@task(max_retries=2)
def retry_once():
    if plait.context.task_run_count == 1:
        raise signals.RETRY("again please")
    return plait.context.task_run_count


@task
def retry_without_retries():
    if plait.context.task_run_count < 3:
        raise signals.RETRY("again please")
    return plait.context.task_run_count


def test_fail(any_executor):
    with Flow("s") as flow:
        f = fail()
        after = echo(f)
    state = flow.run(executor=any_executor)
    assert type(state.result[f]) is Failed
    assert state.result[f].message == "bad input"
    assert isinstance(state.result[f].result, signals.FAIL)
    assert type(state.result[after]) is TriggerFailed
    assert state.is_failed()


def test_skip_propagates_downstream(any_executor):
    with Flow("s") as flow:
        s = skip()
        after = echo(s)
        after_after = echo(after)
    state = flow.run(executor=any_executor)
    assert type(state.result[s]) is Skipped
    assert state.result[s].message == "nothing to do"
    assert type(state.result[after]) is Skipped
    assert type(state.result[after_after]) is Skipped
    assert state.is_successful()


def test_skip_on_upstream_skip_false_runs_anyway(executor):
    with Flow("s") as flow:
        s = skip()
        after = echo(s, task_args={"skip_on_upstream_skip": False})
    state = flow.run(executor=executor)
    assert type(state.result[after]) is Success
    assert state.result[after].result == ("ran", None)


def test_success_signal_sets_result(executor):
    with Flow("s") as flow:
        s = succeed()
        after = echo(s)
    state = flow.run(executor=executor)
    assert type(state.result[s]) is Success
    assert state.result[s].message == "early exit"
    assert state.result[after].result == ("ran", 7)


def test_retry_signal_runs_again(any_executor):
    with Flow("s") as flow:
        r = retry_once()
    state = flow.run(executor=any_executor)
    assert type(state.result[r]) is Success
    assert state.result[r].result == 2


def test_retry_signal_retries_even_without_retries_left():
    # Prefect 1's rule: RETRY is the task's own decision, not limited by max_retries
    with Flow("s") as flow:
        r = retry_without_retries()
    final = flow.run().result[r]
    assert type(final) is Success
    assert final.result == 3


def test_endrun_sets_the_given_state(any_executor):
    with Flow("s") as flow:
        e = end_run()
    final = flow.run(executor=any_executor).result[e]
    assert type(final) is Skipped
    assert final.message == "ended by hand" and final.result == "r"


def test_fail_signal_is_retried_like_an_error():
    calls = []

    @task(max_retries=1)
    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise signals.FAIL("first time")
        return "ok"

    with Flow("s") as flow:
        f = flaky()
    assert flow.run().result[f].result == "ok"
    assert len(calls) == 2


@task
def pause():
    raise signals.PAUSE("waiting for approval")


def test_pause_signal_pauses_the_task_and_the_flow(executor):
    with Flow("s") as flow:
        p = pause()
        later = echo(p)
    state = flow.run(executor=executor)
    assert state.result[p].name == "Paused" and state.result[p].message == "waiting for approval"
    assert state.name == "Paused" and "pause" in state.message
    assert not state.result[later].is_finished()


# --- Prefect 1's signal API --------------------------------------------------------------------


def test_validationfail_ends_the_task_validation_failed():
    from plait.states import ValidationFailed

    @task
    def check():
        raise signals.VALIDATIONFAIL("result out of range")

    with Flow("validate") as flow:
        out = check()
    state = flow.run().result[out]
    assert type(state) is ValidationFailed and state.is_failed()
    assert state.message == "result out of range"


def test_signal_from_state_gives_the_signal_that_makes_that_kind_of_state():
    from plait.states import Paused, Retrying, ValidationFailed

    pairs = [
        (Failed(), signals.FAIL),
        (TriggerFailed(), signals.TRIGGERFAIL),
        (ValidationFailed(), signals.VALIDATIONFAIL),
        (Success(), signals.SUCCESS),
        (Skipped(), signals.SKIP),
        (Retrying(), signals.RETRY),
        (Paused(), signals.PAUSE),
    ]
    for state, signal in pairs:
        assert signals.signal_from_state(state) is signal


def test_retry_takes_its_time_and_run_count_when_raised():
    from datetime import UTC, datetime

    before = datetime.now(UTC)
    with plait.context(task_run_count=3):
        sig = signals.RETRY("again")
    state = sig.state  # built after the block: the count was taken when the signal was made
    assert state.run_count == 3
    assert before <= state.start_time <= datetime.now(UTC)
    assert signals.RETRY(run_count=7).state.run_count == 7


def test_a_signal_given_an_option_its_state_does_not_take_says_so():
    import pytest

    with pytest.raises(TypeError, match=r"SUCCESS.*'bad_result'"):
        signals.SUCCESS(bad_result=100)


def test_retry_at_a_naive_time_is_due_at_that_time_in_utc():
    from datetime import UTC, datetime, timedelta

    from plait.testing import run_task

    at = datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=5)

    @plait.task
    def later():
        raise signals.RETRY(start_time=at)

    state = run_task(later)
    assert state.is_retrying()
    assert state.start_time == at.replace(tzinfo=UTC)
