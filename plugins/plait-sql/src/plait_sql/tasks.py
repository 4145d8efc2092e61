"""SQL tasks: run queries and statements with bound parameters, and load rows in batches.

```py
from plait import Flow
from plait_sql import SQLBulkInsert, SQLExecute, SQLQuery

db = "sqlite:///shop.db"
create = SQLExecute("CREATE TABLE IF NOT EXISTS sales (region TEXT, amount INTEGER)", url=db)
load = SQLBulkInsert(table="sales", url=db, batch_size=500)
totals = SQLQuery("SELECT region, SUM(amount) AS total FROM sales GROUP BY region ORDER BY region", url=db)

with Flow("sales") as flow:
    loaded = load(rows=[{"region": "north", "amount": 5}], upstream_tasks=[create()])
    summary = totals(upstream_tasks=[loaded])
```

Every task takes its database as ``url=`` (a SQLAlchemy URL) or ``connection=`` (a name from
``[plugins.sql.connections.NAME]`` in Plait's config), when it is created or when it is called
(call-time values win). Values always travel as bound parameters (``:name`` in the SQL text),
never formatted into the SQL; table and column names, which cannot be bound, must be plain
identifiers and are quoted by SQLAlchemy. All tasks of a process share one connection pool
per URL (see ``plait_sql.connections``).

SQLAlchemy is imported when a task first runs, not when this module is imported.
"""

from __future__ import annotations

import itertools
import logging
import operator
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from plait.tasks import Task
from plait_sql.connections import (
    ConnectionSpec,
    _resolve,
    check_engine_options,
    get_engine,
    parse_url,
    register_secret,
    resolve_connection,
)
from plait_sql.errors import SQLConfigError, SQLExecutionError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = ["SQLBulkInsert", "SQLExecute", "SQLExecuteMany", "SQLQuery", "SQLTask"]

FETCH_MODES = ("all", "one", "many")
ROW_TYPES = ("dict", "tuple")
DEFAULT_BATCH_SIZE = 1000

#: Table, schema and column names that SQL tasks accept: letters, digits and underscores, not
#: starting with a digit, at most 63 characters (PostgreSQL's limit).
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class SQLTask(Task):
    """Base class of the SQL tasks: where to connect, and how errors and ``repr`` hide passwords.

    Args:
        url: a SQLAlchemy URL (``"sqlite:///data.db"``,
            ``"postgresql+psycopg://user:password@host:5432/db"``) or ``sqlalchemy.URL``.
        connection: the name of a ``[plugins.sql.connections.NAME]`` table in Plait's config
            (give ``url`` or ``connection``, not both).
        engine_options: options for SQLAlchemy's ``create_engine`` (``pool_size``,
            ``max_overflow``, ``pool_recycle``, ``pool_pre_ping``, ``connect_args``, ...).
        **kwargs: the usual ``Task`` options (``name``, ``max_retries``, ``timeout``, ...).
    """

    def __init__(
        self,
        *,
        url: str | URL | None = None,
        connection: str | None = None,
        engine_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = self._owner()
        if url is not None and connection is not None:
            raise SQLConfigError(f"{owner} was given both url= and connection={connection!r}; pass only one of them")
        if connection is not None and (not isinstance(connection, str) or not connection):
            raise SQLConfigError(f"{owner}: connection must be a non-empty name, got {connection!r}")
        self.url: str | None = None
        self.masked_url: str | None = None
        if url is not None:
            parsed = parse_url(url, owner)
            if parsed.password:
                register_secret(str(parsed.password))
            self.url = parsed.render_as_string(hide_password=False)
            self.masked_url = parsed.render_as_string(hide_password=True)
        self.connection = connection
        self.engine_options = check_engine_options(engine_options, owner)

    # -- for subclasses ------------------------------------------------------------------------

    def resolve(self, url: str | URL | None = None, connection: str | None = None) -> ConnectionSpec:
        """Where this run connects: call-time ``url``/``connection`` if given, else the task's own."""
        if url is None and connection is None:
            if self.url is not None:
                # Resolve the task's own URL once (mapped runs share it), again if it was changed.
                cached = self.__dict__.get("_own_spec")
                if cached is not None and cached[0] == self.url and cached[1] == self.engine_options:
                    return cached[2]
                spec = resolve_connection(self.url, None, self.engine_options, self._owner())
                self._own_spec = (self.url, dict(self.engine_options), spec)
                return spec
            url, connection = self.url, self.connection
        # A named connection (or a call-time URL): plait_sql.connections remembers what it read.
        options = self.engine_options
        if options:
            options = check_engine_options(options, self._owner())
        return _resolve(url, connection, options, self._owner())

    def executable(self, sql: Any, what: str = "statement") -> Any:
        """``sql`` as an executable statement (text is wrapped in ``text()``, once per task)."""
        cached = self.__dict__.get("_own_statement")
        if cached is not None and cached[0] is sql:
            return cached[1]
        stmt = _statement(sql, self._owner(), what)
        self._own_statement = (sql, stmt)
        return stmt

    def guarded(self, spec: ConnectionSpec, action: str, fn: Any, *args: Any) -> Any:
        """``fn(engine, *args)``, with SQLAlchemy's errors replaced by ``SQLExecutionError``.

        The replacement carries no reference to the original exception (whose text and
        attributes can hold the URL), and its message has every password masked.
        """
        try:
            return fn(get_engine(spec), *args)
        except _sqlalchemy_error() as exc:  # (an except clause's class is looked up only on an error)
            error = _execution_error(self._owner(), action, spec, exc)
        raise error  # outside the except block: no __context__ pointing at the original

    def merged_params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """The task's own ``params`` overridden by the call's; a dict the caller gave is passed
        on as it is (SQLAlchemy only reads it), without a copy per run."""
        own = self.params
        if params is None:
            return own if own is not None else {}
        if type(params) is not dict:
            params = _check_params(params, self._owner())
        return {**own, **params} if own else params

    def _owner(self) -> str:
        return f"{type(self).__name__} {self.name!r}"

    def __getstate__(self) -> dict[str, Any]:
        # The caches are rebuilt where the task runs (a worker process resolves its own).
        state = super().__getstate__()
        state.pop("_own_spec", None)
        state.pop("_own_statement", None)
        return state

    # -- description ---------------------------------------------------------------------------

    def options(self) -> dict[str, Any]:
        out = super().options()
        out["sql"] = {"url": self.masked_url, "connection": self.connection}
        return out

    def __repr__(self) -> str:
        if self.connection is not None:
            where = f"connection={self.connection!r}"
        elif self.masked_url is not None:
            where = f"url={self.masked_url!r}"
        else:
            where = "no database yet"
        return f"<{type(self).__name__}: {self.name} ({where})>"


class SQLQuery(SQLTask):
    """Runs a query and returns its rows: a list of dicts (default) or of tuples.

    Args:
        query: SQL text with ``:name`` placeholders (``"SELECT * FROM t WHERE id = :id"``) or a
            SQLAlchemy ``select()``; ``run(query=...)`` overrides it.
        params: values for the placeholders; merged with (and overridden by) ``run(params=...)``,
            so a task can fix some values and be mapped over the others.
        fetch: ``"all"`` (a list of rows), ``"one"`` (the first row, or ``None`` when there are
            none) or ``"many"`` (a list of at most ``size`` rows).
        size: how many rows ``fetch="many"`` returns.
        row_type: ``"dict"`` (``{"column": value}``, the default) or ``"tuple"``.
        commit: run in a transaction that is committed (for ``INSERT ... RETURNING`` and the
            like); by default the query's transaction is rolled back.
        url, connection, engine_options, **kwargs: as for ``SQLTask``.

    Example::

        count = SQLQuery("SELECT COUNT(*) AS n FROM events WHERE kind = :kind", url="sqlite:///app.db", fetch="one")
        count.run(params={"kind": "click"})   # {'n': 42}

        by_kind = SQLQuery("SELECT COUNT(*) FROM events WHERE kind = :kind", url="sqlite:///app.db",
                           fetch="one", row_type="tuple")
        with Flow("counts") as flow:
            counts = by_kind.map(params=[{"kind": "click"}, {"kind": "view"}])   # [(42,), (7,)]
    """

    def __init__(
        self,
        query: Any = None,
        params: Mapping[str, Any] | None = None,
        *,
        fetch: str = "all",
        size: int | None = None,
        row_type: str = "dict",
        commit: bool = False,
        url: str | URL | None = None,
        connection: str | None = None,
        engine_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(url=url, connection=connection, engine_options=engine_options, **kwargs)
        self.query = query
        self.params = _check_params(params, self._owner())
        self.fetch = _check_fetch(fetch, size, self._owner())
        self.size = size
        if row_type not in ROW_TYPES:
            raise SQLConfigError(f"{self._owner()}: row_type must be 'dict' or 'tuple', got {row_type!r}")
        self.row_type = row_type
        self.commit = bool(commit)

    def run(  # type: ignore[override]
        self,
        query: Any = None,
        params: Mapping[str, Any] | None = None,
        url: str | URL | None = None,
        connection: str | None = None,
        fetch: str | None = None,
        size: int | None = None,
    ) -> Any:
        """Run the query (arguments given here override the task's own) and return its rows."""
        statement = self.executable(query if query is not None else self.query, "query")
        values = self.merged_params(params)
        mode = fetch if fetch is not None else self.fetch
        count = size if size is not None else self.size
        if mode != "all" and mode != "one":  # the common modes, checked at creation
            _check_fetch(mode, count, self._owner())
        spec = self.resolve(url, connection)
        return self.guarded(spec, "query", self._fetch, statement, values, mode, count)

    def _fetch(self, engine: Any, statement: Any, values: dict[str, Any], mode: str, size: int | None) -> Any:
        with engine.begin() if self.commit else engine.connect() as conn:
            result = conn.execute(statement, values)
            if not result.returns_rows:
                raise SQLConfigError(
                    f"{self._owner()}: the statement returned no rows; use SQLExecute for statements "
                    "that change data or the schema"
                )
            # Rows as dicts by zipping them with the column names: what dict(row._mapping) gives
            # (a repeated name keeps its last value), without a RowMapping per row.
            as_dict = self.row_type == "dict"
            if mode == "one":
                row = result.fetchone()
                if row is None:
                    return None
                return dict(zip(result.keys(), row, strict=True)) if as_dict else tuple(row)
            fetched = result.fetchmany(size) if mode == "many" else result.fetchall()
            if as_dict:
                keys = tuple(result.keys())
                return [dict(zip(keys, row, strict=True)) for row in fetched]
            return [tuple(row) for row in fetched]


class SQLExecute(SQLTask):
    """Executes one statement (``INSERT``, ``UPDATE``, ``DELETE``, DDL) in a committed transaction.

    Returns the number of rows the statement changed (``-1`` when the database does not say,
    as for DDL).

    Args:
        statement: SQL text with ``:name`` placeholders or a SQLAlchemy statement;
            ``run(statement=...)`` overrides it.
        params: values for the placeholders; merged with (and overridden by) ``run(params=...)``.
        url, connection, engine_options, **kwargs: as for ``SQLTask``.

    Example::

        archive = SQLExecute("UPDATE orders SET archived = TRUE WHERE placed < :before", url=db)
        archive.run(params={"before": "2026-01-01"})   # 120
    """

    def __init__(
        self,
        statement: Any = None,
        params: Mapping[str, Any] | None = None,
        *,
        url: str | URL | None = None,
        connection: str | None = None,
        engine_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(url=url, connection=connection, engine_options=engine_options, **kwargs)
        self.statement = statement
        self.params = _check_params(params, self._owner())

    def run(  # type: ignore[override]
        self,
        statement: Any = None,
        params: Mapping[str, Any] | None = None,
        url: str | URL | None = None,
        connection: str | None = None,
    ) -> int:
        """Execute the statement and return its row count."""
        stmt = self.executable(statement if statement is not None else self.statement, "statement")
        values = self.merged_params(params)
        spec = self.resolve(url, connection)
        count = self.guarded(spec, "statement", _execute_one, stmt, values)
        log = _logger()
        if log.isEnabledFor(logging.INFO):
            log.info("%s changed %s row(s) on %s", self._owner(), count, spec.masked_url)
        return count


class SQLExecuteMany(SQLTask):
    """Executes one statement once per dict of parameters, in batches, in one transaction.

    The batches (``batch_size`` parameter sets each, sent with the driver's ``executemany``)
    share a single transaction: when one fails, everything is rolled back and the task fails.
    Returns the total row count (``-1`` when the database does not report one).

    Args:
        statement: SQL text with ``:name`` placeholders, e.g.
            ``"UPDATE stock SET qty = :qty WHERE sku = :sku"``; ``run(statement=...)`` overrides it.
        params: a list (or any iterable) of dicts, one per execution; usually given at call time.
        batch_size: parameter sets per ``executemany`` call (default 1000).
        url, connection, engine_options, **kwargs: as for ``SQLTask``.
    """

    def __init__(
        self,
        statement: Any = None,
        params: Iterable[Mapping[str, Any]] | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        url: str | URL | None = None,
        connection: str | None = None,
        engine_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(url=url, connection=connection, engine_options=engine_options, **kwargs)
        self.statement = statement
        self.params = params
        self.batch_size = _check_batch_size(batch_size, self._owner())

    def run(  # type: ignore[override]
        self,
        params: Iterable[Mapping[str, Any]] | None = None,
        statement: Any = None,
        url: str | URL | None = None,
        connection: str | None = None,
        batch_size: int | None = None,
    ) -> int:
        """Execute the statement for every dict in ``params``; return the total row count."""
        owner = self._owner()
        stmt = self.executable(statement if statement is not None else self.statement, "statement")
        rows = params if params is not None else self.params
        if rows is None:
            raise SQLConfigError(f"{owner} has no params: pass a list of dicts as params= (one per execution)")
        size = _check_batch_size(batch_size, owner) if batch_size is not None else self.batch_size
        batches = _batches(rows, size, owner, keys_must_match=False)
        spec = self.resolve(url, connection)
        total, n = self.guarded(spec, "batch", _execute_batches, stmt, batches)
        _logger().info("%s executed %d parameter set(s) on %s", owner, n, spec.masked_url)
        return total


class SQLBulkInsert(SQLTask):
    """Inserts a list of dicts into a table, in batches, in one transaction; returns the row count.

    The first row's keys are the columns; every row must have the same keys. The rows are
    sent ``batch_size`` at a time (the driver's ``executemany``), all in one transaction: if a
    row is refused, nothing is inserted and the task fails. Rows may come from a generator;
    only one batch is held at a time.

    Args:
        table: the table's name (letters, digits, ``_``; quoted by SQLAlchemy as needed);
            ``run(table=...)`` overrides it.
        schema: the table's schema, if not the default one.
        batch_size: rows per batch (default 1000).
        url, connection, engine_options, **kwargs: as for ``SQLTask``.

    Example::

        load = SQLBulkInsert(table="events", connection="warehouse", batch_size=500)
        with Flow("load") as flow:
            load(rows=extract())       # extract returns [{"kind": "click", "at": ...}, ...]
    """

    def __init__(
        self,
        table: str | None = None,
        *,
        schema: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        url: str | URL | None = None,
        connection: str | None = None,
        engine_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(url=url, connection=connection, engine_options=engine_options, **kwargs)
        self.table = None if table is None else check_identifier(table, "table", self._owner())
        self.schema = None if schema is None else check_identifier(schema, "schema", self._owner())
        self.batch_size = _check_batch_size(batch_size, self._owner())

    def run(  # type: ignore[override]
        self,
        rows: Iterable[Mapping[str, Any]] | None = None,
        table: str | None = None,
        schema: str | None = None,
        url: str | URL | None = None,
        connection: str | None = None,
        batch_size: int | None = None,
    ) -> int:
        """Insert ``rows`` and return how many were inserted."""
        from sqlalchemy import column, insert
        from sqlalchemy import table as table_clause

        owner = self._owner()
        name = check_identifier(table, "table", owner) if table is not None else self.table
        if name is None:
            raise SQLConfigError(f"{owner} has no table: pass table='name' when you create or call the task")
        schema_name = check_identifier(schema, "schema", owner) if schema is not None else self.schema
        if rows is None:
            raise SQLConfigError(f"{owner} has no rows: pass rows=[{{'column': value, ...}}, ...]")
        size = _check_batch_size(batch_size, owner) if batch_size is not None else self.batch_size
        batches = _batches(rows, size, owner, keys_must_match=True)
        first = next(batches, None)
        if first is None:
            _logger().info("%s: no rows to insert into %s", owner, name)
            return 0
        columns = [check_identifier(key, "column", owner) for key in first[0]]
        target = table_clause(name, *(column(c) for c in columns), schema=schema_name)
        spec = self.resolve(url, connection)
        _, n = self.guarded(spec, "insert", _execute_batches, insert(target), itertools.chain([first], batches))
        where = f"{schema_name}.{name}" if schema_name else name
        _logger().info("%s inserted %d row(s) into %s on %s", owner, n, where, spec.masked_url)
        return n


def check_identifier(name: Any, what: str, owner: str = "SQL task") -> str:
    """``name`` if it is a plain SQL identifier (see ``IDENTIFIER``), else a ``SQLConfigError``."""
    if isinstance(name, str) and IDENTIFIER.fullmatch(name):
        return name
    raise SQLConfigError(
        f"{owner}: {what} name {name!r} is not a plain identifier: use letters, digits and "
        "underscores, not starting with a digit, at most 63 characters"
        + ("; give a schema with schema= instead of 'schema.table'" if what == "table" else "")
    )


# --- helpers -----------------------------------------------------------------------------------


def _statement(sql: Any, owner: str, what: str) -> Any:
    if sql is None:
        raise SQLConfigError(f"{owner} has no {what}: pass the SQL text when you create or call the task")
    if isinstance(sql, str):
        if not sql.strip():
            raise SQLConfigError(f"{owner}: the {what} is empty")
        from sqlalchemy import text

        return text(sql)
    from sqlalchemy.sql.base import Executable

    if isinstance(sql, Executable):
        return sql
    raise SQLConfigError(
        f"{owner}: the {what} must be SQL text or a SQLAlchemy statement, got a {type(sql).__name__}: {sql!r}"
    )


def _check_params(params: Any, owner: str) -> dict[str, Any] | None:
    if params is None:
        return None
    if not isinstance(params, Mapping):
        raise SQLConfigError(
            f"{owner}: params must be a dict of values for the :name placeholders, got a "
            f"{type(params).__name__}: {params!r}"
            + ("; for many parameter sets use SQLExecuteMany" if isinstance(params, (list, tuple)) else "")
        )
    return dict(params)


def _check_fetch(fetch: Any, size: Any, owner: str) -> str:
    if fetch not in FETCH_MODES:
        raise SQLConfigError(f"{owner}: fetch must be 'all', 'one' or 'many', got {fetch!r}")
    if fetch == "many" and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        raise SQLConfigError(f"{owner}: fetch='many' needs size=N, how many rows to fetch (N >= 1), got {size!r}")
    return fetch


def _check_batch_size(batch_size: Any, owner: str) -> int:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise SQLConfigError(f"{owner}: batch_size must be a whole number >= 1, got {batch_size!r}")
    return batch_size


def _batches(rows: Any, size: int, owner: str, keys_must_match: bool):
    """Yield lists of at most ``size`` dicts from ``rows``, checking each row as it comes."""
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Iterable):
        raise SQLConfigError(f"{owner}: rows/params must be a list of dicts, got a {type(rows).__name__}")
    iterator = iter(rows)
    keys: set[str] | None = None
    index = 0
    while True:
        batch = list(itertools.islice(iterator, size))
        if not batch:
            return
        if keys_must_match and keys is None:
            first = batch[0]
            if not isinstance(first, Mapping):
                raise SQLConfigError(f"{owner}: row 0 is a {type(first).__name__}, not a dict: {first!r}")
            keys = set(first)
            if not keys:
                raise SQLConfigError(f"{owner}: row 0 is an empty dict; give each row its columns")
        if _plain_dicts(batch, keys):  # the usual case, checked without a Python loop per row
            index += len(batch)
            yield batch
            continue
        # Checked row by row, so that the error names the bad row's index (and Mappings that are
        # not dicts are accepted).
        for i, row in enumerate(batch, index):
            if type(row) is not dict and not isinstance(row, Mapping):
                raise SQLConfigError(f"{owner}: row {i} is a {type(row).__name__}, not a dict: {row!r}")
            if keys is not None and row.keys() != keys:
                raise SQLConfigError(
                    f"{owner}: row {i} has columns {sorted(row)} but row 0 has {sorted(keys)}; "
                    "give every row the same keys (use None for missing values)"
                )
        index += len(batch)
        yield batch


def _plain_dicts(batch: list[Any], keys: set[str] | None) -> bool:
    """True when every row of ``batch`` is a dict and (if ``keys`` is given) has exactly those
    keys; the loops run in C (``map``), the cost of a check per row is a few dict operations."""
    if keys is None:
        return set(map(type, batch)) == {dict}
    try:
        return all(map(operator.eq, map(dict.keys, batch), itertools.repeat(keys)))
    except TypeError:  # a row that is not a dict: the row-by-row check says which
        return False


def _execute_one(engine: Any, statement: Any, values: dict[str, Any]) -> int:
    with engine.begin() as conn:
        return conn.execute(statement, values).rowcount


def _execute_batches(engine: Any, statement: Any, batches: Iterable[list[dict[str, Any]]]) -> tuple[int, int]:
    """Run every batch in one transaction; returns (total row count or -1, parameter sets sent)."""
    total, sent = 0, 0
    with engine.begin() as conn:
        for batch in batches:
            count = conn.execute(statement, batch).rowcount
            total = -1 if total < 0 or count is None or count < 0 else total + count
            sent += len(batch)
    return total, sent


def _execution_error(owner: str, action: str, spec: ConnectionSpec, exc: BaseException) -> SQLExecutionError:
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None)
    error_type = type(exc).__name__
    text = spec.mask(str(exc))
    message = f"{owner}: the {action} failed on {spec.describe()}: {text}{_timeout_hint(spec, sqlstate, text)}"
    return SQLExecutionError(message, url=spec.masked_url, error_type=error_type, sqlstate=sqlstate)


def _timeout_hint(spec: ConnectionSpec, sqlstate: str | None, text: str) -> str:
    """What to change when a timeout of Plait's (``connect_timeout``, ``statement_timeout``) fired."""
    from plait_sql.connections import TIMEOUT_OPTIONS, timeout_defaults

    if not (sqlstate == "57014" and "statement timeout" in text) and "connection timeout expired" not in text:
        return ""
    try:
        timeouts = {**timeout_defaults(), **{k: spec.options[k] for k in TIMEOUT_OPTIONS if k in spec.options}}
    except Exception:  # a bad setting is reported where it is read; keep the original error here
        return ""
    if sqlstate == "57014":
        return (
            f" (the statement ran longer than statement_timeout = {timeouts['statement_timeout']:g}s; raise it with "
            "engine_options={'statement_timeout': SECONDS}, in the connection's table or under [plugins.sql], "
            "0 for no limit)"
        )
    return (
        f" (the database did not accept and answer the connection within connect_timeout = "
        f"{timeouts['connect_timeout']:g}s; set connect_timeout in engine_options, the connection's table or "
        "[plugins.sql] to wait longer)"
    )


def _logger():
    global _log
    if _log is None:
        from plait import get_logger

        _log = get_logger("sql")
    return _log


_log = None


def _sqlalchemy_error() -> type[Exception]:
    """``sqlalchemy.exc.SQLAlchemyError``, imported on the first error (not on every run)."""
    from sqlalchemy.exc import SQLAlchemyError

    return SQLAlchemyError
