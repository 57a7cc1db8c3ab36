"""SLA arithmetic in business hours: pure functions over a schedule, no database.

An alert raised at 16:00 on a Friday with a 4-business-hour SLA is due at 11:00 on Monday (9-17, Monday to
Friday), or on Tuesday when Monday is a holiday. Days are walked in the schedule's time zone; the arithmetic
itself is done in UTC, so a daylight-saving change inside a working day still counts real hours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DEFAULT_WORKDAYS = frozenset({1, 2, 3, 4, 5})
# A schedule with business days left must reach the answer well within this; it only stops a loop on a schedule
# whose every day is a holiday.
MAX_DAYS_SCANNED = 3 * 366


class NoBusinessHours(ValueError):
    """The schedule has no working time to count in (no workdays, or every day a holiday)."""


@dataclass(frozen=True)
class Schedule:
    """Working hours [start_hour, end_hour) on ISO weekdays `workdays` (1 = Monday), minus `holidays`."""

    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    start_hour: int = 9
    end_hour: int = 17
    workdays: frozenset[int] = DEFAULT_WORKDAYS
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if not 0 <= self.start_hour < self.end_hour <= 24:
            raise NoBusinessHours(
                f"Working hours must satisfy 0 ≤ start < end ≤ 24, got {self.start_hour}-{self.end_hour}."
            )
        if not self.workdays or not self.workdays <= {1, 2, 3, 4, 5, 6, 7}:
            raise NoBusinessHours("Choose at least one workday (1 = Monday … 7 = Sunday).")


def is_business_day(day: date, schedule: Schedule) -> bool:
    """A workday that is not a holiday."""
    return day.isoweekday() in schedule.workdays and day not in schedule.holidays


def _window(day: date, schedule: Schedule) -> tuple[datetime, datetime]:
    """The day's working window as UTC instants (end_hour 24 is the next midnight)."""
    opens = datetime.combine(day, time(schedule.start_hour), tzinfo=schedule.zone)
    closes = (
        datetime.combine(day + timedelta(days=1), time(0), tzinfo=schedule.zone)
        if schedule.end_hour == 24
        else datetime.combine(day, time(schedule.end_hour), tzinfo=schedule.zone)
    )
    return opens.astimezone(UTC), closes.astimezone(UTC)


def add_business_hours(start: datetime, hours: float, schedule: Schedule) -> datetime:
    """The moment `hours` business hours after `start` (timezone-aware), in UTC.

    Time outside working hours does not count: a start at night counts from the next opening, and the clock
    stops at closing and resumes at the next business day's opening.
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if hours < 0:
        raise ValueError("hours must not be negative")
    remaining = timedelta(hours=hours)
    cursor = start.astimezone(UTC)
    day = start.astimezone(schedule.zone).date()
    for _ in range(MAX_DAYS_SCANNED):
        if is_business_day(day, schedule):
            opens, closes = _window(day, schedule)
            begin = max(cursor, opens)
            if begin < closes or (remaining == timedelta(0) and begin <= closes):
                available = closes - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
        day += timedelta(days=1)
    raise NoBusinessHours(f"No business hours in the {MAX_DAYS_SCANNED} days after {start.isoformat()}.")
