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
    with Flow("nout"), pytest.raises(TypeError, match=r"Task is not iterable: give task 'pair' nout=N"):
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


def test_a_task_and_its_copies_store_only_the_options_they_change():
    # The defaults live on Task: a plain task and its copies keep a few attributes of their own,
    # and no list of state handlers until one is asked for (a big flow copies them per task).
    defaults = {"max_retries", "retry_delay", "trigger", "tags", "cache_validator", "state_handlers", "nout"}
    original = task(plain.run)
    with Flow("f") as flow:
        a = original(1)
        b = with_options(a)
    assert not defaults & set(original.__dict__) and not defaults & set(a.__dict__)
    assert {"max_retries", "trigger", "tags", "state_handlers", "nout"} <= set(b.__dict__)
    assert flow.run().is_successful() and "state_handlers" not in a.__dict__  # running made none
    assert (a.max_retries, a.retry_delay, a.trigger, a.tags) == (0, timedelta(0), triggers.all_successful, set())
    restored = pickle.loads(pickle.dumps(a))
    assert restored.options() == a.options() and restored.trigger is triggers.all_successful


def test_a_subclass_that_keeps_its_state_handlers_in_a_property_has_them_called():
    # Task's default for state_handlers lives on the class; a subclass that defines its own
    # (here a property that keeps the handlers elsewhere) is still what the runner reads.
    seen = []

    def record(task, old, new):
        seen.append(type(new).__name__)

    class Watched(Task):
        @property
        def state_handlers(self):
            return self._watchers

        @state_handlers.setter
        def state_handlers(self, handlers):
            self._watchers = [*handlers, record]

        def run(self, x):
            return x

    with Flow("watched") as flow:
        Watched()(1)
    assert flow.run().is_successful()
    assert seen == ["Running", "Success"]
    assert Watched().options()["state_handlers"] == [record.__qualname__]


def test_an_option_a_subclass_defines_on_its_class_is_still_replaced_by_init():
    class Patient(Task):
        max_retries = 3  # not how options are given: Task.__init__ sets the task's own

    class Later(Task):
        pass

    Later.timeout = timedelta(seconds=1)  # set on a class after it was made
    assert Patient().max_retries == 0 and Patient(max_retries=1).max_retries == 1
    assert Later().timeout is None and Later(timeout=2).timeout == timedelta(seconds=2)


class Flaky(Task):
    def run(self):
        raise ValueError("flaky")


def test_a_task_stored_before_newer_options_still_runs():
    # A task pickled (or stored with a flow) by a Plait without retry_on and task_run_name has
    # neither in its __dict__; the runner reads them as plain attributes on every task run.
    # (A task now stores only the options it changes from their defaults: these two are not
    # in its __dict__ either way.)
    old = Flaky(name="old", max_retries=1)
    for option in ("retry_on", "task_run_name"):
        old.__dict__.pop(option, None)
    old = pickle.loads(pickle.dumps(old))
    assert "retry_on" not in old.__dict__ and old.retry_on is None and old.task_run_name is None
    with Flow("stored") as flow:
        flow.add_task(old)
    state = flow.run()
    final = state.result[old]
    assert type(final) is Failed and "flaky" in final.message
    assert final.result.args == ("flaky",)


# --- Prefect 1's Task API ------------------------------------------------------------------------

import plait  # noqa: E402 - the section's own imports
from plait import Parameter  # noqa: E402


@task
def one():
    return 1


def test_linking_tasks_outside_a_flow_says_no_flow_was_passed():
    from plait.errors import NoActiveFlowError
    from plait.tasks import Task

    a, b = Task(), Task()
    for link in (lambda: a.set_upstream(b), lambda: a.set_downstream(b), lambda: a.set_dependencies()):
        with pytest.raises(ValueError, match="No Flow was passed") as caught:
            link()
        assert isinstance(caught.value, NoActiveFlowError)
    with pytest.raises(ValueError, match="called outside a flow"):
        a.bind()


def test_set_upstream_downstream_and_dependencies_return_the_task_for_chaining():
    from plait.tasks import Task

    a, b, c = Task(name="a"), Task(name="b"), Task(name="c")
    with Flow("chain") as flow:
        assert a.set_downstream(b) is a
        assert c.set_upstream(b) is c
        assert c.set_dependencies(flow, upstream_tasks=[a]) is c
    assert flow.upstream_tasks(c) == {a, b}


def test_tags_set_in_the_context_go_to_tasks_made_or_bound_there():
    from plait.tasks import Task

    with plait.context(tags=["team-a"]):
        made = Task(tags=["etl"])
    assert made.tags == {"etl", "team-a"}
    base = Task(tags=["math"])
    with plait.context(tags=["nightly"]), Flow("tags"):
        bound = base(task_args={"tags": ["extra"]})
    assert bound.tags == {"math", "extra", "nightly"}
    assert base.tags == {"math"}


def test_task_args_naming_an_unknown_option_is_an_attribute_error():
    from plait.tasks import Task

    with Flow("bad-args"), pytest.raises(AttributeError, match="no option 'foo'"):
        Task()(task_args={"foo": "bar"})


def test_reserved_run_parameters_and_varargs_are_value_errors():
    from plait.tasks import Task

    with pytest.raises(ValueError, match="reserved"):

        class Mapped(Task):
            def run(self, x, mapped=None):
                pass

    with pytest.raises(ValueError, match=r"cannot take \*rest"):
        task(lambda x, *rest: None)


def test_inputs_and_outputs_describe_run():
    from typing import Any

    @task
    def scale(x, factor: int = 2) -> float:
        return x * factor

    assert scale.inputs() == {
        "x": {"type": Any, "required": True, "default": None},
        "factor": {"type": int, "required": False, "default": 2},
    }
    assert scale.outputs() is float
    assert task(lambda: 1).outputs() is Any


def test_nout_comes_from_a_fixed_tuple_annotation():
    @task
    def pair(x) -> tuple[int, str]:
        return x, str(x)

    @task
    def any_length(x) -> tuple[int, ...]:
        return (x,)

    assert pair.nout == 2 and any_length.nout is None
    with Flow("unpack") as flow:
        n, s = pair(7)
    state = flow.run()
    assert (state.result[n].result, state.result[s].result) == (7, "7")


def test_a_mapped_task_cannot_be_unpacked():
    @task(nout=2)
    def pair(x):
        return x, x

    with Flow("mapped-unpack"), pytest.raises(TypeError, match="is mapped"):
        _a, _b = pair.map([1, 2])


def test_retry_on_needs_retries():
    with pytest.raises(ValueError, match="`max_retries` must be provided"):
        task(retry_on=ConnectionError)(lambda: None)


def test_a_task_logs_through_the_run_logger(caplog):
    class Loud(plait.Task):
        def run(self):
            self.logger.warning("hello from %s", self.name)
            return plait.context.logger is self.logger

    with Flow("logs") as flow:
        out = Loud()()
    assert flow.run().result[out].result is True
    assert "hello from Loud" in caplog.text


def test_a_parameter_called_joins_the_flow_and_copies_under_another_name():
    with Flow("params") as flow:
        x = Parameter("x", default=1)()
    assert x in flow
    lone = Flow("lone")
    Parameter("y")(flow=lone)
    assert [p.name for p in lone.parameters()] == ["y"]
    z = x.copy("z")
    assert (z.name, z.slug, z.default) == ("z", "z", 1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'mapped'"), Flow("bad"):
        Parameter("w")(mapped=True)  # the error leaves the flow block, as in a user's code


def test_a_datetime_parameter_parses_strings():
    from datetime import UTC, datetime

    from plait.tasks import DateTimeParameter

    with Flow("dates") as flow:
        when = DateTimeParameter("when", required=False)()
    moment = datetime(2026, 3, 1, 6, 30, tzinfo=UTC)
    assert flow.run(when=moment.isoformat()).result[when].result == moment
    assert flow.run(when=moment).result[when].result is moment
    assert flow.run().result[when].result is None
    assert flow.run(when="not a date").result[when].is_failed()


def test_collection_tasks_gather_their_inputs():
    from plait.tasks import Dict, List, Set, Tuple

    with Flow("collections") as flow:
        as_list = List().bind(1, one())
        as_tuple = Tuple().bind(*range(12))
        as_set = Set().bind(1, 1, 2)
        as_dict = Dict().bind(keys=["a", None], values=[1, 2])
        bad_dict = Dict().bind(keys=["a"], values=[1, 2])
    state = flow.run()
    assert state.result[as_list].result == [1, 1]
    assert state.result[as_tuple].result == tuple(range(12))
    assert state.result[as_set].result == {1, 2}
    assert state.result[as_dict].result == {"a": 1, None: 2}
    assert isinstance(state.result[bad_dict].result, ValueError)
    assert {e.key for e in flow.edges_to(as_list)} == {"arg_2"}
    assert flow.constants[as_list] == {"arg_1": 1}


def test_mapped_maps_over_one_argument_of_a_plain_call():
    from plait.tasks import mapped

    @task
    def scale(x, factor):
        return x * factor

    with Flow("one-mapped") as flow:
        out = scale(x=mapped([1, 2, 3]), factor=10)
        from_task = scale(x=mapped(Parameter("xs", default=[4, 5])), factor=one())
    state = flow.run()
    assert state.result[out].result == [10, 20, 30]
    assert state.result[from_task].result == [4, 5]


def test_operators_on_tasks_build_tasks_that_compute_when_the_flow_runs(any_executor):
    from plait import Parameter
    from plait.control_flow import case
    from plait.tasks import Operator

    with Flow("operators") as flow:
        x = Parameter("x", default=7)
        two = one() + 1
        results = {
            "add": x + 1, "radd": 1 + x, "sub": x - two, "rsub": 10 - x, "mul": x * two, "rmul": 3 * x,
            "div": x / two, "rdiv": 14 / x, "floordiv": x // two, "rfloordiv": 15 // x, "mod": x % 4,
            "rmod": 9 % x, "pow": two**3, "rpow": 2**two, "gt": x > 6, "ge": x >= 8, "lt": x < two,
            "le": two <= 2, "and": two & 0, "rand": True & x,
        }  # fmt: skip
        with case(x > 5, False):
            skipped = x * 100
    state = flow.run(executor=any_executor)
    assert state.is_successful()
    got = {k: state.result[t].result for k, t in results.items()}
    assert got == {
        "add": 8, "radd": 8, "sub": 5, "rsub": 3, "mul": 14, "rmul": 21, "div": 3.5, "rdiv": 2.0,
        "floordiv": 3, "rfloordiv": 2, "mod": 3, "rmod": 2, "pow": 8, "rpow": 4, "gt": True, "ge": False,
        "lt": False, "le": True, "and": False, "rand": True,
    }  # fmt: skip
    assert state.result[skipped].is_skipped()
    assert isinstance(results["add"], Operator) and results["add"].name == "Add"
    with Flow("named") as named:
        p = Parameter("p")
        checks = {"eq": p.is_equal(3), "ne": p.is_not_equal(3), "or": p.or_(0), "not": p.not_()}
    for value, expected in [(3, {"eq": True, "ne": False, "or": True, "not": False}),
                            (0, {"eq": False, "ne": True, "or": False, "not": True})]:  # fmt: skip
        ran = named.run(parameters={"p": value}, executor=any_executor)
        assert {k: ran.result[t].result for k, t in checks.items()} == expected
    assert {e.upstream_task for e in flow.edges_to(results["sub"])} == {x, two}
    # tasks still compare and hash as themselves
    assert x == x and x != two and len({x, two, x}) == 2
    assert pickle.loads(pickle.dumps(results["gt"])).run(2, 1) is True


def test_an_operator_outside_a_flow_says_so_and_unknown_operations_are_refused():
    from plait.errors import NoActiveFlowError
    from plait.tasks import Operator

    with pytest.raises(NoActiveFlowError):
        Task(name="alone") + 1
    with pytest.raises(ValueError, match="unknown operation 'Xor'"):
        Operator("Xor")
