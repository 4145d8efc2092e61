"""plait-http's Plait plugin (entry point ``http`` in the group ``plait``).

With ``[plugins.http.webhook]`` in the Plait config every flow run posts its alert document
(see ``plait_http.webhook``), with no code change::

    [plugins.http.webhook]
    url_secret = "ALERT_WEBHOOK_URL"           # the name of a plait.secrets.Secret (or url = "...")
    signing_key_secret = "ALERT_WEBHOOK_KEY"   # optional: sign with X-Plait-Signature-256
    states = ["Failed"]                        # default
    ignore_states = []
    flows = []                                 # only these flows (default: all)
    tags = []                                  # only tasks with one of these tags (default: all)
    ui_url = "https://plait.example.com"
    timeout = 10                               # seconds per POST; also the most a run's end waits
    retries = 2                                # connection errors and 5xx answers
    rate_limit = 20                            # alerts per rate_period seconds
    rate_period = 60
    immediate = false
    server_events = ["flow_run_crashed", ...]  # in the Plait server: which events alert (default: all)
    alerts = true                              # false: keep the config for webhook_notifier only
    headers = { Authorization = "..." }        # extra request headers

Values may come from the environment too (``PLAIT__PLUGINS__HTTP__WEBHOOK__TIMEOUT=5``).
"""

from __future__ import annotations

import logging
from typing import Any

from plait import hookimpl
from plait.alerting import NOTIFIER_KEYS, GlobalNotifier, notifier_settings, notifier_settings_declared
from plait.settings import Setting, Settings
from plait_http.errors import HTTPConfigError

__all__ = [
    "configured_notifier",
    "plait_flow_state_changed",
    "plait_register_settings",
    "plait_register_tasks",
    "plait_server_event",
    "plait_task_state_changed",
    "webhook_settings",
]

SECTION = "http"
logger = logging.getLogger("plait.plugins.http")

_NOTIFIER_KEYS = {
    **NOTIFIER_KEYS,
    "url": "url",
    "signing_key": "signing_key",
    "retries": "retries",
    "backoff_factor": "backoff_factor",
    "headers": "headers",
}


def webhook_settings(config: Any = None) -> dict[str, Any]:
    """``WebhookNotifier`` keyword arguments from ``[plugins.http.webhook]`` (secrets resolved)."""
    return notifier_settings(
        _section(config), _NOTIFIER_KEYS, ("url", "signing_key"), where="[plugins.http.webhook]", error=HTTPConfigError
    )


def configured_notifier() -> Any:
    """The notifier ``[plugins.http.webhook]`` describes (made once per config), or ``None``."""
    return alerts.notifier()


def _positive(value: Any) -> str | None:
    return None if value >= 0 else "must not be negative"


#: ``[plugins.http]`` and its ``[plugins.http.webhook]`` table (see ``plait.settings``).
SETTINGS = Settings(
    f"plugins.{SECTION}",
    Setting(
        "webhook",
        Settings(
            "webhook",
            Setting("url_secret", str, help="name of the plait secret holding the webhook URL"),
            Setting("url", str, secret=True, help="the webhook URL itself (prefer url_secret)"),
            Setting("signing_key_secret", str, help="name of the plait secret to sign with (X-Plait-Signature-256)"),
            Setting("signing_key", str, secret=True, help="the signing key itself (prefer signing_key_secret)"),
            *notifier_settings_declared(),
            Setting("retries", int, 2, help="retries on connection errors and 5xx answers", check=_positive),
            Setting("backoff_factor", float, help="seconds between retries grow by this factor", check=_positive),
            Setting("headers", dict[str, str], help="extra request headers"),
            Setting("alerts", bool, True, help="false: keep the table for webhook_notifier only"),
        ),
        help="signed webhook alerts for every flow run",
    ),
    requires=lambda values: (
        None
        if (values.get("webhook") or {}).get("url") or (values.get("webhook") or {}).get("url_secret")
        else "[plugins.http.webhook] has neither url_secret nor url (the HTTPRequest task needs no config)"
    ),
    observe_when=lambda status: status.configured or _notifiers_alive(),
    help="the HTTP task, and webhook alerts",
)


# --- hooks ------------------------------------------------------------------------------------------


@hookimpl
def plait_register_settings() -> Settings:
    return SETTINGS


@hookimpl
def plait_register_tasks() -> list[Any]:
    from plait_http.tasks import HTTPRequest

    return [HTTPRequest]


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
    webhook = config.plugin_section(SECTION).get("webhook", {})
    if not isinstance(webhook, dict):
        raise HTTPConfigError(f"[plugins.http.webhook] must be a table, got a {type(webhook).__name__}")
    return webhook


def _notifiers_alive() -> bool:
    # Notifiers used as task state handlers learn a run ended through the flow hook.
    import sys

    module = sys.modules.get("plait_http.webhook")
    if module is None:
        return False
    from plait.alerting import live_notifiers

    return bool(live_notifiers(module.WebhookNotifier))


def _make_notifier(config: Any) -> Any:
    from plait_http.webhook import WebhookNotifier

    return WebhookNotifier(**webhook_settings(config))


def _notifier_class() -> type:
    from plait_http.webhook import WebhookNotifier

    return WebhookNotifier


#: the global-notifier plumbing the hooks above delegate to (see ``plait.alerting.GlobalNotifier``)
alerts = GlobalNotifier(
    "plait-http",
    "plugins.http.webhook",
    section=_section,
    factory=_make_notifier,
    kind=_notifier_class,
    has_destination=lambda section: bool(section.get("url") or section.get("url_secret")),
    unconfigured=(
        "plait-http: webhook_notifier is used as a state handler but [plugins.http.webhook] has no "
        "url_secret or url; no alert is sent (or use webhook_notifier(url=...))"
    ),
    logger=logger,
)
