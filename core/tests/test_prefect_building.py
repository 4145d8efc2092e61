"""Building flows as Prefect 1 users do (issue 12): the checks and warnings they rely on.

Each test states a behaviour a flow ported from Prefect 1 depends on when it is *built* (not
run): a forgotten task is reported, bad options are refused with a clear error, edges and
flows are validated. The expected behaviour is Prefect 1's, read from its docs and source.
"""

from __future__ import annotations

import warnings

import pytest

import plait
from plait import Flow, Parameter, Task, task


def _no_warnings(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [str(w.message) for w in caught]


# -- a task made in a `with Flow` block and never used ------------------------------------------


def test_a_parameter_made_in_a_flow_block_and_never_used_is_reported():
    expected = r"Tasks were created but not added to the flow 'etl': <Parameter: day>"
    with pytest.warns(UserWarning, match=expected), Flow("etl") as flow:
        Parameter("day")
    assert flow.parameters() == set()


def test_a_decorated_task_defined_in_a_block_but_never_called_is_reported():
    with pytest.warns(UserWarning, match="Tasks were created but not added"), Flow("etl"):

        @task
        def extract():
            return 1


def test_a_copy_made_in_a_block_and_dropped_is_reported():
    template = Task(name="load")
    with pytest.warns(UserWarning, match="<Task: load>"), Flow("etl"):
        template.copy()


def test_tasks_that_join_the_flow_are_not_reported():
    def build():
        with Flow("etl") as flow:
            day = Parameter("day")
            flow.add_task(Parameter("extra"))

            @task
            def extract(d):
                return [d]

            @task
            def first(rows):
                return rows

            rows = extract(day)
            first(rows[0])  # an indexing task, and its constant key
            first(task(lambda: 1)())  # a lambda task made and called in the block
        return flow

    assert _no_warnings(build) == []


def test_only_the_inner_block_reports_its_own_forgotten_task():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Flow("outer"), Flow("inner"):
            Parameter("x")
    assert [str(w.message).split(":")[0] for w in caught] == ["Tasks were created but not added to the flow 'inner'"]


def test_a_block_that_raises_does_not_add_a_warning_to_the_error():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError), Flow("etl"):
            Parameter("x")
            raise RuntimeError("boom")
    assert caught == []


def test_the_tracker_is_a_context_key_of_the_block_only():
    with Flow("etl"):
        assert plait.context.get("_unused_task_tracker") == set()
        p = Parameter("x")
        assert p in plait.context.get("_unused_task_tracker")
        plait.context.get("flow").add_task(p)
    assert "_unused_task_tracker" not in plait.context


# -- edges --------------------------------------------------------------------------------------


def test_an_edge_cannot_join_a_task_to_itself():
    t = Task()
    with pytest.raises(ValueError, match="can not connect a task to itself"):
        plait.Edge(t, t)


@pytest.mark.parametrize("key", [1, "two words", "3x", ""])
def test_an_edge_key_must_name_an_argument(key):
    with pytest.raises(ValueError, match="not a valid input name"):
        plait.Edge(Task(), Task(), key=key)


def test_an_edge_knows_its_two_tasks():
    a, b = Task(), Task()
    assert plait.Edge(a, b, key="rows").tasks == {a, b}


# -- constants and validation -------------------------------------------------------------------


@task
def double(x):
    return 2 * x


def test_a_constant_task_given_to_one_input_becomes_that_inputs_constant():
    flow = Flow("consts")
    flow.add_edge(plait.tasks.Constant(21), double, key="x")
    assert flow.tasks == {double}
    assert flow.constants[double] == {"x": 21}
    assert flow.run().result[double].result == 42


def test_a_mapped_constant_task_stays_a_task():
    flow = Flow("consts")
    numbers = plait.tasks.Constant([1, 2])
    flow.add_edge(numbers, double, key="x", mapped=True)
    assert numbers in flow.tasks
    assert flow.run().result[double].result == [2, 4]


def test_replacing_a_parameter_with_a_value_feeds_the_value_as_a_constant():
    with Flow("consts") as flow:
        x = Parameter("x")
        doubled = double(x)
    copy = flow.copy()
    copy.replace(x, 5)
    assert copy.constants[doubled] == {"x": 5}
    assert flow.constants == {}
    assert copy.run().result[doubled].result == 10


def test_values_given_as_downstream_tasks_become_constant_tasks():
    flow = Flow("consts")
    flow.set_dependencies(double, upstream_tasks=[1], downstream_tasks=[2], keyword_tasks={"x": 3})
    assert len(flow.tasks) == 3
    assert flow.constants[double] == {"x": 3}


def test_a_cycle_is_reported_by_validate_and_serialize():
    a, b = Task(name="a"), Task(name="b")
    flow = Flow("loop")
    flow.add_edge(a, b)
    flow.add_edge(b, a)
    with pytest.raises(ValueError, match=r"Cycle found in flow 'loop': (a -> b -> a|b -> a -> b)"):
        flow.validate()
    with pytest.raises(ValueError, match="Cycle found"):
        flow.serialize()


# -- task options and construction --------------------------------------------------------------


@pytest.mark.parametrize("max_retries", [0, None, False])
def test_a_retry_delay_without_retries_is_refused(max_retries):
    with pytest.raises(
        ValueError, match=r"`max_retries` argument greater than 0 must be provided if specifying a retry"
    ):
        Task(retry_delay=5, max_retries=max_retries)
    with pytest.raises(ValueError, match="so it would never retry"):
        task(retry_delay=5)(lambda: 1)
    assert Task(max_retries=2).retry_delay.total_seconds() == 0  # retries without a delay: at once


def test_retry_on_names_what_is_not_an_exception_class():
    with pytest.raises(TypeError, match="must be an exception type but got an instance of str"):
        Task(retry_on={"ValueError"}, max_retries=1)


def test_a_builtin_without_a_signature_cannot_be_a_task():
    with pytest.raises(ValueError, match=r"This function can not be inspected.*wrap it"):
        task(zip)


def test_a_subclass_given_a_task_in_its_constructor_is_warned():
    class Scale(Task):
        def __init__(self, factor, **kwargs):
            self.factor = factor
            super().__init__(**kwargs)

        def run(self, x):
            return x * self.factor

    class Triple(Scale):
        def __init__(self, **kwargs):
            super().__init__(3, **kwargs)

    assert _no_warnings(lambda: Triple()) == []
    with Flow("scale") as flow:
        x = flow.add_task(Parameter("x"))
        with pytest.warns(UserWarning, match="A Task was passed as an argument to Scale") as caught:
            scaled = Scale(x)(1)
        assert len(caught) == 1
    assert scaled.factor is x  # only a warning: the object is still made
    assert _no_warnings(lambda: Scale(2)) == []
    del flow


def test_a_subclass_that_sets_an_option_attribute_before_init_is_warned():
    class Upload(Task):
        def __init__(self, **kwargs):
            self.bucket = "raw"
            self.target = "s3://raw/out"  # Task's own `target` option
            super().__init__(**kwargs)

    with pytest.warns(UserWarning, match="`Upload` sets a `target` attribute, which is reserved"):
        up = Upload()
    assert up.target is None and up.bucket == "raw"


def test_copying_a_task_with_edges_in_the_active_flow_warns_that_they_are_not_copied():
    a, b = Task(name="a"), Task(name="b")
    with Flow("copies") as flow:
        a.set_dependencies(downstream_tasks=[b])
        with pytest.warns(UserWarning, match="You are making a copy of <Task: a>"):
            flow.add_task(a.copy())
    with Flow("other") as other:
        assert _no_warnings(lambda: other.add_task(a.copy())) == []


@pytest.mark.parametrize("function", [True, False])
def test_calling_a_task_outside_a_flow_says_how_to_run_it(function):
    if function:

        @task
        def scale(x):
            return x

        expected = "`scale.run(...)`"
    else:

        class Scale(Task):
            def run(self, x):
                return x

        scale = Scale()
        expected = "`Scale(...).run(...)`"
    with pytest.raises(ValueError, match="Could not infer an active Flow context") as info:
        scale(1)
    assert f"you need to call {expected}" in str(info.value)


# -- LOOP: each iteration is a run of its own ---------------------------------------------------


def test_each_loop_iteration_has_its_own_retries_and_run_count():
    seen = []

    @task(max_retries=1)
    def pages(step):
        loop, count = plait.context.task_loop_count, plait.context.task_run_count
        seen.append((loop, count))
        if count == 1 and loop in (2, 4):  # a transient failure on two different pages
            raise ConnectionError("flaky page")
        if loop < 5:
            raise plait.signals.LOOP(result=plait.context.get("task_loop_result", 0) + step)
        return plait.context.task_loop_result + step

    with Flow("paging") as flow:
        total = pages(1)
    state = flow.run()
    assert state.is_successful()
    assert state.result[total].result == 5
    # iterations 2 and 4 each failed once and were retried; every other run is a first attempt
    assert seen == [(1, 1), (2, 1), (2, 2), (3, 1), (4, 1), (4, 2), (5, 1)]


def test_a_loop_can_start_at_an_iteration_given_in_the_run_context():
    @task
    def countdown(step):
        if plait.context.task_loop_count < 5:
            raise plait.signals.LOOP(result=plait.context.get("task_loop_result", 0) + step)
        return plait.context.get("task_loop_result", 0) + step

    with Flow("loop") as flow:
        out = countdown(10)
    assert flow.run().result[out].result == 50
    assert flow.run(context={"task_loop_count": 5}).result[out].result == 10
    assert flow.run(context={"task_loop_count": 4}).result[out].result == 20


# -- what a task shows of itself ----------------------------------------------------------------


def test_a_tasks_signature_is_its_inputs_and_the_call_options():
    import inspect

    class Load(Task):
        def __init__(self, table="events", **kwargs):
            self.table = table
            super().__init__(**kwargs)

        def run(self, rows: list, strict: bool = False, **extra):
            return rows

    sig = inspect.signature(Load())
    assert list(sig.parameters) == ["rows", "strict", "mapped", "task_args", "upstream_tasks", "flow", "extra"]
    assert sig.parameters["rows"].annotation in (list, "list")  # as run() declares it
    assert sig.return_annotation == "Task"
    assert "table" in inspect.signature(Load).parameters  # the class still shows its constructor
    assert next(iter(inspect.signature(double).parameters)) == "x"


def test_a_target_is_the_location_of_the_tasks_result(tmp_path):
    from plait.results import LocalResult

    shared = LocalResult(dir=str(tmp_path))

    @task(target="out/{task_name}.pkl", result=shared)
    def produce():
        return 7

    assert produce.result.location == "out/{task_name}.pkl"
    assert shared.location is None  # the task has its own copy; the given result is unchanged
    with Flow("targets") as flow:
        other = produce(task_args={"target": "other.pkl"})
    assert other.result.location == "other.pkl"
    assert flow.run().result[other].result == 7
    assert (tmp_path / "other.pkl").exists()
