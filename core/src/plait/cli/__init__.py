"""The ``plait`` command.

Each command lives in its own module of this package and is added to the group in
``_COMMANDS``; modules are imported only when the command line needs them, so ``plait --help``
stays fast.
"""

from __future__ import annotations

import importlib

import click

__all__ = ["main"]

#: command name -> "module:attribute" of its click command
_COMMANDS: dict[str, str] = {
    "run": "plait.cli.run:run",
    "plugins": "plait.cli.plugins:plugins",
    "tasks": "plait.cli.plugins:tasks",
    "plugin": "plait.cli.plugin_new:plugin",
    "visualize": "plait.cli.visualize:visualize",
    "backfill": "plait.cli.backfill:backfill",
    "config": "plait.cli.config:config",
    "register": "plait.cli.register:register",
    "flow-run": "plait.cli.flow_run:flow_run",
    "agent": "plait.cli.agent:agent",
    "execute": "plait.cli.execute:execute",
    "concurrency-limit": "plait.cli.concurrency:concurrency_limit",
}


class _LazyGroup(click.Group):
    """Imports each built-in command when needed; asks plugins for theirs
    (``plait_register_commands``) only when a name is not built in or commands are listed."""

    _plugins_added = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return sorted({*super().list_commands(ctx), *_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        if name in _COMMANDS:
            module, attr = _COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attr)
        self._add_plugin_commands()
        return super().get_command(ctx, name)

    def _add_plugin_commands(self) -> None:
        if self._plugins_added:
            return
        self._plugins_added = True
        from plait.hooks.manager import get_hooks

        get_hooks().register_commands(self)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="plait", prog_name="plait")
def main() -> None:
    """Plait: run and manage workflows."""
    import os

    _load_config_or_exit()

    if os.environ.get("PLAIT_TRACE_PLUGINS"):
        from plait.hooks.manager import _flag

        if _flag("PLAIT_TRACE_PLUGINS"):
            # Trace lines are log records; outside a flow run nothing would show them otherwise.
            from plait.logging import configure_logging

            configure_logging()


def _load_config_or_exit() -> None:
    """Read the configuration before any command: a named-but-missing or invalid file, or a bad
    ``[logging]`` value, stops every command with exit code 2 and the file, line and reason."""
    from plait.config import get_config
    from plait.errors import ConfigError

    try:
        get_config().values("logging")
    except ConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None
