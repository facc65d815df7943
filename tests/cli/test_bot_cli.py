"""``kefu bot check``: the same validation as server start-up, reported with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kefu.cli.main import app
from kefu.config import DEMO_BOT_DIR


def test_bot_check_accepts_the_demo_shop() -> None:
    result = CliRunner().invoke(app, ["bot", "check", str(DEMO_BOT_DIR)])
    assert result.exit_code == 0, result.output
    assert "4 flow(s)" in result.output and "tool(s)" in result.output and "moderation term(s)" in result.output


def test_bot_check_reports_every_problem_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "tools").mkdir()
    (tmp_path / "flows" / "track.yaml").write_text(
        "name: track\ndescription: 查单\nslots:\n  order_id: {type: order_id, prompt: 请提供订单号}\n"
        "steps:\n  - collect: order_id\n  - call: get_order\n  - collect: phone\n",
        encoding="utf-8",
    )
    (tmp_path / "tools" / "orders.yaml").write_text(
        "name: get_order\ndescription: x\nmethod: GET\nurl: https://shop.example/orders\n"
        "headers:\n  Authorization: Bearer sk-literal-secret\n",
        encoding="utf-8",
    )
    (tmp_path / "texts.yaml").write_text("apologee: 抱歉\n", encoding="utf-8")
    (tmp_path / "moderation.yaml").write_text(
        "categories:\n  abuse: {action: starr}\nterms:\n  ads: [加微信]\n", encoding="utf-8"
    )
    result = CliRunner().invoke(app, ["bot", "check", str(tmp_path)])
    assert result.exit_code == 1
    out = result.output
    assert "track.yaml:8" in out  # collect of an undeclared slot
    assert "orders.yaml:1" in out and "risk" in out  # a tool without a risk level
    assert "orders.yaml:6" in out  # a literal secret in a header
    assert "texts.yaml" in out and "apologee" in out
    assert "moderation.yaml:2: error: categories.abuse.action" in out and "moderation.yaml:4: error: terms.ads" in out
    assert "would refuse" in out


def test_bot_reload_needs_an_api_key() -> None:
    result = CliRunner(env={"KEFU_ADMIN_API_KEY": ""}).invoke(app, ["bot", "reload", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "API key" in result.output


def test_bot_check_of_the_bundled_demo_prints_no_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    # `kefu serve` gives the demo tools its own merchant API address; the check must not warn it is missing.
    monkeypatch.delenv("KEFU_DEMO_SHOP_URL", raising=False)
    result = CliRunner().invoke(app, ["bot", "check", str(DEMO_BOT_DIR)])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output, result.output
    assert "KEFU_DEMO_SHOP_URL" not in result.output
