"""Time in the customer's zone: cron schedules, waiting until a local time, quiet hours."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_NAMES = {
    "sun": 0,
    "mon": 1,
    "tue": 2,
    "wed": 3,
    "thu": 4,
    "fri": 5,
    "sat": 6,
    "jan": 1,
    "feb": 2,
    "mar": 3,
    "apr": 4,
    "may": 5,
    "jun": 6,
    "jul": 7,
    "aug": 8,
    "sep": 9,
    "oct": 10,
    "nov": 11,
    "dec": 12,
}
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("weekday", 0, 7))


def zone(name: str | None, default: str) -> ZoneInfo:
    """The customer's time zone; an unknown or missing name counts as the project's."""
    for candidate in (name, default):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


@dataclass(frozen=True)
class Cron:
    """A five-field cron expression (minute hour day month weekday, POSIX meaning: when both
    day and weekday are restricted, either may match). Names (MON, JAN), lists, ranges and
    steps are understood; 7 is Sunday as well as 0.
    """

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, text: str) -> Cron:
        """Parse ``0 9 * * MON-FRI``; a ValueError says which field is wrong."""
        parts = text.split()
        if len(parts) != 5:
            raise ValueError(
                f"cron '{text}' needs five fields: minute hour day month weekday (0 9 * * MON)"
            )
        fields = zip(parts, _FIELDS, strict=True)
        sets = [_field(p, name, low, high) for p, (name, low, high) in fields]
        weekdays = frozenset(d % 7 for d in sets[4])
        return cls(
            text,
            sets[0],
            sets[1],
            sets[2],
            sets[3],
            weekdays,
            parts[2] == "*",
            parts[4] == "*",
        )

    def matches(self, moment: dt.datetime) -> bool:
        """Whether the minute of ``moment`` (local, naive or aware) is a scheduled one."""
        if moment.minute not in self.minutes or moment.hour not in self.hours:
            return False
        if moment.month not in self.months:
            return False
        day_ok = moment.day in self.days
        weekday_ok = (moment.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return day_ok and weekday_ok
        return day_ok or weekday_ok

    def times(self, start: dt.datetime, end: dt.datetime, tz: ZoneInfo) -> list[dt.datetime]:
        """Scheduled instants in ``(start, end]`` (aware UTC), read on the wall clock of ``tz``."""
        out: list[dt.datetime] = []
        day = start.astimezone(tz).date()
        last = end.astimezone(tz).date()
        while day <= last:
            for hour in sorted(self.hours):
                for minute in sorted(self.minutes):
                    local = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=tz)
                    if not self.matches(local):
                        continue
                    moment = local.astimezone(dt.UTC)
                    if start < moment <= end:
                        out.append(moment)
            day += dt.timedelta(days=1)
        return sorted(set(out))


def _field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for item in text.lower().split(","):
        step = 1
        if "/" in item:
            item, step_text = item.split("/", 1)
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"cron {name} step '{step_text}' is not a whole number above 0")
            step = int(step_text)
        if item == "*":
            first, last = low, high
        elif "-" in item:
            a, b = item.split("-", 1)
            first, last = _value(a, name, low, high), _value(b, name, low, high)
        else:
            first = _value(item, name, low, high)
            last = high if step > 1 else first
        if first > last:
            raise ValueError(f"cron {name} range '{item}' runs backwards")
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _value(text: str, name: str, low: int, high: int) -> int:
    number = _NAMES.get(text) if name in ("weekday", "month") else None
    if number is None:
        if not text.isdigit():
            raise ValueError(f"cron {name} '{text}' is not a number from {low} to {high}")
        number = int(text)
    if not low <= number <= high:
        raise ValueError(f"cron {name} {number} is outside {low}-{high}")
    return number


def next_local_time(after: dt.datetime, at: dt.time, tz: ZoneInfo) -> dt.datetime:
    """The first instant at or after ``after`` whose wall-clock time in ``tz`` is ``at``."""
    local = after.astimezone(tz)
    candidate = dt.datetime.combine(local.date(), at, tzinfo=tz)
    if candidate < local:
        candidate = dt.datetime.combine(local.date() + dt.timedelta(days=1), at, tzinfo=tz)
    return candidate.astimezone(dt.UTC)


def out_of_quiet_hours(
    moment: dt.datetime, quiet: tuple[dt.time, dt.time] | None, tz: ZoneInfo
) -> dt.datetime:
    """``moment`` moved to the end of quiet hours when it falls inside them (local time)."""
    if quiet is None:
        return moment
    start, end = quiet
    local = moment.astimezone(tz)
    t = local.time()
    inside = (start <= t or t < end) if start > end else (start <= t < end)
    if not inside:
        return moment
    day = local.date() if t < end else local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, end, tzinfo=tz).astimezone(dt.UTC)
