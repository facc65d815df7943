"""Report date ranges: defaults, time zones, and clear errors."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from kefu.errors import InvalidInput
from kefu.report.period import MAX_DAYS, parse_period

NOW = datetime(2026, 12, 6, 20, 0, tzinfo=UTC)  # already December 7th in Shanghai


def test_default_is_yesterday_in_the_reports_zone() -> None:
    assert parse_period(None, None, now=NOW).since == date(2026, 12, 5)
    shanghai = parse_period(None, None, "Asia/Shanghai", now=NOW)
    assert (shanghai.since, shanghai.until) == (date(2026, 12, 6), date(2026, 12, 6))
    assert shanghai.start == datetime(2026, 12, 5, 16, 0, tzinfo=UTC)
    assert shanghai.end == datetime(2026, 12, 6, 16, 0, tzinfo=UTC)


def test_one_date_is_that_day_and_both_are_included() -> None:
    assert parse_period("2026-12-01", None).until == date(2026, 12, 1)
    assert parse_period(None, "2026-12-01").since == date(2026, 12, 1)
    assert len(parse_period("2026-11-01", "2026-11-30").days()) == 30


@pytest.mark.parametrize(
    ("since", "until", "zone", "message"),
    [
        ("yesterday", None, None, "since must be a date"),
        ("2026-12-01", "2026-13-01", None, "until must be a date"),
        ("2026-12-02", "2026-12-01", None, "is after until"),
        ("2020-01-01", "2026-01-01", None, f"at most {MAX_DAYS} days"),
        (None, None, "Mars/Olympus", "unknown time zone"),
    ],
)
def test_bad_input_says_what_is_wrong(since: str | None, until: str | None, zone: str | None, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_period(since, until, zone)
