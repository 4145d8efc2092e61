"""plait-server's Plait plugin: adds ``plait server ...`` to the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plait import hookimpl

if TYPE_CHECKING:
    import click


@hookimpl
def plait_register_commands(cli: click.Group) -> None:
    from plait_server.cli import server

    cli.add_command(server)
