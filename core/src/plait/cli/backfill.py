"""``plait backfill FILE.py[:FLOW] --start DATE --end DATE``: run a flow once per scheduled time."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from plait.cli.durations import parse_interval
from plait.cli.loading import load_flow
from plait.cli.run import PlaitUsageError, check_cli_parameters, executor_with_options, parse_parameters
from plait.secrets import mask

#: Above this many runs, a backfill asks before it starts (``--yes`` answers for you).
CONFIRM_ABOVE = 100


@click.command()
@click.argument("flow_spec", metavar="FILE.py[:FLOW]")
@click.option("--start", required=True, help="First date or time: 2026-01-01 or 2026-01-01T09:00 (included).")
@click.option("--end", required=True, help="Last date or time (included; a date covers the whole day).")
@click.option(
    "--interval",
    default=None,
    help="Run every INTERVAL instead of the flow's schedule: 30m, 6h, 1d, 2w, 1mo (months), 1h30m. "
    "Units are lowercase; 'M' is refused (minutes or months?).",
)
@click.option("--param", "-p", "params", multiple=True, metavar="NAME=VALUE", help="A flow parameter (repeatable).")
@click.option("--allow-nan", is_flag=True, help="Read NaN and Infinity in --param values as floats.")
@click.option("--concurrency", "-c", default=1, show_default=True, type=click.IntRange(min=1), help="Runs at once.")
@click.option("--executor", "-e", default=None, help="Executor of each run: local, threads, processes, or a plugin's.")
@click.option(
    "--executor-option",
    "-E",
    "executor_options",
    multiple=True,
    metavar="NAME=VALUE",
    help="An option of the executor (repeatable), as in plait run: -E max_workers=4.",
)
@click.option("--address", default=None, metavar="URL", help="The cluster's scheduler, as in plait run.")
@click.option("--timezone", "-z", default=None, help="Zone of dates without one (default: the schedule's, else UTC).")
@click.option("--dry-run", is_flag=True, help="Check everything and list the times that would run; run nothing.")
@click.option("--yes", "-y", is_flag=True, help=f"Do not ask before more than {CONFIRM_ABOVE} runs.")
@click.option("--verbose", "-v", is_flag=True, help="Show the runs' log lines (hidden behind the progress bar).")
def backfill(
    flow_spec: str,
    start: str,
    end: str,
    interval: str | None,
    params: tuple[str, ...],
    allow_nan: bool,
    concurrency: int,
    executor: str | None,
    executor_options: tuple[str, ...],
    address: str | None,
    timezone: str | None,
    dry_run: bool,
    yes: bool,
    verbose: bool,
) -> None:
    """Run the flow in FILE.py once for each scheduled time from --start to --end.

    The times come from the flow's schedule, or every --interval (one day by default for a
    flow without a schedule). Each run has scheduled_start_time (and date, today, ...) set to
    its time. --dry-run checks the parameters and the executor exactly as a real backfill
    would, then lists the times. Above 100 runs it asks first, unless --yes. Exits with status
    1 if any run did not succeed, 2 for bad input.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from plait.cli.config import stop_on_config_errors
    from plait.cli.output import stdout_console
    from plait.engine.runner import check_parameters
    from plait.engine.scheduling import backfill as run_backfill
    from plait.engine.scheduling import backfill_times
    from plait.errors import PlaitError
    from plait.logging import configure_logging

    stop_on_config_errors()
    parameters = parse_parameters(params, allow_nan=allow_nan)
    options = parse_parameters(executor_options, option="--executor-option")
    if address is not None:
        if "address" in options:
            raise click.UsageError("give the address once: --address or --executor-option address=..., not both")
        options["address"] = address
    step = parse_interval(interval) if interval else None
    flow = load_flow(flow_spec)
    console = stdout_console()
    try:
        events = backfill_times(flow, start, end, interval=step, timezone=timezone)
        flow.validate()
    except PlaitError as exc:
        raise PlaitUsageError(str(exc)) from None
    # The same checks as the real runs, before anything runs (and in a dry run): each run's
    # parameters are the schedule's defaults for its time plus --param.
    check_cli_parameters(flow, {**(events[0].parameter_defaults if events else {}), **parameters})
    try:
        for event in events:
            check_parameters(flow, {**event.parameter_defaults, **parameters})
    except PlaitError as exc:
        raise PlaitUsageError(str(exc)) from None
    run_executor: Any = executor
    if options:
        run_executor = executor_with_options(executor if executor is not None else flow.executor, options)
    else:
        from plait.engine.executors import get_executor

        try:
            get_executor(executor if executor is not None else flow.executor)
        except PlaitError as exc:
            raise PlaitUsageError(str(exc)) from None
    if dry_run:
        for event in events:
            # check_parameters registered the secret parameters' values: never shown here
            extra = f"  {mask(str(event.parameter_defaults))}" if event.parameter_defaults else ""
            click.echo(f"{event.start_time.isoformat()}{extra}")
        click.echo(f"{len(events)} run(s) of flow {flow.name!r} would run.")
        return
    if not events:
        click.echo(f"No scheduled time of flow {flow.name!r} between {start} and {end}: nothing to run.")
        return
    if len(events) > CONFIRM_ABOVE and not yes:
        first, last = events[0].start_time.isoformat(), events[-1].start_time.isoformat()
        question = f"Run flow {flow.name!r} {len(events)} times, from {first} to {last}?"
        if not sys.stdin.isatty():
            raise PlaitUsageError(
                f"{question} That is more than {CONFIRM_ABOVE} runs: add --yes to confirm "
                "(or --dry-run to list them first)"
            )
        if not click.confirm(question, default=False):
            click.echo("Nothing was run.")
            sys.exit(1)
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
                executor=run_executor,
                interval=step,
                timezone=timezone,
                on_run=on_run,
            )
        except PlaitError as exc:
            raise PlaitUsageError(str(exc)) from None
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
