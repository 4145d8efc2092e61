"""plait-sql: SQL tasks for Plait, on SQLAlchemy.

```py
from plait import Flow
from plait_sql import SQLBulkInsert, SQLQuery

load = SQLBulkInsert(table="sales", url="sqlite:///shop.db")
report = SQLQuery("SELECT region, SUM(amount) AS total FROM sales GROUP BY region", url="sqlite:///shop.db")

with Flow("sales") as flow:
    loaded = load(rows=[{"region": "north", "amount": 5}])
    summary = report(upstream_tasks=[loaded])
```

Tasks: ``SQLQuery`` (rows as dicts or tuples), ``SQLExecute`` (one statement, returns the row
count), ``SQLExecuteMany`` (one statement, many parameter sets) and ``SQLBulkInsert`` (a list of
dicts into a table), all in batches inside one transaction where there are many. Importing
this package does not import SQLAlchemy; the first task run does.
"""

from __future__ import annotations

import importlib
from typing import Any

# Plait imports plait_sql.plugin (and so this package) in every process where the plugin is
# installed: these names are imported on first use, so merely having it installed costs little.
_LAZY = {
    "ConnectionSpec": "plait_sql.connections",
    "dispose_engines": "plait_sql.connections",
    "get_engine": "plait_sql.connections",
    "resolve_connection": "plait_sql.connections",
    "SQLConfigError": "plait_sql.errors",
    "SQLError": "plait_sql.errors",
    "SQLExecutionError": "plait_sql.errors",
    "SQLBulkInsert": "plait_sql.tasks",
    "SQLExecute": "plait_sql.tasks",
    "SQLExecuteMany": "plait_sql.tasks",
    "SQLQuery": "plait_sql.tasks",
    "SQLTask": "plait_sql.tasks",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plait_sql' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__version__ = "0.1.0"

__all__ = [
    "ConnectionSpec",
    "SQLBulkInsert",
    "SQLConfigError",
    "SQLError",
    "SQLExecute",
    "SQLExecuteMany",
    "SQLExecutionError",
    "SQLQuery",
    "SQLTask",
    "__version__",
    "dispose_engines",
    "get_engine",
    "resolve_connection",
]
