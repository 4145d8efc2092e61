"""``HTTPRequest``: call an HTTP API from a flow.

```python
from plait import Flow
from plait_http import HTTPRequest

get_user = HTTPRequest("https://api.example.com/users/{user_id}", timeout=10, retries=3)
create = HTTPRequest("https://api.example.com/users", method="POST", name="create")

with Flow("users") as flow:
    user = get_user(params={"expand": "teams"}, url_fields={"user_id": 42})
    create(json={"name": "Ada"})
```

The answer is parsed as JSON when its ``Content-Type`` says JSON (or ``response="json"``),
else returned as text (``response="text"``; ``"bytes"`` for the raw body). A status of 400 or
more fails the task with ``HTTPRequestError`` (``raise_for_status=False`` returns the body
instead). Connection errors and 5xx answers are retried with back-off (see
``plait_http.session``); every task shares one ``requests.Session`` per process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from plait.tasks import Task
from plait_http.errors import HTTPConfigError, HTTPRequestError
from plait_http.session import DEFAULT_STATUSES, IDEMPOTENT, RetryPolicy, get_session

__all__ = ["HTTPRequest", "request"]

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_RESPONSES = ("auto", "json", "text", "bytes")


class HTTPRequest(Task):
    """Makes one HTTP request and returns the answer (JSON, text or bytes).

    Args:
        url: the URL; ``{name}`` placeholders are filled from ``run(url_fields=...)``.
        method: ``GET``, ``POST``, ``PUT``, ``PATCH``, ``DELETE``, ``HEAD`` or ``OPTIONS``.
        params: query parameters.
        json: a JSON body (``data`` for a raw or form body).
        data: a raw body (``bytes``/``str``) or form fields (a dict).
        headers: request headers.
        auth: ``(user, password)`` for basic auth, or any ``requests`` auth object.
        timeout: seconds to connect and to wait for the answer (or a ``(connect, read)`` pair).
        retries: how many times a connection error or a ``retry_statuses`` answer is retried.
        backoff_factor: back-off between retries: ``backoff_factor * 2 ** (retry - 1)`` seconds.
        retry_statuses: statuses that are retried (default 500, 502, 503, 504).
        retry_methods: methods retried on a status or read error (default the idempotent ones;
            add ``"POST"`` for an API that de-duplicates).
        raise_for_status: fail on a status of 400 or more (default ``True``).
        response: ``"auto"`` (JSON if the answer says so, else text), ``"json"``, ``"text"`` or ``"bytes"``.
        task_timeout: the task's own ``timeout`` (the whole run, retries included); ``timeout``
            above is per HTTP request.
        **kwargs: the usual ``Task`` options (``name``, ``max_retries``, ``tags``...).

    Every request option can also be given to ``run()`` (calling the task in a flow), which wins.
    """

    #: ``flow.serialize()`` withholds ``auth`` given when the task is called in a flow (the
    #: credential-looking keys of ``headers``, ``params``, ``json`` and ``data`` are withheld too).
    secret_inputs = ("auth",)

    def __init__(
        self,
        url: str | None = None,
        method: str = "GET",
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
        timeout: float | tuple[float, float] = 30.0,
        retries: int = 3,
        backoff_factor: float = 0.5,
        retry_statuses: Iterable[int] = DEFAULT_STATUSES,
        retry_methods: Iterable[str] = IDEMPOTENT,
        raise_for_status: bool = True,
        response: str = "auto",
        task_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("name", "HTTPRequest")
        super().__init__(timeout=task_timeout, **kwargs)
        self.url = url
        self.method = _check_method(self.name, method)
        self.params = params
        self.json = json
        self.data = data
        self.headers = dict(headers or {})
        self.auth = auth
        self.request_timeout = _check_timeout(self.name, timeout)
        if not isinstance(retries, int) or retries < 0:
            raise HTTPConfigError(f"Task {self.name!r}: retries must be an int >= 0, got {retries!r}")
        self.policy = RetryPolicy(
            retries,
            float(backoff_factor),
            tuple(int(s) for s in retry_statuses),
            tuple(str(m).upper() for m in retry_methods),
        )
        self.raise_for_status = raise_for_status
        if response not in _RESPONSES:
            raise HTTPConfigError(
                f"Task {self.name!r}: response must be one of {', '.join(_RESPONSES)}, got {response!r}"
            )
        self.response = response

    def run(  # type: ignore[override]
        self,
        url: str | None = None,
        method: str | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
        url_fields: Mapping[str, Any] | None = None,
    ) -> Any:
        """Make the request; arguments given here win over the task's own."""
        target = url or self.url
        if not target:
            raise HTTPConfigError(f"Task {self.name!r}: no URL; give HTTPRequest(url=...) or call it with url=...")
        if url_fields:
            try:
                target = target.format(**url_fields)
            except (KeyError, IndexError) as exc:
                raise HTTPConfigError(
                    f"Task {self.name!r}: URL {target!r} has a placeholder {exc} that url_fields does not fill"
                ) from None
        return request(
            _check_method(self.name, method) if method else self.method,
            target,
            params=params if params is not None else self.params,
            json=json if json is not None else self.json,
            data=data if data is not None else self.data,
            headers={**self.headers, **(headers or {})},
            auth=auth if auth is not None else self.auth,
            timeout=self.request_timeout,
            policy=self.policy,
            raise_for_status=self.raise_for_status,
            response=self.response,
        )


def request(
    method: str,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    data: Any = None,
    headers: Mapping[str, str] | None = None,
    auth: Any = None,
    timeout: float | tuple[float, float] = 30.0,
    policy: RetryPolicy | None = None,
    raise_for_status: bool = True,
    response: str = "auto",
) -> Any:
    """Make one request through the process's shared session (what ``HTTPRequest`` does).

    Raises:
        HTTPRequestError: no connection, a timeout, too many retries, or (with
            ``raise_for_status``) a status of 400 or more.
    """
    import requests

    session = get_session(policy)
    try:
        answer = session.request(
            method,
            url,
            params=params,
            json=json,
            data=data,
            headers=dict(headers or {}),
            auth=tuple(auth) if isinstance(auth, list) else auth,
            timeout=timeout,
        )
    except requests.Timeout as exc:
        raise HTTPRequestError(_mask(f"{method} {_where(url)} timed out after {timeout}s: {exc}")) from None
    except requests.ConnectionError as exc:
        tries = (policy or RetryPolicy()).retries + 1
        raise HTTPRequestError(
            _mask(f"{method} {_where(url)} could not connect ({tries} attempt(s)): {_reason(exc)}")
        ) from None
    except requests.RequestException as exc:
        raise HTTPRequestError(_mask(f"{method} {_where(url)} failed: {exc}")) from None
    if raise_for_status and answer.status_code >= 400:
        body = answer.text[:500]
        raise HTTPRequestError(
            _mask(f"{method} {_where(url)} answered HTTP {answer.status_code} {answer.reason}: {body}"),
            status=answer.status_code,
            body=_mask(body),
        )
    return _read(answer, response)


def _read(answer: Any, response: str) -> Any:
    if response == "bytes":
        return answer.content
    if response == "text":
        return answer.text
    if response == "json" or "json" in answer.headers.get("Content-Type", "").lower():
        if not answer.content:
            return None
        try:
            return answer.json()
        except ValueError as exc:
            if response == "json":
                raise HTTPRequestError(f"The answer is not JSON ({exc}): {answer.text[:200]!r}") from None
            return answer.text
    return answer.text


def _check_method(owner: str, method: str) -> str:
    upper = str(method).upper()
    if upper not in _METHODS:
        raise HTTPConfigError(f"Task {owner!r}: method {method!r} is not one of {', '.join(sorted(_METHODS))}")
    return upper


def _check_timeout(owner: str, timeout: Any) -> Any:
    ok = isinstance(timeout, (int, float)) and timeout > 0
    ok = ok or (isinstance(timeout, tuple) and len(timeout) == 2 and all(t > 0 for t in timeout))
    if not ok:
        raise HTTPConfigError(f"Task {owner!r}: timeout must be seconds > 0 or a (connect, read) pair, got {timeout!r}")
    return timeout


def _where(url: str) -> str:
    # the query string often carries keys; the path is enough to say where
    return url.split("?", 1)[0]


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "Connection reset"):
        if marker in text:
            return marker
    return type(exc).__name__


def _mask(text: str) -> str:
    from plait.secrets import mask

    return mask(text)
