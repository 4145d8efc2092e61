"""The errors plait-sql raises. Every message names the task, the bad value and the fix, and
never shows a password: URLs appear with the password replaced by ``***``."""

from __future__ import annotations

from plait.errors import PlaitError

__all__ = ["SQLConfigError", "SQLError", "SQLExecutionError"]


class SQLError(PlaitError):
    """Base class of every error plait-sql raises."""


class SQLConfigError(SQLError, ValueError):
    """A SQL task was set up wrongly: no URL or connection, an unknown connection name, a bad
    ``fetch`` value, a table name that is not a plain identifier, rows that are not dicts..."""


class SQLExecutionError(SQLError, RuntimeError):
    """The database (or SQLAlchemy) refused a statement or a connection.

    It replaces SQLAlchemy's exception, whose text can hold the connection URL: the message
    says which task failed and on which URL (password masked), and quotes the database's
    error with every password masked.

    Attributes:
        url: the URL with its password masked.
        error_type: the original exception's class, e.g. ``"IntegrityError"``.
        sqlstate: the SQLSTATE code when the driver gives one (PostgreSQL), else ``None``.
    """

    def __init__(self, message: str, url: str = "", error_type: str = "", sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.error_type = error_type
        self.sqlstate = sqlstate

    def __reduce__(self):  # picklable with its attributes (results cross process boundaries)
        return (type(self), (str(self), self.url, self.error_type, self.sqlstate))
