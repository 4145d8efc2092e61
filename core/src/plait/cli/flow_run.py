"""``plait flow-run create|list|show|logs|cancel``: runs on a Plait server."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from plait.cli.register import ServerCommandError

if TYPE_CHECKING:
    from plait.client import Client

__all__ = ["flow_run"]

_FINISHED = {"SUCCESS", "FAILED", "CANCELLED"}


@click.group("flow-run")
def flow_run() -> None:
    """Create, list, inspect and cancel flow runs on the Plait server."""


@flow_run.command()
@click.argument("flow")
@click.option("--project", default=None, help="The flow's project (when several have a flow of that name).")
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A parameter (repeatable); VALUE is read as JSON when it is valid JSON.",
)
@click.option("--idempotency-key", default=None, help="At most one run per key: repeating the command returns it.")
@click.option("--labels", default=None, metavar="A,B", help="The run's labels (default: the flow's).")
def create(
    flow: str, project: str | None, params: tuple[str, ...], idempotency_key: str | None, labels: str | None
) -> None:
    """Create a run of FLOW (its name, or a flow id)."""
    from plait.cli.run import parse_parameters

    parameters = parse_parameters(list(params))
    with _client() as client:
        by_id = _looks_like_id(flow)
        run = client.create_flow_run(
            flow_id=flow if by_id else None,
            flow_name=None if by_id else flow,
            project=project,
            parameters=parameters,
            idempotency_key=idempotency_key,
            labels=None if labels is None else [x.strip() for x in labels.split(",") if x.strip()],
        )
    note = "" if run.created_now else " (already existed with this idempotency key)"
    click.echo(f"Flow run {run.name} {run.id}: {run.state}{note}")


@flow_run.command("list")
@click.option("--flow", "flow_name", default=None, help="Only runs of this flow (by name).")
@click.option("--state", "states", multiple=True, help="Only runs in this state (repeatable): Running, Failed...")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
def list_runs(flow_name: str | None, states: tuple[str, ...], limit: int) -> None:
    """List flow runs, newest first."""
    from rich.table import Table

    from plait.cli.output import stdout_console

    with _client() as client:
        runs, total = client.flow_runs(flow_name=flow_name, states=list(states) or None, limit=limit)
    table = Table(title=f"{len(runs)} of {total} runs")
    # Ids are what users copy into the next command: never wrapped or cut.
    table.add_column("id", no_wrap=True, min_width=36)
    for header in ("name", "flow", "state", "scheduled", "started", "ended"):
        table.add_column(header, overflow="fold")
    for r in runs:
        table.add_row(
            r.id,
            r.name,
            r.flow_name or "",
            r.state,
            _when(r.scheduled_start_time),
            _when(r.start_time),
            _when(r.end_time),
        )
    stdout_console().print(table)


@flow_run.command()
@click.argument("flow_run_id")
def show(flow_run_id: str) -> None:
    """Show a flow run and its task runs."""
    from rich.table import Table

    from plait.cli.output import stdout_console

    with _client() as client:
        run = client.flow_run(flow_run_id)
        task_runs, total = client.task_runs(flow_run_id)
    console = stdout_console()
    console.print(
        f"[bold]{run.name}[/] {run.id}  flow {run.flow_name!r}  state [bold]{run.state}[/]"
        + (f": {run.state_message}" if run.state_message else "")
    )
    console.print(
        f"scheduled {_when(run.scheduled_start_time)}  started {_when(run.start_time)}  "
        f"ended {_when(run.end_time)}  parameters {run.parameters}  labels {run.labels}"
    )
    table = Table(title=f"{len(task_runs)} of {total} task runs")
    for header in ("task", "map index", "state", "runs", "started", "ended", "result location", "message"):
        table.add_column(header, overflow="fold")  # a location is folded onto more lines, never cut
    for t in task_runs:
        table.add_row(
            t.task_slug,
            "" if t.map_index < 0 else str(t.map_index),
            t.state,
            str(t.run_count),
            _when(t.start_time),
            _when(t.end_time),
            t.result_location or "",
            (t.state_message or "")[:80],
        )
    console.print(table)


@flow_run.command()
@click.argument("flow_run_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the run finishes.")
@click.option(
    "--level",
    default=None,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Only lines at this level or above.",
)
@click.option("--interval", type=float, default=1.0, show_default=True, help="With --follow: seconds between polls.")
def logs(flow_run_id: str, follow: bool, level: str | None, interval: float) -> None:
    """Print a flow run's logs in order (--follow: until the run finishes)."""
    min_level = None if level is None else logging.getLevelName(level.upper())
    with _client() as client:
        for line in _stream_logs(client, flow_run_id, follow, min_level, interval, time.sleep):
            where = (
                f" {line.task_slug}"
                + (f"[{line.map_index}]" if line.map_index is not None and line.map_index >= 0 else "")
                if line.task_slug
                else ""
            )
            click.echo(
                f"{line.timestamp:%Y-%m-%d %H:%M:%S} {logging.getLevelName(line.level):<7}{where} | {line.message}"
            )


@flow_run.command()
@click.argument("flow_run_id")
def cancel(flow_run_id: str) -> None:
    """Cancel a flow run (at once if it has not started; at its next task otherwise)."""
    with _client() as client:
        run = client.cancel_flow_run(flow_run_id)
    click.echo(f"Flow run {run.name} {run.id}: {run.state}")


@flow_run.command()
@click.argument("flow_run_id")
def restart(flow_run_id: str) -> None:
    """Restart a failed (or cancelled) flow run from where it failed.

    Its failed task runs go back to Pending and the run to Scheduled; an agent picks it up and
    the new attempt reuses the stored results of the task runs that succeeded (tasks with a
    result / checkpoint), running only the rest.
    """
    with _client() as client:
        run = client.restart_flow_run(flow_run_id)
    click.echo(f"Flow run {run.name} {run.id}: {run.state} (restarted; an agent will pick it up)")


# --- helpers ---------------------------------------------------------------------------------------


def _stream_logs(
    client: Client,
    flow_run_id: str,
    follow: bool,
    min_level: int | None,
    interval: float,
    sleep: Callable[[float], None],
) -> Iterator[Any]:
    cursor = None
    while True:
        lines, cursor, more = client.logs(flow_run_id, after=cursor, min_level=min_level)
        yield from lines
        if more:
            continue
        if not follow:
            return
        if client.flow_run(flow_run_id).state_type in _FINISHED:
            # One last page: lines written between our read and the final state.
            lines, cursor, more = client.logs(flow_run_id, after=cursor, min_level=min_level)
            yield from lines
            if not more:
                return
            continue
        sleep(interval)


@contextmanager
def _client() -> Iterator[Client]:
    from plait.client import Client
    from plait.errors import PlaitError

    try:
        with Client() as client:
            yield client
    except PlaitError as exc:
        raise ServerCommandError(str(exc)) from None


def _looks_like_id(text: str) -> bool:
    import uuid

    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _when(value: Any) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")
