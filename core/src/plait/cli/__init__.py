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
    "visualize": "plait.cli.visualize:visualize",
    "backfill": "plait.cli.backfill:backfill",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None or name not in _COMMANDS:
            return command
        module, attr = _COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="plait", prog_name="plait")
def main() -> None:
    """Plait: run and manage workflows."""
