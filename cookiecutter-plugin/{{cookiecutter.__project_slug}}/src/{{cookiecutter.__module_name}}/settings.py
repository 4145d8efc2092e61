"""The plugin's settings, declared in one place: [plugins.{{ cookiecutter.__entry_point }}] in Plait's config.

From this declaration Plait reports unknown keys (with the closest name) and bad values,
reads `PLAIT__PLUGINS__{{ cookiecutter.__entry_point|upper|replace('-', '_') }}__KEY=value` as
the declared type, shows the section in `plait config` and the plugin's state in
`plait plugins`, and calls the plugin's observer hooks only while it is configured. Add a
`Setting` for every key the plugin reads; `requires=AnyOf(...)` says what must be set before
the plugin does anything (see Plait's docs/writing-a-plugin.md).
"""

import plait
from plait.settings import Setting, Settings

SETTINGS = Settings(
    "plugins.{{ cookiecutter.__entry_point }}",
{%- if cookiecutter.include_state_handler %}
    Setting("notify_failures", bool, True, help="log a warning for every failed task run"),
{%- endif %}
{%- if cookiecutter.include_log_handler %}
    Setting("log_file", str, help="append every Plait log record to this file, as JSON lines"),
{%- endif %}
    help="{{ cookiecutter.description }}",
)


@plait.hookimpl
def plait_register_settings():
    """Declare [plugins.{{ cookiecutter.__entry_point }}]."""
    return SETTINGS
