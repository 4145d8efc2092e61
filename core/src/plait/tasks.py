"""Tasks: the units of work in a flow.

Write a task as a decorated function or as a ``Task`` subclass with a ``run()`` method::

    from plait import Flow, Task, task

    @task(max_retries=2, retry_delay=5)
    def fetch(url):
        ...

    class Load(Task):
        def run(self, rows, table="events"):
            ...

    with Flow("etl") as flow:
        Load(name="load")(fetch("https://example.com/data"))

Calling a task inside ``with Flow(...)`` binds a copy of it into the flow; arguments that
are tasks become edges, plain values become constants. ``task.map(...)`` binds a mapped copy
that runs once per item.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import inspect
import itertools
import operator
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, overload

from plait import cache_validators as _cache_validators
from plait import triggers as _triggers
from plait.context import _flow_ctx
from plait.errors import NoActiveFlowError, TaskBindError, TaskDefinitionError, TaskOptionError

if TYPE_CHECKING:
    from plait.flow import Flow
    from plait.states import State

__all__ = [
    "Constant",
    "DateTimeParameter",
    "Dict",
    "GetItem",
    "List",
    "Operator",
    "Parameter",
    "Set",
    "Task",
    "Tuple",
    "as_task",
    "defaults_from_attrs",
    "flatten",
    "mapped",
    "tags",
    "task",
    "unmapped",
]

StateHandler = Callable[[Any, "State", "State"], "State | None"]

#: Arguments of ``__call__``/``map`` that are never passed to ``run()``.
_RESERVED = frozenset({"upstream_tasks", "mapped", "task_args", "flow"})


class _NoDefault:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_DEFAULT"

    def __reduce__(self) -> str:
        return "NO_DEFAULT"


#: ``Parameter``'s default when none is given: the parameter is then required.
NO_DEFAULT: Any = _NoDefault()

#: The flows of the ``with Flow(...)`` blocks the current context is in, innermost last
#: (``Flow.active()`` reads it; it lives here so binding a task needs no import).
_active_flows: contextvars.ContextVar[tuple[Flow, ...]] = contextvars.ContextVar("plait_active_flows", default=())
#: The ``case`` blocks the current context is in, innermost last: ``Flow.add_task`` tells the
#: innermost one about each task added to a flow while it is open.
_active_cases: contextvars.ContextVar[tuple[Any, ...]] = contextvars.ContextVar("plait_active_cases", default=())
#: Every ``case`` block open in any context (entered, not yet left): while there is none,
#: adding a task to a flow does not read ``_active_cases`` (a context variable per task built).
_open_case_blocks: list[Any] = []


def _type_hints(fn: Any) -> dict[str, Any]:
    """A function's annotations, resolved (``from __future__ import annotations`` makes them strings)."""
    import typing

    try:
        return typing.get_type_hints(fn)
    except Exception:  # a name the annotation uses is not importable here: the raw annotations
        return dict(getattr(fn, "__annotations__", None) or {})


def _nout_from_annotation(fn: Callable[..., Any]) -> int | None:
    """``n`` for a function annotated ``-> tuple[A, B, ...]`` (n fixed items), else ``None``."""
    import typing

    if not getattr(fn, "__annotations__", None):
        return None
    annotation = _type_hints(fn).get("return")
    if annotation is None or isinstance(annotation, str):
        return None
    if typing.get_origin(annotation) is not tuple:
        return None
    args = typing.get_args(annotation)
    if not args or Ellipsis in args or args == ((),):
        return None
    return len(args)


def _check_run_signature(owner: str, run: Callable[..., Any], function: bool = False) -> None:
    try:
        params = inspect.signature(run).parameters
    except ValueError:
        if function:  # @task(fn): fn's inputs would be unknown
            raise TaskDefinitionError(
                f"This function can not be inspected: {run!r} has no signature Plait can read (common with "
                "builtins and C functions), so its inputs are unknown; wrap it in a function of your own "
                "(@task def pairs(a, b): return list(zip(a, b)))"
            ) from None
        return
    except TypeError:
        return
    for p in params.values():
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            raise TaskDefinitionError(f"Task {owner!r}: run() cannot take *{p.name}; name each input instead")
        if p.name in _RESERVED:
            raise TaskDefinitionError(
                f"Task {owner!r}: run() parameter {p.name!r} is reserved by Plait; rename it "
                f"(reserved: {', '.join(sorted(_RESERVED))})"
            )


#: Attributes Task.__init__ sets from its options: a subclass that sets one before calling it
#: loses its value (a warning says so).
_OPTION_ATTRIBUTES = frozenset(
    {
        "name",
        "slug",
        "tags",
        "max_retries",
        "retry_delay",
        "timeout",
        "trigger",
        "skip_on_upstream_skip",
        "state_handlers",
        "on_failure",
        "nout",
        "log_stdout",
        "checkpoint",
        "result",
        "target",
        "cache_for",
        "cache_validator",
        "cache_key",
        "retry_on",
        "task_run_name",
    }
)


def _warn_reserved_attributes(task: Task) -> bool:
    """Warn about each option attribute ``task`` has before ``Task.__init__``; whether it had any."""
    reserved = sorted(_OPTION_ATTRIBUTES.intersection(task.__dict__))
    for attr in reserved:
        warnings.warn(
            f"`{type(task).__name__}` sets a `{attr}` attribute, which is reserved: it is the Task option "
            f"of that name, and Task.__init__ replaces the value; rename the attribute, or pass {attr}= "
            "to super().__init__()",
            UserWarning,
            stacklevel=4,
        )
    return bool(reserved)


def _sets_every_option(cls: type) -> bool:
    """Whether ``Task.__init__`` stores every option on an instance of ``cls``, defaults too.

    It does when a class between ``cls`` and ``Task`` defines one of the options (a class
    attribute, a property): ``__init__``'s value then overrides it on the instance, as it
    always did, instead of the class's value showing through where the default was given.
    """
    for klass in cls.__mro__:
        if klass is Task:
            return False
        if not _OPTION_ATTRIBUTES.isdisjoint(klass.__dict__):
            return True
    return False


class _OwnStateHandlers:
    """``Task.state_handlers`` of a task that has none: an empty list of the task's own.

    Read on a task, it stores a new list in the task's ``__dict__`` and returns it, so
    ``task.state_handlers.append(h)`` adds a handler to that task alone, as with a list made
    by ``__init__``; tasks without handlers (most, and their copies) carry no list. Plait's
    own readers use ``state_handlers_of``, which makes none.
    """

    def __get__(self, task: Task | None, owner: type) -> Any:
        if task is None:
            return self
        handlers: list[StateHandler] = []
        task.__dict__["state_handlers"] = handlers
        return handlers


_OWN_STATE_HANDLERS = _OwnStateHandlers()
#: Task classes that define ``state_handlers`` in their class body (a property keeping them
#: elsewhere...). While there is none, the runner reads a task's handlers from its ``__dict__``
#: alone; a ``state_handlers`` set on a class after it was made is not noticed there.
_OWN_HANDLER_CLASSES: set[type] = set()


def state_handlers_of(task: Task) -> list[StateHandler] | tuple[()]:
    """``task.state_handlers``, without giving a task that has none a list of its own (``()``).

    A subclass that defines ``state_handlers`` itself (a property keeping them elsewhere, a
    class attribute) is read through it, as before the defaults moved to the class.
    """
    handlers = task.__dict__.get("state_handlers")
    if handlers is None and type(task).state_handlers is not _OWN_STATE_HANDLERS:
        return task.state_handlers or ()
    return handlers or ()


def _warning_on_task_arguments(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap a Task subclass's ``__init__``: warn when it is given a task (a common porting slip)."""

    @functools.wraps(init)
    def __init__(self: Task, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        if type(self).__init__ is __init__ and any(isinstance(v, Task) for v in itertools.chain(args, kwargs.values())):
            name = type(self).__name__
            warnings.warn(
                f"A Task was passed as an argument to {name}: a task's constructor takes its options and "
                f"static values; make it first ({name}(...)), then call it with the tasks whose results "
                f"it needs ({name}(...)(upstream_task))",
                UserWarning,
                stacklevel=2,
            )
        init(self, *args, **kwargs)

    return __init__


class _CallSignature:
    """``inspect.signature(task)``: ``run()``'s inputs and the keyword-only options of a call.

    On the class it is ``None``, so ``inspect.signature(MyTask)`` still shows ``__init__``'s.
    """

    _CALL_OPTIONS = ("mapped", "task_args", "upstream_tasks", "flow")

    def __get__(self, task: Task | None, owner: type) -> inspect.Signature | None:
        if task is None:
            return None
        try:
            run_sig = task.signature()
        except (TypeError, ValueError):
            return None
        params = list(run_sig.parameters.values())
        var_kw = [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
        params = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
        names = {p.name for p in params}
        params += [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=False if name == "mapped" else None)
            for name in self._CALL_OPTIONS
            if name not in names
        ]
        return run_sig.replace(parameters=params + var_kw, return_annotation="Task")


class Task:
    """A unit of work. Subclass it and implement ``run()``, or use ``@task``.

    Args:
        name: shown in logs and states; defaults to the class (or function) name.
        slug: a unique id within a flow; assigned when the task joins a flow if not given.
        tags: labels for selection and routing (executors read some, e.g. ``dask-resource:``).
        max_retries: how many times a failed run is tried again.
        retry_delay: wait before a retry (seconds or ``timedelta``; default 0).
        timeout: a run that takes longer ends ``TimedOut`` (seconds or ``timedelta``).
        trigger: decides from upstream states whether the task runs (``plait.triggers``).
        skip_on_upstream_skip: skip this task when an upstream task was skipped (default True).
        state_handlers: ``fn(task, old_state, new_state) -> State | None`` called on every
            state change; a returned state replaces the new one.
        on_failure: ``fn(task, state)`` called when the task run ends failed.
        nout: how many values ``run()`` returns, so a bound task can be unpacked.
        log_stdout: send the task's ``print`` output to the run logger.
        checkpoint: store each successful result in ``result`` (``None``, the default: when
            the task or its flow has a ``result``; ``False``: never).
        result: where results go: a ``plait.results.Result``, a path or a URL
            (``"file:///data/{task_name}.pkl"``, ``"s3://..."`` with its plugin); default: the
            flow's ``result``.
        target: a location template (``"{task_name}/{today}.pkl"``): when a result exists
            there the task does not run (its state is ``Cached``, its result read from it);
            otherwise the result is written there.
        cache_for: keep successful results this long (seconds or ``timedelta``) and reuse
            them instead of running while ``cache_validator`` agrees.
        cache_validator: ``fn(cached_state, inputs, parameters) -> bool`` from
            ``plait.cache_validators`` (default ``duration_only``).
        cache_key: share one cache between tasks (default: one cache per flow and task).
        retry_on: an exception class (or a tuple of them): a failure is retried only when its
            exception is one of these (default: every failure, up to ``max_retries``).
        task_run_name: the name of each run, for logs, ``plait run``'s view and the server: a
            template filled from the inputs and the run context (``"fetch-{url}"``,
            ``"load-{today}"``), or a function of them (``lambda **kw: f"load-{kw['day']}"``).
            Read it in a run as ``plait.context.task_run_name``.

    A subclass may set ``secret_inputs`` (a class attribute): names of ``run()`` arguments that
    hold secrets. ``flow.serialize()`` withholds the constants given to them (``"****"``), in
    addition to inputs whose names look like credentials (``plait.secrets.is_secret_key``).
    """

    #: ``run()`` arguments whose constants ``flow.serialize()`` withholds (``"****"``).
    secret_inputs: tuple[str, ...] = ()
    #: ``True`` on tasks Plait made for the user (``as_task``'s constants, the collection task
    #: gathering a list of tasks passed to a call), as Prefect 1 marks them.
    auto_generated: bool = False
    __signature__ = _CallSignature()
    # Every option's default, on the class: a task keeps in its own ``__dict__`` only the
    # options that differ (see ``_sets_every_option`` for subclasses), so a copy of a plain
    # task copies a handful of entries, not two dozen (a 100,000-task flow copies, allocates
    # and garbage-collects them once per task). Tasks stored by an older Plait, which lack
    # the options added since, read these too.
    slug: str | None = None
    tags: frozenset[str] = frozenset()
    max_retries: int = 0
    retry_delay: timedelta = timedelta(0)
    timeout: timedelta | None = None
    trigger: Callable[[Sequence[State]], bool] = staticmethod(_triggers.all_successful)  # type: ignore[assignment]
    skip_on_upstream_skip: bool = True
    state_handlers: list[StateHandler] = _OWN_STATE_HANDLERS  # type: ignore[assignment]
    on_failure: Callable[[Task, State], None] | None = None
    nout: int | None = None
    log_stdout: bool = False
    checkpoint: bool | None = None
    result: Any = None
    target: str | Callable[..., str] | None = None
    cache_for: timedelta | None = None
    cache_validator: Callable[..., bool] = staticmethod(_cache_validators.never_use)  # type: ignore[assignment]
    cache_key: str | None = None
    retry_on: tuple[type[BaseException], ...] | None = None
    task_run_name: str | Callable[..., str] | None = None

    def __init__(
        self,
        name: str | None = None,
        slug: str | None = None,
        tags: Iterable[str] | None = None,
        max_retries: int = 0,
        retry_delay: timedelta | float | int | None = None,
        timeout: timedelta | float | int | None = None,
        trigger: Callable[[Sequence[State]], bool] | None = None,
        skip_on_upstream_skip: bool = True,
        state_handlers: Iterable[StateHandler] | None = None,
        on_failure: Callable[[Task, State], None] | None = None,
        nout: int | None = None,
        log_stdout: bool = False,
        checkpoint: bool | None = None,
        result: Any = None,
        target: str | Callable[..., str] | None = None,
        cache_for: timedelta | float | int | None = None,
        cache_validator: Callable[..., bool] | None = None,
        cache_key: str | None = None,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
        task_run_name: str | Callable[..., str] | None = None,
    ) -> None:
        # Each option is checked, then stored on the task only when it is not the default the
        # class holds, unless the value given must replace another: one a subclass set on the
        # task before calling this (a warning says so), or one it defines (_sets_every_option).
        every = False
        if self.__dict__:  # a subclass set attributes before calling Task.__init__
            every = _warn_reserved_attributes(self)
        every = every or _sets_every_option(type(self))
        self.name = name or type(self).__name__
        self.slug = slug
        name = self.name
        tags = _checked_option(name, "tags", tags)
        ctx = _flow_ctx.get()
        context_tags = ctx.get("tags")
        if context_tags:  # `with plait.context(tags=[...])`: every task made in the block has them
            tags = tags | _checked_option(name, "tags", context_tags)
        if tags or every:
            self.tags = tags
        checked = _checked_option(name, "retry_delay", retry_delay)
        if checked or every:
            self.retry_delay = checked
        if retry_delay is not None and not max_retries:
            raise ValueError(
                f"A `max_retries` argument greater than 0 must be provided if specifying a retry delay: task "
                f"{name!r} has retry_delay={retry_delay!r} and max_retries={max_retries!r}, so it would never retry"
            )
        max_retries = _checked_option(name, "max_retries", max_retries)
        if max_retries or every:
            self.max_retries = max_retries
        timeout = _checked_option(name, "timeout", timeout)
        if timeout is not None or every:
            self.timeout = timeout
        trigger = _checked_option(name, "trigger", trigger)
        if trigger is not _triggers.all_successful or every:
            self.trigger = trigger
        if skip_on_upstream_skip is not True or every:
            self.skip_on_upstream_skip = skip_on_upstream_skip
        handlers = _checked_option(name, "state_handlers", state_handlers)
        if handlers or every:
            self.state_handlers = handlers
        if on_failure is not None or every:
            self.on_failure = on_failure
        nout = _checked_option(name, "nout", nout)
        if nout is not None or every:
            self.nout = nout
        if log_stdout is not False or every:
            self.log_stdout = log_stdout
        self._set_result_options(checkpoint, result, target, cache_for, cache_validator, cache_key, every)
        retry_on = _checked_option(name, "retry_on", retry_on)
        if retry_on is not None:
            if not max_retries:
                raise ValueError(
                    f"Task {name!r}: retry_on={retry_on!r} needs max_retries: `max_retries` must be provided "
                    "(how many times to retry) when retry_on is"
                )
            self.retry_on = retry_on
        elif every:
            self.retry_on = None
        task_run_name = _checked_option(name, "task_run_name", task_run_name)
        if task_run_name is not None or every:
            self.task_run_name = task_run_name
        unused = ctx.get(UNUSED_TASKS_KEY)
        if unused is not None:  # made in a `with Flow(...)` block: it should end up in the flow
            unused.add(self)

    def _set_result_options(
        self,
        checkpoint: bool | None,
        result: Any,
        target: str | Callable[..., str] | None,
        cache_for: timedelta | float | int | None,
        cache_validator: Callable[..., bool] | None,
        cache_key: str | None,
        every: bool = True,
    ) -> None:
        if checkpoint not in (None, True, False):
            raise TypeError(f"Task {self.name!r}: checkpoint must be True, False or None, got {checkpoint!r}")
        if checkpoint is not None or every:
            self.checkpoint = checkpoint
        if result is not None:
            from plait.results import resolve_result

            result = resolve_result(result)
        if result is not None or every:
            self.result = result
        if target is not None and not isinstance(target, str) and not callable(target):
            raise TypeError(f"Task {self.name!r}: target must be a location template or a function, got {target!r}")
        if target is not None or every:
            self.target = target
        self._result_at_target()
        cache_for = _as_timedelta(cache_for, "cache_for", self.name)
        if cache_for is not None or every:
            self.cache_for = cache_for
        if cache_validator is not None and not callable(cache_validator):
            raise TypeError(f"Task {self.name!r}: cache_validator must be callable, got {cache_validator!r}")
        given = [n for n, v in (("cache_validator", cache_validator), ("cache_key", cache_key)) if v is not None]
        if cache_for is None and given and cache_validator is not _cache_validators.never_use:
            # Prefect 1 builds such a task (and never caches it): a warning, not an error
            warnings.warn(
                f"Task {self.name!r}: {' and '.join(given)} given without cache_for (how long a cached "
                "result stays valid), so this Task will not be cached; pass cache_for=timedelta(...)",
                UserWarning,
                stacklevel=3,
            )
        # the validator in use: never_use without cache_for, duration_only with it (Prefect 1's)
        if cache_validator is None:
            cache_validator = _cache_validators.never_use if cache_for is None else _cache_validators.duration_only
        if cache_validator is not _cache_validators.never_use or every:
            self.cache_validator = cache_validator
        if cache_key is not None and (not isinstance(cache_key, str) or not cache_key):
            raise TypeError(f"Task {self.name!r}: cache_key must be a non-empty string, got {cache_key!r}")
        if cache_key is not None or every:
            self.cache_key = cache_key

    def _result_at_target(self) -> None:
        # With both a result and a target, the task's result is a copy located at the target
        # (Prefect 1's): task.result.location says where the value goes.
        result, target = self.result, self.target
        if result is not None and target is not None and getattr(result, "location", target) != target:
            import copy as _copy

            result = _copy.copy(result)
            result.location = target
            self.result = result

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "state_handlers" in cls.__dict__:
            _OWN_HANDLER_CLASSES.add(cls)
        run = cls.__dict__.get("run")
        if run is not None:
            _check_run_signature(cls.__name__, run)
        init = cls.__dict__.get("__init__")
        if init is not None:
            cls.__init__ = _warning_on_task_arguments(init)  # type: ignore[method-assign]

    # -- what subclasses implement ---------------------------------------------------------

    def run(self) -> Any:
        """The work of the task. Its parameters are the task's inputs.

        The base class does nothing and returns ``None`` (as Prefect 1's does), so a plain
        ``Task()`` is a placeholder or an ordering point.
        """
        return None

    # -- building flows --------------------------------------------------------------------

    def copy(self, **task_args: Any) -> Task:
        """A shallow copy with a fresh identity, with ``task_args`` set as attributes.

        The copy has none of this task's edges: copying a task that has some in the active flow
        warns (the copy will not run after, or feed, what this task does).
        """
        flow = _active_flows.get()
        if flow and self in flow[-1] and (flow[-1]._edges_in.get(self) or flow[-1]._edges_out.get(self)):
            warnings.warn(
                f"You are making a copy of {self!r}, which has dependencies in the active flow "
                f"{flow[-1].name!r}: the copy does not keep them (call the copy with its inputs, or "
                "set them with set_dependencies)",
                UserWarning,
                stacklevel=2,
            )
        new = self.__copy__()  # what copy.copy(self) calls; keeps trigger, on_failure and handlers
        new.slug = None
        handlers = new.__dict__.get("state_handlers")
        if handlers is not None:  # the copy's own list (a task without handlers has none)
            new.state_handlers = list(handlers)
        context_tags = _flow_ctx.get().get("tags")
        if context_tags:  # a copy made in a `with tags(...)` block has them (Prefect 1's)
            new.tags = new.tags | _checked_option(new.name, "tags", context_tags)
        for key, value in task_args.items():
            if not hasattr(new, key) or key.startswith("_"):
                raise TaskOptionError(f"Task {self.name!r} has no option {key!r} to set through task_args")
            if key == "tags":  # task_args tags add to the task's own (Prefect 1's rule)
                value = self.tags | _checked_option(new.name, key, value)
            if key == "result" and value is not None:
                from plait.results import resolve_result

                value = resolve_result(value)
            elif key == "cache_for":
                value = _as_timedelta(value, key, self.name)
                if (
                    value is not None
                    and new.cache_validator is _cache_validators.never_use
                    and "cache_validator" not in task_args
                ):
                    new.cache_validator = _cache_validators.duration_only  # the default with cache_for
            elif key in _CHECKED_OPTIONS:
                value = _checked_option(new.name, key, value)
            setattr(new, key, value)
        if task_args and ("target" in task_args or "result" in task_args):
            new._result_at_target()
        unused = _flow_ctx.get().get(UNUSED_TASKS_KEY)
        if unused is not None:
            unused.add(new)
        return new

    def __call__(
        self,
        *args: Any,
        mapped: bool = False,
        task_args: dict[str, Any] | None = None,
        upstream_tasks: Iterable[Any] | None = None,
        flow: Flow | None = None,
        **kwargs: Any,
    ) -> Task:
        """Bind a copy of this task into the active flow with these inputs; returns the copy."""
        ctx = _flow_ctx.get()
        unused = ctx.get(UNUSED_TASKS_KEY)
        if unused:
            unused.discard(self)  # a task made in the block to be called there: it was used
        attrs = self.__dict__
        binding = attrs.get("_binding")
        if binding is None:
            try:
                _binder(self)  # worked out once, on this task: its copies inherit it
            except (TypeError, ValueError):
                pass  # no signature to read: binding the copy says so
            binding = attrs.get("_binding")
        cls = type(self)
        # The common call (`inc(x)` in a `with Flow` block: no options, a task class that keeps
        # Task's copying and binding) in one go: what copy() and bind() would do, without their
        # calls and checks. Anything else takes the general path below.
        if (
            binding is not None
            and not (mapped or task_args or upstream_tasks is not None or flow is not None)
            and binding[0] is (attrs.get("run") or cls.run)
            and cls.copy is _TASK_COPY
            and cls.__copy__ is _TASK_DUNDER_COPY
            and cls.bind is _TASK_BIND
            and cls.bind_arguments is _TASK_BIND_ARGUMENTS
        ):
            stack = _active_flows.get()
            if stack and not ctx.get("tags"):
                binder = binding[1]
                if len(args) == 1 and not kwargs and binder.quick and binder.positional:
                    # one input, given by position: binder.bind's answer is {name: value}
                    new = cls.__new__(cls)
                    new.__dict__ = copied = attrs.copy()
                    if "state_handlers" in attrs:  # the copy's own list (most tasks have none)
                        copied["state_handlers"] = list(attrs["state_handlers"])
                    stack[-1]._add_one(new, binder.positional[0], args[0])
                    return new
                callargs = binder.bind(args, kwargs)
                if callargs is not None:
                    new = cls.__new__(cls)
                    new.__dict__ = copied = attrs.copy()
                    copied["slug"] = None
                    if "state_handlers" in attrs:
                        copied["state_handlers"] = list(attrs["state_handlers"])
                    stack[-1]._add_bound(new, callargs)
                    return new
        new = self.copy(**task_args) if task_args else self.copy()
        try:
            if type(new).bind is Task.bind:
                new._bind(args, kwargs, mapped, upstream_tasks, flow)  # bind(), without repacking the arguments
            else:
                new.bind(*args, mapped=mapped, upstream_tasks=upstream_tasks, flow=flow, **kwargs)
        except BaseException:
            if unused is not None:
                unused.discard(new)  # the call failed with its own error: no warning about the copy
            raise
        return new

    def map(
        self,
        *args: Any,
        task_args: dict[str, Any] | None = None,
        upstream_tasks: Iterable[Any] | None = None,
        flow: Flow | None = None,
        **kwargs: Any,
    ) -> Task:
        """Bind a mapped copy: it runs once per item of each argument not wrapped in ``unmapped``."""
        return self(*args, mapped=True, task_args=task_args, upstream_tasks=upstream_tasks, flow=flow, **kwargs)

    def bind(
        self,
        *args: Any,
        mapped: bool = False,
        upstream_tasks: Iterable[Any] | None = None,
        flow: Flow | None = None,
        **kwargs: Any,
    ) -> Task:
        """Bind this very task (not a copy) into a flow with these inputs."""
        return self._bind(args, kwargs, mapped, upstream_tasks, flow)

    def _bind(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        mapped: bool,
        upstream_tasks: Iterable[Any] | None,
        flow: Flow | None,
    ) -> Task:
        if flow is None:
            stack = _active_flows.get()
            if not stack:
                if isinstance(self, FunctionTask):
                    run_call = f"`{getattr(self.run, '__name__', self.name)}.run(...)`"
                else:
                    run_call = f"`{type(self).__name__}(...).run(...)`"
                raise NoActiveFlowError(
                    f"Task {self.name!r} was called outside a flow. Could not infer an active Flow context "
                    f"while creating edge to {self!r}: call the task "
                    "inside `with Flow(...):` or pass flow=. If you're trying to run this task outside of a "
                    f"Flow context, you need to call {run_call}"
                )
            flow = stack[-1]
        context_tags = _flow_ctx.get().get("tags")
        if context_tags:
            self.tags = self.tags | _checked_option(self.name, "tags", context_tags)
        callargs = None
        if type(self).bind_arguments is Task.bind_arguments:
            callargs = _binder(self).bind(args, kwargs)  # the common case, without inspect
        if callargs is None:
            callargs = self.bind_arguments(*args, **kwargs)
        flow.set_dependencies(self, upstream_tasks, None, callargs, mapped)
        return self

    def bind_arguments(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Match ``args``/``kwargs`` to ``run()``'s parameters, with a clear error when they do not fit.

        Returns ``{parameter: value}`` in the order of ``run()``'s parameters, with what a
        ``**kwargs`` parameter collects last.
        """
        binder = _binder(self)
        callargs = binder.bind(args, kwargs)
        if callargs is not None:
            return callargs
        # An error to explain, or a signature the quick path leaves to inspect (positional-only
        # parameters).
        sig = binder.signature
        try:
            bound = sig.bind_partial(*args, **kwargs)
        except TypeError as exc:
            raise TaskBindError(
                f"Task {self.name!r} was called with arguments its run{sig} does not take: {exc}"
            ) from None
        callargs = {}
        for key, value in bound.arguments.items():
            if sig.parameters[key].kind is inspect.Parameter.VAR_KEYWORD:
                callargs.update(value)
            else:
                callargs[key] = value
        return callargs

    def signature(self) -> inspect.Signature:
        """The signature of ``run()`` (without ``self``), computed once per ``run`` function."""
        return _binder(self).signature

    def required_arguments(self) -> list[str]:
        """Names of ``run()`` parameters that have no default."""
        return list(_binder(self).required)

    def set_upstream(self, task: Any, flow: Flow | None = None, key: str | None = None, mapped: bool = False) -> Task:
        """Make ``task`` run before this one (passing its result as ``key`` when given); returns this task."""
        if key is None:
            return self.set_dependencies(flow, upstream_tasks=[task], mapped=mapped)
        return self.set_dependencies(flow, keyword_tasks={key: task}, mapped=mapped)

    def set_downstream(
        self, task: Task, flow: Flow | None = None, key: str | None = None, mapped: bool = False
    ) -> Task:
        """Make this task run before ``task``; returns this task (so calls chain)."""
        task.set_upstream(self, flow=flow, key=key, mapped=mapped)
        return self

    def set_dependencies(
        self,
        flow: Flow | None = None,
        upstream_tasks: Iterable[Any] | None = None,
        downstream_tasks: Iterable[Task] | None = None,
        keyword_tasks: dict[str, Any] | None = None,
        mapped: bool = False,
        validate: bool | None = None,
    ) -> Task:
        """``flow.set_dependencies(self, ...)`` on ``flow`` or the active one (Prefect 1's); returns this task."""
        from plait.flow import Flow

        flow = flow if flow is not None else Flow.active()
        if flow is None:
            raise NoActiveFlowError(
                f"No Flow was passed to link task {self.name!r}, and no `with Flow(...)` block is open: pass flow="
            )
        flow.set_dependencies(self, upstream_tasks, downstream_tasks, keyword_tasks, mapped)
        if validate:
            flow.validate()
        return self

    def pipe(self, task: Task, **kwargs: Any) -> Task:
        """Pass this task's result to ``task`` as its first input: ``fetch(url).pipe(parse, strict=True)``.

        The same as ``task(self, **kwargs)``, for reading chains left to right.
        """
        return task(self, **kwargs)

    def __getitem__(self, key: Any) -> Task:
        """A task that picks ``result[key]`` from this task's result."""
        name = f"{self.name}[{key!r}]"
        return GetItem(name=name)(self, key)

    # Operators, as in Prefect 1: ``total = x + 1`` (``x`` a task) adds an ``Operator`` task that
    # computes the sum when the flow runs. ``==`` and ``!=`` keep comparing tasks themselves (a
    # task is a dict key and a set member), and ``|`` is not defined.
    def __add__(self, other: Any) -> Task:
        return Operator("Add")(self, other)

    def __radd__(self, other: Any) -> Task:
        return Operator("Add")(other, self)

    def __sub__(self, other: Any) -> Task:
        return Operator("Sub")(self, other)

    def __rsub__(self, other: Any) -> Task:
        return Operator("Sub")(other, self)

    def __mul__(self, other: Any) -> Task:
        return Operator("Mul")(self, other)

    def __rmul__(self, other: Any) -> Task:
        return Operator("Mul")(other, self)

    def __truediv__(self, other: Any) -> Task:
        return Operator("Div")(self, other)

    def __rtruediv__(self, other: Any) -> Task:
        return Operator("Div")(other, self)

    def __floordiv__(self, other: Any) -> Task:
        return Operator("FloorDiv")(self, other)

    def __rfloordiv__(self, other: Any) -> Task:
        return Operator("FloorDiv")(other, self)

    def __mod__(self, other: Any) -> Task:
        return Operator("Mod")(self, other)

    def __rmod__(self, other: Any) -> Task:
        return Operator("Mod")(other, self)

    def __pow__(self, other: Any) -> Task:
        return Operator("Pow")(self, other)

    def __rpow__(self, other: Any) -> Task:
        return Operator("Pow")(other, self)

    def __and__(self, other: Any) -> Task:
        return Operator("And")(self, other)

    def __rand__(self, other: Any) -> Task:
        return Operator("And")(other, self)

    def __gt__(self, other: Any) -> Task:
        return Operator("GreaterThan")(self, other)

    def __ge__(self, other: Any) -> Task:
        return Operator("GreaterThanOrEqual")(self, other)

    def __lt__(self, other: Any) -> Task:
        return Operator("LessThan")(self, other)

    def __le__(self, other: Any) -> Task:
        return Operator("LessThanOrEqual")(self, other)

    # Prefect 1's named operators, for what Python's syntax cannot build (``==`` compares tasks)
    def is_equal(self, other: Any) -> Task:
        """A task computing ``self == other`` when the flow runs."""
        return Operator("Equal")(self, other)

    def is_not_equal(self, other: Any) -> Task:
        """A task computing ``self != other`` when the flow runs."""
        return Operator("NotEqual")(self, other)

    def or_(self, other: Any) -> Task:
        """A task computing ``bool(self or other)`` when the flow runs."""
        return Operator("Or")(self, other)

    def not_(self) -> Task:
        """A task computing ``not self`` when the flow runs."""
        return Operator("Not")(self)

    def __iter__(self):
        if self.nout is None:
            raise TypeError(f"Task is not iterable: give task {self.name!r} nout=N to unpack its N results")
        from plait.flow import Flow

        flow = Flow.active()
        if flow is not None and self in flow and any(e.mapped for e in flow._edges_in.get(self, ())):
            raise TypeError(
                f"Task is not iterable: task {self.name!r} is mapped, its result is one value per child; "
                "index it (result[i]) in a task downstream instead of unpacking it"
            )
        return (self[i] for i in range(self.nout))

    @property
    def logger(self) -> Any:
        """The run-aware logger (``plait.context.logger``): ``self.logger.info(...)`` in ``run()``."""
        from plait.logging import run_logger

        return run_logger

    def inputs(self) -> dict[str, dict[str, Any]]:
        """``run()``'s inputs: ``{name: {"type": annotation, "required": bool, "default": value}}``."""
        hints = _type_hints(self.run)
        out: dict[str, dict[str, Any]] = {}
        for name, p in self.signature().parameters.items():
            if p.kind in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
                continue
            required = p.default is inspect.Parameter.empty
            out[name] = {
                "type": hints.get(name, Any),
                "required": required,
                "default": None if required else p.default,
            }
        return out

    def outputs(self) -> Any:
        """``run()``'s return annotation (``typing.Any`` when it has none)."""
        return _type_hints(self.run).get("return", Any)

    # -- description -----------------------------------------------------------------------

    def options(self) -> dict[str, Any]:
        """The task's options as plain JSON values (used by ``Flow.serialize``)."""
        return {
            "tags": sorted(self.tags),
            "max_retries": self.max_retries,
            "retry_delay": self.retry_delay.total_seconds(),
            "timeout": None if self.timeout is None else self.timeout.total_seconds(),
            "trigger": getattr(self.trigger, "__name__", repr(self.trigger)),
            "skip_on_upstream_skip": self.skip_on_upstream_skip,
            "state_handlers": [_callable_name(h) for h in state_handlers_of(self)],
            "nout": self.nout,
            "log_stdout": self.log_stdout,
            **self._result_options(),
            **self._prefect_options(),
        }

    def _prefect_options(self) -> dict[str, Any]:
        # Only when set, so flows that do not use them serialize as before.
        out: dict[str, Any] = {}
        if self.retry_on is not None:
            out["retry_on"] = [f"{c.__module__}.{c.__qualname__}" for c in self.retry_on]
        if self.task_run_name is not None:
            name = self.task_run_name
            out["task_run_name"] = name if isinstance(name, str) else _callable_name(name)
        return out

    def _result_options(self) -> dict[str, Any]:
        # Only options that are set, so flows that do not use results serialize as before.
        out: dict[str, Any] = {}
        if self.checkpoint is not None:
            out["checkpoint"] = self.checkpoint
        if self.result is not None:
            out["result"] = repr(self.result)
        if self.target is not None:
            out["target"] = self.target if isinstance(self.target, str) else _callable_name(self.target)
        if self.cache_for is not None:
            out["cache_for"] = self.cache_for.total_seconds()
        if self.cache_for is not None and self.cache_validator not in (None, _cache_validators.duration_only):
            out["cache_validator"] = _callable_name(self.cache_validator)
        if self.cache_key is not None:
            out["cache_key"] = self.cache_key
        return out

    def __repr__(self) -> str:
        return f"<Task: {self.name}>"

    def __copy__(self) -> Task:
        # Not through __getstate__: that one is for pickling and leaves the driver-side
        # callables (trigger, on_failure, state handlers) behind, which a bound copy must keep.
        new = type(self).__new__(type(self))
        new.__dict__ = self.__dict__.copy()  # one copy of the table (faster than update)
        return new

    def __getstate__(self) -> dict[str, Any]:
        # State handlers, triggers and on_failure always run in the driver process, so a task
        # shipped to a worker leaves them behind (they are often lambdas that cannot pickle).
        state = self.__dict__.copy()
        if _saving_whole_flow():  # Flow.save: keep everything (cloudpickle carries lambdas)
            return state
        state["state_handlers"] = []
        state["on_failure"] = None
        state["trigger"] = None
        state.pop("_binding", None)  # made again where it is needed
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.trigger is None:
            self.trigger = _triggers.all_successful


# What Task.__call__'s quick path does in place of these: a class that overrides one takes the
# general path (module globals: cheaper to read on every call than Task's attributes).
_TASK_COPY, _TASK_DUNDER_COPY = Task.copy, Task.__copy__
_TASK_BIND, _TASK_BIND_ARGUMENTS = Task.bind, Task.bind_arguments


class FunctionTask(Task):
    """A task made from a function: ``@task`` makes one, as does ``FunctionTask(fn, name=...)``.

    ``run`` is the function itself, and the instance's ``__doc__`` is the function's.
    """

    def __init__(self, fn: Callable[..., Any], name: str | None = None, **options: Any) -> None:
        if not callable(fn):
            raise TypeError(f"@task needs a function, got {fn!r}")
        _check_run_signature(getattr(fn, "__name__", repr(fn)), fn, function=True)
        if options.get("nout") is None:
            nout = _nout_from_annotation(fn)
            if nout:
                options["nout"] = nout
        super().__init__(name=name or getattr(fn, "__name__", None), **options)
        self.run = fn  # type: ignore[method-assign]  # no wrapper on the hot path
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        fn = state["run"]
        module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
        if module == "__main__" and _saving_whole_flow():
            return state  # a script's function: cloudpickle carries it by value
        target = _lookup(module, qualname)
        # @task replaces the function in its module with the task, so pickle cannot find the
        # function by name; ship a reference to the module attribute instead.
        if isinstance(target, FunctionTask) and target.run is fn:
            state["run"] = _FunctionRef(module, qualname)
            state.pop("__wrapped__", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        run = state.get("run")
        if isinstance(run, _FunctionRef):
            fn = run.resolve()
            state["run"] = fn
            state["__wrapped__"] = fn
        super().__setstate__(state)


class _FunctionRef:
    __slots__ = ("module", "qualname")

    def __init__(self, module: str, qualname: str) -> None:
        self.module = module
        self.qualname = qualname

    def __getstate__(self) -> tuple[str, str]:
        return self.module, self.qualname

    def __setstate__(self, state: tuple[str, str]) -> None:
        self.module, self.qualname = state

    def resolve(self) -> Callable[..., Any]:
        target = _lookup(self.module, self.qualname, import_=True)
        if not isinstance(target, FunctionTask):
            raise TypeError(f"Cannot find task function {self.module}.{self.qualname} in this process")
        return target.run


@overload
def task(fn: Callable[..., Any], /) -> FunctionTask: ...
@overload
def task(fn: None = None, /, **options: Any) -> Callable[[Callable[..., Any]], FunctionTask]: ...


def task(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Turn a function into a task, with or without options.

    ```python
    @task
    def add(x, y):
        return x + y

    @task(max_retries=3, retry_delay=timedelta(seconds=1), tags=["io"])
    def fetch(url):
        ...
    ```
    """
    if fn is not None:
        return FunctionTask(fn, **options)
    return lambda f: FunctionTask(f, **options)


class Parameter(Task):
    """A flow input, given to ``flow.run(parameters={...})``.

    Args:
        name: the parameter's name, unique within a flow.
        default: the value when the run does not give one. A parameter without a default is
            required (as in Prefect 1); ``default=None`` makes ``None`` its default.
        required: a run without this parameter is refused before anything runs, naming it
            (default: ``True`` when no default is given).
        secret: the value is a secret (a password, a token): it is registered for masking
            (``plait.secrets``) when the run starts, so logs, state messages, alerts and
            ``plait run`` show ``********`` instead; ``flow.serialize()`` marks the parameter
            ``"secret": true`` and shows its default as ``"****"``. Nothing writes the value
            to disk: ``flow.save()`` leaves the default out (the loaded flow requires the
            parameter), and a run ``plait run`` saves when it pauses leaves the value out
            (``--resume`` asks for it again).

    ```python
    password = Parameter("password", secret=True, required=True)
    ```
    """

    def __init__(
        self,
        name: str,
        default: Any = NO_DEFAULT,
        required: bool | None = None,
        tags: Iterable[str] | None = None,
        secret: bool = False,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"Parameter name must be a non-empty string, got {name!r}")
        super().__init__(name=name, slug=name, tags=tags)
        if required is None:
            required = default is NO_DEFAULT
        self.default = None if default is NO_DEFAULT else default
        self.required = bool(required)
        self.secret = bool(secret)
        if self.secret:
            from plait.secrets import register_secret_value

            register_secret_value(self.default)

    def run(self) -> Any:
        from plait import context

        params = context.get("parameters") or {}
        if self.name in params:
            return params[self.name]
        return self.default

    def copy(self, name: str, **task_args: Any) -> Parameter:  # type: ignore[override]
        """A parameter like this one under another ``name`` (a flow has one parameter per name)."""
        new = super().copy(**task_args)
        new.name = new.slug = name
        return new  # type: ignore[return-value]

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        if self.secret and self.default is not None and _saving_whole_flow():
            # Flow.save writes a file, and a secret is never written to disk: the loaded flow
            # has no default for this parameter and asks for its value instead.
            state["default"] = None
            state["required"] = True
        return state

    def __call__(self, *args: Any, flow: Flow | None = None, **kwargs: Any) -> Parameter:  # type: ignore[override]
        """Add the parameter to ``flow`` (or the active one); it takes no inputs."""
        from plait.flow import Flow

        if args or kwargs:
            got = f"an unexpected keyword argument {next(iter(kwargs))!r}" if kwargs else f"{len(args)} input(s)"
            raise TaskBindError(
                f"Parameter {self.name!r} takes no inputs (got {got}); use it as an argument to other tasks"
            )
        target = flow if flow is not None else Flow.active()
        if target is None:
            raise NoActiveFlowError(
                f"Parameter {self.name!r} was called outside a flow: could not infer an active Flow; "
                "call it inside `with Flow(...):` or pass flow="
            )
        target.add_task(self)
        return self

    def options(self) -> dict[str, Any]:
        options = {"default": self.serialized_default(), "required": self.required, "tags": sorted(self.tags)}
        if self.secret:
            options["secret"] = True
        return options

    def serialized_default(self) -> Any:
        """The default as plain JSON; ``"****"`` for a secret parameter that has one."""
        from plait.secrets import WITHHELD, redact

        if self.secret and self.default is not None:
            return WITHHELD
        return redact(self.default)

    def __repr__(self) -> str:
        return f"<Parameter: {self.name}>"


class DateTimeParameter(Parameter):
    """A parameter whose value is a ``datetime``: a string given for it is parsed (ISO 8601).

    ```python
    day = DateTimeParameter("day", required=False)   # flow.run(day="2026-03-01T06:00:00+00:00")
    ```
    """

    def run(self) -> Any:
        value = super().run()
        if isinstance(value, str):
            from datetime import datetime

            try:
                return datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(
                    f"DateTimeParameter {self.name!r}: {value!r} is not an ISO 8601 date and time "
                    "(e.g. 2026-03-01T06:00:00+00:00)"
                ) from None
        return value


class Constant(Task):
    """A task that returns a fixed value (made for plain values passed to ``map``)."""

    def __init__(self, value: Any, name: str | None = None, **options: Any) -> None:
        self.value = value
        super().__init__(name=name or f"Constant[{type(value).__name__}]", **options)

    def run(self) -> Any:
        return self.value


class GetItem(Task):
    """Returns ``task_result[key]``; made by ``task[key]`` and by unpacking a task with ``nout``."""

    def run(self, task_result: Any, key: Any) -> Any:
        return task_result[key]


def _logical_and(x: Any, y: Any) -> bool:
    return bool(x and y)


def _logical_or(x: Any, y: Any) -> bool:
    return bool(x or y)


def _logical_not(x: Any, y: Any = None) -> bool:
    return not x


#: What each ``Operator`` computes, by its name (Prefect 1's operator task names).
OPERATIONS: dict[str, Callable[[Any, Any], Any]] = {
    "Add": operator.add,
    "Sub": operator.sub,
    "Mul": operator.mul,
    "Div": operator.truediv,
    "FloorDiv": operator.floordiv,
    "Mod": operator.mod,
    "Pow": operator.pow,
    "And": _logical_and,
    "Or": _logical_or,
    "Not": _logical_not,
    "Equal": operator.eq,
    "NotEqual": operator.ne,
    "GreaterThan": operator.gt,
    "GreaterThanOrEqual": operator.ge,
    "LessThan": operator.lt,
    "LessThanOrEqual": operator.le,
}
_BOOLEAN = frozenset(
    {"And", "Or", "Not", "Equal", "NotEqual", "GreaterThan", "GreaterThanOrEqual", "LessThan", "LessThanOrEqual"}
)


class Operator(Task):
    """``x <op> y`` on two task results; made by the operators on tasks (``t + 1``, ``a > b``).

    ``operation`` is one of ``OPERATIONS`` (``"Add"``, ``"Sub"``, ``"Mul"``, ``"Div"``,
    ``"FloorDiv"``, ``"Mod"``, ``"Pow"``, ``"And"``, ``"Or"``, ``"Not"``, ``"Equal"``,
    ``"GreaterThan"``, ...); the task is named after it. The logical ones and the comparisons
    return a ``bool``, as Prefect 1's did. ``t.is_equal(x)``, ``t.is_not_equal(x)``, ``t.or_(x)``
    and ``t.not_()`` make the ones Python's syntax cannot.
    """

    def __init__(self, operation: str, **options: Any) -> None:
        if operation not in OPERATIONS:
            raise ValueError(f"Operator: unknown operation {operation!r}; known: {', '.join(OPERATIONS)}")
        self.operation = operation
        super().__init__(name=options.pop("name", operation), **options)

    def run(self, x: Any, y: Any = None) -> Any:  # ``Not`` takes ``x`` alone
        out = OPERATIONS[self.operation](x, y)
        return bool(out) if self.operation in _BOOLEAN else out


class Collection(Task):
    """Builds a list, tuple, set or dict from task results (made when such a value holds tasks)."""

    def __init__(self, kind: type, keys: list[Any] | None = None, **options: Any) -> None:
        self.kind = kind
        self.keys = keys
        super().__init__(name=options.pop("name", kind.__name__.capitalize()), **options)

    def run(self, **items: Any) -> Any:
        values = [items[k] for k in sorted(items, key=_position)]
        if self.kind is dict:
            return dict(zip(self.keys or [], values, strict=True))
        return self.kind(values)


class _Sequence(Collection):
    # Prefect 1's collection tasks: bound with positional inputs, passed as arg_1, arg_2, ...
    kind: type = list

    def __init__(self, **options: Any) -> None:
        super().__init__(type(self).kind, **options)

    def bind(
        self, *args: Any, mapped: bool = False, upstream_tasks: Any = None, flow: Any = None, **kwargs: Any
    ) -> Task:
        kwargs.update({f"arg_{i}": value for i, value in enumerate(args, 1)})
        return self._bind((), kwargs, mapped, upstream_tasks, flow)


class List(_Sequence):
    """A task returning the list of its inputs: ``List().bind(a, b)`` (what a list of tasks becomes)."""

    kind = list


class Tuple(_Sequence):
    """A task returning the tuple of its inputs: ``Tuple().bind(a, b)``."""

    kind = tuple


class Set(_Sequence):
    """A task returning the set of its inputs: ``Set().bind(a, b)``."""

    kind = set


class Dict(Task):
    """A task returning ``dict(zip(keys, values))``: ``Dict().bind(keys=[...], values=[...])``."""

    def run(self, keys: Any, values: Any) -> dict[Any, Any]:
        keys, values = list(keys), list(values)
        if len(keys) != len(values):
            raise ValueError(f"Task {self.name!r}: {len(keys)} keys but {len(values)} values; give one value per key")
        return dict(zip(keys, values, strict=True))


def _position(key: str) -> int:
    return int(key.rpartition("_")[2])


class unmapped:  # noqa: N801 - reads as a function at the call site
    """Pass a value or task whole to every child of a ``map`` instead of mapping over it."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    @property
    def annotations(self) -> dict[str, bool]:
        """What the wrappers around a value say, outermost last (Prefect 1's edge annotations)."""
        return {**_annotations(self.value), **{"mapped": False}}


class mapped:  # noqa: N801
    """Map over this argument in a plain call: ``add(x=mapped(numbers), y=1)`` maps over ``x`` only.

    The other arguments and ``upstream_tasks`` are passed whole, as if wrapped in ``unmapped``.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    @property
    def annotations(self) -> dict[str, bool]:
        """What the wrappers around a value say, outermost last (Prefect 1's edge annotations)."""
        return {**_annotations(self.value), **{"mapped": True}}


class flatten:  # noqa: N801
    """Map over the items of each item: ``flatten([[1, 2], [3]])`` maps over 1, 2, 3."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    @property
    def annotations(self) -> dict[str, bool]:
        """What the wrappers around a value say, outermost last (Prefect 1's edge annotations)."""
        return {**_annotations(self.value), **{"flattened": True}}


def _annotations(value: Any) -> dict[str, bool]:
    return value.annotations if isinstance(value, (unmapped, mapped, flatten)) else {}


def _task_of(value: Any, flow: Flow) -> Task | None:
    """The task behind ``value``: itself if a task, a ``Collection`` if it holds tasks, else ``None``."""
    if isinstance(value, Task):
        return value
    if isinstance(value, (list, tuple, set, dict)) and _holds_task(value):
        if isinstance(value, dict):
            collection: Collection = Collection(dict, keys=list(value.keys()))
            items = list(value.values())
        else:
            kind = _SEQUENCES.get(type(value))
            collection = kind() if kind is not None else Collection(type(value))
            items = list(value)
        # The collection is new, so its inputs go in as those of a new task: each edge
        # directly, without add_edge's checks for a task that may already have inputs (half of
        # building a 10,000-task fan-in); _add_collection leaves what it cannot take (an item
        # not in the flow yet, a nested list) to set_dependencies.
        unused = _flow_ctx.get().get(UNUSED_TASKS_KEY)
        if unused:
            unused.discard(collection)
        flow._add_collection(collection, _arg_keys(len(items)), items)
        collection.auto_generated = True
        return collection
    return None


_ARG_KEYS: list[str] = []


def _arg_keys(n: int) -> list[str]:
    """``["arg_1", ..., "arg_n"]``, the input names of a collection task (made once, shared)."""
    if len(_ARG_KEYS) < n:
        _ARG_KEYS.extend(f"arg_{i}" for i in range(len(_ARG_KEYS) + 1, n + 1))
    return _ARG_KEYS[:n]


def as_task(value: Any, flow: Flow | None = None) -> Task:
    """``value`` as a task (Prefect 1's ``prefect.utilities.tasks.as_task``).

    A task is returned as it is; ``unmapped``/``mapped``/``flatten`` are unwrapped; a list,
    tuple, set or dict holding tasks (at any depth) becomes a task that gathers them, added
    to ``flow`` (or the flow of the surrounding ``with Flow(...)`` block); any other value
    becomes a ``Constant`` (nested collections of plain values included). Tasks made here
    have ``auto_generated`` set::

        with Flow("f") as flow:
            pair = as_task([inc(1), 2])   # a List task: [2, 2] when the flow runs
            four = as_task(4)             # Constant(4), named "4"
    """
    while isinstance(value, (unmapped, mapped, flatten)):
        value = value.value
    if isinstance(value, Task):
        return value
    if isinstance(value, (list, tuple, set, dict)) and _holds_task(value):
        if flow is None:
            stack = _active_flows.get()
            if not stack:
                raise NoActiveFlowError(
                    "as_task(): a collection holding tasks becomes a task of a flow; call it inside "
                    "`with Flow(...)` or pass flow="
                )
            flow = stack[-1]
        task = _task_of(value, flow)
        assert task is not None  # it holds a task
        return task
    text = repr(value)
    constant = Constant(value, name=text if len(text) <= 8 else None)
    constant.auto_generated = True
    return constant


@contextlib.contextmanager
def tags(*names: str) -> Iterator[None]:
    """Tag every task made in the block (Prefect 1's ``prefect.utilities.tasks.tags``).

    Blocks nest and add to the tags of the blocks around them and to a task's own::

        with tags("io", "nightly"):
            load = Load()            # tags {"io", "nightly"}
            save = Save(tags=["s3"]) # tags {"io", "nightly", "s3"}
    """
    from plait.context import local

    with local(tags=set(_flow_ctx.get().get("tags") or ()) | set(names)):
        yield


def defaults_from_attrs(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Fill ``run()`` arguments the caller left out from the task's attributes of the same name.

    Prefect 1's ``defaults_from_attrs``: a task class takes its settings at construction and
    lets each call override them. An argument given at run time always wins, ``None``
    included::

        class Greet(Task):
            def __init__(self, greeting="hello", **kwargs):
                self.greeting = greeting
                super().__init__(**kwargs)

            @defaults_from_attrs("greeting")
            def run(self, name, greeting=None):
                return f"{greeting} {name}"

    ``Greet(greeting="hi").run("ada")`` is ``"hi ada"``; ``.run("ada", greeting="yo")`` is
    ``"yo ada"``. An attribute the task does not have raises ``AttributeError`` at run time.
    """

    def decorate(run: Callable[..., Any]) -> Callable[..., Any]:
        params = list(inspect.signature(run).parameters.values())[1:]  # after self
        positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        unknown = [n for n in names if n not in {p.name for p in params}]
        if unknown and not any(p.kind is p.VAR_KEYWORD for p in params):
            missing = ", ".join(map(repr, unknown))
            raise TypeError(f"defaults_from_attrs: {run.__qualname__}() has no argument {missing}")

        @functools.wraps(run)
        def with_defaults(self: Any, *args: Any, **kwargs: Any) -> Any:
            given = positional[: len(args)]
            for name in names:
                if name not in kwargs and name not in given:
                    kwargs[name] = getattr(self, name)
            return run(self, *args, **kwargs)

        return with_defaults

    return decorate


_SEQUENCES: dict[type, type[_Sequence]] = {list: List, tuple: Tuple, set: Set}


def _holds_task(value: Any) -> bool:
    items = value.values() if isinstance(value, dict) else value
    return any(isinstance(v, Task) or (isinstance(v, (list, tuple, set, dict)) and _holds_task(v)) for v in items)


class _Binder:
    """What binding a call to ``run()`` needs from its signature, worked out once per ``run``.

    ``bind`` matches positional and keyword arguments with dict operations instead of
    ``inspect.Signature.bind_partial`` (which costs several microseconds a call); it returns
    ``None`` for anything it does not handle (an error to explain, positional-only
    parameters), and the caller then asks ``inspect``.
    """

    __slots__ = ("accepted", "index", "positional", "quick", "required", "required_names", "signature", "var_keyword")

    def __init__(self, signature: inspect.Signature) -> None:
        params = list(signature.parameters.values())
        by_keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        self.signature = signature
        self.positional = tuple(p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD)
        named = [p.name for p in params if p.kind in by_keyword]
        self.index = {name: i for i, name in enumerate(named)}
        self.var_keyword = next((p.name for p in params if p.kind is inspect.Parameter.VAR_KEYWORD), None)
        self.quick = all(
            p.kind not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL) for p in params
        )
        #: names ``run()`` takes by keyword, or ``None`` when it takes ``**kwargs``
        self.accepted: frozenset[str] | None = frozenset(named) if self.var_keyword is None else None
        #: names of the parameters without a default
        self.required = [p.name for p in params if p.default is inspect.Parameter.empty and p.kind in by_keyword]
        self.required_names = frozenset(self.required)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
        """``{parameter: value}`` in ``run()``'s order (``**kwargs`` last), or ``None`` (ask inspect)."""
        if not self.quick or len(args) > len(self.positional):
            return None
        if not args:
            callargs = {}
        elif len(args) == 1:  # the usual call: one input (zip with a keyword costs more than the rest)
            callargs = {self.positional[0]: args[0]}
        else:
            callargs = dict(zip(self.positional, args, strict=False))
        if not kwargs:
            return callargs
        index = self.index
        extra: dict[str, Any] | None = None
        last, ordered = len(args) - 1, True
        for key, value in kwargs.items():
            i = index.get(key)
            if i is None:
                if self.var_keyword is None:
                    return None  # an unknown argument: inspect words the error
                if extra is None:
                    extra = {}
                extra[key] = value
            elif key in callargs:
                return None  # given twice
            else:
                if i < last:
                    ordered = False
                last = i
                callargs[key] = value
        if not ordered:
            callargs = dict(sorted(callargs.items(), key=lambda item: index[item[0]]))
        if extra:
            callargs.update(extra)
        return callargs


# Binders by run function (``@task``) or task class; weak, so tasks made on the fly (lambdas
# in a loop) do not pile up. A task also keeps ``(run, binder)`` as ``_binding``, which its
# copies inherit, so binding a copy is one dict lookup.
_binders: weakref.WeakKeyDictionary[Any, _Binder] = weakref.WeakKeyDictionary()


def _binder(task: Task) -> _Binder:
    """The binder of ``task.run`` (of ``task.signature()`` when a class overrides it, uncached)."""
    attrs = task.__dict__
    cls = type(task)
    run = attrs.get("run") or cls.run
    binding = attrs.get("_binding")
    if binding is not None and binding[0] is run:
        return binding[1]
    if cls.signature is not Task.signature:
        return _Binder(task.signature())
    try:
        binder = _binders.get(run)
    except TypeError:  # takes no weak reference: made again for each task
        binder = None
    if binder is None:
        binder = _Binder(inspect.signature(task.run))
        try:
            _binders[run] = binder
        except TypeError:
            pass
    attrs["_binding"] = (run, binder)
    return binder


_CHECKED_OPTIONS = frozenset(
    {"tags", "max_retries", "retry_delay", "timeout", "trigger", "state_handlers", "nout", "retry_on", "task_run_name"}
)


#: The context key of the set of tasks made in the innermost ``with Flow(...)`` block and not
#: added to a flow yet (``Flow.__exit__`` warns about those left: a task made and forgotten).
UNUSED_TASKS_KEY = "_unused_task_tracker"


def _checked_option(name: str, key: str, value: Any) -> Any:
    """An option's value in its stored form, or a clear error (for ``__init__`` and ``task_args``)."""
    if key == "tags":
        if isinstance(value, str):
            raise TypeError(f"Task {name!r}: tags must be a collection of strings, got the string {value!r}")
        return frozenset(value or ())
    if key == "max_retries":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"Task {name!r}: max_retries must be an integer >= 0, got {value!r}")
        return value
    if key == "retry_delay":
        return _as_timedelta(value, "retry_delay", name) or timedelta(0)
    if key == "timeout":
        timeout = _as_timedelta(value, "timeout", name)
        if timeout is not None and timeout <= timedelta(0):
            raise ValueError(f"Task {name!r}: timeout must be positive, got {value!r}")
        return timeout
    if key == "trigger":
        if value is not None and not callable(value):
            raise TypeError(f"Task {name!r}: trigger must be callable, got {value!r}")
        return value or _triggers.all_successful
    if key == "state_handlers":
        handlers = list(value or ())
        for handler in handlers:
            if not callable(handler):
                raise TypeError(f"Task {name!r}: state handler {handler!r} is not callable")
        return handlers
    if key == "retry_on":
        if value is None:
            return None
        classes = tuple(value) if isinstance(value, (list, tuple, set, frozenset)) else (value,)
        for cls in classes:
            if not (isinstance(cls, type) and issubclass(cls, BaseException)):
                got = f"the class {cls.__name__}" if isinstance(cls, type) else f"an instance of {type(cls).__name__}"
                raise TypeError(
                    f"Task {name!r}: retry_on must be exception classes: each item must be an exception type "
                    f"but got {got} ({cls!r})"
                )
        return classes
    if key == "task_run_name":
        if value is not None and not isinstance(value, str) and not callable(value):
            raise TypeError(f"Task {name!r}: task_run_name must be a template string or a function, got {value!r}")
        return value
    if key == "nout":
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"Task {name!r}: nout must be a positive integer, got {value!r}")
        return value
    return value


def _as_timedelta(value: timedelta | float | int | None, what: str, name: str) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"Task {name!r}: {what} cannot be negative, got {value!r}")
        return timedelta(seconds=value)
    raise TypeError(f"Task {name!r}: {what} must be seconds or a timedelta, got {value!r}")


def _lookup(module: str | None, qualname: str, import_: bool = False) -> Any:
    import sys

    if not module or "<locals>" in qualname:
        return None
    # import_module, not sys.modules: another thread may be importing the module right now
    # (two task runs unpickled at once on a worker), and only import_module waits for it.
    mod = importlib.import_module(module) if import_ else sys.modules.get(module)
    obj: Any = mod
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _saving_whole_flow() -> bool:
    from plait.flow import _whole_pickle

    return _whole_pickle.get()


def _callable_name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _jsonable(value: Any) -> Any:
    import json

    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def __getattr__(name: str) -> Any:
    # ShellTask lives in plait.shell, imported only when asked for (it pulls in subprocess work).
    if name == "ShellTask":
        from plait.shell import ShellTask

        return ShellTask
    raise AttributeError(f"module 'plait.tasks' has no attribute {name!r}")
