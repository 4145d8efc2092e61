"""plait-slack's exceptions (both are ``plait.errors.PlaitError``)."""

from __future__ import annotations

from plait.errors import PlaitError

__all__ = ["SlackConfigError", "SlackError"]


class SlackConfigError(PlaitError, ValueError):
    """A Slack notifier, task or log handler was set up wrongly (no destination, a bad state name...)."""


class SlackError(PlaitError, RuntimeError):
    """Slack refused or could not take a message; the text never contains a token or webhook URL."""
