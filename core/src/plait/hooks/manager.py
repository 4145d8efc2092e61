"""Finding, loading and calling plugins.

``get_hooks()`` returns the process's ``PlaitHooks``: the typed facade over a
``PlaitPluginManager`` that has the core's built-in plugin and every installed plugin of the
entry-point group ``plait`` registered. The rest of Plait calls the facade::

    from plait.hooks.manager import get_hooks

    executors = get_hooks().register_executors()      # {"local": LocalExecutor, ...}

Loading is tolerant: a plugin whose import fails, or whose hookimpls do not match the specs
(an argument the hook does not have, a ``plait_*`` hook that does not exist), is unregistered
with a warning naming its distribution and the reason, and is listed by ``plait plugins``
among the failed ones. Environment variables:

- ``PLAIT_LOAD_PLUGINS=a,b``: load only these plugins (entry-point or distribution names);
  set and empty, load none. The built-in plugin is always loaded.
- ``PLAIT_DISABLE_PLUGINS=c``: never load these.
- ``PLAIT_TRACE_PLUGINS=1``: log every hook call (logger ``plait.plugins``).
- ``PLAIT_STRICT_PLUGINS=1``: an exception in an observer hook or a plugin's log handler is
  re-raised instead of logged (for plugin authors' tests).
- ``PLAIT_SLOW_HOOK_SECONDS=1``: a hook call that takes longer is reported (once per plugin
  and hook) with the plugin's name.

Plugin code never stops Plait: an exception of any kind but ``KeyboardInterrupt`` (``SystemExit``
included) raised while a plugin is imported or inside one of its hooks is logged with the
plugin's name and the run goes on. Observer hooks and ``plait_task_run`` wrappers get read-only
views of the states (``plait.states.read_only``), so a plugin cannot change a run's outcome.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy

from plait.hooks import specs
from plait.hooks.markers import PROJECT
from plait.states import read_only

if TYPE_CHECKING:
    import click

    from plait.config import Config
    from plait.engine.executors import Executor

__all__ = [
    "PlaitHooks",
    "PlaitPluginManager",
    "PluginRecord",
    "get_hooks",
    "plugin_observers",
    "reset_hooks",
    "strict_plugins",
    "use_hooks",
]

logger = logging.getLogger("plait.plugins")

#: The name the core's built-in plugin is registered under.
BUILTIN_NAME = "plait.builtin"

_HOOK_PREFIX = "plait_"


@dataclass
class PluginRecord:
    """What ``plait plugins`` shows about one plugin.

    ``status`` is ``"loaded"``, ``"failed"`` (``error`` says why) or ``"disabled"`` (by
    ``PLAIT_LOAD_PLUGINS`` / ``PLAIT_DISABLE_PLUGINS``).
    """

    name: str
    distribution: str | None = None
    version: str | None = None
    status: str = "loaded"
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    builtin: bool = False
    #: the ``plait.settings.Settings`` the plugin declared (``plait_register_settings``)
    settings: list[Any] = field(default_factory=list, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "hooks": list(self.hooks),
            "error": self.error,
            "builtin": self.builtin,
        }


class PlaitPluginManager(pluggy.PluginManager):
    """A pluggy ``PluginManager`` for the project ``plait`` that validates plugins as it loads them.

    ``PlaitPluginManager()`` has only the hookspecs; ``load_builtins()`` and
    ``load_entrypoints()`` add plugins. ``records`` keeps one ``PluginRecord`` per plugin
    seen, loaded or not.
    """

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.add_hookspecs(specs)
        self.records: dict[str, PluginRecord] = {}
        #: Bumped on every (un)registration; caches of register-hook results compare it.
        self.generation = 0
        self._untrace: Callable[[], None] | None = None

    # -- registration -------------------------------------------------------------------------

    def register(self, plugin: object, name: str | None = None) -> str | None:
        registered = super().register(plugin, name)
        self.generation += 1
        return registered

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        removed = super().unregister(plugin, name)
        self.generation += 1
        return removed

    def add_plugin(
        self,
        plugin: object,
        name: str,
        distribution: str | None = None,
        version: str | None = None,
        builtin: bool = False,
    ) -> PluginRecord:
        """Register ``plugin`` if its hookimpls match the specs; record the outcome either way.

        Never raises for a bad plugin: the returned record has ``status == "failed"`` and the
        reason in ``error``, and a warning names the plugin and its distribution.
        """
        record = PluginRecord(name, distribution, version, builtin=builtin)
        self.records[name] = record
        problem = plugin_problems(self, plugin, name)
        if problem is not None:
            return self._fail(record, problem)
        record.hooks = hook_names(self, plugin)
        record.settings = _declared_settings(self, plugin, name)
        return record

    def load_builtins(self) -> None:
        """Register the core's own plugin (executors, result types)."""
        from plait import __version__
        from plait.hooks import builtin

        self.add_plugin(builtin, BUILTIN_NAME, "plait", __version__, builtin=True)

    def load_entrypoints(self, environ: dict[str, str] | None = None) -> None:
        """Load every installed plugin of the entry-point group ``plait``, tolerantly.

        The installed entry points come from ``plait.hooks.discovery`` (a cache of the last
        scan of this environment, checked against where distributions live and against the
        modules it names still being there).
        """
        from plait.hooks import discovery

        env = os.environ if environ is None else environ
        allow = _names(env["PLAIT_LOAD_PLUGINS"]) if "PLAIT_LOAD_PLUGINS" in env else None
        deny = _names(env.get("PLAIT_DISABLE_PLUGINS", ""))
        entry_points = discovery.installed_entry_points(PROJECT)
        for ep in entry_points:
            dist_name, version = ep.distribution, ep.version
            if ep.name in self.records:
                other = self.records[ep.name]
                if other.distribution != dist_name:
                    record = PluginRecord(ep.name, dist_name, version)
                    self._fail(
                        record,
                        f"the plugin name {ep.name!r} is already taken by distribution {other.distribution}; "
                        "rename the entry point",
                    )
                    self.records[f"{ep.name} ({dist_name})"] = record
                continue
            if not _wanted(ep, allow, deny):
                allowed = allow is None or bool({ep.name, dist_name} & allow)
                why = "in PLAIT_DISABLE_PLUGINS" if allowed else "not in PLAIT_LOAD_PLUGINS"
                self.records[ep.name] = PluginRecord(ep.name, dist_name, version, status="disabled", error=why)
                continue
            try:
                plugin = discovery.load_entry_point(ep)
                if isinstance(plugin, type):
                    plugin = plugin()
            except BaseException as exc:  # SystemExit too: a plugin never stops Plait
                if isinstance(exc, KeyboardInterrupt):
                    raise
                record = PluginRecord(ep.name, dist_name, version)
                self.records[ep.name] = record
                self._fail(record, f"import of {ep.value!r} failed: {type(exc).__name__}: {exc}")
                continue
            self.add_plugin(plugin, ep.name, dist_name, version)

    def enable_trace(self) -> None:
        """Log every hook call made through ``self.hook`` (and the runner's observers)."""
        if self._untrace is not None:
            return

        def before(hook_name: str, impls: list[Any], kwargs: dict[str, Any]) -> None:
            names = ", ".join(i.plugin_name for i in impls) or "(no implementation)"
            logger.info("hook %s(%s) -> %s", hook_name, _short_kwargs(kwargs), names)

        def after(outcome: Any, hook_name: str, impls: list[Any], kwargs: dict[str, Any]) -> None:
            if outcome.exception is not None:
                logger.info("hook %s raised %r", hook_name, outcome.exception)

        self._untrace = self.add_hookcall_monitoring(before, after)
        # Trace lines show even when Plait's logging level is quieter.
        logger.setLevel(logging.INFO)

    @property
    def failed(self) -> list[PluginRecord]:
        """The plugins that failed to load, with why."""
        return [r for r in self.records.values() if r.status == "failed"]

    def _fail(self, record: PluginRecord, reason: str) -> PluginRecord:
        record.status = "failed"
        record.error = reason
        record.hooks = []
        where = ""
        if record.distribution:
            where = f" (distribution {record.distribution}{' ' + record.version if record.version else ''})"
        logger.warning("Plait plugin %r%s was not loaded: %s", record.name, where, reason)
        return record


def plugin_problems(pm: PlaitPluginManager, plugin: object, name: str) -> str | None:
    """Register ``plugin`` in ``pm``; on a mismatch unregister it and return why, else ``None``."""
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        return f"its hookimpls do not match the hook specs: {exc}"
    except ValueError as exc:  # already registered, or the name is taken
        return str(exc)
    unknown = [
        caller.name
        for caller in pm.get_hookcallers(plugin) or ()
        if not caller.has_spec() and not any(i.optionalhook for i in caller.get_hookimpls() if i.plugin is plugin)
    ]
    unmarked = [
        attr
        for attr in _plait_attrs(plugin)
        if attr in _SPEC_NAMES and not any(c.name == attr for c in pm.get_hookcallers(plugin) or ())
    ]
    wrappers, plain = [], []
    for caller in pm.get_hookcallers(plugin) or ():
        if not caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            if caller.name in _WRAPPER_HOOKS and not impl.wrapper:
                plain.append(caller.name)
            elif caller.name not in _WRAPPER_HOOKS and (impl.wrapper or impl.hookwrapper):
                wrappers.append(caller.name)
    problems = []
    if wrappers:
        problems.append(f"{', '.join(sorted(wrappers))} cannot be a wrapper (drop wrapper=True/hookwrapper=True)")
    if plain:
        problems.append(f"{', '.join(sorted(plain))} must be a generator marked @plait.hookimpl(wrapper=True)")
    if unknown:
        problems.append(
            f"it implements {', '.join(sorted(unknown))}, which "
            f"{'is not a Plait hook' if len(unknown) == 1 else 'are not Plait hooks'} "
            f"(known hooks: {', '.join(sorted(_SPEC_NAMES))})"
        )
    if unmarked:
        problems.append(f"{', '.join(unmarked)} lacks the @plait.hookimpl marker")
    if problems:
        pm.unregister(plugin)
        return "; ".join(problems)
    return None


def _declared_settings(pm: pluggy.PluginManager, plugin: object, name: str) -> list[Any]:
    """Call the plugin's ``plait_register_settings`` (if any) and declare what it returns."""
    impls = [i for i in pm.hook.plait_register_settings.get_hookimpls() if i.plugin is plugin]
    if not impls:
        return []
    from plait import settings as declared

    try:
        value = impls[0].function()
    except Exception:
        logger.error(
            "Plugin %r raised in plait_register_settings; its settings are not checked:\n%s",
            name,
            traceback.format_exc().rstrip(),
        )
        return []
    items = value if isinstance(value, (list, tuple)) else [value] if value is not None else []
    out = []
    for item in items:
        if not isinstance(item, declared.Settings):
            logger.warning(
                "Plugin %r: plait_register_settings returned %r, not a plait.settings.Settings; ignored", name, item
            )
            continue
        declared.declare(item, owner=name)
        out.append(item)
    return out


def hook_names(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """The names of the hooks ``plugin`` implements (sorted)."""
    return sorted(c.name for c in pm.get_hookcallers(plugin) or ())


_SPEC_NAMES = frozenset(n for n in dir(specs) if n.startswith(_HOOK_PREFIX))
#: Hooks whose implementations are wrappers (generators that yield once).
_WRAPPER_HOOKS = frozenset({"plait_task_run"})


def _plait_attrs(plugin: object) -> list[str]:
    return [a for a in dir(plugin) if a.startswith(_HOOK_PREFIX) and callable(getattr(plugin, a, None))]


# --- the facade --------------------------------------------------------------------------------


class PlaitHooks:
    """The typed face of the plugin manager: one method per hook, with Plait's rules applied.

    Register hooks are merged and cached until a plugin is (un)registered; observer hooks are
    turned into isolated observers for the runner (``task_observer()``), or ``None`` when no
    plugin implements them, so an unused hook costs nothing per task.
    """

    def __init__(self, pm: PlaitPluginManager, strict: bool | None = None) -> None:
        self.pm = pm
        self._strict = strict
        self._cache: dict[str, tuple[int, Any]] = {}
        self._statuses: tuple[Any, int, int, dict[str, Any]] | None = None
        self._reported: Any = None

    @property
    def strict(self) -> bool:
        """Whether observer errors re-raise (``PLAIT_STRICT_PLUGINS=1`` unless set explicitly)."""
        return strict_plugins() if self._strict is None else self._strict

    # -- register hooks -----------------------------------------------------------------------

    def register_executors(self) -> dict[str, type[Executor]]:
        """``{name: ExecutorClass}`` from every plugin, the core's included."""
        return dict(self._merged("plait_register_executors", "executor"))

    def register_result_types(self) -> dict[str, type]:
        """``{scheme: ResultClass}`` from every plugin, the core's included."""
        return dict(self._merged("plait_register_result_types", "result type"))

    def register_storage(self) -> dict[str, type]:
        """``{type: StorageClass}`` from every plugin, the core's ``file`` and ``module`` included."""
        return dict(self._merged("plait_register_storage", "storage kind"))

    def register_agents(self) -> dict[str, type]:
        """``{type: AgentClass}`` from every plugin, the core's ``local`` included."""
        return dict(self._merged("plait_register_agents", "agent kind"))

    def register_tasks(self) -> list[tuple[str, Any]]:
        """``[(plugin_name, task), ...]`` for every task every plugin offers."""
        cached = self._cache.get("tasks")
        if cached is not None and cached[0] == self.pm.generation:
            return list(cached[1])
        out: list[tuple[str, Any]] = []
        for plugin_name, value in self._collect("plait_register_tasks", {}):
            if value is None:
                continue
            if not isinstance(value, (list, tuple)):
                logger.warning(
                    "Plugin %r: plait_register_tasks returned %s, not a list; ignored",
                    plugin_name,
                    type(value).__name__,
                )
                continue
            out.extend((plugin_name, t) for t in value)
        self._cache["tasks"] = (self.pm.generation, out)
        return list(out)

    def register_log_handlers(self, config: Config) -> list[tuple[str, logging.Handler]]:
        """``[(plugin_name, handler), ...]`` from every plugin; bad values are warned about and skipped."""
        out: list[tuple[str, logging.Handler]] = []
        for plugin_name, value in self._collect("plait_register_log_handlers", {"config": config}):
            for handler in value or ():
                if isinstance(handler, logging.Handler):
                    out.append((plugin_name, handler))
                else:
                    logger.warning(
                        "Plugin %r: plait_register_log_handlers returned %r, not a logging.Handler; ignored",
                        plugin_name,
                        handler,
                    )
        return out

    def register_commands(self, cli: click.Group) -> None:
        """Let every plugin add its commands to ``cli``."""
        self._collect("plait_register_commands", {"cli": cli})

    # -- configuration ------------------------------------------------------------------------

    def plugin_status(self, name: str) -> Any:
        """The ``plait.settings.PluginStatus`` of plugin ``name`` under the current configuration,
        or ``None`` when the plugin declares no settings."""
        return self.statuses().get(name)

    def statuses(self) -> dict[str, Any]:
        """``{plugin name: PluginStatus}`` for every loaded plugin that declares settings
        (computed once per configuration)."""
        from plait import settings as declared
        from plait.config import get_config

        config = get_config()
        cached = self._statuses
        if (
            cached is not None
            and cached[0] is config
            and cached[1] == declared.generation
            and cached[2] == self.pm.generation
        ):
            return cached[3]
        out = {}
        for name, record in self.pm.records.items():
            if record.status == "loaded" and record.settings:
                out[name] = declared.plugin_status(config, record.settings[0])
        self._statuses = (config, declared.generation, self.pm.generation, out)
        return out

    def observes(self, plugin_name: str) -> bool:
        """Whether the observer hooks of ``plugin_name`` run now: always for a plugin that declares
        no settings; else as its ``observe_when`` says (default: while it is configured)."""
        record = self.pm.records.get(plugin_name)
        if record is None or not record.settings:
            return True
        status = self.statuses().get(plugin_name)
        if status is None:
            return True
        spec = record.settings[0]
        if spec.observe_when is not None:
            try:
                return bool(spec.observe_when(status))
            except Exception:
                if self.strict:
                    raise
                logger.error(
                    "Plugin %r raised in its observe_when; its observers are off:\n%s",
                    plugin_name,
                    traceback.format_exc().rstrip(),
                )
                return False
        return status.configured

    def config_problems(self) -> list[Any]:
        """Every problem of the current configuration (``plait.settings.check_config``)."""
        from plait import settings as declared
        from plait.config import get_config

        self.statuses()  # declarations are made as plugins load
        return declared.check_config(get_config(), installed=self.pm.records)

    def report_config_problems(self) -> None:
        """Log each configuration problem once per configuration (at the first flow run): errors
        at ERROR, warnings at WARNING, on the ``plait.config`` logger."""
        from plait.config import get_config

        config = get_config()
        if self._reported is config:
            return
        self._reported = config
        log = logging.getLogger("plait.config")
        off = {
            record.settings[0].path: name
            for name, status in self.statuses().items()
            if status.state == "misconfigured" and (record := self.pm.records.get(name)) is not None
        }
        for problem in self.config_problems():
            level = logging.ERROR if problem.severity == "error" else logging.WARNING
            owner = next(
                (n for path, n in off.items() if problem.path == path or problem.path.startswith(path + ".")), None
            )
            if owner is not None and problem.severity == "error":
                log.log(
                    level, "Plugin %r is misconfigured and stays off until this is fixed: %s", owner, problem.message
                )
            else:
                log.log(level, "Plait configuration: %s", problem.message)

    # -- observer hooks -----------------------------------------------------------------------

    def task_state_changed(self, task: Any, old_state: Any, new_state: Any, context: Any = None) -> None:
        """Call every ``plait_task_state_changed`` implementation, isolated."""
        observer = self.task_observer()
        if observer is not None:
            observer(task, old_state, new_state)

    def flow_state_changed(self, flow: Any, old_state: Any, new_state: Any, context: Any = None) -> None:
        """Call every ``plait_flow_state_changed`` implementation, isolated."""
        observer = self.flow_observer()
        if observer is not None:
            observer(flow, old_state, new_state)

    def server_event(self, event: Any) -> None:
        """Call every ``plait_server_event`` implementation, each isolated: one that raises is
        logged with its plugin's name and the others still run."""
        self._collect("plait_server_event", {"event": event})

    def task_observer(self) -> Callable[[Any, Any, Any], None] | None:
        """An ``observer(task, old, new)`` calling the task hook's implementations, or ``None``."""
        return self._observer("plait_task_state_changed", "task")

    def flow_observer(self) -> Callable[[Any, Any, Any], None] | None:
        """An ``observer(flow, old, new)`` calling the flow hook's implementations, or ``None``."""
        return self._observer("plait_flow_state_changed", "flow")

    def task_run_wrappers(self) -> tuple[tuple[str, Callable[..., Any], tuple[int, ...]], ...]:
        """``(plugin_name, function, argument picks)`` of each ``plait_task_run`` wrapper, outermost first."""
        impls = [i for i in self.pm.hook.plait_task_run.get_hookimpls() if i.wrapper]
        # A plugin that declares settings is switched on and off by the configuration.
        gated = any(self._declares(i.plugin_name) for i in impls)
        key: Any = self.pm.generation
        if gated:
            from plait import settings as declared
            from plait.config import get_config

            key = (self.pm.generation, id(get_config()), declared.generation)
        cached = self._cache.get("plait_task_run")
        if cached is not None and cached[0] == key:
            return cached[1]
        order = ("task", "context")
        calls = tuple(
            (impl.plugin_name, impl.function, tuple(order.index(a) for a in impl.argnames))
            for impl in reversed(impls)
            if self.observes(impl.plugin_name)
        )
        self._cache["plait_task_run"] = (key, calls)
        return calls

    def _declares(self, plugin_name: str) -> bool:
        record = self.pm.records.get(plugin_name)
        return record is not None and bool(record.settings)

    # -- helpers ------------------------------------------------------------------------------

    def _observer(self, hook_name: str, first: str) -> Callable[[Any, Any, Any], None] | None:
        impls = [i for i in getattr(self.pm.hook, hook_name).get_hookimpls() if self.observes(i.plugin_name)]
        if not impls:
            return None
        from plait import context as ctx_module

        strict = self.strict
        trace = self.pm._untrace is not None
        slow = slow_hook_seconds()
        order = (first, "old_state", "new_state", "context")
        calls = []
        # pluggy calls the last of get_hookimpls() first; keep that order.
        for impl in reversed(impls):
            if impl.hookwrapper or impl.wrapper:
                continue
            argnames = tuple(impl.argnames)
            if argnames == order:
                picks = None
            else:
                picks = tuple(order.index(a) for a in argnames)
            calls.append((impl.plugin_name, impl.function, picks))
        calls_t = tuple(calls)

        last_view: tuple[Any, Any] = (None, None)

        def observer(obj: Any, old: Any, new: Any) -> None:
            nonlocal last_view
            # Plugins see read-only views: a hook cannot change the run's states. The new
            # state of one change is usually the old state of the next: reuse its view.
            seen = last_view
            old_view = seen[1] if seen[0] is old else read_only(old)
            new_view = read_only(new)
            last_view = (new, new_view)
            for plugin_name, fn, picks in calls_t:
                if trace:
                    logger.info("hook %s(%s=%r, %r -> %r) -> %s", hook_name, first, obj, old, new, plugin_name)
                start = time.perf_counter()
                try:
                    if picks is None:
                        fn(obj, old_view, new_view, ctx_module)
                    else:
                        values = (obj, old_view, new_view, ctx_module)
                        fn(*[values[i] for i in picks])
                except BaseException as exc:  # SystemExit too; Ctrl-C still stops the run
                    if strict or isinstance(exc, KeyboardInterrupt):
                        raise
                    logger.error(
                        "Plugin %r raised in %s for %s %r (%s -> %s); the run goes on:\n%s",
                        plugin_name,
                        hook_name,
                        first,
                        getattr(obj, "name", obj),
                        type(old).__name__,
                        type(new).__name__,
                        traceback.format_exc().rstrip(),
                    )
                elapsed = time.perf_counter() - start
                if elapsed > slow:
                    report_slow_hook(plugin_name, hook_name, elapsed, slow)

        return observer

    def _collect(self, hook_name: str, kwargs: dict[str, Any]) -> list[tuple[str, Any]]:
        """Call each implementation of a register hook on its own, so one failure skips one plugin."""
        out = []
        caller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            if impl.hookwrapper or impl.wrapper:
                continue
            if self.pm._untrace is not None:
                logger.info("hook %s(%s) -> %s", hook_name, _short_kwargs(kwargs), impl.plugin_name)
            start = time.perf_counter()
            try:
                value = impl.function(*[kwargs[a] for a in impl.argnames])
            except BaseException as exc:  # SystemExit too; Ctrl-C still stops Plait
                if self.strict or isinstance(exc, KeyboardInterrupt):
                    raise
                logger.error(
                    "Plugin %r raised in %s; its contribution is skipped:\n%s",
                    impl.plugin_name,
                    hook_name,
                    traceback.format_exc().rstrip(),
                )
                continue
            finally:
                elapsed = time.perf_counter() - start
                slow = slow_hook_seconds()
                if elapsed > slow:
                    report_slow_hook(impl.plugin_name, hook_name, elapsed, slow)
            out.append((impl.plugin_name, value))
        return out

    def _merged(self, hook_name: str, what: str) -> dict[str, Any]:
        cached = self._cache.get(hook_name)
        if cached is not None and cached[0] == self.pm.generation:
            return cached[1]
        merged: dict[str, Any] = {}
        owners: dict[str, str] = {}
        for plugin_name, value in self._collect(hook_name, {}):
            if value is None:
                continue
            if not isinstance(value, dict):
                logger.warning(
                    "Plugin %r: %s returned %s, not a dict; ignored", plugin_name, hook_name, type(value).__name__
                )
                continue
            for key, cls in value.items():
                if key in merged:
                    logger.warning(
                        "Plugins %r and %r both offer the %s %r; using %r's",
                        owners[key],
                        plugin_name,
                        what,
                        key,
                        owners[key],
                    )
                    continue
                merged[key] = cls
                owners[key] = plugin_name
        self._cache[hook_name] = (self.pm.generation, merged)
        return merged


# --- the process's hooks -----------------------------------------------------------------------

_hooks: PlaitHooks | None = None
_hooks_lock = threading.Lock()


def get_hooks() -> PlaitHooks:
    """The process's ``PlaitHooks``: built-in plugin plus installed plugins, loaded on first use."""
    hooks = _hooks
    if hooks is not None:
        return hooks
    return _load()


def _load() -> PlaitHooks:
    global _hooks
    with _hooks_lock:
        if _hooks is None:
            pm = PlaitPluginManager()
            if _flag("PLAIT_TRACE_PLUGINS"):
                pm.enable_trace()
            pm.load_builtins()
            pm.load_entrypoints()
            _hooks = PlaitHooks(pm)
        return _hooks


def reset_hooks() -> None:
    """Forget the loaded plugins; the next ``get_hooks()`` discovers them again."""
    global _hooks
    with _hooks_lock:
        _hooks = None


@contextmanager
def use_hooks(hooks: PlaitHooks) -> Iterator[PlaitHooks]:
    """Make ``hooks`` the process's hooks inside the ``with`` block (for tests)."""
    global _hooks
    with _hooks_lock:
        previous, _hooks = _hooks, hooks
    try:
        yield hooks
    finally:
        with _hooks_lock:
            _hooks = previous


def plugin_observers() -> tuple[tuple[Callable[..., None], ...], tuple[Callable[..., None], ...], bool]:
    """``(task_observers, flow_observers, wrap_task_runs)`` for one flow run.

    The observers are empty and ``wrap_task_runs`` is false when no plugin implements the
    observer hooks or ``plait_task_run``: then the runner calls nothing per task.
    """
    hooks = get_hooks()
    if len(hooks.pm.records) > 1:  # only the built-in plugin: nothing to report on
        hooks.report_config_problems()
    task = hooks.task_observer()
    flow = hooks.flow_observer()
    return ((task,) if task else ()), ((flow,) if flow else ()), bool(hooks.task_run_wrappers())


#: Seconds a plugin's hook may take before it is reported (``PLAIT_SLOW_HOOK_SECONDS``).
DEFAULT_SLOW_HOOK_SECONDS = 1.0
_slow_reported: set[tuple[str, str]] = set()


def slow_hook_seconds() -> float:
    """The threshold above which a hook call is reported as slow: ``PLAIT_SLOW_HOOK_SECONDS`` (default 1)."""
    text = os.environ.get("PLAIT_SLOW_HOOK_SECONDS", "").strip()
    if not text:
        return DEFAULT_SLOW_HOOK_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        logger.warning(
            "PLAIT_SLOW_HOOK_SECONDS=%r is not a positive number of seconds; using %g",
            text,
            DEFAULT_SLOW_HOOK_SECONDS,
        )
        return DEFAULT_SLOW_HOOK_SECONDS
    return value


def report_slow_hook(plugin_name: str, hook_name: str, elapsed: float, threshold: float) -> None:
    """Warn, once per plugin and hook in this process, that a hook call took ``elapsed`` seconds."""
    key = (plugin_name, hook_name)
    if key in _slow_reported:
        return
    _slow_reported.add(key)
    logger.warning(
        "Plugin %r took %.2fs in %s (more than %gs): hooks run on every task run's path, so a slow "
        "hook slows the whole run. Reported once; set PLAIT_SLOW_HOOK_SECONDS to change the threshold.",
        plugin_name,
        elapsed,
        hook_name,
        threshold,
    )


def strict_plugins() -> bool:
    """``PLAIT_STRICT_PLUGINS=1``: plugin errors in observers and log handlers re-raise."""
    return _flag("PLAIT_STRICT_PLUGINS")


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _wanted(ep: Any, allow: set[str] | None, deny: set[str]) -> bool:
    keys = {ep.name, ep.distribution}
    return (allow is None or bool(keys & allow)) and not keys & deny


def _names(value: str) -> set[str]:
    return {n.strip() for n in value.split(",") if n.strip()}


def _version(dist: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _short_kwargs(kwargs: dict[str, Any]) -> str:
    parts = []
    for key, value in kwargs.items():
        text = repr(value)
        parts.append(f"{key}={text if len(text) <= 60 else text[:57] + '...'}")
    return ", ".join(parts)


def run_wrapped(runner: Callable[..., Any], task: Any, *args: Any) -> Any:
    """Run ``runner(task, *args)`` (a task run) inside every ``plait_task_run`` wrapper.

    The runner uses it only when some plugin implements the hook; the wrappers are looked up
    here, where the task runs, so this works in worker processes too.
    """
    from plait import context as ctx_module
    from plait.context import TaskRunInfo, _flow_ctx, _task_ctx

    hooks = get_hooks()
    calls = hooks.task_run_wrappers()
    if not calls:
        return runner(task, *args)
    map_index, run_count, flow_ctx = args[1], args[2], args[4]
    strict = hooks.strict
    slow = slow_hook_seconds()
    spent: dict[str, float] = {}
    values = (task, ctx_module)
    started = []
    ftoken = _flow_ctx.set(flow_ctx) if _flow_ctx.get() is not flow_ctx else None
    token = _task_ctx.set(TaskRunInfo(task, map_index, run_count))
    try:
        for plugin_name, fn, picks in calls:
            start = time.perf_counter()
            try:
                gen = fn(*[values[i] for i in picks])
                next(gen)
            except BaseException as exc:  # SystemExit too; Ctrl-C still stops the run
                if strict or isinstance(exc, KeyboardInterrupt):
                    raise
                _log_wrapper_error(plugin_name, task)
                continue
            finally:
                spent[plugin_name] = time.perf_counter() - start
            started.append((plugin_name, gen))
        try:
            state = runner(task, *args)
        except BaseException:
            for _, gen in reversed(started):
                gen.close()
            raise
        view = read_only(state)  # a wrapper sees the outcome, and cannot change it
        for plugin_name, gen in reversed(started):
            start = time.perf_counter()
            try:
                gen.send(view)
            except StopIteration:
                continue
            except BaseException as exc:
                if strict or isinstance(exc, KeyboardInterrupt):
                    raise
                _log_wrapper_error(plugin_name, task)
                continue
            finally:
                elapsed = spent[plugin_name] + time.perf_counter() - start
                if elapsed > slow:
                    report_slow_hook(plugin_name, "plait_task_run", elapsed, slow)
            gen.close()
            message = f"Plugin {plugin_name!r}: plait_task_run yielded more than once"
            if strict:
                raise RuntimeError(message)
            logger.error("%s; the rest of it was skipped", message)
        return state
    finally:
        _task_ctx.reset(token)
        if ftoken is not None:
            _flow_ctx.reset(ftoken)


def _log_wrapper_error(plugin_name: str, task: Any) -> None:
    logger.error(
        "Plugin %r raised in plait_task_run for task %r; the run goes on:\n%s",
        plugin_name,
        getattr(task, "name", task),
        traceback.format_exc().rstrip(),
    )
