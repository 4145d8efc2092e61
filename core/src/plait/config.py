"""Plait's settings: a TOML file overridden by ``PLAIT__SECTION__KEY`` environment variables.

The file is ``$PLAIT_CONFIG`` if set, else ``~/.plait/config.toml`` (a missing default file is
an empty configuration; a file ``PLAIT_CONFIG`` names must exist). Each double underscore in an
environment variable's name goes one table deeper::

    # ~/.plait/config.toml
    [logging]
    level = "INFO"

    [plugins.slack]
    channel = "#alerts"

    # PLAIT__PLUGINS__SLACK__CHANNEL='#ops' overrides the channel:
    from plait.config import get_config

    get_config().plugin_section("slack")["channel"]   # '#ops'

An environment value is read as the type its setting declares (``plait.settings``): ``5`` for
an int, ``5.0`` for a float, ``2026-01-31`` stays a string; only keys nobody declares are
guessed (as a TOML value when they parse as one). Names are case-insensitive, except the keys
of free-form tables: ``PLAIT__SECRETS__PIN=1234`` sets ``[secrets] PIN`` (so
``Secret("PIN")`` finds it). A plugin name with a hyphen is spelled with an underscore
(``PLAIT__PLUGINS__MY_ALERTS__LOG_FILE`` for ``[plugins.my-alerts]``).

Plugins read their own section with ``config.plugin_section("name")`` (the values as given,
env overrides typed) or ``config.values("plugins.name")`` (checked against the declaration,
defaults filled in); ``[secrets]`` holds values for ``plait.secrets.Secret``.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plait.errors import ConfigError

if TYPE_CHECKING:
    import tomllib

__all__ = [
    "Config",
    "config_path",
    "env_name",
    "get_config",
    "load_config",
    "reset_config",
]

ENV_PREFIX = "PLAIT__"
_MISSING = object()


class Config(Mapping[str, Any]):
    """The merged settings: a read-only mapping of sections (plain dicts).

    ``source`` is the file read (or ``None``); ``get("plugins.slack.channel")`` reads a
    dotted path.
    """

    def __init__(self, data: dict[str, Any], source: Path | None = None) -> None:
        self._raw = data
        self.source = source
        self._typed: dict[str, tuple[int, Any]] = {}
        self._lock = threading.Lock()

    # -- the mapping of sections ------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        if key not in self._raw:
            raise KeyError(key)
        return self._section(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return f"<Config from {self.source or '(no file)'}: {sorted(self._raw)}>"

    @property
    def raw(self) -> dict[str, Any]:
        """The file's tables with the environment's values applied, as read (env values are
        ``plait.settings.EnvValue`` strings that know their variable)."""
        return self._raw

    def get(self, path: str, default: Any = None, type: type | None = None) -> Any:
        """The value at a dotted ``path`` (``"logging.level"``), or ``default``.

        With ``type``, the value must be of that type (an ``int`` is accepted for ``float``),
        or a ``ConfigError`` names the key, the value and where it came from.
        """
        first, _, rest = path.partition(".")
        if first not in self._raw:
            return default
        node: Any = self._section(first)
        for part in rest.split(".") if rest else ():
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        if type is not None and not _is_type(node, type):
            from plait.settings import show_value

            shown = show_value(None, path.rsplit(".", 1)[-1], node, in_secrets=first == "secrets")
            raise ConfigError(
                f"Config value {path} = {shown} is a {builtins_type(node).__name__}, not a {type.__name__} "
                f"({self.where(path)}); fix it in the file or the environment variable {env_name(path)}"
            )
        return node

    def section(self, name: str) -> dict[str, Any]:
        """A top-level table (``{}`` when absent)."""
        if name not in self._raw:
            return {}
        value = self._section(name)
        if not isinstance(value, dict):
            raise ConfigError(f"Config entry {name!r} must be a table, got {value!r} ({self.where(name)})")
        return value

    def plugin_section(self, name: str) -> dict[str, Any]:
        """The plugin's own table, ``[plugins.<name>]`` (``{}`` when absent)."""
        plugins = self.section("plugins")
        key = _match_key(plugins, name)
        value = plugins.get(key, {}) if key is not None else {}
        if not isinstance(value, dict):
            raise ConfigError(
                f"Config entry plugins.{name} must be a table ([plugins.{name}]), got {value!r} "
                f"({self.where('plugins.' + name)})"
            )
        return value

    def values(self, path: str) -> dict[str, Any]:
        """Section ``path`` checked against its declaration, with defaults filled in.

        Raises:
            ConfigError: a problem with the section (every problem, one per line), or no
                declaration for ``path``.
        """
        from plait import settings as declared

        spec = declared.declared(path)
        if spec is None:
            raise ConfigError(f"No plugin or part of Plait declares the config section [{path}]")
        checked = self.check_section(spec)
        errors = [p for p in checked.problems if p.severity == "error"]
        if errors:
            raise ConfigError("; ".join(p.message for p in errors))
        return checked.values

    def check_section(self, spec: Any) -> Any:
        """``spec.validate(...)`` on the section as read (``plait.settings.Checked``)."""
        raw = self.raw_at(spec.path)
        if raw is _MISSING:
            raw = {}
        if not isinstance(raw, dict):
            from plait.settings import Checked, Problem

            message = f"[{spec.path}] must be a table, not {builtins_type(raw).__name__} ({self.where(spec.path)})"
            return Checked({}, [Problem(spec.path, message)])
        return spec.validate(raw, where=self._where_suffix)

    def raw_at(self, path: str) -> Any:
        """The value at dotted ``path`` as read (hyphen/underscore and case tolerant for tables)."""
        node: Any = self._raw
        for part in path.split("."):
            if not isinstance(node, dict):
                return _MISSING
            key = _match_key(node, part)
            if key is None:
                return _MISSING
            node = node[key]
        return node

    def where(self, path: str) -> str:
        """Where the value at ``path`` came from: ``environment variable X``, ``file``, ``not set``."""
        from plait.settings import EnvValue

        value = self.raw_at(path)
        if isinstance(value, EnvValue):
            return f"from environment variable {value.var}"
        if value is _MISSING:
            env = env_name(path)
            if env in os.environ:
                return f"from environment variable {env}"
            return "not set"
        return f"from {self.source}" if self.source else "given in code"

    def _where_suffix(self, path: str) -> str:
        where = self.where(path)
        return f" ({where})" if where != "not set" else ""

    # -- typed sections ---------------------------------------------------------------------------

    def _section(self, name: str) -> Any:
        from plait import settings as declared

        cached = self._typed.get(name)
        if cached is not None and cached[0] == declared.generation:
            return cached[1]
        with self._lock:
            value = _typed(self._raw[name], name, declared.declared(name), self)
            self._typed[name] = (declared.generation, value)
        return value


def _typed(value: Any, path: str, spec: Any, config: Config) -> Any:
    """``value`` with its environment strings read as their declared types (guessed when undeclared)."""
    from plait import settings as declared

    if isinstance(value, declared.EnvValue) and spec is None:
        return parse_scalar(str(value))
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            sub_path = f"{path}.{key}"
            child = _child_spec(spec, key, sub_path)
            if isinstance(item, declared.EnvValue) and isinstance(child, declared.Setting):
                out[key] = _env_as(child, item, sub_path)
            elif isinstance(child, declared.Setting):
                out[key] = _typed(item, sub_path, child.type, config)
            else:
                out[key] = _typed(item, sub_path, child, config)
        return out
    if isinstance(value, declared.EnvValue):
        if spec is str:
            return str(value)
        return parse_scalar(str(value))
    return value


def _child_spec(spec: Any, key: str, path: str) -> Any:
    from plait import settings as declared

    if spec is None:
        return declared.declared(path)
    if isinstance(spec, declared.Settings):
        found = spec.settings.get(key)
        if found is None and spec.extra_keys is not False:
            found = declared.Setting(key, Any if spec.extra_keys is True else spec.extra_keys)
        return found
    if isinstance(spec, declared.TableOf):
        return spec.settings
    import typing

    if typing.get_origin(spec) is dict:
        args = typing.get_args(spec)
        item = args[1] if len(args) == 2 else Any
        return declared.Setting(key, item)
    return None


def _env_as(setting: Any, value: Any, path: str) -> Any:
    from plait import settings as declared

    try:
        return declared._convert(setting.type, value, path, setting)
    except declared._Wrong as wrong:
        shown = declared.show_value(setting, setting.name, str(value))
        raise ConfigError(f"Environment variable {value.var} = {shown} sets {path}, which {wrong.reason}") from None
    except declared._Bad as bad:
        raise ConfigError(
            f"Environment variable {value.var} sets {path}: " + "; ".join(p.message for p in bad.problems)
        ) from None


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The configuration file's path: ``$PLAIT_CONFIG`` or ``~/.plait/config.toml``."""
    env = os.environ if environ is None else environ
    given = env.get("PLAIT_CONFIG")
    return Path(given).expanduser() if given else Path.home() / ".plait" / "config.toml"


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the file at ``path`` (default ``config_path()``) and apply ``PLAIT__*`` variables.

    Raises:
        ConfigError: the file is not valid TOML (the message has the path, line and column,
            the line itself and a caret), or ``$PLAIT_CONFIG`` names a file that does not
            exist, or a variable's name is not a setting name or conflicts with a value that
            is not a table.
    """
    env = os.environ if environ is None else environ
    explicit = path is not None or bool(env.get("PLAIT_CONFIG"))
    file = Path(path) if path is not None else config_path(env)
    data: dict[str, Any] = {}
    source: Path | None = None
    if file.exists() and not file.is_dir():  # a file, or a device like /dev/null (empty)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"Config file {file} cannot be read: {exc}") from None
        import tomllib  # only when there is a file to read: a process without one never imports it

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(_toml_error(file, text, exc)) from None
        source = file
    elif explicit:
        what = "is a directory, not a file" if file.is_dir() else "does not exist"
        named = "PLAIT_CONFIG" if path is None else "path"
        raise ConfigError(f"Config file {file} {what} (named by {named}); create it or unset PLAIT_CONFIG")
    for name in sorted(env):
        if name.startswith(ENV_PREFIX):
            _apply_env(data, name, env[name])
    return Config(data, source)


def env_name(path: str) -> str:
    """The environment variable that overrides dotted ``path``: ``plugins.my-alerts.log_file`` ->
    ``PLAIT__PLUGINS__MY_ALERTS__LOG_FILE``."""
    parts = path.split(".")
    keep_case = parts[0] == "secrets"
    return ENV_PREFIX + "__".join(
        p if keep_case and i > 0 else p.upper().replace("-", "_") for i, p in enumerate(parts)
    )


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
    from plait.settings import EnvValue

    parts = name[len(ENV_PREFIX) :].split("__")
    if not all(parts) or not all(_KEY.match(p) for p in parts):
        raise ConfigError(
            f"Environment variable {name} is not a valid Plait setting name: use PLAIT__SECTION__KEY "
            "(double underscores between parts, none empty)"
        )
    # Setting names are lowercase; the keys of [secrets] keep their case (Secret("PIN")).
    keys = [p.lower() for p in parts]
    if keys[0] == "secrets":
        keys[1:] = parts[1:]
    node = data
    for depth, key in enumerate(keys[:-1]):
        existing = _match_key(node, key)
        child = node.setdefault(existing if existing is not None else key, {})
        if not isinstance(child, dict):
            raise ConfigError(
                f"Environment variable {name} sets a key under {'.'.join(keys[: depth + 1])}, "
                f"which the config file sets to the value {child!r}, not a table"
            )
        node = child
    last = _match_key(node, keys[-1]) if keys[0] != "secrets" else None
    node[last if last is not None else keys[-1]] = EnvValue(raw, name)


def _match_key(table: Mapping[str, Any], key: str) -> str | None:
    """The key of ``table`` that ``key`` names: itself, or the same ignoring case and ``-``/``_``."""
    if key in table:
        return key
    wanted = _normal(key)
    for candidate in table:
        if _normal(candidate) == wanted:
            return candidate
    return None


def _normal(key: str) -> str:
    return key.lower().replace("-", "_")


def _toml_error(file: Path, text: str, exc: tomllib.TOMLDecodeError) -> str:
    line = getattr(exc, "lineno", None)
    column = getattr(exc, "colno", None)
    reason = getattr(exc, "msg", None) or str(exc)
    if line is None:
        match = re.search(r"at line (\d+), column (\d+)", str(exc))
        if match:
            line, column = int(match.group(1)), int(match.group(2))
        reason = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", reason)
    if not line:
        return f"Config file {file} is not valid TOML: {reason}"
    lines = text.splitlines()
    shown = lines[line - 1] if 0 < line <= len(lines) else ""
    caret = " " * (max(column or 1, 1) - 1) + "^"
    return f"Config file {file}, line {line}, column {column}: not valid TOML: {reason}\n    {shown}\n    {caret}"


def parse_scalar(raw: str) -> Any:
    """``raw`` read as a TOML value if it is one, else the string itself (for undeclared keys)."""
    import tomllib

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
