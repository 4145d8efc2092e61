"""Prefect 1's task utilities under the names its users know: as_task, tags, defaults_from_attrs,
and the annotations of unmapped / mapped / flatten."""

from __future__ import annotations

from datetime import UTC

import pytest

import plait
from plait import Flow, Task, task
from plait.errors import NoActiveFlowError
from plait.tasks import Constant, as_task, defaults_from_attrs, flatten, mapped, tags, unmapped


@task
def echo(x):
    return x


@task
def inc(x):
    return x + 1


class TestAsTask:
    def test_a_task_is_returned_as_it_is(self):
        t = Task()
        assert as_task(t) is t
        assert t.auto_generated is False

    @pytest.mark.parametrize("wrap", [unmapped, mapped, flatten])
    def test_wrappers_are_unwrapped(self, wrap):
        t = Task()
        assert as_task(wrap(wrap(t))) is t

    @pytest.mark.parametrize("value", [7, "text", None, (1, 2), {"k": [1, {2}]}, [[[]]], len])
    def test_a_plain_value_becomes_a_constant_that_runs_to_it(self, value):
        with Flow("f") as flow:
            c = as_task(value)
            out = echo(c)
        assert isinstance(c, Constant) and c.auto_generated is True
        assert c.value == value
        state = flow.run()
        assert state.is_successful()
        assert state.result[out].result == value

    def test_a_short_constant_is_named_by_its_value_a_long_one_by_its_type(self):
        assert as_task(4).name == "4"
        assert as_task(list(range(50))).name == "Constant[list]"

    def test_a_collection_holding_tasks_becomes_a_task_of_the_active_flow(self):
        with Flow("f") as flow:
            gathered = as_task([inc(1), 5, (inc(2), [inc(3)])])
        assert not isinstance(gathered, Constant)
        assert gathered.auto_generated is True
        assert gathered in flow.tasks
        assert flow.run().result[gathered].result == [2, 5, (3, [4])]

    def test_a_collection_holding_tasks_may_name_its_flow(self):
        flow = Flow("f")
        a = Task()
        gathered = as_task({"a": a}, flow=flow)
        assert gathered in flow.tasks and a in flow.tasks

    def test_a_collection_holding_tasks_outside_a_flow_is_a_clear_error(self):
        with pytest.raises(NoActiveFlowError, match="with Flow"):
            as_task([Task()])


class TestTags:
    def test_tasks_made_in_the_block_get_its_tags_added_to_their_own(self):
        with tags("io", "nightly"):
            plain = Task()
            own = Task(tags=["s3"])
            with tags("inner"):
                nested = Task()
        after = Task()
        assert plain.tags == {"io", "nightly"}
        assert own.tags == {"io", "nightly", "s3"}
        assert nested.tags == {"io", "nightly", "inner"}
        assert after.tags == set()

    def test_calls_in_a_flow_take_the_tags_and_the_original_keeps_its_own(self):
        @task(tags=["default"])
        def tagged():
            return 1

        with Flow("f"), plait.tags("chris"):
            called = tagged()
        assert called.tags == {"chris", "default"}
        assert tagged.tags == {"default"}


class Greet(Task):
    def __init__(self, greeting="hello", punctuation="!", **kwargs):
        self.greeting = greeting
        self.punctuation = punctuation
        super().__init__(**kwargs)

    @defaults_from_attrs("greeting", "punctuation")
    def run(self, name, greeting=None, punctuation=None):
        """Greets someone."""
        return f"{greeting} {name}{punctuation}"


class TestDefaultsFromAttrs:
    def test_left_out_arguments_come_from_the_attributes(self):
        assert Greet(greeting="hi").run("ada") == "hi ada!"

    def test_arguments_given_win_none_included(self):
        g = Greet(greeting="hi")
        assert g.run("ada", greeting="yo") == "yo ada!"
        assert g.run("ada", "hey", punctuation=None) == "hey adaNone"

    def test_the_run_method_keeps_its_name_doc_and_signature(self):
        import inspect

        assert Greet.run.__doc__ == "Greets someone."
        assert list(inspect.signature(Greet.run).parameters) == ["self", "name", "greeting", "punctuation"]

    def test_in_a_flow_the_attributes_fill_what_the_call_left_out(self):
        with Flow("f") as flow:
            out = Greet(greeting="hi")(name="bob")
            shouted = Greet()(name="bob", punctuation="!!!")
        result = flow.run().result
        assert result[out].result == "hi bob!"
        assert result[shouted].result == "hello bob!!!"

    def test_an_attribute_the_task_lacks_raises_at_run_time(self):
        class NoAttr(Task):
            @defaults_from_attrs("x")
            def run(self, x=None):
                return x

        with pytest.raises(AttributeError):
            NoAttr().run()

    def test_a_name_that_is_no_argument_is_refused_when_decorating(self):
        with pytest.raises(TypeError, match="no argument 'y'"):

            class Bad(Task):
                @defaults_from_attrs("y")
                def run(self, x=None):
                    return x


class TestAnnotations:
    def test_each_wrapper_says_what_it_does(self):
        t = Task()
        assert unmapped(t).annotations == {"mapped": False}
        assert mapped(t).annotations == {"mapped": True}
        assert flatten(t).annotations == {"flattened": True}

    def test_the_outermost_wrapper_wins(self):
        t = Task()
        assert mapped(flatten(unmapped(t))).annotations == {"mapped": True, "flattened": True}
        assert unmapped(mapped(t)).annotations == {"mapped": False}


def test_a_constant_task_passed_to_a_call_is_used_and_not_warned_about(recwarn):
    with Flow("f") as flow:
        out = echo(Constant(3))
    assert not [w for w in recwarn if "not added to the flow" in str(w.message)]
    assert flow.run().result[out].result == 3


def test_a_copy_made_in_a_tags_block_has_the_tags_and_the_original_does_not():
    original = Task()
    with Flow("f") as flow, tags("copied"):
        copy = original.copy()
        flow.add_task(copy)  # a copy is made to be used (one left unused is warned about)
    assert copy.tags == {"copied"}
    assert copy in flow
    assert original.tags == set()


@pytest.mark.parametrize("validator", ["partial_inputs_only", "partial_parameters_only"])
def test_partial_validators_without_names_let_only_the_expiry_decide(validator):
    from datetime import datetime, timedelta

    from plait import cache_validators
    from plait.states import Cached

    check = getattr(cache_validators, validator)()
    now = datetime.now(UTC)
    fresh = Cached(
        cached_inputs={"x": 1}, cached_parameters={"x": 1}, cached_result_expiration=now + timedelta(hours=1)
    )
    stale = Cached(
        cached_inputs={"x": 1}, cached_parameters={"x": 1}, cached_result_expiration=now - timedelta(hours=1)
    )
    assert check(fresh, {"x": 2}, {"x": 2}) is True
    assert check(stale, {"x": 1}, {"x": 1}) is False
    with pytest.raises(ValueError, match=validator):
        getattr(cache_validators, validator)([])
