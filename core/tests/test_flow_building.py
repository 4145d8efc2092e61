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


# -- the quick call (Task.__call__ -> Flow._add_bound) builds what the general path builds -----


class _SlowCall(Task):
    """A task whose bind() is its own, so every call of it takes the general path."""

    def bind(self, *args, **kwargs):
        return super().bind(*args, **kwargs)


def _shape(flow: Flow) -> tuple:
    """The flow as comparable data: slugs, edges by slug, constants by slug."""
    return (
        sorted(t.slug for t in flow),
        sorted((e.upstream_task.slug, e.downstream_task.slug, e.key, e.mapped, e.flattened) for e in flow.edges),
        sorted((t.slug, sorted(c.items())) for t, c in flow.constants.items()),
    )


def _calls(make: Callable[[Callable], Task]) -> Flow:
    """The same calls with tasks made by ``make``: plain values, tasks, collections, wrappers, keywords."""

    def add(x, y=0, **extra):
        return (x, y, sorted(extra.items()))

    t_add = make(add)
    other = task(one).copy()  # a task not in the flow yet: it joins it through the call
    with Flow("calls") as flow:
        a = t_add(1)
        b = t_add(a, 2)
        c = t_add(x=b, y=a, z=3)
        d = t_add(other, y=[a, b])  # a list holding tasks: a List task
        e = t_add(sum, y=(1, 2))  # a function and a tuple of values: constants
        t_add(c, y=d, w=e)
        t_add.map([1, 2], y=unmapped(a))
    return flow


def test_the_quick_call_builds_the_same_flow_as_the_general_path():
    class Slow(_SlowCall):
        pass

    def slow(fn):
        t = Slow(name=fn.__name__)
        t.run = fn
        return t

    quick, general = _calls(task), _calls(slow)
    assert _shape(quick) == _shape(general)

    def results(flow):
        state = flow.run()
        assert state.is_successful()
        return {t.slug: s.result for t, s in state.result.items()}

    assert results(quick) == results(general)


def test_a_quick_call_records_its_inputs_for_later_edges():
    with Flow("f") as flow:
        x = task(inc)(task(one)())
        y = task(inc)(5)
    with pytest.raises(plait.errors.DuplicateInputError, match="already gets input 'x'"):
        flow.add_edge(task(one).copy(), x, key="x")
    with pytest.raises(TaskBindError, match="already has a value for input 'x'"):
        flow.add_edge(task(one).copy(), y, key="x")
    assert flow.constants[y] == {"x": 5}
    assert flow.edges_to(x) == {next(iter(flow.edges_to(x)))} and next(iter(flow.edges_to(x))).key == "x"


def test_copies_made_by_quick_calls_are_their_own_tasks():
    def handler(task, old, new):
        return None

    t_inc = task(inc, state_handlers=[handler])
    with Flow("f") as flow:
        a = t_inc(1)
        b = t_inc(a)
    a.state_handlers.append(handler)  # a copy's handlers are its own list
    assert t_inc.state_handlers == [handler] and b.state_handlers == [handler]
    assert len({id(a), id(b), id(t_inc)}) == 3 and a != b
    assert (a.slug, b.slug, t_inc.slug) == ("inc", "inc-1", None)
    assert flow.run().result[b].result == 3


def test_context_tags_still_reach_tasks_called_in_the_block():
    t_inc = task(inc)
    with Flow("f") as flow, plait.context(tags=["etl"]):
        tagged = t_inc(1)
    untagged = next(iter(Flow("g", tasks=[t_inc.copy()])))
    assert tagged.tags == frozenset({"etl"}) and untagged.tags == frozenset()
    assert flow.run().is_successful()


def test_a_quick_call_that_fails_adds_nothing_and_warns_about_nothing(recwarn):
    t_inc = task(inc)
    with Flow("f") as flow:
        with pytest.raises(TaskBindError, match="unexpected keyword argument 'y'"):
            t_inc(1, y=2)
        t_inc(1)
    assert len(flow) == 1
    assert not [w for w in recwarn if "not added to the flow" in str(w.message)]


# -- checking and planning pause the garbage collector, and only while they run --------------


def test_validating_and_planning_leave_the_garbage_collector_as_they_found_it():
    import gc

    assert gc.isenabled()
    flow = chain(50)
    flow.validate()
    _plan(flow)
    assert gc.isenabled()
    broken = fan_in(3)
    broken.add_edge(task(one).copy(), next(t for t in broken if t.name == "inc"), key="nope")
    with pytest.raises(TaskBindError, match="'nope'"):
        broken.validate()
    assert gc.isenabled()  # an error in the check does not leave it paused
    gc.disable()
    try:
        chain(60).validate()
        _plan(chain(70))
        assert not gc.isenabled()  # the program's choice stays
    finally:
        gc.enable()


def test_a_plan_gives_every_task_its_waiters():
    # fan-out: the source has every task waiting for it, the others none
    plan = _plan(fan_out(5))
    waiting = {
        plan.tasks[u].name: sorted(plan.tasks[d].name for d in ds) for u, ds in enumerate(plan.finish_waiters) if ds
    }
    assert waiting == {"one": ["inc"] * 5}
    assert all(not w for w in plan.expand_waiters)
    # a map of a map: the second waits for each child of the first (expand), the sum for the whole
    t_inc, t_total = task(inc), task(total)
    with Flow("maps") as flow:
        out = t_total(t_inc.map(t_inc.map([1, 2])))
    plan = _plan(flow)
    index = {t: i for i, t in enumerate(plan.tasks)}
    inner, outer = (t for t in plan.tasks if t.name == "inc")
    assert list(plan.expand_waiters[index[inner]]) == [index[outer]]
    assert list(plan.finish_waiters[index[outer]]) == [index[out]]
    assert flow.run().result[out].result == 7


def test_an_edge_made_by_a_quick_call_is_the_edge_the_constructor_makes():
    from plait.flow import Edge

    @task
    def pair(a, **rest):
        return a, rest

    with Flow("f") as flow:
        src = task(one)()
        out = pair(src, b=src)
    with Flow("g"):
        other = task(one)()
        with pytest.raises(ValueError, match="not a valid input name"):
            pair(other, **{"not a name": other})  # a key from **kwargs is still checked
    made = {e.key: e for e in flow.edges_to(out)}
    for key in ("a", "b"):
        assert made[key] == Edge(src, out, key) and hash(made[key]) == hash(Edge(src, out, key))
        assert (made[key].mapped, made[key].flattened, made[key].tasks) == (False, False, {src, out})
    assert Edge(src, out, "a") in flow.edges and len(flow.edges) == 2


def test_inputs_of_a_new_task_given_imperatively_are_still_checked():
    flow = Flow("f")
    src = task(one).copy()
    flow.add_task(src)
    with pytest.raises(ValueError, match="not a valid input name"):
        flow.set_dependencies(task(gather).copy(), keyword_tasks={"no name": src})
    with pytest.raises(ValueError, match="not a valid input name"):
        flow.set_dependencies(task(gather).copy(), keyword_tasks={3: src})
    sink = task(gather).copy()
    flow.set_dependencies(sink, keyword_tasks={"a": src}, mapped=True)
    (edge,) = flow.edges_to(sink)
    assert edge == flow_edge(src, sink, "a", mapped=True) and hash(edge) == hash(flow_edge(src, sink, "a", mapped=True))


def flow_edge(*args, **kwargs):
    from plait.flow import Edge

    return Edge(*args, **kwargs)


def _runs_in_order(flow: Flow) -> bool:
    seen: set[Task] = set()
    for t in flow.sorted_tasks():
        if not flow.upstream_tasks(t) <= seen:
            return False
        seen.add(t)
    return len(seen) == len(flow.tasks)


@pytest.mark.parametrize("shape", [chain, fan_out, fan_in])
def test_a_flow_built_in_a_block_runs_in_the_order_its_tasks_were_added(shape):
    flow = shape(50)
    assert flow._ordered
    assert flow.sorted_tasks() == tuple(flow)
    assert _runs_in_order(flow)


def test_a_fan_in_call_moves_after_the_collection_of_its_inputs():
    flow = fan_in(20)
    last = flow.sorted_tasks()[-1]
    assert last.name == "total"
    assert flow.upstream_tasks(last) == {flow.sorted_tasks()[-2]}
    assert flow.run().is_successful()
    assert flow.run().result[last].result == sum(i + 1 for i in range(20))


def test_a_list_of_tasks_passed_to_a_call_gets_one_edge_per_item_however_it_is_made():
    t_inc, t_total = task(inc), task(total)
    loose = task(one)
    with Flow("f") as flow:
        a, b = t_inc(1), t_inc(2)
        assert flow.edges == set()  # read: the flow keeps the set up to date from now on
        whole = t_total([a, b, a])  # every item a task of the flow (the quick path), one twice
        mixed = t_total([a, loose])  # an item not in the flow yet: it joins it
    (collection,) = flow.upstream_tasks(whole)
    assert sorted((e.upstream_task.slug, e.key) for e in flow.edges_to(collection)) == [
        ("inc", "arg_1"),
        ("inc", "arg_3"),
        ("inc-1", "arg_2"),
    ]
    assert len(flow.edges_from(a)) == 3 and loose in flow
    assert flow.edges == {e for t in flow for e in flow.edges_to(t)}
    state = flow.run()
    assert state.result[whole].result == 2 + 3 + 2 and state.result[mixed].result == 2 + 1


def test_counted_slugs_stay_unique_and_out_of_the_flows_table_of_slugs():
    import pickle

    from plait.control_flow import _remove_task

    t_inc = task(inc)
    named = task(inc, name="inc-3")
    with Flow("f") as flow:
        flow.add_task(Task(name="given", slug="inc-2"))  # a given slug of the counted form
        a = t_inc(1)
        b = t_inc(a)
        c = t_inc(b)
        d = t_inc(x=c)
        named(d)  # its name is a counted slug already
        flow.add_task(Task(name="inc-4"))  # so is this one's (the general path)
        t_inc([a, b])
    slugs = sorted(t.slug for t in flow)
    assert slugs == ["List", "inc", "inc-1", "inc-2", "inc-3", "inc-3-1", "inc-4", "inc-4-1", "inc-5"]
    # 1,000 copies of one task add one name to the table of slugs, not 1,000 counted slugs
    with Flow("big") as big:
        for i in range(1000):
            t_inc(i)
    assert len(big._slugs) == 1 and sorted(t.slug for t in big)[-1] == "inc-999"
    flow.replace(c, Task(name="inc"), validate=False)  # inc-3 is free again; the new task counts on
    assert sorted(t.slug for t in flow) == [s for s in slugs if s != "inc-3"] + ["inc-6"]
    _remove_task(flow, b)
    assert flow.add_task(Task(name="x", slug="inc-1")).slug == "inc-1"  # freed by the removal
    assert flow.add_task(Task(name="y", slug="inc-5")).slug == "y"  # taken
    copied = flow.copy()
    with copied:
        assert t_inc(1).slug == "inc-7"
    restored = pickle.loads(pickle.dumps(flow))
    assert sorted(restored._slugs) == sorted(t.slug for t in restored)
    with restored:
        assert t_inc(1).slug == "inc-7"


def test_an_edge_back_to_an_earlier_task_still_sorts_the_flow():
    a, b, c = Task(name="a"), Task(name="b"), Task(name="c")
    flow = Flow("imperative")
    flow.add_task(c)
    flow.add_task(b)
    flow.add_edge(b, c)  # c, added first and feeding nothing yet, moves after b
    assert flow._ordered and flow.sorted_tasks() == (b, c)
    flow.add_edge(c, a)
    d = Task(name="d")
    flow.add_task(d)
    flow.add_edge(d, b)  # b was added before d and feeds c: the flow is sorted from now on
    assert not flow._ordered
    order = flow.sorted_tasks()
    assert order.index(d) < order.index(b) < order.index(c) < order.index(a)
    assert _runs_in_order(flow)
    flow.add_edge(a, d)
    with pytest.raises(plait.errors.CycleError):
        flow.validate()


def test_an_input_of_a_task_with_many_inputs_is_refused_twice_and_free_once_removed():
    from plait.control_flow import _remove_edge
    from plait.errors import DuplicateInputError

    gather_task = task(gather)
    sources = [Task(name=f"s{i}") for i in range(12)]
    flow = Flow("many-inputs")
    for i, s in enumerate(sources):
        flow.add_edge(s, gather_task, key=f"k{i}")
    with pytest.raises(DuplicateInputError, match="k3"):  # (the index is made here)
        flow.add_edge(Task(name="other"), gather_task, key="k3")
    with pytest.raises(DuplicateInputError, match="k11"):  # an input added before the index
        flow.add_edge(Task(name="other"), gather_task, key="k11")
    flow.add_edge(Task(name="late"), gather_task, key="k12")
    with pytest.raises(DuplicateInputError, match="k12"):  # one added after: add_edge kept the index
        flow.add_edge(Task(name="other"), gather_task, key="k12")
    edge = flow._input_edge(gather_task, "k5")
    assert edge is not None and edge.upstream_task is sources[5]
    _remove_edge(flow, edge)
    assert flow._input_edge(gather_task, "k5") is None
    flow.add_edge(Task(name="new"), gather_task, key="k5")  # free again
    copy = flow.copy()
    with pytest.raises(DuplicateInputError):
        copy.add_edge(Task(name="other"), gather_task, key="k5")


def test_a_task_without_edges_has_empty_edge_lists_that_grow():
    flow = fan_out(3)
    leaf = flow.sorted_tasks()[-1]
    assert flow.edges_from(leaf) == set() and flow.downstream_tasks(leaf) == set()
    after = task(inc)
    with flow:
        later = after(leaf)
    assert flow.downstream_tasks(leaf) == {later}
    assert flow.terminal_tasks() == {later} | (flow.terminal_tasks() - {later})
    assert flow.run().result[later].result == 3


# -- the garbage collector while flows are built (plait.flow._defer_full_collections) ------------


def test_a_flow_block_makes_full_collections_rarer_and_puts_the_thresholds_back():
    import gc

    from plait.flow import DEFERRED_FULL_COLLECTION_THRESHOLD

    before = gc.get_threshold()
    with Flow("outer") as outer:
        inside = gc.get_threshold()
        with Flow("inner"):
            assert gc.get_threshold() == inside  # nested blocks share the one deferral
        assert gc.get_threshold() == inside  # the outer block is still open
        task(inc)(1)
    assert inside == (before[0], 0, DEFERRED_FULL_COLLECTION_THRESHOLD)  # young ones take the middle too
    assert gc.get_threshold() == before
    assert len(outer) == 1


def test_a_block_that_fails_still_puts_the_thresholds_back():
    import gc

    before = gc.get_threshold()
    with pytest.raises(TaskBindError), Flow("f"):
        task(inc)(1, 2, 3)
    assert gc.get_threshold() == before


def test_thresholds_the_program_sets_inside_a_block_are_kept():
    import gc

    before = gc.get_threshold()
    try:
        with Flow("f"):
            gc.set_threshold(500, 5, 5)
        assert gc.get_threshold() == (500, 5, 5)  # the program's choice, not put back to ours
    finally:
        gc.set_threshold(*before)


def test_cyclic_garbage_made_in_flow_blocks_is_still_collected():
    """Building and dropping many flows keeps nothing: young collections run in the blocks,
    and what is left goes to Python's usual collections once the block ends."""
    import gc
    import weakref

    class Node:
        pass

    gc.collect()
    refs = []
    for i in range(3000):
        with Flow(f"f{i}"):
            node = Node()
            node.me = node  # a cycle: only the collector frees it
            refs.append(weakref.ref(node))
            task(inc)(i)
        del node
    alive = sum(r() is not None for r in refs)
    assert alive < 1500  # the collector ran without being asked, in or after the blocks
    gc.collect()
    assert all(r() is None for r in refs)


# -- state handlers: one list per copy, however it is made ------------------------------------------


def _handler_a(task, old, new):
    return None


def _handler_b(task, old, new):
    return None


def test_each_copy_has_its_own_state_handlers_however_it_was_made():
    t_inc = task(inc)
    with Flow("f"):
        quick = t_inc(1)  # the quick path, one positional input
        keyword = t_inc(x=quick)  # the quick path with a dict of inputs
        general = t_inc(quick, task_args={"max_retries": 1})  # copy() and bind()
        mapped = t_inc.map([1, 2])
    copied = t_inc.copy()
    copies = [quick, keyword, general, mapped, copied]
    quick.state_handlers.append(_handler_a)
    assert quick.state_handlers == [_handler_a]
    assert [c.state_handlers for c in copies[1:]] == [[], [], [], []]
    assert t_inc.state_handlers == []
    t_inc.state_handlers.append(_handler_b)  # the original, after the copies were made
    assert [c.state_handlers for c in copies] == [[_handler_a], [], [], [], []]
    with Flow("g"):
        later = t_inc(1)
    assert later.state_handlers == [_handler_b]
    later.state_handlers.append(_handler_a)
    assert t_inc.state_handlers == [_handler_b]  # the copy's list is not the original's
    again = later.copy()  # a copy of a copy
    again.state_handlers.remove(_handler_a)
    assert later.state_handlers == [_handler_b, _handler_a] and again.state_handlers == [_handler_b]


def test_state_handlers_given_to_a_task_reach_every_copy_and_run():
    seen = []

    def record(task, old, new):
        seen.append((task.slug, type(new).__name__))

    t_inc = task(inc, state_handlers=[record])
    with Flow("f") as flow:
        a = t_inc(1)
        b = t_inc(a)
    assert flow.run().is_successful()
    assert {slug for slug, _ in seen} == {a.slug, b.slug}
    b.state_handlers.append(_handler_a)
    assert a.state_handlers == [record] and t_inc.state_handlers == [record]


def test_state_handlers_can_be_replaced_and_survive_pickling():
    import pickle

    t = task(inc)
    t.state_handlers = [_handler_a]
    assert t.state_handlers == [_handler_a]
    with Flow("f"):
        c = t(1)
    assert c.state_handlers == [_handler_a] and c.state_handlers is not t.state_handlers
    assert pickle.loads(pickle.dumps(c)).state_handlers == []  # handlers run in the driver only


# -- flow.edges: made when first read, kept up to date from then on ----------------------------


def _edge_names(edges):
    return sorted((e.upstream_task.slug, e.downstream_task.slug, e.key, e.mapped, e.flattened) for e in edges)


def test_flow_edges_are_every_edge_whether_read_before_or_after_building():
    t_inc, t_total = task(inc), task(total)
    with Flow("f") as flow:
        a = t_inc(1)
        b = t_inc(a)
        first = set(flow.edges)  # read in the middle of building: made here, then kept
        c = t_total([a, b])
        d = t_inc(x=c, upstream_tasks=[b])
    assert first == {next(iter(flow.edges_to(b)))}
    expected = {e for t in flow for e in flow.edges_to(t)}
    assert flow.edges == expected and len(expected) == 6
    with Flow("g") as other:  # never read while built
        a2 = t_inc(1)
        t_inc(a2)
    assert _edge_names(other.edges) == [("inc", "inc-1", "x", False, False)]
    assert d in flow and flow.run().result[d].result == 6


def test_a_flow_with_many_unkeyed_edges_into_one_task_keeps_them_once():
    sink = Task(name="sink")
    sources = [Task(name=f"s{i}") for i in range(20)]
    flow = Flow("f")
    for s in sources:
        flow.add_edge(s, sink)
    for s in sources:  # the same edges again: nothing new (the set is made for this lookup)
        flow.add_edge(s, sink)
    assert len(flow.edges) == 20 and len(flow.edges_to(sink)) == 20
    flow.add_edge(Task(name="late"), sink)
    assert len(flow.edges) == 21  # kept up to date once made


def test_copies_and_pickles_of_a_flow_keep_its_edges_apart():
    import pickle

    t_inc = task(inc)
    with Flow("f") as flow:
        a = t_inc(1)
        t_inc(a)
    copy = flow.copy()  # the set not made yet in either
    copy.add_edge(Task(name="extra"), a)
    assert len(flow.edges) == 1 and len(copy.edges) == 2
    again = flow.copy()  # made in the original: the copy has its own
    again.edges.clear()
    assert len(flow.edges) == 1
    loaded = pickle.loads(pickle.dumps(flow))
    assert _edge_names(loaded.edges) == _edge_names(flow.edges)
    assert loaded.run().is_successful()


def test_flows_and_edges_pickled_with_stored_hashes_still_load():
    """Plait 0.1 kept the set of edges in a flow's __dict__ and each edge's hash in a slot."""
    from plait.flow import Edge

    t_inc = task(inc)
    with Flow("f") as flow:
        a = t_inc(1)
        b = t_inc(a)
    state = flow.__getstate__()
    state["edges"] = set(flow.edges)
    del state["_edge_set"]
    old = Flow.__new__(Flow)
    old.__setstate__(state)
    assert old.edges == flow.edges and "edges" not in vars(old)
    edge = Edge.__new__(Edge)
    edge.__setstate__(
        (
            None,
            {"upstream_task": a, "downstream_task": b, "key": "x", "mapped": False, "flattened": False, "_hash": 12345},
        )
    )
    assert edge == next(iter(flow.edges)) and hash(edge) == hash(next(iter(flow.edges)))


# -- validating is planning: one walk of the tasks for both (plait.engine.runner._Plan) -------


def test_a_validated_flow_is_planned_and_its_runs_use_that_plan():
    flow = fan_out(5)
    flow.validate()
    plan = flow._plan
    assert plan is not None and _plan(flow) is plan
    assert flow.run().is_successful() and flow._plan is plan
    leaf = flow.sorted_tasks()[-1]
    with flow:
        task(inc)(leaf)  # a changed flow is checked and planned again
    flow.validate()
    assert flow._plan is not plan and len(flow._plan.tasks) == 7


def test_a_flow_that_fails_validation_fails_it_every_time_and_gets_no_plan():
    broken = fan_in(3)
    first_inc = next(t for t in broken if t.name == "inc")
    broken.add_edge(task(one).copy(), first_inc, key="nope")
    for _ in range(2):
        with pytest.raises(TaskBindError, match="'nope'"):
            broken.validate()
    assert broken._plan is None


def test_validation_still_checks_every_kind_of_task_it_plans():
    from plait import Parameter
    from plait.errors import CycleError, FlowValidationError

    @task
    def needs_two(a, b):
        return a + b

    with Flow("missing") as flow:
        needs_two(Parameter("p", default=1))  # b is missing
    with pytest.raises(TaskBindError, match="missing input 'b'"):
        flow.validate()
    with Flow("many") as flow:
        gathered = task(gather)(**{f"k{i}": task(inc)(i) for i in range(5)})
    flow.validate()  # a **kwargs task takes any inputs
    assert flow.run().result[gathered].result == [f"k{i}" for i in range(5)]
    a, b = Task(name="a"), Task(name="b")
    cyclic = Flow("cycle")
    cyclic.add_edge(a, b)
    cyclic.add_edge(b, a)
    with pytest.raises(CycleError, match="a -> b -> a"):
        cyclic.validate()
    elsewhere = Flow("reference", tasks=[a])
    elsewhere.set_reference_tasks([a])
    elsewhere._tasks.pop(a)  # (as a task removed without the flow's knowledge)
    elsewhere._version += 1
    with pytest.raises(FlowValidationError, match="reference task 'a' is not in the flow"):
        elsewhere.validate()


def test_a_plan_shares_the_entries_of_alike_tasks():
    plan = _plan(fan_out(4))
    leaves = range(1, 5)
    # one tuple of inputs and one of upstream tasks for every task of a fan-out, not two each
    assert len({id(plan.inputs[d]) for d in leaves}) == 1 and plan.inputs[1] == (("x", 0, False, False),)
    assert len({id(plan.ups[d]) for d in leaves}) == 1 and plan.ups[1] == (0,)
    assert plan.reference == list(leaves)  # the terminal tasks, in run order
    plan = _plan(fan_in(4))
    total_index = len(plan.tasks) - 1
    collection = total_index - 1
    # every input of the collection waits on one shared tuple naming it
    assert len({id(plan.finish_waiters[u]) for u in range(4)}) == 1
    assert plan.finish_waiters[0] == (collection,) and plan.reference == [total_index]


def test_edges_made_by_calls_grow_move_and_go_like_any_other():
    t_inc = task(inc)
    with Flow("f") as flow:
        a = t_inc(1)
        b = t_inc(a)
    c = task(inc).copy()
    flow.add_edge(a, c, key="x")  # a second edge out of a, after the one its call made
    assert flow.downstream_tasks(a) == {b, c} and len(flow.edges) == 2
    d = task(inc).copy()
    flow.replace(b, d)  # b's one input moves to d
    assert flow.upstream_tasks(d) == {a} and b not in flow
    assert flow.downstream_tasks(a) == {c, d}
    state = flow.run()
    assert state.result[c].result == 3 and state.result[d].result == 3
    copy = flow.copy()
    copy.add_edge(Task(name="first"), a)
    assert flow.upstream_tasks(a) == set() and len(copy.upstream_tasks(a)) == 1
