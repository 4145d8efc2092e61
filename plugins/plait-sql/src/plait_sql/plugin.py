"""plait-sql's hook implementations, found through the ``plait`` entry point ``sql``."""

from __future__ import annotations

from typing import Any

try:
    from plait import hookimpl
except ImportError:  # a core without the plugin system's export
    import pluggy

    hookimpl = pluggy.HookimplMarker("plait")


@hookimpl
def plait_register_tasks() -> list[Any]:
    """The SQL tasks, for ``plait tasks`` and lookups by name."""
    from plait_sql.tasks import SQLBulkInsert, SQLExecute, SQLExecuteMany, SQLQuery

    return [SQLQuery, SQLExecute, SQLExecuteMany, SQLBulkInsert]
