"""plait-server's Plait plugin: adds ``plait server ...`` to the command line and declares ``[server]``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plait import hookimpl

if TYPE_CHECKING:
    import click


@hookimpl
def plait_register_commands(cli: click.Group) -> None:
    from plait_server.cli import server

    cli.add_command(server)


@hookimpl
def plait_register_settings() -> Any:
    """``[server]``, declared (``plait.settings``): it replaces the core's client-only declaration."""
    from plait_server.settings import SETTINGS

    return SETTINGS
