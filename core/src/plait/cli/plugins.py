"""``plait plugins`` and ``plait tasks``: what the installed plugins offer."""

from __future__ import annotations

import json
from typing import Any

import click

__all__ = ["plugins", "tasks"]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins(as_json: bool) -> None:
    """List installed plugins: name, distribution, version, whether it is configured, its hooks,
    and any that failed to load.

    The config column says, for a plugin that declares settings, "configured", "not configured"
    (and what is missing) or "misconfigured" (and why); a plugin that is not configured or is
    misconfigured does not observe flow runs.
    """
    from plait.hooks.manager import get_hooks

    hooks = get_hooks()
    records = sorted(hooks.pm.records.values(), key=lambda r: (not r.builtin, r.name))
    statuses = hooks.statuses()
    if as_json:
        rows = []
        for r in records:
            row = r.to_dict()
            status = statuses.get(r.name)
            row["config"] = {"state": status.state, "detail": status.detail} if status is not None else None
            rows.append(row)
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.markup import escape
    from rich.table import Table

    from plait.cli.output import stdout_console

    table = Table(title="Plait plugins")
    for column in ("plugin", "distribution", "version", "status", "config", "hooks"):
        table.add_column(column, overflow="fold")
    for r in records:
        status = r.status if r.error is None else f"{r.status}: {r.error}"
        style = {"failed": "red", "disabled": "dim"}.get(r.status)
        config = statuses.get(r.name)
        config_text = "-" if config is None else str(config)
        if config is not None and config.state == "misconfigured":
            config_text = f"[red]{escape(config_text)}[/red]"
        elif config is not None and config.state == "not configured":
            config_text = f"[yellow]{escape(config_text)}[/yellow]"
        else:
            config_text = escape(config_text)
        table.add_row(
            escape(r.name),
            escape(r.distribution or "-"),
            r.version or "-",
            escape(status),
            config_text,
            ", ".join(r.hooks) or "-",
            style=style,
        )
    stdout_console().print(table)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def tasks(as_json: bool) -> None:
    """List the task library that plugins offer through plait_register_tasks."""
    from plait.hooks.manager import get_hooks

    rows = [
        {"task": task_name(t), "plugin": plugin, "doc": first_line(t)} for plugin, t in get_hooks().register_tasks()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("No plugin offers tasks (plugins add them with the plait_register_tasks hook).")
        return
    width = max(len(r["task"]) for r in rows)
    pwidth = max(len(r["plugin"]) for r in rows)
    for r in sorted(rows, key=lambda r: (r["plugin"], r["task"])):
        click.echo(f"{r['task']:<{width}}  {r['plugin']:<{pwidth}}  {r['doc']}")


def task_name(obj: Any) -> str:
    """The name a task-library entry is listed under."""
    name = getattr(obj, "name", None)
    if isinstance(name, str) and not isinstance(obj, type):
        return name
    return getattr(obj, "__name__", None) or type(obj).__name__


def first_line(obj: Any) -> str:
    """The first line of the docstring of a task, its ``run`` function or its class."""
    from plait.tasks import FunctionTask

    candidates = []
    if isinstance(obj, FunctionTask):
        candidates.append(getattr(obj.run, "__doc__", None))
    candidates += [getattr(obj, "__doc__", None), getattr(type(obj), "__doc__", None)]
    for doc in candidates:
        if doc and doc.strip():
            return doc.strip().splitlines()[0].strip()
    return ""
