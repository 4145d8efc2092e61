"""Filters: keep or drop a clock's times.

A filter is a callable ``fn(dt) -> bool`` on an event's start time, read on the wall clock of
the clock's zone. ``Schedule(filters=[...])`` keeps times every filter accepts,
``or_filters`` times at least one accepts, ``not_filters`` times none accepts::

    from plait.schedules import CronSchedule, filters
    office_hours = [filters.is_weekday, filters.between_times(time(9), time(17))]
    CronSchedule("0 * * * *", timezone="Europe/London", filters=office_hours)

Any callable works as a filter; the built-in ones below also serialize to JSON.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import datetime, time
from typing import Any

from plait.errors import ScheduleError

__all__ = [
    "Filter",
    "at_time",
    "between_dates",
    "between_datetimes",
    "between_times",
    "is_day_of_week",
    "is_month_end",
    "is_month_start",
    "is_weekday",
    "is_weekend",
    "on_date",
    "on_datetime",
]

_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class Filter:
    """A named, serializable filter: ``Filter("is_weekday", [], fn)``; call it with a datetime."""

    __slots__ = ("args", "fn", "name")

    def __init__(self, name: str, args: list[Any], fn: Callable[[datetime], bool]) -> None:
        self.name = name
        self.args = args
        self.fn = fn

    def __call__(self, dt: datetime) -> bool:
        return self.fn(dt)

    def serialize(self) -> dict[str, Any]:
        return {"name": self.name, "args": [a.isoformat() if isinstance(a, (time, datetime)) else a for a in self.args]}

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(repr(a) for a in self.args)})" if self.args else self.name


def on_date(month: int, day: int) -> Filter:
    """Times on ``month``/``day`` of any year: ``on_date(12, 25)``."""
    _check_month_day("on_date", month, day)
    return Filter("on_date", [month, day], lambda dt: (dt.month, dt.day) == (month, day))


def on_datetime(dt: datetime) -> Filter:
    """Only the instant ``dt`` (aware): ``on_datetime(datetime(2026, 12, 24, 18, tzinfo=UTC))``."""
    from plait.schedules._zones import require_aware, utc

    dt = require_aware(dt, "on_datetime")
    at = utc(dt)
    return Filter("on_datetime", [dt], lambda t: utc(t) == at)


def between_datetimes(start: datetime, end: datetime) -> Filter:
    """Instants from ``start`` to ``end`` (aware), both included."""
    from plait.schedules._zones import require_aware, utc

    start = require_aware(start, "between_datetimes start")
    end = require_aware(end, "between_datetimes end")
    low, high = utc(start), utc(end)
    if high < low:
        raise ScheduleError(f"between_datetimes: end {end.isoformat()} is before start {start.isoformat()}")
    return Filter("between_datetimes", [start, end], lambda t: low <= utc(t) <= high)


def between_dates(start_month: int, start_day: int, end_month: int, end_day: int) -> Filter:
    """Times from one month/day to another, both included, any year; wraps past the year end.

    ``between_dates(12, 20, 1, 5)`` keeps 20 December to 5 January.
    """
    _check_month_day("between_dates start", start_month, start_day)
    _check_month_day("between_dates end", end_month, end_day)
    start, end = (start_month, start_day), (end_month, end_day)
    if start <= end:
        return Filter("between_dates", [*start, *end], lambda dt: start <= (dt.month, dt.day) <= end)
    return Filter("between_dates", [*start, *end], lambda dt: (dt.month, dt.day) >= start or (dt.month, dt.day) <= end)


def at_time(t: time) -> Filter:
    """Times whose wall-clock time of day is exactly ``t``: ``at_time(time(9, 30))``."""
    _check_time("at_time", t)
    return Filter("at_time", [t], lambda dt: dt.time() == t)


def between_times(start: time, end: time) -> Filter:
    """Times of day from ``start`` to ``end``, both included; wraps past midnight.

    ``between_times(time(22), time(6))`` keeps the night.
    """
    _check_time("between_times start", start)
    _check_time("between_times end", end)
    if start <= end:
        return Filter("between_times", [start, end], lambda dt: start <= dt.time() <= end)
    return Filter("between_times", [start, end], lambda dt: dt.time() >= start or dt.time() <= end)


def is_day_of_week(day: int | str) -> Filter:
    """Times on one day of the week: ``0``/``"monday"``/``"mon"`` to ``6``/``"sunday"``/``"sun"``."""
    if isinstance(day, str):
        matches = [i for i, name in enumerate(_DAYS) if len(day) >= 3 and name.startswith(day.lower())]
        if len(matches) != 1:
            raise ScheduleError(f"is_day_of_week: unknown day {day!r}; use 0-6 (Monday is 0) or a name like 'mon'")
        number = matches[0]
    elif isinstance(day, int) and not isinstance(day, bool) and 0 <= day <= 6:
        number = day
    else:
        raise ScheduleError(f"is_day_of_week: day must be 0-6 (Monday is 0) or a day name, got {day!r}")
    return Filter("is_day_of_week", [number], lambda dt: dt.weekday() == number)


#: Monday to Friday.
is_weekday = Filter("is_weekday", [], lambda dt: dt.weekday() < 5)
#: Saturday and Sunday.
is_weekend = Filter("is_weekend", [], lambda dt: dt.weekday() >= 5)
#: The first day of a month.
is_month_start = Filter("is_month_start", [], lambda dt: dt.day == 1)
#: The last day of a month.
is_month_end = Filter("is_month_end", [], lambda dt: dt.day == calendar.monthrange(dt.year, dt.month)[1])

_BY_NAME: dict[str, Any] = {
    "on_date": on_date,
    "between_dates": between_dates,
    "on_datetime": lambda d: on_datetime(datetime.fromisoformat(d)),
    "between_datetimes": lambda a, b: between_datetimes(datetime.fromisoformat(a), datetime.fromisoformat(b)),
    "at_time": lambda t: at_time(time.fromisoformat(t)),
    "between_times": lambda a, b: between_times(time.fromisoformat(a), time.fromisoformat(b)),
    "is_day_of_week": is_day_of_week,
    "is_weekday": is_weekday,
    "is_weekend": is_weekend,
    "is_month_start": is_month_start,
    "is_month_end": is_month_end,
}


def deserialize(data: dict[str, Any]) -> Filter:
    """A built-in filter from its ``serialize()`` data."""
    found = _BY_NAME.get(data.get("name", ""))
    if found is None:
        raise ScheduleError(f"Unknown filter {data.get('name')!r}; known filters: {', '.join(sorted(_BY_NAME))}")
    return found if isinstance(found, Filter) else found(*data.get("args", []))


def _check_month_day(owner: str, month: Any, day: Any) -> None:
    if not (isinstance(month, int) and not isinstance(month, bool) and 1 <= month <= 12):
        raise ScheduleError(f"{owner}: month must be an integer 1-12, got {month!r}")
    longest = 29 if month == 2 else calendar.monthrange(2001, month)[1]
    if not (isinstance(day, int) and not isinstance(day, bool) and 1 <= day <= longest):
        raise ScheduleError(f"{owner}: day must be an integer 1-{longest} for month {month}, got {day!r}")


def _check_time(owner: str, value: Any) -> None:
    if not isinstance(value, time) or isinstance(value, datetime):
        raise ScheduleError(
            f"{owner}: expected a datetime.time such as time(9, 30), got {type(value).__name__}: {value!r}"
        )
