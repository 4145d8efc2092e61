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
```
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, fields
from typing import Any

from plait_server.db.engine import default_database_url
from plait_server.errors import ServerConfigError

__all__ = ["DEFAULT_PORT", "ServerSettings", "is_loopback"]

DEFAULT_PORT = 4200


@dataclass
class ServerSettings:
    """Everything ``plait server start`` needs; see the module docstring for the config keys."""

    database: str = field(default_factory=default_database_url)
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    cors_origins: list[str] = field(default_factory=list)
    max_body_bytes: int = 10 * 1024 * 1024
    max_query_depth: int = 10
    max_query_aliases: int = 30
    max_query_tokens: int = 5000
    log_level: str = "info"
    access_log: bool = False

    @classmethod
    def load(cls, **overrides: Any) -> ServerSettings:
        """The settings from Plait's config, then ``overrides`` (``None`` values are ignored)."""
        from plait.config import get_config

        config = get_config()
        section = config.section("server")
        values: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for name in types:
            if name in section:
                values[name] = section[name]
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

    @property
    def client_url(self) -> str:
        """The URL a client on this machine uses to reach the server."""
        host = self.host
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
