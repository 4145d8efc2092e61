"""One ``requests.Session`` per process (and retry policy), shared by threads.

``get_session(retry)`` returns the session for this process; a forked worker gets its own,
since sockets must not be shared across processes. Retries are urllib3's ``Retry`` mounted on
an ``HTTPAdapter``: connection errors (refused, reset, DNS) and the statuses in
``status_forcelist`` (default 500, 502, 503, 504) are retried with exponential back-off
(``backoff_factor * 2 ** (retry - 1)`` seconds, the first retry at once), honouring a
``Retry-After`` header. Only ``allowed_methods`` are retried on a status or a read error
(default: the idempotent methods; add ``"POST"`` when the server de-duplicates).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["RetryPolicy", "get_session"]

DEFAULT_STATUSES = (500, 502, 503, 504)
IDEMPOTENT = ("DELETE", "GET", "HEAD", "OPTIONS", "PUT", "TRACE")


@dataclass(frozen=True)
class RetryPolicy:
    """How requests are retried (see the module docstring)."""

    retries: int = 3
    backoff_factor: float = 0.5
    status_forcelist: tuple[int, ...] = DEFAULT_STATUSES
    allowed_methods: tuple[str, ...] = IDEMPOTENT

    def to_urllib3(self) -> Any:
        from urllib3.util.retry import Retry

        return Retry(
            total=self.retries,
            connect=self.retries,
            read=self.retries,
            status=self.retries,
            backoff_factor=self.backoff_factor,
            status_forcelist=self.status_forcelist,
            allowed_methods=frozenset(m.upper() for m in self.allowed_methods),
            raise_on_status=False,  # the last answer comes back; raise_for_status decides
            respect_retry_after_header=True,
        )


_sessions: dict[RetryPolicy, Any] = {}
_pid = 0
_lock = threading.Lock()


def get_session(policy: RetryPolicy | None = None) -> Any:
    """The process's ``requests.Session`` for ``policy`` (made on first use)."""
    global _pid
    policy = policy or RetryPolicy()
    pid = os.getpid()
    session = _sessions.get(policy) if _pid == pid else None
    if session is not None:
        return session
    with _lock:
        if _pid != pid:
            _sessions.clear()  # inherited from the parent: its sockets are not ours
            _pid = pid
        session = _sessions.get(policy)
        if session is None:
            import requests
            from requests.adapters import HTTPAdapter

            session = requests.Session()
            adapter = HTTPAdapter(max_retries=policy.to_urllib3(), pool_maxsize=32)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            _sessions[policy] = session
        return session
