"""Building flows stays linear and cheap (plait/flow.py, plait/tasks.py binding).

Speed itself is measured in benchmarks/ (``build us`` and ``plan us`` in ``make bench``); these
tests pin the *shape* of the cost without timing anything: how many times a signature is
read, and how much Python code runs, for a flow of N tasks against one of 2N.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import plait
from plait import Flow, Task, task, unmapped
from plait.engine.runner import _plan
from plait.errors import TaskBindError
from plait.tasks import _Binder


def inc(x):
    return x + 1


def one():
    return 1


def total(xs):
    return sum(xs)


def gather(**items):
    return sorted(items)


def chain(n: int) -> Flow:
    t_inc = task(inc)
    with Flow("chain") as flow:
        x = t_inc(0)
        for _ in range(n - 1):
            x = t_inc(x)
    return flow


def fan_out(n: int) -> Flow:
    t_one, t_inc = task(one), task(inc)
    with Flow("fan-out") as flow:
        src = t_one()
        for _ in range(n):
            t_inc(src)
    return flow


def fan_in(n: int) -> Flow:
    # The shape: total([t(i) for i in range(n)]), a list of n tasks into one.
    t_inc, t_total = task(inc), task(total)
    with Flow("fan-in") as flow:
        t_total([t_inc(i) for i in range(n)])
    return flow


def fan_in_ordering(n: int) -> Flow:
    t_inc, t_one = task(inc), task(one)
    with Flow("fan-in-ordering") as flow:
        t_one(upstream_tasks=[t_inc(i) for i in range(n)])
    return flow


def fan_in_imperative(n: int) -> Flow:
    # add_edge with a key for each input of one **kwargs task: each add checks the key is free.
    flow = Flow("fan-in-imperative")
    t_one, sink = task(one), task(gather).copy()
    for i in range(n):
        flow.add_edge(t_one.copy(), sink, key=f"item_{i}")
    return flow


def mapped(n: int) -> Flow:
    t_inc, t_total = task(inc), task(total)
    with Flow("map") as flow:
        t_total(t_inc.map(list(range(n))))
    return flow


SHAPES = [chain, fan_out, fan_in, fan_in_ordering, fan_in_imperative, mapped]


def lines_run(fn: Callable[[], object]) -> int:
    """How many lines of Plait's own code run during ``fn()`` (a deterministic count of work)."""
    package = str(Path(plait.__file__).parent)
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if not frame.f_code.co_filename.startswith(package):
            return None
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count


def build_and_plan(shape: Callable[[int], Flow], n: int) -> None:
    flow = shape(n)
    flow.validate()
    _plan(flow)


@pytest.mark.parametrize("shape", SHAPES, ids=[s.__name__ for s in SHAPES])
def test_building_validating_and_planning_grow_linearly(shape):
    build_and_plan(shape, 10)  # first use of each function: signatures, caches
    small = lines_run(lambda: build_and_plan(shape, 400))
    large = lines_run(lambda: build_and_plan(shape, 800))
    # Twice the tasks, twice the work; a scan of a task's edges for each new edge (the
    # quadratic fan-in of old) makes this about 3x at these sizes, and grows with n.
    assert large <= 2.1 * small, f"{shape.__name__}: {small} lines for 400 tasks, {large} for 800"


@pytest.mark.parametrize("shape", SHAPES, ids=[s.__name__ for s in SHAPES])
def test_building_reads_each_signature_once(shape, monkeypatch):
    calls = []
    real = inspect.signature

    def counting(obj, *args, **kwargs):
        calls.append(obj)
        return real(obj, *args, **kwargs)

    monkeypatch.setattr(inspect, "signature", counting)
    build_and_plan(shape, 300)
    # inc, one, total, gather, Collection.run: each read at most once, whatever the size.
    assert len(calls) <= 3, [getattr(c, "__qualname__", c) for c in calls]


def test_each_call_of_a_task_reads_no_signature(monkeypatch):
    @task
    def add(x, y=1):
        return x + y

    with Flow("warm"):
        add(1)
    calls = []
    real = inspect.signature
    monkeypatch.setattr(inspect, "signature", lambda obj, *a, **k: calls.append(obj) or real(obj, *a, **k))
    with Flow("f") as flow:
        x = add(1)
        for _ in range(50):
            x = add(x, y=2)
    assert calls == []
    assert len(flow) == 51
    assert flow.run().result[x].result == 1 + 1 + 50 * 2


# -- the quick binder agrees with inspect ------------------------------------------------


def _pos_kw(a, b, c=3): ...
def _kw_only(a, *, b, c=3): ...
def _var_kw(a, b=2, **rest): ...
def _nothing(): ...
def _pos_only(a, /, b, c=3): ...
def _all(a, b=2, *, c, d=4, **rest): ...


CALLS = [
    ((), {}),
    ((1,), {}),
    ((1, 2), {}),
    ((1, 2, 3), {}),
    ((1, 2, 3, 4), {}),
    ((), {"a": 1}),
    ((), {"b": 2, "a": 1}),
    ((1,), {"c": 3, "b": 2}),
    ((1,), {"a": 1}),
    ((), {"z": 0}),
    ((1,), {"z": 0, "c": 5}),
    ((1,), {"rest": 9}),
    ((), {"d": 4, "c": 3, "a": 1}),
]


def _inspect_bind(sig: inspect.Signature, args, kwargs):
    try:
        bound = sig.bind_partial(*args, **kwargs)
    except TypeError:
        return "error"
    out = {}
    for key, value in bound.arguments.items():
        if sig.parameters[key].kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("fn", [_pos_kw, _kw_only, _var_kw, _nothing, _pos_only, _all])
@pytest.mark.parametrize("args, kwargs", CALLS)
def test_quick_binding_matches_inspect(fn, args, kwargs):
    sig = inspect.signature(fn)
    quick = _Binder(sig).bind(args, kwargs)
    expected = _inspect_bind(sig, args, kwargs)
    if quick is None:  # left to inspect: only for what it must word, or cannot do quickly
        assert expected == "error" or any(p.kind is inspect.Parameter.POSITIONAL_ONLY for p in sig.parameters.values())
    else:
        assert quick == expected
        assert list(quick) == list(expected)  # the same order: run()'s, then **kwargs


def test_binding_errors_still_name_the_task_and_its_signature():
    @task
    def pair(a, b=2):
        return a, b

    with Flow("f"):
        with pytest.raises(TaskBindError, match=r"Task 'pair' was called with arguments its run\(a, b=2\)"):
            pair(1, 2, 3)
        with pytest.raises(TaskBindError, match="unexpected keyword argument 'c'"):
            pair(1, c=3)
        with pytest.raises(TaskBindError, match="multiple values for argument 'a'"):
            pair(1, a=1)


def test_a_task_class_whose_run_changes_binds_the_new_run():
    class Adder(Task):
        def run(self, x):
            return x + 1

    adder = Adder()
    with Flow("before"):
        adder(1)

    def run(self, x, y):
        return x + y

    Adder.run = run  # a test double or a plugin patching a class: the next bind must see it
    with Flow("after") as flow:
        added = adder(1, 2)
    assert flow.run().result[added].result == 3


def test_an_input_taken_twice_is_still_refused_imperatively():
    flow = Flow("f")
    sink = task(gather).copy()
    flow.add_edge(task(one).copy(), sink, key="a")
    with pytest.raises(TaskBindError, match="already gets input 'a'"):
        flow.add_edge(task(one).copy(), sink, key="a")
    with pytest.raises(TaskBindError, match="already gets input 'a'"):
        flow.set_dependencies(sink, keyword_tasks={"a": 5})


def test_a_task_passed_as_its_own_input_is_a_cycle():
    t = task(inc).copy()
    flow = Flow("f")
    with pytest.raises(plait.errors.CycleError):
        flow.set_dependencies(t, keyword_tasks={"x": t})


def test_a_map_over_many_items_still_binds_unmapped_values():
    @task
    def scale(x, factor):
        return x * factor

    with Flow("f") as flow:
        out = scale.map(list(range(5)), factor=unmapped(10))
    assert flow.run().result[out].result == [0, 10, 20, 30, 40]
