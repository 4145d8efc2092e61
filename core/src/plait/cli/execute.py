"""``plait execute flow-run ID``: run one flow run of a Plait server here (what agents start)."""

from __future__ import annotations

import sys

import click

from plait.cli.register import ServerCommandError

__all__ = ["execute"]


@click.group()
def execute() -> None:
    """Execute work the Plait server holds, in this process."""


@execute.command("flow-run")
@click.argument("flow_run_id")
def flow_run(flow_run_id: str) -> None:
    """Execute flow run FLOW_RUN_ID: load its flow from its storage, run it, report to the server.

    Agents start this with the server's URL and a run-scoped key in the environment. Run by
    hand, it claims a Scheduled run first. Exit codes: 0 success, 1 the run failed or was
    cancelled, 2 it could not start, 3 its reports could not be delivered, 4 the server gave
    the run to another process.
    """
    from plait.errors import PlaitError
    from plait.execution import execute_flow_run

    try:
        code = execute_flow_run(flow_run_id)
    except PlaitError as exc:
        raise ServerCommandError(str(exc)) from None
    sys.exit(code)
