"""``plait server ...``: start the server, migrate its database, manage API keys.

Added to the ``plait`` command by this distribution's plugin (``plait_register_commands``).
Errors in settings or input are click errors with exit code 2 and no traceback.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from plait_server.errors import ApiError, ServerConfigError

if TYPE_CHECKING:
    from plait_server.data.store import Store
    from plait_server.settings import ServerSettings

__all__ = ["server"]

_DATABASE_HELP = (
    "Database URL: sqlite:///PATH (default ~/.plait/server.db) or postgresql+psycopg://USER:PW@HOST/DB. "
    "Default: [server] database in the config (PLAIT__SERVER__DATABASE)."
)


class ServerUsageError(click.ClickException):
    exit_code = 2


@click.group()
def server() -> None:
    """Plait's orchestration server: a database of runs behind a GraphQL API."""


@server.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1, this machine only).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 4200).")
@click.option("--database", default=None, help=_DATABASE_HELP)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="API worker processes (default 1; [server] workers). More than one needs PostgreSQL: "
    "SQLite takes one writer at a time.",
)
@click.option("--log-level", default=None, type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--access-log/--no-access-log", default=None, help="Log every request (default: off).")
@click.option(
    "--scheduler/--no-scheduler",
    default=None,
    help="Run the scheduler service (schedules, zombie killer, Lazarus, events) in this process "
    "(default: on; [server] scheduler). Turn it off when `plait server scheduler` runs it elsewhere.",
)
def start(
    host: str | None,
    port: int | None,
    database: str | None,
    workers: int | None,
    log_level: str | None,
    access_log: bool | None,
    scheduler: bool | None,
) -> None:
    """Start the server (API at /graphql, health at /health).

    An empty database gets the newest schema; on first start an admin API key is created,
    printed once and written to your Plait config, so `plait register` works at once.
    """
    started = time.perf_counter()
    settings = _settings(
        host=host,
        port=port,
        database=database,
        workers=workers,
        log_level=log_level,
        access_log=access_log,
        scheduler=scheduler,
    )
    from plait_server.settings import is_loopback

    if settings.workers > 1 and settings.database.startswith("sqlite"):
        raise ServerUsageError(
            f"--workers {settings.workers} needs PostgreSQL: SQLite takes one writer at a time, so more "
            "worker processes would only wait for each other. Run one (the default), or use "
            "--database postgresql+psycopg://..."
        )
    store = _store(settings, prepare=True)
    _first_key(store, settings)
    if not is_loopback(settings.host):
        click.secho(
            f"Warning: listening on {settings.host}, reachable from other machines. API keys travel in "
            "every request: put TLS in front of the server (a reverse proxy) before you use it over a network.",
            fg="yellow",
            err=True,
        )
    from plait_server.db.engine import redact_url

    click.echo(f"Plait server on {settings.client_url} (database {redact_url(settings.database)})", err=True)
    click.echo(f"Web UI: {settings.client_url}/ (sign in with an API key)", err=True)
    _serve(store, settings, started)


@server.command("scheduler")
@click.option("--database", default=None, help=_DATABASE_HELP)
@click.option("--log-level", default=None, type=click.Choice(["debug", "info", "warning", "error"]))
def scheduler_command(database: str | None, log_level: str | None) -> None:
    """Run the scheduler service alone (no API): schedules, zombie killer, Lazarus, events.

    Several can run side by side against one PostgreSQL database (replicas share the work and
    never create a run twice). Stop it with Ctrl-C or SIGTERM.
    """
    import logging
    import signal

    settings = _settings(database=database, log_level=log_level)
    store = _store(settings)
    from plait_server.db.engine import redact_url
    from plait_server.services import Services

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    services = Services(store, settings)

    def stop(signum: int, frame: Any) -> None:
        services._stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(f"Plait scheduler service on {redact_url(settings.database)}", err=True)
    services.run_forever()
    store.events.wait_emitted(timeout=5.0)
    store.dispose()


@server.group()
def database() -> None:
    """Migrate the server's database (Alembic): upgrade, downgrade, current."""


@database.command()
@click.option("--database", default=None, help=_DATABASE_HELP)
@click.option("--revision", default="head", show_default=True, help="The revision to upgrade to.")
def upgrade(database: str | None, revision: str) -> None:
    """Upgrade the database's schema (back the database up first)."""
    from plait_server.db import migrate

    engine = _engine(_settings(database=database))
    status = _guard(lambda: migrate.upgrade(engine, revision))
    click.echo(f"Schema: {status.describe()}")


@database.command()
@click.argument("revision", default="-1")
@click.option("--database", default=None, help=_DATABASE_HELP)
def downgrade(revision: str, database: str | None) -> None:
    """Downgrade the schema to REVISION (default -1: one step; `base` drops every table)."""
    from plait_server.db import migrate

    engine = _engine(_settings(database=database))
    status = _guard(lambda: migrate.downgrade(engine, revision))
    click.echo(f"Schema: {status.describe()}")


@database.command()
@click.option("--database", default=None, help=_DATABASE_HELP)
def current(database: str | None) -> None:
    """Show the database's schema revision and whether it is up to date."""
    from plait_server.db import migrate

    engine = _engine(_settings(database=database))
    status = _guard(lambda: migrate.schema_status(engine))
    click.echo(f"Schema: {status.describe()}")


@server.group("api-key")
def api_key() -> None:
    """Create, list and revoke API keys (directly in the database)."""


@api_key.command("create")
@click.argument("name")
@click.option(
    "--scope",
    type=click.Choice(["read", "run", "admin"]),
    default="run",
    show_default=True,
    help="read: queries; run: create runs, write states and logs (agents); admin: everything.",
)
@click.option("--database", default=None, help=_DATABASE_HELP)
def create_key(name: str, scope: str, database: str | None) -> None:
    """Create an API key; it is shown once."""
    store = _store(_settings(database=database))
    record, secret = _guard(lambda: store.keys.create(name, scope))
    click.echo(f"Created API key {record.name!r} (id {record.id}, scope {record.scope}). It is shown only now:")
    click.echo(secret)


@api_key.command("list")
@click.option("--database", default=None, help=_DATABASE_HELP)
def list_keys(database: str | None) -> None:
    """List the API keys (never their secrets)."""
    from rich.console import Console
    from rich.table import Table

    store = _store(_settings(database=database))
    table = Table("id", "name", "prefix", "scope", "created", "last used", "revoked")
    for k in store.keys.list():
        table.add_row(k.id, k.name, k.prefix + "...", k.scope, _when(k.created), _when(k.last_used), _when(k.revoked))
    Console().print(table)


@api_key.command("revoke")
@click.argument("key_id")
@click.option("--database", default=None, help=_DATABASE_HELP)
def revoke_key(key_id: str, database: str | None) -> None:
    """Revoke an API key by id: refused from the next request on."""
    store = _store(_settings(database=database))
    record = _guard(lambda: store.keys.revoke(key_id))
    click.echo(f"Revoked API key {record.name!r} ({record.id}).")


@server.command("schema")
def print_schema() -> None:
    """Print the GraphQL schema (what docs/server/schema.graphql holds)."""
    from plait_server.api.schema import schema_sdl

    click.echo(schema_sdl(), nl=False)


# --- helpers -------------------------------------------------------------------------------------


def _settings(**overrides: Any) -> ServerSettings:
    from plait.errors import PlaitError
    from plait_server.settings import ServerSettings

    try:
        return ServerSettings.load(**overrides)
    except PlaitError as exc:
        raise ServerUsageError(str(exc)) from None


def _engine(settings: ServerSettings) -> Any:
    from plait_server.db.engine import make_engine

    return _guard(lambda: make_engine(settings.database))


def _store(settings: ServerSettings, prepare: bool = False) -> Store:
    from plait_server.data.store import Store
    from plait_server.db import migrate

    engine = _engine(settings)
    if prepare:
        _guard(lambda: migrate.prepare_schema(engine))
    else:
        status = _guard(lambda: migrate.schema_status(engine))
        if not status.up_to_date:
            raise ServerUsageError(
                f"The database's schema is {status.describe()}; run `plait server database upgrade` "
                "(or `plait server start`, which prepares an empty database)"
            )
    return Store(engine)


def _guard(fn: Any) -> Any:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return fn()
    except (ServerConfigError, ApiError) as exc:
        raise ServerUsageError(str(exc)) from None
    except SQLAlchemyError as exc:
        from plait_server.db.engine import redact_url

        message = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ServerUsageError(f"Database error: {redact_url(message) if '://' in message else message}") from None


def _first_key(store: Store, settings: ServerSettings) -> None:
    if store.keys.count():
        return
    from plait_server.client_config import save_client_settings

    _record, secret = store.keys.create("admin (created on first start)", "admin")
    click.echo("Created the first admin API key. It is shown only now:", err=True)
    click.echo(f"  {secret}", err=True)
    try:
        path = save_client_settings(settings.client_url, secret)
    except (OSError, ValueError) as exc:
        click.echo(
            f"Could not write it to your Plait config ({exc}); add it yourself:\n"
            f'  [server]\n  url = "{settings.client_url}"\n  api_key = "<the key above>"',
            err=True,
        )
    else:
        click.echo(f"Wrote it to {path} ([server] api_key; readable by you only).", err=True)


def _serve(store: Store, settings: ServerSettings, started: float) -> None:
    import logging

    import uvicorn

    from plait_server.api.serving import PlaitServer

    store.policy = settings.run_policy()
    services = None
    if settings.scheduler:
        from plait_server.services import Services

        services = Services(store, settings)
    logging.getLogger("plait_server").setLevel(settings.log_level.upper())
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": settings.access_log,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }
    if settings.workers > 1:
        from plait_server.api.serving import serve_workers

        serve_workers(store, settings, services, options)
        return
    from plait_server.api.app import create_app

    app = create_app(store, settings, services=services)
    server = PlaitServer(uvicorn.Config(app, **options))
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:
        sys.exit(1)


def _when(value: Any) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")
