"""``webhook_notifier``: alerts as a JSON document POSTed to any URL, optionally signed.

```python
from plait import Flow
from plait.secrets import Secret
from plait_http import webhook_notifier

alert = webhook_notifier(
    url=Secret("ALERT_WEBHOOK_URL").get(),
    signing_key=Secret("ALERT_WEBHOOK_KEY").get(),
    only_states=["Failed"],
)
with Flow("etl", state_handlers=[alert]) as flow:
    ...
```

Each alert is one ``POST`` with ``Content-Type: application/json`` and this document::

    {
      "event": "flow_run_summary",          # or "task_state_changed" / "flow_state_changed"
      "flow": "etl",
      "flow_run_id": "6f1c...",
      "task": "fetch",                      # the task (or the tasks in the summary), or null
      "state": "Failed",
      "old_state": "Running",
      "message": "Some reference tasks failed.",
      "time": "2026-11-24T10:00:00+00:00",
      "url": "https://plait.example.com/flow-run/6f1c...",   # with ui_url, else null
      "tasks": [{"task": "fetch", "state": "Failed", "count": 500,
                 "examples": [{"task_run": "fetch[0]", "message": "..."}]}],
      "suppressed_alerts": 0                # alerts dropped by the rate limit before this one
    }

Headers: ``X-Plait-Event`` (the ``event`` value), ``X-Plait-Delivery`` (a unique id per alert)
and, with a ``signing_key``, ``X-Plait-Signature-256: sha256=<hex>``: the HMAC-SHA256 of the
exact body bytes with the key. Verify it on the receiving side with ``verify_signature`` or::

    expected = "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    ok = hmac.compare_digest(expected, request.headers["X-Plait-Signature-256"])

When alerts are sent, de-duplicated and rate-limited is described in ``plait.alerting``:
by default one document per flow run, at its end. A delivery that fails (after retries of
connection errors and 5xx answers) is logged under ``plait.plugins.http`` and never changes a run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from plait.alerting import AlertEvent, Notifier, SecretMaskingFilter, mask_data, mask_text, register_secrets
from plait.states import State
from plait_http.errors import HTTPConfigError, WebhookError
from plait_http.session import RetryPolicy, get_session

__all__ = ["SIGNATURE_HEADER", "WebhookNotifier", "sign", "verify_signature", "webhook_notifier"]

SIGNATURE_HEADER = "X-Plait-Signature-256"


def sign(key: str | bytes, body: bytes) -> str:
    """The ``X-Plait-Signature-256`` value for ``body``: ``"sha256=" + HMAC-SHA256(key, body).hexdigest()``."""
    raw = key.encode() if isinstance(key, str) else key
    return "sha256=" + hmac.new(raw, body, hashlib.sha256).hexdigest()


def verify_signature(key: str | bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` (the ``X-Plait-Signature-256`` value) is ``body``'s signature with ``key``.

    ```python
    if not verify_signature(key, request.get_data(), request.headers.get("X-Plait-Signature-256")):
        abort(401)
    ```
    """
    if not header:
        return False
    return hmac.compare_digest(sign(key, body), header)


class WebhookNotifier(Notifier):
    """A notifier that POSTs alert documents to ``url`` (see the module docstring).

    Args:
        url: where to POST.
        signing_key: when set, each POST carries ``X-Plait-Signature-256``.
        headers: extra request headers (e.g. an ``Authorization`` the receiver wants).
        retries: retries of connection errors and 500/502/503/504 answers (POST included).
        backoff_factor: back-off between retries (see ``plait_http.session``).
        **options: ``only_states``, ``ignore_states``, ``flows``, ``tags``, ``ui_url``, ``timeout``,
            ``rate_limit``, ``rate_period``, ``immediate``, ``queue_size``, ``clock`` (see ``Notifier``).
    """

    plugin = "plait-http"
    logger_name = "plait.plugins.http"
    error_class = HTTPConfigError

    def __init__(
        self,
        url: str,
        signing_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        retries: int = 2,
        backoff_factor: float = 0.5,
        **options: Any,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            # the value may be a secret: say what is wrong with it without showing it
            shown = repr(url) if not isinstance(url, str) or not url else "a value without http:// or https://"
            raise HTTPConfigError(
                f"webhook_notifier: url must be an http:// or https:// URL, got {shown}; "
                "e.g. url=Secret('ALERT_WEBHOOK_URL').get()"
            )
        super().__init__(**options)
        path = url.split("://", 1)[1].partition("/")[2]
        self._url_path = "/" + path if len(path) >= 8 else None  # the secret part of most webhook URLs
        register_secrets(url, signing_key, self._url_path)
        _remember(url, signing_key, self._url_path)
        guard_urllib3_logs()
        self.url = url
        self.signing_key = signing_key
        self.headers = dict(headers or {})
        self.policy = RetryPolicy(int(retries), float(backoff_factor), allowed_methods=("POST",))

    def __repr__(self) -> str:
        return f"<WebhookNotifier signed={self.signing_key is not None}>"

    def deliver(self, event: AlertEvent) -> None:
        self.post(event.to_dict())

    def post(self, document: dict[str, Any]) -> None:
        """POST ``document`` now (in the caller's thread); raises ``WebhookError`` on failure.

        Every string in ``document`` is masked first (``plait.alerting.mask_data``).
        """
        import requests

        # masked as data, before it becomes JSON text (escaping could hide a secret from a text search)
        document = mask_data(document, self.secrets())
        body = json.dumps(document, separators=(",", ":"), sort_keys=True, default=str).encode()
        headers = {
            **self.headers,
            "Content-Type": "application/json",
            "X-Plait-Event": str(document.get("event", "alert")),
            "X-Plait-Delivery": uuid.uuid4().hex,
        }
        if self.signing_key:
            headers[SIGNATURE_HEADER] = sign(self.signing_key, body)
        try:
            answer = get_session(self.policy).post(self.url, data=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            # requests' messages quote the URL: give the kind of failure only
            raise WebhookError(f"webhook POST failed: {type(exc).__name__} ({_reason(exc)})") from None
        if answer.status_code >= 300:
            raise WebhookError(
                self._masked(f"webhook answered HTTP {answer.status_code}: {answer.text[:200]}"),
                status=answer.status_code,
            )

    def secrets(self) -> tuple[str | None, ...]:
        return (self.url, self.signing_key, self._url_path)

    def _masked(self, text: str) -> str:
        return mask_text(text, self.secrets())


def webhook_notifier(
    obj: Any = None,
    old_state: State | None = None,
    new_state: State | None = None,
    *,
    url: str | None = None,
    signing_key: str | None = None,
    only_states: Iterable[type[State] | str] | None = None,
    ignore_states: Iterable[type[State] | str] | None = None,
    **options: Any,
) -> Any:
    """A webhook alert state handler; use it as it is or call it with options to make one.

    As it is (``state_handlers=[webhook_notifier]``) it uses ``[plugins.http.webhook]`` from the
    config. Called with keyword options it returns a new ``WebhookNotifier``; without ``url`` the
    URL, and every option not given, come from ``[plugins.http.webhook]``.

    Raises:
        HTTPConfigError: no URL (neither argument nor config), a bad state name.
    """
    from plait_http import plugin

    if obj is not None and new_state is not None:
        return plugin.alerts.state_handler(obj, old_state, new_state)
    if obj is not None:
        raise HTTPConfigError(
            "webhook_notifier takes keyword options (webhook_notifier(url=..., only_states=[Failed])) or is "
            f"used as a state handler as it is; got a positional argument {obj!r}"
        )
    settings = plugin.webhook_settings() if not url else {}
    given = {"url": url, "signing_key": signing_key, "only_states": only_states, "ignore_states": ignore_states}
    merged = {**settings, **{k: v for k, v in {**given, **options}.items() if v is not None}}
    if not merged.get("url"):
        raise HTTPConfigError(
            "webhook_notifier: no URL: pass url=..., or set url_secret (or url) under [plugins.http.webhook] "
            "in the Plait config"
        )
    return WebhookNotifier(**merged)


#: urllib3 logs the request path of every retry at WARNING: it masks webhook URLs and keys there
_masking = SecretMaskingFilter()
_remember = _masking.remember


def guard_urllib3_logs() -> None:
    """Add the masking filter to urllib3's loggers (once)."""
    for name in ("urllib3.connectionpool", "urllib3.util.retry"):
        _masking.install(logging.getLogger(name))


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for marker in (
        "Connection refused",
        "Name or service not known",
        "timed out",
        "Connection reset",
        "Max retries exceeded",
    ):
        if marker in text:
            return marker
    return "see the receiver's logs"
