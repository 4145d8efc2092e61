"""``plait concurrency-limit set|list|delete``: limits on task runs per tag and flow runs per label."""

from __future__ import annotations

import click

__all__ = ["concurrency_limit"]

_KIND = click.option(
    "--label",
    "by_label",
    is_flag=True,
    help="A limit on flow runs with this label (checked when agents claim runs) instead of task runs with this tag.",
)


@click.group("concurrency-limit")
def concurrency_limit() -> None:
    """Concurrency limits: task runs per tag (across flow runs), flow runs per label."""


@concurrency_limit.command("set")
@click.argument("name")
@click.argument("limit", type=click.IntRange(0, 1_000_000))
@_KIND
def set_limit(name: str, limit: int, by_label: bool) -> None:
    """At most LIMIT task runs with tag NAME run at once, across every flow run (--label: flow runs)."""
    from plait.cli.flow_run import _client

    with _client() as client:
        info = client.set_concurrency_limit(name, limit, "label" if by_label else "tag")
    what = "flow runs with label" if info.kind == "label" else "task runs with tag"
    click.echo(f"At most {info.max_running} {what} {info.name!r} at once ({info.in_use} now).")


@concurrency_limit.command("list")
def list_limits() -> None:
    """List the limits and how much of each is in use."""
    from rich.table import Table

    from plait.cli.flow_run import _client
    from plait.cli.output import stdout_console

    with _client() as client:
        limits = client.concurrency_limits()
    table = Table("kind", "name", "limit", "in use", title=f"{len(limits)} concurrency limits")
    for c in limits:
        table.add_row(c.kind, c.name, str(c.max_running), str(c.in_use))
    stdout_console().print(table)


@concurrency_limit.command("delete")
@click.argument("name")
@_KIND
def delete_limit(name: str, by_label: bool) -> None:
    """Remove a limit (what waited for it goes ahead)."""
    from plait.cli.flow_run import _client

    with _client() as client:
        client.delete_concurrency_limit(name, "label" if by_label else "tag")
    click.echo(f"Removed the {'label' if by_label else 'tag'} concurrency limit {name!r}.")
