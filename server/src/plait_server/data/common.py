"""Small helpers shared by the data layer's areas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import uuid_utils

from plait_server.errors import BadInput

#: The most items one call may page through or write.
MAX_LIMIT = 1000
#: State messages longer than this are cut (the rest is usually a repeated traceback).
MAX_MESSAGE = 20_000


def new_id() -> str:
    return str(uuid_utils.uuid7())


def check_limit(limit: int | None, offset: int | None = 0, default: int = 100) -> tuple[int, int]:
    """``(limit, offset)`` after checking both are in range."""
    limit = default if limit is None else limit
    offset = 0 if offset is None else offset
    if not 1 <= limit <= MAX_LIMIT:
        raise BadInput(f"limit must be between 1 and {MAX_LIMIT}, got {limit}", field="limit")
    if offset < 0:
        raise BadInput(f"offset must be 0 or more, got {offset}", field="offset")
    return limit, offset


def check_text(value: Any, what: str, max_length: int, *, required: bool = True) -> str | None:
    """``value`` if it is a string of at most ``max_length`` characters (non-empty when required)."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadInput(f"{what} must be a non-empty string, got {value!r:.80}", field=what)
    if len(value) > max_length:
        raise BadInput(f"{what} is {len(value)} characters long; at most {max_length} are allowed", field=what)
    return value


def check_labels(labels: Any, what: str = "labels") -> list[str]:
    if labels is None:
        return []
    if not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) and x.strip() for x in labels):
        raise BadInput(f"{what} must be a list of non-empty strings, got {labels!r:.80}", field=what)
    if len(labels) > 100 or any(len(x) > 100 for x in labels):
        raise BadInput(f"{what}: at most 100 labels of at most 100 characters each", field=what)
    return sorted(set(labels))


def check_time(value: Any, what: str) -> datetime | None:
    """``value`` in UTC, if it is an aware datetime that UTC can hold (``BadInput`` otherwise).

    9999-12-31T23:00-05:00 is a valid ISO 8601 time whose UTC is past year 9999: Python (and
    the database) cannot hold it, so it is refused here rather than failing in the driver.
    """
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise BadInput(f"{what} must be a date and time with a time zone (ISO 8601), got {value!r:.80}", field=what)
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise BadInput(
            f"{what} is out of range once in UTC (years 1 to 9999), got {value.isoformat()}", field=what
        ) from None


def cut(message: str | None) -> str | None:
    if message is None or len(message) <= MAX_MESSAGE:
        return message
    return message[: MAX_MESSAGE - 40] + f"... [{len(message) - MAX_MESSAGE + 40} characters cut]"
