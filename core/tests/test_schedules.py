"""plait.schedules: clocks, filters, adjustments, time zones and daylight-saving days."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from plait.errors import CronExpressionError, NaiveDatetimeError, ScheduleError
from plait.schedules import (
    CronClock,
    CronSchedule,
    DatesClock,
    IntervalClock,
    IntervalSchedule,
    RRuleClock,
    Schedule,
    adjustments,
    filters,
)

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")


def times(events):
    return [e.start_time.isoformat() for e in events]


def utc(*args):
    return datetime(*args, tzinfo=UTC)


# -- interval clocks ------------------------------------------------------------------------


def test_interval_clock_counts_from_its_start_date():
    s = IntervalSchedule(timedelta(hours=6), start_date=utc(2026, 1, 1, 3))
    assert times(s.next(3, after=utc(2026, 1, 1))) == [
        "2026-01-01T03:00:00+00:00",
        "2026-01-01T09:00:00+00:00",
        "2026-01-01T15:00:00+00:00",
    ]
    # strictly after: an event exactly at `after` is not returned
    assert times(s.next(2, after=utc(2026, 1, 1, 9))) == ["2026-01-01T15:00:00+00:00", "2026-01-01T21:00:00+00:00"]
    # far from the start: computed, not iterated
    assert times(s.next(1, after=utc(2090, 5, 5, 4))) == ["2090-05-05T09:00:00+00:00"]


def test_interval_clock_end_date_is_inclusive():
    s = IntervalSchedule(timedelta(days=1), start_date=utc(2026, 1, 1), end_date=utc(2026, 1, 3))
    assert times(s.next(10, after=utc(2025, 1, 1))) == [
        "2026-01-01T00:00:00+00:00",
        "2026-01-02T00:00:00+00:00",
        "2026-01-03T00:00:00+00:00",
    ]


def test_interval_clock_without_start_date_counts_from_midnight_in_its_zone():
    s = IntervalSchedule(timedelta(days=1), timezone="Europe/London")
    assert times(s.next(2, after=utc(2026, 7, 1, 12))) == ["2026-07-02T00:00:00+01:00", "2026-07-03T00:00:00+01:00"]


@pytest.mark.parametrize(
    ("zone", "start", "expected"),
    [
        # spring forward: 01:00 GMT -> 02:00 BST; hourly runs keep 3600 s apart, wall clock skips 01:xx
        (
            LONDON,
            datetime(2026, 3, 29, 0, 0),
            ["2026-03-29T00:00:00+00:00", "2026-03-29T02:00:00+01:00", "2026-03-29T03:00:00+01:00"],
        ),
        # fall back: 02:00 BST -> 01:00 GMT; the wall clock shows 01:00 twice
        (
            LONDON,
            datetime(2026, 10, 25, 0, 0),
            [
                "2026-10-25T00:00:00+01:00",
                "2026-10-25T01:00:00+01:00",
                "2026-10-25T01:00:00+00:00",
                "2026-10-25T02:00:00+00:00",
            ],
        ),
        (
            NEW_YORK,
            datetime(2026, 3, 8, 1, 0),
            ["2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"],
        ),
        (
            NEW_YORK,
            datetime(2026, 11, 1, 0, 0),
            [
                "2026-11-01T00:00:00-04:00",
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T01:00:00-05:00",
                "2026-11-01T02:00:00-05:00",
            ],
        ),
    ],
)
def test_hourly_interval_follows_absolute_time_across_dst(zone, start, expected):
    start = start.replace(tzinfo=zone)
    s = IntervalSchedule(timedelta(hours=1), start_date=start)
    got = s.next(len(expected), after=start - timedelta(seconds=1))
    assert times(got) == expected
    gaps = {(b.start_time - a.start_time.astimezone(UTC)).total_seconds() for a, b in itertools.pairwise(got)}
    assert gaps == {3600.0}


@pytest.mark.parametrize(
    ("zone", "start", "expected"),
    [
        (
            LONDON,
            datetime(2026, 3, 28, 9),
            ["2026-03-28T09:00:00+00:00", "2026-03-29T09:00:00+01:00", "2026-03-30T09:00:00+01:00"],
        ),
        (
            LONDON,
            datetime(2026, 10, 24, 9),
            ["2026-10-24T09:00:00+01:00", "2026-10-25T09:00:00+00:00", "2026-10-26T09:00:00+00:00"],
        ),
        (
            NEW_YORK,
            datetime(2026, 3, 7, 9),
            ["2026-03-07T09:00:00-05:00", "2026-03-08T09:00:00-04:00", "2026-03-09T09:00:00-04:00"],
        ),
        (
            NEW_YORK,
            datetime(2026, 10, 31, 9),
            ["2026-10-31T09:00:00-04:00", "2026-11-01T09:00:00-05:00", "2026-11-02T09:00:00-05:00"],
        ),
    ],
)
def test_daily_interval_keeps_the_wall_clock_time_across_dst(zone, start, expected):
    start = start.replace(tzinfo=zone)
    s = IntervalSchedule(timedelta(days=1), start_date=start)
    assert times(s.next(3, after=start - timedelta(seconds=1))) == expected


def test_daily_interval_started_in_a_skipped_hour_runs_right_after_the_change_that_day():
    # 02:30 does not exist in New York on 2026-03-08: that day's run moves to 03:00 EDT
    s = IntervalSchedule(timedelta(days=1), start_date=datetime(2026, 3, 7, 2, 30, tzinfo=NEW_YORK))
    assert times(s.next(3, after=utc(2026, 3, 7))) == [
        "2026-03-07T02:30:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-09T02:30:00-04:00",
    ]


# -- cron clocks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "after", "expected"),
    [
        (
            "Europe/London",
            utc(2026, 3, 28),
            ["2026-03-28T09:00:00+00:00", "2026-03-29T09:00:00+01:00", "2026-03-30T09:00:00+01:00"],
        ),
        (
            "Europe/London",
            utc(2026, 10, 24),
            ["2026-10-24T09:00:00+01:00", "2026-10-25T09:00:00+00:00", "2026-10-26T09:00:00+00:00"],
        ),
        (
            "America/New_York",
            utc(2026, 3, 7),
            ["2026-03-07T09:00:00-05:00", "2026-03-08T09:00:00-04:00", "2026-03-09T09:00:00-04:00"],
        ),
        (
            "America/New_York",
            utc(2026, 10, 31),
            ["2026-10-31T09:00:00-04:00", "2026-11-01T09:00:00-05:00", "2026-11-02T09:00:00-05:00"],
        ),
    ],
)
def test_cron_0900_stays_0900_local_across_dst(zone, after, expected):
    assert times(CronSchedule("0 9 * * *", timezone=zone).next(3, after=after)) == expected


def test_cron_time_in_the_spring_forward_gap_runs_once_right_after_the_change():
    london = CronSchedule("30 1 * * *", timezone="Europe/London")
    assert times(london.next(3, after=utc(2026, 3, 28, 12))) == [
        "2026-03-29T02:00:00+01:00",
        "2026-03-30T01:30:00+01:00",
        "2026-03-31T01:30:00+01:00",
    ]
    new_york = CronSchedule("30 2 * * *", timezone="America/New_York")
    assert times(new_york.next(3, after=utc(2026, 3, 7, 12))) == [
        "2026-03-08T03:00:00-04:00",
        "2026-03-09T02:30:00-04:00",
        "2026-03-10T02:30:00-04:00",
    ]


def test_cron_fixed_time_in_the_repeated_hour_runs_once_at_its_first_occurrence():
    london = CronSchedule("30 1 * * *", timezone="Europe/London")
    assert times(london.next(2, after=utc(2026, 10, 24, 12))) == [
        "2026-10-25T01:30:00+01:00",
        "2026-10-26T01:30:00+00:00",
    ]
    new_york = CronSchedule("30 1 * * *", timezone="America/New_York")
    assert times(new_york.next(2, after=utc(2026, 10, 31, 12))) == [
        "2026-11-01T01:30:00-04:00",
        "2026-11-02T01:30:00-05:00",
    ]


def test_cron_every_hour_runs_in_both_copies_of_the_repeated_hour_and_skips_the_missing_one():
    fall = CronSchedule("*/30 * * * *", timezone="Europe/London", fall_back="both")
    assert times(fall.next(7, after=datetime(2026, 10, 25, 0, 15, tzinfo=LONDON))) == [
        "2026-10-25T00:30:00+01:00",
        "2026-10-25T01:00:00+01:00",
        "2026-10-25T01:30:00+01:00",
        "2026-10-25T01:00:00+00:00",
        "2026-10-25T01:30:00+00:00",
        "2026-10-25T02:00:00+00:00",
        "2026-10-25T02:30:00+00:00",
    ]
    spring = CronSchedule("0 * * * *", timezone="America/New_York")
    assert times(spring.next(3, after=datetime(2026, 3, 8, 0, 30, tzinfo=NEW_YORK))) == [
        "2026-03-08T01:00:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-08T04:00:00-04:00",
    ]


def test_cron_started_inside_the_repeated_hour_still_sees_its_second_copy():
    s = CronSchedule("15 * * * *", timezone="Europe/London", fall_back="both")
    # 01:45 BST is the first copy of 01:45; 01:15 GMT (the second copy of 01:15) is later
    assert times(s.next(2, after=datetime(2026, 10, 25, 1, 45, tzinfo=LONDON))) == [
        "2026-10-25T01:15:00+00:00",
        "2026-10-25T02:15:00+00:00",
    ]


def test_cron_start_and_end_dates_bound_the_events():
    clock = CronClock("0 12 * * *", start_date=utc(2026, 1, 2, 12), end_date=utc(2026, 1, 4, 12))
    assert times(Schedule([clock]).next(10, after=utc(2025, 1, 1))) == [
        "2026-01-02T12:00:00+00:00",
        "2026-01-03T12:00:00+00:00",
        "2026-01-04T12:00:00+00:00",
    ]


def test_cron_zone_defaults_to_the_start_date_zone():
    clock = CronClock("0 9 * * *", start_date=datetime(2026, 6, 1, tzinfo=NEW_YORK))
    assert times(Schedule([clock]).next(1, after=utc(2026, 6, 1))) == ["2026-06-01T09:00:00-04:00"]


def test_cron_weekdays_and_macros():
    s = CronSchedule("0 9 * * mon-fri", timezone="UTC")
    got = s.next(6, after=utc(2026, 11, 20, 12))  # a Friday
    assert [e.start_time.strftime("%a %d") for e in got] == ["Mon 23", "Tue 24", "Wed 25", "Thu 26", "Fri 27", "Mon 30"]
    assert times(CronSchedule("@daily").next(1, after=utc(2026, 1, 1, 5))) == ["2026-01-02T00:00:00+00:00"]


# -- dates clocks and merging ---------------------------------------------------------------


def test_dates_clock_sorts_and_deduplicates():
    clock = DatesClock([utc(2026, 5, 1), utc(2026, 1, 1), datetime(2026, 1, 1, 1, tzinfo=ZoneInfo("Europe/Paris"))])
    assert times(Schedule([clock]).next(5, after=utc(2025, 1, 1))) == [
        "2026-01-01T00:00:00+00:00",
        "2026-05-01T00:00:00+00:00",
    ]


def test_clocks_merge_in_order_without_duplicates_and_carry_their_parameter_defaults():
    hourly = IntervalClock(timedelta(hours=12), start_date=utc(2026, 1, 1))
    cron = CronClock("0 12 * * *", timezone="UTC")  # same instants as half of the interval clock
    extra = DatesClock([utc(2026, 1, 1, 6)], parameter_defaults={"x": 1})
    other = CronClock("0 0 * * *", parameter_defaults={"region": "us"})  # same times, other params
    s = Schedule([hourly, cron, extra, other])
    got = s.next(5, after=utc(2025, 12, 31, 23))
    assert [(e.start_time.isoformat(), e.parameter_defaults) for e in got] == [
        ("2026-01-01T00:00:00+00:00", {}),
        ("2026-01-01T00:00:00+00:00", {"region": "us"}),
        ("2026-01-01T06:00:00+00:00", {"x": 1}),
        ("2026-01-01T12:00:00+00:00", {}),
        ("2026-01-02T00:00:00+00:00", {}),
    ]
    assert got[2].clock is extra


def test_merged_clocks_in_different_zones_are_ordered_by_instant():
    s = Schedule(
        [
            CronClock("0 9 * * *", timezone="Europe/London", parameter_defaults={"r": "eu"}),
            CronClock("0 9 * * *", timezone="America/New_York", parameter_defaults={"r": "us"}),
        ]
    )
    assert [(e.start_time.isoformat(), e.parameter_defaults["r"]) for e in s.next(3, after=utc(2026, 1, 5))] == [
        ("2026-01-05T09:00:00+00:00", "eu"),
        ("2026-01-05T09:00:00-05:00", "us"),
        ("2026-01-06T09:00:00+00:00", "eu"),
    ]


def test_between_is_inclusive():
    s = IntervalSchedule(timedelta(days=1), start_date=utc(2026, 1, 1))
    assert len(s.between(utc(2026, 1, 1), utc(2026, 1, 31))) == 31


# -- filters and adjustments ----------------------------------------------------------------

DAILY_NOON = IntervalClock(timedelta(days=1), start_date=datetime(2026, 1, 1, 12, tzinfo=LONDON))


def dates_of(events):
    return [e.start_time.date().isoformat() for e in events]


def test_weekday_weekend_and_day_of_week_filters():
    after = utc(2026, 11, 20)  # Friday 20 Nov 2026
    assert dates_of(Schedule([DAILY_NOON], filters=[filters.is_weekday]).next(3, after)) == [
        "2026-11-20",
        "2026-11-23",
        "2026-11-24",
    ]
    assert dates_of(Schedule([DAILY_NOON], filters=[filters.is_weekend]).next(3, after)) == [
        "2026-11-21",
        "2026-11-22",
        "2026-11-28",
    ]
    for day in (2, "wed", "Wednesday"):
        assert dates_of(Schedule([DAILY_NOON], filters=[filters.is_day_of_week(day)]).next(2, after)) == [
            "2026-11-25",
            "2026-12-02",
        ]


def test_month_start_end_and_date_filters():
    after = utc(2026, 1, 15)
    assert dates_of(Schedule([DAILY_NOON], filters=[filters.is_month_start]).next(2, after)) == [
        "2026-02-01",
        "2026-03-01",
    ]
    assert dates_of(Schedule([DAILY_NOON], filters=[filters.is_month_end]).next(3, after)) == [
        "2026-01-31",
        "2026-02-28",
        "2026-03-31",
    ]
    assert dates_of(Schedule([DAILY_NOON], filters=[filters.on_date(3, 14)]).next(2, after)) == [
        "2026-03-14",
        "2027-03-14",
    ]
    wrap = Schedule([DAILY_NOON], filters=[filters.between_dates(12, 30, 1, 2)])
    assert dates_of(wrap.next(4, after)) == ["2026-12-30", "2026-12-31", "2027-01-01", "2027-01-02"]


def test_time_filters_read_the_wall_clock():
    every_hour = IntervalClock(timedelta(hours=1), start_date=datetime(2026, 7, 1, tzinfo=LONDON))
    s = Schedule([every_hour], filters=[filters.at_time(time(9))])
    assert times(s.next(2, after=utc(2026, 7, 1))) == ["2026-07-01T09:00:00+01:00", "2026-07-02T09:00:00+01:00"]
    night = Schedule([every_hour], filters=[filters.between_times(time(23), time(1))])
    assert [e.start_time.hour for e in night.next(4, after=utc(2026, 7, 1, 12))] == [23, 0, 1, 23]


def test_or_and_not_filters():
    after = utc(2026, 11, 20)
    s = Schedule(
        [DAILY_NOON],
        or_filters=[filters.is_day_of_week("mon"), filters.is_day_of_week("fri")],
        not_filters=[filters.on_date(11, 23)],
    )
    assert dates_of(s.next(3, after)) == ["2026-11-20", "2026-11-27", "2026-11-30"]


def test_adjustments_add_and_next_weekday():
    s = Schedule([DAILY_NOON], filters=[filters.is_day_of_week("sat")], adjustments=[adjustments.next_weekday])
    assert times(s.next(2, after=utc(2026, 11, 20))) == ["2026-11-23T12:00:00+00:00", "2026-11-30T12:00:00+00:00"]
    # Saturday and Sunday both move to Monday: one event, not two
    weekend = Schedule([DAILY_NOON], filters=[filters.is_weekend], adjustments=[adjustments.next_weekday])
    assert times(weekend.next(2, after=utc(2026, 11, 20))) == [
        "2026-11-23T12:00:00+00:00",
        "2026-11-30T12:00:00+00:00",
    ]
    later = Schedule([DAILY_NOON], adjustments=[adjustments.add(timedelta(minutes=90))])
    assert times(later.next(1, after=utc(2026, 11, 20))) == ["2026-11-20T13:30:00+00:00"]
    # next_weekday keeps the wall-clock time across a DST change (Sat 24 Oct -> Mon 26 Oct)
    sat = Schedule([DAILY_NOON], filters=[filters.is_day_of_week("sat")], adjustments=[adjustments.next_weekday])
    assert times(sat.next(1, after=utc(2026, 10, 23))) == ["2026-10-26T12:00:00+00:00"]


def test_custom_callables_work_as_filters():
    s = Schedule([DAILY_NOON], filters=[lambda dt: dt.day % 10 == 0])
    assert dates_of(s.next(2, after=utc(2026, 1, 1))) == ["2026-01-10", "2026-01-20"]


# -- errors ---------------------------------------------------------------------------------


def test_invalid_cron_expression_is_quoted():
    with pytest.raises(CronExpressionError, match=r"'61 \* \* \* \*'"):
        CronClock("61 * * * *")
    with pytest.raises(CronExpressionError, match="'every day'"):
        CronSchedule("every day")


def test_naive_datetimes_are_rejected_where_a_zone_is_needed():
    with pytest.raises(NaiveDatetimeError, match="2026-01-01T00:00:00 has no time zone"):
        IntervalClock(timedelta(hours=1), start_date=datetime(2026, 1, 1))
    with pytest.raises(NaiveDatetimeError):
        CronClock("0 9 * * *", end_date=datetime(2026, 1, 1))
    with pytest.raises(NaiveDatetimeError):
        DatesClock([datetime(2026, 1, 1)])
    with pytest.raises(NaiveDatetimeError, match="after"):
        CronSchedule("0 9 * * *").next(1, after=datetime(2026, 1, 1))


def test_end_before_start_and_bad_intervals():
    with pytest.raises(ScheduleError, match="end_date 2025-01-01T00:00:00\\+00:00 is before start_date"):
        IntervalClock(timedelta(hours=1), start_date=utc(2026, 1, 1), end_date=utc(2025, 1, 1))
    for bad in (timedelta(0), timedelta(seconds=-5), -1):
        with pytest.raises(ScheduleError, match="must be greater than 0"):
            IntervalClock(bad)
    with pytest.raises(ScheduleError, match="must be a timedelta"):
        IntervalClock("1h")
    with pytest.raises(ScheduleError, match="not a known time zone"):
        CronClock("0 9 * * *", timezone="Mars/Olympus")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: filters.on_date(13, 1), "month must be an integer 1-12, got 13"),
        (lambda: filters.on_date(2, 30), "day must be an integer 1-29 for month 2, got 30"),
        (lambda: filters.between_dates(1, 1, 4, 31), "day must be an integer 1-30 for month 4"),
        (lambda: filters.at_time("09:00"), "expected a datetime.time"),
        (lambda: filters.between_times(time(9), 17), "expected a datetime.time"),
        (lambda: filters.is_day_of_week(7), "day must be 0-6"),
        (lambda: filters.is_day_of_week("funday"), "unknown day 'funday'"),
        (lambda: adjustments.add(30), "interval must be a timedelta"),
        (lambda: Schedule([DAILY_NOON], filters=["weekday"]), "must be callables"),
    ],
)
def test_bad_filter_and_adjustment_arguments(make, message):
    with pytest.raises(ScheduleError, match=message):
        make()


# -- serialization --------------------------------------------------------------------------


def test_serialize_round_trips_through_json():
    s = Schedule(
        clocks=[
            CronClock("0 9 * * *", timezone="Europe/London", parameter_defaults={"region": "eu"}),
            IntervalClock(timedelta(hours=8), start_date=datetime(2026, 1, 1, tzinfo=NEW_YORK)),
            DatesClock([datetime(2026, 12, 24, 18, tzinfo=LONDON)]),
        ],
        filters=[filters.is_weekday, filters.between_times(time(8), time(18))],
        or_filters=[filters.on_date(12, 24), filters.between_dates(1, 1, 11, 30)],
        not_filters=[filters.is_day_of_week("wed")],
        adjustments=[adjustments.add(timedelta(minutes=5)), adjustments.next_weekday],
    )
    data = json.loads(json.dumps(s.serialize()))
    assert data["clocks"][0] == {
        "type": "CronClock",
        "cron": "0 9 * * *",
        "day_or": True,
        "timezone": "Europe/London",
        "start_date": None,
        "end_date": None,
        "parameter_defaults": {"region": "eu"},
    }
    again = Schedule.deserialize(data)
    after = utc(2026, 3, 25)
    assert [(e.start_time.isoformat(), e.parameter_defaults) for e in again.next(20, after)] == [
        (e.start_time.isoformat(), e.parameter_defaults) for e in s.next(20, after)
    ]


def test_serialize_names_a_custom_filter_it_cannot_write():
    def my_filter(dt):
        return True

    with pytest.raises(ScheduleError, match="my_filter"):
        Schedule([DAILY_NOON], filters=[my_filter]).serialize()


def test_import_plait_and_plait_schedules_do_not_load_croniter():
    code = (
        "import sys, plait, plait.schedules\n"
        "assert 'croniter' not in sys.modules\n"
        "plait.schedules.CronClock('0 9 * * *')\n"
        "assert 'croniter' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_filters_that_never_match_raise_instead_of_spinning(monkeypatch):
    import plait.schedules

    monkeypatch.setattr(plait.schedules, "MAX_FILTERED_IN_A_ROW", 1000)
    s = Schedule([IntervalClock(timedelta(hours=1))], filters=[filters.is_weekday, filters.is_weekend])
    with pytest.raises(ScheduleError, match="passed its filters in 1,000 clock times in a row"):
        s.next(1, after=utc(2026, 1, 1))


# --- Prefect 1 ports (issue 12) -----------------------------------------------------------------


def test_pendulum_datetimes_are_accepted_everywhere():
    import pendulum

    start = pendulum.datetime(2026, 1, 1, tz="America/New_York")
    hourly = IntervalSchedule(pendulum.duration(hours=1), start_date=start)
    assert times(hourly.next(2, after=start)) == ["2026-01-01T01:00:00-05:00", "2026-01-01T02:00:00-05:00"]
    cron = CronSchedule("0 9 * * *", start_date=start)
    assert times(cron.next(1, after=pendulum.datetime(2026, 1, 1, 12, tz="UTC"))) == ["2026-01-01T09:00:00-05:00"]
    dates = Schedule([DatesClock([start.add(days=1)])], end_date=start.add(days=2))
    assert times(dates.next(1, after=start)) == ["2026-01-02T00:00:00-05:00"]


def test_hourly_cron_fires_once_in_the_fall_back_hour_by_default():
    hourly = CronSchedule("0 * * * *", timezone="Europe/London")
    assert times(hourly.next(3, after=datetime(2026, 10, 25, 0, 30, tzinfo=LONDON))) == [
        "2026-10-25T01:00:00+01:00",
        "2026-10-25T02:00:00+00:00",
        "2026-10-25T03:00:00+00:00",
    ]
    day = [
        e for e in hourly.between(datetime(2026, 10, 25, tzinfo=LONDON), datetime(2026, 10, 25, 23, 59, tzinfo=LONDON))
    ]
    assert len(day) == 24
    both = Schedule.deserialize(CronSchedule("0 * * * *", timezone="Europe/London", fall_back="both").serialize())
    assert len(both.between(datetime(2026, 10, 25, tzinfo=LONDON), datetime(2026, 10, 25, 23, 59, tzinfo=LONDON))) == 25
    with pytest.raises(ScheduleError, match="fall_back must be"):
        CronClock("0 * * * *", fall_back="twice")


def test_rrule_clock_follows_the_wall_clock_and_serializes():
    from dateutil import rrule

    last_friday = rrule.rrule(rrule.MONTHLY, byweekday=rrule.FR(-1), byhour=17, dtstart=datetime(2026, 1, 1))
    clock = RRuleClock(last_friday, timezone="Europe/London")
    s = Schedule([clock])
    expected = [
        "2026-01-30T17:00:00+00:00",
        "2026-02-27T17:00:00+00:00",
        "2026-03-27T17:00:00+00:00",
        "2026-04-24T17:00:00+01:00",
    ]
    assert times(s.next(4, after=datetime(2026, 1, 1, tzinfo=LONDON))) == expected
    again = Schedule.deserialize(s.serialize())
    assert times(again.next(4, after=datetime(2026, 1, 1, tzinfo=LONDON))) == expected
    with pytest.raises(ScheduleError, match=r"needs a dateutil\.rrule\.rrule"):
        RRuleClock("FREQ=DAILY")


def test_datetime_filters_and_schedule_bounds():
    every_day = IntervalClock(timedelta(days=1), start_date=utc(2026, 1, 1, 9))
    one = Schedule([every_day], filters=[filters.on_datetime(utc(2026, 1, 3, 9))])
    assert times(one.next(1, after=utc(2026, 1, 1))) == ["2026-01-03T09:00:00+00:00"]
    window = filters.between_datetimes(utc(2026, 1, 2), utc(2026, 1, 4, 12))
    s = Schedule([every_day], filters=[window])
    assert times(s.next(3, after=utc(2026, 1, 1))) == [
        "2026-01-02T09:00:00+00:00",
        "2026-01-03T09:00:00+00:00",
        "2026-01-04T09:00:00+00:00",
    ]
    assert times(Schedule.deserialize(s.serialize()).next(1, after=utc(2026, 1, 1)))[0] == "2026-01-02T09:00:00+00:00"
    bounded = Schedule([every_day], start_date=utc(2026, 1, 5), end_date=utc(2026, 1, 6, 9))
    assert times(bounded.next(5, after=utc(2026, 1, 1))) == ["2026-01-05T09:00:00+00:00", "2026-01-06T09:00:00+00:00"]
    assert (
        times(Schedule.deserialize(bounded.serialize()).next(5, after=utc(2026, 1, 1)))[-1]
        == "2026-01-06T09:00:00+00:00"
    )


# -- Prefect 1's clock and schedule API --------------------------------------------------------


def test_clock_events_compare_as_their_start_times():
    from plait.schedules import ClockEvent

    nine, ten = utc(2026, 1, 1, 9), utc(2026, 1, 1, 10)
    event = ClockEvent(nine)
    assert event == nine and event == datetime(2026, 1, 1, 10, tzinfo=ZoneInfo("Europe/Paris"))
    assert event != ten and event < ten and event <= nine and ten > event and event >= nine
    assert event != datetime(2026, 1, 1, 9)  # a naive time is no instant
    assert sorted([ClockEvent(ten), event]) == [nine, ten]
    # two events at one instant are one event only with the same parameters and labels
    assert ClockEvent(nine, {"a": 1}) == ClockEvent(nine, {"a": 1}) != ClockEvent(nine, {"a": 2})
    assert ClockEvent(nine, labels=["gpu"]) != ClockEvent(nine)
    assert ClockEvent(nine, {"a": 1}) == nine  # against a datetime only the time counts
    assert len({ClockEvent(nine), ClockEvent(nine)}) == 1


def test_clock_events_default_to_after_now():
    now = datetime.now(UTC)
    first = next(iter(IntervalClock(timedelta(hours=1)).events()))
    assert now < first.start_time <= now + timedelta(hours=1)
    assert next(iter(CronClock("* * * * *").events())) > now


def test_clocks_carry_labels_to_their_events_and_through_serialization():
    from dateutil import rrule

    s = Schedule(
        [
            IntervalClock(timedelta(days=1), start_date=utc(2026, 1, 1), labels=["gpu"]),
            CronClock("0 12 * * *", labels=[]),
            DatesClock([utc(2026, 1, 1, 6)], labels=["dev", "eu"]),
            RRuleClock(rrule.rrule(rrule.DAILY, dtstart=utc(2026, 1, 1, 18)), labels=["x"]),
            IntervalClock(timedelta(days=1), start_date=utc(2026, 1, 1, 3)),
        ]
    )
    got = [(e.start_time.hour, e.labels) for e in s.next(5, after=utc(2026, 1, 1, 1))]
    assert got == [(3, None), (6, ["dev", "eu"]), (12, []), (18, ["x"]), (0, ["gpu"])]
    again = Schedule.deserialize(json.loads(json.dumps(s.serialize())))
    assert [e.labels for e in again.next(5, after=utc(2026, 1, 1, 1))] == [e for _, e in got]
    # same instant, same parameters, different labels: two events (two runs)
    both = Schedule([DatesClock([utc(2026, 2, 1)], labels=["a"]), DatesClock([utc(2026, 2, 1)], labels=["b"])])
    assert [e.labels for e in both.next(5, after=utc(2026, 1, 1))] == [["a"], ["b"]]
    with pytest.raises(TypeError, match="labels must be a list of strings"):
        IntervalClock(timedelta(hours=1), labels="gpu")


def test_schedule_next_gives_datetimes_on_request_and_may_have_no_clock():
    s = Schedule([IntervalClock(timedelta(hours=6), start_date=utc(2026, 1, 1))])
    got = s.next(2, after=utc(2026, 1, 1, 1), return_events=False)
    assert got == [utc(2026, 1, 1, 6), utc(2026, 1, 1, 12)] and all(type(t) is datetime for t in got)
    assert s.next(2, after=utc(2026, 1, 1, 1)) == got  # events, equal to those times
    empty = Schedule(clocks=[])
    assert empty.next(3) == [] and empty.start_date is None and empty.end_date is None


def test_schedule_clocks_must_be_a_list_as_in_prefect_1():
    clock = IntervalClock(timedelta(hours=6), start_date=utc(2026, 1, 1))
    with pytest.raises(TypeError, match=r"clocks must be a list of clocks, got IntervalClock.*pass clocks=\[clock\]"):
        Schedule(clocks=clock)
    with pytest.raises(TypeError, match="got int: 3"):
        Schedule(3)
    assert Schedule((clock,)).clocks == [clock]  # any iterable of clocks


def test_schedule_start_and_end_dates_default_to_those_of_its_clocks():
    s = Schedule(
        [
            IntervalClock(timedelta(hours=1), start_date=utc(2026, 3, 1), end_date=utc(2026, 6, 1)),
            IntervalClock(timedelta(hours=1), start_date=utc(2026, 1, 1), end_date=utc(2026, 4, 1)),
            CronClock("0 0 * * *"),
        ]
    )
    assert (s.start_date, s.end_date) == (utc(2026, 1, 1), utc(2026, 6, 1))
    # they describe the clocks; they do not bound the clock that has no end
    assert s.next(1, after=utc(2027, 1, 1)) == [utc(2027, 1, 2)]
    bounded = Schedule([CronClock("0 0 * * *")], start_date=utc(2026, 5, 1), end_date=utc(2026, 5, 2))
    assert (bounded.start_date, bounded.end_date) == (utc(2026, 5, 1), utc(2026, 5, 2))
    assert bounded.next(5, after=utc(2026, 1, 1)) == [utc(2026, 5, 1), utc(2026, 5, 2)]
    dates = DatesClock([utc(2026, 5, 3), utc(2026, 5, 1), utc(2026, 5, 2)])
    assert (dates.start_date, dates.end_date) == (utc(2026, 5, 1), utc(2026, 5, 3))


def test_bad_clock_arguments_are_type_errors_and_cron_day_or_none_is_true():
    for make in (lambda: IntervalClock(None), lambda: RRuleClock(42), lambda: CronClock(5), lambda: DatesClock(7)):
        with pytest.raises(TypeError):
            make()
    with pytest.raises(ValueError, match="greater than 0"):
        IntervalClock(timedelta(0))
    assert CronClock("0 0 * * *", day_or=None).day_or is True


def test_pendulum_times_in_give_pendulum_times_out():
    pendulum = pytest.importorskip("pendulum")

    start = pendulum.datetime(2026, 3, 28, 12, tz="Europe/London")
    clock = IntervalClock(timedelta(days=1), start_date=start)
    events = list(itertools.islice(clock.events(after=start), 2))
    assert all(isinstance(e.start_time, pendulum.DateTime) for e in events)
    # across the change to summer time, still noon in London (11:00 UTC)
    assert [e.start_time.in_tz("UTC").hour for e in events] == [11, 11]
    plain = list(
        itertools.islice(IntervalClock(timedelta(days=1), start_date=utc(2026, 1, 1)).events(utc(2026, 1, 1)), 1)
    )
    assert type(plain[0].start_time) is datetime
    after = pendulum.datetime(2026, 1, 1)
    times_ = Schedule([CronClock("0 9 * * *")]).next(1, after=after, return_events=False)
    assert isinstance(times_[0], pendulum.DateTime) and times_[0] == utc(2026, 1, 1, 9)
