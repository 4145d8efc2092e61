"""Local HTTP servers for tests (yours and ours); also a pytest plugin.

``RecordingServer`` is a real threaded HTTP server on 127.0.0.1 (a random free port) that
records every request and answers what the test scripts:

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

With plait-http installed, pytest has the fixtures ``recording_server`` and ``webhook_receiver``
(signing key ``"test-signing-key"``).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["VOLATILE_HEADERS", "RecordedRequest", "RecordingServer", "WebhookReceiver"]

VOLATILE_HEADERS = frozenset(
    {"host", "user-agent", "content-length", "connection", "accept-encoding", "accept", "x-plait-delivery"}
)


@dataclass
class RecordedRequest:
    """One request the server received (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int = 0

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def query(self) -> dict[str, list[str]]:
        from urllib.parse import parse_qs, urlsplit

        return parse_qs(urlsplit(self.path).query)

    def stable_headers(self) -> dict[str, str]:
        """Headers without the volatile ones (host, user-agent, length, delivery id...)."""
        return {k: v for k, v in self.headers.items() if k not in VOLATILE_HEADERS}


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] | None = None
    count: int = 1


class RecordingServer:
    """A scripted HTTP server on 127.0.0.1 (see the module docstring)."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._routes: dict[str, Answer] = {}
        self._queue: list[Answer] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._release = threading.Event()
        self._release.set()
        self._server: ThreadingHTTPServer | None = None

    # -- life cycle ---------------------------------------------------------------------------------

    def start(self) -> RecordingServer:
        self._server = _QuietServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="recording-server", daemon=True
        )
        thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> RecordingServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "the server is not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- scripting ------------------------------------------------------------------------------------

    def route(
        self,
        path: str,
        status: int = 200,
        json: Any = None,
        text: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer requests to ``path`` (without the query) with ``json`` or ``text``."""
        self._routes[path] = _answer(status, json, text, headers)

    def fail_next(
        self, status: int, text: str = "", headers: dict[str, str] | None = None, count: int = 1, json: Any = None
    ) -> None:
        """Answer the next ``count`` requests (any path) with ``status``."""
        answer = _answer(status, json, text, headers)
        answer.count = count
        with self._lock:
            self._queue.append(answer)

    def hold(self) -> None:
        """Hold every answer until ``release()``."""
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Block until ``count`` requests have arrived (at most ``timeout`` s); return them all."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.requests) >= count, timeout=timeout)
            return list(self.requests)

    # -- the server side ----------------------------------------------------------------------------

    def answer(self, request: RecordedRequest) -> Answer:
        with self._arrived:
            self.requests.append(request)
            self._arrived.notify_all()
            scripted = self._queue[0] if self._queue else None
            if scripted is not None:
                scripted.count -= 1
                if scripted.count <= 0:
                    self._queue.pop(0)
        self._release.wait()
        if scripted is not None:
            return scripted
        return self._routes.get(request.path.split("?", 1)[0]) or self.default_answer(request)

    def default_answer(self, request: RecordedRequest) -> Answer:
        return _answer(404, None, "not found", None)


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


def _answer(status: int, json_body: Any, text: str | None, headers: dict[str, str] | None) -> Answer:
    if json_body is not None:
        return Answer(status, json.dumps(json_body).encode(), {"Content-Type": "application/json", **(headers or {})})
    return Answer(status, (text or "").encode(), {"Content-Type": "text/plain; charset=utf-8", **(headers or {})})


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeouts in tests) is not an error of the server


def _make_handler(server: RecordingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = RecordedRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            answer = server.answer(request)
            request.answered = answer.status
            self.send_response(answer.status)
            for key, value in (answer.headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


# --- the pytest plugin ------------------------------------------------------------------------------

try:
    import pytest
except ImportError:
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def recording_server() -> Any:
        """A started ``RecordingServer`` for one test."""
        with RecordingServer() as server:
            yield server

    @pytest.fixture
    def webhook_receiver() -> Any:
        """A started ``WebhookReceiver`` with the signing key ``"test-signing-key"``."""
        with WebhookReceiver("test-signing-key") as server:
            yield server
