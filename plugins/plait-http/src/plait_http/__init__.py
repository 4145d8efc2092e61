"""plait-http: an HTTP request task and generic webhook alerts for Plait flows.

```python
from plait_http import HTTPRequest, webhook_notifier, verify_signature
```

- ``HTTPRequest``: a task that calls an HTTP API (retries with back-off, timeouts, JSON or text).
- ``webhook_notifier``: a state handler (as it is, or ``webhook_notifier(url=..., ...)``) that
  POSTs a JSON document of the state change, optionally HMAC-signed; with
  ``[plugins.http.webhook]`` configured, every flow alerts through the plugin's hooks.
- ``verify_signature``: check ``X-Plait-Signature-256`` on the receiving side.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "HTTPConfigError",
    "HTTPRequest",
    "HTTPRequestError",
    "WebhookError",
    "WebhookNotifier",
    "sign",
    "verify_signature",
    "webhook_notifier",
]

_LAZY = {
    "HTTPConfigError": "plait_http.errors",
    "HTTPRequestError": "plait_http.errors",
    "WebhookError": "plait_http.errors",
    "HTTPRequest": "plait_http.tasks",
    "WebhookNotifier": "plait_http.webhook",
    "sign": "plait_http.webhook",
    "verify_signature": "plait_http.webhook",
    "webhook_notifier": "plait_http.webhook",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plait_http' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
