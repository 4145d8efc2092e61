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
parsed ``json``), in arrival order.

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
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["VOLATILE_HEADERS", "FakeSlack", "RecordedRequest"]

#: Headers that change between runs or machines; ``RecordedRequest.stable_headers`` drops them.
VOLATILE_HEADERS = frozenset({"host", "user-agent", "content-length", "connection", "accept-encoding"})


@dataclass
class RecordedRequest:
    """One request the fake server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any = None
    answered: int = 0

    def stable_headers(self) -> dict[str, str]:
        """Headers (lower-cased names) without the volatile ones (host, user-agent, length...)."""
        return {k: v for k, v in self.headers.items() if k not in VOLATILE_HEADERS}


@dataclass
class _Fault:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    count: int = 1


class FakeSlack:
    """A fake Slack API and incoming-webhook server on 127.0.0.1 (see the module docstring).

    Args:
        tokens: bot tokens that authenticate (default: one made up, in ``token``).
        webhook_secret: the last part of the one valid webhook URL (default: made up).
    """

    def __init__(self, tokens: list[str] | None = None, webhook_secret: str | None = None) -> None:
        self.token = tokens[0] if tokens else f"xoxb-test-{secrets.token_hex(8)}"
        self.tokens = set(tokens or [self.token])
        self.webhook_path = f"/services/T0TEST/B0TEST/{webhook_secret or secrets.token_hex(12)}"
        self.requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._release = threading.Event()
        self._release.set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        handler = _make_handler(self)
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-slack", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses ------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "FakeSlack is not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """For ``WebClient(base_url=...)`` / ``base_url=`` options: ``http://127.0.0.1:<port>/api/``."""
        return f"{self.url}/api/"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}{self.webhook_path}"

    # -- scripting ------------------------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        body: str | dict[str, Any] = "",
        headers: dict[str, str] | None = None,
        count: int = 1,
    ) -> None:
        """Answer the next ``count`` requests with ``status``/``body``/``headers``."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body.encode()
        with self._lock:
            self._faults.append(_Fault(status, data, dict(headers or {}), count))

    def hold(self) -> None:
        """Hold every request's answer until ``release()``."""
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    # -- what arrived ---------------------------------------------------------------------------------

    def texts(self) -> list[str]:
        """The ``text`` of every message request that was answered with success, in order."""
        with self._lock:
            return [r.json.get("text") for r in self.requests if r.answered == 200 and isinstance(r.json, dict)]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Block until ``count`` requests have arrived (at most ``timeout`` seconds); return them all."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.requests) >= count, timeout=timeout)
            return list(self.requests)

    # -- the server side -----------------------------------------------------------------------------

    def _answer(self, request: RecordedRequest) -> tuple[int, bytes, dict[str, str]]:
        with self._arrived:
            self.requests.append(request)
            self._arrived.notify_all()
            fault = self._faults[0] if self._faults else None
            if fault is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.pop(0)
        self._release.wait()
        if fault is not None:
            return fault.status, fault.body, fault.headers
        if request.path == "/api/chat.postMessage":
            return self._post_message(request)
        if request.path.startswith("/services/"):
            if request.path != self.webhook_path:
                return 404, b"no_service", {"Content-Type": "text/html"}
            if not isinstance(request.json, dict) or not (request.json.get("text") or request.json.get("blocks")):
                return 400, b"no_text", {"Content-Type": "text/html"}
            return 200, b"ok", {"Content-Type": "text/html"}
        return 404, b"not found", {"Content-Type": "text/plain"}

    def _post_message(self, request: RecordedRequest) -> tuple[int, bytes, dict[str, str]]:
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
        return 200, json.dumps(answer).encode(), {"Content-Type": "application/json; charset=utf-8"}


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeouts in tests) is not an error of the fake


def _make_handler(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                parsed = None
            headers = {k.lower(): v for k, v in self.headers.items()}
            request = RecordedRequest(self.command, self.path, headers, body, parsed)
            status, data, extra = fake._answer(request)
            request.answered = status
            self.send_response(status)
            for key, value in extra.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

    return Handler


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
