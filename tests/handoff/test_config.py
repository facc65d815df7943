"""``handoff.yaml``: business hours, defaults, and problems reported with the file's name."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from kefu.content.problems import Problems
from kefu.handoff.config import HandoffConfig, Hours, load_handoff_config


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def test_hours_follow_the_time_zone_and_the_day_kind() -> None:
    hours = Hours(timezone="Asia/Shanghai", weekdays="09:00-21:00", weekends=None)
    assert hours.open_at(at("2026-12-07T01:30:00+00:00"))  # Monday 09:30 in Shanghai
    assert not hours.open_at(at("2026-12-07T00:30:00+00:00"))  # Monday 08:30 in Shanghai
    assert not hours.open_at(at("2026-12-07T13:00:00+00:00"))  # Monday 21:00: closed (end excluded)
    assert not hours.open_at(at("2026-12-06T03:00:00+00:00"))  # Sunday: no weekend hours
    night = Hours(timezone="UTC", weekdays="22:00-06:00", weekends="22:00-06:00")
    assert night.open_at(at("2026-12-07T23:00:00+00:00")) and night.open_at(at("2026-12-08T05:59:00+00:00"))
    assert not night.open_at(at("2026-12-08T12:00:00+00:00"))
    assert "周一至周五 09:00-21:00" in hours.describe()


def test_no_hours_means_always_open_and_defaults_are_complete() -> None:
    config = HandoffConfig()
    assert config.open_at(datetime.now(UTC))
    assert "{position}" in config.texts.queued and config.repeated_failures == 2 and config.on_timeout == "bot"


def test_a_missing_file_gives_the_defaults_and_a_bad_one_names_its_problems(tmp_path: Path) -> None:
    problems = Problems()
    assert load_handoff_config(tmp_path / "handoff.yaml", problems) == HandoffConfig() and not problems.errors
    bad = tmp_path / "bad.yaml"
    bad.write_text("hours: {weekdays: '9 to 5', timezone: Mars/Base}\nqueue_timeout: -1\nsurprise: 1\n")
    problems = Problems()
    assert load_handoff_config(bad, problems) == HandoffConfig()
    report = problems.report()
    for expected in ("hours.timezone", "hours.weekdays", "queue_timeout", "surprise"):
        assert expected in report, report


def test_the_demo_bot_states_the_same_hours_everywhere() -> None:
    from kefu.config import DEMO_BOT_DIR

    problems = Problems()
    config = load_handoff_config(DEMO_BOT_DIR / "handoff.yaml", problems)
    assert not problems.errors and config.hours is not None
    assert config.hours.weekdays == config.hours.weekends == "09:00-21:00"
    texts = [
        (DEMO_BOT_DIR / "flows" / "human.yaml").read_text(encoding="utf-8"),
        (DEMO_BOT_DIR / "kb" / "faq" / "shop.csv").read_text(encoding="utf-8"),
        (Path(__file__).resolve().parents[2] / "kefu" / "web" / "index.html").read_text(encoding="utf-8"),
    ]
    for text in texts:
        assert "9:00–21:00" in text and "9:00–22:00" not in text
