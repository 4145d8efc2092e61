"""Retries (``max_retries``/``retry_delay``) and ``timeout`` of task runs."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

import plait
from plait import Flow, Task, task
from plait.engine.executors import LocalExecutor
from plait.states import Failed, Retrying, Success, TimedOut


@task(max_retries=3)
def third_time_lucky():
    count = plait.context.task_run_count
    if count < 3:
        raise ValueError(f"attempt {count} failed")
    return count


@task(max_retries=1)
def always_fails():
    raise ValueError(f"attempt {plait.context.task_run_count}")


def test_succeeds_on_the_third_attempt(any_executor):
    with Flow("r") as flow:
        t = third_time_lucky()
    state = flow.run(executor=any_executor)
    assert state.is_successful()
    assert state.result[t].result == 3


def test_retries_run_out(any_executor):
    with Flow("r") as flow:
        t = always_fails()
    final = flow.run(executor=any_executor).result[t]
    assert type(final) is Failed
    assert str(final.result) == "attempt 2"


def test_every_attempt_passes_through_retrying(any_executor):
    seen = []

    def handler(task, old, new):
        seen.append((old.name, new.name, getattr(new, "run_count", None)))

    with Flow("r") as flow:
        third_time_lucky(task_args={"state_handlers": [handler]})
    flow.run(executor=any_executor)
    assert seen == [  # handlers see each failure, then its retry (Prefect 1's sequence)
        ("Pending", "Running", None),
        ("Running", "Failed", None),
        ("Failed", "Retrying", 1),
        ("Retrying", "Running", None),
        ("Running", "Failed", None),
        ("Failed", "Retrying", 2),
        ("Retrying", "Running", None),
        ("Running", "Success", None),
    ]


def test_retrying_starts_retry_delay_later():
    """Retrying.start_time is retry_delay after the failure; a handler moves it to now so the
    test does not wait an hour (and shows that a returned state replaces the new one)."""
    seen: list[Retrying] = []

    def no_waiting(task, old, new):
        if isinstance(new, Retrying):
            seen.append(new)
            return Retrying(new.message, new.result, start_time=datetime.now(UTC), run_count=new.run_count)
        return None

    with Flow("r") as flow:
        t = third_time_lucky(task_args={"retry_delay": timedelta(hours=1), "state_handlers": [no_waiting]})
    state = flow.run()
    assert state.result[t].result == 3
    assert len(seen) == 2
    for retrying in seen:
        ahead = retrying.start_time - retrying.datetime
        assert timedelta(minutes=59) < ahead <= timedelta(hours=1)
        assert "retrying in 3600s" in retrying.message
        assert isinstance(retrying.result, ValueError)


def test_a_waiting_retry_does_not_block_other_tasks():
    order = []

    @task(max_retries=1, retry_delay=0.05)
    def flaky():
        order.append(("flaky", plait.context.task_run_count))
        if plait.context.task_run_count == 1:
            raise ValueError("first")

    @task
    def other():
        order.append(("other", 1))

    with Flow("r") as flow:
        flaky()
        other()
    assert flow.run(executor=LocalExecutor()).is_successful()
    assert order.index(("flaky", 1)) < order.index(("other", 1)) < order.index(("flaky", 2))


def test_retry_delay_applies_to_mapped_children(executor):
    @task(max_retries=1, retry_delay=0.05)
    def flaky_child(x):
        if x == 1 and plait.context.task_run_count == 1:
            raise ValueError("first")
        return (x, plait.context.task_run_count)

    with Flow("r") as flow:
        out = flaky_child.map([0, 1, 2])
    state = flow.run(executor=executor)
    assert state.result[out].result == [(0, 1), (1, 2), (2, 1)]


def test_bad_retry_options():
    with pytest.raises(ValueError, match="max_retries must be an integer >= 0, got -1"):
        task(max_retries=-1)(lambda: None)
    with pytest.raises(ValueError, match="retry_delay cannot be negative"):
        task(max_retries=1, retry_delay=-1)(lambda: None)
    with pytest.raises(TypeError, match="retry_delay must be seconds or a timedelta"):
        task(max_retries=1, retry_delay="1s")(lambda: None)
    with pytest.raises(ValueError, match="timeout must be positive"):
        task(timeout=timedelta(0))(lambda: None)


def test_options_accept_seconds_or_timedelta():
    t = task(max_retries=1, retry_delay=2, timeout=1.5)(lambda: None)
    assert t.retry_delay == timedelta(seconds=2) and t.timeout == timedelta(seconds=1.5)
    t = Task(timeout=timedelta(minutes=1))
    assert t.timeout == timedelta(minutes=1)


# -- timeouts -----------------------------------------------------------------------------


@pytest.fixture
def release():
    """An event a blocking task waits on; set after the test so abandoned runs end."""
    event = threading.Event()
    yield event
    event.set()


def test_timeout_ends_the_run_timed_out(executor, release):
    @task(timeout=0.05)
    def blocks():
        release.wait(30)
        return "finished"

    @task
    def downstream(x):
        return x

    with Flow("t") as flow:
        b = blocks()
        d = downstream(b)
    state = flow.run(executor=executor)
    final = state.result[b]
    assert type(final) is TimedOut
    assert final.is_failed()
    assert "'blocks' timed out after 0.05s" in final.message
    assert not release.is_set()  # the run was abandoned, not finished
    assert state.is_failed()
    assert state.result[d].name == "TriggerFailed"


def test_timeout_then_retry_succeeds(executor, release):
    # the second attempt must beat the timeout even on a loaded machine: keep it generous
    @task(timeout=0.5, max_retries=1)
    def slow_then_fast():
        if plait.context.task_run_count == 1:
            release.wait(30)
        return plait.context.task_run_count

    with Flow("t") as flow:
        t = slow_then_fast()
    final = flow.run(executor=executor).result[t]
    assert type(final) is Success
    assert final.result == 2


def test_timeout_on_a_fast_task_returns_its_value_and_errors(executor):
    @task(timeout=30)
    def fast():
        return plait.context.task_name

    @task(timeout=30)
    def broken():
        raise KeyError("missing")

    with Flow("t") as flow:
        f = fast()
        b = broken()
    state = flow.run(executor=executor)
    assert state.result[f].result == "fast"  # context reaches the guarded thread
    assert isinstance(state.result[b].result, KeyError)
    assert type(state.result[b]) is Failed


def test_timeout_on_every_attempt_ends_timed_out(executor, release, tmp_path):
    attempts = tmp_path / "attempts"  # a timed run happens in its own process: count in a file

    @task(timeout=0.05, max_retries=1)
    def always_blocks():
        with attempts.open("a") as f:
            f.write(f"{plait.context.task_run_count}\n")
        release.wait(30)

    with Flow("t") as flow:
        t = always_blocks()
    final = flow.run(executor=executor).result[t]
    assert type(final) is TimedOut
    assert attempts.read_text().split() == ["1", "2"]


def test_timeout_with_log_stdout_logs_the_prints(caplog):
    caplog.set_level("INFO", logger="plait")

    @task(timeout=30, log_stdout=True)
    def chatty():
        print("inside the guarded thread")
        return 1

    with Flow("t") as flow:
        chatty()
    assert flow.run().is_successful()
    (record,) = [r for r in caplog.records if r.getMessage() == "inside the guarded thread"]
    assert record.task_name == "chatty"


_never_set = threading.Event()


@task(timeout=0.05)
def blocks_in_a_worker():
    _never_set.wait(60)  # abandoned in the worker; a daemon thread ends with the worker


def test_timeout_on_processes():
    from plait.engine.executors import ProcessExecutor

    with Flow("t") as flow:
        b = blocks_in_a_worker()
    final = flow.run(executor=ProcessExecutor(1)).result[b]
    assert type(final) is TimedOut
    assert "timed out after 0.05s" in final.message
