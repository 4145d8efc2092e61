"""Local HTTP servers for tests (yours and ours); also a pytest plugin.

``RecordingServer`` (the core's ``plait.testing.RecordingServer``, re-exported) is a real
threaded HTTP server on 127.0.0.1 (a random free port) that records every request and answers
what the test scripts:

```python
from plait_http.testing import RecordingServer

with RecordingServer() as server:
    server.route("/users/1", json={"id": 1})                  # a fixed answer for a path
    server.fail_next(503, count=2)                           # the next two requests get 503
    HTTPRequest(server.url + "/users/1", backoff_factor=0).run()
    assert [r.answered for r in server.requests] == [503, 503, 200]
```

``hold()`` makes answers wait until ``release()`` (timeouts without sleeping).
``WebhookReceiver(signing_key)`` is a ``RecordingServer`` for webhook alerts: it answers 204,
checks ``X-Plait-Signature-256`` of each request and keeps ``documents`` (the parsed JSON) and
``signatures_ok``.

With plait-http installed, pytest has the fixture ``webhook_receiver`` (signing key
``"test-signing-key"``); ``recording_server`` comes with Plait itself.
"""

from __future__ import annotations

from typing import Any

from plait.testing import VOLATILE_HEADERS, Answer, RecordedRequest, RecordingServer

__all__ = ["VOLATILE_HEADERS", "Answer", "RecordedRequest", "RecordingServer", "WebhookReceiver"]


class WebhookReceiver(RecordingServer):
    """A webhook endpoint (any path) that answers 204 and checks each request's signature."""

    def __init__(self, signing_key: str | None = None) -> None:
        super().__init__()
        self.signing_key = signing_key

    @property
    def documents(self) -> list[Any]:
        """The JSON documents received, in order."""
        return [r.json for r in self.requests]

    @property
    def signatures_ok(self) -> list[bool]:
        """For each request, whether ``X-Plait-Signature-256`` verifies with ``signing_key``."""
        from plait_http.webhook import verify_signature

        assert self.signing_key, "WebhookReceiver has no signing_key"
        return [
            verify_signature(self.signing_key, r.body, r.headers.get("x-plait-signature-256")) for r in self.requests
        ]

    def default_answer(self, request: RecordedRequest) -> Answer:
        return Answer(204, b"", None)


# --- the pytest plugin ------------------------------------------------------------------------------

try:
    import pytest
except ImportError:
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def webhook_receiver() -> Any:
        """A started ``WebhookReceiver`` with the signing key ``"test-signing-key"``."""
        with WebhookReceiver("test-signing-key") as server:
            yield server
