"""``plait sql``: look at and try the configured SQL connections.

```console
$ plait sql connections
warehouse  postgresql+psycopg://loader:***@db.internal:5432/warehouse
$ plait sql check warehouse
warehouse: OK (postgresql+psycopg://loader:***@db.internal:5432/warehouse)
$ plait sql check sqlite:///shop.db
sqlite:///shop.db: OK
```
"""

from __future__ import annotations

import click

from plait.errors import PlaitError
from plait_sql.connections import configured_connections, dispose_engines, resolve_connection


@click.group(name="sql")
def sql() -> None:
    """SQL connections (plait-sql): list them, check them."""


@sql.command(name="connections")
def connections_command() -> None:
    """List the connections in [plugins.sql.connections], passwords masked."""
    connections, where = configured_connections()
    if not connections:
        click.echo(f"No SQL connections configured; add [plugins.sql.connections.NAME] with url = ... to {where}")
        return
    width = max(len(name) for name in connections)
    for name in sorted(connections):
        try:
            shown = resolve_connection(connection=name, owner=f"connection {name!r}").masked_url
        except PlaitError as exc:  # a broken table, a missing secret: say so, go on with the others
            shown = f"(not usable: {exc})"
        click.echo(f"{name.ljust(width)}  {shown}")


@sql.command(name="check")
@click.argument("target")
def check_command(target: str) -> None:
    """Connect to TARGET (a connection name or a URL) and run SELECT 1."""
    from plait_sql.tasks import SQLQuery

    is_url = "://" in target
    where = {"url": target} if is_url else {"connection": target}
    query = SQLQuery("SELECT 1 AS ok", fetch="one", name="check", **where)
    try:
        spec = query.resolve()
        query.run()
    except PlaitError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        dispose_engines()
    click.echo(f"{spec.masked_url}: OK" if is_url else f"{target}: OK ({spec.masked_url})")
