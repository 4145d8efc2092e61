"""``plait plugins`` and ``plait tasks``: what the installed plugins offer."""

from __future__ import annotations

import json
from typing import Any

import click

__all__ = ["plugins", "tasks"]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins(as_json: bool) -> None:
    """List installed plugins: name, distribution, version, hooks, and any that failed to load."""
    from plait.hooks.manager import get_hooks

    records = sorted(get_hooks().pm.records.values(), key=lambda r: (not r.builtin, r.name))
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in records], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Plait plugins")
    for column in ("plugin", "distribution", "version", "status", "hooks"):
        table.add_column(column, overflow="fold")
    for r in records:
        status = r.status if r.error is None else f"{r.status}: {r.error}"
        style = {"failed": "red", "disabled": "dim"}.get(r.status)
        table.add_row(r.name, r.distribution or "-", r.version or "-", status, ", ".join(r.hooks) or "-", style=style)
    Console(soft_wrap=False).print(table)


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
