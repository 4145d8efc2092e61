"""plait-sql's hook implementations, found through the ``plait`` entry point ``sql``.

- ``plait_register_tasks``: ``SQLQuery``, ``SQLExecute``, ``SQLExecuteMany``, ``SQLBulkInsert``
  (``plait tasks`` lists them).
- ``plait_register_commands``: ``plait sql connections`` (the configured connections, passwords
  masked) and ``plait sql check NAME_OR_URL`` (connect and run ``SELECT 1``).
"""

from __future__ import annotations

from typing import Any

from plait import hookimpl


@hookimpl
def plait_register_tasks() -> list[Any]:
    """The SQL tasks, for ``plait tasks`` and lookups by name."""
    from plait_sql.tasks import SQLBulkInsert, SQLExecute, SQLExecuteMany, SQLQuery

    return [SQLQuery, SQLExecute, SQLExecuteMany, SQLBulkInsert]


@hookimpl
def plait_register_commands(cli: Any) -> None:
    """Add ``plait sql`` (``connections``, ``check``)."""
    from plait_sql.commands import sql

    cli.add_command(sql)
