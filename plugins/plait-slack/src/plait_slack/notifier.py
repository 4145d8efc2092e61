"""``slack_notifier``: Slack alerts as a state handler, per task or flow, or for every flow via config.

```python
from plait import Flow, task
from plait.secrets import Secret
from plait.states import Failed, TimedOut
from plait_slack import slack_notifier

# 1. as it is: the destination comes from [plugins.slack] in the config
@task(state_handlers=[slack_notifier])
def load(): ...

# 2. a factory with its own destination, states and template
alert = slack_notifier(
    only_states=[Failed],
    ignore_states=[TimedOut],
    webhook_url=Secret("SLACK_WEBHOOK_URL").get(),
    template="{icon} {flow} / {task} is {state}: {message}{link}",
    ui_url="https://plait.example.com",
)
with Flow("etl", state_handlers=[alert]) as flow:
    load()
```

Template fields: ``{flow}``, ``{task}``, ``{state}``, ``{old_state}``, ``{message}``, ``{run_id}``,
``{time}`` (ISO-8601 UTC), ``{url}`` (the run's page, when ``ui_url`` is set), ``{link}``
(``"\\n<url|View run>"`` or ``""``), ``{tasks}`` (the run's summary of task failures, or ``""``),
``{icon}``. When alerts are sent, and how storms are avoided, is in ``plait.alerting``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from plait.alerting import AlertEvent, Notifier, summary_text
from plait.states import State
from plait_slack.client import SlackPoster
from plait_slack.errors import SlackConfigError

__all__ = ["DEFAULT_TEMPLATE", "SlackNotifier", "render", "slack_notifier"]

DEFAULT_TEMPLATE = "{icon} *{flow}*{task_part} is *{state}* at {time} (run `{run_id}`)\n{message}{tasks_part}{link}"


class SlackNotifier(Notifier):
    """A notifier that posts alerts to Slack (see ``slack_notifier`` and ``plait.alerting``).

    Args:
        webhook_url / token / channel / base_url: where to post (see ``SlackPoster``).
        template: the message, a ``str.format`` template over the fields in the module docstring.
        **options: ``only_states``, ``ignore_states``, ``flows``, ``tags``, ``ui_url``, ``timeout``,
            ``rate_limit``, ``rate_period``, ``immediate``, ``queue_size``, ``clock`` (see ``Notifier``).
    """

    plugin = "plait-slack"
    logger_name = "plait.plugins.slack"
    error_class = SlackConfigError

    def __init__(
        self,
        webhook_url: str | None = None,
        token: str | None = None,
        channel: str | None = None,
        template: str | None = None,
        base_url: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.template = template or DEFAULT_TEMPLATE
        _check_template(self.template)
        self.poster = SlackPoster(
            webhook_url,
            token,
            channel,
            base_url=base_url,
            timeout=self.timeout,
            max_retry_wait=self.timeout,
            sleep=sleep,
            owner="slack_notifier",
        )

    def __repr__(self) -> str:
        return f"<SlackNotifier {self.poster!r}>"

    def deliver(self, event: AlertEvent) -> None:
        self.poster.post(render(self.template, event))

    def secrets(self) -> tuple[str | None, ...]:
        return (self.poster.webhook_url, self.poster.token)


def render(template: str, event: AlertEvent) -> str:
    """The Slack text for ``event`` from ``template``."""
    fields = event.fields()
    tasks = summary_text(event.tasks)
    fields["tasks"] = tasks
    fields["tasks_part"] = f"\nTask runs: {tasks}" if tasks else ""
    fields["task_part"] = f" / `{event.task}`" if event.task and event.kind == "task" else ""
    fields["link"] = f"\n<{event.url}|View run>" if event.url else ""
    if event.suppressed:
        fields["message"] += f" ({event.suppressed} earlier alerts were dropped by the rate limit)"
    return template.format_map(_Missing(fields))


def slack_notifier(
    obj: Any = None,
    old_state: State | None = None,
    new_state: State | None = None,
    *,
    only_states: Iterable[type[State] | str] | None = None,
    ignore_states: Iterable[type[State] | str] | None = None,
    webhook_url: str | None = None,
    token: str | None = None,
    channel: str | None = None,
    template: str | None = None,
    ui_url: str | None = None,
    **options: Any,
) -> Any:
    """A Slack alert state handler; use it as it is or call it with options to make one.

    As it is (``state_handlers=[slack_notifier]``) it uses the notifier configured in
    ``[plugins.slack]`` and returns ``None``. Called with keyword options it returns a new
    ``SlackNotifier``; without ``webhook_url`` or ``token`` the destination, and every option
    not given, come from ``[plugins.slack]``.

    ```python
    alert = slack_notifier(only_states=["Failed"], webhook_url=url, ui_url="https://plait.example.com")
    my_task = MyTask(state_handlers=[alert])
    ```

    Raises:
        SlackConfigError: no destination (neither argument nor config), a bad state name, a bad template.
    """
    if obj is not None and new_state is not None:
        from plait_slack import plugin

        notifier = plugin.configured_notifier()
        if notifier is None:
            plugin.warn_unconfigured()
            return None
        if plugin.global_alerts_on():
            return None  # the plugin's hooks already see every state change
        return notifier(obj, old_state, new_state)
    if obj is not None:
        raise SlackConfigError(
            f"slack_notifier takes keyword options (slack_notifier(only_states=[Failed], ...)) or is used "
            f"as a state handler as it is; got a positional argument {obj!r}"
        )
    from plait_slack import plugin

    settings: dict[str, Any] = {}
    if not (webhook_url or token):
        settings = plugin.slack_settings()
    given = {
        "only_states": only_states,
        "ignore_states": ignore_states,
        "webhook_url": webhook_url,
        "token": token,
        "channel": channel,
        "template": template,
        "ui_url": ui_url,
        **options,
    }
    merged = {**settings, **{k: v for k, v in given.items() if v is not None}}
    if not (merged.get("webhook_url") or merged.get("token")):
        raise SlackConfigError(
            "slack_notifier: no Slack destination: pass webhook_url=... (or token=... and channel=...), "
            "or set webhook_url_secret / token_secret under [plugins.slack] in the Plait config"
        )
    return SlackNotifier(**merged)


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _check_template(template: str) -> None:
    sample = AlertEvent("task", "flow", "Failed", "Running", "task", "message", "run", "time")
    try:
        render(template, sample)
    except (ValueError, IndexError, AttributeError) as exc:
        raise SlackConfigError(
            f"slack_notifier: template {template!r} is not a valid format string ({exc}); "
            "use fields like {flow}, {task}, {state}, {message}, {run_id}, {time}, {link}"
        ) from None
