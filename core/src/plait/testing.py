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
  with every state change the hooks saw.

And plain functions, usable without pytest: ``isolated_hooks(*plugins)``,
``using_plugins(*plugins)``, ``run_flow(flow)``, ``assert_plugin_conforms(plugin)``::

    from plait.testing import assert_plugin_conforms, run_flow, using_plugins

    def test_alerts_on_failure(plait_run):
        run = plait_run(flow)
        assert ("fetch", "Running", "Failed") in run.task_changes()
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plait.flow import Flow
    from plait.hooks.manager import PlaitHooks
    from plait.states import State

__all__ = [
    "RecordedRun",
    "StateChange",
    "assert_plugin_conforms",
    "isolated_hooks",
    "run_flow",
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
    def plait_run(plait_hooks: PlaitHooks) -> Any:
        """``plait_run(flow, **run_kwargs) -> RecordedRun`` with only ``plait_plugin`` installed."""
        return run_flow
