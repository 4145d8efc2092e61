"""Where SQL tasks connect: URLs, named connections, and one connection pool per URL per process.

A task names its database with a SQLAlchemy URL or with the name of a connection in Plait's
configuration::

    # ~/.plait/config.toml (or $PLAIT_CONFIG)
    [plugins.sql.connections.warehouse]
    url = "postgresql+psycopg://loader@db.internal:5432/warehouse"
    password_secret = "WAREHOUSE_PASSWORD"   # optional: a plait.secrets.Secret that holds the password
    pool_size = 5                            # optional: SQLAlchemy engine options
    statement_timeout = 600                  # optional: seconds (default 3600; 0: no limit)

Timeouts (PostgreSQL through psycopg or psycopg2): a connection that the database does not
accept and answer within ``connect_timeout`` seconds (default 10) fails, and so does a
statement that runs longer than ``statement_timeout`` seconds (default 3600, enforced by the
server; ``0`` for no limit). Set them for every connection under ``[plugins.sql]``, per
connection in its table, or per task in ``engine_options``.

Every URL (with the same engine options) gets one SQLAlchemy ``Engine``, and so one pool,
per process, created the first time a task uses it and shared by every task and mapped
child after that; the pools are disposed when the process exits. ``get_engine()`` gives you
the shared engine (e.g. to listen to its events), ``dispose_engines()`` closes them all.

Passwords never reach logs or error messages: every password a task sees is registered with
``plait.secrets`` for masking, and URLs are shown as SQLAlchemy renders them with
``hide_password=True`` (``postgresql+psycopg://loader:***@db.internal:5432/warehouse``).
"""

from __future__ import annotations

import atexit
import os
import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

from plait.config import config_path, get_config
from plait.secrets import mask, read_secret_setting
from plait.secrets import register_secret as _register_secret
from plait_sql.errors import SQLConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine

__all__ = [
    "ENGINE_OPTIONS",
    "ConnectionSpec",
    "dispose_engines",
    "get_engine",
    "mask_secrets",
    "resolve_connection",
]

#: Options a task's ``engine_options`` or a named connection may set: ``create_engine``'s, and
#: Plait's own ``connect_timeout`` and ``statement_timeout`` (see ``TIMEOUT_OPTIONS``).
ENGINE_OPTIONS = frozenset(
    {
        "connect_timeout",
        "statement_timeout",
        "pool_size",
        "max_overflow",
        "pool_timeout",
        "pool_recycle",
        "pool_pre_ping",
        "pool_use_lifo",
        "poolclass",
        "connect_args",
        "isolation_level",
        "echo",
        "echo_pool",
        "hide_parameters",
        "execution_options",
    }
)
#: Keys of a ``[plugins.sql.connections.NAME]`` table besides the engine options.
CONNECTION_KEYS = frozenset({"url", "url_secret", "password_secret"})

#: Seconds to wait for a database to accept a connection and answer its start-up, unless
#: ``connect_timeout`` says otherwise (``[plugins.sql]``, a connection's table, ``engine_options``).
DEFAULT_CONNECT_TIMEOUT = 10.0
#: The longest one statement may run, in seconds, unless ``statement_timeout`` says otherwise;
#: ``0`` switches it off. Enforced by the server (PostgreSQL's ``statement_timeout``).
DEFAULT_STATEMENT_TIMEOUT = 3600.0
#: Plait's own options, turned into the driver's connection arguments (not ``create_engine``'s).
TIMEOUT_OPTIONS = ("connect_timeout", "statement_timeout")

MASK = "***"  # what SQLAlchemy's own hide_password shows

#: Pool sizes for engines whose pool is a ``QueuePool`` (PostgreSQL, SQLite files...), unless
#: the task or connection sets them. SQLAlchemy's own default keeps 5 idle connections and
#: closes the others on return, so more than 5 tasks at once (a thread executor running a
#: mapped task) would open and close a connection per task; 10 covers the usual executors.
DEFAULT_POOL_SIZE = 10
DEFAULT_MAX_OVERFLOW = 10


@dataclass(frozen=True)
class ConnectionSpec:
    """A resolved database target: the full URL, the engine options and where they came from.

    ``str()``/``repr()`` show the URL with its password masked.
    """

    url: str = field(repr=False)  # with the password: never shown
    masked_url: str
    options: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)
    connection: str | None = None
    password: str | None = field(default=None, repr=False)
    #: other secrets to mask in messages, e.g. ``connect_args={"password": ...}``
    other_secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def key(self) -> tuple[str, str]:
        """What identifies the shared engine: the URL and the engine options."""
        key = self.__dict__.get("_key")
        if key is None:  # made once per spec: get_engine looks it up on every task run
            key = (self.url, _options_key(self.options))
            object.__setattr__(self, "_key", key)
        return key

    def describe(self) -> str:
        """``connection 'warehouse' (url)`` or just the masked URL, for messages."""
        if self.connection:
            return f"connection {self.connection!r} ({self.masked_url})"
        return self.masked_url

    def mask(self, text: str) -> str:
        """``text`` with this URL's password (in every spelling a URL uses) masked."""
        return mask_secrets(text, self.password, *self.other_secrets)

    def __str__(self) -> str:
        return self.masked_url


def resolve_connection(
    url: str | URL | None = None,
    connection: str | None = None,
    engine_options: dict[str, Any] | None = None,
    owner: str = "SQL task",
) -> ConnectionSpec:
    """Turn a URL or a connection name (exactly one of them) into a ``ConnectionSpec``.

    Raises:
        SQLConfigError: neither or both given, an unknown connection name, a URL SQLAlchemy
            cannot parse, or an engine option SQLAlchemy does not take here.
    """
    return _resolve(url, connection, check_engine_options(engine_options, owner), owner)


def _resolve(url: str | URL | None, connection: str | None, options: dict[str, Any], owner: str) -> ConnectionSpec:
    """``resolve_connection`` with ``options`` already checked.

    Tasks resolve their database on every run, so what costs (reading a connection's table,
    parsing and rendering a URL: tens of microseconds) is done once per configuration and
    remembered: a named connection's table once per ``get_config()`` object (a new
    configuration, after ``reset_config()``, is read again), and the spec once per URL,
    password and options. The secrets a connection names are read on every call, as before,
    so a changed secret gives a new spec.
    """
    if url is not None and connection is not None:
        raise SQLConfigError(
            f"{owner} was given both url= and connection={connection!r}; pass only one of them "
            "(a connection's URL comes from [plugins.sql.connections.NAME] in Plait's config)"
        )
    if connection is not None:
        settings, conn_options = _connection_table(connection, owner)
        url_value, password = _url_from_settings(connection, settings, owner)
        if conn_options:
            options = {**conn_options, **options}  # the task's own options win
    elif url is not None:
        url_value, password = url, None
    else:
        raise SQLConfigError(
            f"{owner} has no database: pass url='dialect+driver://user:password@host/db' "
            "(e.g. 'sqlite:///data.db') or connection='NAME' for a [plugins.sql.connections.NAME] "
            "table in Plait's config, when you create the task or when you call it"
        )
    try:
        key: Any = (connection, url_value, password, _options_key(options))
        spec = _specs.get(key)
    except TypeError:  # something unhashable (a URL with a list in its query): not remembered
        key, spec = None, None
    if spec is not None:
        for secret in (spec.password, *spec.other_secrets):
            if secret:
                register_secret(secret)  # cheap when known; masked again if masking was reset
        return spec
    parsed = parse_url(url_value, owner)
    if password is not None:
        parsed = parsed.set(password=password)
    password = str(parsed.password) if parsed.password else None
    connect_args = options.get("connect_args")
    other = connect_args.get("password") if isinstance(connect_args, dict) else None
    other_secrets = (str(other),) if other else ()
    for secret in (password, *other_secrets):
        if secret:
            register_secret(secret)
    spec = ConnectionSpec(
        url=parsed.render_as_string(hide_password=False),
        masked_url=parsed.render_as_string(hide_password=True),
        options=dict(options),
        connection=connection,
        password=password,
        other_secrets=other_secrets,
    )
    if key is not None:
        if len(_specs) >= _MAX_SPECS:  # a task mapped over many URLs: keep the memory bounded
            _specs.clear()
        _specs[key] = spec
    return spec


def _options_key(options: dict[str, Any]) -> str:
    """What tells engine options apart (their values need not be hashable: ``connect_args``)."""
    return repr(sorted(options.items())) if options else ""


def _connection_table(name: str, owner: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checked ``[plugins.sql.connections.NAME]`` table and its engine options, read once
    per configuration object."""
    global _tables_config
    config = get_config()
    if config is not _tables_config:
        _tables.clear()
        _tables_config = config
    entry = _tables.get(name) if isinstance(name, str) else None
    if entry is None:
        settings = connection_settings(name, owner)
        entry = (settings, {k: v for k, v in settings.items() if k not in CONNECTION_KEYS})
        _tables[name] = entry
    return entry


#: Resolved specs by (connection, URL, password, options); and the connections' tables read
#: from the configuration object ``_tables_config``.
_specs: dict[Any, ConnectionSpec] = {}
_MAX_SPECS = 1024
_tables: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
_tables_config: Any = None


def parse_url(url: str | URL, owner: str = "SQL task") -> URL:
    """``url`` as a SQLAlchemy ``URL``; a clear error (that does not repeat the URL) if it is not one."""
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.exc import ArgumentError

    if isinstance(url, URL):
        return url
    if not isinstance(url, str) or not url.strip():
        raise SQLConfigError(
            f"{owner}: url must be a SQLAlchemy URL string such as 'sqlite:///data.db' or "
            f"'postgresql+psycopg://user:password@host:5432/db', got a {type(url).__name__}"
        )
    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        pass
    # Not quoted: the string may hold a password.
    scheme = url.split("://", 1)[0] if "://" in url else "(none)"
    raise SQLConfigError(
        f"{owner}: the url (scheme {scheme!r}; not shown, it may hold a password) is not a valid "
        "SQLAlchemy URL; write it as 'dialect+driver://user:password@host:port/database' and "
        "percent-encode special characters in the password (urllib.parse.quote_plus)"
    )


def check_engine_options(options: dict[str, Any] | None, owner: str) -> dict[str, Any]:
    """A copy of ``options``, after checking every key is one of ``ENGINE_OPTIONS``."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise SQLConfigError(f"{owner}: engine_options must be a dict, got {options!r}")
    unknown = sorted(set(options) - ENGINE_OPTIONS)
    if unknown:
        raise SQLConfigError(
            f"{owner}: unknown engine option(s) {', '.join(map(repr, unknown))}; "
            f"use {', '.join(sorted(ENGINE_OPTIONS))}"
        )
    for key in TIMEOUT_OPTIONS:
        if key in options:
            _check_timeout(options[key], key, owner)
    return dict(options)


def timeout_defaults() -> dict[str, float]:
    """``connect_timeout`` and ``statement_timeout`` from ``[plugins.sql]`` (or the defaults)."""
    connect, statement = _timeouts()
    return {"connect_timeout": connect, "statement_timeout": statement}


def _timeouts() -> tuple[float, float]:
    """``(connect_timeout, statement_timeout)`` of ``[plugins.sql]``, read once per configuration
    object (``get_engine`` needs them on every task run)."""
    global _timeouts_cache
    config = get_config()
    cached = _timeouts_cache
    if cached is not None and cached[0] is config:
        return cached[1]
    section = config.plugin_section("sql")
    out = {"connect_timeout": DEFAULT_CONNECT_TIMEOUT, "statement_timeout": DEFAULT_STATEMENT_TIMEOUT}
    for key in TIMEOUT_OPTIONS:
        if key in section:
            out[key] = _check_timeout(section[key], key, "[plugins.sql]")
    timeouts = (out["connect_timeout"], out["statement_timeout"])
    _timeouts_cache = (config, timeouts)
    return timeouts


_timeouts_cache: tuple[Any, tuple[float, float]] | None = None


def _check_timeout(value: Any, key: str, owner: str) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    if not ok or (key == "connect_timeout" and value == 0):
        least = "more than 0" if key == "connect_timeout" else "0 (no limit) or more"
        raise SQLConfigError(f"{owner}: {key} must be a number of seconds, {least}; got {value!r}")
    return float(value)


def connection_settings(name: str, owner: str = "SQL task") -> dict[str, Any]:
    """The ``[plugins.sql.connections.NAME]`` table from Plait's configuration."""
    if not isinstance(name, str) or not name:
        raise SQLConfigError(f"{owner}: connection must be a non-empty name, got {name!r}")
    connections, where = configured_connections()
    settings = connections.get(name)
    if settings is None:
        known = ", ".join(sorted(connections)) or "none"
        raise SQLConfigError(
            f"{owner}: no SQL connection named {name!r} is configured (configured: {known}); add "
            f'[plugins.sql.connections.{name}] with url = "..." to {where}, or set '
            f"PLAIT__PLUGINS__SQL__CONNECTIONS__{name.upper()}__URL"
        )
    if not isinstance(settings, dict):
        raise SQLConfigError(
            f'{owner}: [plugins.sql.connections.{name}] must be a table with url = "...", got a '
            f"{type(settings).__name__} (in {where})"
        )
    unknown = sorted(set(settings) - CONNECTION_KEYS - ENGINE_OPTIONS)
    if unknown:
        raise SQLConfigError(
            f"{owner}: [plugins.sql.connections.{name}] has unknown key(s) {', '.join(map(repr, unknown))} "
            f"(in {where}); use {', '.join(sorted(CONNECTION_KEYS | ENGINE_OPTIONS))}"
        )
    return dict(settings)


def get_engine(target: str | URL | ConnectionSpec, **engine_options: Any) -> Engine:
    """The process's shared engine (and pool) for ``target``, created on first use.

    ``target`` is a URL or a ``ConnectionSpec``; the same URL with the same options always
    gives the same engine in a process. Example::

        from sqlalchemy import event
        from plait_sql import get_engine

        engine = get_engine("sqlite:///data.db")
        event.listen(engine, "connect", lambda dbapi_conn, record: print("new connection"))
    """
    if isinstance(target, ConnectionSpec):
        spec = target
        if engine_options:
            options = {**target.options, **check_engine_options(engine_options, "get_engine")}
            spec = replace(target, options=options)
    else:
        spec = resolve_connection(target, engine_options=engine_options)
    # [plugins.sql]'s timeouts are part of the engine's identity: changing them (a new config)
    # gives new connections with the new settings.
    key = (spec.key, _timeouts())
    engine = _engines.get(key)
    if engine is not None and _engines_pid == os.getpid():
        return engine
    defaults = timeout_defaults()
    with _engines_lock:
        _forget_inherited_engines()
        engine = _engines.get(key)
        if engine is None:
            from sqlalchemy import create_engine

            try:
                engine = create_engine(spec.url, **_with_default_pool_size(spec, defaults))
            except TypeError as exc:  # an option this dialect or pool does not take
                raise SQLConfigError(
                    f"Engine options {sorted(spec.options)} do not fit {spec.describe()}: {spec.mask(str(exc))}; "
                    "drop the option or set poolclass"
                ) from None
            _engines[key] = engine
            _install_process_hooks()
            _logger().info("Created a connection pool for %s", spec.masked_url)
        return engine


def dispose_engines() -> int:
    """Close every pooled connection of every shared engine and forget the engines.

    Runs by itself when the process exits; call it to release connections earlier (tests,
    long-lived services). Returns how many engines were disposed.
    """
    with _engines_lock:
        _forget_inherited_engines()
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.dispose()
    return len(engines)


def mask_secrets(text: str, *passwords: str | None) -> str:
    """``text`` with each password (raw and URL-encoded) and every Plait-registered secret masked."""
    if not isinstance(text, str):
        return text
    for password in passwords:
        if not password:
            continue
        for spelling in sorted({password, quote_plus(password), quote(password, safe="")}, key=len, reverse=True):
            text = text.replace(spelling, MASK)
    return mask(text)


def register_secret(value: str) -> None:
    """Ask Plait to mask ``value`` in its logs and error messages (``plait.secrets``)."""
    _register_secret(value)


# --- the shared engines ------------------------------------------------------------------------

_engines: dict[tuple[Any, ...], Engine] = {}
_engines_lock = threading.Lock()
_engines_pid = os.getpid()
_hooks_installed = False


def _install_process_hooks() -> None:
    global _hooks_installed
    if not _hooks_installed:
        _hooks_installed = True
        atexit.register(dispose_engines)


def _forget_inherited_engines() -> None:
    """In a forked child, drop the parent's pools without touching the parent's connections.

    Called with the lock held. ``dispose(close=False)`` replaces each pool with a new one and
    leaves the inherited sockets alone, as SQLAlchemy advises for ``os.fork``.
    """
    global _engines_pid
    pid = os.getpid()
    if _engines_pid == pid:
        return
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines_pid = pid


def _with_default_pool_size(spec: ConnectionSpec, defaults: dict[str, float]) -> dict[str, Any]:
    """``create_engine`` keyword arguments: the spec's options, default pool sizes, and the
    timeouts turned into the driver's connection arguments."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import QueuePool

    options = dict(spec.options)
    url = make_url(spec.url)
    timeouts = {**defaults, **{k: options.pop(k) for k in TIMEOUT_OPTIONS if k in options}}
    pool_class = options.get("poolclass")
    if pool_class is None:
        pool_class = url.get_dialect().get_pool_class(url)
    if isinstance(pool_class, type) and issubclass(pool_class, QueuePool):
        options.setdefault("pool_size", DEFAULT_POOL_SIZE)
        options.setdefault("max_overflow", DEFAULT_MAX_OVERFLOW)
    connect_args = _timeout_connect_args(url, options.get("connect_args"), **timeouts)
    if connect_args is not None:
        options["connect_args"] = connect_args
    return options


#: Drivers that speak libpq's connection parameters (``connect_timeout``, ``options``).
_LIBPQ_DRIVERS = frozenset({"psycopg", "psycopg2", "psycopg2cffi"})


def _timeout_connect_args(
    url: URL, connect_args: Any, connect_timeout: float, statement_timeout: float
) -> dict[str, Any] | None:
    """The connection arguments with the timeouts added, for the drivers that take them
    (PostgreSQL through psycopg or psycopg2); ``None`` to leave them as they are.

    What the URL's query or ``connect_args`` already set wins: ``?connect_timeout=3`` or
    ``connect_args={"options": "-c statement_timeout=0"}`` are kept.
    """
    import math

    if url.get_backend_name() != "postgresql" or url.get_driver_name() not in _LIBPQ_DRIVERS:
        return None
    args = dict(connect_args) if isinstance(connect_args, dict) else {}
    given = {**url.query, **args}
    if "connect_timeout" not in given:
        args["connect_timeout"] = max(2, math.ceil(connect_timeout))  # libpq: whole seconds, at least 2
    options = str(given.get("options") or "")
    if statement_timeout and "statement_timeout" not in options:
        setting = f"-c statement_timeout={int(statement_timeout * 1000)}"
        args["options"] = f"{options} {setting}".strip()
    return args


def _url_from_settings(name: str, settings: dict[str, Any], owner: str) -> tuple[str, str | None]:
    url = settings.get("url")
    url_secret = settings.get("url_secret")
    if (url is None) == (url_secret is None):
        raise SQLConfigError(
            f'{owner}: [plugins.sql.connections.{name}] needs exactly one of url = "..." or '
            'url_secret = "SECRET_NAME" (a plait secret that holds the whole URL)'
        )
    if url_secret is not None:
        url = _read_secret(url_secret, "url_secret", name, owner)
    password_secret = settings.get("password_secret")
    password = _read_secret(password_secret, "password_secret", name, owner) if password_secret is not None else None
    return url, password


def _read_secret(secret_name: Any, key: str, connection: str, owner: str) -> str:
    # the error names the key, never its value: it may be the secret itself, pasted by mistake
    return read_secret_setting(f"{owner}: [plugins.sql.connections.{connection}]", key, secret_name, SQLConfigError)


def configured_connections() -> tuple[dict[str, Any], str]:
    """The ``[plugins.sql.connections]`` tables, and the config file they are read from."""
    config = get_config()
    connections = config.plugin_section("sql").get("connections", {})
    if not isinstance(connections, dict):
        raise SQLConfigError(
            f"[plugins.sql.connections] must be a table of connections, got {connections!r} "
            f"(in {config.source or config_path()})"
        )
    return connections, str(config.source or config_path())


def _logger():
    from plait import get_logger

    return get_logger("sql")
