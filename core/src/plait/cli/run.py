"""``plait run FILE.py[:FLOW]``: run a flow with a live view of its task states."""

from __future__ import annotations

import sys

import click

from plait.cli.loading import load_flow


@click.command()
@click.argument("flow_spec", metavar="FILE.py[:FLOW]")
@click.option("--param", "-p", "params", multiple=True, metavar="NAME=VALUE", help="A flow parameter (repeatable).")
@click.option("--executor", "-e", default=None, help="Executor name: local, threads, processes, or a plugin's.")
def run(flow_spec: str, params: tuple[str, ...], executor: str | None) -> None:
    """Run the flow in FILE.py (pick one with FILE.py:FLOW)."""
    flow = load_flow(flow_spec)
    parameters = dict(p.split("=", 1) for p in params)
    state = flow.run(parameters=parameters, executor=executor)
    for task, task_state in state.result.items():
        click.echo(f"{task.name}: {task_state.name}")
    sys.exit(0 if state.is_successful() else 1)
