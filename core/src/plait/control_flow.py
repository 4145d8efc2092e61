"""Control flow: branches, merges, mapping whole sub-graphs, pausing.

Branches are built from skips: a branch that is not taken ends ``Skipped``, and tasks
downstream of it skip too (``skip_on_upstream_skip=True``, the default), until a ``merge``
picks the result of the branch that ran::

    from plait import Flow, task
    from plait.control_flow import case, merge

    with Flow("deploy") as flow:
        env = pick_env()
        with case(env, "prod"):
            prod = deploy_prod()
        with case(env, "staging"):
            staging = deploy_staging()
        notify(merge(prod, staging))

``ifelse(condition, true_task, false_task)`` is the two-branch form on a condition's truth;
``switch(condition, {value: task})`` the many-branch one. ``apply_map(func, *args)`` maps a
whole sub-graph (including ``case`` blocks) over its arguments. ``pause_task()`` stops a run
until it is resumed (see ``Flow.run``'s ``resume``/``resume_from``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plait import signals, triggers
from plait.errors import TaskBindError
from plait.tasks import Constant, Parameter, Task, _task_of, flatten, unmapped

__all__ = ["CompareValue", "FilterTask", "Merge", "apply_map", "case", "ifelse", "merge", "pause_task", "switch"]


class CompareValue(Task):
    """Skips unless its input equals ``value``; the gate ``case``/``switch``/``ifelse`` add."""

    def __init__(self, value: Any, name: str | None = None, **options: Any) -> None:
        self.value = value
        super().__init__(name=name or f"case({value!r})", **options)

    def run(self, value: Any) -> None:
        if value != self.value:
            raise signals.SKIP(f"Condition is {value!r}, not {self.value!r}: branch not taken.")


class Merge(Task):
    """Returns the first result that is not ``None`` among its inputs, in argument order.

    It runs unless every input was skipped, so it ends the skip of the branches not taken.
    """

    def __init__(self, name: str = "merge", **options: Any) -> None:
        if options.get("skip_on_upstream_skip"):
            raise ValueError(
                "Merge needs skip_on_upstream_skip=False: it exists to run after the branches not taken were skipped"
            )
        options.setdefault("trigger", triggers.not_all_skipped)
        options["skip_on_upstream_skip"] = False
        super().__init__(name=name, **options)

    def run(self, **task_results: Any) -> Any:
        for key in sorted(task_results, key=lambda k: int(k.rpartition("_")[2])):
            value = task_results[key]
            # a skipped input holds the SKIP signal that skipped it (as in Prefect 1): not a result
            if value is not None and not isinstance(value, signals.SKIP):
                return value
        return None


class case:  # noqa: N801 - used as a statement: `with case(task, value):`
    """Tasks added in the block run only when ``task``'s result equals ``value``.

    The block's tasks that do not depend on another of the block's tasks get an upstream
    ``CompareValue`` gate; when the result differs the gate skips and the skip reaches every
    task of the branch. Blocks nest. Inside ``with Flow(...)``, or with the imperative API
    (``task.bind(..., flow=flow)``, ``flow.add_task``) as long as the tasks go to one flow.
    In the block, ``plait.context["case"]`` is the block's ``case``.

    ```python
    with Flow("f") as flow:
        n = count_rows()
        with case(n, 0):
            alert("no rows today")
    ```
    """

    def __init__(self, task: Any, value: Any) -> None:
        if isinstance(value, Task):
            raise TypeError(
                f"case({task!r}, {value!r}): `value` cannot be a task; compare with a plain value, or "
                "compute the comparison in a task and use case(that_task, True)"
            )
        self.task = task
        self.value = value
        self._tasks: list[Task] = []
        self._flow: Any = None
        self._tokens: list[tuple[Any, Any]] = []

    def __enter__(self) -> case:
        from plait.context import _flow_ctx
        from plait.tasks import _active_cases, _open_case_blocks

        self._tokens.append(
            (_active_cases.set(_active_cases.get() + (self,)), _flow_ctx.set({**_flow_ctx.get(), "case": self}))
        )
        _open_case_blocks.append(self)
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        from plait.context import _flow_ctx
        from plait.tasks import _active_cases, _open_case_blocks

        cases, ctx = self._tokens.pop()
        _flow_ctx.reset(ctx)
        _active_cases.reset(cases)
        _open_case_blocks.remove(self)
        if exc_type is not None or not self._tasks:
            return
        flow = self._flow
        condition = _task_of(self.task, flow)
        if condition is None:
            condition = flow.add_task(Constant(self.task, name=f"case condition {self.task!r}"))
        gate = CompareValue(self.value)
        gate.bind(value=condition, flow=flow)
        inside = set(self._tasks)
        inside.discard(condition)
        for t in self._tasks:
            if t is not condition and not any(up in inside for up in flow.upstream_tasks(t)):
                flow.add_edge(gate, t)

    def _add(self, task: Task, flow: Any) -> None:
        """A task added to ``flow`` while this block is the innermost one open."""
        if isinstance(task, Parameter):
            return  # a flow's inputs belong to no branch
        if self._flow is None:
            self._flow = flow
        elif flow is not self._flow:
            raise ValueError(
                f"Multiple flows cannot share one case block: task {task.name!r} goes to flow {flow.name!r} "
                f"but the block's other tasks went to flow {self._flow.name!r}"
            )
        self._tasks.append(task)

    def __repr__(self) -> str:
        return f"<case: {self.task!r} == {self.value!r}>"


def switch(condition: Any, cases: dict[Any, Task], mapped: bool = False) -> None:
    """Run only the task of ``cases`` whose key equals ``condition``'s result; skip the others.

    ``mapped=True`` compares per child when ``condition`` is a mapped task.
    """
    from plait.flow import Flow

    flow = Flow.active()
    if flow is None:
        raise TaskBindError("switch() must be used inside `with Flow(...)`")
    if not isinstance(cases, dict) or not cases:
        raise TaskBindError(f"switch() needs a dict of {{value: task}}, got {cases!r}")
    cond = _task_of(condition, flow) or flow.add_task(Constant(condition, name="switch condition"))
    for value, branch in cases.items():
        if not isinstance(branch, Task):
            branch = _task_of(branch, flow)  # a list of tasks: the List task gathering them is gated
        if branch is None:
            raise TaskBindError(f"switch() case {value!r} must be a task, got {type(cases[value]).__name__}")
        gate = CompareValue(value)
        gate.bind(value=cond, mapped=mapped, flow=flow)
        flow.add_edge(gate, branch, mapped=mapped)


def ifelse(condition: Any, true_task: Task | None, false_task: Task | None, mapped: bool = False) -> None:
    """Run ``true_task`` when ``condition``'s result is truthy, else ``false_task``; the other is skipped.

    ```python
    with Flow("f") as flow:
        ifelse(is_weekday(), send_report(), do_nothing())
    ```
    """
    from plait.flow import Flow

    flow = Flow.active()
    if flow is None:
        raise TaskBindError("ifelse() must be used inside `with Flow(...)`")
    cond = _task_of(condition, flow)
    if cond is None:
        cond = flow.add_task(Constant(condition, name="ifelse condition"))
    truth = _AsBool(name=f"bool({cond.name})")
    truth.bind(value=cond, mapped=mapped, flow=flow)
    cases = {v: t for v, t in ((True, true_task), (False, false_task)) if t is not None}
    if cases:
        switch(truth, cases, mapped=mapped)


def merge(*tasks: Task, flow: Any = None, mapped: bool = False) -> Merge:
    """A task returning the result of whichever of ``tasks`` ran (the first non-``None``).

    ``mapped=True`` merges child by child, after a mapped ``switch``/``ifelse``.
    """
    from plait.flow import Flow

    flow = flow or Flow.active()
    if flow is None:
        raise TaskBindError("merge() must be used inside `with Flow(...)` or given flow=")
    if not tasks:
        raise TaskBindError("merge() needs at least one task")
    node = Merge()
    node.bind(**{f"task_{i}": t for i, t in enumerate(tasks)}, flow=flow, mapped=mapped)
    return node


class FilterTask(Task):
    """Keeps the items of a list that ``filter_func`` accepts: by default, drops ``None`` and exceptions.

    Made for what a mapped task returns: ``FilterTask()(results)`` drops the children that were
    skipped (``None``) or failed (their exception). It runs whatever happened upstream
    (``all_finished``, not skipped with its upstream).

    ```python
    good = FilterTask(filter_func=lambda r: r["status"] == "ok")(fetch.map(urls))
    ```

    Args:
        filter_func: ``fn(item) -> bool``, true to keep the item.
        log_func: ``fn(kept_items) -> str``, logged after filtering (nothing by default).
    """

    def __init__(
        self,
        filter_func: Callable[[Any], bool] | None = None,
        log_func: Callable[[list[Any]], str] | None = None,
        **options: Any,
    ) -> None:
        options.setdefault("skip_on_upstream_skip", False)
        options.setdefault("trigger", triggers.all_finished)
        self.filter_func = filter_func if filter_func is not None else _is_value
        self.log_func = log_func
        super().__init__(**options)

    def run(self, task_results: list[Any]) -> list[Any]:
        kept = [r for r in task_results if self.filter_func(r)]
        if self.log_func is not None:
            self.logger.info(self.log_func(kept))
        return kept


def _is_value(item: Any) -> bool:
    return item is not None and not isinstance(item, BaseException)


def pause_task(message: str | None = None) -> None:
    """Pause the running task unless the run resumes it (``flow.run(resume=[task])``).

    ```python
    @task
    def publish(report):
        pause_task("waiting for a human to approve the report")
        upload(report)
    ```
    """
    from plait import context

    if not context.get("resume"):
        raise signals.PAUSE(message or "Paused until resumed.")


class _AsBool(Task):
    def run(self, value: Any) -> bool:
        return bool(value)


# --- apply_map -----------------------------------------------------------------------------


def apply_map(func: Callable[..., Any], *args: Any, flow: Any = None, **kwargs: Any) -> Any:
    """Map a whole sub-graph: build ``func(*args, **kwargs)`` once per item of the arguments.

    ``func`` calls tasks as it would in a flow; every task that depends on a mapped argument
    becomes a mapped task, wired child to child, so item ``i`` flows through the sub-graph
    on its own (a ``case`` inside ``func`` branches per item). Arguments wrapped in
    ``unmapped`` are passed whole; ``flatten`` works as in ``task.map``. Returns what
    ``func`` returns (its tasks, now mapped).

    ```python
    def process(x):
        y = inc(x)
        with case(is_even(y), True):
            big = double(y)
        return merge(big, y)

    with Flow("f") as flow:
        results = apply_map(process, range(10))
    ```
    """
    from plait.flow import Flow

    flow = flow or Flow.active()
    if flow is None:
        raise TaskBindError("apply_map() must be used inside `with Flow(...)` or given flow=")
    placeholders: dict[Task, tuple[Task, bool]] = {}  # placeholder -> (real source, flattened)

    def prepare(value: Any) -> Any:
        if isinstance(value, unmapped):
            return value.value
        flat = isinstance(value, flatten)
        if flat:
            value = value.value
        source = _task_of(value, flow)
        if source is None:
            try:
                iter(value)
            except TypeError:
                raise TaskBindError(
                    f"apply_map({_name(func)}) cannot map over {type(value).__name__} {value!r}: it is not "
                    "iterable (wrap it in unmapped() to pass it whole)"
                ) from None
            source = flow.add_task(Constant(value, name=f"{_name(func)}.input"))
        placeholder = _Placeholder(name=f"{source.name} (item)")
        placeholders[placeholder] = (source, flat)
        return placeholder

    call_args = [prepare(a) for a in args]
    call_kwargs = {k: prepare(v) for k, v in kwargs.items()}
    if not placeholders:
        raise TaskBindError(f"apply_map({_name(func)}) needs at least one argument to map over")

    # Build the sub-graph once, in the flow itself, then rewire what it added: edges from a
    # placeholder come from the real argument, mapped; edges between mapped tasks are mapped.
    before_tasks = set(flow.tasks)
    before_edges = set(flow.edges)
    if Flow.active() is flow:
        out = func(*call_args, **call_kwargs)
    else:
        with flow:
            out = func(*call_args, **call_kwargs)
    new_edges = [e for e in flow.edges if e not in before_edges]
    created = [t for t in flow.sorted_tasks() if t not in before_tasks]
    mapped: set[Task] = set(placeholders)
    for t in created:
        if t not in placeholders and any(up in mapped for up in flow.upstream_tasks(t)):
            mapped.add(t)
    for edge in new_edges:
        up, down = edge.upstream_task, edge.downstream_task
        if up in placeholders:
            source, flat = placeholders[up]
            _remove_edge(flow, edge)
            flow.add_edge(source, down, key=edge.key, mapped=True, flattened=flat or edge.flattened)
        elif down in mapped and up in mapped and not edge.mapped:
            _remove_edge(flow, edge)
            flow.add_edge(up, down, key=edge.key, mapped=True, flattened=edge.flattened)
    for placeholder in placeholders:
        _remove_task(flow, placeholder)
    return out


def _remove_edge(flow: Any, edge: Any) -> None:
    from plait.flow import _remove

    if flow._edge_set is not None:
        flow._edge_set.discard(edge)
    _remove(flow._edges_in, edge.downstream_task, edge)
    _remove(flow._edges_out, edge.upstream_task, edge)
    index = flow._keyed_inputs.get(edge.downstream_task)
    if index is not None and index.get(edge.key) is edge:
        del index[edge.key]  # that input is free again
    flow._changed()


def _remove_task(flow: Any, task: Task) -> None:
    for edge in list(flow._edges_in.get(task, ())) + list(flow._edges_out.get(task, ())):
        _remove_edge(flow, edge)
    flow._tasks.pop(task, None)
    flow._edges_in.pop(task, None)
    flow._edges_out.pop(task, None)
    flow._keyed_inputs.pop(task, None)
    slugs = flow._slug_table()
    if slugs.get(task.slug) is task:
        del slugs[task.slug]
    flow._changed()


class _Placeholder(Task):
    def run(self) -> None:  # never runs: replaced by the mapped argument
        raise RuntimeError("apply_map placeholder ran")


def _name(func: Callable[..., Any]) -> str:
    return getattr(func, "__name__", repr(func))
