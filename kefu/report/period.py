"""The date range of a report: whole days in one time zone, turned into UTC bounds for SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kefu.errors import InvalidInput

MAX_DAYS = 366  # a report reads every conversation of its range: a year is the most one request may ask for


@dataclass(frozen=True, slots=True)
class Period:
    """``since`` to ``until``, both days included, in ``zone``."""

    since: date
    until: date
    zone: str = "UTC"

    @property
    def tz(self) -> tzinfo:
        """The time zone the days are counted in."""
        return UTC if self.zone == "UTC" else ZoneInfo(self.zone)

    @property
    def start(self) -> datetime:
        """The first instant of ``since`` (UTC)."""
        return datetime.combine(self.since, time(), self.tz).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """The first instant after ``until`` (UTC), excluded."""
        return datetime.combine(self.until + timedelta(days=1), time(), self.tz).astimezone(UTC)

    def days(self) -> list[date]:
        """Every day of the range, in order."""
        return [self.since + timedelta(days=i) for i in range((self.until - self.since).days + 1)]

    def day_of(self, moment: datetime) -> date:
        """The day ``moment`` falls on in the report's time zone."""
        return moment.astimezone(self.tz).date()


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{name} must be a date like 2026-12-01, not {value!r}", code="invalid_date") from None


def _zone(value: str) -> str:
    name = value.strip() or "UTC"
    if name.upper() == "UTC":
        return "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"unknown time zone {value!r} (an IANA name like Asia/Shanghai)", code="invalid_tz"
        ) from None
    return name


def parse_period(
    since: str | None, until: str | None, zone: str | None = None, *, now: datetime | None = None
) -> Period:
    """The range from ISO dates (either may be left out); both missing: yesterday. One missing: that one day.

    :class:`InvalidInput` for a malformed date or zone, ``since`` after ``until``, or more than :data:`MAX_DAYS`."""
    tz_name = _zone(zone or "UTC")
    if since is None and until is None:
        today = (now or datetime.now(UTC)).astimezone(Period(date.min, date.min, tz_name).tz).date()
        first = last = today - timedelta(days=1)
    else:
        given_first = _day(since, "since") if since is not None else None
        given_last = _day(until, "until") if until is not None else None
        first = given_first or given_last or date.min
        last = given_last or first
    if first > last:
        raise InvalidInput(f"since ({first}) is after until ({last})", code="invalid_date")
    if (last - first).days + 1 > MAX_DAYS:
        raise InvalidInput(f"a report covers at most {MAX_DAYS} days", code="invalid_date")
    return Period(first, last, tz_name)
