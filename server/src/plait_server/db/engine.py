"""Engines for SQLite and PostgreSQL, set up for many concurrent readers and serialised writes.

SQLite (the default, ``~/.plait/server.db``): WAL mode, so readers never wait for the writer;
``synchronous=NORMAL`` (durable across process crashes, WAL's recommended setting); a busy
timeout, so another process's write makes us wait instead of failing; foreign keys on; and
every write transaction starts with ``BEGIN IMMEDIATE`` under a process-wide lock
(``Store.write()``), so writers queue in order and ``database is locked`` cannot happen.

PostgreSQL (``postgresql+psycopg://...``): a connection pool; writers run side by side and the
data layer locks the rows it changes (``SELECT ... FOR UPDATE``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from plait_server.errors import ServerConfigError

__all__ = ["DEFAULT_DATABASE", "default_database_url", "make_engine", "redact_url"]

#: Where the default SQLite database lives.
DEFAULT_DATABASE = Path("~/.plait/server.db")

#: How long a SQLite connection waits for another process's write (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 60_000


def default_database_url() -> str:
    """``sqlite:///`` + ``~/.plait/server.db`` (expanded)."""
    return f"sqlite:///{DEFAULT_DATABASE.expanduser()}"


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``).

    Raises:
        ServerConfigError: the URL is malformed, names an unsupported database, or (SQLite)
            its folder cannot be created.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ServerConfigError(
            f"Database URL {redact_url(url)!r} is not valid ({exc}); use sqlite:///PATH or "
            "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise ServerConfigError(
                f"Database URL {url!r}: the server needs a SQLite *file* (sqlite:///path/server.db), "
                "because every connection of its pool must see the same data"
            )
        path = Path(database).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ServerConfigError(f"Cannot create the folder of the SQLite database {path}: {exc}") from None
        parsed = parsed.set(database=str(path))
        engine = create_engine(
            parsed,
            echo=echo,
            pool_size=pool_size,
            max_overflow=pool_size * 2,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        _set_up_sqlite(engine)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() not in ("psycopg", "psycopg2"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            return create_engine(parsed, echo=echo, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True)
        except ImportError as exc:
            raise ServerConfigError(
                f"PostgreSQL needs the psycopg driver ({exc}); install it: pip install 'plait-server[postgres]'"
            ) from None
    raise ServerConfigError(
        f"Database {redact_url(url)!r} is not supported: the server runs on SQLite (sqlite:///PATH) "
        "or PostgreSQL (postgresql+psycopg://...)"
    )


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def sqlite_path(engine: Engine) -> str | None:
    """The SQLite file behind ``engine`` (``None`` for other databases)."""
    return engine.url.database if is_sqlite(engine) else None


def _set_up_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from pysqlite: we emit BEGIN ourselves (see _begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA cache_size = -32000")
        cursor.close()
        path = engine.url.database
        if path and os.path.exists(path):
            # The database holds API-key hashes and run metadata: not for other users.
            try:
                os.chmod(path, 0o600)
            except OSError:
                pass

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # A writer takes the write lock when it begins, so it never has to upgrade a read
        # lock later (the upgrade is what fails with "database is locked" under WAL).
        write = conn.get_execution_options().get("plait_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
