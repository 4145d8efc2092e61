"""Signing in to the web UI: an API key in a session cookie, and CSRF tokens for forms.

- A user signs in with an API key (the same keys the API takes). The key is kept in the
  ``plait_session`` cookie: ``HttpOnly`` (page scripts cannot read it), ``SameSite=Strict``
  (no other site's page can make the browser send it), ``Secure`` when served over HTTPS,
  ``Path=/``. Every request authenticates it again, so a revoked key is signed out at once.
- Every form that changes something carries a CSRF token: an HMAC of the fixed text
  ``plait-ui-csrf`` keyed with the session's API key. Only someone who holds the key can
  compute it, and it needs no server-side secret or storage, so any number of server processes
  accept each other's forms. A post without it, or with a wrong one, is refused (403).
- The sign-in form itself is protected with a double-submit token (a random value in a
  short-lived cookie and in the form), so another site cannot sign a browser in with its key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = [
    "LOGIN_COOKIE",
    "SESSION_COOKIE",
    "csrf_token",
    "csrf_valid",
    "login_token_valid",
    "new_login_token",
    "session_secret",
    "set_login_cookie",
    "set_session",
]

SESSION_COOKIE = "plait_session"
LOGIN_COOKIE = "plait_login"
#: How long a sign-in lasts without a new sign-in (the key itself may be revoked sooner).
SESSION_MAX_AGE = 30 * 24 * 3600
_CSRF_MESSAGE = b"plait-ui-csrf"


def session_secret(request: Request) -> str | None:
    """The API key of the request's session cookie, if any (not yet checked against the database)."""
    value = request.cookies.get(SESSION_COOKIE)
    return value or None


def csrf_token(secret: str) -> str:
    """The CSRF token of a session whose API key is ``secret``."""
    return hmac.new(secret.encode(), _CSRF_MESSAGE, hashlib.sha256).hexdigest()


def csrf_valid(secret: str, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(csrf_token(secret), str(token))


def set_session(response: Response, request: Request, secret: str | None) -> None:
    """Put ``secret`` in the session cookie (``None``: sign out)."""
    secure = request.url.scheme == "https"
    if secret is None:
        response.delete_cookie(SESSION_COOKIE, path="/", secure=secure, httponly=True, samesite="strict")
        return
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=SESSION_MAX_AGE,
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )


def new_login_token() -> str:
    """A fresh double-submit token for the sign-in form (see ``set_login_cookie``)."""
    return secrets.token_urlsafe(24)


def set_login_cookie(response: Response, request: Request, token: str) -> None:
    """The sign-in form's token as a short-lived cookie, sent back only to ``/login``."""
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        path="/login",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def login_token_valid(request: Request, token: str | None) -> bool:
    expected = request.cookies.get(LOGIN_COOKIE)
    return bool(expected) and bool(token) and hmac.compare_digest(str(expected), str(token))
