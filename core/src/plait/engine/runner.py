"""The flow and task state machines.

A flow run goes ``Pending -> Running -> Success | Failed | Paused | Cancelled``. Inside it the
``FlowRunner`` drives a dependency-counting scheduler over *task runs*, one per task or, for
a mapped task, one per child:

1. A task becomes ready when every upstream task has finished (or, for a mapped task whose
   mapped inputs come from other mapped tasks, when those have been split into children:
   child ``i`` then waits only on child ``i`` of each upstream, so chains of maps run
   depth-first).
2. Before a task run starts, the driver checks its upstream states: a skip propagates
   (``skip_on_upstream_skip``), then the trigger decides.
3. The run itself (``run_task``) goes ``Pending -> Running -> Success | Failed | ...``; a
   failure with retries left becomes ``Retrying`` and is scheduled again after ``retry_delay``.
4. Every task state change passes through ``FlowRunner._notify`` (state handlers, observers,
   ``on_failure``); when nobody listens, nothing is called.

The per-task hot path is kept free of allocation beyond the states themselves, of locks
and of I/O: the graph is compiled once per flow version into integer-indexed lists.
"""

from __future__ import annotations

import copy
import functools
import heapq
import itertools
import logging
import queue
import signal
import sys
import time
import traceback
import types
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from plait import interrupts, signals
from plait.context import TaskRunInfo, _flow_ctx, _task_ctx, flow_context
from plait.engine.executors import Executor, get_executor
from plait.errors import FlowRunError, ParameterError, StateHandlerError, TaskTimeoutError, portable_exception
from plait.flow import Flow, _inputs_of, _without_gc
from plait.logging import LOG_TEXT_LIMIT, _context_fields, capture_stdout, configure_logging, excerpt, get_logger
from plait.secrets import _values as _secret_values
from plait.secrets import mask, register_secret_value
from plait.states import (
    STATES_BY_NAME,
    Cancelled,
    Failed,
    Looped,
    Mapped,
    Paused,
    Pending,
    Resume,
    Retrying,
    Running,
    Scheduled,
    Skipped,
    State,
    Success,
    TimedOut,
    TriggerFailed,
    is_remote,
    remask,
    result_ref,
)
from plait.tasks import _OWN_HANDLER_CLASSES, _OWN_STATE_HANDLERS, Parameter, Task, state_handlers_of
from plait.triggers import BUILT_IN as _BUILT_IN_TRIGGERS
from plait.triggers import UpstreamStates, all_successful, manual_only

if TYPE_CHECKING:
    from plait.engine.extras import TaskExtras

__all__ = ["FlowRunner", "StateRecorder", "run_task"]

logger = get_logger("engine")

#: ``observer(task, old_state, new_state)`` for task runs, ``observer(flow, old, new)`` for flows.
Observer = Callable[[Any, State, State], None]
#: ``notify(task, old, new, interim=False, handlers_old=None)``: ``interim`` marks a change only
#: the task's own state handlers see (the ``Failed`` before a ``Retrying``), not observers or
#: ``on_failure``; ``handlers_old`` is the old state the handlers get when it differs from the
#: observers' one (``Failed -> Retrying`` for handlers, ``Running -> Retrying`` for observers).
Notify = Callable[..., State]


class StateRecorder:
    """A task observer that the engine feeds without calling it on the hot path.

    A task run's ``Running`` state and its final state (``Success``, ``Failed``...) are the two
    changes almost every task run goes through. For those, ``run_task`` does not call a Python
    function: it calls ``record`` (a C-level callable: a deque's ``extend``) with a 3-tuple
    ``(task, map_index, x)``, where ``x`` is the ``Running`` state's timestamp (a float) when the
    run starts and the final state when it ends. With ``deque.extend`` the tuple itself is not
    kept, and none of its items is a new object for the garbage collector (the task and the
    final state live on anyway), which is what keeps this at a few percent of a trivial task
    run. The reader takes each record as three items (``plait.execution`` does).

    Every other change (``Pending``, ``Retrying``, ``Looped``, a mapped parent's ``Mapped``, a run
    with targets or checkpoints...) calls ``observer``, a notifier, as usual. One task run's
    changes stay in order: a run that goes through such a change reports its end that way too.

    ``fast = False`` sends every change through ``observer`` (the reporter sets it when a run
    must stop, or when a task needs a concurrency slot as it starts).
    """

    __slots__ = ("fast", "observer", "record")

    plait_notifier = True  # the runner uses it as the task's notifier (see _task_notifier)

    def __init__(self, observer: Notify, record: Callable[[tuple[Task, int | None, Any]], Any]) -> None:
        self.observer = observer
        self.record = record
        self.fast = True

    def __call__(
        self, task: Task, old: State, new: State, interim: bool = False, handlers_old: State | None = None
    ) -> State:
        return self.observer(task, old, new, interim, handlers_old)


_EXPAND = -1  # map_index marker in the ready queue: split a mapped task into children
_HELD = -2  # map_index marker in the ready queue: finish a pipelined run that came back early
_NEVER = -(1 << 40)  # a child wait count that never reaches zero
_SUCCESS_MESSAGE = "Task run succeeded."
_IDLE_WAKEUP = 0.25  # seconds the driver waits for a completion before checking for signals
# Iterators a task may return that can be read only once: materialized into a list when the
# task run ends, so every downstream task gets all the items (finite ones only: not
# itertools.count/cycle/repeat).
_ONE_SHOT = frozenset(
    {types.GeneratorType, map, filter, zip, enumerate, reversed, type(iter([])), type(iter(())), type(iter({}))}
    | {itertools.chain, itertools.islice, itertools.starmap, itertools.takewhile, itertools.dropwhile}
    | {itertools.accumulate, itertools.compress, itertools.filterfalse, itertools.zip_longest, itertools.pairwise}
)
_NO_CHILD_UPS: dict[int, list[Any]] = {}  # shared, never written to


class FlowRunner:
    """Runs one flow; ``FlowRunner(flow).run(...)`` is what ``flow.run()`` calls.

    Args:
        flow: the flow to run.
        task_observers: called on every task-run state change, after the task's own state
            handlers (the plugin system passes its hooks here).
        flow_observers: called on every flow-run state change, after the flow's handlers.
        plugins: also call the installed plugins' ``plait_task_state_changed`` and
            ``plait_flow_state_changed`` hooks (after the observers given here), isolated: a
            plugin that raises is logged and never changes the run.
        state_handlers: ``fn(runner, old_state, new_state) -> State | None`` on every flow-run
            state change, after the flow's own handlers (Prefect 1's ``FlowRunner`` handlers); a
            returned state replaces the new one.
    """

    def __init__(
        self,
        flow: Flow,
        task_observers: Sequence[Observer] = (),
        flow_observers: Sequence[Observer] = (),
        plugins: bool = True,
        state_handlers: Sequence[Callable[..., Any]] | None = None,
    ) -> None:
        self.flow = flow
        self.task_observers = tuple(task_observers)
        self.flow_observers = tuple(flow_observers)
        self.state_handlers = list(state_handlers or ())
        for handler in self.state_handlers:
            if not callable(handler):
                raise TypeError(f"FlowRunner: state handler {handler!r} is not callable")
        if plugins:
            # Looked up once per run: with no plugin observing, these are empty and cost nothing.
            from plait.hooks.manager import plugin_observers

            task_hooks, flow_hooks, self.wrap_task_runs = plugin_observers()
            self.task_observers += task_hooks
            self.flow_observers += flow_hooks
        else:
            self.wrap_task_runs = False

    @property
    def logger(self) -> Any:
        """The engine's run-aware logger (Prefect 1's ``runner.logger``)."""
        return logger

    def run(
        self,
        parameters: dict[str, Any] | None = None,
        executor: Executor | str | None = None,
        context: dict[str, Any] | None = None,
        resume: Sequence[Task | str] | None = None,
        resume_from: State | dict[Task, State] | None = None,
        task_states: State | dict[Task, State] | None = None,
        state: State | None = None,
        return_tasks: Iterable[Task] | None = None,
        wait_for_retries: bool = False,
    ) -> State:
        """Run the flow once and return its final state (``state.result``: ``{task: State}``).

        As Prefect 1's ``FlowRunner.run``, this is one pass over the flow: a task that ends
        ``Retrying`` stays so (its downstream tasks ``Pending``) and the flow run ends
        ``Running``; run it again with ``task_states=state.result`` once the retry is due.
        ``wait_for_retries=True`` (what ``flow.run()`` passes) runs the retries within the run
        instead, each at its time while the rest of the flow goes on, to the end.

        ``task_states`` (a previous flow-run state, or its ``{task or slug: State}``) are the
        tasks' states so far, as in Prefect 1: a finished state is kept (the task does not run
        again, its downstream tasks see it), a ``Retrying`` state runs attempt ``run_count + 1``
        once due, one due later is kept (unless ``wait_for_retries``: then the run waits for
        it), a ``Paused`` or ``Running`` state is kept, a ``Mapped`` state keeps its finished
        children and runs the others, and a ``Resume()`` state lets its task through as
        ``resume`` does.
        ``resume_from`` (the same kinds of values) keeps only the tasks that succeeded there:
        the others run again from the start, and the successful results feed them.
        ``resume`` names tasks (objects, names or slugs) to let through: they run with
        ``plait.context.resume`` set, so a ``manual_only`` trigger or ``pause_task()`` passes.
        ``executor`` defaults to the flow's own (``Flow(executor=...)``), then ``local``.

        Prefect 1's arguments: ``state`` is the flow run's state so far (a finished one, or a
        ``Scheduled`` one due later, is returned as it is, without running); ``return_tasks``
        limits ``state.result`` to those tasks (default: every task; a task that is not in the
        flow makes the run ``Failed``, saying which).
        """
        flow = self.flow
        if state is not None and _not_runnable(state):
            return state
        wanted = None
        if return_tasks is not None:
            wanted = list(return_tasks)
            strangers = [t for t in wanted if not isinstance(t, Task) or t not in flow]
            if strangers:
                return Failed(
                    f"Flow {flow.name!r}: return_tasks holds {', '.join(map(_short_repr, strangers))}, "
                    "which is not a task of the flow",
                    result={},
                )
        flow.validate()
        if context is not None and not isinstance(context, Mapping):
            raise FlowRunError(
                f"Flow {flow.name!r}: context must be a dict of key -> value, got {type(context).__name__}: {context!r}"
            )
        prefect_states = task_states is not None
        if prefect_states:
            if resume_from is not None:
                raise FlowRunError(f"Flow {flow.name!r}: pass resume_from or task_states, not both")
            resume_from = task_states
        context = _outer_context(context)
        if context and isinstance(context.get("parameters"), Mapping):
            # parameters given in the context are defaults under parameters= (Prefect 1's rule);
            # the context may hold other flows' (an enclosing `with plait.context(...)`): only
            # this flow's are taken, and parameters= alone is checked for unknown names
            declared = {p.name for p in flow.parameters()}
            from_context = {k: v for k, v in context["parameters"].items() if k in declared}
            parameters = {**from_context, **(parameters or {})}
            context = {k: v for k, v in context.items() if k != "parameters"}
        params = check_parameters(flow, parameters)
        resumed = _resume_set(flow, resume)
        previous = _previous_states(flow, resume_from)
        if previous:
            resumed |= _resume_states(flow, previous)
        executor = get_executor(executor if executor is not None else getattr(flow, "executor", None))
        configure_logging()
        ctx = flow_context(flow.name, params, context)
        token = _flow_ctx.set(ctx)
        try:
            logger.info("Beginning flow run %r", flow.name)
            state = self._flow_transition(state or Pending(), Running("Running flow."))
            if not state.is_running():
                return state
            run = _TaskRuns(self, _plan(flow), executor, ctx, resumed, one_pass=not wait_for_retries)
            if previous:
                run.restore(previous, prefect_states)
            signals_before = interrupts.signals_received()
            with interrupts.watching():  # Ctrl-C and SIGTERM cancel the run
                try:
                    with executor.start():
                        run.run()
                except KeyboardInterrupt as exc:
                    return self._interrupted(run, state, isinstance(exc, interrupts.Terminated))
                except Exception:
                    if interrupts.signals_received() == signals_before:
                        raise
                if interrupts.signals_received() != signals_before:
                    # The signal's KeyboardInterrupt was swallowed, or turned into another error,
                    # by the code it interrupted (a task's own except clause; threading's
                    # internals, where it can surface as "release unlocked lock"): the run was
                    # interrupted all the same, and what it started must not be left running.
                    return self._interrupted(run, state, interrupts.last_signal() == signal.SIGTERM)
            final = self._final_state(run)
            if getattr(flow, "terminal_state_handler", None) is not None:
                final = self._terminal_state(final)
            final = self._flow_transition(state, final)
            # A pause waits for a person: not an error.
            log = logger.info if final.is_successful() or isinstance(final, (Paused, Running)) else logger.error
            log("Flow run %s: %s", final.name.upper(), final.message)
            if wanted is not None and isinstance(final.result, dict):
                final = copy.copy(final)  # the handlers and observers saw every task's state
                final.result = {t: final.result[t] for t in wanted if t in final.result}
            return final
        finally:
            _flow_ctx.reset(token)

    def _interrupted(self, run: _TaskRuns, state: State, terminated: bool) -> State:
        """End a run that Ctrl-C or SIGTERM interrupted: ``Cancelled``, with nothing left running."""
        # Nothing starts from now on (interrupts.count), then what runs is stopped: the
        # executor's exit cancelled what was queued and stopped its workers; here go the
        # processes tasks started in this process (ShellTask groups, timed tasks' processes,
        # plait.cancellation's cancellers).
        interrupts.interrupt()
        _kill_subprocesses()
        why = "terminated (SIGTERM)" if terminated else "interrupted"
        run.cancel(f"Flow run was {why}.")
        final = Cancelled(f"Flow run was {why}.", result=run.task_states())
        logger.warning("Flow run %r was %s", self.flow.name, why)
        return self._flow_transition(state, final)

    # -- the flow's own state -----------------------------------------------------------------

    def _final_state(self, run: _TaskRuns) -> State:
        states = run.task_states()
        plan = run.plan
        paused: list[str] = []
        unfinished: list[str] = []
        for task, s in states.items():
            if s._finished and type(s) is not Mapped:  # the common case: nothing to look at
                continue
            if not _all_finished(s):
                unfinished.append(task.name)
                if _is_paused(s):  # (a pause has not finished)
                    paused.append(task.name)
        if paused and not run.one_pass:
            return Paused(f"Flow run paused at task(s): {', '.join(paused)}", result=states)
        if unfinished:
            # Prefect 1's rule: the flow run goes on while a task has not finished (a retry
            # to come, a pause, a task kept Running)
            shown = ", ".join(unfinished[:5]) + (f" and {len(unfinished) - 5} more" if len(unfinished) > 5 else "")
            return Running(f"Flow run in progress: task(s) {shown} not finished.", result=states)
        reference = [states[plan.tasks[i]] for i in plan.reference]
        failed = [s for s in reference if s.is_failed() or not s.is_finished()]
        if failed:
            return Failed("Some reference tasks failed.", result=states)
        return Success("All reference tasks succeeded.", result=states)

    def _terminal_state(self, final: State) -> State:
        flow = self.flow
        handler = flow.terminal_state_handler
        try:
            out = handler(flow, final, final.result)
        except Exception as exc:
            name = _callable_name(handler)
            logger.exception("Terminal state handler %r of flow %r raised", name, flow.name)
            return Failed(
                f"Exception raised in terminal state handler {name!r} of flow {flow.name!r}: {exc!r}",
                result=final.result,
                traceback=traceback.format_exc(),
            )
        if out is None:
            return final
        if not isinstance(out, State):
            return _checked_state(out, handler, f"flow {flow.name!r}")
        return out

    def _flow_transition(self, old: State, new: State) -> State:
        flow = self.flow
        handlers: list[tuple[Any, Any]] = [(flow, h) for h in flow.state_handlers]
        if self.state_handlers:
            handlers += [(self, h) for h in self.state_handlers]
        odd = None  # the handler that returned something other than a State or a false value
        for owner, handler in handlers:
            try:
                out = handler(owner, old, new)
            except signals.PlaitSignal as sig:  # a handler may pick the state with a signal
                new = _state_from_signal(sig)
                break
            except signals.ENDRUN as end:
                new = end.state
                break
            except Exception as exc:
                if _flow_ctx.get().get("raise_on_exception"):
                    raise
                name = _callable_name(handler)
                logger.exception("Flow %r: its state handler %r raised %r", flow.name, name, exc)
                # A handler's error never loses the run's work: a finished run keeps its
                # {task: State} (the exception is in the message and the traceback).
                new = Failed(
                    f"Exception raised in state handler {name!r} of flow {flow.name!r}: {exc!r}",
                    result=new.result if isinstance(new.result, dict) else exc,
                    traceback=traceback.format_exc(),
                )
                break
            if out is not None and out is not new:
                if isinstance(out, State):
                    new = out
                elif out:  # Prefect 1 hands it to the next handler (a false value changes nothing)
                    new, odd = out, handler
        if odd is not None and not isinstance(new, State):
            new = _not_a_state(new, odd, f"flow {flow.name!r}")
        for observer in self.flow_observers:
            observer(flow, old, new)
        return new

    # -- task state changes: the one place they all pass --------------------------------------

    def _task_notifier(self, task: Task) -> Notify | None:
        handlers = task.__dict__.get("state_handlers")  # state_handlers_of(task), without the call
        if handlers is None and _OWN_HANDLER_CLASSES and type(task).state_handlers is not _OWN_STATE_HANDLERS:
            # a task class that defines `state_handlers` itself (a property keeping them
            # elsewhere): read through it (checked only once such a class exists)
            handlers = state_handlers_of(task)
        if not (handlers or task.on_failure or self.task_observers):
            return None
        observers = self.task_observers
        if not handlers and task.on_failure is None:
            # Observers only (a plugin's hooks, a run's reporter): the short path, per change.
            if len(observers) == 1:
                (observer,) = observers
                if getattr(observer, "plait_notifier", False):
                    return observer  # it takes a notifier's arguments itself (a run's reporter)

                def notify_one(
                    task: Task, old: State, new: State, interim: bool = False, handlers_old: State | None = None
                ) -> State:
                    if not interim:
                        observer(task, old, new)
                    return new

                return notify_one

            def notify_observers(
                task: Task, old: State, new: State, interim: bool = False, handlers_old: State | None = None
            ) -> State:
                if not interim:
                    for observer in observers:
                        observer(task, old, new)
                return new

            return notify_observers

        def notify(
            task: Task, old: State, new: State, interim: bool = False, handlers_old: State | None = None
        ) -> State:
            info = _task_ctx.get() if interim else None
            if info is not None:
                info.will_retry = True  # plait.context.task_will_retry: this failure is retried
            odd = None
            for handler in state_handlers_of(task):
                try:
                    out = handler(task, handlers_old or old, new)
                except signals.PlaitSignal as sig:  # a handler picks the state with a signal (Prefect 1)
                    new = _state_from_signal(sig)
                    break
                except signals.ENDRUN as end:
                    new = end.state
                    break
                except Exception as exc:
                    if _flow_ctx.get().get("raise_on_exception"):
                        raise
                    name = _callable_name(handler)
                    logger.exception("Task %r: its state handler %r raised %r", task.name, name, exc)
                    new = Failed(
                        f"Exception raised in state handler {name!r} of task {task.name!r}: {exc!r}",
                        result=exc,
                        traceback=traceback.format_exc(),
                    )
                    break
                if out is not None and out is not new:
                    if isinstance(out, State):
                        new = out
                    elif out:  # Prefect 1 hands it to the next handler (a false value changes nothing)
                        new, odd = out, handler
            if odd is not None and not isinstance(new, State):
                new = _not_a_state(new, odd, f"task {task.name!r}")
            if interim:
                if info is not None:
                    info.will_retry = False
                return new
            for observer in observers:
                observer(task, old, new)
            if task.on_failure is not None and new._failed and new._finished:
                try:
                    task.on_failure(task, new)
                except Exception as exc:
                    name = _callable_name(task.on_failure)
                    logger.exception("on_failure callback %r of task %r raised", name, task.name)
                    new = Failed(
                        f"Exception raised in on_failure callback {name!r} of task {task.name!r}: {exc!r}",
                        result=exc,
                        traceback=traceback.format_exc(),
                    )
            return new

        return notify


def check_parameters(flow: Flow, given: dict[str, Any] | None) -> dict[str, Any]:
    """The run's parameter values: ``given`` checked against the flow's parameters.

    The values of secret parameters (``Parameter(..., secret=True)``) are registered for masking.
    """
    if given is not None and not isinstance(given, Mapping):
        raise ParameterError(
            f"Flow {flow.name!r}: parameters must be a dict of name -> value, got {type(given).__name__}: {given!r}"
        )
    given = dict(given or {})
    declared = {p.name: p for p in flow.parameters()}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ParameterError(
            f"Flow {flow.name!r} has no parameter {', '.join(repr(u) for u in unknown)}; "
            f"its parameters are: {', '.join(sorted(declared)) or '(none)'}"
        )
    missing = sorted(name for name, p in declared.items() if p.required and name not in given)
    if missing:
        raise ParameterError(
            f"Flow {flow.name!r} needs a value for required parameter {', '.join(repr(m) for m in missing)}: "
            f"pass parameters={{{missing[0]!r}: ...}}"
        )
    values = {name: p.default for name, p in declared.items()}
    values.update(given)
    for name, p in declared.items():
        if p.secret:  # from here on masked in logs, state messages, alerts and `plait run`
            register_secret_value(values[name])
    return values


# --- the compiled graph ----------------------------------------------------------------------


class _Plan:
    """A flow compiled to integer-indexed lists; cached on the flow per graph version."""

    __slots__ = (
        "constants",
        "expand_waiters",
        "finish_waiters",
        "inputs",
        "is_mapped",
        "mapped_over",
        "mapped_ups",
        "reference",
        "tasks",
        "ups",
        "version",
        "waits",
    )

    def __init__(self, flow: Flow) -> None:
        tasks = flow.sorted_tasks()
        n = len(tasks)
        index = dict(zip(tasks, range(n), strict=True))
        self.version = flow._version
        self.tasks = tasks
        # One pass in run order (upstream tasks come first, so whether they are mapped is
        # known), touching each edge a constant number of times: linear in tasks + edges.
        # Lists made whole, then filled in where a task differs from the plain task (no input,
        # not mapped, no constant): most entries of a big flow stay the shared defaults.
        self.inputs: list[tuple[tuple[str | None, int, bool, bool], ...]] = [()] * n
        self.ups: list[tuple[int, ...]] = [()] * n
        self.is_mapped: list[bool] = [False] * n
        self.mapped_ups: list[tuple[int, ...]] = [()] * n
        self.mapped_over: list[tuple[int, ...]] = [()] * n
        # A task's waiters: the shared empty tuple until it has one, then a tuple of one
        # (shared by the upstream tasks of one task: a fan-in's thousands of inputs wait on
        # one tuple), a list from the second (most tasks of a fan-out have none, most others
        # one: a list per task was a third of what planning allocated).
        self.expand_waiters: list[list[int] | tuple[int, ...]] = [()] * n
        self.finish_waiters: list[list[int] | tuple[int, ...]] = [()] * n
        self.waits: list[int] = [0] * n
        inputs, ups_of, is_mapped, mapped_ups = self.inputs, self.ups, self.is_mapped, self.mapped_ups
        mapped_over = self.mapped_over
        waits, expand_waiters, finish_waiters = self.waits, self.expand_waiters, self.finish_waiters
        self.constants: list[dict[str, Any] | None] = [None] * n
        constants, edges_in, constants_of = self.constants, flow._edges_in, flow.constants
        # The tuples of the last one-input task, handed on to the next when it has the same
        # input (the tasks of a fan-out): one tuple for them all instead of two per task.
        last_ups: tuple[int, ...] = ()
        last_inputs: tuple[tuple[str | None, int, bool, bool], ...] = ()
        # flow.validate()'s checks of each task's inputs, made in the same walk: the binder is
        # read once for a run of copies of one task, and a task with one input (from a task or
        # a constant) or a **kwargs task passes without building sets.
        binding: Any = None
        cls: Any = None
        accepted: frozenset[str] | None = None
        required: frozenset[str] = frozenset()
        edges_of, no_edges = edges_in.get, ()
        for d, t in enumerate(tasks):
            edges = edges_of(t, no_edges)
            consts = constants_of.get(t)
            if consts:
                constants[d] = consts
            attrs = t.__dict__
            if (
                binding is None
                or attrs.get("_binding") is not binding
                or type(t) is not cls
                or binding[0] is not (attrs.get("run") or cls.run)
            ):
                cls = type(t)
                if issubclass(cls, Parameter):  # takes no inputs (add_edge refuses them)
                    binding, accepted, required = None, None, frozenset()
                else:
                    accepted, required = _inputs_of(t)
                    binding = attrs.get("_binding")
            if accepted is not None or required:
                if not consts:
                    if len(edges) == 1:
                        key = edges[0].key
                        if not (
                            (key is None or accepted is None or key in accepted)
                            and (not required or (key is not None and len(required) == 1 and key in required))
                        ):
                            flow._check_inputs(t, edges, consts, accepted, required)
                    elif edges or required:
                        flow._check_inputs(t, edges, consts, accepted, required)
                elif not edges and len(consts) == 1:
                    key = next(iter(consts))
                    if not (
                        (accepted is None or key in accepted)
                        and (not required or (len(required) == 1 and key in required))
                    ):
                        flow._check_inputs(t, edges, consts, accepted, required)
                else:
                    flow._check_inputs(t, edges, consts, accepted, required)
            if not edges:
                continue
            if len(edges) == 1:
                e = edges[0]
                u = index[e.upstream_task]
                key = e.key
                if not last_ups or last_ups[0] != u:
                    last_ups, last_inputs = (u,), ()
                ups_of[d] = last_ups
                waits[d] = 1
                if key:
                    m, f = e.mapped, e.flattened
                    if not (
                        last_inputs and last_inputs[0][0] == key and last_inputs[0][2] is m and last_inputs[0][3] is f
                    ):
                        last_inputs = ((key, u, m, f),)
                    inputs[d] = last_inputs
                if e.mapped:
                    is_mapped[d] = True
                    # Child i of d can follow child i of u only if the edge maps without flattening.
                    stream = not e.flattened and is_mapped[u]
                    if key is None:
                        if is_mapped[u]:
                            mapped_ups[d] = last_ups
                        else:
                            mapped_over[d] = last_ups
                    waiters = expand_waiters if stream else finish_waiters
                else:  # the usual task: one input, not mapped
                    waiters = finish_waiters
                w = waiters[u]
                if not w:
                    waiters[u] = (d,)
                elif type(w) is list:
                    w.append(d)
                else:
                    waiters[u] = [*w, d]
                continue
            # One walk of the edges: the keyed inputs, the distinct upstream tasks, whether the
            # task is mapped, its ordering edges marked mapped.
            keyed = []
            ups_seen: dict[int, None] = {}
            mapped = False
            ordering: list[int] = []
            for e in edges:
                u = index[e.upstream_task]
                ups_seen[u] = None
                key = e.key
                if e.mapped:
                    mapped = True
                    if key is None:
                        ordering.append(u)
                    elif key:
                        keyed.append((key, u, True, e.flattened))
                elif key:
                    keyed.append((key, u, False, e.flattened))
            inputs[d] = tuple(keyed)
            ups = tuple(ups_seen)
            ups_of[d] = ups
            is_mapped[d] = mapped
            one = (d,)
            if not mapped:  # (a fan-in's collection: thousands of plain inputs)
                for u in ups:
                    w = finish_waiters[u]
                    if not w:
                        finish_waiters[u] = one
                    elif type(w) is list:
                        w.append(d)
                    else:
                        finish_waiters[u] = [*w, d]
                waits[d] = len(ups)
                continue
            if ordering:
                # Ordering edges marked mapped (apply_map, case inside apply_map): child i waits
                # on child i of a mapped upstream task instead of on the whole of it.
                mapped_ups[d] = tuple(u for u in dict.fromkeys(ordering) if is_mapped[u])
                # task.map(..., upstream_tasks=[u]) with a plain u: one child per item of u's
                # result (Prefect 1), though the items are not passed in
                mapped_over[d] = tuple(u for u in dict.fromkeys(ordering) if not is_mapped[u])
            # Child i of d can follow child i of u only if every edge u -> d maps without
            # flattening: the upstream tasks with another edge are waited for whole.
            whole = {index[e.upstream_task] for e in edges if not e.mapped or e.flattened}
            for u in ups:
                waiters = expand_waiters if u not in whole and is_mapped[u] else finish_waiters
                w = waiters[u]
                if not w:
                    waiters[u] = one
                elif type(w) is list:
                    w.append(d)
                else:
                    waiters[u] = [*w, d]
            waits[d] = len(ups)
        flow._check_reference_tasks()
        if flow._reference_tasks or type(flow).reference_tasks is not _FLOW_REFERENCE_TASKS:
            self.reference = sorted(index[t] for t in flow.reference_tasks())
        else:
            # The terminal tasks (the default), in run order: those no task waits on (every
            # edge u -> d makes d a waiter of u), without a set of them to sort.
            self.reference = [
                t for t, (f, x) in enumerate(zip(finish_waiters, expand_waiters, strict=True)) if not f and not x
            ]
        flow._validated = self.version


_FLOW_REFERENCE_TASKS = Flow.reference_tasks


def _plan(flow: Flow) -> _Plan:
    plan = flow._plan
    if plan is None or plan.version != flow._version:
        plan = flow._plan = _without_gc(_Plan, flow)
    return plan


# --- the scheduler of one flow run -----------------------------------------------------------


class _TaskRuns:
    """The task runs of one flow run: readiness counting, submission, completion."""

    def __init__(
        self,
        runner: FlowRunner,
        plan: _Plan,
        executor: Executor,
        ctx: dict[str, Any],
        resumed: frozenset[Task] = frozenset(),
        one_pass: bool = False,
    ) -> None:
        n = len(plan.tasks)
        #: Prefect 1's one pass: a Retrying task run is kept as it is instead of retried.
        self.one_pass = one_pass
        self.runner = runner
        self.plan = plan
        self.executor = executor
        self.ctx = ctx
        self.states: list[State | None] = [None] * n
        self.children: list[list[State | None] | None] = [None] * n
        self.child_remaining = [0] * n
        self.child_wait: list[list[int] | None] = [None] * n
        self.sources: list[Any] = [None] * n
        # per mapped task: {upstream index: list of per-child states} for the upstream tasks
        # whose state a child sees one by one (child i of a mapped upstream, item i of a
        # flattened one)
        self.deferred: list[dict[int, list[Any]]] = [_NO_CHILD_UPS] * n
        self.deferred_down: list[list[int]] = [[] for _ in range(n)]
        self.waits = list(plan.waits)
        self.notifiers = [runner._task_notifier(t) for t in plan.tasks]
        self.extras = _task_extras(runner.flow, plan.tasks, resumed)
        # What runs each task: run_task itself, or (for the few tasks with targets, caches,
        # checkpoints or resume) run_task wrapped in those steps. Chosen once per run, so
        # plain tasks pay nothing for them.
        self.runners: list[Callable[..., State]] = [
            run_task if e is None else functools.partial(_run_task_with_extras, e) for e in self.extras
        ]
        if runner.wrap_task_runs:  # a plugin implements plait_task_run: wrap every task run
            from plait.hooks.manager import run_wrapped

            self.runners = [functools.partial(run_wrapped, r) for r in self.runners]
        self.resumed = resumed
        self.restored: set[int] = set()
        self.previous_maps: dict[int, list[State]] = {}  # mapped tasks a resumed run partly keeps
        self.reused: dict[int, set[int]] = {}
        self.prefect_states = False  # task_states (keep every given state) rather than resume_from
        # (count, old state) of the first run of tasks given a Retrying state (task_states)
        self.initial: dict[int, tuple[int, State]] = {}
        self.child_initial: dict[tuple[int, int], tuple[int, State]] = {}
        self.ready: deque[tuple[int, int | None, int, State | None]] = deque()
        self.retries: list[tuple[float, int, int, int | None, int, State]] = []
        self.inflight: dict[Any, tuple[int, int | None, int]] = {}
        self.done: queue.SimpleQueue = queue.SimpleQueue()
        self._seq = 0
        # An executor that keeps results on its workers gets handles (``result_ref``) for the
        # inputs of a task run instead of the values, which stay where they were computed.
        self.refs = executor.keeps_results
        # Pipelining (an executor with ``pipelines``, e.g. Dask): a task whose upstream tasks are
        # running is sent along with them, its inputs handles to their results to come; the
        # worker runs it once they succeed, or hands it back unrun. A chain then runs on the
        # cluster without a round trip to the driver at every step. See _pipeline_after.
        self.pipelines = bool(getattr(executor, "pipelines", False)) and self.refs and not resumed
        self.running: dict[int, Any] = {}  # task (not mapped) -> the future of its run in flight
        self.pipelined: set[int] = set()  # tasks sent before their upstream tasks finished, not back yet
        self.held: dict[int, Any] = {}  # their records, back before the driver saw the upstream finish
        if self.pipelines:
            self.can_follow = [_can_follow(plan, t, task) for t, task in enumerate(plan.tasks)]
            # an upstream task whose state the driver may still change (its handlers) is waited for
            self.final_on_worker = [not state_handlers_of(task) and task.on_failure is None for task in plan.tasks]

    # -- the loop -----------------------------------------------------------------------------

    def restore(self, previous: dict[Task, State], prefect_states: bool = False) -> None:
        """Keep the successful states of a previous run: those tasks do not run again.

        With ``prefect_states`` (``task_states``), every given state is the task's state so far
        (see ``FlowRunner.run``).
        """
        plan = self.plan
        self.prefect_states = prefect_states
        # Tasks of another copy of the flow (loaded again, or from another process) match by slug.
        by_slug = {getattr(k, "slug", k): v for k, v in previous.items()}
        for t, task in enumerate(plan.tasks):
            state = previous.get(task)
            if state is None:
                state = by_slug.get(task.slug)
            if state is None:
                continue
            if prefect_states and self._given_state(t, task, state):
                continue
            if isinstance(state, Mapped) and not state.is_successful():
                # Some children did not succeed: run those again, keep the others.
                self.previous_maps[t] = state.map_states
                continue
            if not state.is_finished() or not state.is_successful():
                continue
            self.states[t] = _settled(state)
            self.restored.add(t)
            self.waits[t] = _NEVER  # kept: never run again, even when a task upstream of it runs
            for d in plan.finish_waiters[t]:
                self.waits[d] -= 1
            for d in plan.expand_waiters[t]:
                self.waits[d] -= 1

    def _given_state(self, t: int, task: Task, state: State) -> bool:
        """Take ``state`` as task ``t``'s state so far (``task_states``); ``False``: restore as usual."""
        if isinstance(state, Mapped) and not all(c is not None and c.is_finished() for c in state.map_states):
            self.previous_maps[t] = state.map_states
            return True
        if state.is_finished():
            # kept, whatever it ended in: a failure stays one, and its downstream tasks see it
            self.states[t] = _settled(state)
            self.restored.add(t)
            self.waits[t] = _NEVER
            for d in self.plan.finish_waiters[t]:
                self.waits[d] -= 1
            for d in self.plan.expand_waiters[t]:
                self.waits[d] -= 1
            return True
        if task in self.resumed:
            return True  # Resume() or resume=[...]: runs, let through
        if self.plan.is_mapped[t]:  # a mapped task given a plain state: kept, or mapped again
            if isinstance(state, Running) or not _due(state):
                self._hold(t, state)
            return True
        if isinstance(state, Running) or (isinstance(state, Paused) and not _due(state)):
            self._hold(t, state)
        elif isinstance(state, Retrying):
            if self.one_pass and not _due(state):
                self._hold(t, state)
            else:
                self.initial[t] = (state.run_count + 1, state)
        elif isinstance(state, Scheduled) and not _due(state):
            if self.one_pass:
                self._hold(t, state)
            else:
                self.initial[t] = (1, state)
        return True

    def _hold(self, t: int, state: State) -> None:
        """Keep a state that has not finished: the task does not run, its downstream tasks wait."""
        self.states[t] = state
        self.waits[t] = _NEVER

    def _enqueue_first(self, t: int) -> None:
        """Queue the first run of task ``t``, given a ``Retrying`` (or later ``Scheduled``) state."""
        count, old = self.initial.pop(t)
        start = getattr(old, "start_time", None)
        if start is not None and not _due(old):  # its time is to come: it waits like a retry
            self._seq += 1
            given = old if isinstance(old, Retrying) else None
            heapq.heappush(self.retries, (start.timestamp(), self._seq, t, None, count, given))
            return
        self.ready.append((t, None, count, old if isinstance(old, Retrying) else None))  # a retry skips the trigger

    def run(self) -> None:
        ready = self.ready
        restored = self.restored
        first = self.initial
        if first:
            self._release = self._release_given  # type: ignore[method-assign]
            restored = restored | first.keys()
            for t in list(first):
                if self.waits[t] == 0:
                    self._enqueue_first(t)
        for t, count in enumerate(self.waits):
            if count == 0 and t not in restored:
                ready.append((t, _EXPAND if self.plan.is_mapped[t] else None, 1, None))
        sync = self.executor.synchronous
        # A bounded number of task runs handed to the executor at once (threads, processes): a
        # million ready children wait here as small tuples, not as a million futures.
        window = getattr(self.executor, "max_inflight", None) or (1 << 62)
        inflight = self.inflight
        while ready or inflight or self.retries:
            # (a synchronous executor runs each task run in _start: nothing is ever in flight)
            while ready and (sync or len(inflight) < window):
                t, i, count, old = ready.popleft()
                if i is None or i >= 0:  # a task run (the test the common case passes first)
                    self._start(t, i, count, old, sync)
                elif i == _EXPAND:
                    self._expand(t)
                else:  # _HELD: a pipelined run that came back before its upstream tasks
                    held = self.held.pop(t)
                    self._finish(t, None, held if isinstance(held, State) else self._replay(t, None, 1, held))
            if inflight:
                self._collect()
            elif self.retries:
                self._wait_for_retry(None)

    def _collect(self) -> None:
        # Never block without a timeout: a Ctrl-C that the OS delivers to a worker thread does
        # not interrupt the main thread's wait, and Python runs its handler only once the main
        # thread wakes up.
        self.executor.flush()  # an executor that batches submissions sends them now
        timeout = _IDLE_WAKEUP
        if self.retries:
            timeout = min(timeout, max(0.0, self.retries[0][0] - time.time()))
        try:
            future = self.done.get(timeout=timeout)
        except queue.Empty:
            self._wait_for_retry(0)
            return
        while True:
            t, i, count = self.inflight.pop(future)
            try:
                state = future.result()
            except Exception as exc:
                state = self._lost(t, i, count, exc, "could not complete on")
                lost = True
            else:
                lost = False
            if self.pipelines and i is None:
                self.running.pop(t, None)
                if t in self.pipelined and self._came_back_early(t, state):
                    state = None
            if state is not None:
                if not lost and not self.executor.in_process:
                    state = self._replay(t, i, count, state)
                self._finish(t, i, state)
            try:
                future = self.done.get_nowait()
            except queue.Empty:
                break
        self._wait_for_retry(0)

    def _wait_for_retry(self, timeout: float | None) -> None:
        retries = self.retries
        now = time.time()
        if retries and timeout is None:
            delay = retries[0][0] - now
            if delay > 0:
                time.sleep(delay)
                now = time.time()
        while retries and retries[0][0] <= now:
            _, _, t, i, count, old = heapq.heappop(retries)
            self.ready.append((t, i, count, old))

    # -- starting a task run ------------------------------------------------------------------

    def _start(self, t: int, i: int | None, count: int, old: State | None, sync: bool) -> None:
        plan = self.plan
        task = plan.tasks[t]
        states = self.states
        consts = plan.constants[t]
        kwargs = dict(consts) if consts else {}
        if i is None:
            ups = [states[u] for u in plan.ups[t]]
            for key, u, _m, flat in plan.inputs[t]:
                value = result_ref(states[u]) if self.refs and not flat else states[u].result
                if flat and states[u].is_successful():  # a failed upstream is left to the trigger
                    try:
                        value = _flatten_one(value)
                    except TypeError:
                        self._end_unrun(t, i, count, _not_iterable(task, key, plan.tasks[u], value, "flatten"))
                        return
                kwargs[key] = value
        else:
            deferred = self.deferred[t]
            children = self.children
            ups = [deferred[u][i] if u in deferred else states[u] for u in plan.ups[t]]
            for key, kind, value in self.sources[t]:
                if kind == 0:  # whole value
                    kwargs[key] = value
                elif kind == 1:  # list materialized at expansion
                    kwargs[key] = value[i]
                elif self.refs:  # child i of a streaming upstream, left on the executor's workers
                    kwargs[key] = result_ref(children[value][i])
                else:  # child i of a streaming upstream
                    kwargs[key] = children[value][i].result
        notify = self.notifiers[t]
        if old is None:
            old = Pending()
            trigger = task.trigger
            # The common case first: with the default trigger and every upstream state a plain
            # Success, _check_upstream would say "run" (inline: this runs once per task run).
            plain = trigger is all_successful
            if plain:
                for up in ups:
                    if up.__class__ is not Success:
                        plain = False
                        break
            # a root task passes its trigger, except manual_only, which always waits for a resume
            if (ups or trigger is manual_only) and not plain:
                if trigger not in _BUILT_IN_TRIGGERS:  # may be written Prefect 1's way
                    ups = UpstreamStates(ups, functools.partial(_edges_by_upstream, self.runner.flow, plan, t))
                pre = _check_upstream(task, ups)
                if pre is not None and self.resumed and task in self.resumed:
                    pre = _check_upstream_resumed(task, ups, self.ctx)
                if pre is not None:
                    if pre is _RUNS_AFTER_SKIP:
                        _unskip_inputs(kwargs, plan.inputs[t], ups if i is None else None, states)
                    else:
                        self._end_unrun(t, i, count, pre)
                        return
        if sync:
            self._finish(t, i, self.runners[t](task, kwargs, i, count, old, self.ctx, notify))
            return
        try:
            if self.executor.in_process:
                future = self.executor.submit(self.runners[t], task, kwargs, i, count, old, self.ctx, notify)
            else:
                future = self.executor.submit(run_task_recorded, task, kwargs, i, count, old, self.ctx, self.runners[t])
        except Exception as exc:  # it does not pickle, the executor refused it...: this run fails
            self._finish(t, i, self._lost(t, i, count, exc, "could not be sent to"))
            return
        self.inflight[future] = (t, i, count)
        future.add_done_callback(self.done.put)
        if self.pipelines and i is None:
            self.running[t] = future
            self._pipeline_after(t)

    # -- pipelining ---------------------------------------------------------------------------

    def _pipeline_after(self, t: int) -> None:
        """Send the tasks that can follow ``t`` (just sent) on the workers, and theirs in turn.

        A task can follow when it is a plain task with the default trigger and every upstream
        task has succeeded or is running with a state the driver will not change. Its inputs
        from running tasks are the executor's handles to their results (``pending_ref``); the
        worker runs it (``run_task_after``) only if those tasks succeed, not skipped, which is
        exactly when the driver would have run it, and otherwise hands it back unrun.
        """
        plan, states, running, executor = self.plan, self.states, self.running, self.executor
        todo = [t]
        while todo:
            for d in plan.finish_waiters[todo.pop()]:
                if not self.can_follow[d] or d in running or states[d] is not None or self.waits[d] == _NEVER:
                    continue
                gate = []
                for u in plan.ups[d]:
                    future = running.get(u)
                    if future is not None:
                        if not self.final_on_worker[u]:
                            break
                        gate.append(executor.pending_state(future))
                    elif not _passes(states[u]):
                        break
                else:
                    consts = plan.constants[d]
                    kwargs = dict(consts) if consts else {}
                    for key, u, _m, _f in plan.inputs[d]:
                        future = running.get(u)
                        kwargs[key] = executor.pending_ref(future) if future is not None else result_ref(states[u])
                    task = plan.tasks[d]
                    try:
                        future = executor.submit(
                            run_task_after, gate, task, kwargs, None, 1, Pending(), self.ctx, self.runners[d]
                        )
                    except Exception:  # not sent ahead: it goes the usual way, which reports why
                        continue
                    self.inflight[future] = (d, None, 1)
                    future.add_done_callback(self.done.put)
                    running[d] = future
                    self.pipelined.add(d)
                    todo.append(d)

    def _came_back_early(self, t: int, recorded: Any) -> bool:
        """A pipelined run of ``t`` is back: whether to hold it (True) or finish it now (False)."""
        self.pipelined.discard(t)
        if recorded is NOT_STARTED:
            # Its upstream tasks did not all succeed: start it the usual way once they are done.
            if self.waits[t] == 0:
                self.ready.append((t, None, 1, None))
            return True
        if self.waits[t] > 0:
            # Back before the driver has seen an upstream task finish: the handlers and hooks
            # see the states in run order, so it waits for _release.
            self.held[t] = recorded
            return True
        return False

    def _end_unrun(self, t: int, i: int | None, count: int, state: State) -> None:
        """End a task run that does not start (upstream, trigger or input decided ``state``)."""
        notify = self.notifiers[t]
        if notify is not None:
            task = self.plan.tasks[t]
            with _TaskScope(task, i, count):
                state = notify(task, Pending(), state)
        self._finish(t, i, state)

    def _lost(self, t: int, i: int | None, count: int, exc: BaseException, what: str) -> State:
        """The ``Failed`` state of a task run the executor could not run (or send, or bring back).

        It passes through the task's handlers, the observers and plugin hooks like any state:
        an alert names the task that failed, not only the ones downstream of it.
        """
        from plait.errors import PlaitError

        if self.ctx.get("raise_on_exception"):  # Prefect 1's debug mode: the executor's error too
            raise exc
        detail = str(exc) if isinstance(exc, PlaitError) else repr(exc)
        task = self.plan.tasks[t]
        name = task.name if i is None else f"{task.name}[{i}]"
        state: State = Failed(
            f"Task run {name!r} {what} executor {self.executor!r}: {detail}",
            result=exc,
            traceback="".join(traceback.format_exception(exc)),
        )
        notify = self.notifiers[t]
        if notify is not None:
            with _TaskScope(task, i, count):
                state = notify(task, Pending(), state)
        return state

    def _replay(self, t: int, i: int | None, count: int, recorded: Any) -> State:
        """Pass the state changes a worker recorded through the driver's handlers."""
        if _secret_values:  # made where the driver's secrets may be unknown: mask them here
            for _old, new, *_interim in recorded:
                remask(new)
        notify = self.notifiers[t]
        final = recorded[-1][1]
        if notify is None:
            return final
        task = self.plan.tasks[t]
        with _TaskScope(task, i, count):
            for old, new, *interim in recorded:
                final = notify(task, old, new, *interim)
                if new._running and not final._running:
                    # as in run_task: a handler that replaces Running ends the run there (the
                    # worker has already run the task; its outcome is discarded)
                    return final
        return final

    # -- mapping ------------------------------------------------------------------------------

    def _expand(self, t: int) -> None:
        """Split mapped task ``t`` into children once its inputs are known."""
        plan = self.plan
        task = plan.tasks[t]
        states, children = self.states, self.children
        sources: list[tuple[str, int, Any]] = []
        deferred: set[int] = set()
        elements: dict[int, list[State]] = {}
        n: int | None = None
        blocked: State | None = None
        for key, u, mapped, flat in plan.inputs[t]:
            if mapped and not flat and children[u] is not None:
                deferred.add(u)
                sources.append((key, 2, u))
                n = len(children[u]) if n is None else min(n, len(children[u]))
                continue
            up_state = states[u]
            if mapped and flat and isinstance(up_state, Mapped):
                # flatten a mapped task child by child: a child that did not succeed is one
                # element whose own state the child downstream sees (so it fails or skips alone)
                items, elements[u] = _flatten_children(up_state.map_states)
                sources.append((key, 1, items))
                n = len(items) if n is None else min(n, len(items))
                continue
            if not (mapped or flat):
                sources.append((key, 0, result_ref(up_state) if self.refs else up_state.result))
                continue
            if up_state.is_skipped() and task.skip_on_upstream_skip:  # Skipped counts as successful
                blocked = blocked or Skipped(f"Upstream task {plan.tasks[u].name!r} was skipped.")
                continue
            if not up_state.is_successful():
                blocked = blocked or TriggerFailed(
                    f"Upstream task {plan.tasks[u].name!r} did not succeed, so there is nothing to map over."
                )
                continue
            value = up_state.result
            try:
                if flat:
                    value = _flatten_one(value)
                if not mapped:
                    sources.append((key, 0, value))
                    continue
                items = value if isinstance(value, list) else list(value)
            except TypeError:
                blocked = blocked or _not_iterable(task, key, plan.tasks[u], value, "flatten" if flat else "map over")
                continue
            sources.append((key, 1, items))
            n = len(items) if n is None else min(n, len(items))
        for u in plan.mapped_ups[t]:
            if children[u] is not None:
                deferred.add(u)
                n = len(children[u]) if n is None else min(n, len(children[u]))
        for u in plan.mapped_over[t]:
            up_state = states[u]
            if up_state.is_skipped() and task.skip_on_upstream_skip:
                blocked = blocked or Skipped(f"Upstream task {plan.tasks[u].name!r} was skipped.")
            elif not up_state.is_successful():
                blocked = blocked or TriggerFailed(
                    f"Upstream task {plan.tasks[u].name!r} did not succeed, so there is nothing to map over."
                )
            else:
                try:
                    size = len(up_state.result)
                except TypeError:
                    value = up_state.result
                    blocked = blocked or _not_iterable(task, "upstream_tasks", plan.tasks[u], value, "map over")
                    continue
                n = size if n is None else min(n, size)
        if blocked is None and n is None:
            n = 0
        notify = self.notifiers[t]
        if blocked is not None:
            if notify is not None:
                with _TaskScope(task, None, 1):
                    blocked = notify(task, Pending(), blocked)
            self._finish(t, None, blocked)
            return
        running = Running(f"Mapped into {n} runs.")
        if notify is not None:
            with _TaskScope(task, None, 1):
                running = notify(task, Pending(), running)
            if not running._running:  # a handler replaced Running: no child runs
                self._finish(t, None, running)
                return
        states[t] = running
        self.sources[t] = sources
        if deferred or elements:
            self.deferred[t] = {**{u: children[u] for u in deferred}, **elements}
        kids: list[State | None] = [None] * n
        children[t] = kids
        self.child_remaining[t] = n
        reuse = self._reusable_children(t, n, deferred) if self.previous_maps else None
        if reuse:
            previous = self.previous_maps[t]
            for i in reuse:
                kids[i] = previous[i]
                if previous[i]._finished:
                    self.child_remaining[t] -= 1
        for u in plan.expand_waiters[t]:
            self._release(u)
        if n == 0:
            self._finish_mapped(t)
            return
        for u in deferred:
            self.deferred_down[u].append(t)
        if deferred:
            waits = [0] * n
            for u in deferred:
                up_kids = children[u]
                for i in range(n):
                    s = up_kids[i]
                    if s is None or not s._finished:
                        waits[i] += 1
            if reuse:
                for i in reuse:
                    waits[i] = _NEVER  # kept from the previous run: never started again
            self.child_wait[t] = waits
            self.ready.extend(e for i in range(n) if waits[i] == 0 and (e := self._child_entry(t, i)) is not None)
        elif reuse is not None:
            self.ready.extend(e for i in range(n) if i not in reuse and (e := self._child_entry(t, i)) is not None)
        else:
            self.ready.extend((t, i, 1, None) for i in range(n))
        if self.child_remaining[t] == 0:
            self._finish_mapped(t)

    def _reusable_children(self, t: int, n: int, deferred: set[int]) -> set[int] | None:
        """Children of mapped task ``t`` whose successful states a resumed run keeps.

        Child ``i`` is kept when it succeeded before and its inputs cannot have changed: every
        upstream task was kept whole, or is a streaming upstream whose child ``i`` was kept.
        """
        previous = self.previous_maps.get(t)
        if previous is None:
            return None
        if self.prefect_states:
            # task_states are the children's states, as Prefect 1 takes them (no check that
            # their inputs are the same; a longer map runs its new children)
            return self._given_children(t, previous, range(min(n, len(previous))))
        if len(previous) != n:
            return None
        allowed = set(range(n))
        for u in self.plan.ups[t]:
            if u in self.restored:
                continue
            if u in deferred and u in self.reused:
                allowed &= self.reused[u]
                continue
            return None
        keep = {i for i in allowed if previous[i] is not None and previous[i]._finished and previous[i].is_successful()}
        self.reused[t] = keep
        return keep

    def _given_children(self, t: int, previous: list[State], indices: Iterable[int]) -> set[int]:
        """task_states: finished children are kept whatever they ended in; retries and
        scheduled children wait for their time (one pass: they are kept as they are)."""
        keep = set()
        for i in indices:
            child = previous[i]
            if child is None:  # no state yet: it runs
                continue
            if child.is_finished() or isinstance(child, Running) or (isinstance(child, Paused) and not _due(child)):
                keep.add(i)  # an unfinished one is kept as it is: not run, not counted as done
            elif isinstance(child, Scheduled) and not isinstance(child, Resume):
                if self.one_pass and not _due(child):
                    keep.add(i)
                else:
                    count = child.run_count + 1 if isinstance(child, Retrying) else 1
                    self.child_initial[(t, i)] = (count, child)
        self.reused[t] = {i for i in keep if previous[i]._finished}
        return keep

    def _child_entry(self, t: int, i: int) -> tuple[int, int | None, int, State | None] | None:
        """The ready-queue entry of child ``i`` of mapped task ``t``, or ``None`` when a state given
        in task_states makes it wait for its time (it is then on the retry heap)."""
        if self.child_initial:
            first = self.child_initial.pop((t, i), None)
            if first is not None:
                count, old = first
                given = old if isinstance(old, Retrying) else None
                if not _due(old):
                    self._seq += 1
                    heapq.heappush(self.retries, (old.start_time.timestamp(), self._seq, t, i, count, given))  # type: ignore[attr-defined]
                    return None
                return (t, i, count, given)
        return (t, i, 1, None)

    def _finish_mapped(self, t: int) -> None:
        task = self.plan.tasks[t]
        kids = self.children[t]
        state: State = Mapped(f"Mapped {len(kids)} runs.", map_states=kids)  # type: ignore[arg-type]
        notify = self.notifiers[t]
        if notify is not None:
            with _TaskScope(task, None, 1):
                state = notify(task, self.states[t], state)
        self._finish_parent(t, state)

    # -- finishing ----------------------------------------------------------------------------

    def _finish(self, t: int, i: int | None, state: State) -> None:
        if type(state) is Retrying:
            self._record_retrying(t, i, state)
            if not self.one_pass:  # one pass (Prefect 1's FlowRunner.run) leaves it to the next pass
                self._schedule_retry(t, i, state)
            return
        if state._failed and not isinstance(state, TriggerFailed):
            _log_failure(self.plan.tasks[t], i, state)
        if i is None:
            self._finish_parent(t, state)
            return
        kids = self.children[t]
        kids[i] = state
        if not state._finished:
            return
        for d in self.deferred_down[t]:
            waits = self.child_wait[d]
            if i < len(waits):
                waits[i] -= 1
                if waits[i] == 0:
                    # to the front: child i goes down the chain of maps before child i + 1 starts
                    if not self.child_initial:
                        self.ready.appendleft((d, i, 1, None))
                    elif (entry := self._child_entry(d, i)) is not None:
                        self.ready.appendleft(entry)
        self.child_remaining[t] -= 1
        if self.child_remaining[t] == 0:
            self._finish_mapped(t)

    def _finish_parent(self, t: int, state: State) -> None:
        self.states[t] = state
        if not state._finished:
            return
        plan = self.plan
        for d in plan.finish_waiters[t]:
            self._release(d)
        if self.children[t] is None:
            for d in plan.expand_waiters[t]:
                self._release(d)

    def _release(self, d: int) -> None:
        self.waits[d] -= 1
        if self.waits[d] == 0:
            if self.pipelines and (d in self.pipelined or d in self.held):
                if d in self.held:
                    self.ready.append((d, _HELD, 1, None))
                return  # sent already: its pipelined run finishes it
            if self.plan.is_mapped[d]:
                # expand a mapped task at once, so its children can follow their upstream
                # children depth-first instead of waiting for a whole level to finish
                self.ready.appendleft((d, _EXPAND, 1, None))
            else:
                self.ready.append((d, None, 1, None))

    def _release_given(self, d: int) -> None:
        """``_release`` for a run with tasks given a ``Retrying`` state in task_states (their
        first run keeps their attempt count; one due later waits for its time)."""
        if d in self.initial and self.waits[d] == 1 and not self.plan.is_mapped[d]:
            self.waits[d] = 0
            self._enqueue_first(d)
            return
        _TaskRuns._release(self, d)

    def _record_retrying(self, t: int, i: int | None, state: Retrying) -> None:
        task = self.plan.tasks[t]
        logger.warning("Task %r: %s", task.name if i is None else f"{task.name}[{i}]", state.message)
        if i is None:
            self.states[t] = state
        else:
            self.children[t][i] = state

    def _schedule_retry(self, t: int, i: int | None, state: Retrying) -> None:
        start = state.start_time.timestamp() if state.start_time else time.time()
        self._seq += 1
        heapq.heappush(self.retries, (start, self._seq, t, i, state.run_count + 1, state))

    # -- results ------------------------------------------------------------------------------

    def task_states(self) -> dict[Task, State]:
        out: dict[Task, State] = {}
        for t, task in enumerate(self.plan.tasks):
            state = self.states[t]
            if state is None:
                state = Pending("Not run: an upstream task did not finish.")
            elif self.children[t] is not None and not state._finished:
                kids = [k if k is not None else Pending("Not run.") for k in self.children[t]]
                state = Mapped(f"{sum(1 for k in kids if k._finished)} of {len(kids)} runs finished.", kids)
            out[task] = state
        return out

    def cancel(self, message: str) -> None:
        for t, state in enumerate(self.states):
            if state is None or not state._finished:
                self.states[t] = Cancelled(message)


class _TaskScope:
    """Sets the task context around driver-side handler calls."""

    __slots__ = ("info", "token")

    def __init__(self, task: Task, map_index: int | None, count: int) -> None:
        self.info = TaskRunInfo(task, map_index, count)

    def __enter__(self) -> None:
        self.token = _task_ctx.set(self.info)

    def __exit__(self, *exc: object) -> None:
        _task_ctx.reset(self.token)


# --- one task run ----------------------------------------------------------------------------


def run_task(
    task: Task,
    kwargs: dict[str, Any],
    map_index: int | None,
    run_count: int,
    old: State,
    flow_ctx: dict[str, Any],
    notify: Notify | None,
) -> State:
    """Run one task run: ``old -> Running -> Success | Failed | Retrying | ...``.

    This is the hot path: it runs once per task run, wherever the executor puts it.
    """
    ftoken = _flow_ctx.set(flow_ctx) if _flow_ctx.get() is not flow_ctx else None
    info = TaskRunInfo(task, map_index, run_count)
    token = _task_ctx.set(info)
    try:
        if run_count > 1 and getattr(old, "loop_count", None):
            # a retry of a task that failed inside a LOOP goes on from the iteration it reached
            info.loop_count = old.loop_count  # type: ignore[union-attr]
            info.loop_result = old.loop_result  # type: ignore[union-attr]
        running = Running()
        recorded = False
        if notify is not None:
            if notify.__class__ is StateRecorder and notify.fast:  # type: ignore[attr-defined]
                # the recorder's hot path: no Python call (see StateRecorder)
                notify.record((task, map_index, running.timestamp))  # type: ignore[attr-defined]
                recorded = True
            else:
                running = notify(task, old, running)
                if not running._running:
                    return running
        try:
            if task.timeout is None and not task.log_stdout:
                value = task.run(**kwargs)
            else:
                value = _run_guarded(task, kwargs)
            if type(value) in _ONE_SHOT:
                value = list(value)  # a generator feeds every downstream task, not just the first
            new: State = Success(_SUCCESS_MESSAGE, value)
        except signals.PlaitSignal as sig:
            if isinstance(sig, signals.LOOP):
                recorded = False  # the iterations' states go through the notifier: so does the end
                new = _run_loop(task, kwargs, sig, notify, running)
                run_count = info.run_count  # each iteration is a run of its own (see _run_loop)
            else:
                new = _state_from_signal(sig)
        except signals.ENDRUN as end:
            new = end.state
        except _Timeout as exc:
            new = TimedOut(_timed_out(task, exc), exc)
        except Exception as exc:
            if flow_ctx.get("raise_on_exception"):
                raise
            new = Failed(mask(f"Error during execution of task: {exc!r}"), exc, mask(traceback.format_exc()))
        if new._failed and run_count <= task.max_retries and not isinstance(new, TriggerFailed):
            if _retries_on(task, new):
                if notify is not None:
                    # handlers see the failure, then the retry (Prefect 1's order)
                    failed = notify(task, running, new, True)
                    if not (failed._failed and failed._finished):
                        return notify(task, running, failed)
                    return notify(task, running, _retrying(task, failed, run_count, info), False, failed)
                new = _retrying(task, new, run_count, info)
        elif type(new) is Retrying:
            new.run_count = run_count  # type: ignore[attr-defined]  # RETRY: always retried, counted
        if recorded:
            notify.record((task, map_index, new))  # type: ignore[union-attr]
        elif notify is not None:
            new = notify(task, running, new)
        return new
    finally:
        _task_ctx.reset(token)
        if ftoken is not None:
            _flow_ctx.reset(ftoken)


def _run_task_with_extras(
    extras: TaskExtras,
    task: Task,
    kwargs: dict[str, Any],
    map_index: int | None,
    run_count: int,
    old: State,
    flow_ctx: dict[str, Any],
    notify: Notify | None,
) -> State:
    """``run_task`` with targets, caches, checkpoints, resume or a run name (kept off the plain path)."""
    flow_ctx = extras.flow_context(flow_ctx)
    ftoken = _flow_ctx.set(flow_ctx) if _flow_ctx.get() is not flow_ctx else None
    token = _task_ctx.set(TaskRunInfo(task, map_index, run_count))
    try:
        cached = None
        if extras.run_name is not None:
            # the run's own name: in its context (logs, observers, the live view) as task_run_name
            name = extras.task_run_name(task, kwargs)
            if isinstance(name, State):
                cached = name
            else:
                flow_ctx = {**flow_ctx, "task_run_name": name}  # run_task sets it
        if cached is None:
            cached = extras.before(task, kwargs, map_index, flow_ctx)
    finally:
        _task_ctx.reset(token)
        if ftoken is not None:
            _flow_ctx.reset(ftoken)
    if cached is not None:
        return notify(task, old, cached) if notify is not None else cached

    def persist(task: Task, old: State, new: State, interim: bool = False, handlers_old: State | None = None) -> State:
        if interim or handlers_old is not None:  # the failure before a retry, and the retry
            return notify(task, old, new, interim, handlers_old) if notify is not None else new
        # The final transition of the run: store a success before anyone sees it.
        if not new._running:
            stored = extras.after(task, new, kwargs, map_index, flow_ctx)
            if stored is not new and stored._failed and run_count <= task.max_retries:
                stored = _retrying(task, stored, run_count)
            new = stored
        return notify(task, old, new) if notify is not None else new

    return run_task(task, kwargs, map_index, run_count, old, flow_ctx, persist)


def run_task_recorded(
    task: Task,
    kwargs: dict[str, Any],
    map_index: int | None,
    run_count: int,
    old: State,
    flow_ctx: dict[str, Any],
    runner: Callable[..., State] = run_task,
) -> list[tuple[State, State]]:
    """``run_task`` for executors outside the driver: returns the state changes it went through."""
    recorded: list[tuple[Any, ...]] = []

    def record(task: Task, old: State, new: State, interim: bool = False, handlers_old: State | None = None) -> State:
        recorded.append((old, new, interim, handlers_old) if interim or handlers_old is not None else (old, new))
        return new

    runner(task, kwargs, map_index, run_count, old, flow_ctx, record)
    for change in recorded:
        # An exception the driver could not unpickle would lose the whole answer: send such
        # exceptions as their type and text instead.
        new = change[1]
        if isinstance(new.result, BaseException) and type(new.result) not in _PORTABLE_EXCEPTIONS:
            new.result = portable_exception(new.result)
    return recorded


# Exceptions known to pickle and unpickle as themselves: not worth a check.
_PORTABLE_EXCEPTIONS = frozenset({ValueError, TypeError, KeyError, RuntimeError, ZeroDivisionError, IndexError})


def _settled(state: State) -> State:
    """A kept state of a previous run, as a plain state when its result was brought back.

    The remote state of a run on a cluster keeps its handle (``result_ref``) after its result
    was fetched at the end of that run; that handle names a place of a run that is over, so a
    run resuming from it passes the value instead.
    """
    if hasattr(state, "_ref") and not is_remote(state):
        return copy.copy(state)  # a remote state copies (and pickles) as a plain one with its result
    return state


class _NotStarted:
    """What ``run_task_after`` returns for a task it did not run (one instance, kept by pickling)."""

    __slots__ = ()

    def __reduce__(self) -> str:
        return "NOT_STARTED"

    def __repr__(self) -> str:
        return "NOT_STARTED"


NOT_STARTED: Any = _NotStarted()


def run_task_after(
    upstream: list[Any],
    task: Task,
    kwargs: dict[str, Any],
    map_index: int | None,
    run_count: int,
    old: State,
    flow_ctx: dict[str, Any],
    runner: Callable[..., State] = run_task,
) -> list[tuple[State, State]] | _NotStarted:
    """``run_task_recorded`` for a pipelined task: run it only if ``upstream`` all succeeded.

    ``upstream`` holds the final states of the upstream tasks that were still running when the
    task was sent (the executor resolved its handles to them on the worker). If one of them
    did not succeed, or was skipped, the task is not run: ``NOT_STARTED`` goes back and the
    driver decides (trigger, skip, retries), as for any task.
    """
    for state in upstream:
        if not _passes(state):
            return NOT_STARTED
    return run_task_recorded(task, kwargs, map_index, run_count, old, flow_ctx, runner)


def _passes(state: Any) -> bool:
    """A finished, successful, not skipped upstream state: the default trigger lets the task run."""
    return isinstance(state, State) and state._finished and state._successful and not state.is_skipped()


def _can_follow(plan: _Plan, t: int, task: Task) -> bool:
    """Whether task ``t`` may be pipelined: plain (not mapped), default trigger, no flattened input."""
    return (
        bool(plan.ups[t])
        and not plan.is_mapped[t]
        and not plan.mapped_ups[t]
        and not plan.mapped_over[t]
        and task.trigger is all_successful
        and not any(flat for _k, _u, _m, flat in plan.inputs[t])
    )


_Timeout = TaskTimeoutError


def _timed_out(task: Task, exc: _Timeout) -> str:
    seconds = task.timeout.total_seconds() if task.timeout is not None else 0
    detail = str(exc)
    return f"Task {task.name!r} timed out after {seconds:g}s{'; ' + detail if detail else ''}."


def _materialized(value: Any) -> Any:
    return list(value) if type(value) in _ONE_SHOT else value


def _run_guarded(task: Task, kwargs: dict[str, Any]) -> Any:
    """Run with stdout capture and/or a timeout (off the hot path).

    A timeout is enforced by running the task in its own process, killed when the time is up
    (``plait.engine.timeouts``); where that is not possible it is only observed.
    """

    def call() -> Any:
        if task.log_stdout:
            with capture_stdout():
                return task.run(**kwargs)
        return task.run(**kwargs)

    if task.timeout is None or getattr(task, "enforces_own_timeout", False):
        return call()
    from plait.engine.timeouts import TimeoutExpired, run_with_timeout

    try:
        return run_with_timeout(task.name, call, task.timeout.total_seconds(), _materialized)
    except TimeoutExpired as exc:
        raise _Timeout(exc.detail) from None


def _run_loop(task: Task, kwargs: dict[str, Any], loop: signals.LOOP, notify: Notify | None, running: State) -> State:
    """Run ``task`` again after it raised ``LOOP``, until it returns or raises something else.

    State handlers see each iteration end ``Looped``, then the next one start (``Pending ->
    Running``), as in Prefect 1; a handler that replaces ``Looped`` ends the loop there.
    """
    info = _task_ctx.get()
    assert info is not None
    if info.loop_count == 1:
        # flow.run(context={"task_loop_count": n}): the loop starts at iteration n (Prefect 1's)
        start = _flow_ctx.get().get("task_loop_count")
        if isinstance(start, int) and start > 1:
            info.loop_count = start
    while True:
        if notify is not None:
            message = loop.message or f"Task is looping ({info.loop_count})"
            looped = notify(task, running, Looped(message, loop.result, loop_count=info.loop_count))
            if not isinstance(looped, Looped):
                return looped
            running = notify(task, Pending(f"Looping task (on loop index {info.loop_count})"), Running())
            if not running._running:
                return running
        info.loop_count += 1
        info.loop_result = loop.result
        # Each iteration is a new run (Prefect 1's): task_run_count starts again at 1, and an
        # iteration that fails has the task's max_retries of its own.
        info.run_count = 1
        try:
            if task.timeout is None and not task.log_stdout:
                value = task.run(**kwargs)
            else:
                value = _run_guarded(task, kwargs)
            if type(value) in _ONE_SHOT:
                value = list(value)
            return Success(_SUCCESS_MESSAGE, value)
        except signals.LOOP as again:
            loop = again
        except signals.PlaitSignal as sig:
            return _state_from_signal(sig)
        except signals.ENDRUN as end:
            return end.state
        except _Timeout as exc:
            return TimedOut(_timed_out(task, exc), exc)
        except Exception as exc:
            if _flow_ctx.get().get("raise_on_exception"):
                raise
            return Failed(
                f"Error during execution of task (loop {info.loop_count}): {exc!r}", exc, traceback.format_exc()
            )


def _retrying(task: Task, failed: State, run_count: int, info: TaskRunInfo | None = None) -> Retrying:
    delay = task.retry_delay
    start = datetime.now(UTC) + delay
    looping = info is not None and info.loop_count > 1
    return Retrying(
        f"Attempt {run_count} of {task.max_retries + 1} failed ({failed.message}); "
        f"retrying in {delay.total_seconds():g}s.",
        result=failed.result,
        start_time=start,
        run_count=run_count,
        loop_count=info.loop_count if looping else None,  # type: ignore[union-attr]
        loop_result=info.loop_result if looping else None,  # type: ignore[union-attr]
    )


def _retries_on(task: Task, failed: State) -> bool:
    """Whether ``failed`` is a failure ``task`` retries (``retry_on``: only those exceptions)."""
    retry_on = task.retry_on
    return retry_on is None or isinstance(failed.result, retry_on)


def _state_from_signal(sig: signals.PlaitSignal) -> State:
    cls = STATES_BY_NAME[sig.state_name]
    message = sig.message or f"{type(sig).__name__} signal raised."
    if issubclass(cls, Failed):
        return cls(message, sig.result, traceback.format_exc())
    if cls is Retrying:
        start = sig.state_options.get("start_time") or datetime.now(UTC)
        if start.tzinfo is None:  # a naive time is taken as UTC
            start = start.replace(tzinfo=UTC)
        return Retrying(message, result=sig.result, start_time=start)
    return cls(message, sig.result)


def _check_upstream(task: Task, ups: list[State]) -> State | None:
    """The state a task run ends in without running, or ``None`` to run it."""
    for state in ups:
        if not state._finished:
            return Pending(f"Upstream task is {state.name}.")
    skipped = False
    for state in ups:
        if state.is_skipped():
            if task.skip_on_upstream_skip:
                return Skipped("Upstream task was skipped (the task has skip_on_upstream_skip=True).")
            skipped = True
    try:
        ok = task.trigger(ups)
    except signals.PlaitSignal as sig:
        return _state_from_signal(sig)
    except Exception as exc:
        return Failed(
            f"Trigger {_callable_name(task.trigger)!r} of task {task.name!r} raised {exc!r}",
            exc,
            traceback.format_exc(),
        )
    if ok:
        return _RUNS_AFTER_SKIP if skipped else None
    message = f"Trigger {_callable_name(task.trigger)!r} was not met by the upstream states."
    return TriggerFailed(message, signals.TRIGGERFAIL(message))


class _RunsAfterSkip:
    """``_check_upstream``'s answer for a task that runs although an upstream task was skipped."""


_RUNS_AFTER_SKIP: Any = _RunsAfterSkip()


def _unskip_inputs(
    kwargs: dict[str, Any], inputs: tuple[tuple[str | None, int, bool, bool], ...], ups: Any, states: list[Any]
) -> None:
    """A skipped upstream passes ``None`` as data, not the ``SKIP`` signal its state holds."""
    if ups is None:  # a mapped child: its inputs were picked per child; skipped items are rare
        for key, value in kwargs.items():
            if isinstance(value, signals.SKIP):
                kwargs[key] = None
        return
    for key, u, _m, _f in inputs:
        if states[u].is_skipped():
            kwargs[key] = None


def _flatten_children(children: list[State]) -> tuple[list[Any], list[State]]:
    """The items of a mapped task's children, flattened, and for each item the state it came from."""
    items: list[Any] = []
    origins: list[State] = []
    for child in children:
        value = child.result
        if child.is_successful() and not child.is_skipped():
            part = value if isinstance(value, (list, tuple)) else [value]
            items.extend(part)
            origins.extend([child] * len(part))
        else:
            items.append(value)
            origins.append(child)
    return items, origins


def _edges_by_upstream(flow: Flow, plan: _Plan, t: int) -> list[Any]:
    """For an ``UpstreamStates``: one edge into task ``t`` per upstream task, in ``plan.ups`` order."""
    first: dict[Task, Any] = {}
    for edge in flow._edges_in.get(plan.tasks[t], ()):
        first.setdefault(edge.upstream_task, edge)
    return [first[plan.tasks[u]] for u in plan.ups[t]]


def _outer_context(context: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The caller's ``context=`` over what ``with plait.context(...)`` set around the run.

    Inside another run (a flow run started by a task) that run's own keys are not inherited.
    """
    outer = _flow_ctx.get()
    if outer:
        if "flow_run_id" in outer:
            outer = {k: v for k, v in outer.items() if k not in _RUN_KEYS}
        if outer:
            return {**outer, **(context or {})}
    return dict(context) if context is not None else None


_RUN_KEYS = frozenset(
    {"flow_name", "flow_run_id", "scheduled_start_time", "parameters", "resume"}
    | {f"{d}{s}" for d in ("date", "today", "yesterday", "tomorrow") for s in ("", "_nodash")}
)


def _resume_states(flow: Flow, previous: dict[Any, State]) -> frozenset[Task]:
    """Tasks given a ``Resume`` state in ``task_states``: they run as if listed in ``resume``."""
    names = [k for k, v in previous.items() if isinstance(v, Resume)]
    return _resume_set(flow, names) if names else frozenset()


def _not_iterable(task: Task, key: str, upstream: Task, value: Any, action: str) -> Failed:
    return Failed(
        f"Task {task.name!r} cannot {action} input {key!r}: the result of task "
        f"{upstream.name!r} is a {type(value).__name__} ({_short_repr(value)}), which is not iterable.",
        result=TypeError(f"{type(value).__name__} object is not iterable"),
    )


def _check_upstream_resumed(task: Task, ups: list[State], flow_ctx: dict[str, Any]) -> State | None:
    """``_check_upstream`` for a task the run resumes: its trigger sees ``resume=True``."""
    token = _flow_ctx.set({**flow_ctx, "resume": True})
    try:
        return _check_upstream(task, ups)
    finally:
        _flow_ctx.reset(token)


def _task_extras(flow: Flow, tasks: list[Task], resumed: frozenset[Task]) -> list[TaskExtras | None]:
    """Per task, its opt-in steps for this run; ``None`` for tasks that use none (most)."""
    from plait.engine.extras import extras_for, uses_extras

    flow_result = getattr(flow, "result", None) is not None
    if not flow_result and not resumed and not any(uses_extras(t) for t in tasks):
        return [None] * len(tasks)
    return [extras_for(t, flow, t in resumed) for t in tasks]


def _resume_set(flow: Flow, resume: Sequence[Task | str] | None) -> frozenset[Task]:
    if not resume:
        return frozenset()
    if isinstance(resume, (str, Task)):
        resume = [resume]
    out: set[Task] = set()
    for item in resume:
        if isinstance(item, Task):
            if item not in flow:
                raise FlowRunError(f"Flow {flow.name!r}: cannot resume task {item.name!r}, it is not in the flow")
            out.add(item)
            continue
        found = [t for t in flow if item in (t.slug, t.name)]
        if not found:
            raise FlowRunError(
                f"Flow {flow.name!r} has no task named {item!r} to resume; its tasks are: "
                f"{', '.join(sorted(str(t.slug) for t in flow))}"
            )
        out.update(found)
    return frozenset(out)


def _previous_states(flow: Flow, resume_from: State | dict[Task, State] | None) -> dict[Task, State]:
    if resume_from is None:
        return {}
    states = resume_from.result if isinstance(resume_from, State) else resume_from
    if not isinstance(states, dict):
        raise FlowRunError(
            f"Flow {flow.name!r}: resume_from must be a flow-run state (what flow.run() returned) or its "
            f"{{task: State}} mapping, got {type(resume_from).__name__}: {resume_from!r}"
        )
    return states


def _not_runnable(state: State) -> bool:
    """A flow-run state a run does not start from: finished, or scheduled for later (Prefect 1's rule)."""
    if not (state.is_pending() or state.is_running()):
        return True
    start = getattr(state, "start_time", None)
    return isinstance(start, datetime) and start.tzinfo is not None and start > datetime.now(UTC)


def _kill_subprocesses() -> None:
    # Processes being started right now are registered first (or see the interrupt themselves).
    interrupts.wait_for_starts()
    # Only if ShellTask was ever used in this process: its process groups must not outlive us.
    shell = sys.modules.get("plait.shell")
    if shell is not None:
        shell.kill_running_processes()
    # Work that tasks registered with plait.cancellation.on_cancel (containers, remote jobs).
    cancellation = sys.modules.get("plait.cancellation")
    if cancellation is not None:
        cancellation.cancel_running()


def _flatten_one(value: Any) -> list[Any]:
    out: list[Any] = []
    for item in value:
        if isinstance(item, (list, tuple)):
            out.extend(item)
        else:
            out.append(item)
    return out


def _log_failure(task: Task, i: int | None, state: State) -> None:
    """Log a failed task run: one line of message, the traceback as the record's exception
    (``exc_info``/``exc_text``, so formatters put it where they put tracebacks: the JSON
    formatter's ``exception`` field), and the task's name on the record."""
    # Excerpts: an exception message of megabytes would take minutes to log; the state keeps it all.
    base = logger.logger
    if not base.isEnabledFor(logging.ERROR):
        return
    name = task.name if i is None else f"{task.name}[{i}]"
    tb = getattr(state, "traceback", None)
    message = excerpt(state.message or "")
    exc = state.result if isinstance(state.result, BaseException) else None
    if tb:
        text, args = "Task %r failed: %s", (name, message)
    else:
        text, args = "Task %r: %s %s", (name, state.name, message)
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    fn, lno, func, _stack = base.findCaller()
    record = base.makeRecord(base.name, logging.ERROR, fn, lno, text, args, exc_info, func)
    if tb:
        # The text the task run recorded (its frames, possibly from a worker process): the
        # formatter uses it instead of formatting exc_info again.
        record.exc_text = excerpt(tb.rstrip(), 4 * LOG_TEXT_LIMIT)
    record.__dict__.update(_context_fields())
    record.task_name = task.name
    record.task_full_name = name
    record.map_index = i
    base.handle(record)


def _due(state: State) -> bool:
    """Whether a scheduled state's ``start_time`` has come (no time: at once; a pause without
    one waits to be resumed)."""
    start = getattr(state, "start_time", None)
    if start is None:
        return not isinstance(state, Paused)
    return start <= datetime.now(UTC)


def _all_finished(state: State) -> bool:
    if isinstance(state, Mapped):
        return all(c._finished for c in state.map_states)
    return state._finished


def _is_paused(state: State) -> bool:
    if isinstance(state, Mapped):
        return any(isinstance(c, Paused) for c in state.map_states)
    return isinstance(state, Paused)


def _checked_state(out: Any, handler: Any, owner: str) -> State:
    return Failed(
        f"State handler {_callable_name(handler)!r} of {owner} returned {type(out).__name__}, not a State or None."
    )


def _not_a_state(out: Any, handler: Any, owner: str) -> State:
    """What a chain of state handlers ending in something other than a State gives.

    Under ``raise_on_exception`` it is an error (Prefect 1 let the resulting error out); else a
    ``Failed`` state naming the handler, as ``_checked_state``.
    """
    if _flow_ctx.get().get("raise_on_exception"):
        raise StateHandlerError(
            f"State handler {_callable_name(handler)!r} of {owner} returned {type(out).__name__} "
            f"({_short_repr(out)}), not a State or None"
        )
    return _checked_state(out, handler, owner)


def _callable_name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
