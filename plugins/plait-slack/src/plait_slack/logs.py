"""``SlackLogHandler``: log records at or above a level, posted to Slack in batches.

```python
import logging
from plait_slack import SlackLogHandler

handler = SlackLogHandler(level="ERROR", webhook_url=url, batch_size=20)
logging.getLogger("plait").addHandler(handler)
```

With ``log_level`` under ``[plugins.slack]`` the plugin registers one for you
(``plait_register_log_handlers``), on the ``plait`` logger.

Records are formatted one line each and buffered; a batch is queued for sending when
``batch_size`` records are waiting, when a flow run ends (the plugin's flow hook flushes every
``SlackLogHandler``), on ``flush()`` and on ``close()`` (``logging.shutdown`` at exit). Sending
happens in a background thread, so logging never waits on Slack; each flush waits at most
``timeout`` seconds, and at a run's end and at exit that time is shared with the alerts.
Records of plait-slack's own logger (``plait.plugins.slack``) are skipped so a failing Slack
cannot feed itself.
"""

from __future__ import annotations

import logging
import threading
import weakref

from plait.alerting import BackgroundSender, mask_text, run_end_wait
from plait_slack.client import SlackPoster

__all__ = ["SlackLogHandler", "flush_log_handlers"]

_OWN_LOGGER = "plait.plugins.slack"
_MAX_TEXT = 3500  # Slack truncates long messages; keep each post well under its limit


class SlackLogHandler(logging.Handler):
    """A ``logging.Handler`` that posts records to Slack in batches.

    Args:
        level: the lowest level sent (name or number; default ``ERROR``).
        webhook_url / token / channel / base_url: where to post (see ``SlackPoster``).
        batch_size: records per message.
        timeout: seconds for one request, and the most ``flush()`` waits.
        queue_size: batches that may wait for the sender; more are dropped.
    """

    def __init__(
        self,
        level: int | str = logging.ERROR,
        webhook_url: str | None = None,
        token: str | None = None,
        channel: str | None = None,
        base_url: str | None = None,
        batch_size: int = 20,
        timeout: float = 10.0,
        queue_size: int = 20,
    ) -> None:
        super().__init__(level)
        self.poster = SlackPoster(
            webhook_url,
            token,
            channel,
            base_url=base_url,
            timeout=timeout,
            max_retry_wait=timeout,
            owner="SlackLogHandler",
        )
        self.batch_size = max(1, int(batch_size))
        self.timeout = timeout
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self._buffer: list[str] = []
        self._buffer_lock = threading.Lock()
        self.sender = BackgroundSender(self._send, "plait-slack-logs", queue_size, self._on_error, timeout)
        _handlers.add(self)

    def __repr__(self) -> str:
        return f"<SlackLogHandler {logging.getLevelName(self.level)} {self.poster!r}>"

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(_OWN_LOGGER):
            return False
        return bool(super().filter(record))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        with self._buffer_lock:
            self._buffer.append(line)
            full = len(self._buffer) >= self.batch_size
            batch = self._take() if full else None
        if batch:
            self.sender.submit(batch)

    def flush(self) -> None:
        """Queue what is buffered and wait (at most ``timeout``) until it is sent.

        At a flow run's end the wait shares the run end's ``timeout`` with the alerts
        (``plait.alerting.run_end_wait``); at exit, with the other senders.
        """
        with self._buffer_lock:
            batch = self._take()
        if batch:
            self.sender.submit(batch)
        if self.sender.pending():
            self.sender.flush(run_end_wait(self.timeout))

    def close(self) -> None:
        try:
            self.flush()
        finally:
            super().close()

    def _take(self) -> list[str]:
        batch, self._buffer = self._buffer, []
        return batch

    def _send(self, lines: list[str]) -> None:
        text = "\n".join(lines)
        if len(text) > _MAX_TEXT:
            text = text[: _MAX_TEXT - 20] + "\n… (truncated)"
        self.poster.post(f"```\n{mask_text(text, ())}\n```")

    def _on_error(self, exc: BaseException) -> None:
        text = mask_text(f"{type(exc).__name__}: {exc}", (self.poster.webhook_url, self.poster.token))
        logging.getLogger(_OWN_LOGGER).error("plait-slack: failed sending log records to Slack: %s", text)


_handlers: weakref.WeakSet[SlackLogHandler] = weakref.WeakSet()


def flush_log_handlers() -> None:
    """Flush every live ``SlackLogHandler`` (the plugin calls it when a flow run ends)."""
    for handler in list(_handlers):
        handler.flush()
