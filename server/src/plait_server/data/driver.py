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

Values read through this module come back in the database's own form (text on SQLite, naive
datetimes on PostgreSQL); ``to_db`` leaves such values alone, so a value read and written back
unchanged is never converted twice. Everything else (reads for the API, rare writes) stays on
SQLAlchemy Core.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = ["Driver"]


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

    def insert_many(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], suffix: str = "") -> int:
        """``INSERT INTO table (columns) VALUES (...)`` for each row; rows changed."""
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({self.marks(len(columns))}){suffix}"
        return self.execute_many(sql, rows)
