"""A global state handler: sees every task run of every flow, with no change to the flows."""

import logging

import plait

logger = logging.getLogger("{{ cookiecutter.__module_name }}")


@plait.hookimpl
def plait_task_state_changed(task, old_state, new_state, context):
    """Log every task run that fails (unless [plugins.{{ cookiecutter.__entry_point }}] notify_failures = false)."""
    if not new_state.is_failed():
        return
    from plait.config import get_config

    if not get_config().plugin_section("{{ cookiecutter.__entry_point }}").get("notify_failures", True):
        return
    logger.warning(
        "Flow %s, run %s: task %s failed: %s",
        context.flow_name,
        context.flow_run_id,
        context.task_full_name,
        new_state.message,
    )
