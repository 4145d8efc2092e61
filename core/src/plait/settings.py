"""Declared settings: each config section says, in one place, which keys it takes.

A plugin declares its section once, with the ``plait_register_settings`` hook; the core declares
its own (``[logging]``, ``[secrets]``) the same way. From the declaration Plait knows, for every
key, its type, its default and whether it is a secret, and so:

- a key the section does not declare is reported, with the closest declared name
  (``webhook_url_secrett`` -> "did you mean webhook_url_secret?"); so is a section nobody
  declares (``[plugin.slack]`` -> "did you mean [plugins]?");
- a bad value is an error naming the key and where it came from, never echoing a secret;
- an environment override (``PLAIT__PLUGINS__SLACK__TIMEOUT=5``) is read as the declared type
  (``5.0``), not guessed; a string setting stays a string (``2026-01-31``);
- ``plait plugins`` shows each plugin as *configured*, *not configured* (and what is missing)
  or *misconfigured* (and why), ``plait config`` prints every value with its source, and
  ``plait config --check`` fails on any problem;
- a plugin that is not configured, or misconfigured, has its observer hooks switched off: it
  costs a flow run nothing.

```python
from plait.settings import AnyOf, Setting, Settings

SETTINGS = Settings(
    "plugins.pager",
    Setting("url_secret", str, help="name of the plait secret that holds the pager's URL"),
    Setting("url", str, secret=True, help="the URL itself (prefer url_secret)"),
    Setting("timeout", float, 10.0, help="seconds per request", check=positive),
    Setting("states", list[str], ["Failed"], help="states that page"),
    requires=AnyOf("url_secret", "url"),
)

@plait.hookimpl
def plait_register_settings():
    return SETTINGS
```

Types: ``str``, ``int``, ``float``, ``bool``, ``list[T]`` and ``dict[str, T]`` of those (a table
of free-form keys), ``Any``, a nested ``Settings`` (a sub-table with its own keys, e.g.
``[plugins.http.webhook]``) or ``TableOf(Settings(...))`` (a table of named sub-tables, e.g.
``[plugins.sql.connections.warehouse]``).
"""

from __future__ import annotations

import math
import threading
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AnyOf",
    "PluginStatus",
    "Problem",
    "Setting",
    "Settings",
    "TableOf",
    "check_config",
    "core_settings",
    "declare",
    "declared",
    "is_secret_key",
    "plugin_status",
    "show_value",
]

#: The mask ``plait config`` and error messages show in place of a secret's value.
MASK = "********"

_NO_DEFAULT: Any = object()


class Setting:
    """One key of a section.

    Args:
        name: the key (lowercase, ``snake_case``).
        type: ``str``, ``int``, ``float``, ``bool``, ``list[...]``, ``dict[str, ...]``, ``Any``,
            a nested ``Settings`` or a ``TableOf(...)``.
        default: the value when the key is not set (shown by ``plait config``); none by default.
        secret: the value is a secret (a token, a URL with a key in it): masked everywhere.
            Keys named ``*_secret`` name a ``plait.secrets.Secret`` and need no flag.
        help: one line saying what the key does (``plait config`` shows it).
        choices: the only values allowed (compared case-insensitively for strings).
        check: ``check(value) -> str | None``: a reason the value is wrong, or ``None``.
        allow_nan: for ``float``: accept ``nan`` and ``inf`` (refused by default).
    """

    __slots__ = ("allow_nan", "check", "choices", "default", "help", "name", "secret", "type")

    def __init__(
        self,
        name: str,
        type: Any = str,
        default: Any = _NO_DEFAULT,
        *,
        secret: bool = False,
        help: str = "",
        choices: Iterable[Any] | None = None,
        check: Callable[[Any], str | None] | None = None,
        allow_nan: bool = False,
    ) -> None:
        self.name = name
        self.type = type
        self.default = default
        self.secret = secret
        self.help = help
        self.choices = tuple(choices) if choices is not None else None
        self.check = check
        self.allow_nan = allow_nan

    @property
    def has_default(self) -> bool:
        return self.default is not _NO_DEFAULT

    def __repr__(self) -> str:
        return f"Setting({self.name!r}, {_type_name(self.type)})"


class AnyOf:
    """A requirement: at least one of these keys is set (``AnyOf("url", "url_secret")``)."""

    def __init__(self, *names: str) -> None:
        self.names = names

    def missing(self, values: Mapping[str, Any]) -> str | None:
        if any(values.get(n) not in (None, "", [], {}) for n in self.names):
            return None
        if len(self.names) == 1:
            return f"{self.names[0]} is not set"
        return f"none of {', '.join(self.names)} is set"


class Settings:
    """The declaration of one config section.

    Args:
        path: the section, dotted: ``"plugins.slack"``, ``"server"``. For a nested table
            (``Setting("webhook", Settings("webhook", ...))``) just its own key.
        *settings: its keys.
        requires: what must be set for the section to count as configured: an ``AnyOf``, or a
            function ``requires(values) -> str | None`` returning what is missing. Without it a
            section is configured as soon as its values are valid (an absent one uses defaults).
        check: ``check(values) -> str | None``: a rule across keys (``"a and b go together"``).
        observe_when: ``observe_when(status) -> bool``, asked once per flow run: whether the
            plugin's observer hooks run. Default: only when the plugin is configured.
        extra_keys: accept keys it does not declare (for free-form sections); a type here
            (``extra_keys=str``) is the type each of them must have.
    """

    def __init__(
        self,
        path: str,
        *settings: Setting,
        requires: AnyOf | Callable[[Mapping[str, Any]], str | None] | None = None,
        check: Callable[[Mapping[str, Any]], str | None] | None = None,
        observe_when: Callable[[PluginStatus], bool] | None = None,
        extra_keys: Any = False,
        help: str = "",
    ) -> None:
        self.path = path
        self.settings = {s.name: s for s in settings}
        self.requires = requires
        self.check = check
        self.observe_when = observe_when
        self.extra_keys = extra_keys
        self.help = help

    def __repr__(self) -> str:
        return f"Settings({self.path!r}, {', '.join(self.settings)})"

    # -- validation ----------------------------------------------------------------------------

    def validate(self, values: Mapping[str, Any], where: Callable[[str], str] | None = None) -> Checked:
        """Check ``values`` (the section as read, env overrides already typed); never raises.

        Returns a ``Checked`` with the values (defaults filled in), the problems found and what
        is missing for the section to be configured.
        """
        where = where or (lambda _path: "")
        problems: list[Problem] = []
        out = self._check_table(self.path, values, where, problems)
        missing = None
        if not any(p.severity == "error" for p in problems):
            if self.check is not None:
                reason = self.check(out)
                if reason:
                    problems.append(Problem(self.path, f"[{self.path}] {reason}"))
            if self.requires is not None:
                missing = self.requires.missing(out) if isinstance(self.requires, AnyOf) else self.requires(out)
        return Checked(out, problems, missing)

    def defaults(self) -> dict[str, Any]:
        """``{key: default}`` for every key that has one."""
        return {n: s.default for n, s in self.settings.items() if s.has_default}

    def _check_table(
        self, path: str, values: Mapping[str, Any], where: Callable[[str], str], problems: list[Problem]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in values.items():
            key_path = f"{path}.{key}"
            setting = self.settings.get(key)
            if setting is None and self.extra_keys is not False:
                setting = Setting(key, Any if self.extra_keys is True else self.extra_keys)
            if setting is None:
                problems.append(Problem(key_path, _unknown_key(path, key, list(self.settings)) + where(key_path)))
                continue
            try:
                out[key] = convert(setting, value, key_path, where)
            except _Bad as bad:
                problems.extend(bad.problems)
        for name, setting in self.settings.items():
            if name not in out and setting.has_default:
                out[name] = _copy(setting.default)
        return out


class TableOf:
    """A table of named sub-tables, each declared by ``settings``:
    ``Setting("connections", TableOf(Settings("connection", Setting("url", str), ...)))``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __repr__(self) -> str:
        return f"TableOf({self.settings.path!r})"


@dataclass
class Problem:
    """One thing wrong with the configuration: ``path`` (dotted), the ``message`` (it names the
    key and the fix, never a secret's value) and ``severity`` (``"error"`` or ``"warning"``)."""

    path: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return self.message


@dataclass
class Checked:
    """The result of ``Settings.validate``."""

    values: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)
    missing: str | None = None


@dataclass
class PluginStatus:
    """A plugin's configuration state, for ``plait plugins`` and the observer switch.

    ``state`` is ``"configured"``, ``"not configured"`` (``detail`` says what is missing) or
    ``"misconfigured"`` (``detail`` says why); ``present`` says whether its section is in the
    configuration at all.
    """

    state: str
    detail: str = ""
    present: bool = False
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def configured(self) -> bool:
        return self.state == "configured"

    def __str__(self) -> str:
        return f"{self.state} ({self.detail})" if self.detail else self.state


# --- the registry -----------------------------------------------------------------------------

_registry: dict[str, Settings] = {}
_owners: dict[str, str] = {}
_registry_lock = threading.Lock()
#: Bumped on every declaration; ``Config`` caches typed sections per generation.
generation = 0


def declare(settings: Settings, owner: str = "plait") -> None:
    """Make ``settings`` the declaration of its section (the plugin manager does this for every
    plugin's ``plait_register_settings``)."""
    global generation
    with _registry_lock:
        if _registry.get(settings.path) is settings:
            return
        _registry[settings.path] = settings
        _owners[settings.path] = owner
        generation += 1


def declared(path: str | None = None) -> Any:
    """The declaration of section ``path`` (or ``None``); without ``path``, all of them."""
    if path is None:
        return dict(_registry)
    return _registry.get(path)


def owner(path: str) -> str | None:
    """Who declared section ``path`` (a plugin's name, or ``"plait"``)."""
    return _owners.get(path)


def core_settings() -> list[Settings]:
    """The core's own sections: ``[logging]``, ``[secrets]``, the client's part of ``[server]``,
    ``[agent]`` (``plait agent start``) and ``[execution]`` (``plait execute flow-run``)."""
    return [LOGGING, SECRETS, SERVER_CLIENT, AGENT, EXECUTION]


LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

LOGGING = Settings(
    "logging",
    Setting("level", str, "INFO", choices=LEVELS, help="the plait logger's level"),
    Setting("format", str, "text", choices=("text", "json"), help="text lines, or one JSON object per line"),
    help="Plait's own log output",
)

SECRETS = Settings(
    "secrets",
    help="values for plait.secrets.Secret(NAME), by name (the environment variable NAME wins)",
    extra_keys=str,
)

#: What the core's client (``plait.client``, ``plait register``) reads from ``[server]``. The
#: server's own keys (database, host, port...) belong to plait-server, which declares the whole
#: section when it is installed (its declaration then replaces this one).
SERVER_CLIENT = Settings(
    "server",
    Setting("url", str, help="where clients (plait register, agents) find the server"),
    Setting("api_key", str, secret=True, help="the clients' API key"),
    help="the Plait server, as its clients see it",
    extra_keys=True,
)


def _seconds(value: float) -> str | None:
    return None if 0.01 <= value <= 3600 else "must be a number of seconds from 0.01 to 3600"


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be more than 0"


#: ``plait agent start``'s defaults (its options win); see ``plait.agents.AgentSettings``.
AGENT = Settings(
    "agent",
    Setting("name", str, help="the agent's name (default: <type>-agent@<host>)"),
    Setting("labels", list[str], [], help="it runs flow runs whose labels are all among these"),
    Setting(
        "max_runs",
        int,
        10,
        help="flow runs at once",
        check=lambda v: None if 1 <= v <= 10_000 else "must be 1 to 10000",
    ),
    Setting("poll_interval", float, 2.0, help="seconds between polls", check=_seconds),
    Setting("cancel_grace", float, 30.0, help="seconds a cancelled run may take before it is killed", check=_seconds),
    help="plait agent start: an agent that starts the server's due flow runs",
)

#: ``plait execute flow-run``: how a run reports; see ``plait.execution.ExecutionSettings``.
EXECUTION = Settings(
    "execution",
    Setting("report_interval", float, 0.5, help="seconds between batches of reports", check=_positive),
    Setting("queue_size", int, 100_000, help="reports kept in memory; more go to a spool file", check=_positive),
    Setting("spool_dir", str, "~/.plait/spool", help="where spool files live while the server is away"),
    Setting(
        "delivery_timeout", float, 600.0, help="seconds to wait for an unreachable server at the end", check=_positive
    ),
    Setting("slot_poll", float, 1.0, help="seconds between asks for a task concurrency slot", check=_positive),
    help="plait execute flow-run: a flow run of the Plait server executing here",
)

for _core in core_settings():
    declare(_core)


# --- the whole configuration -------------------------------------------------------------------


def plugin_status(config: Any, spec: Settings) -> PluginStatus:
    """Whether the section ``spec`` declares is configured, not configured or misconfigured."""
    present = config.raw_at(spec.path) is not _absent()
    checked = config.check_section(spec)
    errors = [p for p in checked.problems if p.severity == "error"]
    if errors:
        return PluginStatus("misconfigured", "; ".join(p.message for p in errors), present, checked.values)
    if checked.missing:
        hint = f"[{spec.path}]: {checked.missing}" if present else f"no [{spec.path}] section ({checked.missing})"
        return PluginStatus("not configured", hint, present, checked.values)
    return PluginStatus("configured", "" if present else "defaults", present, checked.values)


def check_config(config: Any, installed: Iterable[str] = ()) -> list[Problem]:
    """Every problem of ``config``: unknown sections and keys (with a did-you-mean), bad values,
    declared sections that are present but not configured; ``installed`` are the names of the
    installed plugins (loaded or not), for ``[plugins.NAME]`` sections nobody declares."""
    from plait.errors import ConfigError

    problems: list[Problem] = []
    sections = {path.split(".", 1)[0] for path in _registry} | {"plugins"}
    for key, value in config.raw.items():
        if key in sections:
            continue
        if not isinstance(value, Mapping):
            problems.append(
                Problem(key, f"{key} = ... is outside any section: put it under the [section] it belongs to")
            )
            continue
        close = did_you_mean(key, sections)
        hint = f"; did you mean [{close}]?" if close else f" (known sections: {', '.join(sorted(sections))})"
        problems.append(Problem(key, f"[{key}] is not a Plait config section{hint}"))
    plugins = config.raw.get("plugins", {})
    if not isinstance(plugins, Mapping):
        problems.append(Problem("plugins", "plugins must be a table of [plugins.NAME] sections"))
        plugins = {}
    declared_plugins = {path.split(".")[1] for path in _registry if path.startswith("plugins.")}
    known = {_normal(n): n for n in [*installed, *declared_plugins]}
    for name in plugins:
        if _normal(name) in known:
            continue
        close = did_you_mean(_normal(name), list(known))
        if close:
            problems.append(
                Problem(
                    f"plugins.{name}",
                    f"[plugins.{name}]: no plugin {name!r} is installed; did you mean [plugins.{known[close]}]?",
                )
            )
        else:
            installed_list = ", ".join(sorted(known.values())) or "none"
            problems.append(
                Problem(
                    f"plugins.{name}",
                    f"[plugins.{name}]: no plugin {name!r} is installed (installed: {installed_list}); "
                    "the section is unused",
                    "warning",
                )
            )
    for path, spec in sorted(_registry.items()):
        if config.raw_at(path) is _absent():
            continue
        try:
            checked = config.check_section(spec)
        except ConfigError as exc:
            problems.append(Problem(path, str(exc)))
            continue
        problems.extend(checked.problems)
        if checked.missing and not any(p.severity == "error" for p in checked.problems):
            problems.append(
                Problem(path, f"[{path}] is there but the plugin is not configured: {checked.missing}", "warning")
            )
    return problems


def _absent() -> Any:
    from plait.config import _MISSING

    return _MISSING


def _normal(name: str) -> str:
    return name.lower().replace("-", "_")


# --- values -------------------------------------------------------------------------------------


class _Bad(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems


class EnvValue(str):
    """A value from an environment variable, still a string: typed by its declaration when read.

    ``var`` is the variable's name, for messages and ``plait config``.
    """

    var: str

    def __new__(cls, raw: str, var: str) -> EnvValue:
        value = super().__new__(cls, raw)
        value.var = var
        return value


def convert(setting: Setting, value: Any, path: str, where: Callable[[str], str] | None = None) -> Any:
    """``value`` checked against ``setting`` (an ``EnvValue`` is parsed as the declared type).

    Raises ``_Bad`` with the problems (each naming ``path``, never a secret's value).
    """
    where = where or (lambda _p: "")
    kind = setting.type
    try:
        result = _convert(kind, value, path, setting)
    except _Wrong as wrong:
        raise _Bad(
            [Problem(wrong.path, _bad_value(setting, wrong.path, value, wrong.reason) + where(wrong.path))]
        ) from None
    except _Bad as bad:
        for p in bad.problems:
            p.message += where(p.path)
        raise
    if setting.choices is not None and result is not None:
        matched = _choice(setting.choices, result)
        if matched is None:
            reason = f"is not one of {', '.join(map(str, setting.choices))}"
            raise _Bad([Problem(path, _bad_value(setting, path, value, reason) + where(path))])
        result = matched
    if setting.check is not None and result is not None:
        reason = setting.check(result)
        if reason:
            raise _Bad([Problem(path, _bad_value(setting, path, value, reason) + where(path))])
    return result


class _Wrong(Exception):
    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason


def _convert(kind: Any, value: Any, path: str, setting: Setting) -> Any:
    if isinstance(value, EnvValue):
        value = _parse_env(kind, str(value), path, setting)
    if kind is Any or kind is object:
        return value
    if isinstance(kind, Settings):
        if not isinstance(value, Mapping):
            raise _Wrong(path, f"must be a table ([{path}]), not {_kind_of(value)}")
        problems: list[Problem] = []
        out = kind._check_table(path, value, lambda _p: "", problems)
        if problems:
            raise _Bad(problems)
        return out
    if isinstance(kind, TableOf):
        if not isinstance(value, Mapping):
            raise _Wrong(path, f"must be a table of tables ([{path}.NAME]), not {_kind_of(value)}")
        out_tables: dict[str, Any] = {}
        problems = []
        for name, sub in value.items():
            sub_path = f"{path}.{name}"
            if not isinstance(sub, Mapping):
                problems.append(Problem(sub_path, f"[{sub_path}] must be a table, not {_kind_of(sub)}"))
                continue
            checked = kind.settings.validate(sub)
            for p in checked.problems:
                p.path = sub_path + p.path[len(kind.settings.path) :]
                p.message = p.message.replace(f"[{kind.settings.path}]", f"[{sub_path}]").replace(
                    f"{kind.settings.path}.", f"{sub_path}."
                )
            problems.extend(checked.problems)
            out_tables[name] = checked.values
        if problems:
            raise _Bad(problems)
        return out_tables
    origin = typing.get_origin(kind)
    if origin is list:
        (item,) = typing.get_args(kind) or (Any,)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise _Wrong(path, f"must be a list, not {_kind_of(value)}")
        return [_convert(item, v, f"{path}[{i}]", setting) for i, v in enumerate(value)]
    if origin is dict:
        _key, item = typing.get_args(kind) or (str, Any)
        if not isinstance(value, Mapping):
            raise _Wrong(path, f"must be a table, not {_kind_of(value)}")
        return {str(k): _convert(item, v, f"{path}.{k}", setting) for k, v in value.items()}
    if origin is typing.Union or origin is getattr(__import__("types"), "UnionType", None):
        errors = []
        for option in typing.get_args(kind):
            try:
                return _convert(option, value, path, setting)
            except _Wrong as wrong:
                errors.append(wrong.reason)
        raise _Wrong(path, f"must be {' or '.join(_type_name(o) for o in typing.get_args(kind))}")
    if kind is bool:
        if not isinstance(value, bool):
            raise _Wrong(path, f"must be true or false, not {_kind_of(value)}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Wrong(path, f"must be a whole number, not {_kind_of(value)}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Wrong(path, f"must be a number, not {_kind_of(value)}")
        if not setting.allow_nan and not math.isfinite(value):
            raise _Wrong(path, "must be a finite number (nan and inf are not allowed here)")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise _Wrong(path, f"must be a string, not {_kind_of(value)}")
        return str(value)
    if isinstance(kind, type):
        if not isinstance(value, kind):
            raise _Wrong(path, f"must be a {kind.__name__}, not {_kind_of(value)}")
        return value
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse_env(kind: Any, raw: str, path: str, setting: Setting) -> Any:
    """An environment variable's text as the declared type: typed, never guessed."""
    text = raw.strip()
    if kind is str:
        return raw
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise _Wrong(path, "must be true or false (1/0, yes/no, on/off also work)")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise _Wrong(path, "must be a whole number") from None
    if kind is float:
        try:
            number = float(text)
        except ValueError:
            raise _Wrong(path, "must be a number") from None
        return number
    origin = typing.get_origin(kind)
    if origin is list:
        if text.startswith("["):
            return _parse_toml(text, path, 'a list like [1, 2] or ["a", "b"]')
        (item,) = typing.get_args(kind) or (Any,)
        parts = [p.strip() for p in text.split(",")] if text else []
        return [EnvValue(p, "") if item is not Any else p for p in parts]
    if origin is dict or isinstance(kind, Settings | TableOf):
        return _parse_toml(text, path, 'an inline table like { key = "value" }')
    if kind is Any or kind is object:
        from plait.config import parse_scalar

        return parse_scalar(raw)
    return raw


def _parse_toml(text: str, path: str, example: str) -> Any:
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        raise _Wrong(path, f"must be {example} (TOML)") from None


def _choice(choices: tuple[Any, ...], value: Any) -> Any:
    for choice in choices:
        if choice == value or (isinstance(choice, str) and isinstance(value, str) and choice.lower() == value.lower()):
            return choice
    return None


# --- messages -----------------------------------------------------------------------------------


def is_secret_key(name: str) -> bool:
    """Whether a key's value must never be shown: ``*_secret`` keys (the name of a secret, often
    pasted with the secret itself) and keys of secret-looking names (``token``, ``password``).

    The one rule of ``plait.secrets.is_secret_setting`` (the same that plugins' errors and
    ``flow.serialize()`` follow)."""
    from plait.secrets import is_secret_setting

    return is_secret_setting(name)


def show_value(setting: Setting | None, key: str, value: Any, in_secrets: bool = False) -> str:
    """How ``plait config`` and error messages show a value: masked when it is a secret."""
    if in_secrets or (setting is not None and setting.secret):
        return MASK
    if is_secret_key(key):
        # a *_secret key names a secret: show the name when it looks like one, never a pasted value
        if key.lower().endswith("_secret") and isinstance(value, str) and _looks_like_a_name(value):
            return repr(value)
        return MASK
    return repr(value)


def _looks_like_a_name(value: str) -> bool:
    # letters, digits and _ only: "xoxb-1234-..." or "wJalr.../K7MDENG" are secrets, not names
    from plait.secrets import looks_like_secret_name

    return looks_like_secret_name(value)


def _bad_value(setting: Setting, path: str, value: Any, reason: str) -> str:
    key = path.rsplit(".", 1)[-1].split("[", 1)[0]
    shown = show_value(setting, key, value)
    if isinstance(value, EnvValue) and shown != MASK:
        shown = repr(str(value))
    return f"{path} = {shown} {reason}"


def _unknown_key(section: str, key: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listing = f" (its keys: {', '.join(sorted(known))})" if known else ""
    return f"[{section}] has no setting {key!r}{hint}{listing}"


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The closest of ``candidates`` to ``word``, if one is close enough."""
    import difflib

    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


def _kind_of(value: Any) -> str:
    if isinstance(value, EnvValue):
        return "text"
    return {
        bool: "true/false",
        int: "a whole number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _type_name(kind: Any) -> str:
    if isinstance(kind, Settings):
        return "table"
    if isinstance(kind, TableOf):
        return "table of tables"
    if isinstance(kind, type):
        return kind.__name__
    return str(kind).replace("typing.", "")


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value
