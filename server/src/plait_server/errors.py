"""The server's errors.

``ApiError`` and its subclasses are the errors a client causes; each has a stable ``code``
that the GraphQL API puts in the error's ``extensions`` (clients branch on the code, never on
the message). ``ServerConfigError`` is a problem with the server's own settings, reported by
``plait server ...`` as a usage error.
"""

from __future__ import annotations

from typing import Any

from plait.errors import PlaitError

__all__ = [
    "ApiError",
    "BadInput",
    "Forbidden",
    "InvalidTransition",
    "NotFound",
    "SchemaMismatch",
    "ServerConfigError",
    "Unauthenticated",
    "VersionConflict",
]


class ServerConfigError(PlaitError):
    """The server's settings or database cannot be used (bad URL, schema mismatch...)."""


class SchemaMismatch(ServerConfigError):
    """The database's schema is not the one this plait-server expects."""


class ApiError(PlaitError):
    """An error the caller caused; ``code`` is stable, ``extensions`` add details."""

    code = "BAD_INPUT"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = {k: v for k, v in extensions.items() if v is not None}

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extensions}


class BadInput(ApiError):
    """The request is malformed or asks for something impossible."""

    code = "BAD_INPUT"


class NotFound(ApiError):
    """The object named does not exist."""

    code = "NOT_FOUND"


class VersionConflict(ApiError):
    """The write named a state version that is no longer current."""

    code = "VERSION_CONFLICT"


class InvalidTransition(ApiError):
    """A transition rule refused the state change; ``rule`` names it."""

    code = "INVALID_TRANSITION"


class Unauthenticated(ApiError):
    """No API key, or a key that is unknown or revoked."""

    code = "UNAUTHENTICATED"


class Forbidden(ApiError):
    """The key's scope does not allow the operation."""

    code = "FORBIDDEN"
