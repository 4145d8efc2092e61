"""A throwaway PostgreSQL server for tests, and pytest fixtures around it.

The server and its fixtures live in ``plait.testing`` (the core's pytest plugin), where
plait-server's tests use them too; this module keeps the names plait-sql's users know:

- ``postgres_server`` (session): a running ``PostgresServer`` (a fresh cluster made with
  ``initdb`` in a temporary directory, started with ``pg_ctl`` on a free port on 127.0.0.1,
  a login role with a password, and a database); stopped and deleted at the end of the session.
- ``postgres_url`` (session): its SQLAlchemy URL, ``postgresql+psycopg://plait:...@127.0.0.1:PORT/plait_test``.

When the server cannot start, tests that need it are skipped with the reason, or fail when
``CI`` or ``PLAIT_REQUIRE_POSTGRES`` (or ``PLAIT_SQL_REQUIRE_POSTGRES``) is set.

```py
def test_count(postgres_url):
    from plait_sql import SQLQuery

    assert SQLQuery("SELECT 1 AS one", url=postgres_url, fetch="one").run() == {"one": 1}
```
"""

from __future__ import annotations

from plait.testing import PostgresServer, PostgresUnavailable, find_postgres_program

__all__ = ["PostgresServer", "PostgresUnavailable", "find_postgres_program"]
