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
    alerts = true                              # false: keep the config for webhook_notifier only
    headers = { Authorization = "..." }        # extra request headers

Values may come from the environment too (``PLAIT__PLUGINS__HTTP__WEBHOOK__TIMEOUT=5``).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from plait import hookimpl
from plait.alerting import live_notifiers, mask_text, register_secrets
from plait_http.errors import HTTPConfigError

__all__ = [
    "configured_notifier",
    "plait_flow_state_changed",
    "plait_register_tasks",
    "plait_task_state_changed",
    "webhook_settings",
]

SECTION = "http"
logger = logging.getLogger("plait.plugins.http")

_NOTIFIER_KEYS = {
    "url": "url",
    "signing_key": "signing_key",
    "states": "only_states",
    "only_states": "only_states",
    "ignore_states": "ignore_states",
    "flows": "flows",
    "tags": "tags",
    "ui_url": "ui_url",
    "timeout": "timeout",
    "retries": "retries",
    "backoff_factor": "backoff_factor",
    "rate_limit": "rate_limit",
    "rate_period": "rate_period",
    "immediate": "immediate",
    "queue_size": "queue_size",
    "headers": "headers",
}

_lock = threading.Lock()
_cached: tuple[Any, Any, bool] | None = None  # (config object, notifier or None, global alerts on)
_global: Any = None
_warned = False


def webhook_settings(config: Any = None) -> dict[str, Any]:
    """``WebhookNotifier`` keyword arguments from ``[plugins.http.webhook]`` (secrets resolved)."""
    section = _section(config)
    out = {_NOTIFIER_KEYS[k]: v for k, v in section.items() if k in _NOTIFIER_KEYS}
    for key in ("url", "signing_key"):
        secret_name = section.get(f"{key}_secret")
        if secret_name and not out.get(key):
            from plait.secrets import Secret

            out[key] = Secret(secret_name).get()
    register_secrets(out.get("url"), out.get("signing_key"))
    return out


def configured_notifier() -> Any:
    """The notifier ``[plugins.http.webhook]`` describes (made once per config), or ``None``."""
    return _configured()[0]


def global_alerts_on() -> bool:
    """Whether the plugin's hooks are alerting for every flow right now."""
    return _global is not None


def warn_unconfigured() -> None:
    global _warned
    if not _warned:
        _warned = True
        logger.warning(
            "plait-http: webhook_notifier is used as a state handler but [plugins.http.webhook] has no "
            "url_secret or url; no alert is sent (or use webhook_notifier(url=...))"
        )


# --- hooks ------------------------------------------------------------------------------------------


@hookimpl
def plait_register_tasks() -> list[Any]:
    from plait_http.tasks import HTTPRequest

    return [HTTPRequest]


@hookimpl
def plait_task_state_changed(task: Any, old_state: Any, new_state: Any) -> None:
    notifier = _global
    if notifier is not None:
        try:
            notifier.task_changed(task, old_state, new_state)
        except Exception as exc:  # never let an alert change a run, even in strict mode
            logger.error(
                "%s: failed recording a state change of task %r: %s", "plait-http", task.name, mask_text(str(exc), ())
            )


@hookimpl
def plait_flow_state_changed(flow: Any, old_state: Any, new_state: Any, context: Any) -> None:
    try:
        _flow_state_changed(flow, old_state, new_state, context)
    except Exception as exc:  # never let an alert change a run, even in strict mode
        logger.error(
            "%s: failed handling a state change of flow %r: %s", "plait-http", flow.name, mask_text(str(exc), ())
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
    run_id = context.get("flow_run_id")
    from plait_http.webhook import WebhookNotifier

    for other in live_notifiers(WebhookNotifier):
        if other is not notifier:
            other.finish_run(flow.name, old_state, new_state, run_id, flow_matches=False)


# --- helpers ----------------------------------------------------------------------------------------


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
        if section.get("url") or section.get("url_secret"):
            from plait_http.webhook import WebhookNotifier

            try:
                notifier = WebhookNotifier(**webhook_settings(config))
            except Exception as exc:
                logger.error("plait-http: [plugins.http.webhook] is not usable, no alerts will be sent: %s", exc)
        enabled = bool(section.get("alerts", True)) and notifier is not None
        _cached = (config, notifier, enabled)
        return notifier, enabled


def _config() -> Any:
    from plait.config import get_config

    return get_config()


def _section(config: Any = None) -> dict[str, Any]:
    config = _config() if config is None else config
    if config is None:
        return {}
    webhook = config.plugin_section(SECTION).get("webhook", {})
    if not isinstance(webhook, dict):
        raise HTTPConfigError(f"[plugins.http.webhook] must be a table, got {webhook!r}")
    return webhook
