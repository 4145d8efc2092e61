"""Flows: graphs of tasks.

Build a flow with the functional API (call tasks inside ``with Flow(...)``) or the
imperative one (``add_task``, ``add_edge``, ``set_dependencies``, ``chain``), then run it::

    with Flow("etl") as flow:
        rows = extract()
        load(transform(rows))

    state = flow.run()

The graph is checked before anything runs: a cycle, an input no one provides or an unknown
parameter is a ``plait.errors`` exception with the names involved.
"""

from __future__ import annotations

import contextvars
import copy
import gc
import itertools
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plait.context import _flow_ctx
from plait.errors import (
    CycleError,
    DuplicateInputError,
    FlowRunError,
    FlowValidationError,
    ParameterError,
    TaskBindError,
)
from plait.tasks import (
    UNUSED_TASKS_KEY,
    Constant,
    FunctionTask,
    Parameter,
    Task,
    _active_cases,
    _active_flows,
    _binder,
    _open_case_blocks,
    _task_of,
    flatten,
    unmapped,
)
from plait.tasks import mapped as mapped_

if TYPE_CHECKING:
    from datetime import date, datetime, timedelta

    from plait.engine.executors import Executor
    from plait.engine.scheduling import BackfillReport
    from plait.schedules import Schedule
    from plait.states import State

__all__ = ["Edge", "Flow"]


class Edge:
    """A dependency: ``downstream_task`` runs after ``upstream_task``.

    With a ``key`` the upstream result is passed as that argument of ``run()``; ``mapped``
    maps over it; ``flattened`` flattens it one level first.
    """

    # (``_hash`` is never set: it is there so that edges pickled by Plait 0.1, which stored
    # their hash, still load)
    __slots__ = ("_hash", "downstream_task", "flattened", "key", "mapped", "upstream_task")

    def __init__(
        self,
        upstream_task: Task,
        downstream_task: Task,
        key: str | None = None,
        mapped: bool = False,
        flattened: bool = False,
    ) -> None:
        if upstream_task is downstream_task:
            raise ValueError(f"Edges can not connect a task to itself: {upstream_task!r} -> {upstream_task!r}")
        if key is not None and not (isinstance(key, str) and key.isidentifier()):
            raise ValueError(
                f"Edge key {key!r} is not a valid input name: a key names an argument of the downstream "
                "task's run(), so it must be a string that is a Python identifier"
            )
        self.upstream_task = upstream_task
        self.downstream_task = downstream_task
        self.key = key
        self.mapped = mapped
        self.flattened = flattened

    @property
    def tasks(self) -> set[Task]:
        """``{upstream_task, downstream_task}``."""
        return {self.upstream_task, self.downstream_task}

    def _tuple(self) -> tuple[Any, ...]:
        return (self.upstream_task, self.downstream_task, self.key, self.mapped, self.flattened)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Edge) and self._tuple() == other._tuple()

    def __hash__(self) -> int:
        # Computed when asked (a flow only hashes its edges once something reads flow.edges),
        # not stored: an edge is a value, its fields are not meant to change once it is made.
        return hash((self.upstream_task, self.downstream_task, self.key, self.mapped, self.flattened))

    def __getstate__(self) -> tuple[None, dict[str, Any]]:
        return None, {name: getattr(self, name) for name in _EDGE_FIELDS}

    def __setstate__(self, state: tuple[Any, dict[str, Any]]) -> None:
        for name, value in state[1].items():
            if name != "_hash":  # stored by Plait 0.1; it depended on the objects' ids then
                object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        extra = "".join(f", {n}" for n in ("mapped", "flattened") if getattr(self, n))
        key = f" ({self.key}{extra})" if self.key or extra else ""
        return f"<Edge: {self.upstream_task.name} -> {self.downstream_task.name}{key}>"


_EDGE_FIELDS = ("upstream_task", "downstream_task", "key", "mapped", "flattened")


class Flow:
    """A graph of tasks, run with ``flow.run()``.

    Args:
        name: the flow's name, shown in logs and states.
        tasks: tasks to add (the ``with`` block usually adds them).
        edges: edges to add.
        state_handlers: ``fn(flow, old_state, new_state) -> State | None`` on every flow-run
            state change; a returned state replaces the new one.
        reference_tasks: the tasks whose states decide the flow run's state (default: the
            terminal tasks, those with no downstream task).
        executor: the default executor of ``run()`` (an ``Executor`` or a registered name).
        result: where tasks store their results by default (a ``plait.results.Result``, a
            path or a URL); every task's successful result is checkpointed there unless the
            task says ``checkpoint=False``.
        terminal_state_handler: ``fn(flow, state, task_states) -> State | None`` called once
            with the flow run's final state and ``{task: State}`` before the flow's state
            handlers see it; a returned state replaces the final one.
        schedule: a ``plait.schedules.Schedule``; ``run()`` then runs the flow at each of its
            times (see ``run``), and ``backfill()`` uses its times.
        on_failure: ``fn(flow, state)`` called when a flow run ends failed (Prefect 1's
            option; it is one more state handler).
        validate: check each edge as it is added (see ``add_edge``) and the graph once built.
        run_config: how agents of the Plait server run this flow, one table per agent kind:
            ``{"docker": {"image": "registry.example.com/etl:3"}}`` (the Docker agent's image,
            see plait-docker). Plain JSON registered with the flow (``plait register``): it
            must hold no secret. Agent kinds it does not name ignore it; ``flow.run()`` too.
    """

    #: (class default for flows pickled by an older Plait: they are sorted when run)
    _ordered = False

    def __init__(
        self,
        name: str,
        tasks: Iterable[Task] | None = None,
        edges: Iterable[Edge] | None = None,
        state_handlers: Iterable[Callable[..., Any]] | None = None,
        reference_tasks: Iterable[Task] | None = None,
        executor: Executor | str | None = None,
        result: Any = None,
        terminal_state_handler: Callable[..., Any] | None = None,
        schedule: Schedule | None = None,
        on_failure: Callable[[Flow, State], Any] | None = None,
        validate: bool | None = None,
        run_config: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"Flow name must be a non-empty string, got {name!r}")
        self.run_config = _checked_run_config(name, run_config)
        if schedule is not None and not callable(getattr(schedule, "events", None)):
            raise TypeError(f"Flow {name!r}: schedule must be a plait.schedules.Schedule, got {schedule!r}")
        self.schedule = schedule
        self.name = name
        if state_handlers is not None and not isinstance(state_handlers, (list, tuple)):
            raise TypeError(f"Flow {name!r}: state_handlers must be a list of callables, got {state_handlers!r}")
        self.state_handlers = list(state_handlers or ())
        for handler in self.state_handlers:
            if not callable(handler):
                raise TypeError(f"Flow {name!r}: state handler {handler!r} is not callable")
        if on_failure is not None:
            if not callable(on_failure):
                raise TypeError(f"Flow {name!r}: on_failure {on_failure!r} is not callable")
            self.state_handlers.append(_OnFailure(on_failure))
        self.executor = executor
        if result is not None:
            from plait.results import resolve_result

            result = resolve_result(result)
        self.result = result
        if terminal_state_handler is not None and not callable(terminal_state_handler):
            raise TypeError(f"Flow {name!r}: terminal_state_handler {terminal_state_handler!r} is not callable")
        self.terminal_state_handler = terminal_state_handler
        # task -> its place in the order of adding (the flow's version then: it only grows)
        self._tasks: dict[Task, int] = {}
        # True while every edge goes from a task added earlier to one added later, so that the
        # order of adding is an order to run them in (see _sorted_all): it stays so for flows
        # built in a `with Flow` block, where a task joins the flow after its inputs.
        self._ordered = True
        # The set of edges (flow.edges), made from the tasks' edge lists when first read and
        # kept up to date from then on: building a flow does not hash and store every edge
        # in a set nobody reads (a cache miss per edge in a big flow).
        self._edge_set: set[Edge] | None = None
        self.constants: dict[Task, dict[str, Any]] = {}
        self._edges_in: dict[Task, list[Edge]] = {}
        self._edges_out: dict[Task, list[Edge]] = {}
        # task -> {input key: the edge giving it}, for tasks with many inputs only, made when an
        # input of one is first looked up (see _input_edge) and kept up to date by add_edge
        self._keyed_inputs: dict[Task, dict[str, Edge]] = {}
        # slug -> task, for every task but those a `with Flow` call gave a counted slug
        # (name-N), which go in _unlisted instead: see _quick_slug
        self._slugs: dict[str, Task] = {}
        self._slug_counters: dict[str, int] = {}
        self._unlisted: list[Task] = []
        self._reference_tasks: set[Task] = set()
        self._version = 0
        self._sorted: tuple[int, tuple[Task, ...]] | None = None
        self._validated = -1
        self._plan: Any = None  # the runner's cached plan, keyed by _version
        for t in tasks or ():
            self.add_task(t)
        for e in edges or ():
            self.add_edge(e.upstream_task, e.downstream_task, e.key, e.mapped, e.flattened)
        if reference_tasks:
            self.set_reference_tasks(reference_tasks)
        if validate:
            self.validate()

    @property
    def logger(self) -> Any:
        """A run-aware logger for the flow's own messages (Prefect 1's ``flow.logger``)."""
        from plait.logging import get_logger

        return get_logger("flow")

    @property
    def slugs(self) -> dict[Task, str]:
        """``{task: slug}`` for every task of the flow."""
        return {t: t.slug for t in self._tasks}

    # -- the active flow ----------------------------------------------------------------------

    @staticmethod
    def active() -> Flow | None:
        """The flow of the innermost ``with Flow(...)`` block, if any."""
        stack = _active_flows.get()
        return stack[-1] if stack else None

    def __enter__(self) -> Flow:
        from plait.context import _flow_ctx

        # The block is a context scope too (Prefect 1's): `flow` is this flow in it, and keys
        # set in it (plait.context.x = ...) end with it.
        # The block also tracks the tasks made in it that never join a flow (Prefect 1's
        # warning): `Parameter("x")` without using it, a task made but not called.
        unused: set[Task] = set()
        tokens = (
            _active_flows.set(_active_flows.get() + (self,)),
            _flow_ctx.set({**_flow_ctx.get(), "flow": self, UNUSED_TASKS_KEY: unused}),
        )
        self.__dict__.setdefault("_block_tokens", []).append(tokens)
        _defer_full_collections()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        from plait.context import _flow_ctx

        _end_deferral()
        unused = _flow_ctx.get().get(UNUSED_TASKS_KEY)
        active, ctx = self._block_tokens.pop()
        _flow_ctx.reset(ctx)
        _active_flows.reset(active)
        if unused and exc_type is None:
            names = ", ".join(sorted(repr(t) for t in unused))
            warnings.warn(
                f"Tasks were created but not added to the flow {self.name!r}: {names}. A task made in a "
                "`with Flow(...)` block joins the flow only when it is called there, passed to another "
                "task, or added with flow.add_task(); these are not part of any run.",
                UserWarning,
                stacklevel=2,
            )

    # -- tasks and edges ----------------------------------------------------------------------

    @property
    def tasks(self) -> set[Task]:
        """The flow's tasks (a new set; use ``add_task`` to change the flow)."""
        return set(self._tasks)

    @property
    def edges(self) -> set[Edge]:
        """The flow's edges (the flow's own set: use ``add_edge`` to change the flow)."""
        edges = self._edge_set
        if edges is None:
            edges = self._edge_set = {e for es in self._edges_in.values() for e in es}
        return edges

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, task: object) -> bool:
        return task in self._tasks

    def add_task(self, task: Task) -> Task:
        """Add a task (once); gives it a slug unique within the flow."""
        if not isinstance(task, Task):
            raise TypeError(f"Flow {self.name!r}: add_task expects a Task, got {type(task).__name__}: {task!r}")
        if task in self._tasks:
            return task
        unused = _flow_ctx.get().get(UNUSED_TASKS_KEY)
        if unused:
            unused.discard(task)
        if isinstance(task, Parameter):  # (in _slugs: a parameter never gets a counted slug)
            other = self._slugs.get(task.name)
            if isinstance(other, Parameter):
                raise ParameterError(f"Flow {self.name!r} already has a parameter named {task.name!r}")
        slug = task.slug
        if slug is None or self._slug_taken(slug):
            base = task.name
            if not isinstance(task, Parameter) and not self._slug_taken(base):
                slug = base
            else:
                slug = self._next_slug(base)
            task.slug = slug
        self._slugs[slug] = task
        self._tasks[task] = self._version
        # (no entry in _edges_in / _edges_out until the task has an edge there: most tasks of a
        # fan-out feed nothing, most of a fan-in's take no task's result)
        self._version += 1  # self._changed(), without the call: this runs once per task built
        if _open_case_blocks:
            cases = _active_cases.get()
            if cases:
                cases[-1]._add(task, self)  # a task added inside `with case(...)`: part of its branch
        return task

    def _slug_taken(self, slug: str) -> bool:
        """Whether a task of the flow has ``slug`` (in ``_slugs``, or a counted one not entered there)."""
        if slug in self._slugs:
            return True
        if self._unlisted:
            base, dash, n = slug.rpartition("-")
            if dash and n.isascii() and n.isdigit() and int(n) <= self._slug_counters.get(base, 0):
                return slug in self._slug_table()
        return False

    def _slug_table(self) -> dict[str, Task]:
        """``_slugs`` for every task of the flow: the counted slugs of ``_unlisted`` entered in it."""
        slugs = self._slugs
        unlisted = self._unlisted
        while unlisted:  # (one at a time: a task another thread lists meanwhile is not lost)
            t = unlisted.pop()
            slugs[t.slug] = t
        return slugs

    def _next_slug(self, base: str) -> str:
        """``base-N``, the first N not taken (a counter per name keeps adding many copies linear).

        (N is past the counter, so no counted slug left out of ``_slugs`` can be ``base-N``.)
        """
        slugs = self._slugs
        n = self._slug_counters.get(base, 0)
        while True:
            n += 1
            slug = f"{base}-{n}"
            if slug not in slugs:
                break
        self._slug_counters[base] = n
        return slug

    def add_edge(
        self,
        upstream_task: Task,
        downstream_task: Task,
        key: str | None = None,
        mapped: bool = False,
        flattened: bool = False,
        validate: bool | None = None,
    ) -> Edge:
        """Make ``downstream_task`` depend on ``upstream_task`` (adding both to the flow).

        ``validate=True`` checks the edge at once: ``key`` must be an input the downstream
        task's ``run()`` takes, and the edge must not close a cycle (otherwise the flow is
        checked when it runs).
        """
        if not (isinstance(upstream_task, Task) and isinstance(downstream_task, Task)):
            t = downstream_task if isinstance(upstream_task, Task) else upstream_task
            raise TypeError(f"Flow {self.name!r}: add_edge expects tasks, got {type(t).__name__}: {t!r}")
        if upstream_task is downstream_task:
            raise CycleError(self.name, [upstream_task.name, upstream_task.name])
        if isinstance(downstream_task, Parameter):
            raise FlowValidationError(
                f"Parameter {downstream_task.name!r} can not have upstream dependencies (here task "
                f"{upstream_task.name!r}): a parameter's value comes from the run"
            )
        if validate:
            self._check_edge(upstream_task, downstream_task, key)
        if (
            key is not None
            and type(upstream_task) is Constant
            and not (mapped or flattened)
            and upstream_task not in self._tasks
        ):
            # A value given as a Constant task to one input is stored as that input's constant
            # (Prefect 1's rule): no task to run for it. The edge returned is not in the flow.
            # It was used, so the block's unused-task warning leaves it out.
            unused = _flow_ctx.get().get(UNUSED_TASKS_KEY)
            if unused:
                unused.discard(upstream_task)
            self.set_dependencies(downstream_task, keyword_tasks={key: upstream_task.value})
            return Edge(upstream_task, downstream_task, key)
        if upstream_task not in self._tasks:
            self.add_task(upstream_task)
        if downstream_task not in self._tasks:
            self.add_task(downstream_task)
        if key is not None:
            if key in self.constants.get(downstream_task, ()):
                raise TaskBindError(f"Task {downstream_task.name!r} already has a value for input {key!r}")
            other = self._input_edge(downstream_task, key)
            if other is not None:
                raise DuplicateInputError(
                    f"Task {downstream_task.name!r} already gets input {key!r} from {other.upstream_task.name!r} "
                    "(it has already been assigned)"
                )
        edge = Edge(upstream_task, downstream_task, key, mapped, flattened)
        # A keyed edge cannot be there already (the input would be taken): no lookup for it.
        if key is not None or not self._has_edge(edge):
            tasks = self._tasks
            if self._ordered and tasks[upstream_task] > tasks[downstream_task]:
                # An edge back to a task added earlier. One that feeds no task yet (a call's
                # task, whose list of inputs became a collection task after it) moves to the
                # end, after every one of its inputs; otherwise the flow is sorted when needed.
                if self._edges_out.get(downstream_task):
                    self._ordered = False
                else:
                    del tasks[downstream_task]
                    tasks[downstream_task] = self._version
            if self._edge_set is not None:
                self._edge_set.add(edge)
            _append(self._edges_in, downstream_task, edge)
            _append(self._edges_out, upstream_task, edge)
            if key is not None:
                index = self._keyed_inputs.get(downstream_task)
                if index is not None:
                    index[key] = edge
            self._version += 1
        return edge

    def _check_edge(self, upstream: Task, downstream: Task, key: str | None) -> None:
        """``add_edge(..., validate=True)``: the input exists and the edge closes no cycle."""
        if key is not None:
            accepted, _ = _inputs_of(downstream)
            if accepted is not None and key not in accepted:
                raise TaskBindError(
                    f"Task {downstream.name!r} cannot take input {key!r}: its run{downstream.signature()} "
                    "has no such parameter"
                )
        if upstream in self._tasks and downstream in self._tasks:
            path = self._path(downstream, upstream)
            if path:
                raise CycleError(self.name, [t.name for t in [*path, downstream]])

    def _path(self, start: Task, goal: Task) -> list[Task]:
        """Tasks from ``start`` down to ``goal`` along edges (empty when ``goal`` is not downstream)."""
        parents: dict[Task, Task | None] = {start: None}
        todo = [start]
        while todo:
            task = todo.pop()
            if task is goal:
                path = [task]
                while parents[path[-1]] is not None:
                    path.append(parents[path[-1]])  # type: ignore[arg-type]
                return path[::-1]
            for edge in self._edges_out.get(task, ()):
                if edge.downstream_task not in parents:
                    parents[edge.downstream_task] = task
                    todo.append(edge.downstream_task)
        return []

    def set_dependencies(
        self,
        task: Task,
        upstream_tasks: Iterable[Any] | None = None,
        downstream_tasks: Iterable[Task] | None = None,
        keyword_tasks: dict[str, Any] | None = None,
        mapped: bool = False,
    ) -> None:
        """Add ``task`` with its inputs: tasks become edges, plain values constants.

        ``upstream_tasks`` run first without passing data; ``keyword_tasks`` maps ``run()``
        argument names to tasks or values (``unmapped(...)``/``flatten(...)`` allowed);
        ``mapped`` maps over every keyword input not wrapped in ``unmapped``, and over the
        ``upstream_tasks`` too (one child per item of their results, child ``i`` after child
        ``i`` of a mapped one), as in Prefect 1; ``unmapped(t)`` there waits for the whole of ``t``.
        A value that is not a task in ``upstream_tasks`` becomes a ``Constant`` task.
        """
        fresh = task not in self._tasks
        self.add_task(task)
        for up in upstream_tasks or ():
            up_mapped = mapped and not isinstance(up, unmapped)
            value = up.value if isinstance(up, unmapped) else up
            up_task = _task_of(value, self)
            if up_task is None:
                if isinstance(value, (flatten, Flow)):
                    raise TaskBindError(
                        f"Task {task.name!r}: upstream_tasks must be tasks or values, "
                        f"got {type(value).__name__}: {value!r}"
                    )
                if up_mapped and not _is_iterable(value):
                    raise TaskBindError(
                        f"Task {task.name!r} cannot map over upstream task value {value!r}: "
                        f"a {type(value).__name__} is not iterable (wrap it in unmapped() to wait for it whole)"
                    )
                up_task = self.add_task(Constant(value, name=f"{task.name}.upstream"))
            self.add_edge(up_task, task, mapped=up_mapped)
        for down in downstream_tasks or ():
            if not isinstance(down, Task):  # a value downstream: a Constant task (as upstream)
                down = self.add_task(Constant(down, name=f"{task.name}.downstream"))
            self.add_edge(task, down)
        for key, value in (keyword_tasks or {}).items():
            if isinstance(value, Task):  # the usual input: another task's result
                if fresh and value is not task and value in self._tasks:
                    # A task new to the flow has no data inputs yet, and these keys are unique:
                    # add_edge's checks cannot fail, so the edge goes in directly (the path of
                    # every task called in a `with Flow` block).
                    if isinstance(key, str) and key.isidentifier():
                        edge = _checked_edge(value, task, key, mapped)
                    else:
                        edge = Edge(value, task, key, mapped)  # its error
                    if self._edge_set is not None:
                        self._edge_set.add(edge)
                    _append(self._edges_in, task, edge)
                    _append(self._edges_out, value, edge)
                    self._version += 1
                else:
                    self.add_edge(value, task, key, mapped, False)
                continue
            is_mapped, flattened = mapped, False
            if isinstance(value, unmapped):
                value, is_mapped = value.value, False
            elif isinstance(value, mapped_):
                value, is_mapped = value.value, True
            if isinstance(value, flatten):
                value, flattened = value.value, True
            up_task = value if isinstance(value, Task) else _task_of(value, self)
            if up_task is not None:
                self.add_edge(up_task, task, key, is_mapped, flattened)
                continue
            if is_mapped or flattened:
                if not _is_iterable(value):
                    raise TaskBindError(
                        f"Task {task.name!r} cannot map over input {key!r}: "
                        f"a {type(value).__name__} ({value!r}) is not iterable"
                    )
                const = self.add_task(Constant(value, name=f"{task.name}.{key}"))
                self.add_edge(const, task, key=key, mapped=is_mapped, flattened=flattened)
                continue
            other = self._input_edge(task, key)
            if other is not None:
                raise TaskBindError(f"Task {task.name!r} already gets input {key!r} from {other.upstream_task.name!r}")
            self.constants.setdefault(task, {})[key] = value
            self._changed()

    def _add_bound(self, task: Task, callargs: dict[str, Any]) -> None:
        """``set_dependencies(task, keyword_tasks=callargs)`` for a copy ``Task.__call__`` just made.

        The usual call, whose inputs are tasks already in the flow or plain values, goes in
        directly: the task is new, so it has no inputs yet and none of ``set_dependencies``'
        checks can fail. Anything else (a task not in the flow yet, a list or dict that may
        hold tasks, ``unmapped``/``mapped``/``flatten``) takes ``set_dependencies``.
        """
        tasks = self._tasks
        for key, value in callargs.items():
            if type(value) in _PLAIN_TYPES:
                continue
            if isinstance(value, Task):
                if value not in tasks or not key.isidentifier():  # (a key from **kwargs: Edge's error)
                    break
            elif isinstance(value, _NOT_PLAIN):
                break
        else:
            # add_task(task), for a copy made this moment: no slug yet, in no flow, not a Parameter
            task.__dict__["slug"] = _quick_slug(self, task, task.name)
            tasks[task] = self._version
            edges_in: list[Edge] = []
            edges_out = self._edges_out
            edges = self._edge_set
            consts: dict[str, Any] | None = None
            for key, value in callargs.items():
                if type(value) not in _PLAIN_TYPES and isinstance(value, Task):
                    # Edge(value, task, key), without the call: the task is new, so it is not
                    # value, and the key is a name (checked above)
                    edge = _new_edge(Edge)
                    edge.upstream_task, edge.downstream_task, edge.key = value, task, key
                    edge.mapped = edge.flattened = False
                    if edges is not None:
                        edges.add(edge)
                    edges_in.append(edge)
                    outs = edges_out.get(value, ())
                    if type(outs) is list:
                        outs.append(edge)
                    else:  # () or a tuple of one (see _append)
                        edges_out[value] = [*outs, edge] if outs else (edge,)
                elif consts is None:
                    consts = self.constants[task] = {key: value}
                else:
                    consts[key] = value
            if edges_in:
                self._edges_in[task] = (edges_in[0],) if len(edges_in) == 1 else edges_in
            self._version += 1
            if _open_case_blocks:
                cases = _active_cases.get()
                if cases:
                    cases[-1]._add(task, self)  # a task added inside `with case(...)`: part of its branch
            return
        self.set_dependencies(task, None, None, callargs, False)

    def _add_collection(self, task: Task, keys: list[str], items: list[Any]) -> None:
        """``_add_bound(task, dict(zip(keys, items)))`` for a collection task ``_task_of`` just made.

        ``keys`` are names (``arg_1``, ...). When every item is a task of the flow (a list of
        tasks passed to a call: a fan-in), its edges go in without the dict of inputs and
        without checking each item twice; anything else takes ``_add_bound``.
        """
        tasks = self._tasks
        if not (all(map(isinstance, items, itertools.repeat(Task))) and all(map(tasks.__contains__, items))):
            self._add_bound(task, dict(zip(keys, items, strict=True)))
            return
        # add_task(task), for a task made this moment: no slug yet, in no flow, not a Parameter
        task.__dict__["slug"] = _quick_slug(self, task, task.name)
        tasks[task] = self._version
        edges_in: list[Edge] = []
        add_in = edges_in.append
        edges_out = self._edges_out
        new_edge = _new_edge
        for key, value in zip(keys, items, strict=True):
            # Edge(value, task, key), without the call (see _add_bound)
            edge = new_edge(Edge)
            edge.upstream_task, edge.downstream_task, edge.key = value, task, key
            edge.mapped = edge.flattened = False
            add_in(edge)
            outs = edges_out.get(value, ())
            if type(outs) is list:
                outs.append(edge)
            else:  # () or a tuple of one (see _append)
                edges_out[value] = [*outs, edge] if outs else (edge,)
        if edges_in:
            self._edges_in[task] = (edges_in[0],) if len(edges_in) == 1 else edges_in
            if self._edge_set is not None:
                self._edge_set.update(edges_in)
        self._version += 1
        if _open_case_blocks:
            cases = _active_cases.get()
            if cases:
                cases[-1]._add(task, self)  # a task added inside `with case(...)`: part of its branch

    def _add_one(self, task: Task, key: str, value: Any) -> None:
        """``_add_bound(task, {key: value})`` for a copy with one input, ``key`` a name its ``run()`` takes.

        The most common call of all (``inc(x)``, ``inc(1)``), without the dict of inputs. The
        copy may still hold its original's slug: it gets its own here.
        """
        tasks = self._tasks
        if type(value) in _PLAIN_TYPES:
            from_task = False
        elif isinstance(value, Task):
            from_task = True
            if value not in tasks:
                from_task = None
        elif isinstance(value, _NOT_PLAIN):
            from_task = None
        else:
            from_task = False
        if from_task is None:
            task.__dict__["slug"] = None
            self.set_dependencies(task, None, None, {key: value}, False)
            return
        # add_task(task), for a copy made this moment: no slug yet, in no flow, not a Parameter
        slugs, name = self._slugs, task.name
        if name in slugs:  # _quick_slug(self, task, name), without the call
            counters = self._slug_counters
            n = counters.get(name, 0) + 1
            slug = f"{name}-{n}"
            if slug in slugs:
                slug = self._next_slug(name)
                slugs[slug] = task
            else:
                counters[name] = n
                self._unlisted.append(task)
        else:
            slug = _quick_slug(self, task, name)
        task.__dict__["slug"] = slug
        tasks[task] = self._version
        if from_task:
            # Edge(value, task, key), without the call: the task is new, so it is not value,
            # and the key is a name
            edge = _new_edge(Edge)
            edge.upstream_task, edge.downstream_task, edge.key = value, task, key
            edge.mapped = edge.flattened = False
            if self._edge_set is not None:
                self._edge_set.add(edge)
            self._edges_in[task] = (edge,)
            edges_out = self._edges_out
            outs = edges_out.get(value, ())
            if type(outs) is list:
                outs.append(edge)
            else:  # () or a tuple of one (see _append)
                edges_out[value] = [*outs, edge] if outs else (edge,)
        else:
            self.constants[task] = {key: value}
        self._version += 1
        if _open_case_blocks:
            cases = _active_cases.get()
            if cases:
                cases[-1]._add(task, self)  # a task added inside `with case(...)`: part of its branch

    def chain(self, *tasks: Task) -> list[Edge]:
        """Make each task run after the one before it: ``flow.chain(a, b, c)``."""
        return [self.add_edge(a, b) for a, b in itertools.pairwise(tasks)]

    def edges_to(self, task: Task) -> set[Edge]:
        """Edges into ``task``."""
        return set(self._edges_in.get(task) or self._unknown(task))

    def edges_from(self, task: Task) -> set[Edge]:
        """Edges out of ``task``."""
        return set(self._edges_out.get(task) or self._unknown(task))

    def upstream_tasks(self, task: Task) -> set[Task]:
        return {e.upstream_task for e in self._edges_in.get(task) or self._unknown(task)}

    def downstream_tasks(self, task: Task) -> set[Task]:
        return {e.downstream_task for e in self._edges_out.get(task) or self._unknown(task)}

    def _unknown(self, task: Task) -> tuple[()]:
        # an empty list of edges: a task of the flow without edges there, or a stranger
        if task not in self._tasks:
            raise FlowValidationError(f"Task {task!r} was not found in Flow {self.name!r}")
        return ()

    def root_tasks(self) -> set[Task]:
        """Tasks with no upstream task."""
        edges_in = self._edges_in
        return {t for t in self._tasks if not edges_in.get(t)}

    def terminal_tasks(self) -> set[Task]:
        """Tasks with no downstream task."""
        edges_out = self._edges_out
        return {t for t in self._tasks if not edges_out.get(t)}

    def reference_tasks(self) -> set[Task]:
        """The tasks whose states decide the flow run's state (default: the terminal tasks)."""
        return set(self._reference_tasks) or self.terminal_tasks()

    def set_reference_tasks(self, tasks: Iterable[Task]) -> None:
        """Make these tasks decide the flow run's state (``[]``: back to the terminal tasks)."""
        if isinstance(tasks, Task) or not isinstance(tasks, Iterable):
            raise TypeError(f"Flow {self.name!r}: set_reference_tasks takes a list of tasks, got {tasks!r}")
        tasks = set(tasks)
        if not all(isinstance(t, Task) for t in tasks):
            raise TypeError(f"Flow {self.name!r}: reference tasks must be tasks, got {tasks!r}")
        missing = [t.name for t in tasks if t not in self._tasks]
        if missing:
            raise FlowValidationError(
                f"Flow {self.name!r}: reference tasks must be part of the flow; not in the flow: {', '.join(missing)}"
            )
        self._reference_tasks = tasks
        self._changed()  # the runner's cached plan holds the reference tasks

    def get_tasks(
        self,
        name: str | None = None,
        slug: str | None = None,
        tags: Iterable[str] | None = None,
        task_type: type | None = None,
    ) -> list[Task]:
        """Tasks matching every filter given (``task_type``: instances of that class)."""
        wanted = set(tags or ())
        return [
            t
            for t in self._tasks
            if (name is None or t.name == name)
            and (slug is None or t.slug == slug)
            and wanted <= t.tags
            and (task_type is None or isinstance(t, task_type))
        ]

    def parameters(self) -> set[Parameter]:
        """The flow's parameters."""
        return {t for t in self._tasks if isinstance(t, Parameter)}

    # -- checking -----------------------------------------------------------------------------

    def sorted_tasks(self, root_tasks: Iterable[Task] | None = None) -> tuple[Task, ...]:
        """The tasks in an order where each comes after its upstream tasks (raises on a cycle).

        With ``root_tasks``, only those tasks and the tasks downstream of them.
        """
        order = self._sorted_all()
        if not root_tasks:
            return order
        roots = list(root_tasks)
        for t in roots:
            if t not in self._tasks:
                raise FlowValidationError(f"Task {t!r} was not found in Flow {self.name!r}")
        reached = set(roots)
        todo = list(roots)
        while todo:
            for edge in self._edges_out.get(todo.pop(), ()):
                if edge.downstream_task not in reached:
                    reached.add(edge.downstream_task)
                    todo.append(edge.downstream_task)
        return tuple(t for t in order if t in reached)

    def _sorted_all(self) -> tuple[Task, ...]:
        cached = self._sorted
        if cached is not None and cached[0] == self._version:
            return cached[1]
        if self._ordered:  # every edge goes forward in the order of adding: that is the order
            result = tuple(self._tasks)
            self._sorted = (self._version, result)
            return result
        edges_in, edges_out = self._edges_in, self._edges_out
        # Kahn's algorithm. In-degree counts each upstream task once (two inputs from one task
        # are one wait); the queue of ready tasks, walked while it grows, is the order.
        indegree: dict[Task, int] = {}
        order: list[Task] = []
        for t in self._tasks:
            edges = edges_in.get(t)
            if not edges:
                order.append(t)
            else:
                indegree[t] = len(edges) if len(edges) == 1 else len({e.upstream_task for e in edges})
        for t in order:
            outs = edges_out.get(t)
            if not outs:
                continue
            if len(outs) == 1:
                down = outs[0].downstream_task
                left = indegree[down] = indegree[down] - 1
                if not left:
                    order.append(down)
                continue
            for down in dict.fromkeys(e.downstream_task for e in outs):
                left = indegree[down] = indegree[down] - 1
                if not left:
                    order.append(down)
        if len(order) != len(self._tasks):
            raise CycleError(self.name, self._find_cycle({t for t, n in indegree.items() if n > 0}))
        result = tuple(order)
        self._sorted = (self._version, result)
        return result

    def validate(self) -> None:
        """Check the graph: no cycle, every required input provided, reference tasks present.

        Raises ``CycleError``, ``FlowValidationError`` or ``TaskBindError`` naming what is wrong.
        """
        if self._validated != self._version:
            # The checks are made while the run plan is compiled, in the same walk of the
            # tasks and their edges (plait.engine.runner._Plan): a flow validated is planned,
            # and its first run starts at once.
            from plait.engine.runner import _plan

            _plan(self)

    def _check_inputs(
        self,
        t: Task,
        edges: Any,
        consts: dict[str, Any] | None,
        accepted: frozenset[str] | None,
        required: frozenset[str],
    ) -> None:
        """Raise ``TaskBindError`` if ``t``'s inputs (``edges``, ``consts``) do not fit its ``run()``.

        ``accepted``/``required`` are from ``_inputs_of(t)``. The run plan passes the usual
        task (one input, from a task or a constant) without this call.
        """
        if len(edges) == 1:
            given = {edges[0].key}
        else:
            given = {e.key for e in edges}
        given.discard(None)
        if consts:
            given.update(consts)
        if accepted is not None and not given <= accepted:
            unknown = sorted(given - accepted)
            raise TaskBindError(
                f"Task {t.name!r} in flow {self.name!r} is given input "
                f"{', '.join(repr(u) for u in unknown)} that its run{t.signature()} does not take; "
                f"rename the input or add the parameter to run()"
            )
        if given >= required:
            return
        missing = [name for name in t.required_arguments() if name not in given]
        if missing:
            raise TaskBindError(
                f"Task {t.name!r} in flow {self.name!r} is missing input "
                f"{', '.join(repr(m) for m in missing)}: run{t.signature()} needs "
                f"{'it' if len(missing) == 1 else 'them'}; pass {'it' if len(missing) == 1 else 'them'} "
                f"when calling the task"
            )

    def _check_reference_tasks(self) -> None:
        for t in self._reference_tasks:
            if t not in self._tasks:
                raise FlowValidationError(f"Flow {self.name!r}: reference task {t.name!r} is not in the flow")

    # -- running ------------------------------------------------------------------------------

    def run(
        self,
        parameters: dict[str, Any] | None = None,
        executor: Executor | str | None = None,
        context: dict[str, Any] | None = None,
        resume: Iterable[Task | str] | Task | str | None = None,
        resume_from: State | dict[Task, State] | None = None,
        run_on_schedule: bool | None = None,
        max_runs: int | None = None,
        task_states: State | dict[Task, State] | None = None,
        state: State | None = None,
        **kwargs: Any,
    ) -> State:
        """Run the flow now and return the flow-run state.

        ``state.result`` maps each task to its task-run state. ``executor`` is an
        ``Executor`` or a registered name (``"local"``, ``"threads"``, ``"processes"``);
        ``context`` sets or overrides context keys (e.g. ``scheduled_start_time``).

        To resume a paused (or failed) run, pass its state as ``resume_from`` (or, under
        Prefect 1's name, ``task_states``): tasks that succeeded there keep their results and do
        not run again, even when a task upstream of them runs. ``resume`` lists the tasks
        (objects, names or slugs) to let through a ``manual_only`` trigger or ``pause_task()``::

            state = flow.run()                 # stops Paused at "approve"
            state = flow.run(resume_from=state, resume=["approve"])

        On a flow with a ``schedule``, ``run()`` instead waits for each scheduled time and runs
        the flow then, with ``scheduled_start_time`` set and the clock's ``parameter_defaults``
        under ``parameters``, until SIGINT/SIGTERM (a run in progress finishes first),
        ``max_runs`` runs or the end of the schedule; it returns the last run's state. Missed
        times (a run overran them) are logged and skipped. ``run_on_schedule=False`` runs once
        now. See ``plait.engine.scheduling``.

        Prefect 1's spellings work too: parameters as keywords (``flow.run(x=1)``, for the
        flow's parameters), ``flow_run_name=`` (the run's name in the context), ``state=`` (the
        flow run's state so far: a finished one is returned as it is, with a ``Pending`` state
        for each task).
        """
        if kwargs:
            parameters, context = self._run_keywords(kwargs, parameters, context)
        if _active_flows.get():
            raise FlowRunError(
                f"flow.run() was called inside `with Flow(...)` for flow {self.name!r}: "
                "call it after the with block, once the flow is built"
            )
        if run_on_schedule or (run_on_schedule is None and self.schedule is not None):
            from plait.engine.scheduling import ScheduleRunner

            return ScheduleRunner(self, None, parameters, executor, context, max_runs=max_runs).run()
        if max_runs is not None:
            raise FlowRunError(f"Flow {self.name!r}: max_runs applies only when running on a schedule")
        from plait.engine.runner import FlowRunner

        extra: dict[str, Any] = {}
        if resume is not None:
            extra["resume"] = [resume] if isinstance(resume, (Task, str)) else list(resume)
        if resume_from is not None:
            extra["resume_from"] = resume_from
        if task_states is not None:  # Prefect 1's name for resume_from
            extra["task_states"] = task_states
        if state is not None:
            extra["state"] = state
        final = FlowRunner(self).run(
            parameters=parameters,
            executor=executor if executor is not None else self.executor,
            context=context,
            wait_for_retries=True,
            **extra,
        )
        if final.result is None:  # a state given as finished: nothing ran
            from plait.states import Pending

            final = copy.copy(final)
            final.result = {t: Pending("Task not run: the flow run's state was already final.") for t in self._tasks}
        return final

    def _run_keywords(
        self, kwargs: dict[str, Any], parameters: dict[str, Any] | None, context: dict[str, Any] | None
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """``flow.run(x=1, flow_run_name="n")``: keywords that name parameters, and the run's name."""
        if "return_tasks" in kwargs:
            raise ValueError(
                "`return_tasks` keyword cannot be provided to Flow.run(): its state holds every task's "
                "state; FlowRunner(flow).run(return_tasks=[...]) narrows it"
            )
        names = {p.name for p in self.parameters()}
        given = dict(parameters or {})
        for key in list(kwargs):
            if key in names:
                given.setdefault(key, kwargs.pop(key))
        if "flow_run_name" in kwargs:
            context = {**(context or {}), "flow_run_name": kwargs.pop("flow_run_name")}
        if kwargs:
            unknown = sorted(kwargs)[0]
            raise TypeError(
                f"Flow.run() got an unexpected keyword argument {unknown!r}; flow {self.name!r} has "
                f"parameters {sorted(names) or 'none'} (pass others with parameters={{...}})"
            )
        return (given or parameters), context

    def backfill(
        self,
        start: datetime | date | str,
        end: datetime | date | str,
        parameters: dict[str, Any] | None = None,
        max_concurrency: int = 1,
        executor: Executor | str | None = None,
        interval: timedelta | None = None,
        timezone: Any = None,
    ) -> BackfillReport:
        """Run the flow once per scheduled time in ``[start, end]``; a report of the runs.

        The times come from the flow's schedule, or with ``interval`` (default one day for a
        flow without a schedule) from ``start`` every ``interval``. Each run has
        ``scheduled_start_time`` (and ``date``, ``today``...) set to its time and the clock's
        ``parameter_defaults`` under ``parameters``. A ``date`` as ``end`` covers that whole
        day; dates are read in ``timezone`` (default: the schedule's zone, else UTC). With
        ``max_concurrency > 1`` runs overlap on threads, each with its own context.

        ```python
        report = flow.backfill(date(2026, 1, 1), date(2026, 1, 31), max_concurrency=4)
        print(report)                  # a table: time, state, duration
        assert report.is_successful()  # every run succeeded
        ```
        """
        from plait.engine.scheduling import backfill

        return backfill(self, start, end, parameters, max_concurrency, executor, interval, timezone)

    # -- describing ---------------------------------------------------------------------------

    def serialize(self) -> dict[str, Any]:
        """The flow as plain JSON data: tasks with options, edges, parameters, constants and its schedule.

        Nothing secret is in it (see docs/reliability.md, "Secrets"): a constant given to a
        task input whose name looks like a credential (``password``, ``token``,
        ``Authorization``, ``auth``, ``api_key``...; ``plait.secrets.is_secret_key``) or that
        the task declares secret (``Task.secret_inputs``) is ``"****"``, in nested dicts and
        header lists too; registered secrets, URL passwords and URL query credentials are
        masked in every string; a secret parameter is marked ``"secret": true`` and its
        default is ``"****"``.
        """
        from plait.secrets import mask_data, redact

        tasks = []
        for t in self.sorted_tasks():
            entry = {
                "slug": t.slug,
                "name": t.name,
                "type": f"{type(t).__module__}.{type(t).__qualname__}",
                "options": t.options(),
            }
            if isinstance(t, FunctionTask):
                entry["function"] = f"{t.run.__module__}.{t.run.__qualname__}"
            consts = self.constants.get(t)
            if consts:
                secret_inputs = getattr(t, "secret_inputs", ())
                entry["constants"] = {k: redact(v, k, secret_inputs) for k, v in consts.items()}
            tasks.append(entry)
        edges = [
            {
                "upstream": e.upstream_task.slug,
                "downstream": e.downstream_task.slug,
                "key": e.key,
                "mapped": e.mapped,
                "flattened": e.flattened,
            }
            for e in sorted(self.edges, key=lambda e: (e.upstream_task.slug, e.downstream_task.slug, e.key or ""))
        ]
        # a last pass over every string: registered secrets and URL passwords, wherever they are
        return mask_data(
            {
                "name": self.name,
                "tasks": tasks,
                "edges": edges,
                "parameters": [_serialized_parameter(p) for p in sorted(self.parameters(), key=lambda p: p.name)],
                "reference_tasks": sorted(t.slug for t in self.reference_tasks()),
                "schedule": None if self.schedule is None else self.schedule.serialize(),
                # only when set: flows without one keep the shape (and fingerprint) they had
                **({"run_config": self.run_config} if self.run_config else {}),
            }
        )

    def to_dot(self, flow_state: State | None = None) -> str:
        """The flow's graph in Graphviz's DOT language (see ``visualize``)."""
        from plait.visualize import flow_to_dot

        return flow_to_dot(self, flow_state)

    def visualize(
        self, filename: str | None = None, format: str = "svg", flow_state: State | None = None
    ) -> bytes | str:
        """Draw the flow with Graphviz's ``dot``: tasks as boxes, edges labelled with inputs.

        Given ``flow_state`` (what ``flow.run()`` returned) each task is coloured by its state
        and a mapped task shows how many children it ran. Returns the rendered bytes, or
        writes them to ``filename`` (``format`` appended when it has no extension) and
        returns the path. Needs the ``dot`` program (Debian: ``apt-get install graphviz``)::

            state = flow.run()
            flow.visualize("etl.svg", flow_state=state)
        """
        from plait.visualize import render

        return render(self, filename=filename, format=format, flow_state=flow_state)

    def __repr__(self) -> str:
        return f"<Flow: {self.name} ({len(self._tasks)} tasks)>"

    # -- copying, combining, saving (Prefect 1's names) -----------------------------------------

    def copy(self) -> Flow:
        """A new flow with the same tasks, edges, constants and options; changing it leaves this one alone.

        The tasks themselves are shared (as in Prefect 1), so ``copy == original`` until one changes.
        """
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__)
        new._tasks = dict(self._tasks)
        new._edge_set = None if self._edge_set is None else set(self._edge_set)
        new.constants = {t: dict(c) for t, c in self.constants.items()}
        new._edges_in = {t: list(e) for t, e in self._edges_in.items()}
        new._edges_out = {t: list(e) for t, e in self._edges_out.items()}
        new._keyed_inputs = {}  # made again when needed
        new._slugs = dict(self._slug_table())
        new._slug_counters = dict(self._slug_counters)
        new._unlisted = []
        new._reference_tasks = set(self._reference_tasks)
        new.state_handlers = list(self.state_handlers)
        new._sorted, new._validated, new._plan = None, -1, None
        new.__dict__.pop("_block_tokens", None)
        return new

    def update(self, flow: Flow, validate: bool = False, merge_parameters: bool = False) -> None:
        """Add every task, edge and constant of ``flow`` to this flow (its reference tasks too, if set).

        A parameter of ``flow`` named like one of this flow's is an error, unless
        ``merge_parameters=True``: then this flow's parameter feeds what ``flow``'s fed.
        """
        if not isinstance(flow, Flow):
            raise TypeError(f"Flow {self.name!r}: update() expects a Flow, got {type(flow).__name__}: {flow!r}")
        same: dict[Task, Task] = {}
        if merge_parameters:
            mine = {p.name: p for p in self.parameters()}
            same = {p: mine[p.name] for p in flow.parameters() if p.name in mine and mine[p.name] is not p}
        for task in flow._tasks:
            if task not in same:
                self.add_task(task)
        for edge in flow.edges:
            up, down = same.get(edge.upstream_task, edge.upstream_task), edge.downstream_task
            self.add_edge(up, down, edge.key, edge.mapped, edge.flattened)
        for task, consts in flow.constants.items():
            self.constants.setdefault(task, {}).update(consts)
        if flow._reference_tasks:
            self._reference_tasks |= {same.get(t, t) for t in flow._reference_tasks}
        self._changed()
        if validate:
            self.validate()

    def replace(self, old: Task, new: Any, validate: bool = True) -> None:
        """Put ``new`` (a task, or a value: a ``Constant``) where ``old`` is, with all of ``old``'s edges.

        ``old``'s constants and its place among the reference tasks go to ``new`` too (a value
        takes only the edges out of ``old``). The flow is validated after (``validate=False``
        skips it), so a new task that cannot take ``old``'s inputs is an error naming them.
        """
        if old not in self._tasks:
            raise FlowValidationError(f"Flow {self.name!r}: cannot replace task {old!r}, it is not in the flow")
        value_given = not isinstance(new, Task)
        if value_given:
            new = Constant(new)
        if new is old:
            return
        edges = list(self._edges_in.get(old, ())) + list(self._edges_out.get(old, ()))
        consts = self.constants.pop(old, None)
        if value_given:  # a value takes no inputs: only what old fed downstream moves to it
            consts = None
        for edge in edges:
            if self._edge_set is not None:
                self._edge_set.discard(edge)
            _remove(self._edges_out, edge.upstream_task, edge)
            _remove(self._edges_in, edge.downstream_task, edge)
            index = self._keyed_inputs.get(edge.downstream_task)
            if index is not None and index.get(edge.key) is edge:
                del index[edge.key]
        del self._tasks[old]
        self._edges_in.pop(old, None)
        self._edges_out.pop(old, None)
        self._keyed_inputs.pop(old, None)
        slugs = self._slug_table()
        if slugs.get(old.slug) is old:
            del slugs[old.slug]
        was_reference = old in self._reference_tasks
        self._reference_tasks.discard(old)
        self.add_task(new)
        if value_given:
            # the value goes to the inputs old fed as their constant (Prefect 1's); the Constant
            # task stays for the edges that need a task (no key, mapped)
            edges = [e for e in edges if e.upstream_task is old]
            plain = [e for e in edges if e.key is not None and not (e.mapped or e.flattened)]
            for edge in plain:
                self.constants.setdefault(edge.downstream_task, {})[edge.key] = new.value
            edges = [e for e in edges if e not in plain]
        if consts:
            self.constants.setdefault(new, {}).update(consts)
        for edge in edges:
            if value_given and edge.downstream_task is old:
                continue
            up = new if edge.upstream_task is old else edge.upstream_task
            down = new if edge.downstream_task is old else edge.downstream_task
            self.add_edge(up, down, edge.key, edge.mapped, edge.flattened)
        if was_reference:
            self._reference_tasks.add(new)
        self._changed()
        if validate:
            self.validate()

    def save(self, fpath: str | os.PathLike[str] | None = None) -> str:
        """Write the flow to ``fpath`` with cloudpickle (default ``~/.plait/flows/<name>.plait``); returns the path.

        Everything is kept: state handlers, triggers and functions defined in a script, so
        ``Flow.load(path)`` in another process runs the same flow. Like any pickle, load only
        files you trust.
        """
        import cloudpickle

        path = Path(fpath) if fpath is not None else _default_flow_path(self.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        token = _whole_pickle.set(True)
        try:
            data = cloudpickle.dumps(self)
        finally:
            _whole_pickle.reset(token)
        path.write_bytes(data)
        return str(path)

    @classmethod
    def load(cls, fpath: str | os.PathLike[str]) -> Flow:
        """Read a flow written by ``save()``: ``Flow.load("~/.plait/flows/etl.plait")``."""
        import cloudpickle

        path = Path(fpath).expanduser()
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise FlowValidationError(f"No saved flow at {str(path)!r}: save one with flow.save(path)") from None
        flow = cloudpickle.loads(data)
        if not isinstance(flow, Flow):
            raise FlowValidationError(f"{str(path)!r} does not hold a flow but a {type(flow).__name__}")
        return flow

    def __getstate__(self) -> dict[str, Any]:
        self._slug_table()  # every slug in _slugs, as a Plait before _unlisted keeps them
        state = self.__dict__.copy()
        state["_plan"] = None  # rebuilt on the first run
        state.pop("_block_tokens", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "edges" in state:  # pickled by Plait 0.1: the set of edges was kept all along
            state = dict(state)
            state.pop("edges")
            state["_edge_set"] = None  # made again when read (its edges' hashes were of other ids)
        self.__dict__.update(state)
        if "_unlisted" not in state:  # pickled by a Plait without it
            self._unlisted = []

    def __eq__(self, other: object) -> bool:
        """Flows are equal when they have the same name, tasks, edges, constants and reference tasks."""
        if type(self) is not type(other):
            return NotImplemented
        assert isinstance(other, Flow)
        return (
            self.name == other.name
            and self._tasks.keys() == other._tasks.keys()
            and self.edges == other.edges
            and self.constants == other.constants
            and self.reference_tasks() == other.reference_tasks()
        )

    __hash__ = object.__hash__  # flows stay usable as dict keys, by identity

    # -- helpers ------------------------------------------------------------------------------

    def _changed(self) -> None:
        self._version += 1

    def _has_edge(self, edge: Edge) -> bool:
        """``edge in self.edges``, without making the set for it: the downstream task's edges
        are few, or the set is made once and kept from then on."""
        edge_set = self._edge_set
        if edge_set is None:
            edges = self._edges_in.get(edge.downstream_task) or ()
            if len(edges) <= 8:
                return edge in edges
            edge_set = self.edges
        return edge in edge_set

    def _input_edge(self, task: Task, key: str) -> Edge | None:
        """The edge that gives ``task`` its input ``key``, if any (without scanning many edges).

        A task with a few inputs has its edges scanned; one with many (a fan-in's collection
        task) gets an index of them at its first lookup, which ``add_edge`` then keeps.
        """
        index = self._keyed_inputs.get(task)
        if index is None:
            edges = self._edges_in.get(task) or ()
            if len(edges) <= 8:
                for edge in edges:
                    if edge.key == key:
                        return edge
                return None
            index = self._keyed_inputs[task] = {e.key: e for e in edges if e.key is not None}
        edge = index.get(key)
        # An edge removed without add_edge's knowledge (control_flow rewires edges; the index
        # does not know) is no longer among the task's edges: then nothing gives that input.
        if edge is None or (self._edge_set is not None and edge not in self._edge_set):
            return None
        return edge

    def _find_cycle(self, candidates: set[Task]) -> list[str]:
        # Every task left with indegree > 0 is on or behind a cycle; walk upstream until a repeat.
        start = next(t for t in self._tasks if t in candidates)
        path: list[Task] = []
        seen: dict[Task, int] = {}
        node = start
        while node not in seen:
            seen[node] = len(path)
            path.append(node)
            node = next(e.upstream_task for e in self._edges_in.get(node, ()) if e.upstream_task in candidates)
        cycle = path[seen[node] :]
        cycle.reverse()  # walked upstream; show it in run order
        # Start at the task added to the flow first, so the message reads as the user wrote it.
        order = {t: i for i, t in enumerate(self._tasks)}
        first = min(range(len(cycle)), key=lambda k: order[cycle[k]])
        cycle = cycle[first:] + cycle[:first]
        names = [t.name for t in cycle]
        return names + [names[0]]


def _without_gc(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` with Python's cyclic garbage collector paused (work that makes no garbage).

    Checking and planning a flow walk every task and allocate a few containers for each, none
    of them garbage; on a big flow that allocation sets off full collections that scan every
    object of the process for nothing (a third of planning a 10,000-task flow). Paused, the
    new objects are examined once, by the first young collection after. (The collector is
    process-wide: one left disabled by the program stays so.)
    """
    if not gc.isenabled():
        return fn(*args)
    gc.disable()
    try:
        return fn(*args)
    finally:
        gc.enable()


#: While a ``with Flow(...)`` block is open, every other young collection of Python's cyclic
#: garbage collector takes the middle generation too (its threshold is 0), and a full collection
#: waits for at most this many of those (its third threshold; Python's defaults: a middle
#: collection every eleventh young one, a full one every tenth middle one).
DEFERRED_FULL_COLLECTION_THRESHOLD = 500

# (blocks open in any thread, the thresholds set when the first opened, those to put back)
_deferral_lock = threading.Lock()
_deferral: list[Any] = [0, None, None]


def _defer_full_collections() -> None:
    """Make the cyclic garbage collector's work cheaper while flows are built.

    Building a flow adds a few long-lived objects per task and no garbage, and every full
    collection walks every object of the process: with Python's default (a full collection
    each time the objects that survived the younger generations have grown by a quarter),
    building 100,000 tasks walks the growing heap about six times, with a cache miss at
    nearly every object once the heap outgrows the CPU's caches (half of building such a
    flow). So while a block is open a full collection waits for at most
    ``DEFERRED_FULL_COLLECTION_THRESHOLD`` collections of the middle generation (about
    700,000 allocations of containers, 100,000 or more tasks), and never happens more often
    than Python's own rule would have it.

    Young collections go on (short-lived garbage made in the block is collected as before),
    and every other one takes the middle generation too: what survives goes to the old
    generation within about 1,400 allocations, walked once or twice while it is still in the
    CPU's caches, instead of in a collection of the middle generation every eleventh young
    one, which walks 7,000 objects that have mostly left them (building a 100,000-task flow
    spent 0.4 microseconds a task in young and middle collections, and 0.27 so).

    The thresholds are put back when the last open block ends (unless the program set other
    thresholds meanwhile): no object is kept from the collector, so nothing can leak; a full
    collection that was due comes at the next one Python makes.
    """
    with _deferral_lock:
        if _deferral[0] == 0:
            current = gc.get_threshold()
            if current[2] < DEFERRED_FULL_COLLECTION_THRESHOLD:
                deferred = (current[0], 0, DEFERRED_FULL_COLLECTION_THRESHOLD)
                gc.set_threshold(*deferred)
                _deferral[1], _deferral[2] = deferred, current
            else:
                _deferral[1] = _deferral[2] = None
        _deferral[0] += 1


def _end_deferral() -> None:
    with _deferral_lock:
        if _deferral[0] == 0:
            return
        _deferral[0] -= 1
        if _deferral[0] == 0 and _deferral[2] is not None:
            if gc.get_threshold() == _deferral[1]:  # not changed by the program meanwhile
                gc.set_threshold(*_deferral[2])
            _deferral[1] = _deferral[2] = None


_new_edge = object.__new__


def _quick_slug(flow: Flow, task: Task, name: str) -> str:
    """The slug of a task that a call in a ``with Flow`` block adds: its name if free, else ``name-N``.

    ``name-N`` (N the next of the name's counter, usually free) is not entered in
    ``flow._slugs``: the task goes in ``flow._slugs``' list of those left out,
    ``flow._unlisted``, and is entered when something needs every slug (``_slug_table``;
    ``_slug_taken`` for a slug that may be one). So ``_slugs`` holds the few slugs that are
    names or were given, and building a 100,000-task flow does not enter 100,000 new strings
    at random places of a table that has outgrown the CPU's caches (a cache miss or two per
    task built, a fifth of building such a flow). Counted slugs cannot clash with one another
    (the counter only grows); ``name-N`` is checked against ``_slugs``, where a given slug or
    a name of that form is.
    """
    slugs = flow._slugs
    if name not in slugs and not flow._slug_taken(name):
        slugs[name] = task
        return name
    counters = flow._slug_counters
    n = counters.get(name, 0) + 1
    slug = f"{name}-{n}"
    if slug in slugs:
        slug = flow._next_slug(name)
        slugs[slug] = task
        return slug
    counters[name] = n
    flow._unlisted.append(task)
    return slug


# A task has no entry in ``flow._edges_in`` / ``_edges_out`` until it has an edge there (read
# them with ``.get(task, ())``; a flow pickled by an older Plait has ``()`` entries), then a
# tuple of one edge when the edge came from a call in a `with Flow` block (one object for the
# usual task's one input, where a list is two), and a list from the second edge on.


def _append(edge_lists: dict[Task, Any], task: Task, edge: Edge) -> None:
    """Add ``edge`` to ``task``'s edges in ``flow._edges_in`` or ``_edges_out``."""
    edges = edge_lists.get(task, ())
    if type(edges) is list:
        edges.append(edge)
    else:
        edge_lists[task] = [*edges, edge]


def _remove(edge_lists: dict[Task, Any], task: Task, edge: Edge) -> None:
    """Take ``edge`` out of ``task``'s edges in ``flow._edges_in`` or ``_edges_out`` (``ValueError`` if not there)."""
    edges = edge_lists.get(task, ())
    if type(edges) is not list:
        edges = edge_lists[task] = list(edges)
    edges.remove(edge)


def _checked_edge(upstream: Task, downstream: Task, key: str, mapped: bool) -> Edge:
    """``Edge(upstream, downstream, key, mapped)`` for two tasks and a key already known to be
    fine (not the same task, a name): without the constructor's checks and call."""
    edge = _new_edge(Edge)
    edge.upstream_task, edge.downstream_task, edge.key = upstream, downstream, key
    edge.mapped, edge.flattened = mapped, False
    return edge


#: Inputs ``Flow._add_bound`` leaves to ``set_dependencies``: collections may hold tasks, and
#: the wrappers change how an input is passed.
_NOT_PLAIN = (list, tuple, set, dict, unmapped, mapped_, flatten)

#: The usual constants' types, told from a task by one set lookup: ``isinstance(value, Task)``
#: is slow when false (it also reads ``value.__class__``), and so is ``_NOT_PLAIN``'s check.
_PLAIN_TYPES = frozenset({int, float, str, bool, bytes, complex, type(None)})

#: Set while ``Flow.save`` pickles: tasks then keep their handlers, triggers and functions.
_whole_pickle: contextvars.ContextVar[bool] = contextvars.ContextVar("plait_whole_pickle", default=False)


class _OnFailure:
    """``Flow(on_failure=fn)`` as a state handler: ``fn(flow, state)`` when a run ends failed."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, flow: Flow, old: State, new: State) -> None:
        if new.is_failed() and new.is_finished():
            self.fn(flow, new)

    def __repr__(self) -> str:
        return f"on_failure({getattr(self.fn, '__name__', self.fn)!r})"


def _default_flow_path(name: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "flow"
    return Path.home() / ".plait" / "flows" / f"{slug}.plait"


def _inputs_of(task: Task) -> tuple[frozenset[str] | None, frozenset[str]]:
    """(names ``run()`` takes by keyword or ``None`` for ``**kwargs``, names it requires)."""
    try:
        binder = _binder(task)
    except (TypeError, ValueError):  # no signature to read (some builtins): nothing to check
        return None, frozenset()
    if type(task).required_arguments is Task.required_arguments:
        return binder.accepted, binder.required_names
    return binder.accepted, frozenset(task.required_arguments())


def _is_iterable(value: Any) -> bool:
    if isinstance(value, (str, bytes)):
        return True
    try:
        iter(value)
    except TypeError:
        return False
    return True


def _checked_run_config(flow: str, run_config: Any) -> dict[str, dict[str, Any]] | None:
    """``run_config`` as plain JSON data (a copy), or a ``TypeError`` saying what is wrong."""
    if run_config is None or (isinstance(run_config, Mapping) and not run_config):
        return None
    example = '{"docker": {"image": "registry.example.com/etl:3"}}'
    if not isinstance(run_config, Mapping) or not all(
        isinstance(kind, str) and kind and isinstance(table, Mapping) for kind, table in run_config.items()
    ):
        raise TypeError(
            f"Flow {flow!r}: run_config must be a table per agent kind, e.g. {example}, got {run_config!r:.200}"
        )
    import json

    try:
        return json.loads(json.dumps(run_config, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"Flow {flow!r}: run_config must be plain JSON data (strings, numbers, lists, tables): {exc}"
        ) from None


def _serialized_parameter(p: Parameter) -> dict[str, Any]:
    entry = {"name": p.name, "default": p.serialized_default(), "required": p.required}
    if p.secret:
        entry["secret"] = True
    return entry
