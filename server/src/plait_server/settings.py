"""The server's settings: ``[server]`` in Plait's config (or ``PLAIT__SERVER__*``), overridden
by the command line.

```toml
[server]
url = "http://127.0.0.1:4200"      # where clients (plait register, agents) find the server
api_key = "plait_..."              # the clients' key (written here on the server's first start)
database = "sqlite:////home/me/.plait/server.db"   # or postgresql+psycopg://...
host = "127.0.0.1"
port = 4200
cors_origins = []                  # closed unless you list origins
max_body_bytes = 10485760          # 10 MiB per request
max_query_depth = 10
max_query_aliases = 30
max_query_tokens = 5000
workers = 1                        # API processes (PostgreSQL only: SQLite takes one writer)

# orchestration (see docs/orchestration.md)
scheduler = true                   # run the scheduler service inside `plait server start`
scheduler_interval = 1.0           # seconds between the scheduler's passes
scheduled_runs = 10                # runs kept Scheduled ahead for every active schedule
heartbeat_interval = 30.0          # seconds between a flow-run process's heartbeats
missed_heartbeats = 3              # a run under way is dead after this many missed heartbeats
max_reschedules = 3                # Lazarus reschedules a dead run this often, then fails it
late_after = 300.0                 # a Scheduled run unclaimed this long after its time is late
agent_lost_after = 120.0           # an agent silent this long is lost
```
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from plait.settings import Setting, Settings
from plait_server.errors import ServerConfigError

if TYPE_CHECKING:
    from plait_server.data.attempts import RunPolicy

__all__ = ["DEFAULT_PORT", "SETTINGS", "ServerSettings", "is_loopback"]

DEFAULT_PORT = 4200


def _at_least(low: int) -> Any:
    return lambda value: None if value >= low else f"must be at least {low}"


def _seconds(value: float) -> str | None:
    return None if 0.01 <= value <= 86_400 else "must be a number of seconds from 0.01 to 86400"


def _port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else "must be a port number from 0 to 65535"


#: ``[server]``, declared (``plait.settings``): the clients' keys and the server's own.
SETTINGS = Settings(
    "server",
    Setting("url", str, help="where clients (plait register, agents) find the server"),
    Setting("api_key", str, secret=True, help="the clients' API key (written here on the server's first start)"),
    Setting("database", str, help="sqlite:///PATH (default ~/.plait/server.db) or postgresql+psycopg://..."),
    Setting("host", str, "127.0.0.1", help="the address the server listens on"),
    Setting("port", int, DEFAULT_PORT, help="the port the server listens on", check=_port),
    Setting("cors_origins", list[str], [], help="browser origins allowed to call the API (closed by default)"),
    Setting("max_body_bytes", int, 10 * 1024 * 1024, help="the largest request body", check=_at_least(1024)),
    Setting("max_query_depth", int, 10, help="the deepest GraphQL document", check=_at_least(2)),
    Setting("max_query_aliases", int, 30, help="aliases per GraphQL document", check=_at_least(1)),
    Setting("max_query_tokens", int, 5000, help="tokens per GraphQL document", check=_at_least(100)),
    Setting(
        "workers",
        int,
        1,
        help="API worker processes (PostgreSQL; SQLite takes one)",
        check=lambda value: None if 1 <= value <= 64 else "must be from 1 to 64",
    ),
    Setting("log_level", str, "info", choices=("debug", "info", "warning", "error"), help="the server's log level"),
    Setting("access_log", bool, False, help="log every request"),
    Setting("scheduler", bool, True, help="run the scheduler service (schedules, watchdogs) in plait server start"),
    Setting("scheduler_interval", float, 1.0, help="seconds between the scheduler's passes", check=_seconds),
    Setting("scheduled_runs", int, 10, help="runs kept Scheduled ahead of every active schedule", check=_at_least(1)),
    Setting("heartbeat_interval", float, 30.0, help="seconds between a flow-run process's heartbeats", check=_seconds),
    Setting("missed_heartbeats", int, 3, help="a run under way is dead after this many intervals", check=_at_least(1)),
    Setting("max_reschedules", int, 3, help="reschedules of a dead run before it fails", check=_at_least(0)),
    Setting("late_after", float, 300.0, help="seconds after its time an unclaimed run is late", check=_seconds),
    Setting("agent_lost_after", float, 120.0, help="seconds of silence after which an agent is lost", check=_seconds),
    help="the Plait server (plait server start) and where its clients find it",
)


@dataclass
class ServerSettings:
    """Everything ``plait server start`` needs; see the module docstring for the config keys."""

    database: str = field(default_factory=lambda: _default_database_url())
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    cors_origins: list[str] = field(default_factory=list)
    max_body_bytes: int = 10 * 1024 * 1024
    max_query_depth: int = 10
    max_query_aliases: int = 30
    max_query_tokens: int = 5000
    workers: int = 1
    log_level: str = "info"
    access_log: bool = False
    scheduler: bool = True
    scheduler_interval: float = 1.0
    scheduled_runs: int = 10
    heartbeat_interval: float = 30.0
    missed_heartbeats: int = 3
    max_reschedules: int = 3
    late_after: float = 300.0
    agent_lost_after: float = 120.0

    @classmethod
    def load(cls, **overrides: Any) -> ServerSettings:
        """The settings from Plait's config, then ``overrides`` (``None`` values are ignored).

        ``[server]`` is read through its declaration (``SETTINGS``, which plait-server registers
        with ``plait_register_settings``): an unknown key gets a did-you-mean, a bad value names
        the key and where it came from, ``PLAIT__SERVER__PORT=4300`` is read as a number.
        """
        from plait.config import get_config

        checked = get_config().check_section(SETTINGS)
        errors = [p.message for p in checked.problems if p.severity == "error"]
        if errors:
            raise ServerConfigError("\n".join(errors))
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in checked.values.items() if k in names and v is not None}
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        def bad(name: str, what: str) -> ServerConfigError:
            return ServerConfigError(
                f"Server setting {name} = {getattr(self, name)!r} is not valid: {what} "
                f"([server] {name} in the config, or PLAIT__SERVER__{name.upper()})"
            )

        if not isinstance(self.database, str) or not self.database:
            raise bad("database", "expected a database URL (sqlite:///PATH or postgresql+psycopg://...)")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise bad("port", "expected a port number from 0 to 65535")
        if not isinstance(self.cors_origins, list) or not all(isinstance(o, str) for o in self.cors_origins):
            raise bad("cors_origins", 'expected a list of origins, e.g. ["https://plait.example.com"]')
        for name, low in (
            ("max_body_bytes", 1024),
            ("max_query_depth", 2),
            ("max_query_aliases", 1),
            ("max_query_tokens", 100),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise bad(name, f"expected a whole number of at least {low}")
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) or not 1 <= self.workers <= 64:
            raise bad("workers", "expected a whole number from 1 to 64")
        for name, low in (("scheduled_runs", 1), ("missed_heartbeats", 1), ("max_reschedules", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise bad(name, f"expected a whole number of at least {low}")
        for name in ("scheduler_interval", "heartbeat_interval", "late_after", "agent_lost_after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.01 <= value <= 86_400:
                raise bad(name, "expected a number of seconds from 0.01 to 86400")
        if not isinstance(self.scheduler, bool):
            raise bad("scheduler", "expected true or false")

    def run_policy(self) -> RunPolicy:
        """The timings the data layer judges runs by (``Store.policy``)."""
        from plait_server.data.attempts import RunPolicy

        return RunPolicy(
            heartbeat_interval=float(self.heartbeat_interval),
            missed_heartbeats=self.missed_heartbeats,
            max_reschedules=self.max_reschedules,
            late_after=float(self.late_after),
            agent_lost_after=float(self.agent_lost_after),
        )

    @property
    def client_url(self) -> str:
        """The URL a client on this machine uses to reach the server."""
        host = self.host
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


def _default_database_url() -> str:
    # Imported here: this module is imported to declare [server] by every `plait` command, and
    # the engine module brings SQLAlchemy.
    from plait_server.db.engine import default_database_url

    return default_database_url()


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
