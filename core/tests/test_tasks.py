"""plait/tasks.py: making tasks, their options, unpacking and picking results."""

from __future__ import annotations

import pickle
from datetime import timedelta

import pytest

from plait import Flow, Task, task, triggers
from plait.errors import TaskBindError
from plait.states import Failed, Success
from plait.tasks import FunctionTask


@task
def plain(x):
    """Doubles x."""
    return 2 * x


def handler(task, old, new):
    return None


def on_failure(task, state):
    return None


@task(
    name="configured",
    tags=["io", "slow"],
    max_retries=2,
    retry_delay=timedelta(seconds=3),
    timeout=10,
    trigger=triggers.all_finished,
    skip_on_upstream_skip=False,
    state_handlers=[handler],
    on_failure=on_failure,
    nout=2,
    log_stdout=True,
)
def with_options(x):
    return x, -x


@task
def pair():
    return 1, 2


@task
def record():
    return {"id": 7, "rows": [1, 2, 3]}


def test_task_without_options():
    assert isinstance(plain, FunctionTask)
    assert plain.name == "plain" and plain.__doc__ == "Doubles x."
    assert plain.run(4) == 8
    assert plain.max_retries == 0 and plain.retry_delay == timedelta(0) and plain.timeout is None
    assert plain.trigger is triggers.all_successful
    assert plain.skip_on_upstream_skip is True
    assert plain.tags == frozenset() and plain.state_handlers == [] and plain.on_failure is None
    assert plain.nout is None and plain.log_stdout is False


def test_task_with_options():
    t = with_options
    assert t.name == "configured"
    assert t.tags == {"io", "slow"}
    assert t.max_retries == 2 and t.retry_delay == timedelta(seconds=3)
    assert t.timeout == timedelta(seconds=10)
    assert t.trigger is triggers.all_finished
    assert t.skip_on_upstream_skip is False
    assert t.state_handlers == [handler] and t.on_failure is on_failure
    assert t.nout == 2 and t.log_stdout is True
    assert t.options()["trigger"] == "all_finished"
    assert t.options()["timeout"] == 10.0


class Multiply(Task):
    def __init__(self, factor, **kwargs):
        self.factor = factor
        super().__init__(**kwargs)

    def run(self, x, extra=0):
        return x * self.factor + extra


def test_task_subclass(any_executor):
    m = Multiply(3, name="triple")
    assert m.name == "triple" and Multiply(2).name == "Multiply"
    with Flow("sub") as flow:
        a = m(2)
        b = m(a, extra=1)
    state = flow.run(executor=any_executor)
    assert state.result[a].result == 6
    assert state.result[b].result == 19


def test_base_task_run_does_nothing_and_returns_none():
    # Prefect 1's rule: a plain Task() is a placeholder or an ordering point
    with Flow("sub") as flow:
        t = Task(name="empty")
        flow.add_task(t)
    final = flow.run().result[t]
    assert type(final) is Success and final.result is None


def test_run_with_star_args_or_reserved_names_is_refused():
    with pytest.raises(TaskBindError, match=r"run\(\) cannot take \*items"):

        @task
        def star(*items):
            return items

    with pytest.raises(TaskBindError, match="'upstream_tasks' is reserved"):

        class Reserved(Task):
            def run(self, upstream_tasks):
                return upstream_tasks


def test_task_needs_a_function():
    with pytest.raises(TypeError, match="@task needs a function, got 3"):
        task(3)


def test_nout_unpacking(executor):
    with Flow("nout") as flow:
        first, second = with_options(5)
        got = plain(second)
    state = flow.run(executor=executor)
    assert state.result[first].result == 5
    assert state.result[second].result == -5
    assert state.result[got].result == -10
    assert first.name == "configured[0]"


def test_unpacking_without_nout_explains_the_fix():
    with Flow("nout"), pytest.raises(TypeError, match=r"Task 'pair' is not iterable: give it nout=N"):
        _a, _b = pair()


def test_getitem_picks_from_the_result(executor):
    with Flow("item") as flow:
        r = record()
        ident = r["id"]
        first_row = r["rows"][0]
        doubled = plain(r["id"])
    state = flow.run(executor=executor)
    assert state.result[ident].result == 7
    assert state.result[first_row].result == 1
    assert state.result[doubled].result == 14
    assert ident.name == "record['id']"


def test_getitem_on_missing_key_fails_that_task():
    with Flow("item") as flow:
        missing = record()["nope"]
    final = flow.run().result[missing]
    assert type(final) is Failed and isinstance(final.result, KeyError)


def test_task_args_override_options_on_the_copy():
    with Flow("copy"):
        t = plain(1, task_args={"max_retries": 4, "name": "renamed"})
    assert t.max_retries == 4 and t.name == "renamed"
    assert plain.max_retries == 0 and plain.name == "plain"
    with Flow("copy"), pytest.raises(TaskBindError, match="has no option 'retries'"):
        plain(1, task_args={"retries": 4})


def test_bad_nout():
    with pytest.raises(ValueError, match="nout must be a positive integer, got 0"):
        task(nout=0)(lambda: (1,))


def test_function_task_pickles_by_reference():
    copied = pickle.loads(pickle.dumps(plain))
    assert copied.run is plain.run
    assert copied.name == "plain"
    shipped = pickle.loads(pickle.dumps(with_options))
    assert shipped.state_handlers == [] and shipped.on_failure is None
    assert shipped.trigger is triggers.all_successful  # triggers run in the driver only


def test_repr():
    assert repr(plain) == "<Task: plain>"


def test_binding_keeps_trigger_on_failure_and_handlers():
    """Calling a task copies it; the copy must keep every driver-side option."""
    with Flow("keep") as flow:
        bound = with_options(1)
    assert bound is not with_options
    assert bound.trigger is triggers.all_finished
    assert bound.on_failure is on_failure
    assert bound.state_handlers == [handler] and bound.state_handlers is not with_options.state_handlers
    assert bound.tags == with_options.tags and bound.timeout == with_options.timeout
    assert flow.serialize()["tasks"][0]["options"]["trigger"] == "all_finished"


def test_decorator_on_failure_is_called_after_binding():
    calls = []

    @task(on_failure=lambda t, s: calls.append(s.name))
    def fails():
        raise ValueError("x")

    with Flow("keep") as flow:
        fails()
    flow.run()
    assert calls == ["Failed"]


def test_task_args_are_checked_and_normalized_like_options():
    with Flow("args") as flow:
        t = plain(1, task_args={"retry_delay": 0, "timeout": 5, "tags": ["a", "b"], "max_retries": 1})
    assert t.retry_delay == timedelta(0) and t.timeout == timedelta(seconds=5)
    assert t.tags == frozenset({"a", "b"})
    assert flow.get_tasks(tags=["a"]) == [t]
    assert flow.run().result[t].result == 2
    with Flow("args"):
        with pytest.raises(ValueError, match=r"Task 'plain': timeout cannot be negative, got -1"):
            plain(1, task_args={"timeout": -1})
        with pytest.raises(TypeError, match=r"Task 'plain': retry_delay must be seconds or a timedelta, got '5s'"):
            plain(1, task_args={"retry_delay": "5s"})
        with pytest.raises(ValueError, match=r"max_retries must be an integer >= 0, got 'two'"):
            plain(1, task_args={"max_retries": "two"})
        with pytest.raises(TypeError, match="trigger must be callable"):
            plain(1, task_args={"trigger": "always"})
    with pytest.raises(TypeError, match=r"tags must be a collection of strings, got the string 'io'"):
        task(tags="io")(lambda: None)


class Flaky(Task):
    def run(self):
        raise ValueError("flaky")


def test_a_task_stored_before_newer_options_still_runs():
    # A task pickled (or stored with a flow) by a Plait without retry_on and task_run_name has
    # neither in its __dict__; the runner reads them as plain attributes on every task run.
    old = Flaky(name="old", max_retries=1)
    for option in ("retry_on", "task_run_name"):
        del old.__dict__[option]
    old = pickle.loads(pickle.dumps(old))
    assert "retry_on" not in old.__dict__ and old.retry_on is None and old.task_run_name is None
    with Flow("stored") as flow:
        flow.add_task(old)
    state = flow.run()
    final = state.result[old]
    assert type(final) is Failed and "flaky" in final.message
    assert final.result.args == ("flaky",)
