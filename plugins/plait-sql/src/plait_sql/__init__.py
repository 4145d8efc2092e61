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

from plait_sql.connections import ConnectionSpec, dispose_engines, get_engine, resolve_connection
from plait_sql.errors import SQLConfigError, SQLError, SQLExecutionError
from plait_sql.tasks import SQLBulkInsert, SQLExecute, SQLExecuteMany, SQLQuery, SQLTask

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
