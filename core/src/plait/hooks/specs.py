"""The hook specifications: every hook a Plait plugin can implement.

A plugin is a module (or an object) with functions named after these hooks and marked with
``@plait.hookimpl``. An implementation may take any subset of a hook's arguments, by name;
an argument name the hook does not have, or a ``plait_*`` function that is not a hook here,
makes the plugin fail to load (with a warning naming it), and the rest of Plait keeps working.

Two kinds of hooks:

- *register* hooks (``plait_register_*``) are collected: every implementation is called and
  their results are merged. They are called once per process (or per command) and cached.
- *observer* hooks (``plait_*_state_changed``) are called on events. They return nothing,
  and an exception in one is logged with the plugin's name and never changes the run
  (``PLAIT_STRICT_PLUGINS=1`` re-raises, for plugin authors' tests). A hook that no plugin
  implements costs nothing: the runner looks implementations up once per flow run.

Implementations run in pluggy's order: the plugin registered last runs first, and
``@plait.hookimpl(tryfirst=True)`` / ``(trylast=True)`` move an implementation to the front
or back. Plait promises no other order. ``docs/hooks.md`` is the user-facing reference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plait.hooks.markers import hookspec

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Generator
    from types import ModuleType

    import click

    from plait.agents import Agent
    from plait.config import Config
    from plait.engine.executors import Executor
    from plait.events import ServerEvent
    from plait.flow import Flow
    from plait.settings import Settings
    from plait.states import State
    from plait.storage import Storage
    from plait.tasks import Task

__all__ = [
    "plait_flow_state_changed",
    "plait_register_agents",
    "plait_register_commands",
    "plait_register_executors",
    "plait_register_log_handlers",
    "plait_register_result_types",
    "plait_register_settings",
    "plait_register_storage",
    "plait_register_tasks",
    "plait_server_event",
    "plait_task_run",
    "plait_task_state_changed",
]


@hookspec
def plait_register_tasks() -> list[Task | Callable[..., Any]]:
    """Offer tasks to the task library.

    Called when the library is listed (``plait tasks``) or a task is looked up by name
    (``plait.hooks.manager.get_hooks().register_tasks()``).

    Returns:
        A list of ``Task`` instances, ``Task`` subclasses or ``@task`` functions. Each one is
        listed under its name with the first line of its docstring.

    Example::

        @plait.hookimpl
        def plait_register_tasks():
            return [post_message, SlackTask]
    """


@hookspec
def plait_register_result_types() -> dict[str, type]:
    """Offer result types, by the URL scheme of the locations they store at.

    Called once per process, the first time a result type is looked up.

    Returns:
        ``{scheme: ResultClass}``, e.g. ``{"s3": S3Result}`` makes ``result="s3://bucket/{task_name}"``
        use ``S3Result``. When two plugins offer the same scheme the first in call order wins
        and a warning names both.
    """


@hookspec
def plait_register_executors() -> dict[str, type[Executor]]:
    """Offer executors, by the name ``flow.run(executor=...)`` and ``plait run --executor`` know.

    Called once per process, the first time an executor is looked up by name. The core's
    ``local``, ``threads`` and ``processes`` come through this hook too.

    Returns:
        ``{name: ExecutorClass}``, e.g. ``{"dask": DaskExecutor}``; each class subclasses
        ``plait.executors.Executor``. When two plugins offer the same name the first in
        call order wins and a warning names both.
    """


@hookspec
def plait_register_storage() -> dict[str, type[Storage]]:
    """Offer storage kinds: where registered flows' code lives, by the kind's name.

    Called once per process, the first time a storage kind is looked up: by ``plait register
    FILE --storage LOCATION`` (a ``LOCATION`` such as ``s3://bucket/flows`` picks the kind
    named like its URL scheme) and where an agent loads a registered flow from the storage
    reference the server keeps. The core's ``file`` and ``module`` come through this hook too.

    Returns:
        ``{type: StorageClass}``, e.g. ``{"s3": S3Storage}``; each class subclasses
        ``plait.storage.Storage`` and has ``type`` set to its key. When two plugins offer the
        same kind the first in call order wins and a warning names both.
    """


@hookspec
def plait_register_agents() -> dict[str, type[Agent]]:
    """Offer agent kinds: what ``plait agent start --type NAME`` runs flow runs with.

    Called once per process, the first time an agent kind is looked up (by ``plait agent
    start``, and to list the kinds in its ``--help``). The core's ``local`` kind (each flow run
    in a subprocess of the agent, in its own process group) comes through this hook too.

    Returns:
        ``{type: AgentClass}``, e.g. ``{"docker": DockerAgent}``; each class subclasses
        ``plait.agents.Agent``, has ``type`` set to its key and implements ``start_run``
        (see docs/orchestration.md, "Writing an agent kind"). When two plugins offer the same
        kind the first in call order wins and a warning names both.
    """


@hookspec
def plait_register_log_handlers(config: Config) -> list[logging.Handler]:
    """Offer ``logging.Handler`` objects to attach to the ``plait`` logger.

    Called once per process, when Plait sets up logging (at the first flow run).

    Args:
        config: Plait's configuration (``plait.config.Config``); read your own section with
            ``config.plugin_section("myplugin")``.

    Returns:
        Handlers to attach. Plait adds its run-context filter (every record carries
        ``flow_name``, ``flow_run_id``, ``task_name``, ``task_full_name``, ``map_index``) and
        its secret-masking filter to each. A handler that raises is reported once with the
        plugin's name and never stops a run.
    """


@hookspec
def plait_register_commands(cli: click.Group) -> None:
    """Add commands to the ``plait`` command line.

    Called when the ``plait`` command starts and needs a command it does not know itself
    (or lists its commands, as ``plait --help`` does).

    Args:
        cli: the ``plait`` click group; call ``cli.add_command(my_command)``.
    """


@hookspec
def plait_register_settings() -> Settings | list[Settings]:
    """Declare the plugin's config section: its keys, their types, defaults and which are secrets.

    Called once, when the plugin is loaded. From the declaration Plait reports unknown keys
    (with the closest declared name) and bad values (naming the key), reads environment
    overrides as the declared types, shows the plugin as *configured*, *not configured* or
    *misconfigured* in ``plait plugins``, prints the section in ``plait config``, and calls the
    plugin's observer hooks (``plait_*_state_changed``, ``plait_task_run``) only while it is
    configured (see ``Settings(observe_when=...)``): an installed plugin nobody configured
    costs a flow run nothing.

    Returns:
        A ``plait.settings.Settings`` (or a list of them), e.g.
        ``Settings("plugins.pager", Setting("url_secret", str), requires=AnyOf("url_secret"))``.
        An exception here is logged with the plugin's name; the plugin then has no declaration.

    Example::

        from plait.settings import AnyOf, Setting, Settings

        @plait.hookimpl
        def plait_register_settings():
            return Settings(
                "plugins.pager",
                Setting("url_secret", str, help="the plait secret holding the pager URL"),
                Setting("timeout", float, 10.0, help="seconds per request"),
                requires=AnyOf("url_secret"),
            )
    """


@hookspec
def plait_flow_state_changed(flow: Flow, old_state: State, new_state: State, context: ModuleType) -> None:
    """Observe every state change of every flow run.

    Called in the driver process after the flow's own state handlers, with the state they
    settled on (``Pending -> Running``, then ``Running -> Success | Failed | ...``).

    Args:
        flow: the flow being run.
        old_state: the state the flow run leaves.
        new_state: the state it enters.
        context: the ``plait.context`` module, so reading it is free: ``context.flow_name``,
            ``context.flow_run_id``, ``context.get("parameters")``. It reflects the run only
            during the call; keep ``context.to_dict()`` if you need it later.

    Returns:
        Nothing; the return value is ignored. An exception is logged with the plugin's
        name and does not change the flow run.
    """


@hookspec
def plait_task_state_changed(task: Task, old_state: State, new_state: State, context: ModuleType) -> None:
    """Observe every state change of every task run of every flow.

    Called after the task's own state handlers, with the state they settled on: for one
    plain run ``Pending -> Running`` then ``Running -> Success`` (or ``Failed``,
    ``Retrying``, ``Skipped``...). A mapped task's parent and each of its children report
    their own changes. With the ``processes`` executor the calls happen in the driver
    process, replayed from what the worker recorded.

    Args:
        task: the task (for a mapped child, the mapped task; ``context.map_index`` says which).
        old_state: the state the task run leaves.
        new_state: the state it enters.
        context: the ``plait.context`` module: ``context.task_full_name``,
            ``context.map_index``, ``context.flow_run_id``, ``context.task_run_count``...
            Valid only during the call (``context.to_dict()`` makes a copy).

    Returns:
        Nothing; the return value is ignored. An exception is logged with the plugin's
        name and does not change the task run.

    Example, alert on every failure::

        @plait.hookimpl
        def plait_task_state_changed(task, new_state, context):
            if new_state.is_failed():
                send_alert(f"{context.flow_name}: {context.task_full_name} failed: {new_state.message}")
    """


@hookspec
def plait_server_event(event: ServerEvent) -> None:
    """Observe what the Plait server notices on its own: runs whose process died, late runs,
    lost agents.

    Called in the *server* process (``plait server start`` or ``plait server scheduler``), on a
    background thread, once per occurrence even when several server processes run (see
    ``plait.events``). This is how alerts arrive when the flow-run process that would have sent
    them is dead.

    Args:
        event: a ``plait.events.ServerEvent``: ``kind`` (``flow_run_rescheduled``,
            ``flow_run_crashed``, ``flow_run_late``, ``agent_lost``), ``message``, ``time``,
            and ``flow_name``, ``flow_run_id``, ``state``, ``agent_name`` where they apply.

    Returns:
        Nothing; the return value is ignored. An exception is logged with the plugin's name
        and never stops the server's loops.

    Example::

        @plait.hookimpl
        def plait_server_event(event):
            if event.kind in ("flow_run_crashed", "agent_lost"):
                page_someone(event.message)
    """


@hookspec
def plait_task_run(task: Task, context: ModuleType) -> Generator[None, State, State]:
    """Wrap every task run: code before ``yield`` runs before it, code after runs after it.

    Called around each task run (each try of a retried task, each child of a mapped task),
    where the run executes: in a worker thread with the ``threads`` executor, in the worker
    process with ``processes``. Implementations must be generators marked
    ``@plait.hookimpl(wrapper=True)``; the first registered wrapper is the innermost, as in
    pluggy. When no plugin implements the hook, task runs are not wrapped at all.

    Args:
        task: the task about to run.
        context: the ``plait.context`` module, describing this task run (``context.map_index``,
            ``context.task_run_count``...).

    Returns:
        The ``yield`` gives the run's final state (``Success``, ``Failed``, ``Retrying``...);
        return it. The state cannot be replaced here (state handlers do that), so the value
        returned is not used. An exception in the wrapper is logged with the plugin's name
        and never changes the run (``PLAIT_STRICT_PLUGINS=1`` re-raises).

    Example, timing every task run::

        @plait.hookimpl(wrapper=True)
        def plait_task_run(task, context):
            start = time.perf_counter()
            state = yield
            DURATIONS.labels(task.name).observe(time.perf_counter() - start)
            return state
    """
