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
    server_events = ["flow_run_crashed", ...]  # in the Plait server: which events alert (default: all)
    alerts = true                              # false: keep the config for the log handler only
    log_level = "ERROR"                        # set it to add SlackLogHandler to the plait logger
    log_batch_size = 20

Every value can come from the environment too (``PLAIT__PLUGINS__SLACK__CHANNEL='#ops'``).
``webhook_url`` and ``token`` may also be given directly; they are then registered with
``plait.secrets`` so they are masked like any secret.
"""

from __future__ import annotations

import logging
from typing import Any

from plait import hookimpl
from plait.alerting import NOTIFIER_KEYS, GlobalNotifier, mask_text, notifier_settings, notifier_settings_declared
from plait.settings import AnyOf, Setting, Settings
from plait_slack.errors import SlackConfigError

__all__ = [
    "configured_notifier",
    "plait_flow_state_changed",
    "plait_register_log_handlers",
    "plait_register_settings",
    "plait_register_tasks",
    "plait_server_event",
    "plait_task_state_changed",
    "slack_settings",
]

SECTION = "slack"
logger = logging.getLogger("plait.plugins.slack")

_NOTIFIER_KEYS = {
    **NOTIFIER_KEYS,
    "template": "template",
    "base_url": "base_url",
    "channel": "channel",
    "webhook_url": "webhook_url",
    "token": "token",
}


def slack_settings(config: Any = None) -> dict[str, Any]:
    """``SlackNotifier`` keyword arguments from ``[plugins.slack]`` (secrets resolved)."""
    return notifier_settings(
        _section(config), _NOTIFIER_KEYS, ("webhook_url", "token"), where=f"[plugins.{SECTION}]", error=SlackConfigError
    )


def configured_notifier() -> Any:
    """The notifier ``[plugins.slack]`` describes (made once per config), or ``None``."""
    return alerts.notifier()


#: ``[plugins.slack]``: every key, its type and default, and which are secrets (see ``plait.settings``).
SETTINGS = Settings(
    f"plugins.{SECTION}",
    Setting("webhook_url_secret", str, help="name of the plait secret holding the incoming-webhook URL"),
    Setting("webhook_url", str, secret=True, help="the incoming-webhook URL itself (prefer webhook_url_secret)"),
    Setting("token_secret", str, help="name of the plait secret holding a bot token (with channel)"),
    Setting("token", str, secret=True, help="the bot token itself (prefer token_secret)"),
    Setting("channel", str, help="the channel a bot token posts to, e.g. #alerts"),
    Setting("base_url", str, help="Slack's API URL (for a proxy or a test server)"),
    Setting("template", str, help="the message template (see plait_slack.notifier)"),
    *notifier_settings_declared(),
    Setting("alerts", bool, True, help="false: keep the section for the log handler or slack_notifier only"),
    Setting(
        "log_level",
        str,
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        help="send plait log records of this level and above to Slack",
    ),
    Setting(
        "log_batch_size",
        int,
        20,
        help="log records per Slack message",
        check=lambda v: None if v > 0 else "must be at least 1",
    ),
    requires=AnyOf("webhook_url_secret", "webhook_url", "token_secret", "token"),
    observe_when=lambda status: status.configured or _notifiers_alive(),
    help="Slack alerts for every flow run, and the Slack log handler",
)


# --- hooks ------------------------------------------------------------------------------------------


@hookimpl
def plait_register_settings() -> Settings:
    return SETTINGS


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
    alerts.task_state_changed(task, old_state, new_state)


@hookimpl
def plait_flow_state_changed(flow: Any, old_state: Any, new_state: Any, context: Any) -> None:
    alerts.flow_state_changed(flow, old_state, new_state, context)


@hookimpl
def plait_server_event(event: Any) -> None:
    # In the Plait server's process: a run whose process died, a late run, a lost agent.
    alerts.server_event(event)


# --- helpers ----------------------------------------------------------------------------------------


def _section(config: Any = None) -> dict[str, Any]:
    if config is None:
        from plait.config import get_config

        config = get_config()
    if config is None:
        return {}
    section = config.plugin_section(SECTION)
    if not isinstance(section, dict):
        raise SlackConfigError(f"[plugins.{SECTION}] must be a table, got a {type(section).__name__}")
    return section


def _notifiers_alive() -> bool:
    # Notifiers used as task state handlers learn a run ended through the flow hook.
    import sys

    module = sys.modules.get("plait_slack.notifier")
    if module is None:
        return False
    from plait.alerting import live_notifiers

    return bool(live_notifiers(module.SlackNotifier))


def _has_destination(section: dict[str, Any]) -> bool:
    return any(section.get(k) for k in ("webhook_url", "webhook_url_secret", "token", "token_secret"))


def _make_notifier(config: Any) -> Any:
    from plait_slack.notifier import SlackNotifier

    return SlackNotifier(**slack_settings(config))


def _notifier_class() -> type:
    from plait_slack.notifier import SlackNotifier

    return SlackNotifier


def _flush_logs() -> None:
    from plait_slack.logs import flush_log_handlers

    flush_log_handlers()


#: the global-notifier plumbing the hooks above delegate to (see ``plait.alerting.GlobalNotifier``)
alerts = GlobalNotifier(
    "plait-slack",
    f"plugins.{SECTION}",
    section=_section,
    factory=_make_notifier,
    kind=_notifier_class,
    has_destination=_has_destination,
    on_run_end=_flush_logs,
    unconfigured=(
        "plait-slack: slack_notifier is used as a state handler but [plugins.slack] has no "
        "webhook_url_secret or token_secret; no alert is sent (or use slack_notifier(webhook_url=...))"
    ),
    logger=logger,
)
