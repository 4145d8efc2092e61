"""plait-http's exceptions (all are ``plait.errors.PlaitError``)."""

from __future__ import annotations

from plait.errors import PlaitError

__all__ = ["HTTPConfigError", "HTTPRequestError", "WebhookError"]


class HTTPConfigError(PlaitError, ValueError):
    """An HTTP task or webhook notifier was set up wrongly (no URL, a bad method or state name...)."""


class HTTPRequestError(PlaitError, RuntimeError):
    """A request failed: it could not connect, timed out, or got an error status.

    ``status`` is the HTTP status (``None`` when there was no answer) and ``body`` the start of
    the answer's text. Registered secrets (``plait.secrets``) are masked in the message.
    """

    def __init__(self, message: str, status: int | None = None, body: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class WebhookError(HTTPRequestError):
    """A webhook alert could not be delivered (the notifiers log it; they never raise it into a run)."""
