"""Plait's settings: a TOML file overridden by ``PLAIT__SECTION__KEY`` environment variables.

The file is ``$PLAIT_CONFIG`` if set, else ``~/.plait/config.toml`` (a missing file is an
empty configuration). Each double underscore in an environment variable's name goes one
table deeper, and the value is read as a TOML scalar when it is one (``5``, ``true``,
``"text"``, ``[1, 2]``), else taken as a plain string::

    # ~/.plait/config.toml
    [logging]
    level = "INFO"

    [plugins.slack]
    channel = "#alerts"

    # PLAIT__PLUGINS__SLACK__CHANNEL='#ops' overrides the channel:
    from plait.config import get_config

    get_config().plugin_section("slack")["channel"]   # '#ops'

Plugins read their own section with ``config.plugin_section("name")``; ``[secrets]`` holds
values for ``plait.secrets.Secret``.
"""

from __future__ import annotations

import os
import re
import threading
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from plait.errors import ConfigError

__all__ = ["Config", "config_path", "get_config", "load_config", "reset_config"]

ENV_PREFIX = "PLAIT__"
_MISSING = object()


class Config(Mapping[str, Any]):
    """The merged settings: a read-only mapping of sections (plain dicts).

    ``source`` is the file read (or ``None``); ``get("plugins.slack.channel")`` reads a
    dotted path.
    """

    def __init__(self, data: dict[str, Any], source: Path | None = None) -> None:
        self._data = data
        self.source = source

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"<Config from {self.source or '(no file)'}: {sorted(self._data)}>"

    def get(self, path: str, default: Any = None, type: type | None = None) -> Any:
        """The value at a dotted ``path`` (``"logging.level"``), or ``default``.

        With ``type``, the value must be of that type (an ``int`` is accepted for ``float``),
        or a ``ConfigError`` names the key, the value and where it came from.
        """
        node: Any = self._data
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        if type is not None and not _is_type(node, type):
            raise ConfigError(
                f"Config value {path} = {node!r} is a {builtins_type(node).__name__}, not a {type.__name__} "
                f"({self._where(path)}); fix it in the file or the environment variable "
                f"{ENV_PREFIX}{path.upper().replace('.', '__')}"
            )
        return node

    def section(self, name: str) -> dict[str, Any]:
        """A top-level table (``{}`` when absent)."""
        value = self._data.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"Config entry {name!r} must be a table, got {value!r} ({self._where(name)})")
        return value

    def plugin_section(self, name: str) -> dict[str, Any]:
        """The plugin's own table, ``[plugins.<name>]`` (``{}`` when absent)."""
        value = self.section("plugins").get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(
                f"Config entry plugins.{name} must be a table ([plugins.{name}]), got {value!r} "
                f"({self._where('plugins.' + name)})"
            )
        return value

    def _where(self, path: str) -> str:
        env = f"{ENV_PREFIX}{path.upper().replace('.', '__')}"
        if env in os.environ:
            return f"from environment variable {env}"
        return f"from {self.source}" if self.source else "not set"


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The configuration file's path: ``$PLAIT_CONFIG`` or ``~/.plait/config.toml``."""
    env = os.environ if environ is None else environ
    given = env.get("PLAIT_CONFIG")
    return Path(given).expanduser() if given else Path.home() / ".plait" / "config.toml"


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the file at ``path`` (default ``config_path()``) and apply ``PLAIT__*`` variables.

    Raises:
        ConfigError: the file is not valid TOML (the message has the path, line and column),
            or ``$PLAIT_CONFIG`` names a file that does not exist, or a variable conflicts
            with a value that is not a table.
    """
    env = os.environ if environ is None else environ
    explicit = path is not None or bool(env.get("PLAIT_CONFIG"))
    file = Path(path) if path is not None else config_path(env)
    data: dict[str, Any] = {}
    source: Path | None = None
    if file.is_file():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"Config file {file} is not valid TOML: {exc}; fix the line it names") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"Config file {file} cannot be read: {exc}") from None
        source = file
    elif explicit:
        raise ConfigError(
            f"Config file {file} does not exist (named by {'PLAIT_CONFIG' if path is None else 'path'}); "
            "create it or unset PLAIT_CONFIG"
        )
    for name in sorted(env):
        if name.startswith(ENV_PREFIX):
            _apply_env(data, name, env[name])
    return Config(data, source)


_config: Config | None = None
_lock = threading.Lock()


def get_config() -> Config:
    """The process's configuration, read once (``reset_config()`` reads it again)."""
    global _config
    if _config is None:
        with _lock:
            if _config is None:
                _config = load_config()
    return _config


def reset_config() -> None:
    """Forget the cached configuration."""
    global _config
    with _lock:
        _config = None


_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _apply_env(data: dict[str, Any], name: str, raw: str) -> None:
    parts = name[len(ENV_PREFIX) :].split("__")
    if not all(parts) or not all(_KEY.match(p) for p in parts):
        raise ConfigError(
            f"Environment variable {name} is not a valid Plait setting name: use PLAIT__SECTION__KEY "
            "(double underscores between parts, none empty)"
        )
    keys = [p.lower() for p in parts]
    node = data
    for depth, key in enumerate(keys[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(
                f"Environment variable {name} sets a key under {'.'.join(keys[: depth + 1])}, "
                f"which the config file sets to the value {child!r}, not a table"
            )
        node = child
    node[keys[-1]] = parse_scalar(raw)


def parse_scalar(raw: str) -> Any:
    """``raw`` read as a TOML value if it is one, else the string itself."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _is_type(value: Any, expected: type) -> bool:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return True
    if expected is int and isinstance(value, bool):
        return False
    return isinstance(value, expected)


builtins_type = type
