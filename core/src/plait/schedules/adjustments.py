"""Adjustments: move a schedule's times after filtering.

An adjustment is a callable ``fn(dt) -> datetime``; ``Schedule(adjustments=[...])`` applies
them in order. They should not move times backwards past later ones (the schedule keeps
its order by assuming so)::

    from plait.schedules import CronSchedule, adjustments
    # the 15th of each month, moved to the Monday when it falls on a weekend
    CronSchedule("0 9 15 * *", timezone="Europe/London", adjustments=[adjustments.next_weekday])
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from plait.errors import ScheduleError
from plait.schedules._zones import add_interval, localize

__all__ = ["Adjustment", "add", "next_weekday"]


class Adjustment:
    """A named, serializable adjustment; call it with a datetime."""

    __slots__ = ("args", "fn", "name")

    def __init__(self, name: str, args: list[Any], fn: Callable[[datetime], datetime]) -> None:
        self.name = name
        self.args = args
        self.fn = fn

    def __call__(self, dt: datetime) -> datetime:
        return self.fn(dt)

    def serialize(self) -> dict[str, Any]:
        return {"name": self.name, "args": list(self.args)}

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(repr(a) for a in self.args)})" if self.args else self.name


def add(interval: timedelta) -> Adjustment:
    """Move each time by ``interval`` (counted like ``IntervalClock``: under a day in absolute
    time, a day or more on the wall clock): ``add(timedelta(minutes=30))``."""
    if isinstance(interval, bool) or not isinstance(interval, timedelta):
        raise ScheduleError(f"add: interval must be a timedelta, got {type(interval).__name__}: {interval!r}")
    return Adjustment("add", [interval.total_seconds()], lambda dt: add_interval(dt, interval))


def _next_weekday(dt: datetime) -> datetime:
    days = {5: 2, 6: 1}.get(dt.weekday(), 0)
    if not days:
        return dt
    return localize(dt.replace(tzinfo=None, fold=0) + timedelta(days=days), dt.tzinfo)  # type: ignore[arg-type]


#: Move a Saturday or Sunday time to the following Monday, same wall-clock time.
next_weekday = Adjustment("next_weekday", [], _next_weekday)


def deserialize(data: dict[str, Any]) -> Adjustment:
    """A built-in adjustment from its ``serialize()`` data."""
    name = data.get("name")
    if name == "add":
        (seconds,) = data.get("args", [None])
        return add(timedelta(seconds=seconds))
    if name == "next_weekday":
        return next_weekday
    raise ScheduleError(f"Unknown adjustment {name!r}; known adjustments: add, next_weekday")
