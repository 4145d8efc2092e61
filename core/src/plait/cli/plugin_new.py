"""``plait plugin new``: scaffold a plugin distribution from Plait's cookiecutter template."""

from __future__ import annotations

import keyword
import re
from pathlib import Path

import click

__all__ = ["check_plugin_name", "plugin", "template_dir"]

#: The rule the template's pre_gen_project hook applies too.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")


def template_dir() -> Path:
    """Where the ``cookiecutter-plugin`` template is: inside the installed package, or the source tree."""
    here = Path(__file__).resolve()
    packaged = here.parent.parent / "templates" / "plugin"
    if (packaged / "cookiecutter.json").is_file():
        return packaged
    for parent in here.parents:
        candidate = parent / "cookiecutter-plugin"
        if (candidate / "cookiecutter.json").is_file():
            return candidate
    raise click.ClickException(
        "Plait's plugin template was not found (neither plait/templates/plugin nor cookiecutter-plugin/ "
        "in the source tree); reinstall plait or pass --template PATH"
    )


@click.group()
def plugin() -> None:
    """Work on Plait plugins."""


#: What ``plait plugin new`` asks, in order: (template variable, option name, label).
PROMPTS: tuple[tuple[str, str, str], ...] = (
    ("plugin_name", "name", "Plugin name (lowercase letters, digits, '-' or '_'; e.g. slack)"),
    ("description", "description", "One line saying what the plugin does"),
    ("author", "author", "Author's name"),
    ("author_email", "email", "Author's e-mail address"),
    ("include_tasks", "tasks", "Include an example task (plait_register_tasks)?"),
    ("include_state_handler", "state_handler", "Include a state observer (plait_task_state_changed)?"),
    ("include_log_handler", "log_handler", "Include a log handler (plait_register_log_handlers)?"),
)

#: How to get cookiecutter, which renders the template (not needed to run flows).
SCAFFOLD_HINT = (
    "plait plugin new renders Plait's plugin template with cookiecutter, which is not installed. "
    'Install the "scaffold" extra: pip install "plait[scaffold]" (from a clone of Plait\'s repository: '
    'pip install "./core[scaffold]"), or pip install cookiecutter'
)


@plugin.command()
@click.option("--name", help="Short plugin name, e.g. 'slack' (distribution plait-slack, module plait_slack).")
@click.option("--description", help="One line saying what the plugin does.")
@click.option("--author", help="Author name.")
@click.option("--email", help="Author e-mail.")
@click.option("--with-tasks/--no-tasks", "tasks", default=None, help="Include an example task (default: yes).")
@click.option(
    "--with-state-handler/--no-state-handler",
    "state_handler",
    default=None,
    help="Include a plait_task_state_changed observer (default: yes).",
)
@click.option(
    "--with-log-handler/--no-log-handler",
    "log_handler",
    default=None,
    help="Include a plait_register_log_handlers handler (default: no).",
)
@click.option("--no-input", is_flag=True, help="Do not prompt; use the options given and the defaults.")
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where to create the plugin's folder.",
)
@click.option("--template", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Another template.")
def new(
    name: str | None,
    description: str | None,
    author: str | None,
    email: str | None,
    tasks: bool | None,
    state_handler: bool | None,
    log_handler: bool | None,
    no_input: bool,
    output_dir: Path,
    template: Path | None,
) -> None:
    """Create a new plugin distribution (asks for what is not given, unless --no-input).

    Each answer is checked as it is typed: a bad plugin name is asked again at once.

    \b
    Example:
        plait plugin new --name slack --description "Slack alerts" --no-input
        cd plait-slack && pip install -e ".[test]" && pytest
    """
    try:
        from cookiecutter.exceptions import CookiecutterException, FailedHookException, OutputDirExistsException
        from cookiecutter.main import cookiecutter
    except ImportError:
        raise click.ClickException(SCAFFOLD_HINT) from None
    if name is not None:
        check_plugin_name(name)
    source = template or template_dir()
    defaults = _template_defaults(source)
    given: dict[str, object] = {
        "name": name,
        "description": description,
        "author": author,
        "email": email,
        "tasks": tasks,
        "state_handler": state_handler,
        "log_handler": log_handler,
    }
    context: dict[str, object] = {}
    for key, option, label in PROMPTS:
        value = given[option]
        if value is None and not no_input:
            value = _ask(label, defaults.get(key), key == "plugin_name")
        if value is not None:
            context[key] = value
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        # Every answer was asked above (with its label, and checked); cookiecutter only renders.
        created = cookiecutter(
            str(source),
            no_input=True,
            extra_context=context,
            output_dir=str(output_dir),
            accept_hooks=True,
        )
    except FailedHookException as exc:
        # The template's pre-generation hook printed why (e.g. a bad name) to stderr.
        raise click.ClickException(f"The plugin was not created: {exc}") from None
    except OutputDirExistsException as exc:
        raise click.ClickException(
            f"The plugin was not created: {exc}; choose another --name or --output-dir"
        ) from None
    except CookiecutterException as exc:
        raise click.ClickException(f"The plugin was not created: {exc}") from None
    click.echo(f"Created {created}")
    click.echo(f'Next: cd {created} && pip install -e ".[test]" && pytest')
    click.echo("(Plait is not on PyPI yet: install the core into that environment first, see the README there.)")


def _ask(label: str, default: object, is_name: bool) -> object:
    if isinstance(default, bool):
        return click.confirm(label, default=default)

    def checked(text: str) -> str:
        text = text.strip()
        if is_name:
            check_plugin_name(text, hint=None)
        return text

    return click.prompt(label, default=default, value_proc=checked if is_name else None)


def _template_defaults(template: Path) -> dict[str, object]:
    import json

    try:
        return json.loads((template / "cookiecutter.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def check_plugin_name(name: str, hint: str | None = "--name") -> None:
    """Reject a name that would not make a valid distribution (``plait-<name>``) and module name."""
    if not NAME_PATTERN.match(name) or keyword.iskeyword(name):
        raise click.BadParameter(
            f"{name!r} is not a valid plugin name: use lowercase letters and digits, starting with a letter, "
            "with single '-' or '_' between words (e.g. 'slack' or 'my-alerts'). It becomes the distribution "
            "'plait-<name>' and the module 'plait_<name>'.",
            param_hint=hint,
        )
    if name.startswith("plait"):
        raise click.BadParameter(
            f"{name!r} starts with 'plait'; give only the short name (e.g. 'slack' for plait-slack)",
            param_hint=hint,
        )
