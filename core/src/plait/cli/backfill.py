"""``plait backfill FILE.py[:FLOW] --start DATE --end DATE``: run a flow once per scheduled time."""

from __future__ import annotations

import logging
import sys
from datetime import timedelta
from typing import Any

import click

from plait.cli.durations import parse_duration
from plait.cli.loading import load_flow
from plait.cli.run import parse_parameters


@click.command()
@click.argument("flow_spec", metavar="FILE.py[:FLOW]")
@click.option("--start", required=True, help="First date or time: 2026-01-01 or 2026-01-01T09:00 (included).")
@click.option("--end", required=True, help="Last date or time (included; a date covers the whole day).")
@click.option("--interval", default=None, help="Run every INTERVAL (1d, 6h, 30m) instead of the flow's schedule.")
@click.option("--param", "-p", "params", multiple=True, metavar="NAME=VALUE", help="A flow parameter (repeatable).")
@click.option("--concurrency", "-c", default=1, show_default=True, type=click.IntRange(min=1), help="Runs at once.")
@click.option("--executor", "-e", default=None, help="Executor of each run: local, threads, processes, or a plugin's.")
@click.option("--timezone", "-z", default=None, help="Zone of dates without one (default: the schedule's, else UTC).")
@click.option("--dry-run", is_flag=True, help="List the times that would run, and run nothing.")
@click.option("--verbose", "-v", is_flag=True, help="Show the runs' log lines (hidden behind the progress bar).")
def backfill(
    flow_spec: str,
    start: str,
    end: str,
    interval: str | None,
    params: tuple[str, ...],
    concurrency: int,
    executor: str | None,
    timezone: str | None,
    dry_run: bool,
    verbose: bool,
) -> None:
    """Run the flow in FILE.py once for each scheduled time from --start to --end.

    The times come from the flow's schedule, or every --interval (one day by default for a
    flow without a schedule). Each run has scheduled_start_time (and date, today, ...) set to
    its time. Exits with status 1 if any run did not succeed.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from plait.cli.config import stop_on_config_errors
    from plait.engine.scheduling import backfill as run_backfill
    from plait.engine.scheduling import backfill_times
    from plait.errors import PlaitError
    from plait.logging import configure_logging

    stop_on_config_errors()
    flow = load_flow(flow_spec)
    parameters = parse_parameters(params)
    step: timedelta | None = parse_duration(interval) if interval else None
    console = Console()
    try:
        events = backfill_times(flow, start, end, interval=step, timezone=timezone)
    except PlaitError as exc:
        raise click.UsageError(str(exc)) from None
    if dry_run:
        for event in events:
            extra = f"  {event.parameter_defaults}" if event.parameter_defaults else ""
            click.echo(f"{event.start_time.isoformat()}{extra}")
        click.echo(f"{len(events)} run(s) of flow {flow.name!r} would run.")
        return
    if not events:
        click.echo(f"No scheduled time of flow {flow.name!r} between {start} and {end}: nothing to run.")
        return
    configure_logging()
    if not verbose:
        logging.getLogger("plait").setLevel(logging.WARNING)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[red]{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as progress:
        bar = progress.add_task(f"backfill {flow.name}", total=len(events), failed=0)
        failed = 0

        def on_run(run) -> None:
            nonlocal failed
            failed += not run.state.is_successful()
            progress.update(bar, advance=1, failed=failed)

        try:
            report = run_backfill(
                flow,
                start,
                end,
                parameters=parameters,
                max_concurrency=concurrency,
                executor=executor,
                interval=step,
                timezone=timezone,
                on_run=on_run,
            )
        except PlaitError as exc:
            raise click.UsageError(str(exc)) from None
    table = Table(title=f"Backfill of flow {flow.name!r}")
    table.add_column("scheduled start time")
    table.add_column("state")
    table.add_column("duration", justify="right")
    for run in report:
        colour = "green" if run.state.is_successful() else "red"
        table.add_row(run.scheduled_start_time.isoformat(), f"[{colour}]{run.state.name}[/]", f"{run.duration:.3f}s")
    console.print(table)
    console.print(f"{len(report.succeeded)} of {len(report)} run(s) succeeded.")
    for run in report.failed:
        console.print(f"[red]{run.scheduled_start_time.isoformat()}: {escape(_why(run.state))}[/]", highlight=False)
    sys.exit(0 if report.is_successful() else 1)


def _why(state: Any) -> str:
    """The flow run's message and its failed tasks' messages."""
    tasks = state.result if isinstance(state.result, dict) else {}
    failed = [f"{getattr(t, 'name', t)}: {s.message}" for t, s in tasks.items() if s.is_failed()]
    message = state.message or state.name
    return f"{message} ({'; '.join(failed)})" if failed else message
