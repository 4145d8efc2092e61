"""``SlackPoster``: one place that sends a message to Slack, by incoming webhook or bot token.

```python
from plait_slack.client import SlackPoster

SlackPoster(webhook_url="https://hooks.slack.com/services/T0/B0/XXXX").post("Nightly load done")
SlackPoster(token="xoxb-...", channel="#data").post("Nightly load done")
```

Both go through slack-sdk (``WebhookClient`` for webhooks, ``WebClient.chat_postMessage`` for a
token, which sends ``Authorization: Bearer <token>`` and a JSON body). Both retry with
slack-sdk's retry handlers: a refused or reset connection once (``ConnectionErrorRetryHandler``),
HTTP 500/503 once (``ServerErrorRetryHandler``), and HTTP 429 up to ``rate_limit_retries``
times, waiting as long as Slack's ``Retry-After`` header says (``RateLimitErrorRetryHandler``),
unless that is longer than ``max_retry_wait``: then the message is given up rather than hold a
flow run. Failures raise ``SlackError``, whose text has the token and URL masked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from plait.alerting import SecretMaskingFilter, mask_data, mask_text, register_secrets
from plait_slack.errors import SlackConfigError, SlackError

__all__ = ["SlackPoster", "retry_handlers"]

DEFAULT_BASE_URL = "https://slack.com/api/"


class SlackPoster:
    """Posts messages through an incoming webhook (``webhook_url``) or a bot token + ``channel``.

    Args:
        webhook_url: an incoming-webhook URL (the channel is the webhook's).
        token: a bot token (``xoxb-...``) with ``chat:write``; needs ``channel``.
        channel: the default channel for ``post`` with a token (``#name`` or an id).
        base_url: the Web API's base URL (default ``https://slack.com/api/``).
        timeout: seconds for one HTTP request.
        max_retry_wait: the longest ``Retry-After`` (seconds) honoured on HTTP 429.
        rate_limit_retries: how many times a 429 is retried.
        sleep: how waiting is done (``time.sleep``; tests inject a recorder).

    Raises:
        SlackConfigError: neither or both of ``webhook_url`` and ``token``, or a token without a channel.
    """

    def __init__(
        self,
        webhook_url: str | None = None,
        token: str | None = None,
        channel: str | None = None,
        base_url: str | None = None,
        timeout: float = 10.0,
        max_retry_wait: float = 30.0,
        rate_limit_retries: int = 2,
        sleep: Callable[[float], None] = time.sleep,
        owner: str = "SlackPoster",
    ) -> None:
        if bool(webhook_url) == bool(token):
            which = "both" if webhook_url else "neither"
            raise SlackConfigError(
                f"{owner}: give either webhook_url or token (with channel), got {which}; e.g. "
                "webhook_url=Secret('SLACK_WEBHOOK_URL').get() or token=Secret('SLACK_BOT_TOKEN').get(), "
                "channel='#alerts'"
            )
        if token and not channel:
            raise SlackConfigError(f"{owner}: a token needs a channel to post to, e.g. channel='#alerts'")
        register_secrets(webhook_url, token)
        _remember(webhook_url, token)
        self.webhook_url = webhook_url
        self.token = token
        self.channel = channel
        self.base_url = base_url or DEFAULT_BASE_URL
        self.timeout = timeout
        self.handlers = retry_handlers(max_retry_wait, rate_limit_retries, sleep)
        self._client: Any = None

    def __repr__(self) -> str:  # never show the secret
        how = "webhook" if self.webhook_url else f"token, channel={self.channel!r}"
        return f"<SlackPoster {how}>"

    def post(self, text: str, channel: str | None = None, blocks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Post ``text`` (Slack mrkdwn); returns Slack's answer (``{"ok": True, ...}``).

        Secrets are masked in ``text`` and ``blocks`` first (see ``plait.secrets``).

        Raises:
            SlackError: Slack answered with an error (``invalid_auth``, ``channel_not_found``,
                HTTP 4xx/5xx after retries) or could not be reached (refused, timed out).
        """
        # Nothing secret leaves for Slack: registered secrets, URL passwords and our own token
        # and webhook URL are masked in the text and the blocks, whoever made them.
        text = self._masked(text)
        if blocks:
            blocks = mask_data(blocks, (self.webhook_url, self.token))
        try:
            if self.webhook_url:
                return self._post_webhook(text, blocks)
            return self._post_api(text, channel or self.channel, blocks)
        except SlackError:
            raise
        except Exception as exc:
            raise SlackError(self._masked(f"Slack could not be reached: {type(exc).__name__}: {exc}")) from None

    def _post_webhook(self, text: str, blocks: list[dict[str, Any]] | None) -> dict[str, Any]:
        if self._client is None:
            from slack_sdk.webhook import WebhookClient

            self._client = WebhookClient(
                self.webhook_url, timeout=_seconds(self.timeout), retry_handlers=self.handlers, logger=sdk_logger()
            )
        response = self._client.send(text=text, blocks=blocks)
        if response.status_code != 200:
            raise SlackError(
                self._masked(f"Slack's incoming webhook answered HTTP {response.status_code}: {response.body!r}")
            )
        return {"ok": True, "body": response.body}

    def _post_api(self, text: str, channel: str | None, blocks: list[dict[str, Any]] | None) -> dict[str, Any]:
        from slack_sdk.errors import SlackApiError

        if self._client is None:
            from slack_sdk import WebClient

            self._client = WebClient(
                token=self.token,
                base_url=self.base_url,
                timeout=_seconds(self.timeout),
                retry_handlers=self.handlers,
                logger=sdk_logger(),
            )
        kwargs: dict[str, Any] = {"channel": channel, "text": text}
        if blocks:
            kwargs["blocks"] = blocks
        try:
            response = self._client.chat_postMessage(**kwargs)
        except SlackApiError as exc:
            data = getattr(exc.response, "data", None)
            error = data.get("error") if isinstance(data, dict) else None
            status = getattr(exc.response, "status_code", "?")
            what = f"{error} (HTTP {status})" if error else f"HTTP {status}"
            raise SlackError(self._masked(f"Slack chat.postMessage to {channel!r} failed: {what}")) from None
        return dict(response.data) if isinstance(response.data, dict) else {"ok": True}

    def _masked(self, text: str) -> str:
        return mask_text(text, (self.webhook_url, self.token))


def retry_handlers(
    max_retry_wait: float = 30.0, rate_limit_retries: int = 2, sleep: Callable[[float], None] = time.sleep
):
    """slack-sdk retry handlers: connection errors once, 500/503 once, 429 per ``Retry-After``."""
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )
    from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator

    backoff = BackoffRetryIntervalCalculator(backoff_factor=0.5)  # 0.5 s, then 1 s, with jitter

    class ConnectionRetry(ConnectionErrorRetryHandler):
        def prepare_for_next_attempt(self, *, state, request, response=None, error=None) -> None:  # type: ignore[no-untyped-def]
            state.next_attempt_requested = True
            sleep(self.interval_calculator.calculate_sleep_duration(state.current_attempt))
            state.increment_current_attempt()

    class ServerErrorRetry(ServerErrorRetryHandler):
        prepare_for_next_attempt = ConnectionRetry.prepare_for_next_attempt

    class RetryAfterRetry(RateLimitErrorRetryHandler):
        """slack-sdk's 429 handler, with a ceiling on the wait and an injectable sleep."""

        def _can_retry(self, *, state, request, response=None, error=None) -> bool:  # type: ignore[no-untyped-def]
            if not super()._can_retry(state=state, request=request, response=response, error=error):
                return False
            return _retry_after(response) <= max_retry_wait

        def prepare_for_next_attempt(self, *, state, request, response=None, error=None) -> None:  # type: ignore[no-untyped-def]
            state.next_attempt_requested = True
            sleep(_retry_after(response))
            state.increment_current_attempt()

    return [
        ConnectionRetry(max_retry_count=1, interval_calculator=backoff),
        ServerErrorRetry(max_retry_count=1, interval_calculator=backoff),
        RetryAfterRetry(max_retry_count=rate_limit_retries),
    ]


SDK_LOGGER = "plait.plugins.slack.sdk"
#: slack-sdk logs request URLs and headers at DEBUG: it masks every token and webhook URL we know
_masking = SecretMaskingFilter()
_remember = _masking.remember


def sdk_logger() -> logging.Logger:
    """The logger slack-sdk's clients get: ``plait.plugins.slack.sdk``, with secrets masked."""
    return _masking.install(logging.getLogger(SDK_LOGGER))


def _retry_after(response: Any) -> float:
    for key, values in (getattr(response, "headers", None) or {}).items():
        if key.lower() == "retry-after":
            value = values[0] if isinstance(values, (list, tuple)) else values
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return 1.0
    return 1.0


def _seconds(timeout: float) -> int:
    # slack-sdk types timeout as int but passes it straight to urllib, which takes a float
    return timeout  # type: ignore[return-value]
