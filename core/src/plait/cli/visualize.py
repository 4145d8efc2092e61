"""``plait visualize FILE.py[:FLOW] -o flow.svg``: draw a flow's graph with Graphviz."""

from __future__ import annotations

from pathlib import Path

import click

from plait.cli.loading import load_flow


@click.command()
@click.argument("flow_spec", metavar="FILE.py[:FLOW]")
@click.option(
    "--output",
    "-o",
    default=None,
    metavar="PATH",
    help="File to write (default: FLOW_NAME.FORMAT here).",
)
@click.option(
    "--format", "-f", "fmt", default=None, help="svg, png, pdf or dot (default: from the output's extension, else svg)."
)
def visualize(flow_spec: str, output: str | None, fmt: str | None) -> None:
    """Draw the flow in FILE.py (pick one with FILE.py:FLOW) with Graphviz's dot."""
    from plait.errors import PlaitError

    flow = load_flow(flow_spec)
    if fmt is None:
        suffix = Path(output).suffix.lstrip(".") if output else ""
        fmt = suffix or "svg"
    target = output or f"{flow.name}.{fmt}"
    try:
        path = flow.visualize(filename=target, format=fmt)
    except PlaitError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Wrote {path}")
