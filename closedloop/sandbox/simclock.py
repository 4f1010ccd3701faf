"""Simulation calendar: sim-seconds <-> UTC datetimes, business hours, ISO formatting.

The simulation clock is a float number of seconds since the simulation start
(a timezone-aware UTC datetime). Human queues only start work in business hours
(Mon-Fri 08:00-18:00 UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

BUSINESS_OPEN_HOUR = 8
BUSINESS_CLOSE_HOUR = 18
DEFAULT_START = datetime(2026, 1, 5, 0, 0, 0, tzinfo=UTC)  # a Monday


def as_utc(moment: datetime) -> datetime:
    """Return ``moment`` as an aware UTC datetime (naive values are taken as UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_iso(moment: datetime) -> str:
    """Format an aware datetime as ISO 8601 UTC with millisecond precision and a ``Z``."""
    return as_utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 timestamp (``Z`` or offset; naive means UTC) to aware UTC."""
    return as_utc(datetime.fromisoformat(text.strip()))


def is_business_time(moment: datetime) -> bool:
    """True when ``moment`` falls on Mon-Fri between 08:00 (incl.) and 18:00 (excl.) UTC."""
    return moment.weekday() < 5 and BUSINESS_OPEN_HOUR <= moment.hour < BUSINESS_CLOSE_HOUR


def next_business_open(moment: datetime) -> datetime:
    """The first weekday 08:00 UTC strictly after ``moment``."""
    day = moment.replace(hour=BUSINESS_OPEN_HOUR, minute=0, second=0, microsecond=0)
    if day <= moment:
        day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


class SimCalendar:
    """Converts between simulation seconds and UTC datetimes for one simulation start."""

    def __init__(self, start: datetime | None = None) -> None:
        self.start = as_utc(start) if start is not None else DEFAULT_START

    def to_datetime(self, t: float) -> datetime:
        """The UTC datetime at simulation time ``t`` (seconds since start)."""
        return self.start + timedelta(seconds=t)

    def to_seconds(self, moment: datetime) -> float:
        """Simulation seconds of an aware datetime (may be negative before the start)."""
        return (as_utc(moment) - self.start).total_seconds()

    def iso(self, t: float) -> str:
        """ISO 8601 UTC string of simulation time ``t``."""
        return format_iso(self.to_datetime(t))

    def is_business(self, t: float) -> bool:
        """True when simulation time ``t`` is within business hours."""
        return is_business_time(self.to_datetime(t))

    def next_open(self, t: float) -> float:
        """Simulation time of the next business-day opening strictly after ``t``."""
        return self.to_seconds(next_business_open(self.to_datetime(t)))

    def arrival_weight(self, t: float) -> float:
        """Relative arrival intensity at ``t``: weekday daytime heavy, nights/weekends light."""
        moment = self.to_datetime(t)
        if moment.weekday() >= 5:
            return 0.08
        if BUSINESS_OPEN_HOUR <= moment.hour < BUSINESS_CLOSE_HOUR:
            return 1.0
        if 6 <= moment.hour < 8 or 18 <= moment.hour < 21:
            return 0.3
        return 0.1
