"""plait-sql's hook implementations, found through the ``plait`` entry point ``sql``.

- ``plait_register_tasks``: ``SQLQuery``, ``SQLExecute``, ``SQLExecuteMany``, ``SQLBulkInsert``
  (``plait tasks`` lists them).
- ``plait_register_commands``: ``plait sql connections`` (the configured connections, passwords
  masked) and ``plait sql check NAME_OR_URL`` (connect and run ``SELECT 1``).
"""

from __future__ import annotations

from typing import Any

from plait import hookimpl
from plait.settings import Setting, Settings, TableOf


def _one_url(values: Any) -> str | None:
    if (values.get("url") is None) == (values.get("url_secret") is None):
        return 'needs exactly one of url = "..." or url_secret = "SECRET_NAME"'
    return None


#: ``[plugins.sql.connections.NAME]`` tables: a URL (or the secret holding it) and engine options.
SETTINGS = Settings(
    "plugins.sql",
    Setting(
        "connections",
        TableOf(
            Settings(
                "connection",
                Setting("url", str, help="the SQLAlchemy URL (a password in it is masked)"),
                Setting("url_secret", str, help="name of the plait secret holding the whole URL"),
                Setting("password_secret", str, help="name of the plait secret holding the password"),
                Setting("pool_size", int),
                Setting("max_overflow", int),
                Setting("pool_timeout", float),
                Setting("pool_recycle", int),
                Setting("pool_pre_ping", bool),
                Setting("pool_use_lifo", bool),
                Setting("poolclass", str),
                Setting("connect_args", dict),
                Setting("isolation_level", str),
                Setting("echo", bool),
                Setting("echo_pool", bool),
                Setting("hide_parameters", bool),
                Setting("execution_options", dict),
                check=_one_url,
            )
        ),
        {},
        help="named connections: SQLQuery(connection=NAME)",
    ),
    help="SQL tasks",
)


@hookimpl
def plait_register_settings() -> Settings:
    """``[plugins.sql]``, declared (see ``plait.settings``)."""
    return SETTINGS


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
