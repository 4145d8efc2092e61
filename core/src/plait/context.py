"""The run context: what a running task can know about its run.

``plait.context`` is this module; read keys as attributes or with ``get``::

    import plait

    @plait.task
    def report():
        plait.context.logger.info("running %s for %s", plait.context.task_name, plait.context.today)
        return plait.context.parameters["n"]

Flow-level keys: ``flow_name``, ``flow_run_id``, ``scheduled_start_time`` (aware ``datetime``),
``date`` (a ``datetime``: the scheduled start, as in Prefect 1), ``today``, ``yesterday``,
``tomorrow`` (``YYYY-MM-DD`` of ``date``, plus ``*_nodash`` forms), ``parameters``, and anything
passed as ``flow.run(context={...})``. A ``date`` given in the context (a datetime, or ISO
text, which is parsed) moves ``today``, ``yesterday`` and ``tomorrow`` with it.
Task-level keys: ``task_name``, ``task_full_name`` (``name[map_index]``), ``task_run_id``,
``task_tags``, ``map_index`` (``None`` unless mapped), ``task_run_count`` (1 on the first
attempt), ``task_slug``, ``task_loop_count`` (1, then 2, 3, ... after each ``signals.LOOP``)
and ``task_loop_result`` (the ``result`` of the last ``LOOP``; ``get("task_loop_result",
start)`` gives ``start`` before the first loop). ``resume`` is ``True`` in a task run that
``flow.run(resume=[...])`` lets through. ``logger`` is the run-aware logger.

The context lives in ``contextvars``, so each thread and each asyncio task sees its own run.

As in Prefect 1, ``plait.context`` is also callable: ``with plait.context(key=value):`` (or
``plait.context({"key": value})``) sets keys for the block, and a flow run started inside the
block sees them (``flow.run(context=...)`` wins over them). ``plait.context["key"]``,
``"key" in plait.context``, ``plait.context.key = value`` (or ``["key"] = value``), ``del
plait.context["key"]``, ``update(...)``, ``setdefault(key, default)`` and ``copy()`` work too;
a key set that way lasts until the end of the enclosing ``with plait.context(...)`` (or ``with
Flow(...)``) block, or of the task run that set it. ``with Flow(...)`` sets ``flow`` to the
flow being built.
"""

from __future__ import annotations

import contextlib
import sys
import types
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from datetime import date as _date  # not `date`: plait.context.date is the context key
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plait.tasks import Task

__all__ = ["copy", "get", "items", "keys", "local", "setdefault", "to_dict", "update"]

_MISSING = object()

#: The flow-level context: one dict per flow run, shared (not copied) by its task runs.
_flow_ctx: ContextVar[dict[str, Any]] = ContextVar("plait_flow_context", default={})  # noqa: B039
#: The running task, if any.
_task_ctx: ContextVar[TaskRunInfo | None] = ContextVar("plait_task_context", default=None)


class TaskRunInfo:
    """What the context knows of the running task; one small object per task run."""

    __slots__ = ("_run_id", "loop_count", "loop_result", "map_index", "run_count", "task", "will_retry")

    def __init__(self, task: Task, map_index: int | None, run_count: int) -> None:
        self.task = task
        self.map_index = map_index
        self.run_count = run_count
        self._run_id: str | None = None
        self.loop_count = 1
        self.loop_result: Any = None
        #: True while the task's state handlers see a ``Failed`` that a ``Retrying`` follows.
        self.will_retry = False

    @property
    def run_id(self) -> str:
        # A uuid costs more than a whole task run, so it is made only when somebody asks.
        if self._run_id is None:
            self._run_id = str(uuid.uuid4())
        return self._run_id

    @property
    def full_name(self) -> str:
        name = self.task.name
        return name if self.map_index is None else f"{name}[{self.map_index}]"


_TASK_KEYS = {
    "task_name": lambda t: t.task.name,
    "task_full_name": lambda t: t.full_name,
    "task_slug": lambda t: t.task.slug,
    "task_tags": lambda t: t.task.tags,
    "task_run_id": lambda t: t.run_id,
    "map_index": lambda t: t.map_index,
    "task_run_count": lambda t: t.run_count,
    # before any LOOP: the iteration flow.run(context={"task_loop_count": n}) starts at, or 1
    "task_loop_count": lambda t: t.loop_count if t.loop_count > 1 else _flow_ctx.get().get("task_loop_count", 1),
    "task_loop_result": lambda t: t.loop_result,
    "task_will_retry": lambda t: t.will_retry,
}


def get(key: str, default: Any = None) -> Any:
    """The value of ``key`` in the current run's context, or ``default``."""
    if key == "logger":
        from plait.logging import run_logger

        return run_logger
    info = _task_ctx.get()
    if info is not None:
        getter = _TASK_KEYS.get(key)
        if getter is not None:
            if key == "task_loop_result" and info.loop_count == 1 and default is not _MISSING:
                return default  # no LOOP yet: the caller's starting value
            return getter(info)
    return _flow_ctx.get().get(key, default)


def to_dict() -> dict[str, Any]:
    """A snapshot of every key of the current context (without the logger)."""
    data = dict(_flow_ctx.get())
    info = _task_ctx.get()
    if info is not None:
        data.update({key: getter(info) for key, getter in _TASK_KEYS.items()})
    return data


def copy() -> dict[str, Any]:
    """The same as ``to_dict()``: a snapshot of the current context (Prefect 1's ``context.copy()``)."""
    return to_dict()


def keys() -> list[str]:
    """The keys of the current context."""
    return list(to_dict())


def items() -> list[tuple[str, Any]]:
    """``(key, value)`` pairs of the current context."""
    return list(to_dict().items())


def update(*dicts: dict[str, Any], **values: Any) -> None:
    """Set several keys at once (until the end of the enclosing block or task run, see the module doc)."""
    merged: dict[str, Any] = {}
    for extra in dicts:
        merged.update(extra)
    merged.update(values)
    _assign(merged)


def setdefault(key: str, default: Any = None) -> Any:
    """``key``'s value, after setting it to ``default`` if it had none."""
    value = get(key, _MISSING)
    if value is _MISSING:
        _assign({key: default})
        return default
    return value


def _assign(values: dict[str, Any]) -> None:
    # A new dict for the current scope: the dict a flow run shares with its task runs is never
    # changed in place, so a key set in one task run does not leak into another.
    merged = {**_flow_ctx.get(), **values}
    if "scheduled_start_time" in values:
        merged.update(date_keys(values["scheduled_start_time"], overrides=values))
    _flow_ctx.set(merged)


def _remove(key: str) -> None:
    current = _flow_ctx.get()
    if key not in current:
        raise KeyError(key)
    _flow_ctx.set({k: v for k, v in current.items() if k != key})


@contextlib.contextmanager
def local(*dicts: dict[str, Any], **values: Any) -> Iterator[None]:
    """Set context keys for the ``with`` block (the values are layered over the current ones).

    ```python
    with plait.context.local(today="2026-01-31"):
        my_task.run()
    with plait.context(today="2026-01-31"):   # the same, Prefect 1's spelling
        flow.run()                            # the run's tasks see today == "2026-01-31"
    ```
    """
    for extra in reversed(dicts):
        if not isinstance(extra, dict):
            raise TypeError(f"plait.context() takes dicts and keywords, got {type(extra).__name__}: {extra!r}")
        values = {**extra, **values}
    merged = {**_flow_ctx.get(), **values}
    if "scheduled_start_time" in values:
        merged.update(date_keys(values["scheduled_start_time"], overrides=values))
    token = _flow_ctx.set(merged)
    try:
        yield
    finally:
        _flow_ctx.reset(token)


def flow_context(
    flow_name: str,
    parameters: dict[str, Any],
    overrides: dict[str, Any] | None = None,
    flow_run_id: str | None = None,
) -> dict[str, Any]:
    """Build the flow-level context of a new flow run (used by the runner)."""
    overrides = overrides or {}
    start = overrides.get("scheduled_start_time") or datetime.now(UTC)
    ctx: dict[str, Any] = {
        "flow_name": flow_name,
        "flow_run_id": flow_run_id or str(uuid.uuid4()),
        "scheduled_start_time": start,
        "parameters": parameters,
    }
    dates = date_keys(start, overrides)
    ctx.update(dates)
    ctx.update(overrides)
    ctx["date"] = dates["date"]  # a ``date`` given as text is read as a datetime
    return ctx


def date_keys(start: datetime, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """``date`` and the ``today``/``yesterday``/``tomorrow`` strings (and ``_nodash`` forms).

    As in Prefect 1, ``date`` is a datetime: the scheduled start time, or the ``date`` given in
    ``overrides`` (a datetime, a ``date``, or ISO text, which is parsed); the day strings are
    that date's. A ``date`` text that does not parse is kept as it is, with a warning, and the
    day strings come from ``start``. Day strings given in ``overrides`` win.
    """
    if not isinstance(start, datetime):
        raise TypeError(f"scheduled_start_time must be a datetime, got {type(start).__name__}: {start!r}")
    base: Any = start
    given = overrides.get("date", _MISSING) if overrides else _MISSING
    if given is not _MISSING:
        base = _as_date(given, start)
    day = base if isinstance(base, (datetime, _date)) else start
    keys: dict[str, Any] = {
        "date": base,
        "today": day.strftime("%Y-%m-%d"),
        "yesterday": (day - timedelta(days=1)).strftime("%Y-%m-%d"),
        "tomorrow": (day + timedelta(days=1)).strftime("%Y-%m-%d"),
    }
    for name in ("today", "yesterday", "tomorrow"):
        keys[f"{name}_nodash"] = keys[name].replace("-", "")
    if overrides:
        keys.update({k: v for k, v in overrides.items() if k in keys and k != "date"})
    return keys


def _as_date(value: Any, start: datetime) -> Any:
    """A ``date`` context value as a datetime (or date) if it is one or reads as one, else as given."""
    if isinstance(value, (datetime, _date)):
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            # text without a zone is read in the scheduled start's zone
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=start.tzinfo)
    import logging

    logging.getLogger("plait").warning(
        "Context key 'date' (%r) is not a datetime nor ISO 8601 text; it is kept as given, and "
        "today, yesterday and tomorrow come from scheduled_start_time (%s)",
        value,
        start.isoformat(),
    )
    return value


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    value = get(name, _MISSING)
    if value is _MISSING:
        raise AttributeError(f"plait.context has no key {name!r} (is a flow running?)")
    return value


class _ContextModule(types.ModuleType):
    """``plait.context`` itself: a module that can also be called and indexed (Prefect 1's context)."""

    def __call__(self, *dicts: dict[str, Any], **values: Any) -> contextlib.AbstractContextManager[None]:
        return local(*dicts, **values)

    def __getitem__(self, key: str) -> Any:
        value = get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and get(key, _MISSING) is not _MISSING

    def __setitem__(self, key: str, value: Any) -> None:
        _assign({key: value})

    def __delitem__(self, key: str) -> None:
        _remove(key)

    def __setattr__(self, name: str, value: Any) -> None:
        # the module's own names (and private ones) stay module attributes: monkeypatching works
        if name.startswith("_") or name in self.__dict__:
            super().__setattr__(name, value)
        else:
            _assign({name: value})

    def __delattr__(self, name: str) -> None:
        if name.startswith("_") or name in self.__dict__:
            super().__delattr__(name)
        else:
            try:
                _remove(name)
            except KeyError:
                raise AttributeError(name) from None


sys.modules[__name__].__class__ = _ContextModule
