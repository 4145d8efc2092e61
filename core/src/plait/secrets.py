"""Secrets: values read from the environment or the config's ``[secrets]`` table, never logged.

```py
from plait.secrets import Secret

url = Secret("SLACK_WEBHOOK_URL").get()   # $SLACK_WEBHOOK_URL, else [secrets] SLACK_WEBHOOK_URL
```

Every value a ``Secret`` returns is remembered for masking: ``SecretsFilter`` (on Plait's own
log handlers and on handlers plugins register) replaces it with ``********`` in log messages,
their arguments, exception text and extra fields, and Plait's own error messages mask it too.
Add ``SecretsFilter()`` to your own handlers to get the same. Values shorter than 4
characters are not masked (masking ``"1"`` everywhere would garble every log line). The
password of any URL (``postgresql://bob:PASSWORD@db/sales``) is masked too, registered or not.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import Any

from plait.errors import SecretNotFoundError

__all__ = ["MASK", "Secret", "SecretsFilter", "mask", "register_secret"]

MASK = "********"

# Values shorter than this are not masked: replacing "1" or "no" everywhere would garble logs.
_MIN_LENGTH = 4
_values: list[str] = []  # longest first, so a value containing another is masked whole
_lock = threading.Lock()


class Secret:
    """A named secret, read from the environment variable of that name or ``[secrets]`` in the config.

    Args:
        name: the secret's name, e.g. ``"SLACK_WEBHOOK_URL"``.

    Example::

        token = Secret("GITHUB_TOKEN").get()
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"Secret name must be a non-empty string, got {name!r}")
        self.name = name

    def get(self) -> str:
        """The secret's value (registered for masking).

        Raises:
            SecretNotFoundError: neither the environment variable nor ``[secrets]`` has it; the
                message names the secret (never a value) and where to set it.
        """
        value = os.environ.get(self.name)
        if value is None:
            from plait.config import config_path, get_config

            config = get_config()
            value = config.section("secrets").get(self.name)
            if value is None:
                raise SecretNotFoundError(
                    f"Secret {self.name!r} is not set: set the environment variable {self.name} "
                    f'or add {self.name} = "..." under [secrets] in {config.source or config_path()}'
                )
            value = str(value)
        register_secret(value)
        return value

    def __repr__(self) -> str:
        return f"Secret({self.name!r})"


def register_secret(value: str) -> None:
    """Mask ``value`` in Plait's logs and error messages from now on."""
    if not isinstance(value, str) or len(value) < _MIN_LENGTH:
        return
    with _lock:
        if value not in _values:
            _values.append(value)
            _values.sort(key=len, reverse=True)


def mask(text: str) -> str:
    """``text`` with every registered secret value, and the password of every URL, as ``********``.

    ``postgresql://bob:pw@db/sales`` becomes ``postgresql://bob:********@db/sales`` even when
    nobody registered ``pw``: connection URLs travel as parameters, results and exception
    text, and their passwords are secrets wherever they show up.
    """
    if not isinstance(text, str):
        return text
    for value in _values:
        if value in text:
            text = text.replace(value, MASK)
    if "://" in text and "@" in text:
        text = _URL_PASSWORD.sub(_mask_url_password, text)
    return text


# scheme://user:password@ -- the password ends at the last "@" before the host part.
_URL_PASSWORD = re.compile(r"\b([a-zA-Z][\w+.-]*://[^:/@\s'\"]*:)([^/\s'\"]*)(@)")


def _mask_url_password(match: re.Match[str]) -> str:
    if not match.group(2).strip("*"):  # already masked (ours, or SQLAlchemy's "***")
        return match.group(0)
    return match.group(1) + MASK + match.group(3)


_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class SecretsFilter(logging.Filter):
    """A handler filter that masks registered secrets and URL passwords in a record.

    It renders the message with its arguments, formats the exception and stack text, and
    masks those and any string ``extra`` field, so no formatter downstream sees a secret.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as usual
            return True
        record.msg = mask(message)
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text = mask(text)
            # The formatter would re-render exc_info when exc_text is empty; keep only the text.
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS:
                masked = _mask_value(value)
                if masked is not value:
                    setattr(record, key, masked)
        return True


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        out = mask(value)
        return value if out == value else out
    if isinstance(value, (dict, list, tuple)):
        text = repr(value)
        if mask(text) != text:
            return mask(text)
    return value
