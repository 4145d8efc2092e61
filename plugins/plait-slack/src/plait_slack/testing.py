"""A local stand-in for Slack, for tests (yours and ours); also a pytest plugin.

``FakeSlack`` is a real HTTP server on 127.0.0.1 (a random free port) that speaks the parts of
Slack that plait-slack uses, so the real slack-sdk client talks to it:

- ``POST /api/chat.postMessage``: checks ``Authorization: Bearer <token>`` against ``tokens``
  and answers ``{"ok": true, "channel": ..., "ts": ...}``, or ``{"ok": false, "error":
  "invalid_auth"}`` (``not_authed`` without a token, ``channel_not_found`` without a channel),
  with HTTP 200 as Slack does.
- ``POST /services/<T>/<B>/<secret>``: an incoming webhook; answers ``ok`` for the hooks in
  ``webhooks`` and ``no_service`` (HTTP 404) for others.
- ``fail_next(status, body, headers, count)``: the next ``count`` requests get that answer
  instead (e.g. 429 with ``Retry-After``, or 500).
- ``hold()``: requests wait until ``release()`` (for timeout tests, without sleeping).

Every request is recorded in ``requests`` (``RecordedRequest``: method, path, headers, body,
parsed ``json``), in arrival order. ``FakeSlack`` is a ``plait.testing.RecordingServer``, so
``route()``, ``wait_for()`` and the rest work too.

```python
from plait_slack.testing import FakeSlack

with FakeSlack() as slack:
    SlackPoster(webhook_url=slack.webhook_url).post("hi")
    assert slack.texts() == ["hi"]
```

With plait-slack installed, pytest has a ``fake_slack`` fixture (one server per test).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from plait.testing import VOLATILE_HEADERS, Answer, RecordedRequest, RecordingServer

__all__ = ["VOLATILE_HEADERS", "FakeSlack", "RecordedRequest"]


class FakeSlack(RecordingServer):
    """A fake Slack API and incoming-webhook server on 127.0.0.1 (see the module docstring).

    A ``plait.testing.RecordingServer`` whose answers to unscripted requests are Slack's.

    Args:
        tokens: bot tokens that authenticate (default: one made up, in ``token``).
        webhook_secret: the last part of the one valid webhook URL (default: made up).
    """

    thread_name = "fake-slack"

    def __init__(self, tokens: list[str] | None = None, webhook_secret: str | None = None) -> None:
        super().__init__()
        self.token = tokens[0] if tokens else f"xoxb-test-{secrets.token_hex(8)}"
        self.tokens = set(tokens or [self.token])
        self.webhook_path = f"/services/T0TEST/B0TEST/{webhook_secret or secrets.token_hex(12)}"

    # -- addresses ------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """For ``WebClient(base_url=...)`` / ``base_url=`` options: ``http://127.0.0.1:<port>/api/``."""
        return f"{self.url}/api/"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}{self.webhook_path}"

    # -- scripting ------------------------------------------------------------------------------------

    def fail_next(  # type: ignore[override]
        self,
        status: int,
        body: str | dict[str, Any] = "",
        headers: dict[str, str] | None = None,
        count: int = 1,
    ) -> None:
        """Answer the next ``count`` requests with ``status``/``body``/``headers``."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body.encode()
        self.answer_next(Answer(status, data, dict(headers or {}), count))

    # -- what arrived ---------------------------------------------------------------------------------

    def texts(self) -> list[str]:
        """The ``text`` of every message request that was answered with success, in order."""
        with self._lock:
            requests = [(r.answered, r.json) for r in self.requests]
        return [body.get("text") for answered, body in requests if answered == 200 and isinstance(body, dict)]

    # -- the server side -----------------------------------------------------------------------------

    def default_answer(self, request: RecordedRequest) -> Answer:
        if request.path == "/api/chat.postMessage":
            return self._post_message(request)
        if request.path.startswith("/services/"):
            body = request.json
            if request.path != self.webhook_path:
                return Answer(404, b"no_service", {"Content-Type": "text/html"})
            if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
                return Answer(400, b"no_text", {"Content-Type": "text/html"})
            return Answer(200, b"ok", {"Content-Type": "text/html"})
        return Answer(404, b"not found", {"Content-Type": "text/plain"})

    def _post_message(self, request: RecordedRequest) -> Answer:
        auth = request.headers.get("authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        body = request.json if isinstance(request.json, dict) else {}
        if token is None:
            answer: dict[str, Any] = {"ok": False, "error": "not_authed"}
        elif token not in self.tokens:
            answer = {"ok": False, "error": "invalid_auth"}
        elif not body.get("channel"):
            answer = {"ok": False, "error": "channel_not_found"}
        elif not (body.get("text") or body.get("blocks")):
            answer = {"ok": False, "error": "no_text"}
        else:
            answer = {
                "ok": True,
                "channel": body["channel"],
                "ts": f"1700000000.{len(self.requests):06d}",
                "message": {"type": "message", "text": body.get("text", "")},
            }
        return Answer(200, json.dumps(answer).encode(), {"Content-Type": "application/json; charset=utf-8"})


# --- the pytest plugin ------------------------------------------------------------------------------

try:
    import pytest
except ImportError:  # FakeSlack works without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def fake_slack() -> Any:
        """A started ``FakeSlack`` for one test."""
        with FakeSlack() as server:
            yield server
