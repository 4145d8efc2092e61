"""Driver-level statements for the hot write paths (state writes, run creation, logs).

A batch of 100 task-run states is a few hundred rows to read, insert and update. Through
SQLAlchemy Core each row's parameters pass through the compiled statement's bind processors
(our ``UTCDateTime`` and the dialect's own datetime conversion, per value); at thousands of
states a second that bookkeeping was most of the data layer's time. The statements here go to
the DBAPI cursor as they are (``executemany`` with plain tuples), with datetimes converted once
by the function the dialect needs:

- SQLite stores a datetime as the text SQLAlchemy's ``DATETIME`` writes and reads
  (``2024-06-01 12:00:00.000000``, naive UTC);
- PostgreSQL takes naive UTC ``datetime`` objects (``TIMESTAMP WITHOUT TIME ZONE``).

On SQLite a batch is one ``executemany`` (a loop in C, no round trips). On PostgreSQL a batch
is one statement whose one parameter is the rows as a JSON array of arrays, serialized by orjson
(``INSERT ... SELECT e->>0, (e->>1)::integer ... FROM jsonb_array_elements(%s::jsonb) AS e``,
``UPDATE ... FROM (SELECT ...) AS v WHERE t.id = ANY(%s) AND t.id = v.c9 ...``): one short
statement to parse and plan, one round trip. The rows are one ``jsonb`` parameter, parsed once
(``e->>i`` on a ``json`` value parses the element's text again for every column: that was most
of the statement's time). An update also gets its keys as an array, so the planner, which
cannot see how many rows the JSON holds, finds the rows through the key's index instead of
hashing the whole table. psycopg's ``executemany`` sends (pipelined) one statement per row and converts
each value on its own (half of the server's time on PostgreSQL for a batch of 100 states), and
even arrays per column cost psycopg a Python loop per value; orjson's is in C. Text columns
take the text as it is (a value too long for its column is an error, as with parameters; a
cast would cut it), other columns cast it to their type.

Values read through this module come back in the database's own form (text on SQLite, naive
datetimes on PostgreSQL); ``to_db`` leaves such values alone, so a value read and written back
unchanged is never converted twice. Everything else (reads for the API, rare writes) stays on
SQLAlchemy Core.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Connection, Table

__all__ = ["INDEX_SCANS_ONLY", "Driver", "array_literal"]

#: For a statement's WHERE clause on PostgreSQL (``AND INDEX_SCANS_ONLY``): true, and from the
#: first row it filters on, sequential scans are off for the rest of the transaction (what
#: ``SET LOCAL enable_seqscan = off`` does, without a round trip of its own). The batched writes
#: name their rows by key, through an index; the planner judges a table by statistics that lag
#: behind a table that grows fast (a new server, a big map run's task runs) and, believing it
#: small, read the whole table at every batch. It does not change the plan of the statement it
#: is in (planned before it runs): that statement must find its rows by key itself.
INDEX_SCANS_ONLY = "set_config('enable_seqscan', 'off', true) = 'off'"


class Driver:
    """The open connection's DBAPI cursor, its placeholder and its datetime conversion."""

    __slots__ = ("_last", "conn", "mark", "sqlite")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sqlite = conn.dialect.name == "sqlite"
        self.mark = "?" if self.sqlite else "%s"
        self._last: tuple[Any, Any] = (None, None)

    def to_db(self, value: Any) -> Any:
        """An aware datetime as the database stores it; anything else as it is."""
        if type(value) is datetime and value.tzinfo is not None:
            last = self._last
            if value is last[0]:
                return last[1]  # a batch's rows share one "now": converted once
            original = value
            if value.tzinfo is not UTC:
                value = value.astimezone(UTC)
            value = value.replace(tzinfo=None)
            converted = value.isoformat(" ", "microseconds") if self.sqlite else value
            self._last = (original, converted)
            return converted
        return value

    def from_db(self, value: Any) -> Any:
        """A datetime read through this module as the aware UTC datetime the records hold."""
        if value is None:
            return None
        if type(value) is str:  # SQLite's text
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC)

    def marks(self, n: int) -> str:
        """``?, ?, ?`` (or ``%s, ...``) for ``n`` values."""
        return ", ".join([self.mark] * n)

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` (with this driver's placeholders) as tuples."""
        cursor = self.conn.connection.driver_connection.cursor()
        try:
            cursor.execute(sql, tuple(params))
            return cursor.fetchall()
        except self.conn.dialect.loaded_dbapi.Error as exc:
            raise self._wrapped(sql, params, exc) from exc
        finally:
            cursor.close()

    def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """``executemany`` of ``sql`` over ``rows``; the number of rows changed (all statements)."""
        rows = list(rows)
        if not rows:
            return 0
        cursor = self.conn.connection.driver_connection.cursor()
        try:
            if len(rows) == 1:
                cursor.execute(sql, tuple(rows[0]))
            else:
                cursor.executemany(sql, rows)
            return cursor.rowcount
        except self.conn.dialect.loaded_dbapi.Error as exc:
            raise self._wrapped(sql, rows[:3], exc) from exc
        finally:
            cursor.close()

    def _wrapped(self, sql: str, params: Any, exc: Exception) -> Exception:
        # The same exception classes SQLAlchemy raises (OperationalError, IntegrityError...), so
        # Store.write() retries "database is locked" and serialization failures as before.
        from sqlalchemy.exc import DBAPIError

        return DBAPIError.instance(sql, params, exc, self.conn.dialect.loaded_dbapi.Error)

    def insert_many(
        self, table: str | Table, columns: Sequence[str], rows: Iterable[Sequence[Any]], suffix: str = ""
    ) -> int:
        """``INSERT INTO table (columns) VALUES (...)`` for each row (``suffix`` after the
        values: ``ON CONFLICT ...``); rows changed. Pass the ``Table`` (not its name) for the
        one-statement form on PostgreSQL."""
        rows = list(rows)
        name = table if isinstance(table, str) else table.name
        if self.sqlite or isinstance(table, str) or len(rows) <= 1:
            sql = f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({self.marks(len(columns))}){suffix}"
            return self.execute_many(sql, rows)
        values = ", ".join(_json_values(table, tuple(columns), self.conn.dialect))
        sql = (
            f"INSERT INTO {name} ({', '.join(columns)}) "
            f"SELECT {values} FROM jsonb_array_elements(%s::jsonb) AS e{suffix}"
        )
        return self.execute(sql, [_json_rows(rows)])

    def update_many(
        self, table: Table, columns: Sequence[str], where: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> int:
        """``UPDATE table SET columns... WHERE where...`` for each row (the values of ``columns``
        then those of ``where``, compared with ``=``); rows changed."""
        rows = list(rows)
        if self.sqlite or len(rows) <= 1:
            sets = ", ".join(f"{c} = {self.mark}" for c in columns)
            tests = " AND ".join(f"{c} = {self.mark}" for c in where)
            return self.execute_many(f"UPDATE {table.name} SET {sets} WHERE {tests}", rows)
        names = (*columns, *where)
        values = ", ".join(f"{v} AS c{i}" for i, v in enumerate(_json_values(table, names, self.conn.dialect)))
        sets = ", ".join(f"{c} = v.c{i}" for i, c in enumerate(columns))
        tests = " AND ".join(f"t.{c} = v.c{i + len(columns)}" for i, c in enumerate(where))
        # The rows are found through the index of the first ``where`` column (the key), whose
        # values also come as an array: with the join alone the planner, which cannot see how
        # many rows the JSON holds, hashed the whole table (a sequential scan per batch, slower
        # as the table grows).
        key = where[0]
        kind = _array_type(table, key, self.conn.dialect)
        sql = (
            f"UPDATE {table.name} AS t SET {sets} "
            f"FROM (SELECT {values} FROM jsonb_array_elements(%s::jsonb) AS e) AS v "
            f"WHERE t.{key} = ANY(%s::{kind}[]) AND {tests}"
        )
        at = len(columns)
        return self.execute(sql, [_json_rows(rows), array_literal([row[at] for row in rows])])

    def execute(self, sql: str, params: Sequence[Any]) -> int:
        """One statement; the number of rows it changed."""
        cursor = self.conn.connection.driver_connection.cursor()
        try:
            cursor.execute(sql, params)
            return cursor.rowcount
        except self.conn.dialect.loaded_dbapi.Error as exc:
            raise self._wrapped(sql, params[:10], exc) from exc
        finally:
            cursor.close()


@functools.cache
def _json_values(table: Table, names: tuple[str, ...], dialect: Any) -> list[str]:
    """The expressions reading columns ``names`` of ``table`` from a JSON array ``e``: text as
    it is, anything else cast to the column's type."""
    from sqlalchemy import String

    out = []
    for i, name in enumerate(names):
        kind = table.c[name].type
        if isinstance(kind, String):
            out.append(f"(e->>{i})")
        else:
            out.append(f"(e->>{i})::{kind.compile(dialect=dialect)}")
    return out


@functools.cache
def _array_type(table: Table, name: str, dialect: Any) -> str:
    """The SQL type of an array of column ``name``'s values (``text`` for text columns: their
    index compares as text, and a ``varchar(n)[]`` parameter would be cast row by row)."""
    from sqlalchemy import String

    kind = table.c[name].type
    return "text" if isinstance(kind, String) else kind.compile(dialect=dialect)


def array_literal(values: Sequence[int | str | None]) -> str:
    """``values`` in PostgreSQL's text form of an array (``{1,2}``, ``{"a","b"}``), for a
    parameter cast to an array type (``ANY(%s::integer[])``): one join, where psycopg's list
    adapter dumps each element in Python (a fifth of a batch's statement parameters' cost)."""
    parts = []
    for v in values:
        if v is None:
            parts.append("NULL")
        elif type(v) is int:
            parts.append(str(v))
        elif type(v) is str:
            parts.append('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            raise TypeError(f"array_literal takes ints and strings, not {type(v).__name__}")
    return "{" + ",".join(parts) + "}"


def _json_rows(rows: list[Sequence[Any]]) -> str:
    import orjson

    return orjson.dumps(rows).decode()
