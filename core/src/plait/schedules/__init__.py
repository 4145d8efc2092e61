"""Schedules: when a flow runs.

A ``Schedule`` merges the times of its clocks, keeps those its filters accept and moves them
with its adjustments::

    from datetime import time, timedelta
    from plait.schedules import CronClock, IntervalClock, Schedule, filters

    schedule = Schedule(
        clocks=[
            CronClock("0 9 * * *", timezone="Europe/London", parameter_defaults={"region": "eu"}),
            CronClock("0 9 * * *", timezone="America/New_York", parameter_defaults={"region": "us"}),
        ],
        filters=[filters.is_weekday],
    )
    for event in schedule.next(3):
        print(event.start_time, event.parameter_defaults)

Times are always aware datetimes: a clock counts in an explicit zone (``zoneinfo``), and a
naive datetime is an error. See ``docs/schedules.md`` for the rules on daylight-saving days.
``croniter`` is imported only when a ``CronClock`` is made.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from plait.errors import ScheduleError
from plait.schedules import adjustments, filters
from plait.schedules._zones import as_pendulum, get_zone, is_pendulum, require_aware, utc
from plait.schedules.clocks import Clock, ClockEvent, CronClock, DatesClock, IntervalClock, RRuleClock

__all__ = [
    "Clock",
    "ClockEvent",
    "CronClock",
    "CronSchedule",
    "DatesClock",
    "IntervalClock",
    "IntervalSchedule",
    "RRuleClock",
    "Schedule",
    "adjustments",
    "filters",
]

#: ``Schedule.events`` gives up (``ScheduleError``) when this many clock times in a row fail the filters.
MAX_FILTERED_IN_A_ROW = 200_000

Filter = Callable[[datetime], bool]
Adjustment = Callable[[datetime], datetime]


class Schedule:
    """Clocks, filters and adjustments: the times a flow runs.

    Args:
        clocks: clocks (a list; may be empty); their events merge in time order. Two clocks
            firing at the same instant with the same ``parameter_defaults`` and ``labels`` make
            one event; with different ones they make two (two runs with different parameters).
        filters: keep a time only if every filter accepts it.
        or_filters: keep a time only if at least one of these accepts it.
        not_filters: drop a time if any of these accepts it.
        adjustments: applied in order to the times that pass the filters.
        start_date, end_date: no event before / after these (aware), whatever the clocks say.
            Without them, the ``start_date`` and ``end_date`` attributes are the earliest start
            and the latest end of the clocks that have one (Prefect 1's), or ``None``.

    Filters and adjustments see the start time in its clock's zone.
    """

    def __init__(
        self,
        clocks: Iterable[Clock],
        filters: Iterable[Filter] | None = None,
        or_filters: Iterable[Filter] | None = None,
        not_filters: Iterable[Filter] | None = None,
        adjustments: Iterable[Adjustment] | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> None:
        self._start_date = None if start_date is None else require_aware(start_date, "Schedule start_date")
        self._end_date = None if end_date is None else require_aware(end_date, "Schedule end_date")
        if self._start_date is not None and self._end_date is not None and utc(self._end_date) < utc(self._start_date):
            raise ScheduleError(
                f"Schedule: end_date {self._end_date.isoformat()} is before start_date {self._start_date.isoformat()}"
            )
        if isinstance(clocks, Clock) or not isinstance(clocks, Iterable):  # Prefect 1 refuses them too
            hint = "[clock]" if isinstance(clocks, Clock) else "[...]"
            raise TypeError(
                f"Schedule: clocks must be a list of clocks, got {type(clocks).__name__}: {clocks!r}; "
                f"pass clocks={hint}"
            )
        self.clocks = list(clocks)
        for c in self.clocks:
            if not isinstance(c, Clock):
                raise ScheduleError(f"Schedule clocks must be Clock objects, got {type(c).__name__}: {c!r}")
        self.filters = _callables(filters, "filters")
        self.or_filters = _callables(or_filters, "or_filters")
        self.not_filters = _callables(not_filters, "not_filters")
        self.adjustments = _callables(adjustments, "adjustments")

    @property
    def start_date(self) -> datetime | None:
        """The schedule's ``start_date``, else the earliest of its clocks' (``None`` if none has one)."""
        if self._start_date is not None:
            return self._start_date
        starts = [c.start_date for c in self.clocks if getattr(c, "start_date", None) is not None]
        return min(starts, key=utc) if starts else None

    @property
    def end_date(self) -> datetime | None:
        """The schedule's ``end_date``, else the latest of its clocks' (``None`` if none has one)."""
        if self._end_date is not None:
            return self._end_date
        ends = [c.end_date for c in self.clocks if getattr(c, "end_date", None) is not None]
        return max(ends, key=utc) if ends else None

    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        """Every event strictly after ``after`` (default: now), in order; possibly endless."""
        pendulum_out = is_pendulum(after)
        after = datetime.now(UTC) if after is None else require_aware(after, "Schedule.next after")
        if self._start_date is not None and utc(after) < utc(self._start_date):
            after = self._start_date - timedelta(microseconds=1)
        after_utc = utc(after)
        end_utc = None if self._end_date is None else utc(self._end_date)
        merged = heapq.merge(*(c.events(after) for c in self.clocks), key=lambda e: utc(e.start_time))
        last_utc: datetime | None = None
        seen_at_last: list[tuple[dict[str, Any], list[str] | None]] = []
        rejected = 0
        for event in merged:
            t = event.start_time
            if not self._keep(t):
                rejected += 1
                if rejected >= MAX_FILTERED_IN_A_ROW:
                    raise ScheduleError(
                        f"No time of {self!r} passed its filters in {rejected:,} clock times in a row "
                        f"(up to {t.isoformat()}); check that the filters can all be true at once: "
                        f"filters={self.filters!r}, or_filters={self.or_filters!r}, not_filters={self.not_filters!r}"
                    )
                continue
            rejected = 0
            for adjust in self.adjustments:
                t = adjust(t)
            t_utc = utc(t)
            if t_utc <= after_utc:
                continue
            if end_utc is not None and t_utc > end_utc:
                return
            what = (event.parameter_defaults, event.labels)
            if t_utc == last_utc:
                if what in seen_at_last:
                    continue
                seen_at_last.append(what)
            else:
                last_utc, seen_at_last = t_utc, [what]
            if pendulum_out and not is_pendulum(t):
                t = as_pendulum(t)
            yield event if t is event.start_time else ClockEvent(t, event.parameter_defaults, event.labels, event.clock)

    def next(self, n: int, after: datetime | None = None, return_events: bool = True) -> list[Any]:
        """The next ``n`` events strictly after ``after`` (default: now), in order.

        An event compares as its start time (``schedule.next(2) == [datetime(...), ...]``);
        ``return_events=False`` gives the start times alone, as datetimes.

        ```python
        >>> s = IntervalSchedule(timedelta(hours=1), start_date=datetime(2026, 1, 1, tzinfo=UTC))
        >>> [e.start_time.hour for e in s.next(3, after=datetime(2026, 1, 1, 5, 30, tzinfo=UTC))]
        [6, 7, 8]
        ```
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ScheduleError(f"Schedule.next(n): n must be a non-negative integer, got {n!r}")
        events = list(itertools.islice(self.events(after), n))
        return events if return_events else [e.start_time for e in events]

    def between(self, start: datetime, end: datetime) -> list[ClockEvent]:
        """Every event with ``start <= start_time <= end``, in order."""
        start = require_aware(start, "Schedule.between start")
        end = require_aware(end, "Schedule.between end")
        if utc(end) < utc(start):
            raise ScheduleError(
                f"Schedule.between: end {end.isoformat()} is before start {start.isoformat()}; swap them"
            )
        end_utc = utc(end)
        return list(
            itertools.takewhile(lambda e: utc(e.start_time) <= end_utc, self.events(start - timedelta(microseconds=1)))
        )

    @property
    def timezone(self) -> tzinfo:
        """The zone of the first clock that has one (UTC otherwise): how dates are read for backfills."""
        for c in self.clocks:
            zone = getattr(c, "timezone", None)
            if zone is not None:
                return zone
        return UTC

    def serialize(self) -> dict[str, Any]:
        """The schedule as plain JSON data; ``Schedule.deserialize`` reads it back.

        Only the built-in filters and adjustments serialize; a plain function raises
        ``ScheduleError`` naming it.
        """
        return {
            "type": "Schedule",
            "clocks": [c.serialize() for c in self.clocks],
            "filters": [_serialize_rule(f, "filter") for f in self.filters],
            "or_filters": [_serialize_rule(f, "filter") for f in self.or_filters],
            "not_filters": [_serialize_rule(f, "filter") for f in self.not_filters],
            "adjustments": [_serialize_rule(a, "adjustment") for a in self.adjustments],
            **({"start_date": self._start_date.isoformat()} if self._start_date is not None else {}),
            **({"end_date": self._end_date.isoformat()} if self._end_date is not None else {}),
        }

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Schedule:
        """A schedule from ``serialize()`` data."""
        return Schedule(
            clocks=[_deserialize_clock(c) for c in data["clocks"]],
            filters=[filters.deserialize(f) for f in data.get("filters", [])],
            or_filters=[filters.deserialize(f) for f in data.get("or_filters", [])],
            not_filters=[filters.deserialize(f) for f in data.get("not_filters", [])],
            adjustments=[adjustments.deserialize(a) for a in data.get("adjustments", [])],
            start_date=_parse_time(data.get("start_date"), None),
            end_date=_parse_time(data.get("end_date"), None),
        )

    def _keep(self, t: datetime) -> bool:
        if self.filters and not all(f(t) for f in self.filters):
            return False
        if self.or_filters and not any(f(t) for f in self.or_filters):
            return False
        return not (self.not_filters and any(f(t) for f in self.not_filters))

    def __repr__(self) -> str:
        return f"Schedule(clocks={self.clocks!r})"


class IntervalSchedule(Schedule):
    """A schedule with one ``IntervalClock``: ``IntervalSchedule(timedelta(hours=1), start_date=...)``.

    Takes ``IntervalClock``'s arguments, then ``Schedule``'s ``filters``... as keywords.
    """

    def __init__(
        self,
        interval: timedelta,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: dict[str, Any] | None = None,
        timezone: str | tzinfo | None = None,
        **schedule_options: Any,
    ) -> None:
        clock = IntervalClock(interval, start_date, end_date, parameter_defaults, timezone)
        super().__init__([clock], **schedule_options)


class CronSchedule(Schedule):
    """A schedule with one ``CronClock``: ``CronSchedule("0 9 * * *", timezone="Europe/London")``.

    Takes ``CronClock``'s arguments, then ``Schedule``'s ``filters``... as keywords.
    """

    def __init__(
        self,
        cron: str,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: dict[str, Any] | None = None,
        timezone: str | tzinfo | None = None,
        day_or: bool = True,
        fall_back: str = "once",
        **schedule_options: Any,
    ) -> None:
        clock = CronClock(cron, start_date, end_date, parameter_defaults, timezone, day_or, fall_back)
        super().__init__([clock], **schedule_options)


def _callables(items: Iterable[Any] | None, what: str) -> list[Any]:
    out = list(items or ())
    for item in out:
        if not callable(item):
            raise ScheduleError(f"Schedule {what} must be callables taking a datetime, got {item!r}")
    return out


def _serialize_rule(rule: Any, kind: str) -> dict[str, Any]:
    serialize = getattr(rule, "serialize", None)
    if serialize is None:
        name = getattr(rule, "__qualname__", repr(rule))
        raise ScheduleError(
            f"Cannot serialize {kind} {name!r}: only the built-in {kind}s of plait.schedules serialize to JSON"
        )
    return serialize()


def _parse_time(text: str | None, zone_key: str | None) -> datetime | None:
    if text is None:
        return None
    dt = datetime.fromisoformat(text)
    zone = get_zone(zone_key)
    return dt.astimezone(zone) if zone is not None else dt


def _deserialize_clock(data: dict[str, Any]) -> Clock:
    kind = data.get("type")
    zone = data.get("timezone")
    common = {
        "start_date": _parse_time(data.get("start_date"), zone),
        "end_date": _parse_time(data.get("end_date"), zone),
        "parameter_defaults": data.get("parameter_defaults") or None,
        "labels": data.get("labels"),
    }
    if kind == "IntervalClock":
        return IntervalClock(timedelta(seconds=data["interval"]), timezone=zone, **common)
    if kind == "CronClock":
        fall_back = data.get("fall_back", "once")
        return CronClock(data["cron"], timezone=zone, day_or=data.get("day_or", True), fall_back=fall_back, **common)
    if kind == "RRuleClock":
        from dateutil.rrule import rrulestr

        return RRuleClock(rrulestr(data["rrule"]), timezone=zone, **common)
    if kind == "DatesClock":
        zones = data.get("timezones") or [None] * len(data["dates"])
        dates = [_parse_time(d, z) for d, z in zip(data["dates"], zones, strict=True)]
        return DatesClock(dates, parameter_defaults=common["parameter_defaults"], labels=common["labels"])  # type: ignore[arg-type]
    raise ScheduleError(f"Unknown clock type {kind!r}; known: IntervalClock, CronClock, DatesClock, RRuleClock")
