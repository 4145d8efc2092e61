"""Testing helpers for plugin authors, and a pytest plugin (entry point ``pytest11``).

With ``plait`` installed, every pytest session has these fixtures:

- ``plait_plugin``: the plugin under test. Override it in your ``conftest.py``::

      @pytest.fixture
      def plait_plugin():
          from plait_slack import plugin
          return plugin

- ``plait_hooks``: an isolated plugin manager with only the core's built-in plugin and
  ``plait_plugin`` registered, installed as the process's hooks for the test (so
  ``flow.run()`` calls only your plugin), in strict mode (your hook's exceptions re-raise);
- ``plait_run``: ``plait_run(flow, **run_kwargs)`` runs a flow and returns a ``RecordedRun``
  with every state change the hooks saw;
- ``plait_config``: ``plait_config(toml_text, **env)`` makes Plait read that config (and see
  those environment variables) for the rest of the test;
- ``recording_server`` (a started ``RecordingServer``) and ``refused_url`` (a URL on
  127.0.0.1 where nothing listens), for plugins that talk HTTP;
- ``ctrl_c_reaches_subprocesses``: for a test that sends ``SIGINT`` (Ctrl-C) to a process it
  started (see ``sigint_not_ignored``).

``run_task(task, inputs=..., upstream_states=...)`` runs one task the way a flow run would and
returns its task-run state, to unit-test a task's state behaviour without building a flow;
``TaskRunner(task).run(state=..., upstream_states=...)`` is the same under Prefect 1's name and
arguments. ``raise_on_exception()`` lets a task's exception out of a run, for debugging.

And plain functions, usable without pytest: ``isolated_hooks(*plugins)``,
``using_plugins(*plugins)``, ``run_flow(flow)``, ``assert_plugin_conforms(plugin)``,
``run_markdown_examples(path)`` (your README's examples as a test), and ``RecordingServer``
(a real HTTP server on 127.0.0.1 that records requests; fixture ``recording_server``)::

    from plait.testing import assert_plugin_conforms, run_flow, using_plugins

    def test_alerts_on_failure(plait_run):
        run = plait_run(flow)
        assert ("fetch", "Running", "Failed") in run.task_changes()
"""

from __future__ import annotations

import glob
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from plait.flow import Flow
    from plait.hooks.manager import PlaitHooks
    from plait.states import State

__all__ = [
    "VOLATILE_HEADERS",
    "Answer",
    "PostgresServer",
    "PostgresUnavailable",
    "RecordedRequest",
    "RecordedRun",
    "RecordingServer",
    "StateChange",
    "TaskRunner",
    "assert_plugin_conforms",
    "find_postgres_program",
    "isolated_hooks",
    "postgres_server",
    "postgres_url",
    "raise_on_exception",
    "run_flow",
    "run_markdown_examples",
    "run_task",
    "sigint_not_ignored",
    "using_plugins",
]


@dataclass(frozen=True)
class StateChange:
    """One state change a hook saw: ``kind`` is ``"task"`` or ``"flow"``."""

    kind: str
    name: str
    map_index: int | None
    old: State
    new: State


@dataclass
class RecordedRun:
    """A flow run's final ``state`` and every ``changes`` the hooks saw, in order."""

    state: State
    changes: list[StateChange] = field(default_factory=list)

    def task_changes(self) -> list[tuple[str, str, str]]:
        """``(task full name, old state name, new state name)`` for each task state change."""
        return [
            (c.name if c.map_index is None else f"{c.name}[{c.map_index}]", c.old.name, c.new.name)
            for c in self.changes
            if c.kind == "task"
        ]

    def flow_changes(self) -> list[tuple[str, str]]:
        """``(old state name, new state name)`` for each flow state change."""
        return [(c.old.name, c.new.name) for c in self.changes if c.kind == "flow"]


def isolated_hooks(*plugins: object, strict: bool = True, builtins: bool = True) -> PlaitHooks:
    """A ``PlaitHooks`` with only the core's built-in plugin and ``plugins`` registered.

    Raises:
        AssertionError: a plugin does not conform to the hook specs (the message says why).
    """
    from plait.hooks.manager import PlaitHooks, PlaitPluginManager

    pm = PlaitPluginManager()
    if builtins:
        pm.load_builtins()
    for plugin in plugins:
        record = pm.add_plugin(plugin, _plugin_name(plugin))
        if record.status != "loaded":
            raise AssertionError(f"Plugin {record.name!r} does not conform: {record.error}")
    return PlaitHooks(pm, strict=strict)


@contextmanager
def using_plugins(*plugins: object, strict: bool = True) -> Iterator[PlaitHooks]:
    """Inside the block, flow runs, executors, commands and log handlers see only ``plugins``.

    Plait's logging is set up again with the isolated plugins' log handlers on entry, and
    their handlers are removed on exit.
    """
    from plait import logging as plait_logging
    from plait.hooks.manager import use_hooks

    hooks = isolated_hooks(*plugins, strict=strict)
    with use_hooks(hooks):
        plait_logging.configure_logging(force=True)
        try:
            yield hooks
        finally:
            _remove_plugin_handlers()
            plait_logging._configured = False


def run_flow(flow: Flow, **run_kwargs: Any) -> RecordedRun:
    """Run ``flow`` (``flow.run(**run_kwargs)``) and record every state change the hooks see.

    The recorder is a plugin registered next to the current ones for this run only, so it
    sees what every ``plait_task_state_changed`` / ``plait_flow_state_changed`` sees.
    """
    from plait.hooks.manager import get_hooks
    from plait.hooks.markers import hookimpl

    changes: list[StateChange] = []

    class Recorder:
        @hookimpl(trylast=True)
        def plait_task_state_changed(self, task: Any, old_state: Any, new_state: Any, context: Any) -> None:
            changes.append(StateChange("task", task.name, context.map_index, old_state, new_state))

        @hookimpl(trylast=True)
        def plait_flow_state_changed(self, flow: Any, old_state: Any, new_state: Any) -> None:
            changes.append(StateChange("flow", flow.name, None, old_state, new_state))

    pm = get_hooks().pm
    recorder = Recorder()
    pm.register(recorder, name="plait.testing.recorder")
    try:
        state = flow.run(**run_kwargs)
    finally:
        pm.unregister(recorder)
    return RecordedRun(state, changes)


def run_task(
    task: Any,
    inputs: dict[str, Any] | None = None,
    upstream_states: Any = None,
    context: dict[str, Any] | None = None,
    state: State | None = None,
    run_count: int = 1,
    map_index: int | None = None,
) -> State:
    """Run one task as a flow run would, and return its task-run state.

    ```python
    from plait.states import Failed, Success
    from plait.testing import run_task

    state = run_task(load, inputs={"rows": [1, 2]})
    assert state.is_successful() and state.result == 2
    state = run_task(load, upstream_states={"extract": Failed("boom")})
    assert state.name == "TriggerFailed"
    ```

    Args:
        task: the task (bound into a flow or not).
        inputs: its ``run()`` arguments.
        upstream_states: the states its trigger sees: a list, or a dict keyed by anything
            (tasks, names, ``Edge``s, as in Prefect 1's ``TaskRunner.run``); a key that is an
            ``Edge`` with a ``key`` also passes that state's result as that input.
        context: run-context keys (``today``, ``parameters``...).
        state: the state the run starts from (default ``Pending()``; a ``Retrying`` state to
            test a retry).
        run_count, map_index: as ``plait.context.task_run_count`` and ``map_index`` see them.

    The task's state handlers, trigger, retries (a failure with retries left ends
    ``Retrying``), timeout, signals, targets, caches and ``task_run_name`` all apply; plugins'
    hooks are not called.
    """
    from plait.engine.runner import FlowRunner
    from plait.flow import Flow

    notify = FlowRunner(Flow(f"run_task-{task.name}"), plugins=False)._task_notifier(task)
    return _run_one(task, upstream_states, context, state, run_count, map_index, notify, False, inputs)


@contextmanager
def raise_on_exception() -> Iterator[None]:
    """Let exceptions out, for debugging (Prefect 1's ``prefect.utilities.debug.raise_on_exception``).

    Inside the block, an exception a task raises (not a signal), or that a task's or flow's
    state handler raises, propagates out of ``flow.run()``, ``FlowRunner.run()`` or
    ``TaskRunner.run()`` instead of ending the run ``Failed``, so a debugger or pytest sees it
    where it happened::

        with raise_on_exception():
            flow.run()      # ZeroDivisionError, with the task's own traceback

    It sets the context key ``raise_on_exception``.
    """
    from plait import context

    with context.local(raise_on_exception=True):
        yield


class TaskRunner:
    """Run one task outside a flow, from a given state (Prefect 1's ``TaskRunner``).

    ```python
    from plait.flow import Edge
    from plait.states import Retrying, Success
    from plait.testing import TaskRunner

    x = Edge(one, add, key="x")
    state = TaskRunner(add).run(upstream_states={x: Success(result=1)}, context={"today": "2026-01-31"})
    state = TaskRunner(flaky).run(state=Retrying(run_count=1))   # attempt 2
    ```

    ``run(state=None, upstream_states=None, context=None, is_mapped_parent=False)`` returns the
    task-run state:

    - ``state`` is where the run starts (default ``Pending()``). A finished or ``Running`` state
      is returned as it is (the task does not run again); so is a ``Scheduled``, ``Retrying``
      or ``Paused`` state whose ``start_time`` is still to come. From ``Retrying`` the run is
      attempt ``run_count + 1``; from ``Resume``, or a ``Paused`` state whose time has come, it
      runs with ``plait.context.resume`` set (a ``manual_only`` trigger or ``pause_task()`` lets
      it through).
    - ``upstream_states``: ``{edge: state}`` (or a list of states); the trigger sees them, a
      skipped one skips the task (``skip_on_upstream_skip``), and an ``Edge`` with a ``key``
      passes its state's result as that input.
    - ``context``: keys for the run's context, over those of ``with plait.context(...)``
      blocks around the call (``task_run_count``, ``resume``, ``today``...).
    - ``is_mapped_parent=True``: the task is mapped over the results of the ``mapped=True``
      edges; one child run per item, and the answer is a ``Mapped`` state.

    ``state_handlers`` are called ``handler(runner, old_state, new_state)`` after the task's
    own state handlers, at each change; like those, they may return a new state. The
    task's trigger, retries, timeout, signals, ``LOOP``, ``log_stdout``, targets, caches and
    ``task_run_name`` all apply; plugins' hooks are not called (``run_task`` is the same thing as
    a function).
    """

    def __init__(self, task: Any, state_handlers: Any = None) -> None:
        from plait import context

        self.task = task
        self.state_handlers = list(state_handlers or [])
        #: the context when the runner was made; ``run()`` adds the current one and its ``context``.
        self.context: dict[str, Any] = context.to_dict()

    @property
    def logger(self) -> logging.Logger:
        return logging.getLogger("plait.TaskRunner")

    def __repr__(self) -> str:
        return f"<TaskRunner: {self.task.name}>"

    def run(
        self,
        state: State | None = None,
        upstream_states: Any = None,
        context: dict[str, Any] | None = None,
        is_mapped_parent: bool = False,
    ) -> State:
        from datetime import UTC, datetime

        from plait import context as plait_context
        from plait.states import Paused, Pending, Resume, Retrying, Running, Scheduled

        if state is None:
            state = Pending()
        if state.is_finished() or isinstance(state, Running):
            return state
        ctx = {**self.context, **plait_context.to_dict(), **(context or {})}
        start = getattr(state, "start_time", None)
        due = start is None or start <= datetime.now(UTC)
        if isinstance(state, Resume):
            ctx["resume"] = True
        elif isinstance(state, Paused):
            if start is None or not due:
                return state
            ctx["resume"] = True
        elif isinstance(state, Scheduled) and not due:
            return state
        run_count = state.run_count + 1 if isinstance(state, Retrying) else int(ctx.get("task_run_count") or 1)
        name = self.task.name
        self.logger.info("Task %r: Starting its run.", name)
        if is_mapped_parent:
            new = self._run_mapped(state, upstream_states, ctx, run_count)
        else:
            new = _run_one(self.task, upstream_states, ctx, state, run_count, None, self._notifier(), True)
        self.logger.info("Task %r: Finished its run in state %s.", name, type(new).__name__)
        return new

    def _notifier(self) -> Any:
        """The task's own notifier, followed by the runner's handlers."""
        from plait.engine.runner import FlowRunner, _callable_name, _not_a_state, _state_from_signal
        from plait.flow import Flow
        from plait.signals import ENDRUN, PlaitSignal
        from plait.states import Failed
        from plait.states import State as StateClass

        task = self.task
        inner = FlowRunner(Flow(f"TaskRunner-{task.name}"), plugins=False)._task_notifier(task)
        if not self.state_handlers:
            return inner
        handlers = self.state_handlers

        def notify(task: Any, old: Any, new: Any, interim: bool = False, handlers_old: Any = None) -> Any:
            if inner is not None:
                new = inner(task, old, new, interim, handlers_old)
            odd = None
            for handler in handlers:
                try:
                    out = handler(self, handlers_old or old, new)
                except PlaitSignal as sig:
                    return _state_from_signal(sig)
                except ENDRUN as end:
                    return end.state
                except Exception as exc:
                    from plait import context

                    if context.get("raise_on_exception"):
                        raise
                    label = _callable_name(handler)
                    self.logger.exception(
                        "Task %r: the task runner's state handler %r raised %r", task.name, label, exc
                    )
                    return Failed(f"Exception raised in state handler {label!r} of task {task.name!r}: {exc!r}", exc)
                if out is not None and out is not new:
                    if isinstance(out, StateClass):
                        new = out
                    elif out:  # Prefect 1 hands it to the next handler (a false value changes nothing)
                        new, odd = out, handler
            if odd is not None and not isinstance(new, StateClass):
                new = _not_a_state(new, odd, f"task {task.name!r}")
            return new

        return notify

    def _run_mapped(self, state: State, upstream_states: Any, ctx: dict[str, Any], run_count: int) -> State:
        from plait.flow import Edge
        from plait.states import Mapped, Success

        items = dict(upstream_states or {})
        lengths = [
            len(up.map_states) if isinstance(up, Mapped) else len(up.result)
            for edge, up in items.items()
            if isinstance(edge, Edge) and edge.mapped
        ]
        n = min(lengths) if lengths else getattr(state, "n_map_states", 0) or 0
        notify = self._notifier()
        children = []
        for i in range(n):
            child_ups = {}
            for edge, up in items.items():
                if isinstance(edge, Edge) and edge.mapped:
                    up = up.map_states[i] if isinstance(up, Mapped) else Success(result=up.result[i])
                child_ups[edge] = up
            children.append(_run_one(self.task, child_ups, ctx, state, run_count, i, notify, True))
        mapped = Mapped(f"Mapped {n} runs.", map_states=children)
        if notify is not None:
            mapped = notify(self.task, state, mapped)
        return mapped


def _run_one(
    task: Any,
    upstream_states: Any,
    context: dict[str, Any] | None,
    state: State | None,
    run_count: int,
    map_index: int | None,
    notify: Any,
    always_check: bool,
    inputs: dict[str, Any] | None = None,
) -> State:
    """One task run from ``state`` (``run_task`` and ``TaskRunner.run``)."""
    from plait.context import _flow_ctx, flow_context
    from plait.engine.extras import extras_for
    from plait.engine.runner import _RUNS_AFTER_SKIP, _check_upstream, _log_failure, _run_task_with_extras
    from plait.engine.runner import run_task as engine_run_task
    from plait.flow import Edge, Flow
    from plait.logging import configure_logging
    from plait.states import Pending
    from plait.triggers import BUILT_IN, UpstreamStates, manual_only

    configure_logging()
    kwargs: dict[str, Any] = dict(inputs or {})
    edges: list[Any] = []
    if upstream_states is None:
        ups: list[Any] = []
    elif isinstance(upstream_states, dict):
        ups = list(upstream_states.values())
        edges = list(upstream_states.keys())
        for key, up_state in upstream_states.items():
            if isinstance(key, Edge) and key.key is not None and key.key not in kwargs:
                kwargs[key.key] = up_state.result
    else:
        ups = list(upstream_states)
    flow = Flow(f"run_task-{task.name}")
    ctx = flow_context(flow.name, dict((context or {}).get("parameters") or {}), context)
    old = state if state is not None else Pending()
    token = _flow_ctx.set(ctx)
    try:
        if (always_check or state is None) and (ups or task.trigger is manual_only):
            if task.trigger not in BUILT_IN:
                ups = UpstreamStates(ups, edges)
            pre = _check_upstream(task, ups)
            if pre is _RUNS_AFTER_SKIP:
                kwargs = {k: (None if _is_skip(v) else v) for k, v in kwargs.items()}
            elif pre is not None:
                return notify(task, old, pre) if notify is not None else pre
        extras = extras_for(task, flow, bool(ctx.get("resume")))
        if extras is None:
            new = engine_run_task(task, kwargs, map_index, run_count, old, ctx, notify)
        else:
            new = _run_task_with_extras(extras, task, kwargs, map_index, run_count, old, ctx, notify)
        if always_check and new.is_failed():
            _log_failure(task, map_index, new)
        return new
    finally:
        _flow_ctx.reset(token)


def _is_skip(value: Any) -> bool:
    from plait.signals import SKIP

    return isinstance(value, SKIP)


def assert_plugin_conforms(plugin: object) -> list[str]:
    """Assert that ``plugin`` loads and its hookimpls match Plait's hook specs.

    ``plugin`` is the plugin object (usually a module), or the name of an installed entry
    point in the group ``plait`` (which must then import). Returns the hooks it implements.

    Raises:
        AssertionError: with the reason (an argument a hook does not have, an unknown
            ``plait_*`` hook, a missing ``@plait.hookimpl``, an import error).
    """
    if isinstance(plugin, str):
        import importlib.metadata

        found = [ep for ep in importlib.metadata.entry_points(group="plait") if ep.name == plugin]
        if not found:
            raise AssertionError(f"No entry point {plugin!r} in the group 'plait': is the distribution installed?")
        try:
            plugin = found[0].load()
        except Exception as exc:
            raise AssertionError(f"Entry point {plugin!r} ({found[0].value}) fails to import: {exc!r}") from exc
    from plait.hooks.manager import PlaitPluginManager

    pm = PlaitPluginManager()
    record = pm.add_plugin(plugin, _plugin_name(plugin))
    if record.status != "loaded":
        raise AssertionError(f"Plugin {record.name!r} does not conform to Plait's hook specs: {record.error}")
    return record.hooks


def run_markdown_examples(
    path: str | Path,
    namespace: dict[str, Any] | None = None,
    *,
    min_blocks: int = 1,
    restore_environ: bool = True,
) -> dict[str, Any]:
    """Run the ```` ```python ```` blocks of the Markdown file ``path``, in order, in one namespace.

    Later blocks see the names earlier ones defined, so a README can build an example up step
    by step; their ``assert`` lines are the test. Blocks fenced as ```` ```py ```` or
    ```` ```console ```` are not run. Returns the namespace (to stop servers an example started).
    The blocks are found and run by Sybil (``sybil.parsers.markdown``), so a traceback points
    at the line of the Markdown file, and Sybil's ``<!-- invisible-code-block: python -->`` and
    ``<!-- skip: next -->`` directives work too.

    Args:
        path: the Markdown file.
        namespace: the globals the blocks run in (default a fresh one with ``__name__ = "readme"``);
            pass your own to put fixtures in it, or to clean up after a failure.
        min_blocks: fail when the file has fewer ``python`` blocks (a renamed fence would
            otherwise make the test pass while running nothing).
        restore_environ: put ``os.environ`` back as it was afterwards (examples often set
            secrets as environment variables) and reset Plait's config.

    Raises:
        AssertionError: too few blocks, or a block that raised (naming the file, the block's
            number and line, and showing its code).

    ```py
    def test_readme_examples_run(tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        run_markdown_examples(Path(__file__).parents[1] / "README.md", min_blocks=3)
    ```
    """
    import os

    try:
        from sybil import Document
        from sybil.parsers.markdown import PythonCodeBlockParser
    except ImportError:  # pragma: no cover - sybil is in plait's "test" extra
        raise ImportError("run_markdown_examples needs Sybil: pip install sybil (plait[test] has it)") from None

    path = Path(path)
    document = Document.parse(str(path), PythonCodeBlockParser())
    count = sum(1 for _ in document)
    if count < min_blocks:
        raise AssertionError(f"{path} has {count} ```python block(s), expected at least {min_blocks}")
    namespace = {"__name__": "readme"} if namespace is None else namespace
    namespace.setdefault("__name__", "readme")
    document.namespace = namespace  # the examples run in the caller's namespace
    saved = dict(os.environ) if restore_environ else None
    try:
        for number, example in enumerate(document, 1):
            try:
                example.evaluate()
            except Exception as exc:
                code = str(example.parsed)
                raise AssertionError(
                    f"{path.name}, python block {number} (line {example.line}) failed: {exc!r}\n{code}"
                ) from exc
    finally:
        if saved is not None:
            os.environ.clear()
            os.environ.update(saved)
            from plait.config import reset_config

            reset_config()
    return namespace


# --- a recording HTTP server ---------------------------------------------------------------------
#
# The HTTP side (serving, parsing requests, matching them to scripted answers, building the
# responses) is pytest-httpserver's (on Werkzeug's server). What RecordingServer adds, because
# pytest-httpserver has no API for it: answers held until the test releases them (hold/release,
# for client timeouts without sleeping), waiting until N requests have arrived (wait_for: the
# library's wait() waits until its expected one-shot requests were used, not for a count of
# arbitrary requests), a fallback answer computed per request for a fake service
# (default_answer, instead of its "no handler" 500 and a failed assertion), and each request
# recorded as it arrived, with the status it was answered with, for the tests' assertions.

#: Request headers that change between runs or machines; ``RecordedRequest.stable_headers`` drops them.
VOLATILE_HEADERS = frozenset(
    {"host", "user-agent", "content-length", "connection", "accept-encoding", "accept", "x-plait-delivery"}
)


@dataclass
class RecordedRequest:
    """One request a ``RecordingServer`` received (header names lower-cased)."""

    method: str
    path: str  # as sent: with the query, not percent-decoded
    headers: dict[str, str]
    body: bytes
    answered: int = 0  # the status it was answered with

    @property
    def json(self) -> Any:
        """The body parsed as JSON (``None`` when empty or not JSON)."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    @property
    def query(self) -> dict[str, list[str]]:
        from urllib.parse import parse_qs, urlsplit

        return parse_qs(urlsplit(self.path).query)

    def stable_headers(self) -> dict[str, str]:
        """Headers without the volatile ones (host, user-agent, length, delivery id...)."""
        return {k: v for k, v in self.headers.items() if k not in VOLATILE_HEADERS}


@dataclass
class Answer:
    """What a ``RecordingServer`` answers: ``status``, ``body``, ``headers``, for ``count`` requests."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] | None = None
    count: int = 1

    @classmethod
    def of(
        cls, status: int = 200, json: Any = None, text: str | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        """An answer with a JSON body (``json``) or a text one (``text``), and its Content-Type."""
        if json is not None:
            return cls(status, _json_dumps(json).encode(), {"Content-Type": "application/json", **(headers or {})})
        return cls(status, (text or "").encode(), {"Content-Type": "text/plain; charset=utf-8", **(headers or {})})

    def response(self) -> Any:
        """This answer as a Werkzeug ``Response`` (no Content-Type unless ``headers`` has one)."""
        from werkzeug.wrappers import Response

        response = Response(self.body, status=self.status, headers=self.headers)
        if not self.headers or not any(k.lower() == "content-type" for k in self.headers):
            del response.headers["Content-Type"]
        return response


def _json_dumps(value: Any) -> str:
    return json.dumps(value)


class RecordingServer:
    """A real threaded HTTP server on 127.0.0.1 (a random free port) for tests: it records every
    request in ``requests`` and answers what the test scripts.

    - ``route(path, status, json=..., text=..., headers=...)``: a fixed answer for a path;
    - ``fail_next(status, count=...)``: the next ``count`` requests (any path) get that answer;
    - ``hold()``: answers wait until ``release()`` (test timeouts without sleeping);
    - ``wait_for(count)``: block until that many requests arrived;
    - ``httpserver``: the ``pytest_httpserver.HTTPServer`` underneath, for everything else it
      can script (``expect_request("/x", method="POST", json=...)``, ``expect_oneshot_request``,
      ``assert_request_made``...).

    A request gets the first of: a queued answer (``fail_next``, ``answer_next`` and the
    library's one-shot ones, in the order they were queued), a permanent one (``route()`` and
    the library's ``expect_request``, in the order they were added; a ``route()`` of a path
    routed before takes the earlier one's place), ``default_answer``.

    Anything else is answered by ``default_answer(request)`` (404); subclass it to fake a
    service (plait-slack's ``FakeSlack`` does). With pytest, the ``recording_server`` fixture is
    a started one. Needs ``pytest-httpserver`` (in ``plait[test]``).

    ```python
    import urllib.request
    from plait.testing import RecordingServer

    with RecordingServer() as server:
        server.route("/ping", json={"ok": True})
        with urllib.request.urlopen(server.url + "/ping") as response:
            assert response.status == 200
        assert [(r.method, r.path, r.answered) for r in server.requests] == [("GET", "/ping", 200)]
    ```
    """

    #: the server thread's name (shown in thread dumps)
    thread_name: ClassVar[str] = "recording-server"

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        # Reentrant: default_answer runs under it, and a subclass's may read what was recorded.
        self._lock = threading.RLock()
        self._arrived = threading.Condition(self._lock)
        self._release = threading.Event()
        self._release.set()
        self.httpserver = _recording_httpserver(self)
        self._routes: dict[str, Any] = {}  # path -> its handler in httpserver.handlers

    # -- life cycle ---------------------------------------------------------------------------------

    def start(self) -> Any:
        """Start serving (in a daemon thread); returns the server."""
        self.httpserver.start()
        return self

    def stop(self) -> None:
        """Release held answers and stop serving."""
        self._release.set()
        if self.httpserver.is_running():
            self.httpserver.stop()
            self.httpserver.port = 0  # a restart takes a new free port

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self.httpserver.is_running(), f"{type(self).__name__} is not started"
        return self.httpserver.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- scripting ------------------------------------------------------------------------------------

    def route(
        self,
        path: str,
        status: int = 200,
        json: Any = None,
        text: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer requests to ``path`` (without the query, any method) with ``json`` or ``text``;
        a later ``route()`` of the same path replaces this one."""
        answer = Answer.of(status, json, text, headers)
        with self._lock:
            handlers = self.httpserver.handlers
            previous = self._routes.get(path)
            self.httpserver.expect_request(path).respond_with_handler(lambda _request: answer.response())
            self._routes[path] = handler = handlers.pop()
            if previous is None:
                handlers.append(handler)
            else:  # in the place of the one it replaces
                handlers[handlers.index(previous)] = handler

    def fail_next(
        self, status: int, text: str = "", headers: dict[str, str] | None = None, count: int = 1, json: Any = None
    ) -> None:
        """Answer the next ``count`` requests (any path) with ``status``."""
        answer = Answer.of(status, json, text, headers)
        answer.count = count
        self.answer_next(answer)

    def answer_next(self, answer: Answer) -> None:
        """Answer the next ``answer.count`` requests (any path) with ``answer``, after those queued before."""
        with self._lock:
            for _ in range(answer.count):
                self.httpserver.expect_oneshot_request(_ANY_PATH).respond_with_handler(
                    lambda _request: answer.response()
                )

    def hold(self) -> None:
        """Hold every answer until ``release()``."""
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Block until ``count`` requests have arrived (at most ``timeout`` s); return them all."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.requests) >= count, timeout=timeout)
            return list(self.requests)

    # -- the server side ----------------------------------------------------------------------------

    def default_answer(self, request: RecordedRequest) -> Answer:
        """The answer to a request nothing was scripted for: 404 (override to fake a service)."""
        return Answer.of(404, text="not found")

    def _dispatch(self, request: Any, dispatch: Any) -> Any:
        """Record ``request`` and answer it: ``dispatch`` (the library's: its one-shot answers,
        then its permanent ones, then ``default_answer``), in arrival order, then held if asked."""
        recorded = RecordedRequest(
            request.method,
            request.environ.get("RAW_URI") or request.full_path.rstrip("?"),
            {k.lower(): v for k, v in request.headers.items()},
            request.get_data(),
        )
        request.environ["plait.recorded"] = recorded
        with self._arrived:  # the library's handler lists are not thread-safe
            self.requests.append(recorded)
            self._arrived.notify_all()
            response = dispatch(request)
        self._release.wait()
        recorded.answered = response.status_code
        return response


_ANY_PATH: Any = None  # pytest-httpserver's URIPattern for every path (made on first use)


def _recording_httpserver(owner: RecordingServer) -> Any:
    """A ``pytest_httpserver.HTTPServer`` on 127.0.0.1 that answers through ``owner``."""
    global _ANY_PATH
    try:
        from pytest_httpserver import HTTPServer, URIPattern
    except ImportError:  # pragma: no cover - pytest-httpserver is in plait's "test" extra
        raise ImportError(
            "plait.testing.RecordingServer needs pytest-httpserver: pip install pytest-httpserver (plait[test] has it)"
        ) from None
    if _ANY_PATH is None:

        class AnyPath(URIPattern):
            def match(self, uri: str) -> bool:
                return True

        _ANY_PATH = AnyPath()

    class Server(HTTPServer):
        def thread_target(self) -> None:
            threading.current_thread().name = owner.thread_name
            assert self.server is not None
            self.server.serve_forever(poll_interval=0.05)  # stop() returns within 50 ms, not 500

        def dispatch(self, request: Any) -> Any:
            return owner._dispatch(request, super().dispatch)

        def respond_nohandler(self, request: Any, extra_message: str = "") -> Any:
            return owner.default_answer(request.environ["plait.recorded"]).response()

    _quiet_werkzeug()
    return Server(host="127.0.0.1", port=0, threaded=True)


def _quiet_werkzeug() -> None:
    """Werkzeug logs every request at INFO on stderr: tests log only what goes wrong."""
    werkzeug_logger = logging.getLogger("werkzeug")
    if werkzeug_logger.level == logging.NOTSET:
        werkzeug_logger.setLevel(logging.WARNING)


@contextmanager
def sigint_not_ignored() -> Iterator[None]:
    """Processes started inside the block get SIGINT's default disposition, as from a terminal.

    A job that a non-interactive shell starts in the background (``make test &``, ``nohup``,
    some CI runners) ignores SIGINT, and every process it starts inherits that: a Python child
    then never sees the Ctrl-C a test sends it, and the test waits until it times out. Inside
    the block this process handles SIGINT (``KeyboardInterrupt``, Python's default), and a
    handled signal is reset to its default in a program it starts. Outside the main thread, or
    when SIGINT is not ignored, it changes nothing.
    """
    ignored = (
        threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    )
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now (the system picks it).

    Prefer binding port 0 yourself when the server lets you (no other process can take the
    port in between); this is for servers that must be told a port (a subprocess, a config).
    """

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _plugin_name(plugin: object) -> str:
    return getattr(plugin, "__name__", None) or type(plugin).__name__


def _remove_plugin_handlers() -> None:
    from plait.logging import PluginHandler

    plait_logger = logging.getLogger("plait")
    for handler in [h for h in plait_logger.handlers if isinstance(h, PluginHandler)]:
        plait_logger.removeHandler(handler)


# --- the pytest plugin ---------------------------------------------------------------------------

try:
    import pytest
except ImportError:  # the helpers above work without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def plait_plugin() -> object:
        """The plugin under test: override this fixture to return your plugin module."""
        raise pytest.UsageError(
            "The plait_plugin fixture is not set: define it in your conftest.py to return your plugin "
            "module, e.g. `@pytest.fixture` on `def plait_plugin(): from plait_slack import plugin; return plugin`"
        )

    @pytest.fixture
    def plait_hooks(plait_plugin: object) -> Iterator[PlaitHooks]:
        """Isolated hooks with only the core and ``plait_plugin``, in strict mode, for one test."""
        with using_plugins(plait_plugin, strict=True) as hooks:
            yield hooks

    @pytest.fixture
    def plait_config(tmp_path: Any, monkeypatch: Any) -> Iterator[Any]:
        """``plait_config(toml_text, **env)``: from here on in the test, Plait reads this config
        file (``PLAIT_CONFIG``) and sees these environment variables (e.g. secrets); the config
        is re-read at once and again after the test."""
        from plait.config import reset_config

        def apply(text: str, **env: str) -> None:
            path = tmp_path / "plait-config.toml"
            path.write_text(text)
            monkeypatch.setenv("PLAIT_CONFIG", str(path))
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            reset_config()

        yield apply
        reset_config()

    @pytest.fixture
    def ctrl_c_reaches_subprocesses() -> Iterator[None]:
        """For a test that sends SIGINT to a process it starts: ``sigint_not_ignored()`` around it."""
        with sigint_not_ignored():
            yield

    @pytest.fixture
    def refused_url() -> str:
        """A URL on 127.0.0.1 where nothing listens (connections are refused)."""
        return f"http://127.0.0.1:{free_port()}"

    @pytest.fixture
    def recording_server() -> Iterator[RecordingServer]:
        """A started ``RecordingServer`` for one test."""
        with RecordingServer() as server:
            yield server

    @pytest.fixture
    def plait_run(plait_hooks: PlaitHooks) -> Any:
        """``plait_run(flow, **run_kwargs) -> RecordedRun`` with only ``plait_plugin`` installed."""
        return run_flow

# --- a throwaway PostgreSQL server ---------------------------------------------------------------
#
# ``PostgresServer`` makes a fresh cluster with ``initdb`` in a temporary directory and starts it
# with ``pg_ctl`` on a free port on 127.0.0.1; the fixtures ``postgres_server`` (session) and
# ``postgres_url`` hand it to tests (plait-sql's and plait-server's suites use them). The
# programs are looked up on PATH and in /usr/lib/postgresql/*/bin (Debian's ``postgresql``);
# as root the server runs as the ``postgres`` user. When it cannot start, tests that need it
# skip with the reason, or fail when ``CI`` or ``PLAIT_REQUIRE_POSTGRES`` is set.
# ``psycopg`` is needed (imported when used).

SYSTEM_USER = "postgres"


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server cannot be started here; the message says why and what to install."""


def find_postgres_program(name: str) -> str | None:
    """The path of a PostgreSQL server program (``initdb``, ``pg_ctl``), newest version first."""
    found = shutil.which(name)
    if found:
        return found
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}") + glob.glob(f"/usr/local/pgsql*/bin/{name}")
    candidates.sort(key=_version_key, reverse=True)
    return candidates[0] if candidates else None


class PostgresServer:
    """A PostgreSQL cluster of its own, in a temporary directory, on 127.0.0.1.

    Args:
        database: the database created for the tests.
        user: the login role that owns it (password authentication over TCP).
        password: that role's password (default: a random one).

    Use as a context manager, or call ``start()`` and ``stop()``::

        with PostgresServer() as server:
            print(server.url)   # postgresql+psycopg://plait:...@127.0.0.1:54321/plait_test
    """

    def __init__(self, database: str = "plait_test", user: str = "plait", password: str | None = None) -> None:
        self.database = database
        self.user = user
        self.password = password or f"pw-{secrets.token_hex(12)}"
        self.port: int | None = None
        self.directory: Path | None = None
        self._run_as: str | None = None

    @property
    def url(self) -> str:
        """The test database's SQLAlchemy URL (psycopg 3 driver), with the password."""
        if self.port is None:
            raise PostgresUnavailable("the PostgreSQL server is not started; call start() first")
        from urllib.parse import quote

        return (
            f"postgresql+psycopg://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@127.0.0.1:{self.port}/{quote(self.database, safe='')}"
        )

    @property
    def log_path(self) -> Path:
        assert self.directory is not None
        return self.directory / "server.log"

    def admin_connect(self, database: str = "postgres") -> Any:
        """A psycopg connection as the superuser over the Unix socket (autocommit)."""
        import psycopg

        return psycopg.connect(
            host=str(self.directory), port=self.port, user=SYSTEM_USER, dbname=database, autocommit=True
        )

    def start(self) -> PostgresServer:
        """Create the cluster, start the server and create the role and the database.

        Raises:
            PostgresUnavailable: the programs are missing or the server did not start (the
                message has the end of the server's log).
        """
        initdb, pg_ctl = find_postgres_program("initdb"), find_postgres_program("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise PostgresUnavailable(
                "PostgreSQL's initdb and pg_ctl were not found on PATH or in /usr/lib/postgresql/*/bin; "
                "install the server: `make services-postgres` (as root on Debian/Ubuntu: "
                "apt-get install postgresql) or `brew install postgresql`"
            )
        self._run_as = _server_user()
        self.directory = Path(tempfile.mkdtemp(prefix="plait-pg-", dir=_base_directory(self._run_as)))
        if self._run_as is not None:
            shutil.chown(self.directory, user=self._run_as, group=_primary_group(self._run_as))
        data = self.directory / "data"
        self._run(
            [
                initdb,
                "-D",
                str(data),
                "-U",
                SYSTEM_USER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
        )
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between our check and the bind
            self.port = free_port()
            try:
                self._pg_ctl_start()
                break
            except PostgresUnavailable as exc:
                last_error = str(exc)
        else:
            self.port = None
            raise PostgresUnavailable(last_error)
        self._create_role_and_database()
        return self

    def halt(self) -> None:
        """Stop the server but keep its cluster and port: a database outage, until ``resume()``.

        Connections are closed at once (``pg_ctl stop -m fast``); clients see their connections
        refused until the server is back.
        """
        if self.directory is None:
            raise PostgresUnavailable("the PostgreSQL server is not started; call start() first")
        pg_ctl = find_postgres_program("pg_ctl")
        assert pg_ctl is not None
        self._run([pg_ctl, "-D", str(self.directory / "data"), "-w", "-t", "60", "-m", "fast", "stop"], "pg_ctl stop")

    def resume(self) -> None:
        """Start a server stopped by ``halt()`` again, on the same port with the same data."""
        if self.directory is None or self.port is None:
            raise PostgresUnavailable("the PostgreSQL server was never started; call start() first")
        self._pg_ctl_start()

    def _pg_ctl_start(self) -> None:
        assert self.directory is not None
        pg_ctl = find_postgres_program("pg_ctl")
        assert pg_ctl is not None
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        data = self.directory / "data"
        self._run([pg_ctl, "-D", str(data), "-l", str(self.log_path), "-w", "-t", "60", "-o", options, "start"])

    def stop(self) -> None:
        """Stop the server and delete its directory."""
        if self.directory is None:
            return
        pg_ctl = find_postgres_program("pg_ctl")
        data = self.directory / "data"
        if pg_ctl is not None and (data / "postmaster.pid").exists():
            try:
                self._run([pg_ctl, "-D", str(data), "-w", "-t", "60", "-m", "fast", "stop"], "pg_ctl stop")
            except PostgresUnavailable:
                pass
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = None
        self.port = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _create_role_and_database(self) -> None:
        from psycopg import sql

        with self.admin_connect() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(self.user), sql.Literal(self.password)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(self.database), sql.Identifier(self.user))
            )

    def _run(self, argv: list[str], what: str | None = None) -> None:
        kwargs: dict[str, Any] = {}
        if self._run_as is not None:
            kwargs.update(user=self._run_as, group=_primary_group(self._run_as), extra_groups=[])
        proc = subprocess.run(
            argv,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **kwargs,
        )
        if proc.returncode != 0:
            log = ""
            if self.directory is not None and self.log_path.exists():
                log = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-15:])
            raise PostgresUnavailable(
                f"{what or Path(argv[0]).name} failed with exit code {proc.returncode}: "
                f"{(proc.stderr or proc.stdout).strip()[-2000:]}" + (f"\nserver log:\n{log}" if log else "")
            )


if pytest is not None:

    @pytest.fixture(scope="session")
    def postgres_server() -> Iterator[PostgresServer]:
        """A running throwaway PostgreSQL server for the whole test session (see the module docstring)."""
        server = PostgresServer()
        try:
            server.start()
        except (PostgresUnavailable, OSError, subprocess.SubprocessError, ImportError) as exc:
            server.stop()
            reason = f"PostgreSQL server could not start: {exc}"
            if any(_truthy(os.environ.get(v)) for v in ("PLAIT_REQUIRE_POSTGRES", "PLAIT_SQL_REQUIRE_POSTGRES", "CI")):
                pytest.fail(reason + " (a failure, not a skip, because CI or PLAIT_REQUIRE_POSTGRES is set)")
            pytest.skip(reason)
        try:
            yield server
        finally:
            server.stop()

    @pytest.fixture(scope="session")
    def postgres_url(postgres_server: PostgresServer) -> str:
        """The SQLAlchemy URL of the session's throwaway PostgreSQL database."""
        return postgres_server.url


# --- helpers -----------------------------------------------------------------------------------


def _server_user() -> str | None:
    """The user to run the server as: ``postgres`` when we are root (created if missing), else us."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise PostgresUnavailable(
                "running as root, initdb needs an unprivileged user, and there is no 'postgres' user "
                "nor useradd to create one; create a 'postgres' user or run the tests as another user"
            ) from None
        subprocess.run(
            [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    return SYSTEM_USER


def _base_directory(run_as: str | None) -> str:
    """Where the cluster's directory goes: the usual temporary folder, unless the server's user
    cannot reach it (a root-only $TMPDIR) or the Unix socket's path would be too long."""
    base = Path(tempfile.gettempdir()).resolve()
    too_long = len(str(base)) > 60  # the socket path (dir + /.s.PGSQL.NNNNN) must fit in 107 bytes
    reachable = run_as is None or all(p.stat().st_mode & 0o001 for p in [base, *base.parents])
    return str(base) if reachable and not too_long else "/tmp"


def _primary_group(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


def _version_key(path: str) -> tuple[int, ...]:
    parts = [p for p in Path(path).parts if p.replace(".", "").isdigit()]
    return tuple(int(x) for x in parts[-1].split(".")) if parts else (0,)


def _truthy(value: str | None) -> bool:
    return bool(value) and value.strip().lower() not in ("0", "false", "no", "off", "")
