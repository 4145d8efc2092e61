"""Settings and boto3 clients: one client per process per setting, created on first use.

Settings come from three places, the first that sets a field wins:

1. an ``S3Config`` (or a dict) given to a task or an ``S3Result`` (``config=``);
2. the ``[plugins.s3]`` section of Plait's configuration (``~/.plait/config.toml`` or
   ``$PLAIT_CONFIG``; ``PLAIT__PLUGINS__S3__ENDPOINT_URL=...`` overrides a key);
3. boto3's own chain (``AWS_*`` environment variables, ``~/.aws/credentials`` and
   ``~/.aws/config``, instance and container roles).

```toml
[plugins.s3]
profile = "analytics"                    # a profile of ~/.aws/credentials / ~/.aws/config
region = "eu-west-1"
endpoint_url = "http://127.0.0.1:9000"   # MinIO, Ceph, moto... any S3-compatible store
access_key_id_secret = "S3_KEY_ID"       # names of plait.secrets.Secret values (optional)
secret_access_key_secret = "S3_SECRET"
multipart_threshold = 8388608            # bytes; larger uploads go in parts
multipart_chunksize = 8388608
```

Clients are shared by every thread of a process (boto3 clients are thread-safe; sessions are
not, so each is made and used under a lock) and made again in a child process after a fork.
Credentials are looked up when a client is made: after changing them (or the config) in a
running process, call ``clear_clients()``.
Access keys are read through ``plait.secrets.Secret`` (so Plait masks them in logs) and are
never kept on the settings object, in a ``repr`` or in an error message.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from plait_s3.errors import S3ConfigError, S3CredentialsError

__all__ = ["S3Config", "S3Connection", "clear_clients", "get_connection", "plugin_settings"]

#: Keys boto3 finds are masked in logs from this length (AWS access key ids have 16 to 128).
_MIN_MASKED_KEY = 16

#: S3 refuses parts smaller than 5 MiB (except the last one).
MIN_PART_SIZE = 5 * 1024 * 1024


@dataclass(frozen=True)
class S3Config:
    """Where and how to reach S3. Every field is optional; unset fields come from ``[plugins.s3]``.

    Args:
        profile: a profile name from ``~/.aws/credentials`` / ``~/.aws/config``.
        region: the AWS region (``"eu-west-1"``).
        endpoint_url: an S3-compatible endpoint (``"http://127.0.0.1:9000"`` for MinIO).
        access_key_id_secret: the *name* of a ``plait.secrets.Secret`` holding the access key
            id (an environment variable or ``[secrets]`` entry), with
            ``secret_access_key_secret`` (and optionally ``session_token_secret``).
        multipart_threshold: uploads, downloads and copies larger than this many bytes go in
            parts (boto3's default: 8 MiB).
        multipart_chunksize: the size of each part (at least 5 MiB, S3's minimum).
        max_concurrency: threads per transfer (boto3's default: 10).

    ```python
    S3Config(endpoint_url="http://127.0.0.1:9000", region="us-east-1",
             access_key_id_secret="MINIO_KEY", secret_access_key_secret="MINIO_SECRET")
    ```
    """

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id_secret: str | None = None
    secret_access_key_secret: str | None = None
    session_token_secret: str | None = None
    multipart_threshold: int | None = None
    multipart_chunksize: int | None = None
    max_concurrency: int | None = None
    #: where the settings came from, for messages ("config [plugins.s3]", "S3Config")
    origin: str = field(default="S3Config", compare=False)

    def __post_init__(self) -> None:
        for name in ("profile", "region", "endpoint_url", *_SECRET_FIELDS):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                from plait.secrets import setting_repr

                raise S3ConfigError(
                    f"{self.origin}: {name} must be a non-empty string, got {setting_repr(name, value)}"
                )
        for name in ("multipart_threshold", "multipart_chunksize", "max_concurrency"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise S3ConfigError(f"{self.origin}: {name} must be a positive integer, got {value!r}")
        if self.multipart_chunksize is not None and self.multipart_chunksize < MIN_PART_SIZE:
            raise S3ConfigError(
                f"{self.origin}: multipart_chunksize={self.multipart_chunksize} is below S3's minimum part "
                f"size of {MIN_PART_SIZE} bytes (5 MiB); use at least that"
            )
        if (self.access_key_id_secret is None) != (self.secret_access_key_secret is None):
            raise S3ConfigError(
                f"{self.origin}: access_key_id_secret and secret_access_key_secret go together; set both "
                "(the names of two plait secrets) or neither"
            )

    @classmethod
    def from_mapping(cls, values: dict[str, Any], origin: str) -> S3Config:
        """Settings from a dict (a config section); unknown keys are an error naming them."""
        unknown = sorted(set(values) - _FIELDS)
        if unknown:
            raise S3ConfigError(
                f"{origin}: unknown setting(s) {', '.join(unknown)}; known settings: {', '.join(sorted(_FIELDS))}"
            )
        return cls(**values, origin=origin)

    def merged_over(self, base: S3Config) -> S3Config:
        """These settings, with fields left unset taken from ``base``."""
        changes = {f: getattr(self, f) for f in _FIELDS if getattr(self, f) is not None}
        if not changes:
            return base
        origin = self.origin if base == S3Config() else f"{self.origin} over {base.origin}"
        return dataclasses.replace(base, **changes, origin=origin)

    def transfer_config(self) -> Any:
        """A ``boto3.s3.transfer.TransferConfig`` from the multipart settings."""
        from boto3.s3.transfer import TransferConfig

        options = {
            name: getattr(self, name)
            for name in ("multipart_threshold", "multipart_chunksize", "max_concurrency")
            if getattr(self, name) is not None
        }
        return TransferConfig(**options)

    def _key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in sorted(_FIELDS))


_SECRET_FIELDS = ("access_key_id_secret", "secret_access_key_secret", "session_token_secret")
_FIELDS = frozenset(f.name for f in dataclasses.fields(S3Config) if f.name != "origin")


def as_config(value: S3Config | dict[str, Any] | None, owner: str) -> S3Config | None:
    """An ``S3Config`` from what tasks and results accept (``None``, a dict or an ``S3Config``)."""
    if value is None or isinstance(value, S3Config):
        return value
    if isinstance(value, dict):
        return S3Config.from_mapping(value, origin=f"{owner} config")
    raise S3ConfigError(f"{owner}: config must be an S3Config or a dict of its fields, got {type(value).__name__}")


def plugin_settings() -> S3Config:
    """The ``[plugins.s3]`` section of Plait's configuration as an ``S3Config``."""
    return S3Config.from_mapping(_plugin_section(), origin="config [plugins.s3]")


class S3Connection:
    """A boto3 S3 client with what plait-s3 needs around it.

    Attributes:
        client: the boto3 S3 client (thread-safe; share it, do not close it).
        config: the effective ``S3Config``.
        credential_source: where the credentials came from, for messages: ``"env"``,
            ``"shared-credentials-file (profile 'x')"``, ``"config [plugins.s3] (secrets A, B)"``...
        pid: the process that made it (a forked child makes its own).
    """

    def __init__(self, client: Any, config: S3Config, credential_source: str) -> None:
        self.pid = os.getpid()
        self.client = client
        self.config = config
        self.credential_source = credential_source
        self.transfer_config = config.transfer_config()

    @property
    def endpoint_description(self) -> str:
        return self.config.endpoint_url or f"AWS S3 ({self.client.meta.region_name or 'default region'})"

    def __repr__(self) -> str:
        return f"<S3Connection endpoint={self.endpoint_description!r} credentials from {self.credential_source}>"


_connections: dict[tuple[Any, ...], S3Connection] = {}
_lock = threading.Lock()


def get_connection(config: S3Config | None = None) -> S3Connection:
    """The process's connection for ``config`` over ``[plugins.s3]``, made on first use.

    ```python
    conn = get_connection(S3Config(endpoint_url="http://127.0.0.1:9000"))
    conn.client.list_buckets()
    ```
    """
    effective = (config or S3Config()).merged_over(plugin_settings())
    key = (os.getpid(), effective._key())
    conn = _connections.get(key)
    if conn is not None:
        return conn
    with _lock:
        conn = _connections.get(key)
        if conn is None:
            conn = _connect(effective)
            _connections[key] = conn
    return conn


def clear_clients() -> None:
    """Forget every cached client (the next use makes new ones; for tests and config changes)."""
    with _lock:
        _connections.clear()


def _after_fork_in_child() -> None:
    # Another thread may have held the lock at the fork; the child starts with a fresh one
    # and no clients (the parent's keep their connection pools).
    global _lock
    _lock = threading.Lock()
    _connections.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _connect(config: S3Config) -> S3Connection:
    import boto3
    from botocore.exceptions import BotoCoreError, ProfileNotFound

    keys: dict[str, str] = {}
    if config.access_key_id_secret is not None:
        keys = _secret_keys(config)
    try:
        session = boto3.session.Session(profile_name=config.profile, region_name=config.region, **keys)
        client = session.client("s3", endpoint_url=config.endpoint_url)
    except ProfileNotFound:
        raise S3ConfigError(
            f"{config.origin}: AWS profile {config.profile!r} is not in ~/.aws/credentials or ~/.aws/config; "
            "add it there or fix the profile name"
        ) from None
    except (BotoCoreError, ValueError) as exc:
        raise S3ConfigError(f"{config.origin}: cannot create an S3 client: {exc}") from None
    if keys:
        names = ", ".join(getattr(config, f) for f in _SECRET_FIELDS if getattr(config, f) is not None)
        source = f"{config.origin} (secrets {names})"
    else:
        source = _chain_source(session, config)
        _mask_chain_credentials(session)
    return S3Connection(client, config, source)


def _secret_keys(config: S3Config) -> dict[str, str]:
    from plait.secrets import read_secret_setting

    keys = {}
    for field_name, arg in (
        ("access_key_id_secret", "aws_access_key_id"),
        ("secret_access_key_secret", "aws_secret_access_key"),
        ("session_token_secret", "aws_session_token"),
    ):
        name = getattr(config, field_name)
        if name is None:
            continue
        # the error names the field, never its value: it may be the key itself, pasted by mistake
        keys[arg] = read_secret_setting(config.origin + ":", field_name, name, S3CredentialsError)
    return keys


def _chain_source(session: Any, config: S3Config) -> str:
    """Which provider of boto3's chain has the credentials, e.g. ``env`` (never the keys)."""
    try:
        credentials = session.get_credentials()
    except Exception as exc:  # a broken profile or provider: say so instead of failing here
        return f"boto3's credential chain (which failed: {type(exc).__name__})"
    if credentials is None:
        return "boto3's credential chain (none found)"
    method = getattr(credentials, "method", None) or "unknown provider"
    if config.profile is not None:
        return f"{method} (profile {config.profile!r})"
    return method


def _mask_chain_credentials(session: Any) -> None:
    """Have Plait's log handlers mask the keys boto3 found (botocore's DEBUG logs show the key id)."""
    from plait.secrets import register_secret

    try:
        credentials = session.get_credentials()
        frozen = credentials.get_frozen_credentials() if credentials is not None else None
    except Exception:  # no usable credentials: the first request reports it
        return
    if frozen is not None:
        for value in (frozen.access_key, frozen.secret_key, frozen.token):
            # Real AWS keys are 16+ characters; dummy test keys ("test", "testing") are not
            # secrets, and masking them would garble every log line that holds the word.
            if value and len(value) >= _MIN_MASKED_KEY:
                register_secret(value)


def _plugin_section() -> dict[str, Any]:
    from plait.config import get_config

    return dict(get_config().plugin_section("s3"))
