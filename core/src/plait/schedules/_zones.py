"""Time-zone arithmetic shared by clocks, filters and adjustments.

Python compares and subtracts two aware datetimes that share a ``tzinfo`` object as wall-clock
times, ignoring ``fold``; every comparison here therefore goes through UTC (``utc()``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from plait.errors import NaiveDatetimeError, ScheduleError, ScheduleTypeError

ONE_DAY = timedelta(days=1)


def utc(dt: datetime) -> datetime:
    """``dt`` as a UTC datetime: safe to compare and subtract."""
    return dt.astimezone(UTC)


def require_aware(value: Any, what: str) -> datetime:
    """``value`` as a plain aware datetime, else a clear error naming ``what``.

    A datetime subclass (pendulum's ``DateTime``, which Prefect 1 used everywhere) becomes the
    same instant as a plain ``datetime`` in the same zone (a ``ZoneInfo`` when it has a name).
    """
    if not isinstance(value, datetime):
        raise ScheduleTypeError(f"{what} must be a datetime with a time zone, got {type(value).__name__}: {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(
            f"{what} {value.isoformat()} has no time zone; give it one, e.g. "
            f"{value!r}.replace(tzinfo=ZoneInfo('Europe/London')) or tzinfo=datetime.UTC"
        )
    if type(value) is not datetime:
        value = datetime(
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
            tzinfo=plain_zone(value.tzinfo, value),
            fold=value.fold,
        )
    return value


def plain_zone(zone: tzinfo, at: datetime | None = None) -> tzinfo:
    """A standard-library zone for ``zone`` (pendulum's zones become ``ZoneInfo`` or fixed offsets)."""
    if type(zone).__module__.split(".")[0] != "pendulum":
        return zone
    name = getattr(zone, "name", None) or getattr(zone, "key", None)
    if isinstance(name, str) and name.upper() == "UTC":
        return UTC
    if isinstance(name, str) and "/" in name:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    from datetime import timezone

    offset = zone.utcoffset(at)
    return timezone(offset) if offset is not None else UTC


def get_zone(zone: str | tzinfo | None, what: str = "timezone") -> tzinfo | None:
    """A ``tzinfo`` from a zone name (``"Europe/London"``) or a ``tzinfo``; ``None`` stays ``None``."""
    if zone is None:
        return zone
    if isinstance(zone, tzinfo):
        return plain_zone(zone)
    if isinstance(zone, str):
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            return ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(
                f"{what} {zone!r} is not a known time zone; use an IANA name such as 'Europe/London' or 'UTC'"
            ) from None
    raise ScheduleError(f"{what} must be a zone name or a tzinfo, got {type(zone).__name__}: {zone!r}")


def zone_name(zone: tzinfo | None) -> str | None:
    """The IANA name of a zone (``ZoneInfo.key``), ``"UTC"`` for UTC, else ``None``."""
    key = getattr(zone, "key", None)
    if isinstance(key, str):
        return key
    if zone is UTC:
        return "UTC"
    return None


def exists(dt: datetime) -> bool:
    """Whether the wall-clock time of ``dt`` exists in its zone (it does not inside a spring-forward gap)."""
    back = dt.astimezone(UTC).astimezone(dt.tzinfo)
    return back.replace(tzinfo=None) == dt.replace(tzinfo=None)


def is_ambiguous(wall: datetime, zone: tzinfo) -> bool:
    """Whether the naive wall-clock time ``wall`` happens twice in ``zone`` (a fall-back hour)."""
    first = wall.replace(tzinfo=zone, fold=0)
    return first.utcoffset() != wall.replace(tzinfo=zone, fold=1).utcoffset() and exists(first)


def localize(wall: datetime, zone: tzinfo) -> datetime:
    """The instant of the naive wall-clock time ``wall`` in ``zone``.

    A time repeated by a fall-back change maps to its first occurrence; a time skipped by a
    spring-forward change maps to the first instant after the change (01:30 on the day London
    skips 01:00-02:00 becomes 02:00 BST).
    """
    first = wall.replace(tzinfo=zone, fold=0)
    if exists(first):
        return first
    # Inside a gap: fold=1 reads the wall time with the offset after the change, fold=0 with the
    # offset before, so the change lies between the two instants. Find it to the second.
    lo = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    hi = int(first.timestamp())
    after_offset = datetime.fromtimestamp(hi, UTC).astimezone(zone).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(zone).utcoffset() == after_offset:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC).astimezone(zone)


def add_interval(dt: datetime, interval: timedelta) -> datetime:
    """``dt + interval`` the way Plait's schedules count.

    An interval shorter than a day is absolute time (one hour is 3600 seconds, whatever the
    clocks do); an interval of a day or more is counted on the wall clock of ``dt``'s zone, so
    a daily step keeps the time of day across daylight-saving changes.
    """
    if abs(interval) < ONE_DAY:
        return (utc(dt) + interval).astimezone(dt.tzinfo)
    return localize(dt.replace(tzinfo=None, fold=0) + interval, dt.tzinfo)  # type: ignore[arg-type]


def parse_interval(value: Any, what: str) -> timedelta:
    """A positive ``timedelta`` from a ``timedelta`` or a number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (timedelta, int, float)):
        raise ScheduleTypeError(f"{what} must be a timedelta, got {type(value).__name__}: {value!r}")
    interval = value if isinstance(value, timedelta) else timedelta(seconds=value)
    if interval <= timedelta(0):
        raise ScheduleError(f"{what} must be greater than 0, got {interval!r}; e.g. timedelta(hours=1)")
    return interval


def is_pendulum(value: Any) -> bool:
    """Whether ``value`` is one of pendulum's datetimes (Prefect 1's)."""
    return isinstance(value, datetime) and type(value).__module__.split(".")[0] == "pendulum"


def as_pendulum(value: datetime) -> datetime:
    """``value`` as a pendulum ``DateTime`` (only called when the caller gave pendulum times)."""
    import pendulum

    return pendulum.instance(value)
