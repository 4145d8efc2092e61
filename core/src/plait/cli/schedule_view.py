"""Running a flow on its schedule from the command line (``plait run --schedule``).

``run_on_schedule(flow, parameters, executor)`` prints the next runs, then runs the flow at
each scheduled time until Ctrl-C (a run in progress finishes first; Ctrl-C again interrupts
it), printing one line per run. It returns the last run's state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from datetime import datetime

    from plait.engine.executors import Executor
    from plait.engine.scheduling import Clock
    from plait.flow import Flow
    from plait.states import State

__all__ = ["run_on_schedule", "show_next_runs"]


def show_next_runs(flow: Flow, count: int = 5, clock: Clock | None = None, after: datetime | None = None) -> datetime:
    """Print a table of the flow's next ``count`` scheduled times after ``after`` (default: the
    clock's now); the time the table starts from."""
    from rich.table import Table

    from plait.cli.output import stdout_console
    from plait.engine.scheduling import SystemClock

    if flow.schedule is None:
        raise click.UsageError(f"Flow {flow.name!r} has no schedule; give it one with Flow(..., schedule=...)")
    if after is None:
        after = (clock if clock is not None else SystemClock()).now()
    table = Table(title=f"Next runs of flow {flow.name!r}")
    table.add_column("scheduled start time")
    table.add_column("parameter defaults")
    for event in flow.schedule.next(count, after=after):
        table.add_row(
            event.start_time.isoformat(), ", ".join(f"{k}={v!r}" for k, v in event.parameter_defaults.items())
        )
    stdout_console().print(table)
    return after


def run_on_schedule(
    flow: Flow,
    parameters: dict[str, Any] | None = None,
    executor: Executor | str | None = None,
    *,
    max_runs: int | None = None,
    clock: Clock | None = None,
) -> State:
    """Show the next runs, then run ``flow`` on its schedule until Ctrl-C; the last state."""
    from plait.engine.scheduling import ScheduleRunner
    from plait.errors import PlaitError

    # The runner starts from the table's time: a scheduled time passing between the two (a
    # 1-second schedule, a slow start) would otherwise make the first run not the table's first.
    listed_after = show_next_runs(flow, clock=clock)
    click.echo("Running on schedule; press Ctrl-C to stop.", err=True)

    def on_waiting(event: Any) -> None:
        click.echo(f"Waiting for {event.start_time.isoformat()}", err=True)

    def on_run(event: Any, state: State, duration: float) -> None:
        click.echo(f"{event.start_time.isoformat()}  {state.name}  {duration:.3f}s")

    runner = ScheduleRunner(
        flow,
        parameters=parameters,
        executor=executor,
        max_runs=max_runs,
        clock=clock,
        on_waiting=on_waiting,
        on_run=on_run,
        after=listed_after,
    )
    try:
        return runner.run()
    except PlaitError as exc:
        raise click.UsageError(str(exc)) from None
