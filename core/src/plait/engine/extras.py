"""Opt-in steps of a task run: targets, caches, checkpoints, resuming and run names.

The runner builds one ``TaskExtras`` per task per flow run, and only for tasks that use one
of these features; every other task gets ``None`` and its run pays nothing for them.
``run_task`` calls ``before()`` ahead of the run (a target that exists, or a valid cache
entry, ends the run as ``Cached``) and ``after()`` on success (write the checkpoint or
target, store the cache entry; a failure to write fails the task with the location).
"""

from __future__ import annotations

import pickle
import re
import threading
import traceback
from typing import TYPE_CHECKING, Any

from plait import cache_validators
from plait.context import _task_ctx
from plait.logging import get_logger
from plait.results import LocalResult, Result, format_location
from plait.states import Cached, Failed, State, Success

if TYPE_CHECKING:
    from plait.flow import Flow
    from plait.tasks import Task

__all__ = ["TaskExtras", "clear_memory_cache", "extras_for"]

logger = get_logger("engine")

#: Entries kept per cache key and map index (the newest first).
MAX_CACHE_ENTRIES = 32

_memory: dict[tuple[str, int | None], list[Cached]] = {}
_memory_lock = threading.Lock()


def clear_memory_cache() -> None:
    """Forget every in-memory cache entry of this process (stored results are kept)."""
    with _memory_lock:
        _memory.clear()


def uses_extras(task: Task) -> bool:
    """Whether ``task`` opted into any step handled here (cheap, per task per run)."""
    return bool(
        task.checkpoint
        or task.result is not None
        or task.target is not None
        or task.cache_for is not None
        or task.task_run_name is not None
    )


def extras_for(task: Task, flow: Flow, resumed: bool) -> TaskExtras | None:
    """The extras of ``task`` in a run of ``flow``, or ``None`` when it uses none."""
    result: Result | None = task.result if task.result is not None else getattr(flow, "result", None)
    checkpoint = task.checkpoint
    if checkpoint is None:
        checkpoint = result is not None and not _plumbing(task)
    run_name = task.task_run_name
    if not (checkpoint or task.target is not None or task.cache_for is not None or resumed or run_name is not None):
        return None
    if result is None and (checkpoint or task.target is not None):
        result = LocalResult()
    return TaskExtras(task, flow, result, bool(checkpoint), resumed)


class TaskExtras:
    """The opt-in steps of one task in one flow run (see the module docstring)."""

    __slots__ = ("cache_for", "cache_key", "checkpoint", "result", "resumed", "run_name", "target", "validator")

    def __init__(self, task: Task, flow: Flow, result: Result | None, checkpoint: bool, resumed: bool) -> None:
        self.result = result
        self.checkpoint = checkpoint
        self.target = task.target
        self.cache_for = task.cache_for
        self.validator = task.cache_validator or cache_validators.duration_only
        self.cache_key = task.cache_key or f"{flow.name}/{task.slug}"
        self.resumed = resumed
        self.run_name = task.task_run_name

    def flow_context(self, flow_ctx: dict[str, Any]) -> dict[str, Any]:
        """The flow context the task run sees: with ``resume=True`` when it is being resumed."""
        if self.resumed:
            return {**flow_ctx, "resume": True}
        return flow_ctx

    def task_run_name(self, task: Task, kwargs: dict[str, Any]) -> str | State:
        """This run's name from ``task_run_name`` (call inside the task's context), or ``Failed``."""
        from plait import context

        template = self.run_name
        values = {**(context.get("parameters") or {}), **context.to_dict(), **kwargs}
        try:
            name = template.format(**values) if isinstance(template, str) else template(**values)
        except KeyError as exc:
            return Failed(
                f"Task {task.name!r}: task_run_name {template!r} uses {exc.args[0]!r}, which is neither an "
                f"input nor a context key; inputs: {', '.join(sorted(kwargs)) or '(none)'}",
                exc,
                traceback.format_exc(),
            )
        except Exception as exc:
            return Failed(f"Task {task.name!r}: task_run_name {template!r} raised {exc!r}", exc, traceback.format_exc())
        return str(name)

    # -- before the run -----------------------------------------------------------------------

    def before(
        self, task: Task, kwargs: dict[str, Any], map_index: int | None, flow_ctx: dict[str, Any]
    ) -> State | None:
        """A ``Cached`` state when a target or a cache entry stands in for the run, else ``None``."""
        if self.target is not None:
            result = self.result
            assert result is not None
            try:
                location = format_location(self.target, _location_context(task, kwargs, map_index, flow_ctx))
                if result.location_exists(location):
                    value = result.read(location).value
                    where = result.uri(location)
                    return Cached(f"Result read from existing target {where}.", value, result_location=where)
            except Exception as exc:
                return Failed(f"Task {task.name!r}: could not check its target: {exc}", exc, traceback.format_exc())
        if self.cache_for is not None:
            parameters = flow_ctx.get("parameters") or {}
            for entry in self._entries(task, map_index, flow_ctx):
                try:
                    ok = self.validator(entry, kwargs, parameters)
                except Exception as exc:
                    name = getattr(self.validator, "__name__", repr(self.validator))
                    return Failed(
                        f"Cache validator {name!r} of task {task.name!r} raised {exc!r}", exc, traceback.format_exc()
                    )
                if ok:
                    return Cached(
                        "Result read from cache.",
                        entry.result,
                        cached_inputs=entry.cached_inputs,
                        cached_parameters=entry.cached_parameters,
                        cached_result_expiration=entry.cached_result_expiration,
                        result_location=entry.result_location,
                    )
        return None

    # -- after a successful run -----------------------------------------------------------------

    def after(
        self, task: Task, state: State, kwargs: dict[str, Any], map_index: int | None, flow_ctx: dict[str, Any]
    ) -> State:
        """Persist a successful result; a ``Failed`` state naming the location if that fails."""
        if type(state) is not Success:
            return state
        value = state.result
        result = self.result
        if result is not None and (self.checkpoint or self.target is not None):
            location = None
            try:
                ctx = _location_context(task, kwargs, map_index, flow_ctx)
                template = self.target if self.target is not None else result.location
                if template is None:
                    template = result.default_location()
                location = format_location(template, ctx, owner=f"Task {task.name!r} result")
                result.write_bytes(location, result.serializer.serialize(value))
                state.result_location = result.uri(location)  # states carry locations, never values
            except Exception as exc:
                where = result.uri(location) if location is not None else "its result location"
                return Failed(
                    f"Task {task.name!r} succeeded but its result could not be written to {where}: {exc}",
                    exc,
                    traceback.format_exc(),
                )
        if self.cache_for is not None:
            self._store(task, value, kwargs, map_index, flow_ctx)
        return state

    # -- the cache ------------------------------------------------------------------------------

    def _entries(self, task: Task, map_index: int | None, flow_ctx: dict[str, Any]) -> list[Cached]:
        key = (self.cache_key, map_index)
        with _memory_lock:
            entries = _memory.get(key)
            if entries is not None:
                return list(entries)
        if self.result is None:
            return []
        location = self._cache_location(map_index)
        try:
            if not self.result.location_exists(location):
                return []
            entries = pickle.loads(self.result.read_bytes(location))
        except Exception as exc:
            logger.warning(
                "Task %r: ignoring the unreadable cache at %s: %s", task.name, self.result.uri(location), exc
            )
            return []
        with _memory_lock:
            _memory.setdefault(key, entries)
        return list(entries)

    def _store(
        self, task: Task, value: Any, kwargs: dict[str, Any], map_index: int | None, flow_ctx: dict[str, Any]
    ) -> None:
        now = cache_validators.now()
        entry = Cached(
            "Result read from cache.",
            value,
            cached_inputs=dict(kwargs),
            cached_parameters=dict(flow_ctx.get("parameters") or {}),
            cached_result_expiration=now + self.cache_for,  # type: ignore[operator]
        )
        key = (self.cache_key, map_index)
        with _memory_lock:
            old = _memory.get(key) or []
            fresh = [e for e in old if e.cached_result_expiration is None or e.cached_result_expiration > now]
            entries = [entry, *fresh][:MAX_CACHE_ENTRIES]
            _memory[key] = entries
        if self.result is not None:
            location = self._cache_location(map_index)
            try:
                self.result.write_bytes(location, pickle.dumps(entries, protocol=pickle.HIGHEST_PROTOCOL))
            except Exception as exc:
                # The run succeeded and the memory cache holds the entry; only reuse across
                # processes is lost, so this is a warning and not a failure.
                logger.warning(
                    "Task %r: could not store its cache at %s: %s", task.name, self.result.uri(location), exc
                )

    def _cache_location(self, map_index: int | None) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.cache_key)[:80]
        import hashlib  # here, not at import: the first flow run of a process stays cheap

        digest = hashlib.sha1(self.cache_key.encode()).hexdigest()[:10]
        suffix = "" if map_index is None else f"-{map_index}"
        return f"plait-cache/{safe}-{digest}{suffix}.pkl"


def _location_context(
    task: Task, kwargs: dict[str, Any], map_index: int | None, flow_ctx: dict[str, Any]
) -> dict[str, Any]:
    ctx = dict(kwargs)
    ctx.update(flow_ctx)
    ctx["task_name"] = task.name
    ctx["task_slug"] = task.slug
    ctx["task_full_name"] = task.name if map_index is None else f"{task.name}[{map_index}]"
    ctx["task_tags"] = task.tags
    ctx["map_index"] = map_index
    ctx["map_suffix"] = "" if map_index is None else f"-{map_index}"
    info = _task_ctx.get()
    ctx["task_run_count"] = info.run_count if info is not None else 1
    return ctx


def _plumbing(task: Task) -> bool:
    """Tasks Plait adds to wire a flow, not worth a checkpoint of their own."""
    from plait.control_flow import CompareValue
    from plait.tasks import Collection, Constant, GetItem, Parameter

    return isinstance(task, (Parameter, Constant, GetItem, Collection, CompareValue))
