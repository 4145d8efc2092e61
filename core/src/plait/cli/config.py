"""``plait config``: the merged configuration, each value with where it came from; ``--check``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

__all__ = ["config", "print_problems", "stop_on_config_errors"]


@click.command()
@click.option("--check", is_flag=True, help="Only check: list every problem; exit 1 if there is any.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML with comments.")
def config(check: bool, as_json: bool) -> None:
    """Show Plait's configuration: the file, PLAIT__* variables and defaults, merged.

    Each value says where it comes from (the file, an environment variable, a default);
    secrets are masked. Sections of installed plugins say whether the plugin is configured.
    With --check, list the problems (unknown sections and keys with the closest known name,
    bad values, plugin sections that configure nothing) and exit 1 when there is any.

    \b
    Examples:
      plait config
      PLAIT__LOGGING__LEVEL=DEBUG plait config
      plait config --check
    """
    from plait.config import config_path, get_config
    from plait.hooks.manager import get_hooks

    hooks = get_hooks()
    cfg = get_config()
    problems = hooks.config_problems()
    statuses = hooks.statuses()
    where = str(cfg.source) if cfg.source else f"none ({config_path()} does not exist)"
    if check:
        if as_json:
            click.echo(json.dumps({"file": where, "problems": [_problem(p) for p in problems]}, indent=2))
        elif problems:
            print_problems(problems, stream=sys.stdout)
        else:
            click.echo(f"No problems in the configuration (file: {where}).")
        sys.exit(1 if problems else 0)
    sections = _sections(cfg, hooks, statuses)
    if as_json:
        out = {
            "file": str(cfg.source) if cfg.source else None,
            "sections": {
                path: {key: {"value": value, "source": source} for key, value, _shown, source in rows}
                for path, _note, rows in sections
            },
            "problems": [_problem(p) for p in problems],
        }
        click.echo(json.dumps(out, indent=2, default=str))
        return
    click.echo(f"# Configuration file: {where}")
    for path, note, rows in sections:
        click.echo("")
        click.echo(f"[{path}]" + (f"  # {note}" if note else ""))
        width = max((len(f"{key} = {shown}") for key, _v, shown, _s in rows), default=0)
        for key, _value, shown, source in rows:
            line = f"{key} = {shown}"
            click.echo(f"{line:<{width}}  # {source}")
    if problems:
        click.echo("")
        print_problems(problems, stream=sys.stdout, prefix="# ")


def print_problems(problems: list[Any], stream: Any = None, prefix: str = "") -> None:
    """Print each problem on its own line: ``error: ...`` / ``warning: ...``."""
    stream = stream or sys.stderr
    for problem in problems:
        stream.write(f"{prefix}{problem.severity}: {problem.message}\n")


def stop_on_config_errors() -> None:
    """For commands that run flows: print the configuration's problems; exit 2 if one is an error.

    Warnings (a section for a plugin that is not installed, a plugin section that configures
    nothing) are printed and the command goes on.
    """
    from plait.hooks.manager import get_hooks

    problems = get_hooks().config_problems()
    if not problems:
        return
    print_problems(problems)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        sys.stderr.write(
            f"Error: the configuration has {len(errors)} error(s); fix them (plait config --check lists them).\n"
        )
        sys.exit(2)


# --- rendering -------------------------------------------------------------------------------------


def _sections(cfg: Any, hooks: Any, statuses: dict[str, Any]) -> list[tuple[str, str, list[tuple[str, Any, str, str]]]]:
    from plait import settings as declared

    owners = {record.settings[0].path: name for name, record in hooks.pm.records.items() if record.settings}
    out = []
    paths = ["logging"]
    paths += [k for k in cfg.raw if k not in ("plugins", "logging")]
    plugins = cfg.raw.get("plugins") if isinstance(cfg.raw.get("plugins"), dict) else {}
    paths += [f"plugins.{name}" for name in plugins]
    for path in paths:
        spec = declared.declared(path) or declared.declared(_declared_path(path))
        raw = cfg.raw_at(path)
        note = ""
        plugin = owners.get(spec.path) if spec is not None else None
        if plugin is not None and plugin in statuses:
            note = f"plugin {plugin}: {statuses[plugin]}"
        elif spec is None:
            installed = path.startswith("plugins.") and _installed(hooks, path.split(".", 1)[1])
            note = (
                f"plugin {installed} declares no settings: its keys are not checked"
                if installed
                else "not declared by Plait or an installed plugin"
            )
        out.extend(_rows(path, raw if isinstance(raw, dict) else {}, spec, note, in_secrets=path == "secrets"))
    return out


def _installed(hooks: Any, name: str) -> str | None:
    from plait.config import _normal

    return next((n for n in hooks.pm.records if _normal(n) == _normal(name)), None)


def _declared_path(path: str) -> str:
    from plait.config import _normal
    from plait.settings import declared

    for candidate in declared():
        if _normal(candidate) == _normal(path):
            return candidate
    return path


def _rows(
    path: str, raw: dict[str, Any], spec: Any, note: str, in_secrets: bool
) -> list[tuple[str, str, list[tuple[str, Any, str, str]]]]:
    from plait import settings as declared

    rows: list[tuple[str, Any, str, str]] = []
    nested: list[tuple[str, str, list[tuple[str, Any, str, str]]]] = []
    settings = spec.settings if isinstance(spec, declared.Settings) else {}
    for key, value in raw.items():
        setting = settings.get(key)
        kind = setting.type if setting is not None else None
        if isinstance(value, dict) and (kind is None or isinstance(kind, declared.Settings | declared.TableOf)):
            if isinstance(kind, declared.TableOf):
                for name, sub in value.items():
                    nested.extend(
                        _rows(
                            f"{path}.{key}.{name}", sub if isinstance(sub, dict) else {}, kind.settings, "", in_secrets
                        )
                    )
            else:
                nested.extend(_rows(f"{path}.{key}", value, kind, "", in_secrets))
            continue
        shown_value = value
        if setting is not None:
            try:  # the value as the plugin sees it: typed, normalised ("debug" -> "DEBUG")
                shown_value = declared.convert(setting, value, f"{path}.{key}")
            except Exception:
                shown_value = value
        elif in_secrets:
            shown_value = value
        rows.append((key, _plain(shown_value), _shown(setting, key, shown_value, in_secrets), _source(value)))
    for key, setting in settings.items():
        if (
            key not in raw
            and setting.has_default
            and not isinstance(setting.type, declared.Settings | declared.TableOf)
        ):
            rows.append((key, setting.default, _shown(setting, key, setting.default, in_secrets), "default"))
    return [(path, note, rows), *nested]


def _plain(value: Any) -> Any:
    from plait.settings import EnvValue

    return str(value) if isinstance(value, EnvValue) else value


def _shown(setting: Any, key: str, value: Any, in_secrets: bool) -> str:
    from plait.secrets import mask
    from plait.settings import MASK, show_value

    shown = show_value(setting, key, value, in_secrets=in_secrets)
    if shown == MASK:
        return MASK
    return mask(_toml(_plain(value)))


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }" if value else "{}"
    return str(value)


def _source(value: Any) -> str:
    from plait.settings import EnvValue

    if isinstance(value, EnvValue):
        return f"environment variable {value.var}"
    return "file"


def _problem(problem: Any) -> dict[str, str]:
    return {"path": problem.path, "severity": problem.severity, "message": problem.message}
