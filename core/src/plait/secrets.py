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
from collections.abc import Iterable
from typing import Any

from plait.errors import SecretNotFoundError

__all__ = [
    "MASK",
    "WITHHELD",
    "Secret",
    "SecretsFilter",
    "is_secret_key",
    "is_secret_setting",
    "looks_like_secret_name",
    "mask",
    "mask_data",
    "read_secret_setting",
    "redact",
    "register_secret",
    "register_secret_value",
    "setting_repr",
]

MASK = "********"

# Values shorter than this are not masked: replacing "1" or "no" everywhere would garble logs.
_MIN_LENGTH = 4
_values: list[str] = []  # longest first, so a value containing another is masked whole
_lock = threading.Lock()
# Every value in the order it was registered, for passing what a worker process learned to the
# driver (registered_since); never shrinks.
_registered: list[str] = []


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
            # one slice assignment: a thread masking at the same time sees the old list or the
            # new one, never a list being sorted (which is empty while the sort runs)
            _values[:] = sorted([*_values, value], key=len, reverse=True)
            _registered.append(value)


def registered_count() -> int:
    """How many values were registered in this process so far (a mark for ``registered_since``)."""
    return len(_registered)


def registered_since(mark: int) -> tuple[list[str], int]:
    """The values registered after ``mark`` (a ``registered_count()``), and the new mark.

    A worker process (``processes``, Dask, a timed task's process) sends these to the driver
    with each result, so values a task registered there are masked in the driver too, before
    anything is logged or shown there.
    """
    count = len(_registered)
    return (_registered[mark:count] if count > mark else []), count


def _reinit_lock_after_fork() -> None:
    # A fork while another thread held the lock must not leave the child's lock held forever.
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_lock_after_fork)


def register_secret_value(value: Any) -> None:
    """Register a value of any type: a string as ``register_secret`` does, the strings inside a
    list, tuple, set or dict one by one, bytes decoded, other values (numbers) by their ``str()``.
    ``None`` and booleans are nothing to hide.

    ```python
    register_secret_value({"user": "loader", "password": "hunter22"})
    ```
    """
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        register_secret(value)
    elif isinstance(value, (bytes, bytearray)):
        register_secret(bytes(value).decode("utf-8", "replace"))
    elif isinstance(value, dict):
        for item in value.values():
            register_secret_value(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            register_secret_value(item)
    else:
        register_secret(str(value))


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
    if "://" in text:
        if "@" in text:
            text = _URL_PASSWORD.sub(_mask_url_password, text)
        if "=" in text:
            text = _URL_QUERY_SECRET.sub(_mask_url_password, text)
    return text


# scheme://user:password@ -- the password ends at the last "@" before the host part.
_URL_PASSWORD = re.compile(r"\b([a-zA-Z][\w+.-]*://[^:/@\s'\"]*:)([^/\s'\"]*)(@)")
# ...?password=...&, ?token=..., ?api_key=... in a URL's query string (libpq, many HTTP APIs)
_URL_QUERY_SECRET = re.compile(
    r"(://[^\s'\"]*?[?&](?:password|passwd|pwd|token|access_token|api_key|apikey|secret|client_secret)=)"
    r"([^&#\s'\"]*)()",
    re.IGNORECASE,
)


# --- what may leave the process: serialized flows, registrations --------------------------------

#: What stands for a value withheld whole (a credential-keyed input, a secret parameter's default).
WITHHELD = "****"

# Key names whose values are credentials, matched anywhere in the name, case-insensitively:
# "Authorization", "db_password", "X-Api-Key", "access_token", "client_secret", "auth"...
_SECRET_KEY = re.compile(
    # ``auth`` but not ``author``/``authority`` (``authorization`` is kept); ``token`` but not a
    # ``tokenizer``.
    r"passw|passphrase|pwd|secret|token(?!iz)|api[_-]?key|auth(?!or(?!iz))|"
    r"credential|private[_-]?key|access[_-]?key|signing[_-]?key|cookie",
    re.IGNORECASE,
)
# A count of tokens (``max_tokens``, ``max_query_tokens``, ``num_tokens``, ``n_tokens``) names no
# credential, whatever the rule above says.
_TOKEN_COUNT = re.compile(r"^(?:max|min|num|n|total)[_-](?:\w+[_-])?tokens?$", re.IGNORECASE)


def is_secret_key(name: Any) -> bool:
    """Whether an input, header, option or config key named ``name`` holds a credential.

    The rule (documented in docs/reliability.md, "Secrets"): the name contains, in any case,
    ``passw``, ``passphrase``, ``pwd``, ``secret``, ``token`` (not a count of tokens such as
    ``max_tokens`` or ``num_tokens``, nor ``tokenizer``), ``api_key``/``apikey``/``api-key``,
    ``auth`` (``Authorization``, ``auth``, ``oauth``; not ``author`` or ``authority``),
    ``credential``, ``private_key``, ``access_key``, ``signing_key`` or ``cookie``.
    """
    return isinstance(name, str) and _SECRET_KEY.search(name) is not None and not _TOKEN_COUNT.match(name)


def redact(value: Any, key: Any = None, secret_keys: Iterable[str] = ()) -> Any:
    """``value`` made fit to leave the process (a serialized flow, a registration): plain JSON
    data with no secret in it.

    - a value under a credential-looking key (``is_secret_key``) or one of ``secret_keys`` is
      withheld whole: ``"****"`` (``None`` and ``""`` stay, there is nothing to hide);
    - dicts are redacted key by key, lists and tuples item by item (a ``(name, value)`` pair
      whose name looks like a credential is withheld, so header lists are covered too);
    - every string is masked (``mask``: registered secrets, URL passwords, URL query credentials);
    - anything else that is not JSON becomes its masked ``repr``.

    ```python
    redact({"Authorization": "Bearer abc", "Accept": "json"}, key="headers")
    # {"Authorization": "****", "Accept": "json"}
    redact("postgresql://bob:pw@db/sales", key="url")
    # "postgresql://bob:********@db/sales"
    ```
    """
    secret_keys = frozenset(secret_keys)
    return _redact(value, key, secret_keys, 0)


def _redact(value: Any, key: Any, secret_keys: frozenset[str], depth: int) -> Any:
    if key is not None and (key in secret_keys or is_secret_key(key)) and value not in (None, ""):
        return WITHHELD
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return mask(value)
    if depth < 20:
        if isinstance(value, dict):
            return {
                k if isinstance(k, str) else mask(repr(k)): _redact(v, k, secret_keys, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            if len(value) == 2 and is_secret_key(value[0]) and value[1] not in (None, ""):
                return [value[0], WITHHELD]
            return [_redact(v, None, secret_keys, depth + 1) for v in value]
    return mask(repr(value))


def mask_data(data: Any, extra: Iterable[str | None] = ()) -> Any:
    """``data`` (JSON-like: dicts, lists, tuples, strings) with every string masked (``mask``,
    and each of ``extra`` too); keys and other values are kept.

    Mask a document before serializing it: a secret holding a quote or a non-ASCII character
    no longer matches once escaped into JSON text.
    """
    extra = tuple(v for v in extra if v and len(v) >= _MIN_LENGTH)
    return _mask_data(data, extra)


def _mask_data(data: Any, extra: tuple[str, ...]) -> Any:
    if isinstance(data, str):
        for value in extra:
            data = data.replace(value, MASK)
        return mask(data)
    if isinstance(data, dict):
        return {key: _mask_data(value, extra) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(_mask_data(value, extra) for value in data)
    return data


# --- "*_secret" settings: the name of a secret, never the secret itself ---------------------------


def is_secret_setting(key: Any) -> bool:
    """Whether a config key's value must never be shown: a ``*_secret`` key (the name of a
    secret, which may be the secret pasted by mistake) or a key that looks like a credential
    (``token``, ``password``, ``webhook_url`` is not one: URLs are masked by ``mask``)."""
    return isinstance(key, str) and (key.endswith("_secret") or is_secret_key(key))


def setting_repr(key: Any, value: Any) -> str:
    """How an error message shows the value of config key ``key``: ``repr(value)``, masked; for
    a secret setting (``is_secret_setting``) only its type, never the value.

    Every error about a config value formats the value with this, so a secret pasted in the
    wrong place is never echoed::

        raise ConfigError(f"[plugins.x] {key} = {setting_repr(key, value)} must be a string")
        # [plugins.x] token_secret = <a int value, not shown> must be a string
    """
    if is_secret_setting(key):
        return "<an empty string>" if value == "" else f"<a {type(value).__name__} value, not shown>"
    return mask(repr(value))


def read_secret_setting(where: str, key: str, name: Any, error: type[Exception] | None = None) -> str:
    """The value of the secret that setting ``key`` (``url_secret``, ``token_secret``...) names.

    A ``*_secret`` setting holds the *name* of a secret (an environment variable or an entry
    under ``[secrets]``), never the secret itself. When the setting is wrong, the error says
    which setting (``where`` and ``key``) and never its value: a user who pasted the token
    itself there must not find it in a log. A value that does not look like a name (letters,
    digits and ``_``) is registered for masking as well, since it probably is the secret.

    Args:
        where: the section, as shown to the user (``"[plugins.slack]"``).
        key: the setting (``"token_secret"``).
        name: its value.
        error: the exception class to raise (default ``plait.errors.ConfigError``); a plugin
            passes its own config error class.

    Raises:
        ConfigError (or ``error``): the setting is not a non-empty string, or names no secret
        that is set.

    ```python
    token = read_secret_setting("[plugins.slack]", "token_secret", section.get("token_secret"))
    ```
    """
    if error is None:
        from plait.errors import ConfigError

        error = ConfigError
    if not isinstance(name, str) or not name.strip():
        raise error(
            f"{where} {key} must be the name of a secret (an environment variable or an entry under "
            f"[secrets]), got {setting_repr(key, name)}"
        )
    try:
        return Secret(name).get()
    except SecretNotFoundError:
        pass
    if looks_like_secret_name(name):
        hint = "set the environment variable it names, or add that name under [secrets] in the config"
    else:
        register_secret(name)
        hint = (
            "its value does not look like a name (letters, digits and _), so it may be the secret itself: "
            "put the secret in an environment variable or under [secrets] and give that name here"
        )
    raise error(f"{where} {key} names no secret that is set (the value is not shown, in case it is a secret); {hint}")


def looks_like_secret_name(value: Any) -> bool:
    """Whether ``value`` looks like the name of a secret (an environment variable's: letters,
    digits and ``_``, not starting with a digit, at most 128 characters) rather than a secret.

    Tokens and keys usually hold ``-``, ``/``, ``+``, ``.`` or ``:``, so a value with them is
    treated as a secret pasted by mistake and never shown.
    """
    return isinstance(value, str) and _SECRET_NAME.fullmatch(value) is not None


_SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


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
