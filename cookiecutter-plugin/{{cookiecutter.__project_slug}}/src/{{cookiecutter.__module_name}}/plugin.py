"""The plugin Plait loads (entry point `{{ cookiecutter.__entry_point }}` in the group `plait`).

Plait registers this module with its plugin manager: every function here marked
`@plait.hookimpl` and named after a Plait hook is called by Plait (see `plait plugins`).
"""

from {{ cookiecutter.__module_name }}.settings import plait_register_settings
{% if cookiecutter.include_tasks %}
from {{ cookiecutter.__module_name }}.tasks import plait_register_tasks
{%- endif %}
{%- if cookiecutter.include_state_handler %}
from {{ cookiecutter.__module_name }}.state_handler import plait_task_state_changed
{%- endif %}
{%- if cookiecutter.include_log_handler %}
from {{ cookiecutter.__module_name }}.log_handler import plait_register_log_handlers
{%- endif %}

#: The name of this plugin's section in Plait's config: [plugins.{{ cookiecutter.__entry_point }}]
CONFIG_SECTION = "{{ cookiecutter.__entry_point }}"

__all__ = [
    "CONFIG_SECTION",
{%- if cookiecutter.include_log_handler %}
    "plait_register_log_handlers",
{%- endif %}
    "plait_register_settings",
{%- if cookiecutter.include_tasks %}
    "plait_register_tasks",
{%- endif %}
{%- if cookiecutter.include_state_handler %}
    "plait_task_state_changed",
{%- endif %}
]
