"""plait-slack: Slack alerts, messages and log records for Plait flows.

```python
from plait_slack import SlackLogHandler, SlackMessage, slack_notifier
```

- ``slack_notifier``: a state handler (as it is, or ``slack_notifier(only_states=..., ...)``);
  with ``[plugins.slack]`` configured, every flow alerts through the plugin's hooks.
- ``SlackMessage``: a task that posts a message.
- ``SlackLogHandler``: log records at or above a level, batched.

See the README for configuration, and ``plait.alerting`` for de-duplication, rate
limits and how sending stays off the task's path.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["SlackConfigError", "SlackError", "SlackLogHandler", "SlackMessage", "SlackNotifier", "slack_notifier"]

_LAZY = {
    "SlackConfigError": "plait_slack.errors",
    "SlackError": "plait_slack.errors",
    "SlackLogHandler": "plait_slack.logs",
    "SlackMessage": "plait_slack.tasks",
    "SlackNotifier": "plait_slack.notifier",
    "slack_notifier": "plait_slack.notifier",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plait_slack' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
