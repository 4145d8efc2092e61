"""Clocks: the sources of a schedule's times.

A clock yields ``ClockEvent``s strictly after a given instant, in order. Three kinds:

- ``IntervalClock(timedelta(hours=1), start_date=...)``: every interval from a start date;
- ``CronClock("0 9 * * mon-fri", timezone="Europe/London")``: a cron expression on the wall clock;
- ``DatesClock([datetime(...), ...])``: a fixed list of times;
- ``RRuleClock(rrule(...))``: the times of a ``dateutil.rrule`` (RFC 5545 recurrence rules).

Each may carry ``parameter_defaults``: flow parameters for the runs it starts (explicit
parameters passed to ``flow.run`` win over them).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from plait.errors import CronExpressionError, ScheduleError, ScheduleTypeError
from plait.schedules._zones import (
    ONE_DAY,
    as_pendulum,
    get_zone,
    is_ambiguous,
    is_pendulum,
    localize,
    parse_interval,
    require_aware,
    utc,
    zone_name,
)

__all__ = ["Clock", "ClockEvent", "CronClock", "DatesClock", "IntervalClock", "RRuleClock"]

#: Where an ``IntervalClock`` without a ``start_date`` counts from (midnight, in its zone).
DEFAULT_ANCHOR = datetime(2000, 1, 1)


class ClockEvent:
    """One scheduled time: ``start_time`` (aware), the clock's ``parameter_defaults`` and
    ``labels``, and the ``clock``.

    An event compares as its start time, with events and with aware datetimes (``event ==
    datetime(...)``, ``event < other``, ``sorted(events)``); two events at the same instant are
    equal only if their parameter defaults and labels are too.
    """

    __slots__ = ("clock", "labels", "parameter_defaults", "start_time")

    def __init__(
        self,
        start_time: datetime,
        parameter_defaults: Mapping[str, Any] | None = None,
        labels: Iterable[str] | None = None,
        clock: Any = None,
    ):
        self.start_time = start_time
        self.parameter_defaults = dict(parameter_defaults or {})
        self.labels = None if labels is None else list(labels)
        self.clock = clock

    def _key(self) -> tuple[datetime, str, str]:
        return utc(self.start_time), repr(sorted(self.parameter_defaults.items())), repr(self.labels)

    @staticmethod
    def _instant(other: object) -> datetime | None:
        if isinstance(other, ClockEvent):
            return utc(other.start_time)
        if isinstance(other, datetime) and other.utcoffset() is not None:
            return utc(other)
        return None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ClockEvent):
            return self._key() == other._key()
        if isinstance(other, datetime):
            return self._instant(other) == utc(self.start_time)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(utc(self.start_time))

    def __lt__(self, other: object) -> bool:
        at = self._instant(other)
        return NotImplemented if at is None else utc(self.start_time) < at

    def __le__(self, other: object) -> bool:
        at = self._instant(other)
        return NotImplemented if at is None else utc(self.start_time) <= at

    def __gt__(self, other: object) -> bool:
        at = self._instant(other)
        return NotImplemented if at is None else utc(self.start_time) > at

    def __ge__(self, other: object) -> bool:
        at = self._instant(other)
        return NotImplemented if at is None else utc(self.start_time) >= at

    def __repr__(self) -> str:
        params = f", parameter_defaults={self.parameter_defaults!r}" if self.parameter_defaults else ""
        labels = f", labels={self.labels!r}" if self.labels is not None else ""
        return f"ClockEvent({self.start_time.isoformat()}{params}{labels})"


class Clock:
    """Base class of clocks. Subclasses implement ``_events(after)`` (or ``events``) and ``serialize()``.

    ``labels`` (a list of strings), when given, replace the flow's labels on the runs this
    clock's events start, as in Prefect 1 (the agents that may run them).
    """

    def __init__(
        self,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: Mapping[str, Any] | None = None,
        labels: Iterable[str] | None = None,
    ) -> None:
        name = type(self).__name__
        # pendulum in, pendulum out: Prefect 1 code calls pendulum methods on the times
        self._pendulum = is_pendulum(start_date) or is_pendulum(end_date)
        if start_date is not None:
            start_date = require_aware(start_date, f"{name} start_date")
        if end_date is not None:
            end_date = require_aware(end_date, f"{name} end_date")
        if start_date is not None and end_date is not None and utc(end_date) < utc(start_date):
            raise ScheduleError(
                f"{name}: end_date {end_date.isoformat()} is before start_date {start_date.isoformat()}; "
                "swap them or move the end later"
            )
        if parameter_defaults is not None and not isinstance(parameter_defaults, Mapping):
            raise ScheduleError(
                f"{name}: parameter_defaults must be a dict of parameter values, "
                f"got {type(parameter_defaults).__name__}: {parameter_defaults!r}"
            )
        if labels is not None and (
            isinstance(labels, str) or not all(isinstance(label, str) for label in labels)  # type: ignore[union-attr]
        ):
            raise ScheduleTypeError(f"{name}: labels must be a list of strings, got {labels!r}")
        self.start_date = start_date
        self.end_date = end_date
        self.parameter_defaults = dict(parameter_defaults or {})
        self.labels: list[str] | None = None if labels is None else list(labels)

    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        """The clock's events strictly after ``after`` (aware; default: now), in order."""
        pendulum_out = self._pendulum or is_pendulum(after)
        events = self._events(datetime.now(UTC) if after is None else after)
        if not pendulum_out:
            return events
        return (ClockEvent(as_pendulum(e.start_time), e.parameter_defaults, e.labels, e.clock) for e in events)

    def _events(self, after: datetime) -> Iterator[ClockEvent]:
        raise NotImplementedError(f"{type(self).__name__} must implement events(after)")

    def serialize(self) -> dict[str, Any]:
        """The clock as plain JSON data (``Schedule.deserialize`` reads it back)."""
        raise NotImplementedError

    def _event(self, start_time: datetime) -> ClockEvent:
        return ClockEvent(start_time, self.parameter_defaults, self.labels, self)

    def _past_end(self, t: datetime) -> bool:
        return self.end_date is not None and utc(t) > utc(self.end_date)

    def _common(self) -> dict[str, Any]:
        return {
            "start_date": self.start_date.isoformat() if self.start_date else None,
            "end_date": self.end_date.isoformat() if self.end_date else None,
            "parameter_defaults": dict(self.parameter_defaults),
            **({"labels": list(self.labels)} if self.labels is not None else {}),
        }


class IntervalClock(Clock):
    """Every ``interval`` from ``start_date``.

    An interval shorter than a day follows absolute time: ``timedelta(hours=1)`` fires every
    3600 seconds, so local clock times shift by an hour across a daylight-saving change. An
    interval of a day or more follows the wall clock of the start date's zone: a daily clock
    started at 09:00 Europe/London fires at 09:00 London time every day, summer and winter (a
    start inside a skipped hour moves to the first instant after the change; a repeated hour
    uses its first occurrence).

    ```python
    IntervalClock(timedelta(hours=6), start_date=datetime(2026, 1, 1, tzinfo=ZoneInfo("Europe/London")))
    IntervalClock(timedelta(days=1), timezone="America/New_York")  # daily at midnight New York time
    ```

    Args:
        interval: a positive ``timedelta``.
        start_date: the first time (aware); default midnight on 2000-01-01 in ``timezone``.
        end_date: no event after this (aware).
        parameter_defaults: flow parameters for the runs this clock starts.
        timezone: zone name or ``tzinfo`` to count in (default: ``start_date``'s zone, else UTC).
        labels: labels for the runs this clock starts (instead of the flow's).
    """

    def __init__(
        self,
        interval: timedelta,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: Mapping[str, Any] | None = None,
        timezone: str | tzinfo | None = None,
        labels: Iterable[str] | None = None,
    ) -> None:
        super().__init__(start_date, end_date, parameter_defaults, labels)
        self.interval = parse_interval(interval, "IntervalClock interval")
        zone = get_zone(timezone, "IntervalClock timezone")
        if start_date is None:
            zone = zone or UTC
            self._start = localize(DEFAULT_ANCHOR, zone)
        else:
            zone = zone or self.start_date.tzinfo  # type: ignore[union-attr]
            self._start = self.start_date.astimezone(zone)  # type: ignore[union-attr]
        self.timezone: tzinfo = zone  # type: ignore[assignment]

    def _events(self, after: datetime) -> Iterator[ClockEvent]:
        after_utc = utc(require_aware(after, "after"))
        start_utc = utc(self._start)
        if self.interval < ONE_DAY:
            k = 0 if after_utc < start_utc else (after_utc - start_utc) // self.interval + 1
            while True:
                t = (start_utc + k * self.interval).astimezone(self.timezone)
                if self._past_end(t):
                    return
                yield self._event(t)
                k += 1
        wall0 = self._start.replace(tzinfo=None, fold=0)
        after_wall = after_utc.astimezone(self.timezone).replace(tzinfo=None)
        k = max(0, (after_wall - wall0) // self.interval - 1)
        while True:
            t = self._start if k == 0 else localize(wall0 + k * self.interval, self.timezone)
            k += 1
            if utc(t) <= after_utc:
                continue
            if self._past_end(t):
                return
            yield self._event(t)

    def serialize(self) -> dict[str, Any]:
        return {
            "type": "IntervalClock",
            "interval": self.interval.total_seconds(),
            "timezone": zone_name(self.timezone),
            **self._common(),
        }

    def __repr__(self) -> str:
        return f"IntervalClock({self.interval!r}, start_date={self._start.isoformat()})"


class CronClock(Clock):
    """Times matching a cron expression, read on the wall clock of ``timezone``.

    ``CronClock("0 9 * * *", timezone="Europe/London")`` fires at 09:00 London time every day,
    in summer (08:00 UTC) and in winter (09:00 UTC). On daylight-saving days:

    - a time skipped by the spring-forward change fires once, at the first instant after the
      change (a 01:30 London job runs at 02:00 BST on the last Sunday of March);
    - a time repeated by the fall-back change fires once, at its first occurrence (so an
      hourly job runs 24 times that day, not 25, as in Prefect 1, where an hourly job took the
      second occurrence of the repeated hour instead). With ``fall_back="both"`` a job
      whose hour field is ``*`` runs in both copies of the repeated hour instead (an hourly job
      keeps running every hour of absolute time), as Vixie cron does.

    The expression has 5 fields (``minute hour day-of-month month day-of-week``), plus what
    the ``croniter`` library accepts (``@daily``, a 6th seconds field, ``L``, ``#``).

    Args:
        cron: the expression.
        start_date: no event before this (aware); its zone is the default ``timezone``.
        end_date: no event after this (aware).
        parameter_defaults: flow parameters for the runs this clock starts.
        timezone: zone name or ``tzinfo`` (default: ``start_date``'s zone, else UTC).
        day_or: when both day-of-month and day-of-week are restricted, match either (cron's
            rule, the default) or, with ``False``, both.
        fall_back: ``"once"`` (the default, Prefect 1's rule) or ``"both"`` (Vixie cron's: a
            job with ``*`` as its hour runs in both copies of a repeated hour).
        labels: labels for the runs this clock starts (instead of the flow's).
    """

    def __init__(
        self,
        cron: str,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: Mapping[str, Any] | None = None,
        timezone: str | tzinfo | None = None,
        day_or: bool | None = True,
        fall_back: str = "once",
        labels: Iterable[str] | None = None,
    ) -> None:
        super().__init__(start_date, end_date, parameter_defaults, labels)
        day_or = True if day_or is None else day_or
        if fall_back not in ("once", "both"):
            raise ScheduleError(f"CronClock fall_back must be 'once' or 'both', got {fall_back!r}")
        self.fall_back = fall_back
        if not isinstance(cron, str):
            raise ScheduleTypeError(f"CronClock cron must be a string such as '0 9 * * *', got {type(cron).__name__}")
        from croniter import CroniterError, croniter

        try:
            parsed = croniter(cron, datetime(2000, 1, 1), day_or=day_or)
        except (CroniterError, ValueError, KeyError, TypeError) as exc:
            raise CronExpressionError(cron, str(exc) or type(exc).__name__) from None
        self.cron = cron
        self.day_or = day_or
        start = self.start_date
        self.timezone: tzinfo = get_zone(timezone, "CronClock timezone") or (start.tzinfo if start else UTC)  # type: ignore[assignment]
        # Vixie cron's rule: only jobs that run every hour repeat in the fall-back hour.
        self._every_hour = parsed.expanded[1] == ["*"] and fall_back == "both"

    def _events(self, after: datetime) -> Iterator[ClockEvent]:
        from croniter import CroniterError, croniter

        lower = utc(require_aware(after, "after"))
        if self.start_date is not None:
            lower = max(lower, utc(self.start_date) - timedelta(microseconds=1))
        zone = self.timezone
        wall = lower.astimezone(zone).replace(tzinfo=None, fold=0)
        if self._every_hour and is_ambiguous(wall, zone):
            # Second occurrences of earlier wall times may still lie after `lower`.
            wall -= timedelta(hours=3)
        it = croniter(self.cron, wall.replace(microsecond=0) - timedelta(seconds=1), day_or=self.day_or)
        repeats: list[tuple[datetime, datetime]] = []  # (utc, local) second occurrences, a heap
        last = lower
        while True:
            try:
                w: datetime = it.get_next(datetime)
            except CroniterError:  # an expression that never matches again (e.g. '0 0 30 2 *')
                return
            first = localize(w, zone)
            if self._every_hour and is_ambiguous(w, zone):
                second = w.replace(tzinfo=zone, fold=1)
                heapq.heappush(repeats, (utc(second), second))
            first_utc = utc(first)
            while repeats and (repeats[0][0] < first_utc):
                t_utc, t = heapq.heappop(repeats)
                if t_utc > last:
                    if self._past_end(t):
                        return
                    last = t_utc
                    yield self._event(t)
            if first_utc > last:
                if self._past_end(first):
                    return
                last = first_utc
                yield self._event(first)

    def serialize(self) -> dict[str, Any]:
        return {
            "type": "CronClock",
            "cron": self.cron,
            "day_or": self.day_or,
            **({"fall_back": self.fall_back} if self.fall_back != "once" else {}),
            "timezone": zone_name(self.timezone),
            **self._common(),
        }

    def __repr__(self) -> str:
        return f"CronClock({self.cron!r}, timezone={zone_name(self.timezone) or self.timezone!r})"


class DatesClock(Clock):
    """A fixed list of aware datetimes (duplicates are dropped).

    ```python
    DatesClock([datetime(2026, 12, 24, 18, tzinfo=UTC), datetime(2026, 12, 31, 18, tzinfo=UTC)])
    ```
    """

    def __init__(
        self,
        dates: Iterable[datetime],
        parameter_defaults: Mapping[str, Any] | None = None,
        labels: Iterable[str] | None = None,
    ) -> None:
        super().__init__(None, None, parameter_defaults, labels)
        if isinstance(dates, datetime) or not isinstance(dates, Iterable):
            raise ScheduleTypeError(
                f"DatesClock dates must be a list of datetimes, got {type(dates).__name__}: {dates!r}"
            )
        dates = list(dates)
        self._pendulum = any(is_pendulum(d) for d in dates)
        checked = [require_aware(d, "DatesClock date") for d in dates]
        unique: dict[datetime, datetime] = {}
        for d in checked:
            unique.setdefault(utc(d), d)  # the first of equal instants wins
        self.dates = [unique[k] for k in sorted(unique)]
        # the first and the last date (Prefect 1's); the events need no other bound
        self.start_date = self.dates[0] if self.dates else None
        self.end_date = self.dates[-1] if self.dates else None

    def _events(self, after: datetime) -> Iterator[ClockEvent]:
        after_utc = utc(require_aware(after, "after"))
        for d in self.dates:
            if utc(d) > after_utc:
                yield self._event(d)

    def serialize(self) -> dict[str, Any]:
        return {
            "type": "DatesClock",
            "dates": [d.isoformat() for d in self.dates],
            "timezones": [zone_name(d.tzinfo) for d in self.dates],
            "parameter_defaults": dict(self.parameter_defaults),
            **({"labels": list(self.labels)} if self.labels is not None else {}),
        }

    def __repr__(self) -> str:
        return f"DatesClock({len(self.dates)} dates)"


class RRuleClock(Clock):
    """The times of a ``dateutil.rrule.rrule`` (iCalendar recurrence rules), as Prefect 1's clock.

    ```python
    from dateutil import rrule
    RRuleClock(rrule.rrule(rrule.MONTHLY, byweekday=rrule.FR(-1), byhour=17, dtstart=datetime(2026, 1, 1)),
               timezone="Europe/London")            # 17:00 London time, the last Friday of each month
    ```

    The rule counts on the wall clock of ``timezone`` (default: ``dtstart``'s zone, else UTC); a
    naive ``dtstart`` is read in that zone. ``start_date``/``end_date`` bound the events.
    """

    def __init__(
        self,
        rrule: Any,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: Mapping[str, Any] | None = None,
        timezone: str | tzinfo | None = None,
        labels: Iterable[str] | None = None,
    ) -> None:
        super().__init__(start_date, end_date, parameter_defaults, labels)
        from dateutil.rrule import rrule as rrule_class
        from dateutil.rrule import rruleset

        if not isinstance(rrule, (rrule_class, rruleset)):
            raise ScheduleTypeError(
                f"RRuleClock needs a dateutil.rrule.rrule, got {type(rrule).__name__}: {rrule!r}; "
                "e.g. rrule.rrule(rrule.DAILY, byhour=9, dtstart=datetime(2026, 1, 1))"
            )
        if isinstance(rrule, rruleset):
            raise ScheduleError("RRuleClock takes one rrule; use one RRuleClock per rule in Schedule(clocks=[...])")
        dtstart = rrule._dtstart
        self._pendulum = self._pendulum or is_pendulum(dtstart)
        zone = get_zone(timezone, "RRuleClock timezone")
        if zone is None:
            zone = (require_aware(dtstart, "RRuleClock dtstart").tzinfo if dtstart.tzinfo is not None else None) or UTC
        self.timezone: tzinfo = zone
        # the rule runs on naive wall-clock times; each is then placed in the zone
        self.rrule = rrule.replace(dtstart=dtstart.astimezone(zone).replace(tzinfo=None)) if dtstart.tzinfo else rrule
        until = self.rrule._until
        if until is not None and until.tzinfo is not None:
            self.rrule = self.rrule.replace(until=until.astimezone(zone).replace(tzinfo=None))

    def _events(self, after: datetime) -> Iterator[ClockEvent]:
        lower = utc(require_aware(after, "after"))
        if self.start_date is not None:
            lower = max(lower, utc(self.start_date) - timedelta(microseconds=1))
        wall = lower.astimezone(self.timezone).replace(tzinfo=None) - timedelta(hours=3)  # a repeated hour
        last = lower
        for w in self.rrule.xafter(wall, inc=False):
            t = localize(w, self.timezone)
            t_utc = utc(t)
            if t_utc <= last:
                continue
            if self._past_end(t):
                return
            last = t_utc
            yield self._event(t)

    def serialize(self) -> dict[str, Any]:
        return {"type": "RRuleClock", "rrule": str(self.rrule), "timezone": zone_name(self.timezone), **self._common()}

    def __repr__(self) -> str:
        return f"RRuleClock({str(self.rrule)!r}, timezone={zone_name(self.timezone) or self.timezone!r})"
