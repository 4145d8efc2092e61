"""Where the container engine is, and the defaults every container gets: ``[plugins.docker]``.

```toml
[plugins.docker]
base_url = "unix:///run/podman/podman.sock"   # default: $DOCKER_HOST, else the usual sockets
timeout = 60                                  # seconds for one API call (not for a container's run)
# tls = true; tls_verify = true; ca_cert = "..."; client_cert = "..."; client_key = "..."
network_mode = "none"                         # defaults for every DockerRun container
labels = { team = "data" }
ulimits = { nofile = 1024, nproc = [4096, 8192] }

[plugins.docker.registries."registry.example.com"]
username = "ci"
password_secret = "REGISTRY_PASSWORD"         # a plait secret: $REGISTRY_PASSWORD or [secrets]
```

Without ``base_url`` the engine is found as the ``docker`` command finds it: ``DOCKER_HOST``
(with ``DOCKER_TLS_VERIFY`` and ``DOCKER_CERT_PATH``), else ``/var/run/docker.sock``, else
Podman's sockets (``/run/podman/podman.sock``, ``$XDG_RUNTIME_DIR/podman/podman.sock``).
Each setting can also come from the environment: ``PLAIT__PLUGINS__DOCKER__BASE_URL=...``.

Clients are made on first use, one per process and setting, and shared by every thread (a
forked worker makes its own). ``docker`` (the Docker SDK for Python) is imported then, not when
this module is.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plait.settings import Setting, Settings, TableOf, declare
from plait_docker.errors import DockerConfigError, DockerEngineError

__all__ = ["SETTINGS", "DockerSettings", "clear_clients", "get_client", "plugin_settings", "registry_auth"]

DEFAULT_TIMEOUT = 60.0
#: Connections kept per client: two per running container (its output and its wait).
DEFAULT_MAX_POOL_SIZE = 64
PODMAN_SOCKETS = ("/run/podman/podman.sock",)


@dataclass(frozen=True)
class DockerSettings:
    """How to reach the engine, and defaults for containers. Unset fields come from ``[plugins.docker]``.

    Args:
        base_url: the engine's address: ``unix:///var/run/docker.sock``, ``tcp://host:2376``,
            ``ssh://user@host``.
        version: the API version to speak (default: the engine's own).
        timeout: seconds one API call may take (default 60). A container may run longer:
            its wait and its output are not bounded by this.
        tls: talk TLS to a ``tcp://`` engine; ``tls_verify`` checks its certificate against
            ``ca_cert``; ``client_cert`` and ``client_key`` authenticate us.
        max_pool_size: connections kept open per client (default 64).
        network_mode, labels, ulimits: defaults for every ``DockerRun`` container (a task's
            own values win; labels are merged).
        registries: ``{registry: {"username": ..., "password_secret": ...}}`` for pulls and pushes.
    """

    base_url: str | None = None
    version: str | None = None
    timeout: float | None = None
    tls: bool | None = None
    tls_verify: bool | None = None
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    max_pool_size: int | None = None
    network_mode: str | None = None
    labels: dict[str, str] | None = None
    ulimits: dict[str, Any] | None = None
    registries: dict[str, dict[str, Any]] | None = None
    origin: str = field(default="DockerSettings", compare=False)

    def __post_init__(self) -> None:
        given = {f: getattr(self, f) for f in _FIELDS if getattr(self, f) is not None}
        if given:
            _validated(given, self.origin)

    @classmethod
    def from_mapping(cls, values: dict[str, Any], origin: str) -> DockerSettings:
        """Settings from a dict of its fields; an unknown key or a bad value is a
        ``DockerConfigError`` naming it (checked against ``SETTINGS``, the declaration)."""
        if not isinstance(values, dict):
            raise DockerConfigError(f"{origin}: expected a table of settings, got {values!r}")
        if "agent" in values:
            raise DockerConfigError(f"{origin}: the Docker agent's settings belong in [plugins.docker.agent]")
        checked = _validated(values, origin)
        return cls(**{k: v for k, v in checked.items() if k in values}, origin=origin)

    def merged_over(self, base: DockerSettings) -> DockerSettings:
        """These settings, with the fields left unset taken from ``base``."""
        changes = {f: getattr(self, f) for f in _FIELDS if getattr(self, f) is not None}
        if not changes:
            return base
        return dataclasses.replace(base, **changes, origin=f"{self.origin} over {base.origin}")

    def _key(self) -> tuple[Any, ...]:
        return tuple(repr(getattr(self, f)) for f in sorted(_CONNECTION_FIELDS))


_FIELDS = frozenset(f.name for f in dataclasses.fields(DockerSettings) if f.name != "origin")
_CONNECTION_FIELDS = (
    "base_url",
    "version",
    "timeout",
    "tls",
    "tls_verify",
    "ca_cert",
    "client_cert",
    "client_key",
    "max_pool_size",
)


def as_settings(value: DockerSettings | dict[str, Any] | None, owner: str) -> DockerSettings | None:
    """A ``DockerSettings`` from what tasks accept (``None``, a dict or a ``DockerSettings``)."""
    if value is None or isinstance(value, DockerSettings):
        return value
    if isinstance(value, dict):
        return DockerSettings.from_mapping(value, origin=f"{owner} docker=")
    raise DockerConfigError(f"{owner}: docker= must be a DockerSettings or a dict of its fields, got {value!r}")


def plugin_settings() -> DockerSettings:
    """``[plugins.docker]`` of Plait's configuration as ``DockerSettings`` (defaults filled in).

    Raises:
        DockerConfigError: an unknown key (with the closest known one) or a bad value, naming
            where it came from (the file or a ``PLAIT__PLUGINS__DOCKER__*`` variable).
    """
    from plait.config import get_config
    from plait.errors import ConfigError

    declare(SETTINGS, owner="docker")  # a no-op once the plugin manager has declared it
    try:
        values = get_config().values(SETTINGS.path)
    except ConfigError as exc:
        raise DockerConfigError(str(exc)) from None
    return DockerSettings(**{k: v for k, v in values.items() if k in _FIELDS}, origin="config [plugins.docker]")


def agent_settings() -> dict[str, Any]:
    """``[plugins.docker.agent]``, checked, with its defaults (for ``DockerAgent``)."""
    from plait.config import get_config
    from plait.errors import ConfigError

    declare(SETTINGS, owner="docker")
    try:
        return dict(get_config().values(SETTINGS.path).get("agent") or {})
    except ConfigError as exc:
        raise DockerConfigError(str(exc)) from None


def effective_settings(settings: DockerSettings | None = None) -> DockerSettings:
    """``settings`` over ``[plugins.docker]``."""
    base = plugin_settings()
    return settings.merged_over(base) if settings is not None else base


# --- the declaration of [plugins.docker] ---------------------------------------------------------


def _not_empty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be a positive number of seconds"


def _labels_reason(labels: dict[str, str]) -> str | None:
    return None if all(labels) else "has an empty label name"


def _ulimits_reason(ulimits: dict[str, Any]) -> str | None:
    try:
        ulimit_specs(ulimits, "ulimits")
    except DockerConfigError as exc:
        return str(exc).removeprefix("ulimits: ")
    return None


def _client_pair(values: Any) -> str | None:
    if (values.get("client_cert") is None) != (values.get("client_key") is None):
        return "client_cert and client_key go together; set both or neither"
    return None


def _registry_entry(values: Any) -> str | None:
    if not values.get("username") or not values.get("password_secret"):
        return 'needs username = "..." and password_secret = "SECRET_NAME" (the password in a plait secret)'
    return None


#: ``[plugins.docker]``, declared through ``plait_register_settings``: ``plait config`` lists it,
#: unknown keys get a did-you-mean, ``PLAIT__PLUGINS__DOCKER__*`` values are read as their types.
#: ``DockerSettings(...)`` and the tasks' ``docker={...}`` are checked against it too.
SETTINGS = Settings(
    "plugins.docker",
    Setting(
        "base_url",
        str,
        help="the engine: unix:///run/podman/podman.sock, tcp://host:2376, ssh://user@host "
        "(default: $DOCKER_HOST, else /var/run/docker.sock, else Podman's socket)",
        check=_not_empty,
    ),
    Setting("version", str, help="the API version to speak (default: the engine's)", check=_not_empty),
    Setting(
        "timeout",
        float,
        DEFAULT_TIMEOUT,
        help="seconds one API call may take (a container may run longer)",
        check=_positive,
    ),
    Setting("tls", bool, False, help="talk TLS to a tcp:// engine"),
    Setting("tls_verify", bool, False, help="check the engine's certificate against ca_cert"),
    Setting("ca_cert", str, help="the CA certificate's file", check=_not_empty),
    Setting("client_cert", str, help="our certificate's file (with client_key)", check=_not_empty),
    Setting("client_key", str, help="our key's file (with client_cert)", check=_not_empty),
    Setting(
        "max_pool_size",
        int,
        DEFAULT_MAX_POOL_SIZE,
        help="connections kept per engine (two per running container)",
        check=lambda v: None if v >= 1 else "must be at least 1",
    ),
    Setting("network_mode", str, help="default network of DockerRun containers", check=_not_empty),
    Setting("labels", dict[str, str], help="labels added to every container", check=_labels_reason),
    Setting(
        "ulimits",
        dict[str, Any],
        help="default ulimits of every container: { nofile = 1024, nproc = [4096, 8192] }",
        check=_ulimits_reason,
    ),
    Setting(
        "registries",
        TableOf(
            Settings(
                "registry",
                Setting("username", str, help="the registry account"),
                Setting("password_secret", str, help="name of the plait secret holding its password"),
                Setting("email", str),
                check=_registry_entry,
            )
        ),
        help='credentials for pulls and pushes: [plugins.docker.registries."HOST"]',
    ),
    Setting(
        "agent",
        Settings(
            "agent",
            Setting("image", str, help="the image of flow runs whose flow names none (run_config docker.image)"),
            Setting("volumes", list[str], [], help='mounts of every run\'s container: ["/srv/flows:/srv/flows:ro"]'),
            Setting(
                "env",
                list[str],
                [],
                help='environment of every run\'s container: ["NAME=VALUE", "NAME" (its value here)]',
            ),
            Setting("network", str, help="the containers' network: host, bridge, a network's name (default: engine's)"),
            Setting("server_url", str, help="the server's URL as containers reach it (default: the agent's)"),
            Setting("pull", str, "missing", choices=("missing", "always", "never"), help="when to pull the image"),
            Setting("mem_limit", str, help="memory limit of each run's container: 512m, 2g"),
            Setting(
                "cpus",
                float,
                help="CPUs each run's container may use",
                check=lambda v: None if v > 0 else "must be more than 0",
            ),
            Setting("user", str, help="the user runs execute as in their containers (default: the image's)"),
            Setting("labels", dict[str, str], help="more labels on every run's container", check=_labels_reason),
        ),
        {},
        help="the Docker agent (plait agent start --type docker); its options win",
    ),
    check=_client_pair,
    help="containers (plait-docker): the engine and container defaults",
)


def _validated(values: dict[str, Any], origin: str) -> dict[str, Any]:
    """``values`` (settings given in code) checked against ``SETTINGS``; a ``DockerConfigError``
    naming ``origin``, each bad key and the fix when something is wrong."""
    checked = SETTINGS.validate(values)
    errors = [p.message for p in checked.problems if p.severity == "error"]
    if errors:
        prefix = SETTINGS.path + "."
        shown = [
            m.replace(f"[{SETTINGS.path}] has no setting", "unknown setting")
            .replace(f"[{SETTINGS.path}] ", "")
            .replace(prefix, "")
            for m in errors
        ]
        raise DockerConfigError(f"{origin}: {'; '.join(shown)}")
    return checked.values


class _Connection:
    __slots__ = ("client", "where")

    def __init__(self, client: Any, where: str) -> None:
        self.client = client
        self.where = where


_clients: dict[tuple[Any, ...], _Connection] = {}
_lock = threading.Lock()


def get_client(settings: DockerSettings | None = None) -> Any:
    """The process's ``docker.DockerClient`` for ``settings`` over ``[plugins.docker]``.

    ```py
    client = get_client()
    client.ping()
    ```
    """
    return connection(effective_settings(settings)).client


def engine_address(settings: DockerSettings | None = None) -> str:
    """The engine's address as used (``unix:///...``, ``tcp://...``), for messages."""
    return connection(effective_settings(settings)).where


def connection(effective: DockerSettings) -> _Connection:
    key = (os.getpid(), effective._key(), os.environ.get("DOCKER_HOST"))
    conn = _clients.get(key)
    if conn is not None:
        return conn
    with _lock:
        conn = _clients.get(key)
        if conn is None:
            conn = _connect(effective)
            _clients[key] = conn
    return conn


def clear_clients() -> None:
    """Close and forget every cached client (for tests and config changes)."""
    with _lock:
        conns = list(_clients.values())
        _clients.clear()
    for conn in conns:
        try:
            conn.client.close()
        except Exception:  # closing is best effort
            pass


def _after_fork_in_child() -> None:
    # The parent's clients hold its sockets: the child starts with a fresh lock and none.
    global _lock
    _lock = threading.Lock()
    _clients.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _connect(settings: DockerSettings) -> _Connection:
    import docker
    from docker.errors import DockerException

    options: dict[str, Any] = {
        "timeout": settings.timeout if settings.timeout is not None else DEFAULT_TIMEOUT,
        "max_pool_size": settings.max_pool_size or DEFAULT_MAX_POOL_SIZE,
    }
    if settings.version is not None:
        options["version"] = settings.version
    base_url = settings.base_url
    env_host = os.environ.get("DOCKER_HOST")
    try:
        if base_url is not None:
            where = base_url
            client = docker.DockerClient(base_url=base_url, tls=_tls_config(settings), **options)
        elif env_host:
            where = f"{env_host} (DOCKER_HOST)"
            client = docker.from_env(**options)
        else:
            found = _default_socket()
            where = found
            client = docker.DockerClient(base_url=found, **options)
    except DockerException as exc:
        if "connection" in str(exc).lower():
            raise DockerEngineError(unreachable_message(where, exc)) from None
        raise DockerEngineError(f"{settings.origin}: cannot set up a client for the container engine: {exc}") from None
    return _Connection(client, where)


def unreachable_message(where: str, exc: BaseException) -> str:
    """What to say when the engine at ``where`` does not answer."""
    from plait.secrets import mask

    return mask(
        f"cannot reach the container engine at {where} ({type(exc).__name__}: {exc}). Start Docker, "
        "or Podman's Docker-compatible service (podman system service --time=0 "
        "unix:///run/podman/podman.sock), and point DOCKER_HOST or [plugins.docker] base_url at it"
    )


def _default_socket() -> str:
    candidates = ["/var/run/docker.sock", *PODMAN_SOCKETS]
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        candidates.append(f"{runtime_dir}/podman/podman.sock")
    for path in candidates:
        if Path(path).exists():
            return f"unix://{path}"
    return "unix:///var/run/docker.sock"  # not there either: the first call says how to fix it


def _tls_config(settings: DockerSettings) -> Any:
    if not settings.tls and not settings.tls_verify:
        return False
    from docker.tls import TLSConfig

    cert = (settings.client_cert, settings.client_key) if settings.client_cert else None
    try:
        return TLSConfig(client_cert=cert, ca_cert=settings.ca_cert, verify=bool(settings.tls_verify))
    except Exception as exc:  # docker.errors.TLSParameterError: a file that does not exist
        raise DockerConfigError(f"{settings.origin}: bad TLS settings: {exc}") from None


# --- values shared by tasks and settings ---------------------------------------------------------


def check_labels(labels: Any, owner: str) -> dict[str, str]:
    if not isinstance(labels, dict) or not all(isinstance(k, str) and k for k in labels):
        raise DockerConfigError(f"{owner}: labels must be a table of name -> text, got {labels!r}")
    return {k: str(v) for k, v in labels.items()}


def ulimit_specs(ulimits: Any, owner: str) -> list[dict[str, Any]]:
    """``{"nofile": 1024, "nproc": [4096, 8192]}`` as the engine's ulimit entries."""
    if not isinstance(ulimits, dict):
        raise DockerConfigError(
            f"{owner}: ulimits must be a table of name -> limit or [soft, hard], e.g. "
            f"{{nofile = 1024, nproc = [4096, 8192]}}, got {ulimits!r}"
        )
    specs = []
    for name, value in ulimits.items():
        if isinstance(value, (list, tuple)) and len(value) == 2:
            soft, hard = value
        else:
            soft = hard = value
        if (
            not all(isinstance(v, int) and not isinstance(v, bool) and v >= -1 for v in (soft, hard))
            or soft > hard >= 0
        ):
            raise DockerConfigError(
                f"{owner}: ulimit {name!r} must be an integer or [soft, hard] with soft <= hard, got {value!r}"
            )
        specs.append({"Name": str(name), "Soft": soft, "Hard": hard})
    return specs


def registry_auth(repository: str, settings: DockerSettings) -> dict[str, str] | None:
    """The credentials ``[plugins.docker.registries]`` holds for ``repository``'s registry, or ``None``.

    The password is read through ``plait.secrets.Secret`` (so it is masked everywhere).
    """
    registries = settings.registries or {}
    if not registries:
        return None
    registry = registry_of(repository)
    entry = registries.get(registry)
    if entry is None:
        return None
    from plait.secrets import Secret

    auth = {"username": entry["username"], "password": Secret(entry["password_secret"]).get()}
    if entry.get("email"):
        auth["email"] = entry["email"]
    return auth


def registry_of(repository: str) -> str:
    """The registry part of an image name: ``registry.example.com:5000/team/app`` -> ``registry.example.com:5000``."""
    first, _, rest = repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"
