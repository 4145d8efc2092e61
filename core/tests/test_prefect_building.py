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
    with pytest.warns(UserWarning, match=r"Tasks were created but not added to the flow 'etl': <Parameter: day>"):
        with Flow("etl") as flow:
            Parameter("day")
    assert flow.parameters() == set()


def test_a_decorated_task_defined_in_a_block_but_never_called_is_reported():
    with pytest.warns(UserWarning, match="Tasks were created but not added"):
        with Flow("etl"):

            @task
            def extract():
                return 1


def test_a_copy_made_in_a_block_and_dropped_is_reported():
    template = Task(name="load")
    with pytest.warns(UserWarning, match="<Task: load>"):
        with Flow("etl"):
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
        with Flow("outer"):
            with Flow("inner"):
                Parameter("x")
    assert [str(w.message).split(":")[0] for w in caught] == ["Tasks were created but not added to the flow 'inner'"]


def test_a_block_that_raises_does_not_add_a_warning_to_the_error():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError):
            with Flow("etl"):
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
