"""plait-slack's Plait plugin (entry point ``slack`` in the group ``plait``).

With ``[plugins.slack]`` in the Plait config every flow run alerts, with no code change::

    [plugins.slack]
    webhook_url_secret = "SLACK_WEBHOOK_URL"   # the name of a plait.secrets.Secret
    # or: token_secret = "SLACK_BOT_TOKEN" and channel = "#alerts"
    states = ["Failed"]                        # default; e.g. ["Failed", "Cancelled"]
    ignore_states = []                         # e.g. ["TimedOut"]
    flows = []                                 # only these flows (default: all)
    tags = []                                  # only tasks with one of these tags (default: all)
    ui_url = "https://plait.example.com"       # alerts link to <ui_url>/flow-run/<run id>
    template = "..."                           # see plait_slack.notifier
    timeout = 10                               # seconds; also the most a run's end waits for alerts
    rate_limit = 20                            # alerts per rate_period seconds
    rate_period = 60
    immediate = false                          # also send each task's first failure at once
    alerts = true                              # false: keep the config for the log handler only
    log_level = "ERROR"                        # set it to add SlackLogHandler to the plait logger
    log_batch_size = 20

Every value can come from the environment too (``PLAIT__PLUGINS__SLACK__CHANNEL='#ops'``).
``webhook_url`` and ``token`` may also be given directly; they are then registered with
``plait.secrets`` so they are masked like any secret.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from plait import hookimpl
from plait.alerting import live_notifiers, mask_text, register_secrets
from plait_slack.errors import SlackConfigError

__all__ = [
    "configured_notifier",
    "plait_flow_state_changed",
    "plait_register_log_handlers",
    "plait_register_tasks",
    "plait_task_state_changed",
    "slack_settings",
]

SECTION = "slack"
logger = logging.getLogger("plait.plugins.slack")

_NOTIFIER_KEYS = {
    "states": "only_states",
    "only_states": "only_states",
    "ignore_states": "ignore_states",
    "flows": "flows",
    "tags": "tags",
    "ui_url": "ui_url",
    "template": "template",
    "timeout": "timeout",
    "rate_limit": "rate_limit",
    "rate_period": "rate_period",
    "immediate": "immediate",
    "queue_size": "queue_size",
    "base_url": "base_url",
    "channel": "channel",
    "webhook_url": "webhook_url",
    "token": "token",
}

_lock = threading.Lock()
_cached: tuple[Any, Any, bool] | None = None  # (config object, notifier or None, global alerts on)
_global: Any = None  # the configured notifier while global alerting is on: the task hook's fast path
_warned = False


def slack_settings(config: Any = None) -> dict[str, Any]:
    """``SlackNotifier`` keyword arguments from ``[plugins.slack]`` (secrets resolved)."""
    section = _section(config)
    out: dict[str, Any] = {}
    for key, value in section.items():
        if key in _NOTIFIER_KEYS:
            out[_NOTIFIER_KEYS[key]] = value
    for key in ("webhook_url", "token"):
        secret_name = section.get(f"{key}_secret")
        if secret_name and not out.get(key):
            from plait.secrets import Secret

            out[key] = Secret(secret_name).get()
    register_secrets(out.get("webhook_url"), out.get("token"))
    return out


def configured_notifier() -> Any:
    """The notifier ``[plugins.slack]`` describes (made once per config), or ``None``."""
    return _configured()[0]


def global_alerts_on() -> bool:
    """Whether the plugin's hooks are alerting for every flow right now (so a bare
    ``slack_notifier`` handler must not count the same change twice)."""
    return _global is not None


def _configured() -> tuple[Any, bool]:
    global _cached
    config = _config()
    cached = _cached
    if cached is not None and cached[0] is config:
        return cached[1], cached[2]
    with _lock:
        if _cached is not None and _cached[0] is config:
            return _cached[1], _cached[2]
        notifier = None
        section = _section(config)
        if _has_destination(section):
            from plait_slack.notifier import SlackNotifier

            try:
                notifier = SlackNotifier(**slack_settings(config))
            except Exception as exc:
                logger.error("plait-slack: [plugins.%s] is not usable, no alerts will be sent: %s", SECTION, exc)
        enabled = bool(section.get("alerts", True)) and notifier is not None
        _cached = (config, notifier, enabled)
        return notifier, enabled


def warn_unconfigured() -> None:
    global _warned
    if not _warned:
        _warned = True
        logger.warning(
            "plait-slack: slack_notifier is used as a state handler but [plugins.slack] has no "
            "webhook_url_secret or token_secret; no alert is sent (or use slack_notifier(webhook_url=...))"
        )


# --- hooks ------------------------------------------------------------------------------------------


@hookimpl
def plait_register_tasks() -> list[Any]:
    from plait_slack.tasks import SlackMessage

    return [SlackMessage]


@hookimpl
def plait_register_log_handlers(config: Any) -> list[logging.Handler]:
    section = _section(config)
    level = section.get("log_level")
    if not level or not _has_destination(section):
        return []
    from plait_slack.logs import SlackLogHandler

    try:
        settings = slack_settings(config)
        handler = SlackLogHandler(
            level=str(level).upper(),
            webhook_url=settings.get("webhook_url"),
            token=settings.get("token"),
            channel=settings.get("channel"),
            base_url=settings.get("base_url"),
            batch_size=int(section.get("log_batch_size", 20)),
            timeout=float(section.get("timeout", 10.0)),
        )
    except Exception as exc:
        logger.error(
            "plait-slack: no SlackLogHandler: [plugins.%s] is not usable: %s", SECTION, mask_text(str(exc), ())
        )
        return []
    return [handler]


@hookimpl
def plait_task_state_changed(task: Any, old_state: Any, new_state: Any) -> None:
    notifier = _global
    if notifier is not None:
        try:
            notifier.task_changed(task, old_state, new_state)
        except Exception as exc:  # never let an alert change a run, even in strict mode
            logger.error(
                "%s: failed recording a state change of task %r: %s", "plait-slack", task.name, mask_text(str(exc), ())
            )


@hookimpl
def plait_flow_state_changed(flow: Any, old_state: Any, new_state: Any, context: Any) -> None:
    try:
        _flow_state_changed(flow, old_state, new_state, context)
    except Exception as exc:  # never let an alert change a run, even in strict mode
        logger.error(
            "%s: failed handling a state change of flow %r: %s", "plait-slack", flow.name, mask_text(str(exc), ())
        )


def _flow_state_changed(flow: Any, old_state: Any, new_state: Any, context: Any) -> None:
    global _global
    configured, enabled = _configured()
    notifier = configured if enabled else None
    _global = notifier
    if notifier is not None:
        notifier.flow_changed(flow, old_state, new_state)
    if new_state.is_running():
        return
    # the run is over: notifiers used only as task state handlers send their summaries now
    run_id = context.get("flow_run_id")
    from plait_slack.notifier import SlackNotifier

    for other in live_notifiers(SlackNotifier):
        if other is not notifier:
            other.finish_run(flow.name, old_state, new_state, run_id, flow_matches=False)
    from plait_slack.logs import flush_log_handlers

    flush_log_handlers()


# --- helpers ----------------------------------------------------------------------------------------


def _config() -> Any:
    from plait.config import get_config

    return get_config()


def _section(config: Any = None) -> dict[str, Any]:
    config = _config() if config is None else config
    if config is None:
        return {}
    section = config.plugin_section(SECTION)
    if not isinstance(section, dict):
        raise SlackConfigError(f"[plugins.{SECTION}] must be a table, got {section!r}")
    return section


def _has_destination(section: dict[str, Any]) -> bool:
    return any(section.get(k) for k in ("webhook_url", "webhook_url_secret", "token", "token_secret"))
