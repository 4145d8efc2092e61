"""``SlackMessage``: post a message to Slack from a flow.

```python
from plait import Flow, task
from plait.secrets import Secret
from plait_slack import SlackMessage

notify = SlackMessage(webhook_url=Secret("SLACK_WEBHOOK_URL").get())

@task
def load() -> int:
    return 42

with Flow("report") as flow:
    rows = load()
    notify(message="Loaded {rows} rows on {today}", rows=rows)
```

The message is a ``str.format`` template over the flow context (``{flow_name}``,
``{today}``, ``{flow_run_id}``, ``{parameters}``...) and any keyword given to ``run``.
Unlike the notifiers, the task *does* fail when Slack refuses the message (``SlackError``), so
``max_retries`` applies; its text never contains the token or webhook URL.
"""

from __future__ import annotations

from typing import Any

from plait.tasks import Task
from plait_slack.client import SlackPoster
from plait_slack.errors import SlackConfigError

__all__ = ["SlackMessage"]


class SlackMessage(Task):
    """Posts a message to Slack and returns Slack's answer (``{"ok": True, ...}``).

    Args:
        message: the default text (a template over the run context; ``run(message=...)`` overrides it).
        webhook_url: an incoming-webhook URL; or
        token: a bot token, with ``channel`` (``run(channel=...)`` overrides it).
        base_url: the Web API's base URL (tests and proxies).
        request_timeout: seconds for one HTTP request (default 10).
        **kwargs: the usual ``Task`` options (``name``, ``max_retries``, ``retry_delay``, ...).

    With neither ``webhook_url`` nor ``token``, ``[plugins.slack]`` in the config is used.
    """

    def __init__(
        self,
        message: str | None = None,
        webhook_url: str | None = None,
        token: str | None = None,
        channel: str | None = None,
        base_url: str | None = None,
        request_timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("name", "SlackMessage")
        super().__init__(**kwargs)
        self.message = message
        self.channel = channel
        self._poster_args = {
            "webhook_url": webhook_url,
            "token": token,
            "channel": channel,
            "base_url": base_url,
            "timeout": request_timeout,
        }
        self._poster: SlackPoster | None = None
        if webhook_url or token:
            self._poster = self._make_poster()

    def run(self, message: str | None = None, channel: str | None = None, **fields: Any) -> dict[str, Any]:  # type: ignore[override]
        """Post ``message`` (or the task's default) formatted with the run context and ``fields``."""
        text = message if message is not None else self.message
        if text is None:
            raise SlackConfigError(
                f"Task {self.name!r}: no message to post; give SlackMessage(message=...) or call it with message=..."
            )
        text = _format(str(text), fields)
        if self._poster is None:
            self._poster = self._make_poster()
        return self._poster.post(text, channel=channel or self.channel)

    def _make_poster(self) -> SlackPoster:
        args = dict(self._poster_args)
        if not (args["webhook_url"] or args["token"]):
            from plait_slack.plugin import slack_settings

            settings = slack_settings()
            for key in ("webhook_url", "token", "channel", "base_url"):
                args[key] = args[key] or settings.get(key)
        return SlackPoster(**args, owner=f"Task {self.name!r}")

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_poster"] = None  # clients hold sockets; a worker process makes its own
        return state


def _format(text: str, fields: dict[str, Any]) -> str:
    if "{" not in text:
        return text
    from plait import context

    values = {**context.to_dict(), **fields}
    try:
        return text.format_map(_Keep(values))
    except (ValueError, IndexError, AttributeError):
        return text


class _Keep(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
