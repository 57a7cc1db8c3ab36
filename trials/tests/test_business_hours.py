"""SLA arithmetic in business hours: inside a day, across nights, weekends and holidays, time zones and DST."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from trials.plays.business_hours import NoBusinessHours, Schedule, add_business_hours

NINE_TO_FIVE = Schedule()  # UTC, 9-17, Monday to Friday


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# 2026-11-23 is a Monday.
@pytest.mark.parametrize(
    ("start", "hours", "due"),
    [
        (utc(2026, 11, 23, 10, 0), 4, utc(2026, 11, 23, 14, 0)),  # inside the day
        (utc(2026, 11, 23, 15, 0), 4, utc(2026, 11, 24, 11, 0)),  # across the night
        (utc(2026, 11, 23, 7, 30), 4, utc(2026, 11, 23, 13, 0)),  # before opening: counts from 9
        (utc(2026, 11, 23, 20, 0), 4, utc(2026, 11, 24, 13, 0)),  # after closing: next morning
        (utc(2026, 11, 27, 16, 0), 4, utc(2026, 11, 30, 12, 0)),  # Friday 16:00 → Monday 12:00
        (utc(2026, 11, 28, 12, 0), 4, utc(2026, 11, 30, 13, 0)),  # Saturday → Monday
        (utc(2026, 11, 23, 9, 0), 8, utc(2026, 11, 23, 17, 0)),  # exactly a day, ends at closing
        (utc(2026, 11, 23, 9, 0), 40, utc(2026, 11, 27, 17, 0)),  # a full week
        (utc(2026, 11, 23, 16, 59), 0, utc(2026, 11, 23, 16, 59)),
    ],
)
def test_due_times_across_nights_and_weekends(start: datetime, hours: int, due: datetime) -> None:
    assert add_business_hours(start, hours, NINE_TO_FIVE) == due


def test_holidays_are_skipped() -> None:
    schedule = Schedule(holidays=frozenset({date(2026, 11, 30), date(2026, 12, 1)}))
    # Friday 16:00 + 4h: 1h on Friday, Monday and Tuesday are holidays, 3h on Wednesday.
    assert add_business_hours(utc(2026, 11, 27, 16, 0), 4, schedule) == utc(2026, 12, 2, 12, 0)


def test_a_holiday_start_counts_from_the_next_business_day() -> None:
    schedule = Schedule(holidays=frozenset({date(2026, 11, 26)}))  # Thursday
    assert add_business_hours(utc(2026, 11, 26, 10, 0), 2, schedule) == utc(2026, 11, 27, 11, 0)


def test_hours_are_local_to_the_schedule_zone() -> None:
    berlin = Schedule(zone=ZoneInfo("Europe/Berlin"))  # UTC+1 in November
    # 07:30 UTC is 08:30 in Berlin: counts from 09:00 local = 08:00 UTC.
    assert add_business_hours(utc(2026, 11, 23, 7, 30), 2, berlin) == utc(2026, 11, 23, 10, 0)


def test_dst_change_over_a_weekend() -> None:
    new_york = Schedule(zone=ZoneInfo("America/New_York"))
    # Friday 2026-10-30 16:00 EDT (20:00 UTC) + 2h: 1h Friday, 1h Monday from 09:00 EST (14:00 UTC).
    assert add_business_hours(utc(2026, 10, 30, 20, 0), 2, new_york) == utc(2026, 11, 2, 15, 0)


def test_weekend_workers_and_round_the_clock() -> None:
    every_day = Schedule(start_hour=0, end_hour=24, workdays=frozenset(range(1, 8)))
    assert add_business_hours(utc(2026, 11, 28, 22, 0), 4, every_day) == utc(2026, 11, 29, 2, 0)


def test_unusable_schedules_are_refused() -> None:
    with pytest.raises(NoBusinessHours):
        Schedule(start_hour=17, end_hour=9)
    with pytest.raises(NoBusinessHours):
        Schedule(workdays=frozenset())
    everything_off = Schedule(workdays=frozenset({1}), holidays=frozenset())
    with pytest.raises(ValueError, match="timezone-aware"):
        add_business_hours(datetime(2026, 11, 23, 10), 1, everything_off)
    with pytest.raises(ValueError, match="negative"):
        add_business_hours(utc(2026, 11, 23, 10), -1, everything_off)
